"""Real rasters against their nulls (SPEC §7), on hand-made rasters and per-window counts.

Expected values are computed here from the documented formulas: per-window counts by hand,
pooled ``b = sum n / sum den``, bootstrap indices ``default_rng(seed_of("boot", key))``,
replicate weights as counts of each window, and percentile CIs of the *paired* replicate
differences. The pipeline-level checks on rasters written by the events pipeline are in
``tests/pipelines/test_controls.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.analysis.bootstrap import (
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
)
from avalanche_kedro.analysis.lattice import branching, branching_counts, susceptibility
from avalanche_kedro.analysis.nulls import NULL_PERM, NULL_SHIFT, RASTER_NULLS, null_raster
from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.core.seeds import seed_of
from avalanche_kedro.evaluation.comparison import (
    B_METRICS,
    NULL_SUFFIX,
    compare_with_nulls,
    null_window_counts,
    window_counts,
)
from avalanche_kedro.measure.rasters import EventRasters

REAL, SHUFFLE = "NULL_NONE", "NULL_TOKEN_SHUFFLE_INPUT"
K0 = "A|SPIKE_ONE_SIDED_POS|1e-05|1.0|MLP_GLOBAL"
K1 = "A|SPIKE_ONE_SIDED_POS|2e-05|1.0|MLP_GLOBAL"


def rasters_of(A, cond_id, seq_id) -> EventRasters:
    A = np.asarray(A, dtype=np.uint16)
    return EventRasters(
        A=A,
        X=(A > 0).astype(np.uint8),
        cond_id=np.asarray(cond_id, dtype=np.int32),
        seq_id=np.asarray(seq_id, dtype=np.int32),
    )


#: Two conditions x two windows x two layers x four tokens; counts per [layer][token].
HAND_A = [
    [  # cond 10
        [[1, 1, 0, 0], [0, 2, 0, 0]],  # n_time 1 (layer 0), n_depth 1 (token 1), den 3, Y 4
        [[0, 0, 0, 3], [1, 0, 0, 1]],  # n_time 0 (no wrap), n_depth 1 (token 3), den 3, Y 5
    ],
    [  # cond 11
        [[0, 0, 0, 0], [0, 0, 0, 0]],  # empty
        [[1, 1, 1, 1], [0, 0, 0, 0]],  # n_time 3, n_depth 0, den 4, Y 4
    ],
]


# --------------------------------------------------------------------------------------------
# window_counts


def test_window_counts_by_hand():
    rasters = rasters_of(HAND_A, cond_id=[10, 11], seq_id=[7, 3])
    table = window_counts(rasters, pd.DataFrame({"cond_id": [11, 10]}))
    assert list(table.columns) == ["cond_id", "seq_id", "n_time", "n_depth", "den", "events"]
    # in the order of the condition table, windows in raster order
    assert table.values.tolist() == [
        [11, 7, 0, 0, 0, 0],
        [11, 3, 3, 0, 4, 4],
        [10, 7, 1, 1, 3, 4],
        [10, 3, 0, 1, 3, 5],
    ]
    assert table["cond_id"].dtype == np.int32 and table["seq_id"].dtype == np.int32
    assert all(table[c].dtype == np.int64 for c in ("n_time", "n_depth", "den", "events"))


# --------------------------------------------------------------------------------------------
# null_window_counts


def test_null_window_counts_of_real_conditions_only():
    rasters = rasters_of(HAND_A, cond_id=[10, 11], seq_id=[7, 3])
    conditions = pd.DataFrame(
        {"cond_id": [10, 11], "null_id": [REAL, SHUFFLE], "condition_key": [K0, K0]}
    )
    counts, checks = null_window_counts(rasters, conditions)
    # the token-shuffle condition is a null itself: no raster nulls of it
    assert set(counts["cond_id"]) == {10}
    assert counts[["null_id", "seq_id"]].values.tolist() == [
        [NULL_PERM, 7],
        [NULL_PERM, 3],
        [NULL_SHIFT, 7],
        [NULL_SHIFT, 3],
    ]
    assert checks.to_dict("records") == [
        {"cond_id": 10, "null_id": NULL_PERM, "rows_checked": 4, "marginals_preserved": True},
        {"cond_id": 10, "null_id": NULL_SHIFT, "rows_checked": 4, "marginals_preserved": True},
    ]
    # the circular shift by hand: row (window, layer) rolled by
    # s = default_rng(seed_of("shift", key, seq_id, layer)).integers(1, T)
    real = np.asarray(HAND_A[0])
    shifted = np.empty_like(real)
    for n, seq_id in enumerate([7, 3]):
        for layer in range(2):
            s = int(np.random.default_rng(seed_of("shift", K0, seq_id, layer)).integers(1, 4))
            shifted[n, layer] = np.roll(real[n, layer], s)
    expected = branching_counts(shifted > 0)
    shift_rows = counts[counts["null_id"] == NULL_SHIFT]
    assert shift_rows[["n_time", "n_depth", "den"]].values.tolist() == expected.values.tolist()
    # both nulls only move events within their row: every window keeps its occupied sites
    for null_id in RASTER_NULLS:
        assert counts.loc[counts["null_id"] == null_id, "den"].tolist() == [3, 3]
        rows = counts[counts["null_id"] == null_id]
        rebuilt = branching_counts(null_raster(real, null_id, K0, [7, 3]))
        assert rows[["n_time", "n_depth", "den"]].values.tolist() == rebuilt.values.tolist()


# --------------------------------------------------------------------------------------------
# compare_with_nulls on hand-made per-window counts

#: Per-window counts of 4 windows (seq_id 0..3) for each table entry.
REAL_0 = {
    "n_time": [2, 0, 1, 3],
    "n_depth": [1, 1, 0, 2],
    "den": [4, 2, 2, 4],
    "events": [5, 2, 3, 6],
}
PERM_0 = {"n_time": [1, 0, 0, 1], "n_depth": [0, 0, 0, 1], "den": [4, 2, 2, 4]}
SHIFT_0 = {"n_time": [2, 0, 1, 3], "n_depth": [0, 0, 0, 0], "den": [4, 2, 2, 4]}
TOKSHUF_0 = {
    "n_time": [1, 0, 0, 0],
    "n_depth": [0, 1, 0, 0],
    "den": [3, 3, 3, 3],
    "events": [3] * 4,
}
REAL_1 = {
    "n_time": [0, 1, 0, 2],
    "n_depth": [1, 0, 0, 1],
    "den": [2, 2, 1, 3],
    "events": [2, 3, 1, 4],
}
R = 200


def frame(cond_id, counts, null_id=None, seq_ids=(0, 1, 2, 3)):
    data = {"cond_id": cond_id, "seq_id": list(seq_ids), **counts}
    if null_id is not None:
        data["null_id"] = null_id
    # rows deliberately not in seq_id order: the comparison pairs windows by seq_id
    return pd.DataFrame(data).iloc[[2, 0, 3, 1]]


@pytest.fixture
def inputs():
    conditions = pd.DataFrame(
        {
            "cond_id": [0, 1, 2],
            "g": [1.0, 1.0, 1.0],
            "target_rate": [1e-5, 2e-5, 1e-5],
            "null_id": [REAL, REAL, SHUFFLE],
            "condition_key": [K0, K1, K0],
        }
    )
    windows = pd.concat([frame(0, REAL_0), frame(1, REAL_1), frame(2, TOKSHUF_0)])
    nulls = pd.concat(
        [
            frame(0, PERM_0, NULL_PERM),
            frame(0, SHIFT_0, NULL_SHIFT),
            frame(1, PERM_0, NULL_PERM),
            frame(1, SHIFT_0, NULL_SHIFT),
        ]
    )
    checks = pd.DataFrame(
        {
            "cond_id": [0, 0, 1],  # no shift check recorded for condition 1
            "null_id": [NULL_PERM, NULL_SHIFT, NULL_PERM],
            "rows_checked": [8, 8, 8],
            "marginals_preserved": [True, True, True],
        }
    )
    return conditions, windows, nulls, checks


def weights_by_hand(key: str, n_windows: int = 4, replicates: int = R) -> np.ndarray:
    """W[b, n]: how often window n (in seq_id order) is drawn in replicate b."""
    indices = np.random.default_rng(seed_of("boot", key)).integers(
        0, n_windows, size=(replicates, n_windows)
    )
    return np.stack([np.bincount(row, minlength=n_windows) for row in indices])


def replicates_by_hand(weights, counts, metric):
    def ratio(column):
        return (weights @ np.asarray(counts[column], float)) / (
            weights @ np.asarray(counts["den"], float)
        )

    if metric == "b_tot":
        return ratio("n_time") + ratio("n_depth")
    return ratio({"b_time": "n_time", "b_depth": "n_depth"}[metric])


def ci_by_hand(values):
    low, high = np.percentile(values[np.isfinite(values)], [2.5, 97.5])
    return pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12)


def test_one_row_per_real_condition_with_its_columns(inputs):
    summary = compare_with_nulls(*inputs, replicates=R)
    assert summary["cond_id"].tolist() == [0, 1]
    assert summary["target_rate"].tolist() == [1e-5, 2e-5]  # the condition's own columns
    assert (summary["null_id"] == REAL).all()
    assert summary["n_sequences"].tolist() == [4, 4]
    assert summary["bootstrap_replicates"].tolist() == [R, R]
    assert not summary["branching_empty"].any()
    for suffix in NULL_SUFFIX.values():
        for metric in B_METRICS:
            for column in (f"{metric}_{suffix}", f"delta_{metric}_{suffix}"):
                assert column in summary
            assert f"delta_{metric}_{suffix}_ci_low" in summary


def test_pooled_b_chi_and_deltas_by_hand(inputs):
    row = compare_with_nulls(*inputs, replicates=R).iloc[0]
    # real: sum n_time 6, sum n_depth 4, sum den 12
    assert (row.b_time, row.b_depth) == (
        pytest.approx(1 / 2, abs=1e-15),
        pytest.approx(1 / 3, abs=1e-15),
    )
    assert row.b_tot == pytest.approx(5 / 6, abs=1e-15)
    # Y = [5, 2, 3, 6]: mean 4, var (1 + 4 + 1 + 4) / 4 = 2.5
    assert row.chi == pytest.approx(2.5 / (4 + 1e-8), rel=1e-15)
    # perm: 2 / 12 and 1 / 12
    assert row.b_tot_perm == pytest.approx(3 / 12, abs=1e-15)
    assert row.delta_b_tot_perm == pytest.approx(5 / 6 - 3 / 12, abs=1e-15)
    assert row.delta_b_time_perm == pytest.approx(1 / 2 - 1 / 6, abs=1e-15)
    # shift: same n_time, no depth pairs
    assert row.delta_b_time_shift == 0.0
    assert row.delta_b_depth_shift == pytest.approx(1 / 3, abs=1e-15)
    # token shuffle (condition 2, the same key): 1 / 12 + 1 / 12
    assert row.b_tot_tokshuf == pytest.approx(1 / 6, abs=1e-15)
    assert row.delta_b_tot_tokshuf == pytest.approx(5 / 6 - 1 / 6, abs=1e-15)
    # the permutation null is the primary comparison
    for metric in B_METRICS:
        assert row[f"delta_{metric}"] == row[f"delta_{metric}_perm"]
        assert row[f"delta_{metric}_ci_low"] == row[f"delta_{metric}_perm_ci_low"]
        assert row[f"delta_{metric}_ci_high"] == row[f"delta_{metric}_perm_ci_high"]


def test_cis_are_paired_window_bootstraps_by_hand(inputs):
    row = compare_with_nulls(*inputs, replicates=R).iloc[0]
    weights = weights_by_hand(K0)
    for metric in B_METRICS:
        real = replicates_by_hand(weights, REAL_0, metric)
        assert (row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]) == ci_by_hand(real)
        for suffix, null in (("perm", PERM_0), ("shift", SHIFT_0), ("tokshuf", TOKSHUF_0)):
            # one index matrix for the real raster and every null: differences per replicate
            paired = real - replicates_by_hand(weights, null, metric)
            got = (row[f"delta_{metric}_{suffix}_ci_low"], row[f"delta_{metric}_{suffix}_ci_high"])
            assert got == ci_by_hand(paired), (metric, suffix)
    # chi's CI uses the same indices, on the window totals
    indices = np.random.default_rng(seed_of("boot", K0)).integers(0, 4, size=(R, 4))
    totals = np.asarray(REAL_0["events"], float)[indices]
    chi = totals.var(axis=1) / (totals.mean(axis=1) + 1e-8)
    assert (row.chi_ci_low, row.chi_ci_high) == ci_by_hand(chi)


def test_pairing_cancels_what_real_and_null_share(inputs):
    """The shift null has the real n_time in every window, so the paired replicate differences
    of b_time are all exactly 0; differences of independently resampled replicates would not be."""
    row = compare_with_nulls(*inputs, replicates=R).iloc[0]
    assert (row.delta_b_time_shift_ci_low, row.delta_b_time_shift_ci_high) == (0.0, 0.0)
    assert row.b_time_ci_high - row.b_time_ci_low > 0.1  # the real b_time itself does vary
    # and b_depth against a null without depth pairs is the real b_depth, replicate by replicate
    assert row.delta_b_depth_shift_ci_low == row.b_depth_ci_low
    assert row.delta_b_depth_shift_ci_high == row.b_depth_ci_high


def test_bootstrap_indices_are_per_condition(inputs):
    summary = compare_with_nulls(*inputs, replicates=R)
    row = summary.iloc[1]  # condition 1: its own key K1, so its own indices
    weights = weights_by_hand(K1)
    real = replicates_by_hand(weights, REAL_1, "b_tot")
    assert (row.b_tot_ci_low, row.b_tot_ci_high) == ci_by_hand(real)
    paired = real - replicates_by_hand(weights, PERM_0, "b_tot")
    assert (row.delta_b_tot_perm_ci_low, row.delta_b_tot_perm_ci_high) == ci_by_hand(paired)


def test_missing_token_shuffle_and_marginal_checks(inputs):
    summary = compare_with_nulls(*inputs, replicates=R)
    first, second = summary.iloc[0], summary.iloc[1]
    assert first.marginals_preserved_perm and first.marginals_preserved_shift
    # condition 1 has no token-shuffle null: every tokshuf column is NaN
    for metric in B_METRICS:
        for column in ("", "delta_"):
            assert np.isnan(second[f"{column}{metric}_tokshuf"])
        assert np.isnan(second[f"delta_{metric}_tokshuf_ci_low"])
        assert np.isnan(second[f"delta_{metric}_tokshuf_ci_high"])
    # a missing check counts as not preserved, and so does a failed one
    assert second.marginals_preserved_perm and not second.marginals_preserved_shift
    conditions, windows, nulls, checks = inputs
    failed = checks.assign(marginals_preserved=[True, False, True])
    again = compare_with_nulls(conditions, windows, nulls, failed, replicates=R)
    assert again.iloc[0].marginals_preserved_perm and not again.iloc[0].marginals_preserved_shift


def test_a_null_over_other_windows_is_refused(inputs):
    conditions, windows, nulls, checks = inputs
    keep = ~((nulls["cond_id"] == 0) & (nulls["null_id"] == NULL_SHIFT))
    other = frame(0, SHIFT_0, NULL_SHIFT, seq_ids=(0, 1, 2, 9))
    with pytest.raises(ArtifactError) as info:
        compare_with_nulls(conditions, windows, pd.concat([nulls[keep], other]), checks)
    assert info.value.problem == (
        f"The {NULL_SHIFT} counts of condition 0 cover other windows than the real raster, so "
        "they cannot be compared pairwise."
    )
    assert "kedro run --pipelines cascades,controls" in info.value.fix


def test_an_empty_real_raster_gives_nan_branching():
    zeros = {"n_time": [0, 0], "n_depth": [0, 0], "den": [0, 0]}
    conditions = pd.DataFrame({"cond_id": [0], "null_id": [REAL], "condition_key": [K0]})
    windows = pd.DataFrame({"cond_id": 0, "seq_id": [0, 1], **zeros, "events": [0, 0]})
    nulls = pd.concat(
        [
            pd.DataFrame({"cond_id": 0, "seq_id": [0, 1], "null_id": n, **zeros})
            for n in RASTER_NULLS
        ]
    )
    checks = pd.DataFrame(
        {"cond_id": [0, 0], "null_id": list(RASTER_NULLS), "marginals_preserved": True}
    )
    row = compare_with_nulls(conditions, windows, nulls, checks, replicates=20).iloc[0]
    assert row.branching_empty
    for metric in B_METRICS:
        assert np.isnan(row[metric]) and np.isnan(row[f"{metric}_ci_low"])
        assert np.isnan(row[f"delta_{metric}"]) and np.isnan(row[f"delta_{metric}_ci_high"])
    assert row.chi == 0.0  # no events at all: var 0 / (0 + 1e-8)


# --------------------------------------------------------------------------------------------
# Rasters end to end: window_counts -> null_window_counts -> compare_with_nulls


def test_delta_b_tot_from_rasters_by_hand():
    rng = np.random.default_rng(0)
    A = rng.poisson(0.35, size=(1, 12, 3, 8))  # one condition, 12 windows, 3 layers, 8 tokens
    seq_id = np.arange(100, 112)
    rasters = rasters_of(A, cond_id=[5], seq_id=seq_id)
    conditions = pd.DataFrame({"cond_id": [5], "null_id": [REAL], "condition_key": [K1]})
    windows = window_counts(rasters, conditions)
    nulls, checks = null_window_counts(rasters, conditions)
    row = compare_with_nulls(conditions, windows, nulls, checks, replicates=R).iloc[0]

    real = A[0]
    assert row.b_tot == pytest.approx(branching(real > 0)["b_tot"], abs=1e-15)
    assert row.chi == pytest.approx(susceptibility(real), rel=1e-12)
    indices = bootstrap_indices(12, R, K1)
    weights = resample_weights(indices, 12)
    np.testing.assert_array_equal(weights, weights_by_hand(K1, 12))
    real_counts = branching_counts(real > 0)

    def b_tot_reps(counts):
        return pooled_ratio(weights, counts["n_time"], counts["den"]) + pooled_ratio(
            weights, counts["n_depth"], counts["den"]
        )

    for null_id, suffix in ((NULL_PERM, "perm"), (NULL_SHIFT, "shift")):
        null = null_raster(real, null_id, K1, seq_id)
        assert row[f"b_tot_{suffix}"] == pytest.approx(branching(null > 0)["b_tot"], abs=1e-15)
        assert row[f"delta_b_tot_{suffix}"] == pytest.approx(
            branching(real > 0)["b_tot"] - branching(null > 0)["b_tot"], abs=1e-15
        )
        low, high = percentile_interval(
            b_tot_reps(real_counts) - b_tot_reps(branching_counts(null > 0))
        )
        assert row[f"delta_b_tot_{suffix}_ci_low"] == pytest.approx(low, abs=1e-12)
        assert row[f"delta_b_tot_{suffix}_ci_high"] == pytest.approx(high, abs=1e-12)
    # the nulls destroy the lattice's connectivity: b_tot drops
    assert row.delta_b_tot_perm > 0
