"""The calibration pipeline (SPEC §8) on the small embedded-recipe run: g*, dataset B, ARC and
the ablations, through SequentialRunner on the project catalog re-rooted in a temporary folder."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kedro.runner import SequentialRunner

from avalanche_kedro.analysis.lattice import branching
from avalanche_kedro.evaluation.arc import ArcFormatError, normalize_arc_records, prompt_set_sha256
from avalanche_kedro.evaluation.gstar import select_gstar
from avalanche_kedro.evaluation.perplexity import perplexity_difference_vs_gain
from avalanche_kedro.measure.checkpoints import load_model
from avalanche_kedro.measure.gain import band_edges
from avalanche_kedro.measure.windows import slice_windows
from avalanche_kedro.pipelines import calibration
from avalanche_kedro.pipelines.calibration.ablation_nodes import (
    fit_ablation_thresholds,
    record_ablation_rasters,
)
from avalanche_kedro.pipelines.events.nodes import remove_rasters
from tests.conftest import PROJECT_ROOT, SMALL_RECIPE

from .conftest import SMALL_PARAMS, project_catalog, small_parameters

ARC_FILE = PROJECT_ROOT / "data" / "01_raw" / "arc_embedded.jsonl"
ARC_TARGET = "data/01_raw/arc_embedded.jsonl"  # the catalog's arc_questions filepath
N_EVAL_B = SMALL_PARAMS["windows"]["n_eval_b"]
N_WINDOWS_RASTER = SMALL_PARAMS["windows"]["n_raster"]
SEQ_LEN = SMALL_PARAMS["windows"]["seq_len"]
N_QUESTIONS = SMALL_PARAMS["arc"]["max_questions"]
INTERVENTIONS = SMALL_PARAMS["ablations"]["interventions"]
KEY = ["spike_def_id", "target_rate"]


def load(catalog, name):
    return catalog.load(f"base.{name}")


@pytest.fixture(scope="module")
def outputs(small_run):
    catalog, root = small_run
    target = root / ARC_TARGET
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARC_FILE, target)
    SequentialRunner().run(calibration.create_pipeline(["base"]), catalog)
    names = [
        "gstar_A",
        "conditions_B",
        "conditions_ablation",
        "lm_loss_B",
        "achieved_rates_B",
        "event_rasters_B",
        "generalization_B",
        "arc_scores",
        "arc_manifest",
        "arc_summary",
        "ablation_threshold_fit",
        "ablation_tau_table",
        "ablations_A",
        "cascade_summary_A",
        "controls_summary_A",
        "tau_table",
        "windows",
        "model_manifest",
    ]
    return {name: load(catalog, name) for name in names}


def gstars(outputs) -> dict[tuple[str, float], float]:
    return {(r.spike_def_id, r.target_rate): r.g_star for r in outputs["gstar_A"].itertuples()}


def n_pairs() -> int:
    return len(SMALL_PARAMS["calibration"]["spike_defs"]) * len(
        SMALL_PARAMS["calibration"]["target_rates"]
    )


# --- g* ------------------------------------------------------------------------------------------


def test_gstar_is_the_argmin_of_the_dataset_A_curve(outputs):
    table, summary = outputs["gstar_A"], outputs["cascade_summary_A"]
    assert len(table) == n_pairs()
    assert not table.duplicated(KEY).any()
    real = summary[
        (summary["dataset_role"] == "A")
        & (summary["intervention_id"] == "MLP_GLOBAL")
        & (summary["null_id"] == "NULL_NONE")
    ]
    for row in table.itertuples():
        curve = real[
            (real["spike_def_id"] == row.spike_def_id) & (real["target_rate"] == row.target_rate)
        ]
        curve = curve.sort_values("g")
        assert list(curve["g"]) == SMALL_PARAMS["gain_grid"]
        assert row.g_star == select_gstar(curve["g"].to_numpy(), curve["b_tot"].to_numpy())
        assert row.g_star in SMALL_PARAMS["gain_grid"]
        np.testing.assert_array_equal(row.curve_b_tot, curve["b_tot"].to_numpy())
        assert row.b_tot_at_gstar == curve.loc[curve["g"] == row.g_star, "b_tot"].item()
        assert row.model_role == "base"


def test_gstar_reads_branching_only():
    """The g* node has no task metric among its inputs, so none can influence it: the curve,
    the conditions and the per-window branching counts (for its identification)."""
    (node,) = [
        n for n in calibration.create_pipeline(["base"]).nodes if n.name.endswith("select_gstar")
    ]
    assert sorted(node.inputs) == [
        "base.branching_per_window_A",
        "base.cascade_summary_A",
        "base.conditions_A",
        "params:gstar",
    ]


def test_gstar_identification_is_recorded_for_every_curve(outputs):
    """Identified exactly when the margin CI of the hardest gain to exclude lies above 0."""
    table = outputs["gstar_A"]
    grid = SMALL_PARAMS["gain_grid"]
    for row in table.itertuples():
        assert row.gstar_runner_up_g in grid and row.gstar_runner_up_g != row.g_star
        assert row.gstar_margin_ci_low <= row.gstar_margin_ci_high
        assert bool(row.gstar_identified) == (row.gstar_margin_ci_low > 0)
        assert bool(row.gstar_identified) == (row.gstar_n_gains_not_excluded == 0)
        assert row.gstar_at_grid_edge == (row.g_star in (min(grid), max(grid)))
        assert row.gstar_identification_key == f"A|gstar|{row.spike_def_id}|{row.target_rate!r}"


# --- dataset B -----------------------------------------------------------------------------------


def test_conditions_B_hold_g1_and_every_gstar(outputs):
    conditions = outputs["conditions_B"]
    gains = {1.0, *gstars(outputs).values()}
    assert set(conditions["g"]) == gains
    assert len(conditions) == len(gains) * n_pairs()
    assert not conditions.duplicated([*KEY, "g"]).any()
    assert (conditions["dataset_role"] == "B").all()
    assert (conditions["intervention_id"] == "MLP_GLOBAL").all()
    assert (conditions["null_id"] == "NULL_NONE").all()
    rasters = outputs["event_rasters_B"]
    assert rasters.A.shape[0] == len(conditions) and rasters.A.shape[1] == N_EVAL_B


def test_lm_loss_B_equals_a_manual_cross_entropy(outputs, small_run):
    catalog, _ = small_run
    loss = outputs["lm_loss_B"]
    gains = sorted({1.0, *gstars(outputs).values()})
    ids, seq_ids = slice_windows(outputs["windows"], "eval_b")
    assert ids.shape == (N_EVAL_B, SEQ_LEN)
    assert len(loss) == len(gains) * N_EVAL_B
    assert not loss.duplicated(["g", "seq_id"]).any()
    assert sorted(loss["g"].unique()) == gains
    assert (loss["n_tokens"] == SEQ_LEN - 1).all()
    for g in gains:
        assert sorted(loss.loc[loss["g"] == g, "seq_id"]) == sorted(seq_ids.tolist())

    loaded = load_model(outputs["model_manifest"], catalog.load("params:runtime"))
    with torch.inference_mode():
        logits = loaded.model(input_ids=torch.as_tensor(ids), use_cache=False).logits.float()
    V = logits.shape[-1]
    per_token = F.cross_entropy(
        logits[:, :-1].reshape(-1, V), torch.as_tensor(ids)[:, 1:].reshape(-1), reduction="none"
    )
    expected = per_token.reshape(N_EVAL_B, SEQ_LEN - 1).double().sum(dim=1).numpy()
    at_1 = loss[loss["g"] == 1.0].set_index("seq_id").loc[seq_ids, "nll_sum"].to_numpy()
    np.testing.assert_allclose(at_1, expected, rtol=1e-5)
    for g in gains:
        if g != 1.0:
            other = loss[loss["g"] == g].set_index("seq_id").loc[seq_ids, "nll_sum"].to_numpy()
            assert not np.allclose(other, at_1, rtol=1e-7, atol=0)  # the gain was applied


def test_generalization_B(outputs):
    table, loss, conditions = (
        outputs["generalization_B"],
        outputs["lm_loss_B"],
        outputs["conditions_B"],
    )
    rasters = outputs["event_rasters_B"]
    picked = gstars(outputs)
    assert len(table) == 2 * n_pairs()
    assert not table.duplicated([*KEY, "g_condition"]).any()
    for key, g_star in picked.items():
        rows = table.set_index([*KEY, "g_condition"])
        assert rows.loc[(*key, "g1"), "g"] == 1.0
        assert rows.loc[(*key, "gstar"), "g"] == g_star
    for row in table.itertuples():
        part = loss[loss["g"] == row.g]
        assert row.nll_mean == pytest.approx(
            part["nll_sum"].sum() / part["n_tokens"].sum(), rel=1e-12
        )
        assert row.ppl == pytest.approx(np.exp(row.nll_mean), rel=1e-12)
        assert row.ppl_ci_low <= row.ppl <= row.ppl_ci_high
        assert row.nll_mean_ci_low <= row.nll_mean <= row.nll_mean_ci_high
        assert row.dataset_role == "B" and row.n_sequences == N_EVAL_B
        condition = conditions[(conditions["cond_id"] == row.cond_id)].iloc[0]
        assert (condition.spike_def_id, condition.target_rate, condition.g) == (
            row.spike_def_id,
            row.target_rate,
            row.g,
        )
        pooled = branching(np.asarray(rasters.counts(row.cond_id)) > 0)
        assert row.b_tot == pytest.approx(pooled["b_time"] + pooled["b_depth"], abs=1e-15)
        assert np.isfinite(row.achieved_rate_mean) and np.isfinite(row.achieved_rate_max_abs_err)
        assert row.marginals_preserved_perm and row.marginals_preserved_shift
        # g* against g = 1 on the same windows (falsifier (c)): only on the g* rows
        if row.g_condition == "g1":
            assert np.isnan(row.ppl_diff_vs_g1) and np.isnan(row.n_windows_worse)
            continue
        expected = perplexity_difference_vs_gain(loss, row.g, 1.0, "B|LM", 200)
        assert row.ppl_diff_vs_g1 == pytest.approx(row.ppl - table_g1(table, row).ppl, rel=1e-9)
        assert row.ppl_diff_vs_g1_ci_low == pytest.approx(expected["ppl_diff_ci_low"])
        assert row.ppl_diff_vs_g1_ci_low <= row.ppl_diff_vs_g1 <= row.ppl_diff_vs_g1_ci_high
        assert row.n_windows_paired == N_EVAL_B and 0 <= row.n_windows_worse <= N_EVAL_B
        # is b_tot on B nearer 1 at g*: the paired margin over the same windows
        g1_b = table_g1(table, row).b_tot
        if row.g == 1.0:
            assert np.isnan(row.b_nearer_margin_vs_g1)
            continue
        margin = abs(g1_b - 1) - abs(row.b_tot - 1)
        assert row.b_nearer_margin_vs_g1 == pytest.approx(margin, abs=1e-12)
        assert row.b_nearer_margin_vs_g1_ci_low <= row.b_nearer_margin_vs_g1_ci_high
    # The per-layer achieved rates on B use the dataset A thresholds, reported per condition.
    achieved = outputs["achieved_rates_B"]
    assert len(achieved) == len(conditions) * rasters.A.shape[2]
    d_ff = SMALL_RECIPE["intermediate_size"]
    assert (achieved["n_values"] == N_EVAL_B * SEQ_LEN * d_ff).all()


def table_g1(table, row):
    """The g = 1 row of the same (spike def, target rate)."""
    return table.set_index([*KEY, "g_condition"]).loc[(row.spike_def_id, row.target_rate, "g1")]


# --- ARC -----------------------------------------------------------------------------------------


def test_arc_scores_and_manifest(outputs):
    scores, manifest = outputs["arc_scores"], outputs["arc_manifest"]
    gains = sorted({1.0, *gstars(outputs).values()})
    records = [json.loads(line) for line in ARC_FILE.read_text().splitlines()][:N_QUESTIONS]
    assert manifest["question_ids"] == [r["id"] for r in records]
    assert manifest["n_questions"] == N_QUESTIONS
    assert manifest["gains"] == gains
    digest = manifest["prompt_sha256"]
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    assert digest == prompt_set_sha256(normalize_arc_records(records))
    assert len(scores) == N_QUESTIONS * len(gains)
    assert not scores.duplicated(["question_id", "g"]).any()
    assert sum(manifest["scoring_paths"].values()) == len(scores)
    for row in scores.itertuples():
        values = np.asarray(row.scores)
        assert row.predicted == row.labels[int(np.argmax(values))]
        assert np.isfinite(values).all() and (values < 0).all()


def test_arc_summary(outputs):
    summary, scores = outputs["arc_summary"], outputs["arc_scores"]
    assert len(summary) == 2 * n_pairs()
    for row in summary.itertuples():
        part = scores[scores["g"] == row.g]
        assert row.n_questions == N_QUESTIONS
        assert row.accuracy == pytest.approx(part["correct"].mean())
        assert 0.0 <= row.accuracy_ci_low <= row.accuracy <= row.accuracy_ci_high <= 1.0
        assert row.mean_logprob_correct_minus_incorrect == pytest.approx(part["margin"].mean())
        assert row.n_single_pass + row.n_per_option == N_QUESTIONS
        assert row.chance_accuracy == pytest.approx((1.0 / part["n_options"]).mean())
        expected_g = (
            1.0 if row.g_condition == "g1" else gstars(outputs)[(row.spike_def_id, row.target_rate)]
        )
        assert row.g == expected_g
        if row.g_condition == "g1":
            assert np.isnan(row.accuracy_diff_vs_g1)
            continue
        g1 = summary[
            (summary["g_condition"] == "g1") & (summary["spike_def_id"] == row.spike_def_id)
        ]
        assert row.accuracy_diff_vs_g1 == pytest.approx(row.accuracy - g1["accuracy"].iloc[0])
        assert row.accuracy_diff_vs_g1_ci_low <= row.accuracy_diff_vs_g1
        assert row.accuracy_diff_vs_g1 <= row.accuracy_diff_vs_g1_ci_high
        assert 0 <= row.n_discordant <= N_QUESTIONS


# --- ablations -----------------------------------------------------------------------------------


def test_ablation_table(outputs):
    table, controls = outputs["ablations_A"], outputs["controls_summary_A"]
    picked = gstars(outputs)
    assert len(table) == (2 + len(INTERVENTIONS)) * n_pairs()
    for key, g_star in picked.items():
        part = table[(table["spike_def_id"] == key[0]) & (table["target_rate"] == key[1])]
        plan = [(r.g_condition, r.g, r.intervention_id, r.gain_target) for r in part.itertuples()]
        assert plan == [
            ("g1", 1.0, "MLP_GLOBAL", "MLP"),
            ("gstar", g_star, "MLP_GLOBAL", "MLP"),
            *[("gstar", g_star, i, "ATTN" if i == "ATTN_GLOBAL" else "MLP") for i in INTERVENTIONS],
        ]
        for row in part[part["intervention_id"] == "MLP_GLOBAL"].itertuples():
            real = controls[
                (controls["intervention_id"] == "MLP_GLOBAL")
                & (controls["null_id"] == "NULL_NONE")
                & (controls["spike_def_id"] == key[0])
                & (controls["target_rate"] == key[1])
                & (controls["g"] == row.g)
            ]
            assert row.b_tot == real["b_tot"].item() and row.chi == real["chi"].item()
        # the paired shifts from MLP_GLOBAL at g = 1 (same windows): on the g* rows only
        g1_b_tot = part.loc[part["g_condition"] == "g1", "b_tot"].item()
        assert part.loc[part["g_condition"] == "g1", "shift_vs_g1"].isna().all()
        for row in part[part["g_condition"] == "gstar"].itertuples():
            assert row.shift_vs_g1 == pytest.approx(row.b_tot - g1_b_tot, abs=1e-12)
            assert row.shift_vs_g1_ci_low <= row.shift_vs_g1_ci_high
        (mlp,) = part[
            (part["g_condition"] == "gstar") & (part["intervention_id"] == "MLP_GLOBAL")
        ].itertuples()
        attn = part[part["intervention_id"] == "ATTN_GLOBAL"]["shift_vs_g1"].item()
        assert mlp.tracks_margin == pytest.approx(abs(mlp.shift_vs_g1) - abs(attn), abs=1e-12)
        assert mlp.tracks_margin_ci_low <= mlp.tracks_margin_ci_high
    assert table[["b_tot", "chi", "achieved_rate_max_abs_err"]].notna().all().all()
    assert (table["n_sequences"] == SMALL_PARAMS["windows"]["n_raster"]).all()


def _taus(table, intervention, g, spike_def, rate):
    part = table[
        (table["intervention_id"] == intervention)
        & (table["g"] == g)
        & (table["spike_def_id"] == spike_def)
        & (table["target_rate"] == rate)
    ]
    return part.sort_values("layer")["tau"].to_numpy()


def test_ablation_thresholds_are_rate_matched(outputs):
    fit = outputs["ablation_threshold_fit"]
    n_layers = SMALL_RECIPE["num_hidden_layers"]
    assert set(fit["intervention_id"]) == set(INTERVENTIONS)
    assert set(fit["g"]) == set(gstars(outputs).values())
    assert len(fit) == len(INTERVENTIONS) * fit["g"].nunique() * n_pairs() * n_layers
    assert (fit["rate_match_abs_err"] <= fit["rate_match_tol"]).all()
    tau_table = outputs["ablation_tau_table"]
    assert tau_table["achieved_rate_analysis"].notna().all()


def test_ablation_hooks_act_only_on_the_intended_layers(outputs):
    """u of layer l is read before layer l's MLP gain point: an MLP band [lo, hi) leaves the
    thresholds of layers 0..lo exactly at the g = 1 values and moves those after lo; the
    attention gain acts before layer 0's MLP, so it moves every layer."""
    fit, tau_table = outputs["ablation_threshold_fit"], outputs["tau_table"]
    n_layers = SMALL_RECIPE["num_hidden_layers"]
    c1, c2 = band_edges(n_layers)
    first_affected = {"MLP_BAND_EARLY": 1, "MLP_BAND_MID": c1 + 1, "MLP_BAND_LATE": c2 + 1}
    checked_moved = 0
    for (spike_def, rate), g_star in gstars(outputs).items():
        reference = _taus(tau_table, "MLP_GLOBAL", 1.0, spike_def, rate)
        assert len(reference) == n_layers
        for intervention in INTERVENTIONS:
            taus = _taus(fit, intervention, g_star, spike_def, rate)
            if g_star == 1.0:  # no hook is installed at a factor of 1
                np.testing.assert_array_equal(taus, reference)
                continue
            start = 0 if intervention == "ATTN_GLOBAL" else first_affected[intervention]
            np.testing.assert_array_equal(taus[:start], reference[:start])
            assert (taus[start:] != reference[start:]).all(), (intervention, taus, reference)
            checked_moved += 1
            # The events pipeline fitted MLP_BAND_LATE at 0.8 too: the same numbers.
            if intervention == "MLP_BAND_LATE" and g_star == 0.8:
                np.testing.assert_array_equal(
                    taus, _taus(tau_table, intervention, 0.8, spike_def, rate)
                )
    if not checked_moved:
        pytest.skip("every g* of the small run is 1: no moved thresholds to check")


