"""Cascades and controls pipelines on rasters written by the events pipeline (SequentialRunner)."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.bootstrap import (
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
)
from avalanche_kedro.analysis.lattice import avalanches, branching, branching_counts, susceptibility
from avalanche_kedro.analysis.nulls import RASTER_NULLS, null_raster

N_WINDOWS = 8


def load(catalog, name):
    return catalog.load(f"base.{name}")


@pytest.fixture(scope="module")
def outputs(small_run):
    catalog, _ = small_run
    names = [
        "event_rasters_A",
        "conditions_A",
        "avalanches_A",
        "branching_per_window_A",
        "cascade_summary_A",
        "crackling_fits_A",
        "tail_fits_A",
        "null_branching_per_window_A",
        "marginal_checks_A",
        "controls_summary_A",
    ]
    return {name: load(catalog, name) for name in names}


def test_avalanche_table_matches_the_lattice_api(outputs):
    rasters, conditions, table = (
        outputs["event_rasters_A"],
        outputs["conditions_A"],
        outputs["avalanches_A"],
    )
    assert set(table["adjacency"]) == {"ADJ_4N", "ADJ_8N"}
    for row in conditions.itertuples():
        counts = np.asarray(rasters.counts(row.cond_id))
        for adjacency in ("ADJ_4N", "ADJ_8N"):
            part = table[(table["cond_id"] == row.cond_id) & (table["adjacency"] == adjacency)]
            expected = avalanches(counts, adjacency, seq_ids=rasters.seq_id)
            assert len(part) == len(expected)
            np.testing.assert_array_equal(part["size"], expected["size"])
            assert part["size"].sum() == counts.sum()
            assert set(part["seq_id"]) <= set(rasters.seq_id.tolist())
        n4 = ((table["cond_id"] == row.cond_id) & (table["adjacency"] == "ADJ_4N")).sum()
        n8 = ((table["cond_id"] == row.cond_id) & (table["adjacency"] == "ADJ_8N")).sum()
        assert n8 <= n4  # diagonals can only merge components


def test_summary_branching_and_chi(outputs):
    rasters, summary = outputs["event_rasters_A"], outputs["cascade_summary_A"]
    assert len(summary) == len(outputs["conditions_A"])
    for row in summary.itertuples():
        counts = np.asarray(rasters.counts(row.cond_id))
        pooled = branching(counts > 0)
        assert row.b_time == pytest.approx(pooled["b_time"], abs=0)
        assert row.b_depth == pytest.approx(pooled["b_depth"], abs=0)
        assert row.b_tot == pytest.approx(pooled["b_time"] + pooled["b_depth"], abs=1e-15)
        assert row.chi == pytest.approx(susceptibility(counts), rel=1e-12)
        assert row.n_sequences == N_WINDOWS
        assert not row.branching_empty


def test_per_window_counts_cover_every_condition(outputs):
    windows = outputs["branching_per_window_A"]
    rasters = outputs["event_rasters_A"]
    assert len(windows) == len(outputs["conditions_A"]) * N_WINDOWS
    first = windows[windows["cond_id"] == 0]
    expected = branching_counts(np.asarray(rasters.counts(0)) > 0)
    np.testing.assert_array_equal(first["n_time"], expected["n_time"])
    np.testing.assert_array_equal(first["events"], np.asarray(rasters.counts(0)).sum(axis=(1, 2)))


def test_crackling_fits_have_a_gate_for_every_condition(outputs):
    fits = outputs["crackling_fits_A"]
    assert len(fits) == len(outputs["conditions_A"]) * 2
    assert fits["pass"].dtype == bool
    gated = fits[fits["pass"]]
    assert (gated["crackling_ci_width"] <= 0.5).all()
    assert (gated["n_duration_points"] >= 8).all()
    failed = fits[~fits["pass"]]
    assert (failed["reason"].str.len() > 0).all()


def test_tail_fits_for_real_conditions(outputs):
    tails = outputs["tail_fits_A"]
    real = outputs["conditions_A"].query("null_id == 'NULL_NONE'")
    assert sorted(tails["cond_id"]) == sorted(real["cond_id"])
    available = tails[tails["available"]]
    assert (available["n_tail"] >= 100).all()
    assert (
        available[["p_powerlaw_vs_lognormal", "p_powerlaw_vs_exponential"]]
        .apply(lambda p: p.between(0, 1))
        .all()
        .all()
    )
    assert (tails.loc[~tails["available"], "reason"].str.len() > 0).all()


def test_every_null_preserves_marginals(outputs):
    checks = outputs["marginal_checks_A"]
    real = outputs["conditions_A"].query("null_id == 'NULL_NONE'")
    assert len(checks) == len(real) * len(RASTER_NULLS)
    assert checks["marginals_preserved"].all()
    assert (checks["rows_checked"] == N_WINDOWS * 4).all()  # every (window, layer)


def test_null_counts_can_be_rebuilt_from_the_seed_rule(outputs):
    rasters = outputs["event_rasters_A"]
    conditions = outputs["conditions_A"]
    nulls = outputs["null_branching_per_window_A"]
    row = conditions.query("null_id == 'NULL_NONE'").iloc[3]
    counts = np.asarray(rasters.counts(row.cond_id))
    for null_id in RASTER_NULLS:
        rebuilt = branching_counts(
            null_raster(counts, null_id, row.condition_key, rasters.seq_id) > 0
        )
        saved = nulls[(nulls["cond_id"] == row.cond_id) & (nulls["null_id"] == null_id)]
        np.testing.assert_array_equal(saved["n_time"], rebuilt["n_time"])
        np.testing.assert_array_equal(saved["n_depth"], rebuilt["n_depth"])
        np.testing.assert_array_equal(saved["den"], rebuilt["den"])  # marginals: same events


def test_controls_summary_pairs_real_and_nulls(outputs):
    summary = outputs["controls_summary_A"]
    windows = outputs["branching_per_window_A"]
    nulls = outputs["null_branching_per_window_A"]
    real = outputs["conditions_A"].query("null_id == 'NULL_NONE'")
    assert sorted(summary["cond_id"]) == sorted(real["cond_id"])
    assert summary["marginals_preserved_perm"].all() and summary["marginals_preserved_shift"].all()
    for metric in ("b_time", "b_depth", "b_tot"):
        np.testing.assert_allclose(
            summary[f"delta_{metric}"], summary[metric] - summary[f"{metric}_perm"], atol=1e-15
        )
        assert (summary[f"delta_{metric}_ci_low"] <= summary[f"delta_{metric}_ci_high"]).all()
    # paired bootstrap by hand for one condition: the same indices for real and null
    row = summary.iloc[5]
    real_w = windows[windows["cond_id"] == row.cond_id].sort_values("seq_id")
    null_w = nulls[
        (nulls["cond_id"] == row.cond_id)
        & (nulls["null_id"] == "NULL_RASTER_WITHIN_LAYER_TIME_PERM")
    ].sort_values("seq_id")
    weights = resample_weights(bootstrap_indices(N_WINDOWS, 200, row.condition_key), N_WINDOWS)
    delta = pooled_ratio(weights, real_w["n_time"], real_w["den"]) - pooled_ratio(
        weights, null_w["n_time"], null_w["den"]
    )
    low, high = percentile_interval(delta)
    assert row.delta_b_time_ci_low == pytest.approx(low, abs=1e-15)
    assert row.delta_b_time_ci_high == pytest.approx(high, abs=1e-15)


def test_token_shuffle_null_is_compared_where_recorded(outputs):
    summary = outputs["controls_summary_A"]
    at_one = summary[(summary["g"] == 1.0) & (summary["intervention_id"] == "MLP_GLOBAL")]
    elsewhere = summary[~summary.index.isin(at_one.index)]
    assert (
        at_one["b_tot_tokshuf"].notna().all() and at_one["delta_b_tot_tokshuf_ci_low"].notna().all()
    )
    assert elsewhere["b_tot_tokshuf"].isna().all()  # the small config shuffles at g = 1 only
