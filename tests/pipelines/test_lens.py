"""The lens pipeline on the two-role small run (real checkpoints, real rasters, SequentialRunner)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.analysis import lens_alignment
from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure.gain import MLP_GLOBAL
from avalanche_kedro.measure.lens_prompts import PROMPT_COLUMNS
from avalanche_kedro.measure.sweep import NULL_NONE
from avalanche_kedro.pipelines.lens import create_pipeline
from avalanche_kedro.pipelines.lens.nodes import (
    TOKEN_COLUMNS,
    align_lens_with_cascades,
    check_lens_parameters,
    decode_lens_prompts,
    lens_gains,
    measure_lens,
)
from tests.pipelines.conftest import N_LAYERS, N_WINDOWS, SEQ_LEN, SMALL_PARAMS, load

ROLES = ("base", "instruct")


def _real_cond_id(conditions: pd.DataFrame, row) -> int:
    """cond_id of the real MLP_GLOBAL condition at a lens row's spike def, rate and g."""
    return conditions[
        (conditions["null_id"] == NULL_NONE)
        & (conditions["intervention_id"] == MLP_GLOBAL)
        & (conditions["spike_def_id"] == row.spike_def_id)
        & (conditions["target_rate"] == row.target_rate)
        & (conditions["g"] == row.g)
    ]["cond_id"].item()


@pytest.fixture(scope="module")
def lens_outputs(two_role_run):
    catalog, _, params = two_role_run
    names = [
        "lens_tokens",
        "lens_manifest",
        "lens_layers",
        "lens_alignment",
        "lens_collapse_crosstab",
        "lens_collapse_tokens",
        "lens_prompts",
        "gstar_A",
        "conditions_A",
        "event_rasters_A",
        "events_summary",
        "tau_table",
        "instrumentation_report",
        "model_manifest",
        "windows",
    ]
    return {role: {name: load(catalog, name, role) for name in names} for role in ROLES}, params


def test_pipeline_has_one_namespaced_copy_per_role_and_none_when_disabled():
    pipeline = create_pipeline(list(ROLES))
    assert {n.name for n in pipeline.nodes} == {
        f"{role}.{name}"
        for role in ROLES
        for name in ("measure_lens", "align_lens_with_cascades", "decode_lens_prompts")
    }
    assert not create_pipeline(list(ROLES), enabled=False).nodes


@pytest.mark.parametrize("role", ROLES)
def test_self_check_ran_before_any_measurement(lens_outputs, role):
    outputs, _ = lens_outputs
    report = outputs[role]["instrumentation_report"]
    assert report["lens_self_check_max_kl"] <= 1e-6  # the capture pipeline's validate step
    manifest = outputs[role]["lens_manifest"]
    assert manifest["lens_self_check_max_kl"] <= manifest["lens_self_check_tolerance"] == 1e-6
    gains = lens_gains(outputs[role]["gstar_A"])
    assert manifest["gains"] == gains and 1.0 in gains
    assert manifest["forward_passes"] == len(gains) * N_WINDOWS


@pytest.mark.parametrize("role", ROLES)
def test_token_table_covers_every_gain_window_layer_and_token(lens_outputs, role):
    outputs, _ = lens_outputs
    tokens = outputs[role]["lens_tokens"]
    gains = lens_gains(outputs[role]["gstar_A"])
    assert list(tokens.columns) == TOKEN_COLUMNS
    assert len(tokens) == len(gains) * N_WINDOWS * N_LAYERS * SEQ_LEN
    assert sorted(tokens["g"].unique()) == gains
    last = tokens[tokens["position"] == SEQ_LEN - 1]
    assert last["p_next"].isna().all() and (last["rank_next"] == -1).all()
    rest = tokens[tokens["position"] < SEQ_LEN - 1]
    assert rest["p_next"].between(0, 1).all() and (rest["rank_next"] >= 1).all()
    final = tokens[tokens["layer"] == N_LAYERS - 1]
    assert final["agrees_final"].all() and (final["kl_to_final_nats"] == 0).all()
    assert (tokens["kl_to_final_nats"] >= 0).all()
    assert tokens["entropy_nats"].between(0, np.log(20000)).all()


