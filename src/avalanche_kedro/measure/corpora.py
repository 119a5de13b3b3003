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

from ..core.seeds import seed_of

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


#: The two halves of the standard library's files: dataset B is read from the ``measured`` half,
#: the embedded models are trained on the ``training`` half (their docstrings and comments).
SPLITS = ("measured", "training")


def stdlib_files(root: Path | None = None, split: str | None = None) -> list[Path]:
    """The standard library's ``.py`` files in sorted path order (tests, tools, vendored skipped).

    ``split`` keeps one half: a file is in ``SPLITS[seed_of("corpus_split", relative path) %
    2]``, a fixed, seeded cut of the files (not of their text), so the halves share no file.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(
        path
        for path in root.rglob("*.py")
        if not _STDLIB_SKIP.intersection(path.relative_to(root).parts[:-1])
    )
    if split is None:
        return files
    wanted = SPLITS.index(split)
    return [
        p for p in files if seed_of("corpus_split", p.relative_to(root).as_posix()) % 2 == wanted
    ]


def stdlib_docstrings(root: Path | None = None, split: str | None = None) -> Iterator[str]:
    """Docstrings of the standard library's modules, classes and functions.

    Files are visited in sorted path order (:func:`stdlib_files`, optionally one ``split``) and
    each file's docstrings in source order, so the stream is identical for a given Python
    version. Nothing is imported: files are parsed.
    """
    for path in stdlib_files(root, split):
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


# ---- training text: disjoint from every corpus the study measures ---------------------------

#: A comment block shorter than this (characters) is a tag, not prose ("noqa", "XXX", "pragma").
MIN_COMMENT_CHARS = 40
_LAYOUT_TOKENS = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
_PRAGMA_PREFIXES = ("!", "-*-", "noqa", "type:", "pragma", "fmt:", "pylint", "isort", "XXX", "TODO")


def stdlib_comments(root: Path | None = None, split: str | None = None) -> Iterator[str]:
    """Comment blocks of the standard library's source (:func:`stdlib_files`, one ``split``).

    Consecutive ``#`` comment lines of a file form one record (markers stripped, lines joined
    with single spaces); shebang, coding, lint and type pragmas are dropped, as are blocks
    shorter than :data:`MIN_COMMENT_CHARS` and repeats of an earlier block (licence headers).
    Comments are never docstrings. Nothing is imported: files are tokenized.
    """
    files = stdlib_files(root, split)
    seen: set[str] = set()
    for path in files:
        try:
            with tokenize.open(path) as handle:
                tokens = list(tokenize.generate_tokens(handle.readline))
        except (SyntaxError, UnicodeDecodeError, ValueError, tokenize.TokenError):
            continue
        block: list[str] = []
        last_line = -2
        for token in [*tokens, None]:
            if token is not None and token.type in _LAYOUT_TOKENS:
                continue  # line breaks and indentation do not end a comment block
            is_comment = token is not None and token.type == tokenize.COMMENT
            # a comment after code on its line is its own block (it annotates that code)
            full_line = is_comment and token.line.lstrip().startswith("#")
            if full_line and token.start[0] == last_line + 1 and block:
                block.append(token.string)
                last_line = token.start[0]
                continue
            text = _comment_text(block)
            if text and text not in seen:
                seen.add(text)
                yield text
            if is_comment:
                block, last_line = [token.string], (token.start[0] if full_line else -2)
            else:
                block, last_line = [], -2


def stdlib_training_text(root: Path | None = None) -> Iterator[str]:
    """The embedded base model's training text: docstrings, then comment blocks, of the
    ``training`` half of the standard library's files (:func:`stdlib_files`).

    Dataset B is read from the other half and dataset A is the reference manual, so no file
    the study measures is trained on; :func:`decontaminate` then drops any record that still
    repeats 8 words of the measured corpora.
    """
    yield from stdlib_docstrings(root, "training")
    yield from stdlib_comments(root, "training")


def _comment_text(lines: list[str]) -> str | None:
    words = []
    for line in lines:
        body = line.lstrip("#").strip()
        if body.startswith(_PRAGMA_PREFIXES):
            continue
        words.append(body)
    text = " ".join(w for w in words if w)
    return text if len(text) >= MIN_COMMENT_CHARS else None


#: Built-in (C) modules and types whose docstrings make the instruction-shaped text. Their
#: docstrings live in C, so no ``.py`` file - hence not corpus B - contains them.
INSTRUCTION_SOURCES = (
    "builtins",
    "math",
    "itertools",
    "_operator",
    "time",
    "str",
    "bytes",
    "list",
    "dict",
    "set",
    "int",
    "float",
    "tuple",
)


def builtin_qa_pairs() -> list[str]:
    """Question/answer records about Python's built-in functions, modules and types.

    One record per documented name, ``"Question: What does {name} do?\\nAnswer: {first
    paragraph of its docstring}"``, names in :data:`INSTRUCTION_SOURCES` order and sorted within
    each source. An instruction-shaped stand-in for instruction tuning, built from the running
    interpreter alone (no download; the text depends on the Python version like the corpora).
    """
    import builtins
    import importlib

    records = []
    for source in INSTRUCTION_SOURCES:
        if hasattr(builtins, source) and isinstance(getattr(builtins, source), type):
            owner, prefix = getattr(builtins, source), f"{source}."
        else:
            owner = importlib.import_module(source)
            prefix = "" if source == "builtins" else f"{source.lstrip('_')}."
        for name in sorted(vars(owner)):
            if name.startswith("_"):
                continue
            doc = getattr(getattr(owner, name), "__doc__", None)
            if not isinstance(doc, str) or not doc.strip():
                continue
            answer = _first_paragraph(doc)
            if len(answer) >= 10:
                records.append(f"Question: What does {prefix}{name} do?\nAnswer: {answer}")
    return records


def _first_paragraph(doc: str) -> str:
    lines = [line.strip() for line in doc.strip().splitlines()]
    paragraph = []
    for line in lines:
        if not line:
            if paragraph:
                break
            continue
        paragraph.append(line)
    return " ".join(paragraph)


#: Word-run length of the decontamination: a training record sharing any run of this many
#: words with a measured corpus is dropped.
DECONTAMINATION_WORDS = 8


def word_shingles(text: str, n: int = DECONTAMINATION_WORDS) -> set[int]:
    """Hashes of every run of ``n`` consecutive lower-cased words of ``text`` (blake2b, 8 bytes).

    The hash is stable across processes (unlike ``hash()``), so decontamination is deterministic.
    """
    import hashlib

    words = text.lower().split()
    return {
        int.from_bytes(
            hashlib.blake2b(" ".join(words[i : i + n]).encode(), digest_size=8).digest(), "big"
        )
        for i in range(len(words) - n + 1)
    }


def decontaminate(
    records: Iterator[str] | list[str],
    measured: Iterator[str] | list[str],
    n: int = DECONTAMINATION_WORDS,
) -> tuple[list[str], int]:
    """``records`` without any record that shares an ``n``-word run with ``measured`` text.

    Returns the kept records (order unchanged) and how many were dropped. Used so no training
    record repeats text of the measured corpora (A and B), word for word, over ``n`` words.
    """
    forbidden: set[int] = set()
    for text in measured:
        forbidden |= word_shingles(text, n)
    kept, dropped = [], 0
    for record in records:
        if word_shingles(record, n) & forbidden:
            dropped += 1
        else:
            kept.append(record)
    return kept, dropped
