"""docs/reliability.md lists at least 40 distinct bad inputs and faults, each with a real test.

Every row's test reference (``tests/<file>.py::<test>`` or ``...::<test>[<case id>]``) must
name a test function defined in that file, and a case id must be one of the ids the file
gives that test (a literal in its ``ids=[...]``, or a CASES table entry), so the table cannot
drift from the suite.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "reliability.md"
ROW = re.compile(
    r"^\|\s*(\d+)\s*\|(.+?)\|(.+?)\|\s*`(tests/[^`:]+\.py)::(\w+)(?:\[([^\]]+)\])?`\s*\|$"
)


def rows() -> list[tuple[int, str, str, str, str | None]]:
    found = []
    for line in DOC.read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            number, case, _, path, test, case_id = match.groups()
            found.append((int(number), case.strip(), path, test, case_id))
    return found


def _string_literals(tree: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_the_table_has_at_least_forty_distinct_cases_numbered_in_order():
    table = rows()
    assert len(table) >= 40
    assert [row[0] for row in table] == list(range(1, len(table) + 1))
    cases = [row[1] for row in table]
    assert len(set(cases)) == len(cases), "a case is listed twice"
    references = [(row[2], row[3], row[4]) for row in table]
    assert len(set(references)) == len(references), "two cases point at the same test"


def test_every_row_names_a_test_that_exists():
    missing = []
    for number, _, path, test, case_id in rows():
        file = PROJECT_ROOT / path
        if not file.exists():
            missing.append(f"row {number}: {path} does not exist")
            continue
        tree = ast.parse(file.read_text())
        functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if test not in functions:
            missing.append(f"row {number}: {path} has no {test}")
        elif case_id is not None and case_id not in _string_literals(tree):
            missing.append(f"row {number}: {path}::{test} has no case id {case_id!r}")
    assert missing == []


def test_the_doc_shows_the_message_format_the_cli_prints():
    from avalanche_kedro.cli import input_error_text
    from avalanche_kedro.core.errors import CorpusError

    text = input_error_text(CorpusError("the problem.", "the fix."))
    assert text == "Error (CorpusError): the problem.\n  How to fix: the fix."
    assert "Error (CorpusError): " in DOC.read_text() and "  How to fix: " in DOC.read_text()
    assert Path(PROJECT_ROOT / "src/avalanche_kedro/cli.py").exists()
