"""Target profiles, exact order-statistic thresholds, streaming top-k, verification (SPEC §3-4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from avalanche_kedro.core.errors import ConfigurationError, RateMatchingError
from avalanche_kedro.measure.thresholds import (
    RATE_MATCH_REL_TOL,
    SEED_RELAXATION,
    SPIKE_ONE_SIDED_POS,
    SPIKE_TWO_SIDED_ABS,
    TAU0_BASELINE,
    StreamingTopK,
    baseline_seeds,
    check_spike_defs,
    exceedance_budget,
    fit_layer_thresholds,
    kth_largest,
    order_statistic_threshold,
    rate_tolerance,
    seed_floors,
    seed_relaxation,
    spike_values,
    target_profile,
    topk_capacity,
    verify_rate_matching,
)


def test_constants():
    assert TAU0_BASELINE == 2.5
    assert RATE_MATCH_REL_TOL == 0.05


# ---------------------------------------------------------------------------------------------
# spike definitions and profiles


def test_spike_values():
    z = torch.tensor([-3.0, -0.5, 0.0, 2.0])
    torch.testing.assert_close(spike_values(z, SPIKE_ONE_SIDED_POS), z)
    torch.testing.assert_close(
        spike_values(z, SPIKE_TWO_SIDED_ABS), torch.tensor([3.0, 0.5, 0.0, 2.0])
    )
    with pytest.raises(ConfigurationError):
        spike_values(z, "SPIKE_BOTH")
    assert check_spike_defs([SPIKE_TWO_SIDED_ABS]) == (SPIKE_TWO_SIDED_ABS,)
    with pytest.raises(ConfigurationError):
        check_spike_defs([])
    with pytest.raises(ConfigurationError):
        check_spike_defs([SPIKE_ONE_SIDED_POS, "X"])


def test_target_profile_hand_example():
    profile = target_profile(np.array([0.01, 0.03]), 1e-3)
    # mean(r_base) = 0.02 -> factor 1e-3 / 0.02 = 0.05
    np.testing.assert_allclose(profile, [5e-4, 1.5e-3], rtol=1e-12)
    assert profile.mean() == pytest.approx(1e-3, rel=1e-12)


def test_target_profile_keeps_shape_and_zero_layers():
    r_base = np.array([0.0, 0.002, 0.006, 0.004])  # mean 0.003
    profile = target_profile(r_base, 3e-5)
    np.testing.assert_allclose(profile, [0.0, 2e-5, 6e-5, 4e-5], rtol=1e-12, atol=0)
    assert profile.mean() == pytest.approx(3e-5, rel=1e-12)


def test_target_profile_clips_at_one():
    np.testing.assert_allclose(target_profile([0.0, 0.5], 0.75), [0.0, 1.0])


def test_target_profile_zero_mean_raises():
    with pytest.raises(ConfigurationError, match="mean baseline rate is 0"):
        target_profile(np.zeros(4), 1e-5)


def test_exceedance_budget_and_capacity():
    assert exceedance_budget(1e-3, 12_345) == 12  # floor(12.345)
    assert exceedance_budget(5e-4, 1999) == 0  # floor(0.9995)
    assert exceedance_budget(0.0, 10**9) == 0
    assert exceedance_budget(0.25, 8) == 2
    assert topk_capacity(1e-3, 12_345) == 13
    assert topk_capacity(0.0, 100) == 1
    assert topk_capacity(1.0, 50) == 50  # never more than n
    assert topk_capacity(0.999, 50) == 50


def test_order_statistic_threshold_hand():
    top = np.array([9.0, 8.0, 7.0, 6.0, 5.0], dtype=np.float32)
    assert order_statistic_threshold(top, 0) == 9.0
    assert order_statistic_threshold(top, 1) == 8.0
    assert order_statistic_threshold(top, 2) == 7.0
    assert order_statistic_threshold(top, 4) == 5.0
    with pytest.raises(ValueError):
        order_statistic_threshold(top, 5)


# ---------------------------------------------------------------------------------------------
# fit_layer_thresholds


def test_fit_layer_thresholds_without_ties():
    rng = np.random.default_rng(0)
    values = (rng.permutation(1000) / 10.0).astype(np.float32)  # 0.0 ... 99.9, distinct
    n = values.size
    r_stars = [0.005, 0.01, 0.0, 0.0125]  # m = 5, 10, 0, 12
    k = topk_capacity(max(r_stars), n)
    assert k == 13
    top = np.sort(values)[::-1][:k]
    fits = fit_layer_thresholds(top, n, r_stars)
    expected_tau = {5: 99.4, 10: 98.9, 0: 99.9, 12: 98.7}
    for r_star, fit in zip(r_stars, fits, strict=True):
        m = int(np.floor(r_star * n))
        assert fit["m_budget"] == m
        assert fit["tau"] == pytest.approx(expected_tau[m], abs=1e-4)
        assert fit["tau"] == float(np.sort(values)[::-1][m])
        brute = int(np.count_nonzero(values > np.float32(fit["tau"])))
        assert brute == m  # no ties: exactly the budget
        assert fit["n_exceed_calibration"] == m
        assert fit["achieved_rate_calibration"] == m / n


def test_fit_layer_thresholds_with_ties_at_threshold():
    # descending: 10, 9, 8, 8, 8, 7, then 994 values below 7
    rest = np.linspace(0.0, 6.0, 994)
    values = np.concatenate([[10.0, 9.0, 8.0, 8.0, 8.0, 7.0], rest]).astype(np.float32)
    n = values.size
    top = np.sort(values)[::-1][:7]
    # m = 3: the 4th largest is 8 (tied with the 3rd and 5th) -> count(v > 8) = 2 < 3
    # m = 2: the 3rd largest is 8 -> count(v > 8) = 2 == m
    # m = 4: the 5th largest is 8 -> 2 < 4
    # m = 5: the 6th largest is 7 -> 5 == m
    for m, tau, count in [(3, 8.0, 2), (2, 8.0, 2), (4, 8.0, 2), (5, 7.0, 5), (0, 10.0, 0)]:
        (fit,) = fit_layer_thresholds(top, n, [m / n + 1e-12])
        assert fit["m_budget"] == m
        assert fit["tau"] == tau
        assert fit["n_exceed_calibration"] == count
        assert int(np.count_nonzero(values > fit["tau"])) == count <= m


def test_fit_layer_thresholds_random_ties_never_exceed_budget():
    rng = np.random.default_rng(1)
    for trial in range(30):
        values = rng.integers(0, 12, size=500).astype(np.float32)  # heavy ties
        n = values.size
        desc = np.sort(values)[::-1]
        r_stars = sorted(rng.uniform(0, 0.3, size=3))
        top = desc[: topk_capacity(max(r_stars), n)]
        for r_star, fit in zip(r_stars, fit_layer_thresholds(top, n, r_stars), strict=True):
            m = int(np.floor(r_star * n))
            brute = int(np.count_nonzero(values > fit["tau"]))
            assert brute <= m, trial
            assert brute == fit["n_exceed_calibration"]
            # tau is a data value and the (m+1)-th largest: at least m+1 values >= tau
            assert int(np.count_nonzero(values >= fit["tau"])) >= m + 1
            # as close as ties allow: every value strictly above the next distinct level counts
            assert brute == int(np.count_nonzero(desc > desc[m]))


def test_fit_layer_thresholds_m_zero_is_max():
    values = np.array([1.5, -2.0, 3.25, 0.0], dtype=np.float32)
    (fit,) = fit_layer_thresholds(np.sort(values)[::-1][:1], values.size, [0.2])  # m = 0
    assert fit["tau"] == 3.25
    assert fit["m_budget"] == 0
    assert fit["n_exceed_calibration"] == 0
    assert int(np.count_nonzero(values > fit["tau"])) == 0


# ---------------------------------------------------------------------------------------------
# StreamingTopK


def _feed(top: StreamingTopK, batches):
    for batch in batches:
        top.update(torch.from_numpy(batch))
    return top.result()


@pytest.mark.parametrize("k", [1, 3, 17, 250, 5000])
def test_streaming_topk_equals_sort(k):
    rng = np.random.default_rng(k)
    data = np.concatenate(
        [
            rng.integers(-5, 6, size=1500).astype(np.float32),  # many equal values
            rng.normal(size=1500).astype(np.float32),
            np.full(200, 4.0, dtype=np.float32),
        ]
    )
    rng.shuffle(data)
    expected = np.sort(data)[::-1][:k]
    cuts = np.sort(rng.choice(np.arange(1, data.size), size=40, replace=False))
    batches = np.split(data, cuts)
    batches.insert(5, np.zeros(0, dtype=np.float32))  # an empty batch is harmless
    for order in (
        range(len(batches)),
        reversed(range(len(batches))),
        rng.permutation(len(batches)),
    ):
        top = StreamingTopK(k)
        result = _feed(top, [batches[i] for i in order])
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, expected)
        assert top.n_seen == data.size


def test_streaming_topk_two_dimensional_batches_and_all_equal():
    top = StreamingTopK(4)
    top.update(torch.full((3, 5), 2.0))
    top.update(torch.full((2, 2), 2.0))
    np.testing.assert_array_equal(top.result(), [2.0, 2.0, 2.0, 2.0])
    top.update(torch.tensor([[1.0, 3.0], [2.5, 2.0]]))
    np.testing.assert_array_equal(top.result(), [3.0, 2.5, 2.0, 2.0])
    assert top.n_seen == 15 + 4 + 4


def test_streaming_topk_fewer_values_than_k():
    top = StreamingTopK(10)
    top.update(torch.tensor([0.5, -1.0]))
    top.update(torch.tensor([7.0]))
    np.testing.assert_array_equal(top.result(), [7.0, 0.5, -1.0])
    assert StreamingTopK(3).result().size == 0
    with pytest.raises(ValueError):
        StreamingTopK(0)


def test_streaming_topk_feeds_exact_thresholds():
    rng = np.random.default_rng(7)
    data = np.round(rng.standard_t(3, size=20_000), 1).astype(np.float32)  # heavy tail, ties
    n = data.size
    r_stars = [1e-4, 5e-4, 2e-3]
    top = StreamingTopK(topk_capacity(max(r_stars), n))
    for batch in np.array_split(data, 13):
        top.update(torch.from_numpy(batch))
    desc = np.sort(data)[::-1]
    for r_star, fit in zip(r_stars, fit_layer_thresholds(top.result(), n, r_stars), strict=True):
        m = int(np.floor(r_star * n))
        assert fit["tau"] == float(desc[m])
        assert fit["n_exceed_calibration"] == int(np.count_nonzero(data > fit["tau"])) <= m


def test_streaming_topk_entry_threshold_is_a_host_float():
    top = StreamingTopK(2)
    assert top.entry_threshold() is None
    top.update(torch.tensor([1.0, 5.0, 3.0]))  # k values kept: cut to {5, 3}
    assert top.entry_threshold() == 3.0 and isinstance(top.entry_threshold(), float)
    assert StreamingTopK(2, seed=1.5).entry_threshold() == 1.5


def test_seeded_streaming_topk_drops_values_at_or_below_the_seed():
    """k = 3, seed 2: the values 0, 1, 2 never enter the pool; 5, 4, 3 are the top 3."""
    top = StreamingTopK(3, seed=2.0)
    top.update(torch.tensor([0.0, 5.0, 2.0, 1.0]))
    assert top.n_pooled == 1  # only 5 > 2
    top.update(torch.tensor([4.0, 3.0, 2.0]))
    assert top.complete()
    np.testing.assert_array_equal(top.result(), [5.0, 4.0, 3.0])
    assert top.n_seen == 7


def test_seeded_streaming_topk_detects_a_seed_above_the_kth_largest():
    """The 3rd largest is 2.0: a seed of 2.0 (ties at the seed are dropped) or above leaves
    fewer than k values, the result would be incomplete, and result() refuses it."""
    data = torch.tensor([5.0, 2.0, 1.0, 4.0, 2.0, 0.5])
    for seed in (2.0, 4.5, 100.0):
        top = StreamingTopK(3, seed=seed)
        top.update(data)
        assert not top.complete()
        with pytest.raises(ValueError, match="without a seed"):
            top.result()
    top = StreamingTopK(3, seed=1.99)
    top.update(data)
    assert top.complete()
    np.testing.assert_array_equal(top.result(), [5.0, 4.0, 2.0])
    # fewer values than k in all: complete only if none was dropped
    few = StreamingTopK(10, seed=0.0)
    few.update(torch.tensor([3.0, 1.0]))
    assert few.complete() and few.result().tolist() == [3.0, 1.0]
    few.update(torch.tensor([-1.0]))
    assert not few.complete()
    with pytest.raises(ValueError):
        StreamingTopK(3, seed=float("nan"))


def test_kth_largest_and_a_seed_set_later():
    values = np.array([3.0, 9.0, 9.0, -1.0, 4.0], dtype=np.float32)
    assert [kth_largest(values, k) for k in (1, 2, 3, 4, 5)] == [9.0, 9.0, 4.0, 3.0, -1.0]
    assert kth_largest(torch.from_numpy(values), 3) == 4.0
    top = StreamingTopK(2)
    top.update(np.array([1.0], dtype=np.float32))  # still filling: a seed may be set now
    top.seed_with(2.5)
    assert top.entry_threshold() == 2.5
    top.update(np.array([2.0, 3.0, 7.0], dtype=np.float32))
    assert top.complete() and top.result().tolist() == [7.0, 3.0]
    with pytest.raises(ValueError, match="already has an entry threshold"):
        top.seed_with(1.0)
    with pytest.raises(ValueError, match="finite"):
        StreamingTopK(2).seed_with(float("inf"))


def test_streaming_topk_counts_values_a_caller_dropped():
    """A caller that offers only the candidates above the entry threshold says how many values
    they stand for: 3 of 1000 values exceeded the seed, so a top 5 is incomplete."""
    top = StreamingTopK(5, seed=2.0)
    top.update(torch.tensor([3.0, 4.0, 2.5]), n_values=1000)
    assert top.n_seen == 1000 and not top.complete()
    enough = StreamingTopK(2, seed=2.0)
    enough.update(torch.tensor([3.0, 4.0, 2.5]), n_values=1000)
    assert enough.complete() and enough.result().tolist() == [4.0, 3.0]


@pytest.mark.parametrize("seed_rank", [1, 50, 400, 4999])
def test_seeded_streaming_topk_equals_sort_when_complete(seed_rank):
    """Seeds below the k-th largest (rank > k) give the exact top k; the seed is the value of
    rank ``seed_rank`` (1 = the largest), ties included."""
    rng = np.random.default_rng(seed_rank)
    data = np.round(rng.standard_t(3, size=5000), 1).astype(np.float32)
    desc = np.sort(data)[::-1]
    for k in (1, 7, 40):
        top = _seeded_feed(k, float(desc[seed_rank - 1]), data)
        above = int(np.count_nonzero(data > desc[seed_rank - 1]))
        assert top.complete() == (above >= k)
        if above >= k:
            np.testing.assert_array_equal(top.result(), desc[:k])


def _seeded_feed(k: int, seed: float, data: np.ndarray) -> StreamingTopK:
    top = StreamingTopK(k, seed=seed)
    for batch in np.array_split(data, 9):
        top.update(torch.from_numpy(batch))
    return top


def test_seed_floors_relax_the_smallest_threshold_per_layer():
    """taus [S=2, R=2, L=3]; the seed is (1 - 0.25) x min over rates, none when not positive."""
    taus = np.array(
        [
            [[4.0, 2.0, 0.0], [3.0, 2.5, -1.0]],
            [[8.0, 1.0, 1.0], [4.0, 2.0, 0.5]],
        ],
        dtype=np.float32,
    )
    seeds = seed_floors(taus)
    assert SEED_RELAXATION == 0.25
    np.testing.assert_array_equal(seeds[0, :2], [2.25, 1.5])
    assert np.isnan(seeds[0, 2])  # min tau = -1: no seed
    np.testing.assert_array_equal(seeds[1], [3.0, 0.75, 0.375])
    np.testing.assert_array_equal(seed_floors(taus, relaxation=0.5)[1], [2.0, 0.5, 0.25])


# ---------------------------------------------------------------------------------------------
# tolerance and verification


def test_rate_tolerance():
    assert rate_tolerance(1e-3, 10**6) == pytest.approx(5e-5)  # 0.05 r* dominates
    assert rate_tolerance(1e-5, 1000) == pytest.approx(1e-3)  # 1/n dominates
    np.testing.assert_allclose(
        rate_tolerance(np.array([1e-3, 1e-5, 2e-2]), np.array([10**6, 1000, 100])),
        [5e-5, 1e-3, 1e-2],
    )
    assert rate_tolerance(1e-3, 10**6, rel_tol=0.5) == pytest.approx(5e-4)


def _table(achieved_override=None):
    rows = []
    for g in (0.85, 1.0):
        for spike_def in (SPIKE_ONE_SIDED_POS, SPIKE_TWO_SIDED_ABS):
            for layer in range(3):
                r_star = 1e-3 * (layer + 1)
                n_values = 1_000_000
                m = int(np.floor(r_star * n_values))
                rows.append(
                    {
                        "intervention_id": "MLP_GLOBAL",
                        "g": g,
                        "spike_def_id": spike_def,
                        "target_rate": 2e-3,
                        "layer": layer,
                        "r_star": r_star,
                        "achieved_rate_calibration": (m - 3) / n_values,  # slightly below
                        "n_values": n_values,
                        "tau": 4.0 - layer,
                    }
                )
    table = pd.DataFrame(rows)
    if achieved_override is not None:
        index, value = achieved_override
        table.loc[index, "achieved_rate_calibration"] = value
    return table


def test_verify_rate_matching_passes_good_table():
    verify_rate_matching(_table())
    # exactly at the 1/n floor: r* = 1e-5 with n = 1000 and nothing above tau is allowed
    small = _table().assign(r_star=1e-5, n_values=1000, achieved_rate_calibration=0.0)
    verify_rate_matching(small)


def test_verify_rate_matching_names_the_bad_cell():
    table = _table()
    bad = table.index[
        (table["g"] == 1.0) & (table["spike_def_id"] == SPIKE_TWO_SIDED_ABS) & (table["layer"] == 2)
    ][0]
    # r* = 3e-3, tolerance 1.5e-4; achieved 3.2e-3 misses by 2e-4
    table.loc[bad, "achieved_rate_calibration"] = 3.2e-3
    table.loc[bad, "tau"] = 12.345
    with pytest.raises(RateMatchingError) as info:
        verify_rate_matching(table, model_role="base")
    message = str(info.value)
    assert "1 of 12" in message
    assert "SPIKE_TWO_SIDED_ABS" in message
    assert "12.345" in message  # the bad row's tau is listed
    assert "0.0032" in message
    assert "'base'" in message


def test_verify_rate_matching_relative_tolerance_bites_at_low_rates():
    # r* = 1e-5 with n = 1e7: tolerance max(5e-7, 1e-7) = 5e-7; achieved 0 misses by 1e-5
    table = _table().assign(r_star=1e-5, n_values=10_000_000, achieved_rate_calibration=1e-5)
    verify_rate_matching(table)
    table.loc[4, "achieved_rate_calibration"] = 0.0
    with pytest.raises(RateMatchingError, match="1 of 12"):
        verify_rate_matching(table)
    # within 5 %: 1.04e-5 passes, 1.06e-5 fails
    table.loc[4, "achieved_rate_calibration"] = 1.04e-5
    verify_rate_matching(table)
    table.loc[4, "achieved_rate_calibration"] = 1.06e-5
    with pytest.raises(RateMatchingError):
        verify_rate_matching(table)


def test_seed_relaxation_grows_with_the_gain_gap_up_to_the_full_relaxation():
    assert seed_relaxation(None) == SEED_RELAXATION == 0.25  # another intervention
    assert seed_relaxation(0.0) == pytest.approx(0.05)
    assert seed_relaxation(0.05) == pytest.approx(0.075)  # the paper grid's step
    assert seed_relaxation(-0.1) == pytest.approx(0.1)  # either direction
    assert seed_relaxation(0.3) == pytest.approx(0.2)
    assert seed_relaxation(0.4) == pytest.approx(0.25)
    assert seed_relaxation(1.0) == 0.25


def test_baseline_seeds_are_tau0_where_at_least_k_values_exceeded_it():
    """n = 1000 values per layer; r*[l] up to 0.0105, 0.003, 0.02 gives k = floor(r* n) + 1 =
    11, 4, 21. Layer 0 saw 11 >= 11 values above tau0 (seeded), layer 1 3 < 4 (not), layer 2
    21 >= 21 but counted over 999 values, another slice (not)."""
    profile = np.array([[[0.005, 0.003, 0.01], [0.0105, 0.001, 0.02]]])  # [S=1, R=2, L=3]
    baseline = pd.DataFrame(
        {
            "spike_def_id": ["SPIKE_ONE_SIDED_POS"] * 3,
            "layer": [0, 1, 2],
            "tau0": [2.3] * 3,
            "n_exceed": [11, 3, 21],
            "n_values": [1000, 1000, 999],
        }
    )
    seeds = baseline_seeds(baseline, ["SPIKE_ONE_SIDED_POS"], profile, 1000)
    below = float(np.nextafter(np.float32(2.3), np.float32(-np.inf)))  # fp32 2.3, one step down
    assert below < 2.3 and seeds[0, 0] == below
    assert np.isnan(seeds[0, 1]) and np.isnan(seeds[0, 2])
    # a spike definition the baseline did not count gets no seed
    two = baseline_seeds(
        baseline, ["SPIKE_TWO_SIDED_ABS", "SPIKE_ONE_SIDED_POS"], profile[[0, 0]], 1000
    )
    assert np.isnan(two[0]).all() and two[1, 0] == below
