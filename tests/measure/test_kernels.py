"""The compiled one-read kernels: hand-computed masks, z bits, counts and peaks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from avalanche_kedro.measure.kernels import (
    count_outside_events,
    host_sites,
    outside_values,
)

NAN, INF = np.float32(np.nan), np.float32(np.inf)


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def table(lo, hi, mu, den) -> np.ndarray:
    """A layer's [4, d_ff] unit table (rows lo, hi, mu, den), as UnitBounds.host_table."""
    return np.ascontiguousarray(np.stack([lo, hi, mu, den]), dtype=np.float32)


def sites(rows: np.ndarray) -> np.ndarray:
    """[sites, d_ff] rows as the kernels' [1, sites, d_ff]."""
    return rows[None]


def test_outside_values_keeps_exactly_what_lies_beyond_the_bounds_with_exact_z():
    # d_ff = 11: one full eight-byte word and a partial one
    lo, hi = f32([-1.0] * 11), f32([2.0] * 11)
    mu, den = f32([0.5] * 11), f32([3.0] * 11)
    rows = np.zeros((2, 11), np.float32)
    rows[0, 0] = 2.0  # on hi: inside
    rows[0, 3] = np.nextafter(np.float32(2.0), INF)  # just above hi: kept
    rows[0, 10] = -1.0  # on lo: inside
    rows[1, 1] = np.nextafter(np.float32(-1.0), -INF)  # just below lo: kept
    rows[1, 8] = NAN  # fails both comparisons: kept for the finite guard
    rows[1, 9] = -INF
    z, peak = outside_values(sites(rows), table(lo, hi, mu, den))
    assert z.dtype == np.float32
    kept = [3, 11 + 1, 11 + 8, 11 + 9]  # exactly these, in row-major order
    expected = (rows.reshape(-1)[kept] - np.float32(0.5)) / np.float32(3.0)  # numpy's fp32 z
    np.testing.assert_array_equal(z.view(np.int32), expected.view(np.int32))
    assert np.isnan(z[2]) and z[3] == -INF
    assert np.isnan(peak)  # one z is NaN
    rows[1, 8] = rows[1, 9] = 0.0  # without them the peak is the largest |z| kept
    values, peak = outside_values(sites(rows), table(lo, hi, mu, den))
    assert values.size == 2 and peak == np.abs(values).max() == abs(values[1])


def test_outside_values_of_a_batch_inside_its_bounds_is_empty():
    rows = np.zeros((3, 5), np.float32)
    z, peak = outside_values(sites(rows), table([-1] * 5, [1] * 5, [0] * 5, [1] * 5))
    assert z.size == 0 and peak == 0.0


def test_count_outside_events_counts_each_threshold_per_site_by_hand():
    # bounds of |z| > 1 around mu = 0, den = 2: lo = -2, hi = 2; z = u / 2
    d_ff = 9
    lo, hi = f32([-2.0] * d_ff), f32([2.0] * d_ff)
    mu, den = f32([0.0] * d_ff), f32([2.0] * d_ff)
    rows = np.zeros((3, d_ff), np.float32)
    rows[0, [0, 4, 8]] = [3.0, 5.0, -7.0]  # z = 1.5, 2.5, -3.5
    rows[1, 2] = 2.0  # on hi: z = 1.0 is not counted anywhere
    rows[2, [1, 7]] = [-4.5, 9.0]  # z = -2.25, 4.5
    taus = f32([[1.2, 2.0], [1.2, 3.0]])  # [S = 2 (one-sided, two-sided), R = 2]
    two_sided = np.array([False, True])
    counts = np.full((4, 1, 3), -7, np.int32)  # whatever the buffer held is overwritten
    peak = count_outside_events(sites(rows), table(lo, hi, mu, den), taus, two_sided, counts)
    # one-sided (z > tau): site 0 has 1.5, 2.5; site 2 has 4.5
    # two-sided (|z| > tau): site 0 has 1.5, 2.5, 3.5 above 1.2 and 3.5 above 3; site 2 both
    assert counts[:, 0].tolist() == [[2, 0, 1], [1, 0, 1], [3, 0, 2], [1, 0, 1]]
    assert peak == np.float32(4.5)


