"""Crackling relation (signature S3) and tail fits (SPEC §6).

The crackling exponent is checked on tables built to follow ``<S>(D) = c D^gamma`` exactly, and
its window-bootstrap CI against a brute force that concatenates the resampled windows'
avalanches (with repeats), averages S per D with pandas and fits the line with ``np.polyfit``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.analysis.bootstrap import bootstrap_indices, percentile_interval
from avalanche_kedro.analysis.scaling import (
    CRACKLING_D_MAX,
    CRACKLING_D_MIN,
    CRACKLING_MAX_CI_WIDTH,
    CRACKLING_MIN_POINTS,
    TAIL_COLUMNS,
    TAIL_MIN_SAMPLES,
    crackling_fit,
    crackling_slopes,
    tail_fit,
)

KEY = "A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL"
GAMMA = 1.5
C = 2.0
IN_RANGE_D = [3, 4, 5, 6, 8, 11, 16, 23, 32, 64]  # 10 distinct D in [3, 64]


def table(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["seq_index", "size", "span_tokens"])


def exact_table(n_windows: int = 6) -> tuple[pd.DataFrame, int]:
    """Every window holds every D (some twice) with S = C D^1.5, plus out-of-range avalanches."""
    rows = []
    used = 0
    for w in range(n_windows):
        for D in IN_RANGE_D:
            repeats = 1 + (w + D) % 2
            rows += [(w, C * D**GAMMA, D)] * repeats
            used += repeats
        # outside [3, 64]: would wreck the slope if they were used
        rows += [(w, 1000.0, 1), (w, 1.0, 2), (w, 5.0, 65), (w, 1e6, 200)]
    return table(rows), used


def brute_slope(frame: pd.DataFrame, windows, min_points: int) -> float:
    """Concatenate the avalanches of ``windows`` (repeats kept), mean S per D, OLS in log-log."""
    parts = [frame[frame["seq_index"] == w] for w in windows]
    data = pd.concat(parts)
    data = data[(data["span_tokens"] >= 3) & (data["span_tokens"] <= 64)]
    mean = data.groupby("span_tokens")["size"].mean()
    if len(mean) < min_points:
        return float("nan")
    slope, _ = np.polyfit(np.log(mean.index.to_numpy(float)), np.log(mean.to_numpy(float)), 1)
    return float(slope)


def test_spec_constants():
    assert (CRACKLING_D_MIN, CRACKLING_D_MAX) == (3, 64)
    assert CRACKLING_MIN_POINTS == 8
    assert CRACKLING_MAX_CI_WIDTH == 0.5
    assert TAIL_MIN_SAMPLES == 100


# --------------------------------------------------------------------------------------------
# crackling


def test_exact_power_law_gives_gamma_and_passes():
    frame, used = exact_table()
    indices = bootstrap_indices(6, 500, KEY)
    result = crackling_fit(frame, 6, indices)
    assert result["crackling_gamma"] == pytest.approx(GAMMA, abs=1e-9)
    assert result["r2"] == pytest.approx(1.0, abs=1e-12)
    assert result["n_duration_points"] == len(IN_RANGE_D)
    assert result["n_avalanches_used"] == used  # D = 1, 2, 65, 200 ignored
    assert result["n_avalanches_used"] < len(frame)
    assert result["crackling_ci_low"] == pytest.approx(GAMMA, abs=1e-9)
    assert result["crackling_ci_high"] == pytest.approx(GAMMA, abs=1e-9)
    assert result["crackling_ci_width"] == pytest.approx(0.0, abs=1e-9)
    assert result["pass"] is True
    assert result["reason"] == ""


def test_out_of_range_durations_are_ignored_even_when_alone_in_a_window():
    frame, used = exact_table(4)
    extra = table([(4, 7.0, 2), (4, 3.0, 65), (4, 99.0, 1000)])  # window 4: nothing usable
    result = crackling_fit(
        pd.concat([frame, extra], ignore_index=True), 5, bootstrap_indices(5, 100, KEY)
    )
    assert result["n_avalanches_used"] == used
    assert result["crackling_gamma"] == pytest.approx(GAMMA, abs=1e-9)
    # boundary durations 3 and 64 are included
    assert result["n_duration_points"] == len(IN_RANGE_D)


def test_no_indices_means_no_ci_and_no_pass():
    frame, _ = exact_table()
    result = crackling_fit(frame, 6, None)
    assert result["crackling_gamma"] == pytest.approx(GAMMA, abs=1e-9)
    assert np.isnan(result["crackling_ci_width"])
    assert result["pass"] is False
    assert "no CI" in result["reason"]


def test_fewer_than_eight_distinct_durations_fails_the_gate():
    rows = [(w, C * D**GAMMA, D) for w in range(5) for D in (3, 4, 5, 6, 8, 11, 16)]  # 7 D
    result = crackling_fit(table(rows), 5, bootstrap_indices(5, 100, KEY))
    assert result["n_duration_points"] == 7
    assert result["crackling_gamma"] == pytest.approx(GAMMA, abs=1e-9)  # still reported
    assert result["pass"] is False
    assert "7 < 8 distinct durations" in result["reason"]
    # one distinct duration: no fit at all
    one = crackling_fit(table([(0, 10.0, 5), (1, 12.0, 5), (0, 1.0, 2)]), 2, None)
    assert one["pass"] is False
    assert np.isnan(one["crackling_gamma"])
    assert one["n_duration_points"] == 1 and one["n_avalanches_used"] == 2
    assert "1 distinct durations" in one["reason"]
    empty = crackling_fit(table([]), 3, None)
    assert empty["pass"] is False and empty["n_avalanches_used"] == 0


def test_noisy_relation_with_few_windows_has_a_wide_ci_and_fails():
    # three windows, each with all D = 3..10, but each following its own exponent
    exponents = [0.5, 1.5, 3.0]
    rows = [(w, float(D) ** g, D) for w, g in enumerate(exponents) for D in range(3, 11)]
    result = crackling_fit(table(rows), 3, bootstrap_indices(3, 500, KEY))
    assert np.isfinite(result["crackling_gamma"])
    assert result["n_duration_points"] == 8
    assert result["crackling_ci_width"] > CRACKLING_MAX_CI_WIDTH
    # a replicate of one window repeated gives that window's exponent: the CI spans them
    assert result["crackling_ci_low"] == pytest.approx(0.5, abs=0.3)
    assert result["crackling_ci_high"] == pytest.approx(3.0, abs=0.3)
    assert result["pass"] is False
    assert "CI width" in result["reason"]
    assert "distinct durations" not in result["reason"]


def test_single_replicates_match_brute_force():
    rng = np.random.default_rng(21)
    rows = []
    for w in range(12):
        for _ in range(15):
            D = int(rng.integers(1, 80))
            rows.append((w, float(rng.lognormal(np.log(C * D**1.3), 0.4)), D))
    frame = table(rows)
    n_distinct = frame[(frame.span_tokens >= 3) & (frame.span_tokens <= 64)].span_tokens.nunique()
    assert n_distinct >= 8
    # point fit = brute force on all windows once
    point = crackling_fit(frame, 12, None)
    assert point["crackling_gamma"] == pytest.approx(brute_slope(frame, range(12), 8), abs=1e-10)
    data = frame[(frame.span_tokens >= 3) & (frame.span_tokens <= 64)]
    mean = data.groupby("span_tokens")["size"].mean()
    r = np.corrcoef(np.log(mean.index.to_numpy(float)), np.log(mean.to_numpy(float)))[0, 1]
    assert point["r2"] == pytest.approx(r * r, abs=1e-10)
    # each replicate alone: its CI collapses to its slope
    indices = bootstrap_indices(12, 40, KEY)
    slopes = [brute_slope(frame, indices[b], min(8, n_distinct)) for b in range(40)]
    assert sum(np.isfinite(slopes)) >= 30
    for b in range(4):
        single = crackling_fit(frame, 12, indices[b : b + 1])
        assert single["crackling_ci_low"] == pytest.approx(slopes[b], abs=1e-10)
        assert single["crackling_ci_high"] == pytest.approx(slopes[b], abs=1e-10)
    # and the CI over all replicates is the percentile interval of the brute-force slopes
    full = crackling_fit(frame, 12, indices)
    low, high = percentile_interval(slopes)
    assert full["crackling_ci_low"] == pytest.approx(low, abs=1e-10)
    assert full["crackling_ci_high"] == pytest.approx(high, abs=1e-10)
    assert full["crackling_ci_width"] == pytest.approx(high - low, abs=1e-10)


def test_replicates_that_lose_durations_are_dropped():
    # window 0 has D = 3..6, window 1 has D = 7..12: only a replicate with both has >= 8 points
    rows = [(0, C * D**GAMMA, D) for D in range(3, 7)] + [
        (1, C * D**GAMMA, D) for D in range(7, 13)
    ]
    frame = table(rows)
    lonely = crackling_fit(frame, 2, np.array([[0, 0], [1, 1]]))
    assert np.isnan(lonely["crackling_ci_low"]) and np.isnan(lonely["crackling_ci_high"])
    assert lonely["pass"] is False and "no CI" in lonely["reason"]
    mixed = crackling_fit(frame, 2, np.array([[0, 0], [0, 1], [1, 1]]))
    assert mixed["crackling_ci_low"] == pytest.approx(GAMMA, abs=1e-9)
    assert mixed["crackling_ci_high"] == pytest.approx(GAMMA, abs=1e-9)
    assert mixed["pass"] is True


def test_crackling_slopes_expose_every_replicate_slope():
    """The per-replicate slopes (used for paired differences between roles, T08) are the
    brute-force slopes, NaN where a replicate lost durations; their percentiles are the CI."""
    rows = [(0, C * D**GAMMA, D) for D in range(3, 7)] + [
        (1, C * D**GAMMA, D) for D in range(7, 13)
    ]
    frame = table(rows)
    indices = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
    slopes = crackling_slopes(
        frame["seq_index"].to_numpy(),
        frame["span_tokens"].to_numpy(),
        frame["size"].to_numpy(),
        2,
        indices,
    )
    assert slopes.gamma == pytest.approx(GAMMA, abs=1e-9)
    assert (slopes.n_duration_points, slopes.n_avalanches_used) == (10, 10)
    assert np.isnan(slopes.replicates[[0, 2]]).all()
    assert slopes.replicates[[1, 3]] == pytest.approx([GAMMA, GAMMA], abs=1e-9)
    fit = crackling_fit(frame, 2, indices)
    assert (fit["crackling_ci_low"], fit["crackling_ci_high"]) == pytest.approx(
        percentile_interval(slopes.replicates)
    )
    # fewer than two durations: no slope at all, and one NaN per replicate
    single = crackling_slopes(np.zeros(3, int), np.full(3, 5), np.ones(3), 1, np.zeros((4, 1), int))
    assert np.isnan(single.gamma) and single.replicates.shape == (4,)
    assert np.isnan(single.replicates).all()
    assert crackling_slopes(np.zeros(3, int), np.full(3, 5), np.ones(3), 1).replicates is None


# --------------------------------------------------------------------------------------------
# tail fits


def test_tail_fit_needs_100_samples():
    rng = np.random.default_rng(31)
    for sizes in (
        rng.zipf(2.5, 99),
        np.concatenate([rng.zipf(2.5, 90), np.zeros(60)]),  # zeros are not avalanches
        [],
    ):
        result = tail_fit(sizes)
        assert set(result) == set(TAIL_COLUMNS)
        assert result["available"] is False
        assert "need 100" in result["reason"]
        assert np.isnan(result["alpha_powerlaw"])


def test_tail_fit_refuses_a_single_distinct_size():
    result = tail_fit(np.full(500, 3))
    assert result["available"] is False
    assert result["reason"] == "500 avalanches, all of size 3: nothing to fit"
    assert np.isnan(result["alpha_powerlaw"])


def test_tail_fit_recovers_a_discrete_power_law():
    sizes = np.random.default_rng(1234).zipf(2.5, 5000)
    result = tail_fit(sizes)
    assert set(result) == set(TAIL_COLUMNS)
    assert result["available"] is True, result["reason"]
    assert result["reason"] == ""
    assert result["alpha_powerlaw"] == pytest.approx(2.5, abs=0.15)
    assert 100 <= result["n_tail"] <= 5000
    assert result["n_tail"] == int((sizes >= result["xmin"]).sum())
    assert result["xmin"] >= 1
    for column in (
        "llr_powerlaw_vs_lognormal",
        "llr_powerlaw_vs_exponential",
        "ll_powerlaw",
        "ll_lognormal",
        "ll_exponential",
        "lambda_exponential",
    ):
        assert np.isfinite(result[column]), column
    for column in ("p_powerlaw_vs_lognormal", "p_powerlaw_vs_exponential"):
        assert 0.0 <= result[column] <= 1.0, column
    # a power law beats an exponential on power-law data
    assert result["llr_powerlaw_vs_exponential"] > 0
    # deterministic
    assert tail_fit(sizes) == result