@pytest.mark.parametrize("role", ROLES)
def test_layer_rows_set_the_lens_next_to_the_rate_matched_events(lens_outputs, role):
    outputs, params = lens_outputs
    layers, tokens = outputs[role]["lens_layers"], outputs[role]["lens_tokens"]
    gstar = outputs[role]["gstar_A"]
    n_cells = len(params["calibration"]["spike_defs"]) * len(params["calibration"]["target_rates"])
    assert len(layers) == 2 * n_cells * N_LAYERS
    assert set(layers["g_condition"]) == {"g1", "gstar"}
    # the event rate of a layer is the tau table's achieved rate on the analysis slice
    tau = outputs[role]["tau_table"]
    tau = tau[tau["intervention_id"] == MLP_GLOBAL]
    merged = layers.merge(
        tau, on=["spike_def_id", "target_rate", "g", "layer"], how="left", validate="m:1"
    )
    np.testing.assert_allclose(merged["event_rate"], merged["achieved_rate_analysis"])
    # the lens columns are the token table's means at that gain
    for row in layers.sample(6, random_state=0).itertuples():
        part = tokens[(tokens["g"] == row.g) & (tokens["layer"] == row.layer)]
        assert row.n_tokens == N_WINDOWS * SEQ_LEN
        assert row.mean_entropy_nats == pytest.approx(part["entropy_nats"].mean(), rel=1e-6)
        assert row.top1_agreement == pytest.approx(part["agrees_final"].mean())
    star = layers[layers["g_condition"] == "gstar"].merge(
        gstar[["spike_def_id", "target_rate", "g_star"]], on=["spike_def_id", "target_rate"]
    )
    assert (star["g"] == star["g_star"]).all()
    assert (
        layers[["occupancy", "avalanche_site_fraction"]]
        .apply(lambda c: c.between(0, 1))
        .all()
        .all()
    )
    assert (layers["avalanche_site_fraction"] <= layers["occupancy"]).all()


@pytest.mark.parametrize("role", ROLES)
def test_collapse_against_cascade_depth_per_condition(lens_outputs, role):
    outputs, params = lens_outputs
    alignment = outputs[role]["lens_alignment"]
    crosstab = outputs[role]["lens_collapse_crosstab"]
    n_cells = len(params["calibration"]["spike_defs"]) * len(params["calibration"]["target_rates"])
    assert len(alignment) == 2 * n_cells
    assert (alignment["n_tokens"] == N_WINDOWS * SEQ_LEN).all()
    assert (alignment["n_replicates"] == SMALL_PARAMS["lens"]["bootstrap_replicates"]).all()
    keys = ["g_condition", "spike_def_id", "target_rate"]
    for row in alignment.itertuples():
        cells = crosstab[
            (crosstab["g_condition"] == row.g_condition)
            & (crosstab["spike_def_id"] == row.spike_def_id)
            & (crosstab["target_rate"] == row.target_rate)
        ]
        assert cells["n_tokens"].sum() == row.n_tokens
        weights = cells["n_tokens"] / row.n_tokens
        assert row.mean_cascade_depth == pytest.approx((weights * cells["cascade_depth"]).sum())
        assert row.mean_collapse_layer == pytest.approx((weights * cells["collapse_layer"]).sum())
        if row.defined:
            assert row.rho_ci_low <= row.spearman_rho <= row.rho_ci_high
            assert 0 < row.p_value_vs_null <= 1
    assert not alignment.duplicated(keys).any()


@pytest.mark.parametrize("role", ROLES)
def test_per_token_table_pairs_collapse_layer_and_cascade_depth(lens_outputs, role):
    """Collapse layers from the lens's own agreement flags and cascade depths from the raster
    counts, recomputed here token by token, for one condition of each gain condition."""
    outputs, params = lens_outputs
    tokens = outputs[role]["lens_collapse_tokens"]
    n_cells = len(params["calibration"]["spike_defs"]) * len(params["calibration"]["target_rates"])
    assert len(tokens) == 2 * n_cells * N_WINDOWS * SEQ_LEN
    lens_tokens, rasters = outputs[role]["lens_tokens"], outputs[role]["event_rasters_A"]
    conditions = outputs[role]["conditions_A"]
    for condition in ("g1", "gstar"):
        part = tokens[tokens["g_condition"] == condition].iloc[: N_WINDOWS * SEQ_LEN]
        row = part.iloc[0]
        flags = lens_tokens[lens_tokens["g"] == row.g]
        cond = _real_cond_id(conditions, row)
        counts = np.asarray(rasters.counts(cond))
        window_of = {int(s): i for i, s in enumerate(rasters.seq_id)}
        for token in part.sample(20, random_state=1).itertuples():
            agree = flags[(flags["seq_id"] == token.seq_id) & (flags["position"] == token.position)]
            agree = agree.sort_values("layer")["agrees_final"].to_numpy()
            collapse = next(l for l in range(N_LAYERS) if agree[l:].all())  # noqa: E741
            active = np.flatnonzero(counts[window_of[token.seq_id], :, token.position] > 0)
            depth = int(active.max() - active.min() + 1) if active.size else 0
            assert (token.collapse_layer, token.cascade_depth) == (collapse, depth)
    # the crosstab is this table's joint counts
    crosstab = outputs[role]["lens_collapse_crosstab"]
    keys = ["g_condition", "spike_def_id", "target_rate", "collapse_layer", "cascade_depth"]
    counted = tokens.groupby(keys).size().rename("n_tokens").reset_index()
    merged = crosstab.merge(counted, on=keys, suffixes=("", "_counted"), validate="1:1")
    assert len(merged) == len(crosstab) == len(counted)
    assert (merged["n_tokens"] == merged["n_tokens_counted"]).all()