def _ablation_passes(catalog, reuse: bool):
    """Both ablation nodes of role ``base`` run again with ``reuse_unchanged_layers``."""
    ablations = {**catalog.load("params:ablations"), "reuse_unchanged_layers": reuse}
    common = {
        name: load(catalog, name)
        for name in ("model_manifest", "windows", "unit_moments", "threshold_fit")
    }
    conditions = load(catalog, "conditions_ablation")
    fit = fit_ablation_thresholds(
        common["model_manifest"],
        common["windows"],
        common["unit_moments"],
        load(catalog, "rate_targets"),
        conditions,
        common["threshold_fit"],
        catalog.load("params:runtime"),
        catalog.load("params:calibration"),
        catalog.load("params:rate_matching"),
        ablations,
    )
    rasters, tau_table, summary = record_ablation_rasters(
        common["model_manifest"],
        common["windows"],
        common["unit_moments"],
        fit,
        conditions,
        common["threshold_fit"],
        load(catalog, "event_rasters_A"),
        load(catalog, "conditions_A"),
        catalog.load("params:runtime"),
        catalog.load("params:calibration"),
        ablations,
    )
    return fit, rasters, tau_table, summary


def _parquet_bytes(table) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_ablations_reusing_the_g1_layers_equal_whole_passes_bit_for_bit(outputs, small_run):
    """Issue 19 item 1: MLP_BAND_MID/_LATE computed from their band's first block, with the
    layers below taken from the g = 1 thresholds and rasters, give the tables and rasters of
    whole passes byte for byte, for fewer block computations."""
    catalog, _ = small_run
    fit_whole, rasters_whole, taus_whole, summary_whole = _ablation_passes(catalog, False)
    fit_reused, rasters_reused, taus_reused, summary_reused = _ablation_passes(catalog, True)
    try:
        assert _parquet_bytes(fit_reused) == _parquet_bytes(fit_whole)
        assert _parquet_bytes(taus_reused) == _parquet_bytes(taus_whole)
        np.testing.assert_array_equal(rasters_reused.cond_id, rasters_whole.cond_id)
        np.testing.assert_array_equal(rasters_reused.A, rasters_whole.A)
        np.testing.assert_array_equal(rasters_reused.X, rasters_whole.X)
        assert rasters_whole.A.sum() > 0
        # the run's own saved outputs (default: reuse) are those tables too
        assert _parquet_bytes(outputs["ablation_threshold_fit"]) == _parquet_bytes(fit_whole)
    finally:
        remove_rasters(rasters_whole)
        remove_rasters(rasters_reused)
    n_layers = SMALL_RECIPE["num_hidden_layers"]
    c1, c2 = band_edges(n_layers)
    per_gain = {g: 0 for g in fit_whole["g"].unique()}
    for g in per_gain:  # ATTN and EARLY whole, MID from c1, LATE from c2; nothing at g = 1
        per_gain[g] = 0 if g == 1.0 else 2 * n_layers + (n_layers - c1) + (n_layers - c2)
    prefix = c2 if any(g != 1.0 for g in per_gain) else 0
    expected = N_WINDOWS_RASTER * (sum(per_gain.values()) + prefix)
    assert summary_reused["window_blocks_computed"] == expected
    assert summary_whole["window_blocks_computed"] == summary_whole["window_blocks_full_passes"]
    assert summary_reused["window_blocks_full_passes"] == summary_whole["window_blocks_computed"]
    assert summary_reused["window_blocks_computed"] < summary_whole["window_blocks_computed"]


