"""A training series end to end through SequentialRunner: a tiny Llama trained for 4 steps
(checkpoints 0, 1, 4), its three checkpoints as roles, every pipeline with the series switched
on; then T09 (validated on save), F12 and the report's trajectory section, and the series
checks that stop a run before anything loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.pipelines import replication, reporting
from avalanche_kedro.study import control, trajectory
from tests.pipelines.conftest import project_catalog, small_parameters
from tests.pipelines.test_training import TINY_TRAINING

ROLES = ["step0", "step1", "step4"]


def _series_parameters(root) -> dict:
    params = small_parameters(root)
    path = str(root / "models" / "tiny-series")
    recipe = dict(params["embedded_checkpoints"]["small-llama"])
    params["embedded_checkpoints"] = {
        "tiny-series": {
            **recipe,
            "path": path,
            "seed_name": "test-tiny-series",
            "training_text": "training_text",
            "training": TINY_TRAINING,  # 4 steps, checkpoints 0, 1, 4
        }
    }
    params["model_roles"] = list(ROLES)
    params["models"] = {
        "step0": {"checkpoint": path, "step": 0},
        "step1": {"checkpoint": path, "step": 1},
        "step4": {"checkpoint": path, "step": "final"},
    }
    params["replication"] = {"control_role": "step0"}
    params["trajectory"] = {"enabled": True}
    # one spike definition and no ablations keep three roles quick
    params["calibration"]["spike_defs"] = ["SPIKE_ONE_SIDED_POS"]
    params["events"]["interventions"] = {"MLP_GLOBAL": "grid"}
    params["ablations"]["interventions"] = ["ATTN_GLOBAL"]
    return params


def _pipeline(params) -> Pipeline:
    from avalanche_kedro.pipeline_registry import PIPELINE_ORDER
    from avalanche_kedro.pipelines import (
        calibration,
        capture,
        cascades,
        controls,
        events,
        training,
    )

    per_role = {
        "training": training,
        "capture": capture,
        "events": events,
        "cascades": cascades,
        "controls": controls,
        "calibration": calibration,
    }
    roles = params["model_roles"]
    series = {"trajectory": params["trajectory"], "models": params["models"]}
    pipelines = [
        per_role[name].create_pipeline(roles) for name in PIPELINE_ORDER if name in per_role
    ]
    pipelines.append(replication.create_pipeline(roles, control_role="step0", **series))
    pipelines.append(reporting.create_pipeline(roles, control_role="step0", **series))
    return sum(pipelines, Pipeline([]))


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    import shutil

    from tests.conftest import PROJECT_ROOT

    root = tmp_path_factory.mktemp("series-run")
    arc = root / "data" / "01_raw" / "arc_embedded.jsonl"
    arc.parent.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "data" / "01_raw" / "arc_embedded.jsonl", arc)
    params = _series_parameters(root)
    catalog = project_catalog(root, params)
    catalog["parameters"] = params
    SequentialRunner().run(_pipeline(params), catalog)
    return catalog, root


def test_t09_has_every_step_and_pairs_each_with_step_zero_and_its_predecessor(series_run):
    catalog, _ = series_run
    t09 = catalog.load("T09_TRAINING_TRAJECTORY")  # the schema ran on save and runs on load
    assert sorted(set(t09["step"])) == [0, 1, 4]
    assert dict(zip(t09["model_role"], t09["step"], strict=True)) == {
        "step0": 0,
        "step1": 1,
        "step4": 4,
    }
    assert set(t09["stage_id"]) == {"T09_TRAINING_TRAJECTORY"}
    assert len(t09) == 3 * 2 * 2  # steps x target rates x (g1, gstar)
    step0 = t09[t09["step"] == 0]
    assert step0[trajectory.diff_columns("step0")].isna().all().all()
    # step 1's predecessor is step 0: both differences are the same numbers
    step1 = t09[t09["step"] == 1]
    for stat in control.STATS:
        assert np.array_equal(
            step1[f"diff_{stat}_vs_step0"].to_numpy(),
            step1[f"diff_{stat}_vs_previous"].to_numpy(),
            equal_nan=True,
        )
    # the rows at g = 1 are T01's g = 1 rows, those at g* T01's g* rows
    t01 = catalog.load("T01_SUMMARY")
    for _, row in t09.iterrows():
        source = t01[
            (t01["model_role"] == row["model_role"])
            & (t01["target_rate"] == row["target_rate"])
            & (t01["g"] == row["g"])
        ].iloc[0]
        assert row["b_tot"] == source["b_tot"] and row["chi"] == source["chi"]
        assert row["delta_b_tot_shift"] == source["opt_delta_b_tot_shift"]
        assert row["heldout_rate_ratio"] == pytest.approx(
            source["opt_achieved_rate_analysis_mean"] / row["target_rate"], rel=1e-12
        )
        assert (row["g"] == 1.0) if row["g_condition"] == "g1" else bool(source["opt_is_gstar"])
    # perplexity falls as the model trains (4 steps are enough on this tiny text)
    at_g1 = t09[t09["g_condition"] == "g1"].drop_duplicates("step").set_index("step")
    assert at_g1.loc[4, "ppl_B"] < at_g1.loc[0, "ppl_B"]
    csv = pd.read_csv(str(catalog.get("T09_TRAINING_TRAJECTORY").csv_load_path()))
    assert list(csv.columns) == list(t09.columns)


def test_the_report_says_when_each_statistic_separates_from_step_zero(series_run):
    catalog, _ = series_run
    report = catalog.load("run_report")
    assert "## Training trajectory (T09)" in report
    section = report.split("## Training trajectory (T09)")[1].split("\n## ")[0]
    assert "`step0` (step 0), `step1` (step 1), `step4` (step 4)" in section
    assert section.count("| SPIKE_ONE_SIDED_POS |") == 2  # one table row per target rate
    assert "S1: b_tot first separates from step 0 (g = 1) at" in section
    assert "- Perplexity on dataset B at g = 1: step 0:" in section


def test_f12_files_carry_the_run_provenance(series_run):
    catalog, root = series_run
    folder = root / "data" / "08_reporting" / "figures" / "F12_TRAINING_TRAJECTORY"
    pngs = sorted(folder.rglob("F12_TRAINING_TRAJECTORY.png"))
    pdfs = sorted(folder.rglob("F12_TRAINING_TRAJECTORY.pdf"))
    assert len(pngs) == len(pdfs) == 1
    from PIL import Image

    with Image.open(pngs[0]) as image:
        info = dict(image.text)
    provenance = catalog.load("run_provenance")
    assert info["figure_id"] == "F12_TRAINING_TRAJECTORY"
    assert info["run_id"] == provenance["run_id"]
    assert "step4:" in info["model_ids"] and "step0:" in info["model_ids"]


def test_an_unordered_or_incomplete_series_stops_before_any_pipeline_is_built(tmp_path):
    params = _series_parameters(tmp_path)
    series = {"trajectory": {"enabled": True}}
    swapped = {**params["models"], "step1": {**params["models"]["step1"], "step": 7}}
    with pytest.raises(ConfigurationError, match=r"models\.step4\.step = 'final'|step1\.step = 7"):
        replication.create_pipeline(["step0", "step4", "step1"], models=swapped, **series)
    with pytest.raises(ConfigurationError, match=r"models\.step1\.step = 7 does not come after"):
        reporting.create_pipeline(
            ["step0", "step1"], models={**swapped, "step0": {"step": 9}}, **series
        )
    no_step = {**params["models"], "step1": {"checkpoint": "x"}}
    with pytest.raises(ConfigurationError, match=r"models\.step1\.step is None"):
        replication.create_pipeline(ROLES, models=no_step, **series)
    # switched off, the same roles are just roles: no trajectory node
    plain = replication.create_pipeline(
        ROLES, control_role="step0", trajectory={"enabled": False}, models=no_step
    )
    assert "replication.compare_training_steps" not in {n.name for n in plain.nodes}


def test_check_roles_stops_a_series_with_shared_weights_or_unordered_steps():
    from avalanche_kedro.pipelines.replication.nodes import check_roles
    from avalanche_kedro.study.replication import ReplicationError

    def inputs(steps, weights):
        values = []
        for role, step, weight in zip(ROLES, steps, weights, strict=True):
            manifest = {
                "model_id": f"m@{role}",
                "tokenizer_sha256": "t" * 64,
                "training_step": step,
                "weights_sha256": weight,
                "checkpoint": f"/ckpt/{role}",
                "revision": None,
            }
            values += [
                manifest,
                {"slices": [{"slice": "analysis", "sha256": "s"}]},
                {"n_layers": 4},
            ]
        return values

    fine = check_roles(*inputs([0, 1, 4], ["a", "b", "c"]), roles=ROLES, series=True)
    assert fine["model_ids"] == {r: f"m@{r}" for r in ROLES}
    with pytest.raises(ReplicationError, match="step1.*step4|step4.*step1"):
        check_roles(*inputs([0, 1, 4], ["a", "b", "b"]), roles=ROLES, series=True)
    with pytest.raises(ReplicationError, match="not increasing"):
        check_roles(*inputs([0, 4, 1], ["a", "b", "c"]), roles=ROLES, series=True)
    # not a series: equal weights are the user's business, steps are not read
    check_roles(*inputs([0, 4, 1], ["a", "b", "b"]), roles=ROLES, series=False)
