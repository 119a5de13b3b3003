"""The compiled one-read kernels: hand-computed masks, z bits, counts and peaks."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.measure.kernels import (
    count_outside_events,
    host_rows,
    outside_values,
)

NAN, INF = np.float32(np.nan), np.float32(np.inf)


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


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
    z, peak = outside_values(rows, lo, hi, mu, den)
    assert z.dtype == np.float32
    kept = [3, 11 + 1, 11 + 8, 11 + 9]  # exactly these, in row-major order
    expected = (rows.reshape(-1)[kept] - np.float32(0.5)) / np.float32(3.0)  # numpy's fp32 z
    np.testing.assert_array_equal(z.view(np.int32), expected.view(np.int32))
    assert np.isnan(z[2]) and z[3] == -INF
    assert np.isnan(peak)  # one z is NaN
    rows[1, 8] = rows[1, 9] = 0.0  # without them the peak is the largest |z| kept
    values, peak = outside_values(rows, lo, hi, mu, den)
    assert values.size == 2 and peak == np.abs(values).max() == abs(values[1])


def test_outside_values_of_a_batch_inside_its_bounds_is_empty():
    rows = np.zeros((3, 5), np.float32)
    z, peak = outside_values(rows, f32([-1] * 5), f32([1] * 5), f32([0] * 5), f32([1] * 5))
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
    counts = np.zeros((4, 3), np.int32)
    peak = count_outside_events(rows, lo, hi, mu, den, taus, two_sided, counts)
    # one-sided (z > tau): site 0 has 1.5, 2.5; site 2 has 4.5
    # two-sided (|z| > tau): site 0 has 1.5, 2.5, 3.5 above 1.2 and 3.5 above 3; site 2 both
    assert counts.tolist() == [[2, 0, 1], [1, 0, 1], [3, 0, 2], [1, 0, 1]]
    assert peak == np.float32(4.5)
    # counts are added to, so a caller can accumulate
    count_outside_events(rows, lo, hi, mu, den, taus, two_sided, counts)
    assert counts[2].tolist() == [6, 0, 4]


@pytest.mark.parametrize("nan_at", [0, 5])
def test_count_outside_events_peak_stays_nan_once_a_z_is_nan(nan_at):
    d_ff = 6
    rows = np.zeros((2, d_ff), np.float32)
    rows[0, nan_at] = NAN
    rows[1, 3] = 100.0  # a later finite peak must not hide the NaN
    args = (f32([-1] * d_ff), f32([1] * d_ff), f32([0] * d_ff), f32([1] * d_ff))
    counts = np.zeros((1, 2), np.int32)
    peak = count_outside_events(rows, *args, f32([[2.0]]), np.array([True]), counts)
    assert np.isnan(peak)
    assert counts.tolist() == [[0, 1]]  # NaN exceeds nothing


def test_count_outside_events_with_nothing_kept_has_peak_zero_and_no_counts():
    rows = np.ones((4, 16), np.float32)
    counts = np.zeros((2, 4), np.int32)
    args = (f32([-2] * 16), f32([2] * 16), f32([0] * 16), f32([1] * 16))
    peak = count_outside_events(rows, *args, f32([[2.0], [2.0]]), np.array([False, True]), counts)
    assert peak == 0.0 and not counts.any()


def test_host_rows_is_a_view_of_contiguous_fp32_and_a_copy_otherwise():
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    rows = host_rows(values, 4)
    assert rows.shape == (6, 4) and np.shares_memory(rows, values)
    transposed = values.transpose(1, 0, 2)  # logical row-major order is kept
    rows = host_rows(transposed, 4)
    assert rows.flags.c_contiguous and not np.shares_memory(rows, values)
    np.testing.assert_array_equal(rows, transposed.reshape(-1, 4))


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
    z, peak = outside_values(rows, lo, hi, mu, den)
    np.testing.assert_array_equal(z.view(np.int32), z_all[kept].view(np.int32))
    assert peak == (np.abs(z_all[kept]).max() if kept.any() else 0.0)
    taus = f32([[1.0, 2.5, 4.0], [1.6, 3.0, 5.0]])
    two_sided = np.array([False, True])
    counts = np.zeros((6, n_sites), np.int32)
    count_outside_events(rows, lo, hi, mu, den, taus, two_sided, counts)
    for s, values in enumerate((z_all, np.abs(z_all))):
        for r in range(3):
            expected = ((values > taus[s, r]) & kept).sum(axis=1)
            np.testing.assert_array_equal(counts[s * 3 + r], expected)
