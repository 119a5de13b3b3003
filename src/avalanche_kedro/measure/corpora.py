"""Offline text corpora that ship with every CPython installation.

The embedded default needs no download: dataset A is the reference manual of
``pydoc_data.topics`` and dataset B the docstrings of the standard library. Both depend only on
the running Python version; the slice hashes record exactly which text a run used.
(:class:`avalanche_kedro.framework.datasets.PythonTextCorpus` is the catalog entry for them.)
"""

from __future__ import annotations

import ast
import sysconfig
import tokenize
from collections.abc import Iterator
from pathlib import Path

# Parts of the standard library that are test data, tools or vendored code rather than the
# library's own documentation; they are skipped so corpus B is ordinary prose docstrings.
_STDLIB_SKIP = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "site-packages",
    "dist-packages",
    "turtledemo",
    "ensurepip",
    "__pycache__",
    "pydoc_data",
}


def pydoc_topics() -> list[str]:
    """The reference-manual topics of ``pydoc_data.topics``, one record per topic, key order."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def stdlib_docstrings(root: Path | None = None) -> Iterator[str]:
    """Docstrings of the standard library's modules, classes and functions.

    Files are visited in sorted path order and each file's docstrings in source order, so the
    stream is identical for a given Python version. Nothing is imported: files are parsed.
    """
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(
        path
        for path in root.rglob("*.py")
        if not _STDLIB_SKIP.intersection(path.relative_to(root).parts[:-1])
    )
    for path in files:
        try:
            with tokenize.open(path) as handle:
                tree = ast.parse(handle.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        yield from _docstrings_in_order(tree)


def _docstrings_in_order(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield doc
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _docstrings_in_order(child)
