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


# ---- invariants: counts <= d_ff, X == (A > 0) (issue 20) ----------------------------------------

PROBE_BYTES = 64 * 1024  # the outside probe set the last 64 KiB of A.npy to 0xFF


def _probe_sized(tmp_path, d_ff=100):
    """A raster of 3 rows x 16384 sites (96 KiB of counts after A.npy's 128-byte header): the
    last 64 KiB are the elements from 16384 on, i.e. row 1 onwards, starting at site (1, 0, 0, 0)."""
    shape = (3, 8, 4, 512)
    A = np.random.default_rng(5).integers(0, 3, size=shape).astype(np.uint16)
    A[1, 0, 0, 0] = 0  # so the first bad site is also an X mismatch without d_ff
    writer = RasterWriter(tmp_path / "r", [4, 5, 6], list(range(8)), 4, 512, d_ff=d_ff)
    for row in range(3):
        writer.write(row, 0, A[row])
    return writer.finalize(), A


def _corrupt_like_the_probe(directory):
    path = directory / A_FILE
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size - PROBE_BYTES)
        handle.write(b"\xff" * PROBE_BYTES)
    assert path.stat().st_size == size


def test_d_ff_is_recorded_and_a_clean_raster_passes(tmp_path):
    rasters, A = _probe_sized(tmp_path)
    assert json.loads((tmp_path / "r" / META_FILE).read_text())["d_ff"] == 100
    reopened = EventRasters.open(tmp_path / "r")
    assert reopened.d_ff == 100
    reopened.check_invariants()
    reopened.check_invariants(d_ff=2)  # the largest count is 2
    with pytest.raises(ArtifactError, match=r"exceeds d_ff = 1 "):
        reopened.check_invariants(d_ff=1)


def test_a_raster_corrupted_like_the_probe_is_refused(tmp_path):
    _probe_sized(tmp_path)
    _corrupt_like_the_probe(tmp_path / "r")
    rasters = EventRasters.open(tmp_path / "r")  # the shape is intact, so it opens
    with pytest.raises(ArtifactError) as caught:
        rasters.check_invariants(where="event_rasters_A")
    message = str(caught.value)
    assert str(tmp_path / "r") in message and "event_rasters_A" in message
    assert "A[1, 0, 0, 0] = 65535 exceeds d_ff = 100" in message
    assert "(1, 0, 0, 0)" in message and "cond_id 5" in message and "seq_id 0" in message
    assert "kedro run --pipelines events" in message


def test_an_old_raster_json_without_d_ff_opens_and_its_x_is_still_checked(tmp_path):
    _probe_sized(tmp_path)
    meta = json.loads((tmp_path / "r" / META_FILE).read_text())
    del meta["d_ff"]
    (tmp_path / "r" / META_FILE).write_text(json.dumps(meta))
    rasters = EventRasters.open(tmp_path / "r")
    assert rasters.d_ff is None
    rasters.check_invariants()  # the bound is unknown; X == (A > 0) holds
    _corrupt_like_the_probe(tmp_path / "r")
    with pytest.raises(ArtifactError, match=r"X\[1, 0, 0, 0\] = 0 but A\[1, 0, 0, 0\] = 65535"):
        EventRasters.open(tmp_path / "r").check_invariants()
    # a bound given by the caller is used when raster.json has none
    with pytest.raises(ArtifactError, match=r"exceeds d_ff = 4864"):
        EventRasters.open(tmp_path / "r").check_invariants(d_ff=4864)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, r"X\[2, 3, 1, 7\] = 1 but A\[2, 3, 1, 7\] = 0"),
        (2, r"X\[2, 3, 1, 7\] = 2 is not 0 or 1"),
    ],
)
def test_an_edited_x_is_refused(tmp_path, value, expected):
    _, A = _probe_sized(tmp_path)
    A_zero = A[2, 3, 1, 7] == 0
    X = np.load(tmp_path / "r" / X_FILE, mmap_mode="r+")
    if not A_zero:  # make the site empty in both files first, then edit X only
        A_file = np.load(tmp_path / "r" / A_FILE, mmap_mode="r+")
        A_file[2, 3, 1, 7] = 0
        A_file.flush()
        X[2, 3, 1, 7] = 0
    X[2, 3, 1, 7] = value
    X.flush()
    del X
    with pytest.raises(ArtifactError, match=expected):
        EventRasters.open(tmp_path / "r").check_invariants()


def test_an_in_memory_raster_is_checked_against_its_d_ff():
    A = _counts()
    rasters = EventRasters(
        A=A,
        X=(A > 0).astype(np.uint8),
        cond_id=np.array([7, 3, 11], dtype=np.int32),
        seq_id=np.array([40, 2, 17, 9, 5], dtype=np.int32),
        d_ff=65535,
    )
    rasters.check_invariants()
    with pytest.raises(
        ArtifactError, match=r"\(in memory\).*A\[1, 2, 1, 3\] = 65535 exceeds d_ff = 300"
    ):
        rasters.check_invariants(d_ff=300)


def test_writer_refuses_a_model_of_another_width(tmp_path):
    writer = RasterWriter(tmp_path / "r", [0], [0], L, T, d_ff=64)
    writer.bind_d_ff(64)
    with pytest.raises(ArtifactError, match="d_ff = 128"):
        writer.bind_d_ff(128)
    unbound = RasterWriter(tmp_path / "u", [0], [0], L, T)
    unbound.bind_d_ff(32)
    unbound.write(0, 0, np.ones((1, L, T), dtype=np.uint16))
    assert unbound.finalize().d_ff == 32
