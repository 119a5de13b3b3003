"""Window bootstrap with paired resampling (SPEC §7).

Replicate statistics are recomputed here by explicitly concatenating the resampled windows
(loops), and percentiles by hand-written linear interpolation, then compared with the
vectorised weights used by the project.
"""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.bootstrap import (
    CI_PERCENTILES,
    DEFAULT_REPLICATES,
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
    susceptibility_replicates,
)
from avalanche_kedro.analysis.lattice import branching_counts, susceptibility, window_totals
from avalanche_kedro.analysis.nulls import within_layer_permutation
from avalanche_kedro.core.seeds import seed_of
from tests.analysis.hand import hand_percentile

KEY = "A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL"


# --------------------------------------------------------------------------------------------
# indices and weights


def test_spec_defaults():
    assert DEFAULT_REPLICATES == 500
    assert CI_PERCENTILES == (2.5, 97.5)


def test_bootstrap_indices_follow_the_seed_rule():
    got = bootstrap_indices(7, 50, KEY)
    expected = np.random.default_rng(seed_of("boot", KEY)).integers(0, 7, size=(50, 7))
    assert got.shape == (50, 7)
    np.testing.assert_array_equal(got, expected)
    assert got.min() >= 0 and got.max() <= 6
    np.testing.assert_array_equal(bootstrap_indices(7, 50, KEY), got)  # deterministic
    other = bootstrap_indices(7, 50, KEY.replace("MLP_GLOBAL", "NONE"))
    assert not np.array_equal(other, got)


def test_bootstrap_indices_reject_empty_requests():
    with pytest.raises(ValueError):
        bootstrap_indices(0, 10, KEY)
    with pytest.raises(ValueError):
        bootstrap_indices(5, 0, KEY)


def test_resample_weights_count_draws_per_window():
    indices = np.array([[0, 0, 2], [1, 2, 1], [2, 2, 2]])
    W = resample_weights(indices, 3)
    assert W.tolist() == [[2, 0, 1], [0, 2, 1], [0, 0, 3]]
    indices = bootstrap_indices(9, 40, KEY)
    W = resample_weights(indices, 9)
    assert W.shape == (40, 9)
    assert (W.sum(axis=1) == 9).all()
    for b in range(40):
        assert W[b].tolist() == np.bincount(indices[b], minlength=9).tolist()


# --------------------------------------------------------------------------------------------
# pooled ratios


def test_pooled_ratio_equals_explicit_resampled_sums():
    num = np.array([3, 0, 5, 2, 7])
    den = np.array([4, 1, 9, 2, 8])
    indices = bootstrap_indices(5, 20, KEY)
    got = pooled_ratio(resample_weights(indices, 5), num, den)
    for b in range(20):
        n_sum = sum(int(num[i]) for i in indices[b])
        d_sum = sum(int(den[i]) for i in indices[b])
        assert got[b] == pytest.approx(n_sum / d_sum, rel=1e-14)
    # a hand example: windows (0, 0, 2) -> (3 + 3 + 5) / (4 + 4 + 9)
    W = resample_weights(np.array([[0, 0, 2]]), 5)
    assert pooled_ratio(W, num, den)[0] == pytest.approx(11 / 17, rel=1e-15)


def test_pooled_ratio_nan_for_all_zero_denominators():
    num = np.array([0, 1, 0])
    den = np.array([0, 2, 0])
    W = resample_weights(np.array([[0, 2, 0], [1, 0, 2], [2, 2, 2]]), 3)
    got = pooled_ratio(W, num, den)
    assert np.isnan(got[0]) and np.isnan(got[2])
    assert got[1] == pytest.approx(1 / 2)


def test_paired_deltas_real_minus_null():
    # per-window branching counts of a real raster and its permutation null, same indices
    rng = np.random.default_rng(11)
    A = rng.integers(0, 3, size=(6, 3, 10)).astype(np.uint16)
    A[rng.random(A.shape) < 0.4] = 0
    null = within_layer_permutation(A, KEY, list(range(6)))
    real_counts, null_counts = branching_counts(A > 0), branching_counts(null > 0)
    indices = bootstrap_indices(6, 200, KEY)
    W = resample_weights(indices, 6)
    delta = pooled_ratio(W, real_counts["n_time"], real_counts["den"]) - pooled_ratio(
        W, null_counts["n_time"], null_counts["den"]
    )
    by_hand = []
    for b in range(200):
        rows = list(indices[b])
        real = sum(int(real_counts["n_time"][i]) for i in rows) / sum(
            int(real_counts["den"][i]) for i in rows
        )
        nul = sum(int(null_counts["n_time"][i]) for i in rows) / sum(
            int(null_counts["den"][i]) for i in rows
        )
        by_hand.append(real - nul)
    np.testing.assert_allclose(delta, by_hand, rtol=0, atol=1e-14)
    low, high = percentile_interval(delta)
    assert low == pytest.approx(hand_percentile(by_hand, 2.5), abs=1e-13)
    assert high == pytest.approx(hand_percentile(by_hand, 97.5), abs=1e-13)
    assert low <= high


# --------------------------------------------------------------------------------------------
# susceptibility


def test_susceptibility_replicates_equal_chi_row_by_row():
    rng = np.random.default_rng(12)
    A = rng.integers(0, 4, size=(8, 2, 5)).astype(np.uint16)
    Y = window_totals(A)
    indices = bootstrap_indices(8, 30, KEY)
    got = susceptibility_replicates(indices, Y)
    assert got.shape == (30,)
    for b in range(30):
        sample = [float(Y[i]) for i in indices[b]]
        mean = sum(sample) / len(sample)
        var = sum((y - mean) ** 2 for y in sample) / len(sample)
        assert got[b] == pytest.approx(var / (mean + 1e-8), rel=1e-12)
        # the same as chi of the resampled raster
        assert got[b] == pytest.approx(susceptibility(A[indices[b]]), rel=1e-12)
    # hand: Y = [2, 4], replicate (0, 1) -> 1/3 ; replicate (0, 0) -> 0
    hand = susceptibility_replicates(np.array([[0, 1], [0, 0]]), [2, 4])
    assert hand[0] == pytest.approx(1 / 3, rel=1e-8) and hand[1] == 0.0


# --------------------------------------------------------------------------------------------
# percentile interval


def test_percentile_interval_ignores_nan_and_matches_numpy():
    values = np.array([5.0, np.nan, 1.0, 3.0, np.nan, 2.0, 4.0, 10.0, np.inf])
    finite = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    low, high = percentile_interval(values)
    assert low == pytest.approx(hand_percentile(finite, 2.5), abs=1e-12)
    assert high == pytest.approx(hand_percentile(finite, 97.5), abs=1e-12)
    # 6 values: rank 0.125 -> 1 + 0.125 * (2 - 1); rank 4.875 -> 5 + 0.875 * (10 - 5)
    assert low == pytest.approx(1.125) and high == pytest.approx(9.375)
    assert (low, high) == tuple(np.percentile(finite, [2.5, 97.5]))
    rng = np.random.default_rng(13)
    sample = rng.normal(size=500)
    assert percentile_interval(sample) == pytest.approx(tuple(np.percentile(sample, [2.5, 97.5])))
    assert isinstance(low, float)


def test_percentile_interval_of_nothing_finite_is_nan():
    for values in ([], [np.nan, np.nan]):
        low, high = percentile_interval(values)
        assert np.isnan(low) and np.isnan(high)
    assert percentile_interval([2.0]) == (2.0, 2.0)
