"""Windows, slices, slice hashes and the token-shuffle null input (SPEC §1, §7).

A tiny real tokenizer is built with the ``tokenizers`` library: a whitespace word-level
vocabulary whose post-processor prepends ``[BOS]`` when special tokens are requested, so the
tests can tell whether ``add_special_tokens=False`` was honoured.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from avalanche_kedro.core.errors import ConfigurationError, CorpusError
from avalanche_kedro.core.seeds import seed_of
from avalanche_kedro.measure.windows import (
    TOKENIZE_CHUNK,
    cut_windows,
    iter_text_records,
    select_slices,
    shuffle_window_tokens,
    slice_hash,
    slice_windows,
    tokenize_stream,
    windows_frame,
)

VOCAB = {"[UNK]": 0, "[BOS]": 1, "a": 2, "b": 3, "c": 4, "d": 5, "e": 6}


@pytest.fixture(scope="module")
def word_tokenizer():
    core = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", special_tokens=[("[BOS]", VOCAB["[BOS]"])]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="[BOS]", unk_token="[UNK]")
    # sanity of the fixture itself: BOS only with special tokens
    assert tokenizer("a b")["input_ids"] == [1, 2, 3]
    assert tokenizer("a b", add_special_tokens=False)["input_ids"] == [2, 3]
    return tokenizer


# ---------------------------------------------------------------------------------------------
# tokenize_stream


def test_tokenize_stream_skips_empty_records_and_concatenates(word_tokenizer):
    records = ["a b", "", "   ", None, "c d", "\n", "\t \n", "d a b"]
    stream = tokenize_stream(records, word_tokenizer)
    # by hand: [a b] + [c d] + [d a b], no BOS anywhere
    np.testing.assert_array_equal(stream.ids, [2, 3, 4, 5, 5, 2, 3])
    assert stream.ids.dtype == np.int64
    assert stream.n_records == 3
    assert stream.n_empty_records == 5
    assert stream.complete is True
    assert VOCAB["[BOS]"] not in stream.ids.tolist()


def test_tokenize_stream_tokenizes_each_record_separately(word_tokenizer):
    # "a" and "b" as separate records are two known words; joined text "ab" would be [UNK]
    stream = tokenize_stream(["a", "b", "c"], word_tokenizer)
    np.testing.assert_array_equal(stream.ids, [2, 3, 4])
    assert word_tokenizer("abc", add_special_tokens=False)["input_ids"] == [0]


def test_tokenize_stream_many_records_equals_one_at_a_time(word_tokenizer):
    words = ["a", "b", "c", "d", "e", "zz"]
    rng = np.random.default_rng(0)
    records = []
    for i in range(2 * TOKENIZE_CHUNK + 37):
        if i % 17 == 0:
            records.append("  ")
            continue
        n = int(rng.integers(1, 6))
        records.append(" ".join(words[int(j)] for j in rng.integers(0, len(words), n)))
    expected = []
    for record in records:
        if record.strip():
            expected.extend(VOCAB.get(word, 0) for word in record.split())
    stream = tokenize_stream(records, word_tokenizer)
    np.testing.assert_array_equal(stream.ids, np.asarray(expected, dtype=np.int64))
    assert stream.n_records == sum(1 for r in records if r.strip())
    assert stream.n_empty_records == sum(1 for r in records if not r.strip())
    assert stream.complete


def test_tokenize_stream_stops_early_at_max_tokens(word_tokenizer):
    n_total = 5 * TOKENIZE_CHUNK
    consumed = {"n": 0}

    def records():
        for _ in range(n_total):
            consumed["n"] += 1
            yield "a b c d"

    stream = tokenize_stream(records(), word_tokenizer, max_tokens=100)
    assert stream.ids.size == 100
    np.testing.assert_array_equal(stream.ids, np.tile([2, 3, 4, 5], 25))
    assert stream.complete is False
    # the stream was not read to its end
    assert consumed["n"] < n_total
    assert stream.n_records == consumed["n"]
    assert stream.n_records * 4 >= 100


def test_tokenize_stream_max_tokens_larger_than_corpus_is_complete(word_tokenizer):
    stream = tokenize_stream(["a b", "c"], word_tokenizer, max_tokens=1000)
    np.testing.assert_array_equal(stream.ids, [2, 3, 4])
    assert stream.complete is True


def test_tokenize_stream_empty_corpus(word_tokenizer):
    stream = tokenize_stream(["", " "], word_tokenizer)
    assert stream.ids.size == 0 and stream.ids.dtype == np.int64
    assert stream.n_records == 0 and stream.n_empty_records == 2


def test_tokenize_stream_rejects_non_text_records(word_tokenizer):
    with pytest.raises(CorpusError, match="dict"):
        tokenize_stream(["a", {"text": "b"}], word_tokenizer)


def test_tokenize_stream_with_the_small_model_tokenizer(small_model):
    tokenizer = small_model.tokenizer
    records = ["def f(x):", "", "    return x + 1", "   ", "class A: pass"]
    expected = []
    for record in records:
        if record.strip():
            expected += tokenizer(record, add_special_tokens=False)["input_ids"]
    stream = tokenize_stream(records, tokenizer)
    np.testing.assert_array_equal(stream.ids, expected)
    assert stream.n_records == 3 and stream.n_empty_records == 2


# ---------------------------------------------------------------------------------------------
# cut_windows


def test_cut_windows_drops_the_tail():
    windows = cut_windows(np.arange(11, dtype=np.int64), 3)
    assert windows.shape == (3, 3)
    np.testing.assert_array_equal(windows, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    exact = cut_windows(np.arange(12, dtype=np.int64), 4)
    assert exact.shape == (3, 4)
    np.testing.assert_array_equal(exact[2], [8, 9, 10, 11])


def test_cut_windows_shorter_than_one_window():
    assert cut_windows(np.arange(5, dtype=np.int64), 8).shape == (0, 8)


def test_cut_windows_rejects_tiny_seq_len():
    with pytest.raises(ConfigurationError):
        cut_windows(np.arange(10), 2)


# ---------------------------------------------------------------------------------------------
# select_slices


def _expected_slices(role, pool, sizes):
    rng = np.random.default_rng(seed_of("select", role))
    drawn = rng.choice(pool, sum(sizes.values()), replace=False)
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = np.sort(drawn[start : start + size])
        start += size
    return out


@pytest.mark.parametrize(
    ("n_available", "expected_pool"),
    [(1000, 120), (50, 50), (12, 12)],  # pool = min(available, 10 * 12)
)
def test_select_slices_matches_seeded_draw(n_available, expected_pool):
    sizes = {"calibration": 5, "analysis": 7}
    slices = select_slices(n_available, sizes, "A", 10, "corpus_a")
    expected = _expected_slices("A", expected_pool, sizes)
    assert list(slices) == ["calibration", "analysis"]
    for name in sizes:
        np.testing.assert_array_equal(slices[name], expected[name])
        assert slices[name].size == sizes[name]
        assert np.all(np.diff(slices[name]) > 0)  # sorted, no duplicates
        assert slices[name].max() < expected_pool
        assert slices[name].min() >= 0
    assert set(slices["calibration"]).isdisjoint(slices["analysis"])
    if n_available == expected_pool == 12:
        # every window of the pool is used exactly once
        assert sorted(np.concatenate(list(slices.values())).tolist()) == list(range(12))


def test_select_slices_pool_bound_is_used():
    # with a pool of 120 out of 10_000 windows, no chosen index may reach 120
    slices = select_slices(10_000, {"calibration": 5, "analysis": 7}, "A", 10, "c")
    assert max(int(s.max()) for s in slices.values()) < 120


def test_select_slices_is_deterministic_and_role_seeded():
    sizes = {"calibration": 6, "analysis": 9}
    first = select_slices(500, sizes, "A", 10, "c")
    second = select_slices(500, sizes, "A", 10, "c")
    other = select_slices(500, sizes, "B", 10, "c")
    for name in sizes:
        np.testing.assert_array_equal(first[name], second[name])
    assert any(not np.array_equal(first[n], other[n]) for n in sizes)
    np.testing.assert_array_equal(
        other["calibration"], _expected_slices("B", 150, sizes)["calibration"]
    )


def test_select_slices_single_slice_for_b():
    slices = select_slices(2000, {"eval": 96}, "B", 10, "corpus_b")
    expected = np.sort(np.random.default_rng(seed_of("select", "B")).choice(960, 96, replace=False))
    np.testing.assert_array_equal(slices["eval"], expected)


def test_select_slices_too_few_windows_names_counts_and_corpus():
    with pytest.raises(CorpusError) as info:
        select_slices(11, {"calibration": 5, "analysis": 7}, "A", 10, "my_corpus_a")
    message = str(info.value)
    assert "11" in message
    assert "12" in message
    assert "my_corpus_a" in message
    assert "A" in message


def test_select_slices_rejects_pool_factor_below_one():
    with pytest.raises(ConfigurationError, match="window_pool_factor"):
        select_slices(100, {"calibration": 5, "analysis": 7}, "A", 0, "c")


def test_select_slices_rejects_non_positive_sizes():
    with pytest.raises(ConfigurationError):
        select_slices(100, {"calibration": 0, "analysis": 7}, "A", 10, "c")


# ---------------------------------------------------------------------------------------------
# slice_hash


def test_slice_hash_is_sha256_of_canonical_json():
    windows = np.array([[5, 6, 7], [8, 9, 10]], dtype=np.int64)
    chunks = [3, 11]
    literal = (
        '[{"chunk_index":3,"dataset_role":"A","input_ids":[5,6,7]},'
        '{"chunk_index":11,"dataset_role":"A","input_ids":[8,9,10]}]'
    )
    payload = [
        {"dataset_role": "A", "chunk_index": 3, "input_ids": [5, 6, 7]},
        {"dataset_role": "A", "chunk_index": 11, "input_ids": [8, 9, 10]},
    ]
    assert json.dumps(payload, sort_keys=True, separators=(",", ":")) == literal
    expected = hashlib.sha256(literal.encode("ascii")).hexdigest()
    assert slice_hash("A", chunks, windows) == expected
    # numpy integer types (int32 ids, np.int64 chunks) hash the same
    assert slice_hash("A", np.asarray(chunks), windows.astype(np.int32)) == expected


def test_slice_hash_changes_with_content():
    windows = np.array([[5, 6, 7], [8, 9, 10]])
    base = slice_hash("A", [3, 11], windows)
    assert slice_hash("B", [3, 11], windows) != base
    assert slice_hash("A", [3, 12], windows) != base
    changed = windows.copy()
    changed[1, 2] = 11
    assert slice_hash("A", [3, 11], changed) != base


def test_slice_hash_length_mismatch_fails():
    with pytest.raises(ValueError):
        slice_hash("A", [1, 2, 3], np.zeros((2, 3), dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# windows table round trip


def test_windows_frame_and_slice_windows_round_trip():
    all_windows = np.arange(40, dtype=np.int64).reshape(10, 4)
    slices = {"calibration": np.array([1, 7]), "analysis": np.array([0, 4, 9])}
    frame = windows_frame("A", slices, all_windows)
    ids, seq = slice_windows(frame, "analysis")
    np.testing.assert_array_equal(ids, all_windows[[0, 4, 9]])
    np.testing.assert_array_equal(seq, [0, 4, 9])
    assert ids.dtype == np.int64 and seq.dtype == np.int32
    with pytest.raises(ConfigurationError):
        slice_windows(frame, "eval")


# ---------------------------------------------------------------------------------------------
# shuffle_window_tokens


def _manual_shuffle(row, seq_id, role, special):
    out = row.copy()
    movable = np.array(
        [p for p in range(1, row.size - 1) if int(row[p]) not in set(special)], dtype=np.int64
    )
    order = np.random.default_rng(seed_of("token_shuffle", role, seq_id)).permutation(movable.size)
    out[movable] = row[movable[order]]
    return out


def test_shuffle_window_tokens_properties():
    rng = np.random.default_rng(3)
    n, t = 4, 20
    ids = rng.integers(10, 400, size=(n, t)).astype(np.int64)
    special = [1, 2]
    ids[0, 5] = 1
    ids[0, 9] = 2
    ids[2, 1] = 1
    ids[3, t - 2] = 2
    ids[1, 0] = 2  # special at the first position (fixed anyway)
    seq_ids = np.array([17, 3, 250, 8], dtype=np.int32)
    original = ids.copy()
    shuffled = shuffle_window_tokens(ids, seq_ids, "A", special_ids=special)
    np.testing.assert_array_equal(ids, original)  # input untouched
    assert shuffled.shape == ids.shape and shuffled.dtype == ids.dtype
    np.testing.assert_array_equal(shuffled[:, 0], ids[:, 0])
    np.testing.assert_array_equal(shuffled[:, -1], ids[:, -1])
    special_mask = np.isin(ids, special)
    np.testing.assert_array_equal(shuffled[special_mask], ids[special_mask])
    for row in range(n):
        assert sorted(shuffled[row, 1:-1].tolist()) == sorted(ids[row, 1:-1].tolist())
        expected = _manual_shuffle(ids[row], int(seq_ids[row]), "A", special)
        np.testing.assert_array_equal(shuffled[row], expected)
    assert not np.array_equal(shuffled, ids)
    # deterministic
    np.testing.assert_array_equal(shuffle_window_tokens(ids, seq_ids, "A", special), shuffled)


def test_shuffle_window_tokens_seeded_by_role_and_seq_id_not_row():
    ids = np.tile(np.arange(100, 130, dtype=np.int64), (3, 1))
    # same seq_id in two rows -> same permutation; row position does not matter
    shuffled = shuffle_window_tokens(ids, np.array([5, 9, 5]), "A")
    np.testing.assert_array_equal(shuffled[0], shuffled[2])
    assert not np.array_equal(shuffled[0], shuffled[1])
    alone = shuffle_window_tokens(ids[:1], np.array([5]), "A")
    np.testing.assert_array_equal(alone[0], shuffled[0])
    other_role = shuffle_window_tokens(ids[:1], np.array([5]), "B")
    assert not np.array_equal(other_role[0], alone[0])
    # the permutation is exactly default_rng(seed_of("token_shuffle", "A", 5)).permutation(28)
    perm = np.random.default_rng(seed_of("token_shuffle", "A", 5)).permutation(28)
    np.testing.assert_array_equal(alone[0, 1:-1], ids[0, 1:-1][perm])


def test_shuffle_window_tokens_without_specials_moves_only_inner():
    ids = np.arange(12, dtype=np.int64).reshape(1, 12) + 50
    shuffled = shuffle_window_tokens(ids, np.array([0]), "B")
    assert shuffled[0, 0] == 50 and shuffled[0, -1] == 61
    assert sorted(shuffled[0, 1:-1].tolist()) == list(range(51, 61))


# ---------------------------------------------------------------------------------------------
# iter_text_records


def test_iter_text_records_string_is_one_record_per_line(word_tokenizer):
    text = "a b\n\n c d \nd"
    records = list(iter_text_records(text))
    assert records == ["a b\n", "\n", " c d \n", "d"]
    stream = tokenize_stream(records, word_tokenizer)
    np.testing.assert_array_equal(stream.ids, [2, 3, 4, 5, 5])
    assert stream.n_empty_records == 1


def test_iter_text_records_list_of_dicts_and_strings():
    rows = [{"text": "x", "id": 1}, {"text": "", "id": 2}, {"text": "y z", "id": 3}]
    assert list(iter_text_records(rows)) == ["x", "", "y z"]
    assert list(iter_text_records([{"body": "q"}], text_field="body")) == ["q"]
    assert list(iter_text_records(["p", "q"])) == ["p", "q"]


def test_iter_text_records_missing_field_raises():
    with pytest.raises(CorpusError, match="text"):
        list(iter_text_records([{"content": "x"}]))


def test_iter_text_records_mapping_of_splits_raises():
    with pytest.raises(CorpusError, match="split"):
        list(iter_text_records({"train": ["a"], "validation": ["b"]}))
