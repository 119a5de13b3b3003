"""Corpus files that are not UTF-8 text are named with the byte and line where they go wrong.

Offsets and line numbers below are counted by hand from the bytes each test writes.
"""

from __future__ import annotations

import pytest

from avalanche_kedro.core.errors import CorpusError
from avalanche_kedro.measure import text_files
from avalanche_kedro.measure.text_files import check_text_file

HOW = "Point corpus_A"


def check(path) -> str:
    with pytest.raises(CorpusError) as info:
        check_text_file(path, entry="corpus_A (dataset A)", how_to_point=HOW)
    return str(info.value)


def test_a_utf8_file_passes_and_is_not_read_twice(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("Grüße aus Köln\nzweite Zeile — mit Gedankenstrich\n", encoding="utf-8")
    check_text_file(path, entry="corpus_A", how_to_point=HOW)
    reads = []
    monkeypatch.setattr(text_files, "_scan", lambda *args: reads.append(args))
    check_text_file(path, entry="corpus_A", how_to_point=HOW)
    assert reads == []  # same size and mtime: the earlier verdict stands
    path.write_text("changed\n", encoding="utf-8")
    check_text_file(path, entry="corpus_A", how_to_point=HOW)
    assert len(reads) == 1  # a changed file is read again


def test_binary_file_names_the_first_nul_byte(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"line one\nline two\nab\x00cd")  # NUL at byte 9 + 9 + 2 = 20, line 3
    message = check(path)
    assert f"{path}, the file of corpus_A (dataset A), is binary" in message
    assert "NUL byte at byte 20 (line 3)" in message
    assert "How to fix: Point corpus_A at a UTF-8 text file" in message


def test_latin1_file_names_the_first_bad_byte_and_the_conversion(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("first\nsecond caf\xe9 x\n".encode("latin-1"))  # é at 6 + 10 = 16, line 2
    message = check(path)
    assert "is not UTF-8 text: the bytes b'\\xe9 x\\n' at byte 16 (line 2)" in message
    assert f"iconv -f latin1 -t utf-8 {path} > latin.utf8.txt" in message
    assert "point corpus_A at the converted file" in message


def test_a_character_split_across_read_blocks_is_valid(tmp_path, monkeypatch):
    monkeypatch.setattr(text_files, "_BLOCK", 4)
    path = tmp_path / "split.txt"
    path.write_bytes("abcé\nü".encode())  # é = c3 a9 at bytes 3-4: split by a 4-byte block
    check_text_file(path, entry="corpus_A", how_to_point=HOW)


def test_a_bad_byte_after_a_split_character_keeps_its_file_offset(tmp_path, monkeypatch):
    monkeypatch.setattr(text_files, "_BLOCK", 4)
    path = tmp_path / "split-bad.txt"
    path.write_bytes(b"abc\xc3\xa9\n\xff!")  # 0xff at byte 6, line 2
    assert "at byte 6 (line 2)" in check(path)


def test_a_file_that_ends_inside_a_character(tmp_path):
    path = tmp_path / "truncated.txt"
    path.write_bytes(b"ok\n\xe2\x82")  # the first two bytes of a 3-byte euro sign at byte 3
    assert "the bytes b'\\xe2\\x82' at byte 3 (line 2)" in check(path)


def test_a_directory_and_a_missing_file(tmp_path):
    (tmp_path / "texts").mkdir()
    message = check(tmp_path / "texts")
    assert "is a directory; a corpus is one text file" in message
    assert f"cat {tmp_path / 'texts'}/*.txt > corpus.txt" in message
    message = check(tmp_path / "nowhere.txt")
    assert f"The file {tmp_path / 'nowhere.txt'} of corpus_A (dataset A) does not exist" in message
