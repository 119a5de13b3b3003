"""Events pipeline through Kedro's SequentialRunner on the real datasets: the condition table,
rate-matched thresholds at every gain, event rasters, interventions and determinism."""

from __future__ import annotations

import numpy as np

from avalanche_kedro.measure.gain import band_edges
from avalanche_kedro.measure.windows import slice_windows

from .conftest import D_FF, N_LAYERS, SEQ_LEN, SMALL_PARAMS, load, run_study


def test_conditions_cover_every_setting(small_run):
    catalog, _ = small_run
    conditions = load(catalog, "conditions_A")
    settings = conditions[["null_id", "intervention_id", "g"]].drop_duplicates()
    assert len(settings) == 3 + 1 + 1 + 1  # MLP grid, ATTN 1.25, band 0.8, shuffle 1.0
    assert len(conditions) == len(settings) * 2 * 2
    assert list(conditions["cond_id"]) == list(range(len(conditions)))
    assert conditions["condition_key"].iloc[0] == "A|SPIKE_ONE_SIDED_POS|0.004|0.8|MLP_GLOBAL"


def test_every_threshold_is_rate_matched(small_run):
    catalog, _ = small_run
    taus = load(catalog, "tau_table")
    settings = taus[["intervention_id", "g"]].drop_duplicates()
    assert len(settings) == 5  # thresholds are re-fitted for every real setting
    assert len(taus) == 5 * 2 * 2 * N_LAYERS
    assert (taus["rate_match_abs_err"] <= taus["rate_match_tol"]).all()
    assert (taus["n_exceed_calibration"] <= taus["m_budget"]).all()
    assert taus["achieved_rate_analysis"].notna().all()
    assert (taus["n_values"] == 8 * SEQ_LEN * D_FF).all()


def test_rasters_match_the_condition_table(small_run):
    catalog, _ = small_run
    rasters = load(catalog, "event_rasters_A")
    conditions = load(catalog, "conditions_A")
    windows = load(catalog, "windows")
    taus = load(catalog, "tau_table")
    assert rasters.A.shape == (len(conditions), 8, N_LAYERS, SEQ_LEN)
    assert rasters.A.dtype == np.uint16 and rasters.X.dtype == np.uint8
    np.testing.assert_array_equal(rasters.cond_id, conditions["cond_id"])
    _, analysis_ids = slice_windows(windows, "analysis")
    np.testing.assert_array_equal(rasters.seq_id, analysis_ids)
    np.testing.assert_array_equal(rasters.X, (np.asarray(rasters.A) > 0).astype(np.uint8))
    assert int(np.asarray(rasters.A).max()) <= D_FF
    # per-layer event totals of each real condition are the tau table's analysis counts
    real = conditions[conditions["null_id"] == "NULL_NONE"]
    for row in real.itertuples():
        per_layer = rasters.counts(row.cond_id).sum(axis=(0, 2))
        expected = taus[
            (taus["intervention_id"] == row.intervention_id)
            & (taus["g"] == row.g)
            & (taus["spike_def_id"] == row.spike_def_id)
            & (taus["target_rate"] == row.target_rate)
        ].sort_values("layer")["n_exceed_analysis"]
        np.testing.assert_array_equal(per_layer, expected.to_numpy())


def test_token_shuffle_null_changes_the_raster(small_run):
    catalog, _ = small_run
    rasters = load(catalog, "event_rasters_A")
    conditions = load(catalog, "conditions_A")
    at_one = conditions[(conditions["g"] == 1.0) & (conditions["intervention_id"] == "MLP_GLOBAL")]
    for key, pair in at_one.groupby("condition_key"):
        real = pair[pair["null_id"] == "NULL_NONE"]["cond_id"].item()
        shuffled = pair[pair["null_id"] == "NULL_TOKEN_SHUFFLE_INPUT"]["cond_id"].item()
        assert not np.array_equal(rasters.counts(real), rasters.counts(shuffled)), key


def test_interventions_use_their_own_thresholds(small_run):
    catalog, _ = small_run
    taus = load(catalog, "tau_table")
    c1, c2 = band_edges(N_LAYERS)
    assert (c1, c2) == (1, 2)

    def tau(intervention, g):
        part = taus[
            (taus["intervention_id"] == intervention)
            & (taus["g"] == g)
            & (taus["spike_def_id"] == "SPIKE_ONE_SIDED_POS")
            & (taus["target_rate"] == 0.004)
        ]
        return part.sort_values("layer")["tau"].to_numpy()

    # A late-band gain leaves the layers before c2 untouched, so their thresholds equal g = 1's.
    np.testing.assert_array_equal(tau("MLP_BAND_LATE", 0.8)[:c2], tau("MLP_GLOBAL", 1.0)[:c2])
    assert not np.array_equal(tau("MLP_BAND_LATE", 0.8)[c2:], tau("MLP_GLOBAL", 1.0)[c2:])
    assert not np.array_equal(tau("MLP_GLOBAL", 0.8), tau("MLP_GLOBAL", 1.0))


def test_no_scratch_left_behind(small_run):
    _, root = small_run
    assert list((root / "scratch").iterdir()) == []


def test_same_config_gives_byte_identical_outputs(small_run, tmp_path):
    catalog, root = small_run
    second = run_study(tmp_path)
    for name in [
        "windows",
        "unit_moments",
        "rate_targets",
        "conditions_A",
        "tau_table",
        "avalanches_A",
        "branching_per_window_A",
        "cascade_summary_A",
        "crackling_fits_A",
        "tail_fits_A",
        "null_branching_per_window_A",
        "marginal_checks_A",
        "controls_summary_A",
    ]:
        first_path = _latest(root, name)
        second_path = _latest(tmp_path, name)
        assert first_path.read_bytes() == second_path.read_bytes(), name
    first = load(catalog, "event_rasters_A")
    again = second.load("base.event_rasters_A")
    assert (first.directory / "A.npy").read_bytes() == (again.directory / "A.npy").read_bytes()
    assert SMALL_PARAMS["gain_grid"] == [0.8, 1.0, 1.25]


def _latest(root, name):
    matches = sorted(root.glob(f"data/*/base/{name}.parquet/*/{name}.parquet"))
    assert matches, name
    return matches[-1]
