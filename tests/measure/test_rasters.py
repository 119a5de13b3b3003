"""Raster files: positioned block writes, X derivation, coverage and integrity checks (SPEC §5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avalanche_kedro.analysis.lattice import RasterError, branching
from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.measure.rasters import (
    A_FILE,
    COND_FILE,
    META_FILE,
    SEQ_FILE,
    X_FILE,
    EventRasters,
    RasterWriter,
    check_raster_arrays,
)

C, N, L, T = 3, 5, 2, 4


def _counts(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 4, size=(C, N, L, T)).astype(np.uint16)
    A[A == 3] = 0  # plenty of empty sites
    A[1, 2, 1, 3] = 65535  # full uint16 range survives
    A[2, 4, 0, 0] = 300
    return A


def _write_all(directory, A, cond_ids=(7, 3, 11), seq_ids=(40, 2, 17, 9, 5)):
    writer = RasterWriter(directory, list(cond_ids), list(seq_ids), L, T)
    # each row split into different window blocks, rows and blocks in scrambled order
    blocks = [
        (2, 3, 5),
        (0, 1, 5),
        (1, 0, 2),
        (2, 0, 1),
        (0, 0, 1),
        (1, 2, 5),
        (2, 1, 3),
    ]
    for row, start, stop in blocks:
        writer.write(row, start, A[row, start:stop])
    return writer


def test_writer_blocks_in_any_order_and_finalize(tmp_path):
    A = _counts()
    writer = _write_all(tmp_path / "r", A)
    rasters = writer.finalize()
    np.testing.assert_array_equal(np.asarray(rasters.A), A)
    assert rasters.A.dtype == np.uint16 and rasters.A.shape == (C, N, L, T)
    expected_x = (A > 0).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(rasters.X), expected_x)
    assert rasters.X.dtype == np.uint8
    assert rasters.X[1, 2, 1, 3] == 1 and rasters.X[2, 4, 0, 0] == 1
    np.testing.assert_array_equal(rasters.cond_id, [7, 3, 11])
    np.testing.assert_array_equal(rasters.seq_id, [40, 2, 17, 9, 5])
    assert rasters.cond_id.dtype == np.int32 and rasters.seq_id.dtype == np.int32
    meta = json.loads((tmp_path / "r" / META_FILE).read_text())
    assert meta["shape"] == [C, N, L, T]
    assert meta["axes"] == ["condition", "window", "layer", "token"]
    assert meta["n_layers"] == L and meta["n_tokens"] == T
    # the files are plain .npy arrays
    np.testing.assert_array_equal(np.load(tmp_path / "r" / A_FILE), A)
    np.testing.assert_array_equal(np.load(tmp_path / "r" / X_FILE), expected_x)
    # reopening and lookups by cond_id
    reopened = EventRasters.open(tmp_path / "r")
    assert reopened.n_conditions == 3
    np.testing.assert_array_equal(reopened.counts(3), A[1])
    np.testing.assert_array_equal(reopened.occupancy(11), expected_x[2])
    with pytest.raises(KeyError):
        reopened.index_of(99)


def test_writer_overwriting_a_block_keeps_the_last_write(tmp_path):
    A = _counts(1)
    writer = _write_all(tmp_path / "r", A)
    writer.write(0, 1, np.full((2, L, T), 9, dtype=np.uint16))
    rasters = writer.finalize()
    expected = A.copy()
    expected[0, 1:3] = 9
    np.testing.assert_array_equal(np.asarray(rasters.A), expected)


def test_writer_incomplete_coverage_raises(tmp_path):
    A = _counts()
    writer = RasterWriter(tmp_path / "r", [0, 1, 2], [0, 1, 2, 3, 4], L, T)
    writer.write(0, 0, A[0])
    writer.write(1, 0, A[1])
    writer.write(2, 0, A[2, :3])  # windows 3 and 4 of row 2 never written
    with pytest.raises(ArtifactError, match=r"\[2, 3\]"):
        writer.finalize()


def test_writer_rejects_wrong_block_shape_and_existing_directory(tmp_path):
    writer = RasterWriter(tmp_path / "r", [0], [0, 1], L, T)
    with pytest.raises(ValueError):
        writer.write(0, 0, np.zeros((2, L, T + 1), dtype=np.uint16))
    writer.abort()
    assert not (tmp_path / "r").exists()
    # an existing raster is never overwritten
    _write_all(tmp_path / "taken", _counts()).finalize()
    before = (tmp_path / "taken" / A_FILE).read_bytes()
    with pytest.raises((ArtifactError, FileExistsError)):
        RasterWriter(tmp_path / "taken", [0], [0], L, T)
    assert (tmp_path / "taken" / A_FILE).read_bytes() == before


def _finalized(tmp_path):
    _write_all(tmp_path / "r", _counts()).finalize()
    return tmp_path / "r"


@pytest.mark.parametrize("name", [A_FILE, X_FILE])
@pytest.mark.parametrize(
    "cut",
    [
        7,  # data cut short: the memory map cannot be sized
        "header",  # header cut in the middle
        "all",  # zero-byte file (crashed write)
    ],
)
def test_open_truncated_array_raises(tmp_path, name, cut):
    directory = _finalized(tmp_path)
    path = directory / name
    data = path.read_bytes()
    keep = {7: len(data) - 7, "header": 60, "all": 0}[cut]
    path.write_bytes(data[:keep])
    with pytest.raises(ArtifactError):
        EventRasters.open(directory)


@pytest.mark.parametrize("name", [COND_FILE, SEQ_FILE])
def test_open_truncated_key_file_raises(tmp_path, name):
    directory = _finalized(tmp_path)
    path = directory / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4])
    with pytest.raises(ArtifactError):
        EventRasters.open(directory)


def test_open_missing_file_raises(tmp_path):
    directory = _finalized(tmp_path)
    (directory / SEQ_FILE).unlink()
    with pytest.raises(ArtifactError, match="seq_id.npy"):
        EventRasters.open(directory)


def test_open_shape_disagreeing_with_metadata_raises(tmp_path):
    directory = _finalized(tmp_path)
    meta = json.loads((directory / META_FILE).read_text())
    meta["shape"] = [C, N, L, T + 1]
    (directory / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="metadata"):
        EventRasters.open(directory)


def test_open_wrong_dtype_cond_id_file_raises(tmp_path):
    directory = _finalized(tmp_path)
    np.save(directory / COND_FILE, np.array([7, 3, 11], dtype=np.int64))
    with pytest.raises(ArtifactError, match="cond_id"):
        EventRasters.open(directory)


def _valid():
    A = _counts()
    return {
        "A": A,
        "X": (A > 0).astype(np.uint8),
        "cond_id": np.arange(C, dtype=np.int32),
        "seq_id": np.arange(N, dtype=np.int32),
    }


@pytest.mark.parametrize(
    ("field", "bad", "named"),
    [
        ("A", _counts().astype(np.int32), "Raster A"),
        ("A", _counts()[0], "Raster A"),  # rank 3
        ("X", (_counts() > 0), "Raster X"),  # bool, not uint8
        ("X", (_counts() > 0).astype(np.uint8)[:, :2], "Raster X"),  # wrong shape
        ("cond_id", np.arange(C, dtype=np.int64), "cond_id"),
        ("cond_id", np.arange(C + 1, dtype=np.int32), "cond_id"),
        ("seq_id", np.arange(N, dtype=np.uint32), "seq_id"),
        ("seq_id", np.arange(N - 1, dtype=np.int32), "seq_id"),
    ],
)
def test_wrong_dtype_or_rank_names_the_array(field, bad, named):
    arrays = _valid()
    check_raster_arrays(**arrays)  # the valid set passes
    arrays[field] = bad
    with pytest.raises(ArtifactError, match=named):
        check_raster_arrays(**arrays)
    with pytest.raises(ArtifactError, match=named):
        EventRasters(**arrays)


# --------------------------------------------------------------------------------------------
# axes and layer count


def test_reopened_raster_carries_axes_and_counts(tmp_path):
    directory = _finalized(tmp_path)
    rasters = EventRasters.open(directory)
    assert rasters.axes == ("condition", "window", "layer", "token")
    assert EventRasters.axes == rasters.axes  # a class constant, not per instance
    assert (rasters.n_conditions, rasters.n_windows, rasters.n_layers, rasters.n_tokens) == (
        3,
        5,
        2,
        4,
    )
    # one condition is [N, L, T] = [5, 2, 4]
    assert rasters.counts(7).shape == (5, 2, 4)
    assert rasters.occupancy(7).shape == (5, 2, 4)


def test_raster_json_of_the_older_spelling_still_opens(tmp_path):
    """raster.json written before the axis names were spelled out: single letters and no
    n_layers / n_tokens (framework/datasets.py still writes this for in-memory rasters)."""
    directory = _finalized(tmp_path)
    (directory / META_FILE).write_text(
        json.dumps({"shape": [C, N, L, T], "axes": ["C", "N", "L", "T"]}, indent=2)
    )
    rasters = EventRasters.open(directory)
    assert rasters.n_layers == 2 and rasters.n_tokens == 4
    np.testing.assert_array_equal(rasters.counts(3), _counts()[1])
    # no axes at all is accepted too
    (directory / META_FILE).write_text(json.dumps({"shape": [C, N, L, T]}))
    assert EventRasters.open(directory).n_layers == 2


def test_unknown_axis_names_are_refused(tmp_path):
    directory = _finalized(tmp_path)
    meta = json.loads((directory / META_FILE).read_text())
    meta["axes"] = ["condition", "window", "token", "layer"]
    (directory / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError) as info:
        EventRasters.open(directory)
    message = str(info.value)
    assert "['condition', 'window', 'token', 'layer']" in message
    assert "[condition, window, layer, token]" in message


def test_stored_layer_count_contradicting_a_swapped_array_is_refused(tmp_path):
    """A.npy holding [C, N, T, L] (4 tokens, 2 layers swapped) while raster.json says the
    model has 2 layers of 4 tokens: refused, naming the swap and the fix."""
    directory = _finalized(tmp_path)
    swapped = np.ascontiguousarray(np.swapaxes(_counts(), 2, 3))  # [3, 5, 4, 2]
    np.save(directory / A_FILE, swapped)
    np.save(directory / X_FILE, (swapped > 0).astype(np.uint8))
    meta = json.loads((directory / META_FILE).read_text())
    meta["shape"] = [C, N, T, L]  # the shape entry alone agrees with the swapped file
    (directory / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError) as info:
        EventRasters.open(directory)
    message = str(info.value)
    assert "[3, 5, 4, 2]" in message
    assert "n_layers = 2" in message
    assert "look swapped" in message
    assert "np.swapaxes(A, 2, 3)" in message


def test_stored_layer_count_of_another_model_is_refused_without_a_swap_hint(tmp_path):
    directory = _finalized(tmp_path)
    meta = json.loads((directory / META_FILE).read_text())
    meta["n_layers"] = 7
    (directory / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ArtifactError) as info:
        EventRasters.open(directory)
    message = str(info.value)
    assert "n_layers = 7" in message and "[3, 5, 2, 4]" in message
    assert "swap" not in message


def test_n_layers_of_the_reader_makes_the_analysis_refuse_a_transposed_condition(tmp_path):
    rasters = EventRasters.open(_finalized(tmp_path))
    counts = np.asarray(rasters.counts(7))  # [5, 2, 4]
    assert branching(counts, n_layers=rasters.n_layers) == branching(counts)
    with pytest.raises(RasterError, match=r"transpose\(0, 2, 1\)"):
        branching(counts.transpose(0, 2, 1), n_layers=rasters.n_layers)
