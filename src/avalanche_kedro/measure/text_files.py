"""Is a local corpus file something the text and JSON readers can use? Checked before any model.

``datasets``' packaged builders fail on a directory, a binary file or a file that is not UTF-8
with a generic "An error occurred while generating the dataset", minutes into a run on a
large model. :func:`check_text_file` reads the file once (streaming, in 1 MiB blocks, so a
500 MB corpus costs about a second) and names the problem, the byte offset and line where it
is, and the fix.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ..core.errors import CorpusError

#: builders that read their files as UTF-8 text (``parquet`` and ``arrow`` are binary formats)
TEXT_BUILDERS = ("text", "json", "csv")
_BLOCK = 1 << 20
_CHECKED: dict[tuple[str, int, int], None] = {}  # (path, size, mtime_ns) already found good


def check_text_file(path: str | Path, *, entry: str, how_to_point: str) -> None:
    """Raise :class:`CorpusError` unless ``path`` is an existing, UTF-8 encoded text file.

    ``entry`` names what the file is for (e.g. "corpus_A (dataset A)"); ``how_to_point`` says
    how a user points that entry at another file (the catalog key or the ``--params`` name).
    A file checked once in this process (same size and modification time) is not read again.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(
            f"The file {path} of {entry} does not exist.",
            f"{how_to_point} at an existing file.",
        )
    if path.is_dir():
        raise CorpusError(
            f"{path}, the file of {entry}, is a directory; a corpus is one text file with one "
            "record per line (or one JSON object per line).",
            f"{how_to_point} at a single file, e.g. join the directory's files with "
            f"`cat {path}/*.txt > corpus.txt`.",
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:
        return
    _scan(path, entry, how_to_point)
    _CHECKED[key] = None


def _scan(path: Path, entry: str, how_to_point: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            nul = block.find(b"\0")
            if nul >= 0:
                where, at_line = offset + nul, line + block.count(b"\n", 0, nul)
                raise CorpusError(
                    f"{path}, the file of {entry}, is binary, not text: it holds a NUL byte at "
                    f"byte {where} (line {at_line}).",
                    f"{how_to_point} at a UTF-8 text file (one record per line); a compressed "
                    "or binary file must be unpacked or converted first.",
                )
            pending = decoder.getstate()[0]  # an incomplete character held from the last block
            try:
                decoder.decode(block, final=False)
            except UnicodeDecodeError as exc:
                data = pending + block
                _raise_not_utf8(path, entry, how_to_point, data, offset - len(pending), line, exc)
            offset += len(block)
            line += block.count(b"\n")
        pending = decoder.getstate()[0]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:  # the file ends inside a character
            _raise_not_utf8(path, entry, how_to_point, pending, offset - len(pending), line, exc)


def _raise_not_utf8(path, entry, how_to_point, data, offset, line, exc) -> None:
    """``data`` starts at byte ``offset`` of the file, on line ``line``."""
    start = max(exc.start, 0)
    where = offset + start
    at_line = line + data.count(b"\n", 0, start)
    bad = data[start : start + 4]
    raise CorpusError(
        f"{path}, the file of {entry}, is not UTF-8 text: the bytes {bad!r} at byte {where} "
        f"(line {at_line}) are not valid UTF-8 (a Latin-1 or Windows-1252 file looks like this).",
        f"Convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8"
        f"{path.suffix}`, and {how_to_point[0].lower()}{how_to_point[1:]} at the converted file.",
    ) from exc
