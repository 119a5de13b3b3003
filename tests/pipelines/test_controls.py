"""Controls pipeline on rasters written by the events pipeline (SequentialRunner): raster nulls,
exact marginal checks and the paired comparison of real and null branching."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.bootstrap import (
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
)
from avalanche_kedro.analysis.lattice import branching_counts
from avalanche_kedro.analysis.nulls import RASTER_NULLS, null_raster

from .conftest import N_WINDOWS


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


def test_rasters_of_another_condition_table_stop_the_null_node():
    import pandas as pd

    from avalanche_kedro.core.errors import ArtifactError
    from avalanche_kedro.measure.rasters import EventRasters
    from avalanche_kedro.pipelines.controls.nodes import measure_null_branching

    A = np.zeros((2, 3, 2, 4), dtype=np.uint16)
    rasters = EventRasters(
        A=A,
        X=(A > 0).astype(np.uint8),
        cond_id=np.array([0, 5], dtype=np.int32),
        seq_id=np.arange(3, dtype=np.int32),
    )
    with pytest.raises(ArtifactError, match=r"not in conditions_A: \[5\]"):
        measure_null_branching(rasters, pd.DataFrame({"cond_id": [0, 1]}))