def test_count_outside_events_fills_a_layer_slice_of_a_raster_buffer_in_place():
    """Site b T + t lands at [:, b, t] of a strided view: one layer of [S*R, B, L, T]."""
    rng = np.random.default_rng(3)
    n_b, n_l, n_t, d_ff = 3, 4, 5, 16
    mu, den = f32(rng.normal(0, 0.1, d_ff)), f32(rng.uniform(0.5, 2.0, d_ff))
    lo, hi = (mu - den).astype(np.float32), (mu + den).astype(np.float32)
    rows = f32(rng.normal(0.0, 1.5, (n_b * n_t, d_ff)) * den + mu)
    taus = f32([[1.0, 2.0]])
    buffer = np.full((2, n_b, n_l, n_t), -1, np.int32)
    u = rows.reshape(n_b, n_t, d_ff)
    count_outside_events(u, table(lo, hi, mu, den), taus, np.array([True]), buffer[:, :, 2])
    z = np.abs((rows - mu) / den)
    for r, tau in enumerate(taus[0]):
        expected = (z > tau).sum(axis=1).reshape(n_b, n_t)
        np.testing.assert_array_equal(buffer[r, :, 2], expected)
    untouched = np.delete(buffer, 2, axis=2)
    assert (untouched == -1).all()  # the other layers of the buffer are left alone


@pytest.mark.parametrize("nan_at", [0, 5])
def test_count_outside_events_peak_stays_nan_once_a_z_is_nan(nan_at):
    d_ff = 6
    rows = np.zeros((2, d_ff), np.float32)
    rows[0, nan_at] = NAN
    rows[1, 3] = 100.0  # a later finite peak must not hide the NaN
    units = table([-1] * d_ff, [1] * d_ff, [0] * d_ff, [1] * d_ff)
    counts = np.zeros((1, 1, 2), np.int32)
    peak = count_outside_events(sites(rows), units, f32([[2.0]]), np.array([True]), counts)
    assert np.isnan(peak)
    assert counts[:, 0].tolist() == [[0, 1]]  # NaN exceeds nothing


def test_count_outside_events_with_nothing_kept_has_peak_zero_and_no_counts():
    rows = np.ones((4, 16), np.float32)
    counts = np.full((2, 2, 2), 5, np.int32)
    units = table([-2] * 16, [2] * 16, [0] * 16, [1] * 16)
    u = rows.reshape(2, 2, 16)
    peak = count_outside_events(u, units, f32([[2.0], [2.0]]), np.array([False, True]), counts)
    assert peak == 0.0 and not counts.any()


def test_host_sites_keeps_a_hooks_three_axes_and_copies_only_what_it_must():
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    u = host_sites(values, 4)
    assert u.shape == (2, 3, 4) and np.shares_memory(u, values)
    flat = host_sites(values.reshape(6, 4), 4)  # any other shape: [1, sites, d_ff]
    assert flat.shape == (1, 6, 4) and np.shares_memory(flat, values)
    transposed = values.transpose(1, 0, 2)  # logical row-major order is kept
    u = host_sites(transposed, 4)
    assert u.flags.c_contiguous and not np.shares_memory(u, values)
    np.testing.assert_array_equal(u, transposed)
    assert host_sites(values.astype(np.float64), 4).dtype == np.float32


def test_the_kernels_refuse_shapes_that_do_not_fit_u():
    """They run without bounds checks, so every shape is checked before the loops."""
    u = np.zeros((2, 3, 4), np.float32)
    units = table([-1] * 4, [1] * 4, [0] * 4, [1] * 4)
    taus, flags = f32([[1.0, 2.0]]), np.array([True])
    with pytest.raises(ValueError, match="unit table"):
        outside_values(u, units[:, :3].copy())
    with pytest.raises(ValueError, match="counts must be"):
        count_outside_events(u, units, taus, flags, np.zeros((2, 3, 2), np.int32))
    with pytest.raises(ValueError, match="counts must be"):
        count_outside_events(u, units, taus, flags, np.zeros((1, 2, 3), np.int32))
    with pytest.raises(ValueError, match="counts must be"):
        count_outside_events(u, units, taus, np.array([True, False]), np.zeros((2, 2, 3), np.int32))