def test_alignment_is_recomputed_identically(lens_outputs, two_role_run):
    outputs, params = lens_outputs
    base = outputs["base"]
    again = align_lens_with_cascades(
        base["lens_tokens"],
        base["event_rasters_A"],
        base["conditions_A"],
        base["gstar_A"],
        base["events_summary"],
        params["lens"],
    )
    pd.testing.assert_frame_equal(again[0], base["lens_layers"])
    pd.testing.assert_frame_equal(again[1], base["lens_alignment"])
    pd.testing.assert_frame_equal(again[2], base["lens_collapse_crosstab"])
    pd.testing.assert_frame_equal(again[3], base["lens_collapse_tokens"])


def test_fewer_windows_align_with_the_same_windows_of_the_rasters(lens_outputs):
    outputs, params = lens_outputs
    base = outputs["base"]
    lens = {**params["lens"], "max_windows": 3}
    tokens, manifest = measure_lens(
        base["model_manifest"], base["windows"], base["gstar_A"], params["runtime"], lens
    )
    assert manifest["n_windows"] == 3 and tokens["seq_id"].nunique() == 3
    layers, alignment, _, _ = align_lens_with_cascades(
        tokens,
        base["event_rasters_A"],
        base["conditions_A"],
        base["gstar_A"],
        base["events_summary"],
        lens,
    )
    assert (alignment["n_windows"] == 3).all()
    conditions = base["conditions_A"]
    row = layers.iloc[0]
    cond = _real_cond_id(conditions, row)
    counts = np.asarray(base["event_rasters_A"].counts(cond))[:3]
    expected = lens_alignment.layer_site_fractions(counts, base["events_summary"]["d_ff"])
    assert row.event_rate == pytest.approx(expected["event_rate"].iloc[int(row.layer)])
    # the full-window tokens at g = 1 agree with the 3-window ones on those windows
    full = base["lens_tokens"]
    full = full[(full["g"] == 1.0) & full["seq_id"].isin(tokens["seq_id"].unique())]
    small = tokens[tokens["g"] == 1.0]
    np.testing.assert_allclose(
        small["entropy_nats"].to_numpy(), full["entropy_nats"].to_numpy(), atol=1e-6
    )


def test_windows_the_rasters_lack_are_an_error(lens_outputs):
    outputs, params = lens_outputs
    base = outputs["base"]
    tokens = base["lens_tokens"].copy()
    tokens["seq_id"] += 10_000
    with pytest.raises(ValueError, match="re-run the lens pipeline"):
        align_lens_with_cascades(
            tokens,
            base["event_rasters_A"],
            base["conditions_A"],
            base["gstar_A"],
            base["events_summary"],
            params["lens"],
        )


@pytest.mark.parametrize("role", ROLES)
def test_prompt_view_per_prompt_and_layer(lens_outputs, role):
    outputs, _ = lens_outputs
    prompts = outputs[role]["lens_prompts"]
    assert list(prompts.columns) == PROMPT_COLUMNS
    assert len(prompts) == N_LAYERS * SMALL_PARAMS["lens"]["top_k"]
    assert (prompts["prompt"] == SMALL_PARAMS["lens"]["prompts"][0]).all()
    assert prompts.groupby("layer")["prob"].sum().le(1 + 1e-6).all()