# --- bad input -----------------------------------------------------------------------------------


def test_a_malformed_arc_file_stops_the_node_and_nothing_is_saved(outputs, small_run, tmp_path):
    _, root = small_run
    records = [json.loads(line) for line in ARC_FILE.read_text().splitlines()][:6]
    records[1]["question"]["choices"][1]["label"] = records[1]["question"]["choices"][0]["label"]
    records[3]["answerKey"] = "Z"
    records[4]["question"]["stem"] = " "
    target = tmp_path / ARC_TARGET
    target.parent.mkdir(parents=True)
    target.write_text("".join(json.dumps(r) + "\n" for r in records))

    catalog = project_catalog(tmp_path, small_parameters(root))
    catalog["base.model_manifest"] = outputs["model_manifest"]
    catalog["base.gstar_A"] = outputs["gstar_A"]
    pipeline = calibration.create_pipeline(["base"]).only_nodes("base.score_arc_questions")
    with pytest.raises(ArcFormatError) as info:
        SequentialRunner().run(pipeline, catalog)
    message = str(info.value)
    assert "3 malformed ARC records in 'arc_questions' (file " in message  # entry and its file
    assert f"{records[1]['id']}: duplicate labels" in message
    assert f"{records[3]['id']}: answerKey 'Z' is not among the labels" in message
    assert f"{records[4]['id']}: empty question" in message
    for good in (records[0], records[2], records[5]):
        assert good["id"] not in message
    out = tmp_path / "data" / "07_model_output" / "base"
    assert not (out / "arc_scores.parquet").exists()
    assert not (out / "arc_manifest.json").exists()