@pytest.mark.parametrize("d_ff", [1, 7, 8, 9, 16, 20, 33])
@pytest.mark.parametrize("kept_share", [0.03, 0.5, 1.0])
def test_kernels_equal_numpy_at_every_byte_position_of_a_mask_word(d_ff, kept_share):
    """Kept entries are found by the trailing zero bits of each 8-byte mask word: every byte
    position, several kept entries in one word, full and partial words, and rows where every
    entry is kept give numpy's z (bit for bit, row-major order) and per-site counts."""
    rng = np.random.default_rng(d_ff)
    n_sites = 50
    mu = rng.normal(0.0, 0.1, d_ff).astype(np.float32)
    den = rng.uniform(0.5, 2.0, d_ff).astype(np.float32)
    lo, hi = (mu - np.float32(1.5) * den).astype(np.float32), (mu + den).astype(np.float32)
    inside = rng.uniform(lo, hi, (n_sites, d_ff)).astype(np.float32)
    outside = np.where(rng.random((n_sites, d_ff)) < 0.5, hi + den * 3, lo - den * 3)
    rows = np.where(rng.random((n_sites, d_ff)) < kept_share, outside, inside).astype(np.float32)
    rows += rng.normal(0.0, 0.3, rows.shape).astype(np.float32) * (rows != inside)
    kept = (rows < lo) | (rows > hi)
    z_all = (rows - mu) / den  # numpy's fp32 z, the same two roundings
    z, peak = outside_values(sites(rows), table(lo, hi, mu, den))
    np.testing.assert_array_equal(z.view(np.int32), z_all[kept].view(np.int32))
    assert peak == (np.abs(z_all[kept]).max() if kept.any() else 0.0)
    taus = f32([[1.0, 2.5, 4.0], [1.6, 3.0, 5.0]])
    two_sided = np.array([False, True])
    counts = np.zeros((6, 1, n_sites), np.int32)
    count_outside_events(sites(rows), table(lo, hi, mu, den), taus, two_sided, counts)
    counts = counts[:, 0]
    for s, values in enumerate((z_all, np.abs(z_all))):
        for r in range(3):
            expected = ((values > taus[s, r]) & kept).sum(axis=1)
            np.testing.assert_array_equal(counts[s * 3 + r], expected)


def random_layer(seed: int, shape, kept_share: float = 0.02):
    """u [B, T, d_ff] around random moments, about ``kept_share`` of it outside the bounds."""
    rng = np.random.default_rng(seed)
    d_ff = shape[-1]
    mu = rng.normal(0.0, 0.1, d_ff).astype(np.float32)
    den = rng.uniform(0.5, 2.0, d_ff).astype(np.float32)
    u = (mu + den * rng.standard_t(4, shape)).astype(np.float32)
    edge = np.float32(np.quantile(np.abs((u - mu) / den), 1 - kept_share))
    lo, hi = (mu - edge * den).astype(np.float32), (mu + edge * den).astype(np.float32)
    return u, table(lo, hi, mu, den)


@pytest.mark.parametrize("shape", [(3, 7, 40), (1, 5, 9), (2, 1, 33), (4, 64, 48)])
@pytest.mark.parametrize("threads", [2, 3])
def test_the_parallel_scan_equals_the_one_thread_scan_bit_for_bit(shape, threads):
    """Ranges of sites split across threads (also where a range is empty or splits a
    window): the same z in the same order, the same counts and the same peak."""
    u, units = random_layer(sum(shape), shape)
    z1, peak1 = outside_values(u, units)
    z2, peak2 = outside_values(u, units, threads=threads)
    assert z1.size > 0 and z1.tobytes() == z2.tobytes() and peak1 == peak2
    taus, flags = f32([[1.0, 1.5], [1.2, 2.0]]), np.array([False, True])
    counts1 = np.zeros((4, *shape[:2]), np.int32)
    counts2 = np.full((4, *shape[:2]), -1, np.int32)
    assert count_outside_events(u, units, taus, flags, counts1) == count_outside_events(
        u, units, taus, flags, counts2, threads=threads
    )
    np.testing.assert_array_equal(counts1, counts2)


def test_a_nan_in_any_threads_range_makes_the_parallel_peak_nan():
    u, units = random_layer(5, (4, 8, 16))
    u[3, 7, 2] = NAN  # in the last thread's range
    _, peak = outside_values(u, units, threads=2)
    assert np.isnan(peak)
    counts = np.zeros((1, 4, 8), np.int32)
    assert np.isnan(count_outside_events(u, units, f32([[1.0]]), np.array([True]), counts, 2))


def test_the_scans_use_one_thread_in_a_forked_child_and_off_openmp(monkeypatch):
    """numba terminates a forked child that launches GNU OpenMP work its parent launched, and
    a threading layer other than OpenMP would not share torch's threads."""
    from avalanche_kedro.measure import kernels

    monkeypatch.setattr(kernels, "parallel_state", {"pid": -1})  # launched by another process
    assert kernels._threads_for(2) == 1
    monkeypatch.setattr(kernels, "parallel_state", {"disabled": True})
    assert kernels._threads_for(2) == 1
    monkeypatch.setattr(kernels, "parallel_state", {})
    assert kernels._threads_for(1) == 1
    assert kernels._threads_for(2) == min(2, kernels.numba.config.NUMBA_NUM_THREADS)
    u, units = random_layer(8, (2, 4, 16))
    kernels.outside_values(u, units, threads=2)  # the first launch records numba's layer
    state = kernels.parallel_state
    assert state["pid"] == os.getpid() and state["disabled"] == (state["layer"] != "omp")
