"""End to end: `kedro run` on the embedded default, in a fresh copy of the project config.

The copy holds pyproject.toml, conf/ and the raw ARC file; the package itself is the installed
one, and the session's trained embedded models are copied in (the ``trained_models`` fixture).
The session fixture ``e2e_project`` (tests/conftest.py) runs the deprecated ``--pipeline``
flag (training), then ``--pipelines`` (capture; events, cascades, controls, calibration), then
plain ``kedro run`` (the default pipeline: everything) to show that a rerun writes new versions
whose tables are byte-identical to the first ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _versions(project: Path, relative: str) -> list[Path]:
    name = Path(relative).name
    return sorted((project / relative).glob(f"*/{name}"))


@pytest.fixture
def project(e2e_project):
    """The shared end-to-end project of tests/conftest.py (three kedro runs, once a session)."""
    return e2e_project


TABLES = [
    "data/02_intermediate/base/windows.parquet",
    "data/03_primary/base/unit_moments.parquet",
    "data/03_primary/base/baseline_rates.parquet",
    "data/03_primary/base/rate_targets.parquet",
    "data/04_feature/base/conditions_A.parquet",
    "data/04_feature/base/threshold_fit.parquet",
    "data/04_feature/base/tau_table.parquet",
    "data/07_model_output/base/avalanches_A.parquet",
    "data/07_model_output/base/branching_per_window_A.parquet",
    "data/07_model_output/base/cascade_summary_A.parquet",
    "data/07_model_output/base/crackling_fits_A.parquet",
    "data/07_model_output/base/tail_fits_A.parquet",
    "data/07_model_output/base/null_branching_per_window_A.parquet",
    "data/07_model_output/base/marginal_checks_A.parquet",
    "data/07_model_output/base/controls_summary_A.parquet",
    "data/07_model_output/base/gstar_A.parquet",
    "data/07_model_output/base/lm_loss_B.parquet",
    "data/07_model_output/base/generalization_B.parquet",
    "data/07_model_output/base/arc_scores.parquet",
    "data/07_model_output/base/arc_summary.parquet",
    "data/07_model_output/base/ablations_A.parquet",
]


def test_trained_checkpoints_are_reused_and_each_role_loads_its_step(project):
    import json

    trained = project / "data" / "06_models" / "tiny-llama-stdlib"
    record = json.loads((trained / "TRAINING.json").read_text())
    assert sorted(int(s) for s in record["steps"]) == [0, 1, 4, 14, 53, 200]
    built = json.loads(_versions(project, "data/06_models/embedded_models.json")[-1].read_text())
    assert built["recipes"]["tiny-llama-stdlib"]["reused"] is True  # copied in, not retrained
    manifests = {
        role: json.loads(
            _versions(project, f"data/06_models/{role}/model_manifest.json")[-1].read_text()
        )
        for role in ("base", "instruct", "untrained")
    }
    assert manifests["base"]["checkpoint"].endswith("tiny-llama-stdlib/step-000200")
    assert manifests["untrained"]["checkpoint"].endswith("tiny-llama-stdlib/step-000000")
    assert manifests["instruct"]["checkpoint"].endswith("tiny-llama-stdlib-qa/step-000060")
    assert manifests["base"]["content_sha256"] == record["steps"]["200"]
    assert len({m["tokenizer_sha256"] for m in manifests.values()}) == 1
    assert len(_versions(project, "data/06_models/base/model_manifest.json")) == 2


def test_measured_windows_share_no_eight_words_with_the_training_text(project):
    """No window the study measures (calibration, analysis, dataset B) repeats a run of eight
    words of the text the embedded models were trained on (base and fine-tuning)."""
    import json

    from transformers import AutoTokenizer

    from avalanche_kedro.measure.corpora import (
        builtin_qa_pairs,
        decontaminate,
        pydoc_topics,
        stdlib_docstrings,
        stdlib_training_text,
        word_shingles,
    )

    measured_corpora = [*pydoc_topics(), *stdlib_docstrings(split="measured")]
    trained_on: set[int] = set()
    for text in (stdlib_training_text(), builtin_qa_pairs()):
        kept, _ = decontaminate(text, measured_corpora, 8)
        for record in kept:
            trained_on |= word_shingles(record, 8)
    manifest = json.loads(
        _versions(project, "data/06_models/base/model_manifest.json")[-1].read_text()
    )
    tokenizer = AutoTokenizer.from_pretrained(manifest["checkpoint"])
    windows = pd.read_parquet(_versions(project, "data/02_intermediate/base/windows.parquet")[-1])
    assert set(windows["slice"]) == {"calibration", "analysis", "eval_b"}
    shared = 0
    for ids in windows["input_ids"]:
        words = tokenizer.decode(list(ids)).split()[1:-1]  # the edge words may be cut
        shared += len(word_shingles(" ".join(words), 8) & trained_on)
    assert len(trained_on) > 100_000 and shared == 0


def test_rerun_writes_new_versions_with_identical_tables(project):
    for table in TABLES:
        versions = _versions(project, table)
        assert len(versions) == 2, table
        assert versions[0].read_bytes() == versions[1].read_bytes(), table
    rasters = _versions(project, "data/04_feature/base/event_rasters_A")
    assert len(rasters) == 2
    for name in ["A.npy", "X.npy", "cond_id.npy", "seq_id.npy"]:
        assert (rasters[0] / name).read_bytes() == (rasters[1] / name).read_bytes(), name


def test_embedded_default_outputs(project):
    taus = pd.read_parquet(_versions(project, "data/04_feature/base/tau_table.parquet")[-1])
    conditions = pd.read_parquet(
        _versions(project, "data/04_feature/base/conditions_A.parquet")[-1]
    )
    # 9 gains x 2 spike definitions x 4 target rates x 8 layers, all within tolerance
    assert len(taus) == 9 * 2 * 4 * 8
    assert (taus["rate_match_abs_err"] <= taus["rate_match_tol"]).all()
    assert len(conditions) == (9 + 1) * 2 * 4  # real + token-shuffle null at g = 1
    A = np.load(
        _versions(project, "data/04_feature/base/event_rasters_A")[-1] / "A.npy", mmap_mode="r"
    )
    assert A.shape == (len(conditions), 48, 8, 256)
    assert not list((project / "data" / "02_intermediate" / "scratch").iterdir())
    controls = pd.read_parquet(
        _versions(project, "data/07_model_output/base/controls_summary_A.parquet")[-1]
    )
    assert len(controls) == 9 * 2 * 4  # every real condition, with paired CIs
    assert (
        controls["marginals_preserved_perm"].all() and controls["marginals_preserved_shift"].all()
    )
    at_g1 = controls["cond_id"].isin(conditions.query("g == 1.0")["cond_id"])
    assert controls.loc[at_g1, "delta_b_tot_tokshuf"].notna().all()  # recorded at g = 1
    assert controls.loc[~at_g1, "delta_b_tot_tokshuf"].isna().all()  # and at g* below
    at_gstar = pd.read_parquet(
        _versions(project, "data/07_model_output/base/controls_summary_gstar_A.parquet")[-1]
    )
    gstar = pd.read_parquet(_versions(project, "data/07_model_output/base/gstar_A.parquet")[-1])
    assert len(gstar) == 2 * 4 and set(gstar["g_star"]) <= set(taus["g"])
    # the token-shuffle null at every g*, with the same perm/shift numbers as controls_summary_A
    real_at_gstar = conditions[conditions["null_id"] == "NULL_NONE"].merge(
        gstar[["spike_def_id", "target_rate", "g_star"]].rename(columns={"g_star": "g"}),
        on=["spike_def_id", "target_rate", "g"],
    )  # each (spike def, rate) at its own g*
    assert sorted(at_gstar["cond_id"]) == sorted(real_at_gstar["cond_id"])
    assert at_gstar["delta_b_tot_tokshuf"].notna().all()
    same = controls.set_index("cond_id").loc[at_gstar["cond_id"], "delta_b_tot_perm"]
    assert np.array_equal(same.to_numpy(), at_gstar["delta_b_tot_perm"].to_numpy())
    generalization = pd.read_parquet(
        _versions(project, "data/07_model_output/base/generalization_B.parquet")[-1]
    )
    assert len(generalization) == 2 * 4 * 2  # g1 and g* per (spike def, target rate)
    assert (generalization["ppl"] > 1).all()
    ablations = pd.read_parquet(
        _versions(project, "data/07_model_output/base/ablations_A.parquet")[-1]
    )
    assert len(ablations) == 2 * 4 * 6  # g1 + g* MLP_GLOBAL and 4 ablations at g*


PAPER_TABLES = [
    "T01_SUMMARY",
    "T02_GENERALIZATION",
    "T03_ARC",
    "T04_TAIL_FITS",
    "T05_CRACKLING_DIAGNOSTICS",
    "T06_ABLATIONS",
    "T07_REPLICATION_SUMMARY",
    "T08_TRAINED_VS_UNTRAINED",
]


def test_paper_tables_are_byte_identical_across_runs(project):
    for table in PAPER_TABLES:
        for suffix in ("parquet", "csv"):
            versions = _versions(project, f"data/08_reporting/tables/{table}.{suffix}")
            assert len(versions) == 2, (table, suffix)
            assert versions[0].read_bytes() == versions[1].read_bytes(), (table, suffix)
    t01 = pd.read_parquet(_versions(project, "data/08_reporting/tables/T01_SUMMARY.parquet")[-1])
    assert set(t01["model_role"]) == {"base", "instruct", "untrained"}
    assert t01["run_id"].nunique() == 1
    assert set(t01["code_version"]) == {"no_git_metadata"}  # the copy is not a git checkout


def test_figures_and_report_are_written(project):
    figures = sorted((project / "data" / "08_reporting" / "figures").glob("F*"))
    # F01-F11, and F13-F14 of the logit lens (F12 belongs to a training series)
    expected = [f"F{i:02d}" for i in range(1, 12)] + ["F13", "F14"]
    assert [f.name[:3] for f in figures] == expected
    for folder in figures:
        latest = sorted(folder.glob("*/*"))[-1]
        assert sorted(p.suffix for p in latest.iterdir()) == [".pdf", ".png"], folder
    report_path = _versions(project, "data/08_reporting/report.md")[-1]
    report = report_path.read_text()
    assert "S1" in report and "falsifier" in report.lower() and "T01:" in report
    # the one-page summary, no line over 200 characters in the whole report
    lines = report.splitlines()
    assert len(lines[: lines.index("## Run")]) <= 60
    assert max(len(line) for line in lines) <= 200
    # every figure link (reference definitions at the end) resolves to a PNG of the same run,
    # and the HTML next to it (same version) shows the same files inline
    links = dict(line[1:].split("]: ", 1) for line in lines if re.match(r"^\[[A-Z0-9_]+\]: ", line))
    assert {f"F{i:02d}" for i in [*range(1, 12), 13, 14]} <= {name[:3] for name in links}
    for name, target in links.items():
        assert (report_path.parent / target).resolve().is_file(), (name, target)
        assert f"/{report_path.parent.name}/" in target  # the report's own version folder
    html_path = _versions(project, "data/08_reporting/report.html")[-1]
    assert html_path.parent.name == report_path.parent.name
    html = html_path.read_text()
    for target in links.values():
        assert f'<img src="{target}"' in html


def test_every_run_wrote_a_manifest_with_hashes_of_its_artifacts(project):
    import hashlib
    import json

    manifests = sorted((project / "data" / "08_reporting" / "run_manifests").glob("*.json"))
    assert len(manifests) == 5  # one per kedro run
    assert set(json.loads(manifests[0].read_text())["nodes"]) == {"train_embedded_models"}
    first = json.loads(manifests[1].read_text())  # the capture run
    assert first["status"] == "completed"
    assert (
        first["tokens_forwarded"] > 0
        and first["nodes"]["base.accumulate_unit_moments"]["tokens_forwarded"] > 0
    )
    assert all(node["seconds"] >= 0 for node in first["nodes"].values())
    assert len(first["config_hash"]) == 64 and first["code_version"] == "no_git_metadata"
    assert set(first["models"]) == {"base", "instruct", "untrained"}
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        assert manifest["artifacts"], manifest_path
        for artifact in manifest["artifacts"]:
            content = Path(artifact["path"]).read_bytes()
            assert len(content) == artifact["bytes"]
            assert hashlib.sha256(content).hexdigest() == artifact["sha256"]
    last = json.loads(manifests[-1].read_text())
    assert (
        last["run_id"]
        == pd.read_parquet(_versions(project, "data/08_reporting/tables/T01_SUMMARY.parquet")[-1])[
            "run_id"
        ].iloc[0]
    )
