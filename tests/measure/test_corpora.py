"""The offline corpora: pydoc reference topics (A) and standard-library docstrings (B)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from avalanche_kedro.measure.corpora import _STDLIB_SKIP, pydoc_topics, stdlib_docstrings


def test_pydoc_topics_are_the_topics_in_key_order(python_corpus_a):
    from pydoc_data.topics import topics

    records = pydoc_topics()
    keys = sorted(topics)
    assert len(records) == len(topics) > 0
    assert records[0] == topics[keys[0]] and records[-1] == topics[keys[-1]]
    for key, record in zip(keys, records, strict=True):
        assert record is topics[key]
    assert all(isinstance(r, str) and r.strip() for r in records)
    assert python_corpus_a == records  # the session's corpus A is this list


def test_pydoc_topics_returns_a_fresh_list():
    first = pydoc_topics()
    first.clear()
    assert pydoc_topics()


def write(root: Path, relative: str, text: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def library(tmp_path) -> Path:
    """A small fake standard library, written so that importing any file would be noticed."""
    root = tmp_path / "lib"
    marker = tmp_path / "IMPORTED"
    side_effect = f"open({str(marker)!r}, 'w').close()\nraise SystemExit('imported')\n"
    # written out of order: the reader sorts
    write(
        root,
        "b.py",
        '"""Module b."""\n' + side_effect + "\n"
        "class Outer:\n"
        '    """Outer class.\n\n        Indented second paragraph.\n    """\n\n'
        "    def method(self):\n"
        '        """Method of Outer."""\n\n'
        "        def inner():\n"
        '            """Inner function."""\n\n'
        "    class Nested:\n"
        '        """Nested class."""\n\n\n'
        "async def coroutine():\n"
        '    """An async function."""\n\n\n'
        "def undocumented():\n"
        "    return 1\n\n\n"
        "def empty():\n"
        '    """"""\n',
    )
    write(root, "a.py", '"""Module a."""\n\n\ndef f():\n    """Function f."""\n')
    write(root, "pkg/__init__.py", '"""Package."""\n')
    write(root, "pkg/z.py", 'x = 1\n\n\ndef g():\n    """Function g of pkg.z."""\n')
    # a declared legacy encoding is honoured (tokenize.open)
    write(
        root,
        "pkg/latin.py",
        '# -*- coding: latin-1 -*-\n"""Caf\xe9 in Latin-1."""\n'.encode("latin-1"),
    )
    # files the reader must skip
    write(root, "broken.py", '"""Broken module."""\ndef (:\n')
    write(root, "undecodable.py", b'"""Bad bytes."""\nx = "\xff\xfe"\n')
    for folder in ("test", "tests", "idlelib", "site-packages", "__pycache__", "pydoc_data"):
        write(root, f"{folder}/skipped.py", f'"""Skipped {folder}."""\n')
    write(root, "pkg/tests/deep.py", '"""Skipped deep test."""\n')
    write(root, "notes.txt", '"""Not python."""\n')
    return root


def test_stdlib_docstrings_in_path_then_source_order(library):
    assert list(stdlib_docstrings(library)) == [
        # a.py
        "Module a.",
        "Function f.",
        # b.py: module, class, its methods and nested definitions depth-first, then the rest
        "Module b.",
        "Outer class.\n\nIndented second paragraph.",
        "Method of Outer.",
        "Inner function.",
        "Nested class.",
        "An async function.",
        # pkg/__init__.py, pkg/latin.py, pkg/z.py
        "Package.",
        "Café in Latin-1.",
        "Function g of pkg.z.",
    ]


def test_stdlib_docstrings_never_imports(library):
    before = set(sys.modules)
    records = list(stdlib_docstrings(library))
    assert "Module b." in records
    assert not (library.parent / "IMPORTED").exists()
    assert not {"a", "b", "pkg", "pkg.z"} & (set(sys.modules) - before)


def test_stdlib_docstrings_skips_tool_and_test_folders(library):
    assert {
        "test",
        "tests",
        "idlelib",
        "site-packages",
        "__pycache__",
        "pydoc_data",
    } <= _STDLIB_SKIP
    records = list(stdlib_docstrings(library))
    assert not [r for r in records if r.startswith("Skipped")]
    # a skipped name as a file's own name is not a folder: only folders are skipped
    write(library, "tests.py", '"""A module named tests."""\n')
    assert "A module named tests." in list(stdlib_docstrings(library))


def test_stdlib_docstrings_skips_files_that_do_not_parse(library):
    records = list(stdlib_docstrings(library))
    assert "Broken module." not in records and "Bad bytes." not in records


def test_stdlib_docstrings_is_lazy_and_repeatable(library):
    stream = stdlib_docstrings(library)
    assert next(stream) == "Module a."
    assert list(stdlib_docstrings(library)) == list(stdlib_docstrings(str(library)))


# ---- the halves of the standard library and the training texts ------------------------------


def test_the_two_halves_partition_the_files_by_the_seeded_rule(library):
    from avalanche_kedro.core.seeds import seed_of
    from avalanche_kedro.measure.corpora import SPLITS, stdlib_files

    every = stdlib_files(library)
    halves = {split: stdlib_files(library, split) for split in SPLITS}
    assert sorted(halves["measured"] + halves["training"]) == every
    assert not set(halves["measured"]) & set(halves["training"])
    for split, files in halves.items():
        for path in files:
            relative = path.relative_to(library).as_posix()
            assert SPLITS[seed_of("corpus_split", relative) % 2] == split
    with pytest.raises(ValueError, match="split must be one of"):
        stdlib_files(library, "train")


def test_docstrings_of_one_half_are_those_of_its_files(library):
    from avalanche_kedro.measure.corpora import stdlib_files

    measured = list(stdlib_docstrings(library, "measured"))
    training = list(stdlib_docstrings(library, "training"))
    assert sorted(measured + training) == sorted(stdlib_docstrings(library))
    names = {p.name for p in stdlib_files(library, "measured")}
    assert ("Module a." in measured) == ("a.py" in names)


def test_comment_blocks_join_lines_and_drop_pragmas_short_tags_and_repeats(tmp_path):
    from avalanche_kedro.measure.corpora import stdlib_comments

    root = tmp_path / "lib"
    write(
        root,
        "a.py",
        "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n"
        "# The first block explains the module\n#   over two lines of prose text.\n"
        "x = 1  # noqa: E501\n"
        "\n"
        "def f():\n"
        "    # An indented block that is long enough to be kept here.\n"
        "    return 2  # short\n"
        "# The first block explains the module\n# over two lines of prose text.\n",
    )
    assert list(stdlib_comments(root)) == [
        "The first block explains the module over two lines of prose text.",
        "An indented block that is long enough to be kept here.",
    ]


def test_training_text_is_the_training_half_docstrings_then_comments(library):
    from avalanche_kedro.measure.corpora import stdlib_comments, stdlib_training_text

    expected = [
        *stdlib_docstrings(library, "training"),
        *stdlib_comments(library, "training"),
    ]
    assert list(stdlib_training_text(library)) == expected


def test_builtin_qa_pairs_are_question_answer_records_from_c_docstrings():
    import math

    from avalanche_kedro.measure.corpora import builtin_qa_pairs

    records = builtin_qa_pairs()
    gcd = [r for r in records if r.startswith("Question: What does math.gcd do?\n")]
    first_paragraph = math.gcd.__doc__.strip().split("\n\n")[0].replace("\n", " ")
    assert gcd == [f"Question: What does math.gcd do?\nAnswer: {first_paragraph.strip()}"]
    assert all(r.startswith("Question: What does ") and "\nAnswer: " in r for r in records)
    assert len(records) > 200 and records == builtin_qa_pairs()  # deterministic


def test_word_shingles_by_hand():
    from avalanche_kedro.measure.corpora import word_shingles

    assert len(word_shingles("a b c d", n=2)) == 3
    assert word_shingles("A  b\nC", n=3) == word_shingles("a b c", n=3)  # case and spacing
    assert word_shingles("too short", n=3) == set()


def test_decontaminate_drops_records_sharing_a_word_run_with_measured_text():
    from avalanche_kedro.measure.corpora import decontaminate

    measured = ["the quick brown fox jumps over the lazy dog"]
    records = [
        "a record that says the quick brown fox jumps",  # shares a 4-word run
        "the quick brown cat is something else entirely",  # shares only 3 words in a row
        "nothing in common at all with the measured text",
    ]
    kept, dropped = decontaminate(records, measured, n=4)
    assert kept == records[1:] and dropped == 1