def test_empty_prompt_list_skips_the_view_and_says_so(lens_outputs, caplog):
    outputs, params = lens_outputs
    with caplog.at_level(logging.WARNING):
        table = decode_lens_prompts(
            {"model_id": "never loaded"}, params["runtime"], {**params["lens"], "prompts": []}
        )
    assert table.empty and list(table.columns) == PROMPT_COLUMNS
    assert "lens.prompts is empty" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_k": 0}, r"lens\.top_k = 0: .*an integer >= 1"),
        ({"null_permutations": "many"}, "lens.null_permutations"),
        ({"adjacency": "ADJ_6N"}, "lens.adjacency"),
        ({"max_windows": 1}, "lens.max_windows"),
        ({"self_check_kl_tolerance": -1}, "self_check_kl_tolerance"),
        ({"prompts": "What is"}, r"lens\.prompts = 'What is': .*list"),
    ],
)
def test_bad_lens_parameters_fail_before_any_model_loads(lens_outputs, change, message):
    outputs, params = lens_outputs
    base = outputs["base"]
    with pytest.raises(ConfigurationError, match=message):
        check_lens_parameters({**params["lens"], **change})
    unloadable = {**base["model_manifest"], "checkpoint": "/nonexistent/never-loaded"}
    with pytest.raises(ConfigurationError, match=message):
        measure_lens(
            unloadable,
            base["windows"],
            base["gstar_A"],
            params["runtime"],
            {**params["lens"], **change},
        )


@pytest.fixture(scope="module")
def lens_report(control_run):
    """T10, T11, F13, F14 and the report's lens section on the two-role run, with `instruct`
    standing in for the untrained control (the two-role run has no untrained role)."""
    from kedro.pipeline import Pipeline
    from kedro.runner import SequentialRunner

    from avalanche_kedro.pipelines import reporting
    from tests.pipelines.conftest import CONTROL_ROLE

    catalog, _, _ = control_run  # T08 with `instruct` as the control is already built
    report = reporting.create_pipeline(list(ROLES), control_role=CONTROL_ROLE, lens=True)
    names = [
        "reporting.tables.build_T10_LENS",
        "reporting.tables.build_T11_COLLAPSE_VS_CASCADE",
        "reporting.figures.draw_F13_LENS_DEPTH",
        "reporting.figures.draw_F14_COLLAPSE_VS_CASCADE",
    ]
    pipeline = report.only_nodes(*names) + Pipeline(
        report.only_nodes("reporting.report.build_run_report"),
        outputs={
            "run_report": "run_report_with_lens",
            "run_report_html": "run_report_html_with_lens",
        },
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog


def test_t11_pairs_each_trained_role_with_the_control_on_the_same_windows(lens_report):
    t11 = lens_report.load("T11_COLLAPSE_VS_CASCADE")
    base, control = t11[t11["model_role"] == "base"], t11[t11["model_role"] == "instruct"]
    assert (base["control_role"] == "instruct").all() and (control["control_role"] == "").all()
    assert control["diff_rho_vs_control"].isna().all()
    both = base.merge(control, on=["g_condition", "spike_def_id", "target_rate"])
    defined = both[both["defined_x"] & both["defined_y"]]
    assert len(defined) > 0
    np.testing.assert_allclose(
        defined["diff_rho_vs_control_x"], defined["spearman_rho_x"] - defined["spearman_rho_y"]
    )
    assert (
        defined["diff_rho_ci_low_vs_control_x"] <= defined["diff_rho_ci_high_vs_control_x"]
    ).all()
    t10 = lens_report.load("T10_LENS")
    assert set(t10["model_role"]) == set(ROLES)


def test_report_has_the_lens_section_with_a_paired_control_comparison(lens_report):
    text = lens_report.load("run_report_with_lens")
    assert "## Where the prediction forms vs where cascades run (T10, T11)" in text
    assert "### Against the untrained control `instruct`" in text
    assert "CI of the paired difference" in text
    assert "not paired" not in text


def test_a_token_table_with_missing_rows_is_an_error(lens_outputs):
    outputs, params = lens_outputs
    base = outputs["base"]
    with pytest.raises(ValueError, match="not one per \\(window, layer, token\\)"):
        align_lens_with_cascades(
            base["lens_tokens"].iloc[1:],
            base["event_rasters_A"],
            base["conditions_A"],
            base["gstar_A"],
            base["events_summary"],
            params["lens"],
        )
