"""The whole study on a real trained model and real text (runs only where ../shared/fixtures is).

llama2c TinyStories 260K (a trained Llama with a SwiGLU MLP, 5 layers, d_ff 192, context 256)
with WikiText-2 raw as dataset A, TinyStories as dataset B and ARC-Challenge questions, through
``kedro run --env local_model`` exactly as a user would run it on their own files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SHARED_FIXTURES, copy_project, run_kedro

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_FIXTURES.exists(), reason="../shared/fixtures is not present"),
]

MODEL = SHARED_FIXTURES / "llama2c-tinystories-260k-hf"
WIKITEXT = SHARED_FIXTURES / "wikitext-2-raw" / "wiki.test.raw"
TINYSTORIES = SHARED_FIXTURES / "tinystories" / "TinyStories-valid.txt"
ARC = SHARED_FIXTURES / "ai2-arc-challenge" / "ARC-Challenge-Test.jsonl"
FIGURES = [
    "F01_RASTER",
    "F02_RATE_MATCHING",
    "F03_BRANCHING_VS_GAIN",
    "F04_DELTA_B_VS_GAIN",
    "F05_GSTAR_SELECTION",
    "F06_GENERALIZATION_B",
    "F07_ARC_ACCURACY",
    "F08_SPIKE_DEF_ROBUSTNESS",
    "F09_SUSCEPTIBILITY",
    "F10_NULL_COMPARISON",
    "F11_ABLATIONS",
    "F13_LENS_DEPTH",
    "F14_COLLAPSE_VS_CASCADE",
]
TABLES = [
    "T01_SUMMARY",
    "T02_GENERALIZATION",
    "T03_ARC",
    "T04_TAIL_FITS",
    "T05_CRACKLING_DIAGNOSTICS",
    "T06_ABLATIONS",
    "T10_LENS",
    "T11_COLLAPSE_VS_CASCADE",
]


def _latest(project: Path, pattern: str) -> Path:
    matches = sorted(project.glob(pattern))
    assert matches, pattern
    return matches[-1]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("realism"))
    params = {
        "checkpoint": MODEL,
        "corpus_a": WIKITEXT,
        "corpus_b": TINYSTORIES,
        "arc_jsonl": ARC,
        "n_calibration": 16,
        "n_raster": 32,
        "n_eval_b": 12,
        "arc_max_questions": 60,
        "runtime.device": "cpu",
    }
    run_kedro(
        project,
        "run",
        "--env",
        "local_model",
        "--params",
        ",".join(f"{key}={value}" for key, value in params.items()),
        timeout=1500,
    )
    return project


def load(project: Path, name: str) -> pd.DataFrame:
    folder = "04_feature" if name in ("tau_table", "ablation_tau_table") else "07_model_output"
    return pd.read_parquet(_latest(project, f"data/{folder}/local/{name}.parquet/*/{name}.parquet"))


def test_rate_matching_holds_at_every_gain(study):
    taus = load(study, "tau_table")
    assert sorted(taus["g"].unique()) == [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3]
    assert (taus["rate_match_abs_err"] <= taus["rate_match_tol"]).all()
    ablations = load(study, "ablation_tau_table")
    assert (ablations["rate_match_abs_err"] <= ablations["rate_match_tol"]).all()
    # a trained model generalizes: held-out rates stay near the targets (contrast: docs/realism.md)
    drift = (taus["achieved_rate_analysis"] / taus["r_star"]).groupby(taus["g"]).mean()
    assert drift.between(0.7, 1.4).all(), drift


def test_both_raster_nulls_preserve_marginals(study):
    checks = load(study, "marginal_checks_A")
    assert set(checks["null_id"]) == {
        "NULL_RASTER_WITHIN_LAYER_TIME_PERM",
        "NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT",
    }
    assert checks["marginals_preserved"].all()
    assert (
        checks["rows_checked"] == 32 * 5
    ).all()  # every (window, layer) of 32 windows x 5 layers


def test_perplexity_on_tinystories_is_sane_and_best_at_g1(study):
    curve = load(study, "perplexity_curve_B").set_index("g")["ppl"]
    assert 5.0 <= curve.loc[1.0] <= 30.0
    assert curve.loc[1.0] < curve.loc[0.7]
    assert curve.loc[1.0] < curve.loc[1.3]


def test_arc_accuracy_and_cis_are_probabilities(study):
    arc = pd.read_parquet(_latest(study, "data/08_reporting/tables/T03_ARC.parquet/*/*.parquet"))
    for column in ("accuracy", "accuracy_ci_low", "accuracy_ci_high"):
        assert arc[column].between(0.0, 1.0).all(), column
    assert (arc["n_questions"] == 60).all()
    # some ARC-Challenge prompts are longer than the 256-token context: cut, counted, never crash
    assert arc["opt_n_prompts_truncated"].between(1, 59).all()


def test_every_table_figure_and_the_report_are_produced(study):
    for table in TABLES:
        for suffix in ("parquet", "csv"):
            _latest(study, f"data/08_reporting/tables/{table}.{suffix}/*/*.{suffix}")
    # one model role: nothing to replicate, so no T07 and the report says so
    assert not list(study.glob("data/08_reporting/tables/T07_REPLICATION_SUMMARY*"))
    for figure in FIGURES:
        latest = _latest(study, f"data/08_reporting/figures/{figure}/*/{figure}")
        assert sorted(p.suffix for p in latest.iterdir()) == [".pdf", ".png"], figure
    report = _latest(study, "data/08_reporting/report.md/*/report.md").read_text()
    assert "Replication was not run" in report
    manifest = json.loads(_latest(study, "data/08_reporting/run_manifests/*.json").read_text())
    assert manifest["models"]["local"]["model_type"] == "llama"
    assert manifest["status"] == "completed"


def test_the_logit_lens_of_a_trained_model(study):
    """On a trained model the lens reproduces its logits, sharpens with depth, and decodes
    every analysis window (local_model sets lens.max_windows: null)."""
    manifest = json.loads(
        _latest(
            study, "data/07_model_output/local/lens_manifest.json/*/lens_manifest.json"
        ).read_text()
    )
    assert manifest["lens_self_check_max_kl"] <= 1e-6
    assert manifest["n_windows"] == 32 and manifest["n_layers"] == 5
    t10 = pd.read_parquet(_latest(study, "data/08_reporting/tables/T10_LENS.parquet/*/*.parquet"))
    g1 = t10[t10["g_condition"] == "g1"].drop_duplicates("layer").sort_values("layer")
    assert g1["mean_kl_to_final_nats"].iloc[0] > g1["mean_kl_to_final_nats"].iloc[-1] == 0
    assert g1["top1_agreement"].iloc[-1] == 1.0
    prompts = pd.read_csv(_latest(study, "data/08_reporting/lens/local/lens_prompts.csv/*/*.csv"))
    assert prompts["prompt_id"].nunique() == 2 and (prompts["truncated_tokens"] == 0).all()


# -------------------------------------------------------------------------------------------
# Bad input around real files: errors name the file and what is missing


def test_an_incomplete_checkpoint_copy_names_what_is_missing(tmp_path):
    from avalanche_kedro.core.errors import CheckpointError
    from avalanche_kedro.measure.checkpoints import resolve_checkpoint

    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(
        MODEL, no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens_map.json")
    )
    with pytest.raises(CheckpointError, match="missing a tokenizer") as info:
        resolve_checkpoint("local", {"checkpoint": str(no_tokenizer)})
    assert str(no_tokenizer) in str(info.value)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(MODEL, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(CheckpointError, match="missing weights") as info:
        resolve_checkpoint("local", {"checkpoint": str(no_weights)})
    assert str(no_weights) in str(info.value)


def test_text_shorter_than_the_windows_names_the_file(tmp_path):
    from avalanche_kedro.core.errors import CorpusError
    from avalanche_kedro.framework.datasets import HubDataset
    from avalanche_kedro.measure.checkpoints import resolve_checkpoint
    from avalanche_kedro.pipelines.capture.nodes import select_windows

    short = tmp_path / "short.txt"
    short.write_text(TINYSTORIES.read_text(encoding="utf-8")[:2000], encoding="utf-8")
    manifest = resolve_checkpoint("local", {"checkpoint": str(MODEL)})
    corpus_b = HubDataset(
        dataset_name="text",
        filepath=str(short),
        dataset_kwargs={"split": "train", "cache_dir": str(tmp_path / "cache")},
    ).load()
    windows = {
        "seq_len": 256,
        "window_pool_factor": 10,
        "n_calibration": 2,
        "n_raster": 2,
        "n_eval_b": 12,
    }
    with pytest.raises(CorpusError) as info:
        select_windows(["Once upon a time. " * 400], corpus_b, manifest, windows)
    message = str(info.value)
    assert f"file {short}" in message and "12 are needed" in message


def test_an_arc_file_with_another_schema_names_the_file(tmp_path):
    from avalanche_kedro.evaluation.arc import ArcFormatError, normalize_arc_records
    from avalanche_kedro.framework.datasets import HubDataset, source_detail

    other = tmp_path / "qa.jsonl"
    other.write_text(
        "".join(
            json.dumps({"uid": f"q{i}", "prompt": "2 + 2 = ?", "answer": "4"}) + "\n"
            for i in range(3)
        )
    )
    loaded = HubDataset(
        dataset_name="json",
        filepath=str(other),
        dataset_kwargs={"split": "train", "cache_dir": str(tmp_path / "cache")},
    ).load()
    with pytest.raises(ArcFormatError) as info:
        normalize_arc_records(list(loaded), "arc_questions", source_detail(loaded))
    message = str(info.value)
    assert f"'arc_questions' (file {other})" in message
    assert "3 malformed ARC records" in message and "empty question" in message
