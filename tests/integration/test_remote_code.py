"""``trust_remote_code`` in real ``kedro run`` subprocesses (issue 20, item 4).

A project copy (one role, the session's trained models) runs ``training,capture`` once. Then:

* the saved ``model_manifest.json`` is edited to ``"trust_remote_code": true`` and
  ``kedro run --pipelines events`` is refused by the preflight: exit status 1, the project's
  error naming the role, the file's claim and the fix, no node run, no model loaded, and
  ``data/`` byte for byte as it was (no run manifest either);
* the same run (its threshold fit, which loads the model) with ``--params
  models.base.trust_remote_code=true`` (the user's own decision) goes ahead, logs the warning
  naming the checkpoint and the files that run, and records them in the run manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from avalanche_kedro.framework.stamps import read_stamp
from tests.conftest import PROJECT_ROOT, kedro_process, run_kedro

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, trained_models) -> Path:
    project = tmp_path_factory.mktemp("remote-code") / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, project)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters.yml").write_text(
        # one role and one gain: the threshold fit below is the only model work after capture
        "model_roles: [base]\ngain_grid: [1.0]\nruntime:\n  progress: false\n  device: cpu\n"
    )
    shutil.copytree(PROJECT_ROOT / "data" / "01_raw", project / "data" / "01_raw")
    (project / "src").mkdir()
    for folder in sorted(trained_models.iterdir()):
        if (folder / "TRAINING.json").exists():  # the session's trained models, reused
            shutil.copytree(folder, project / "data" / "06_models" / folder.name)
    run_kedro(project, "run", "--pipelines", "training,capture", timeout=600)
    manifest = _saved_manifest(project)
    record = json.loads(manifest.read_text())
    assert record["trust_remote_code"] is False
    record["trust_remote_code"] = True  # an edited (or foreign) artifact
    manifest.write_text(json.dumps(record, indent=2, sort_keys=True))
    return project


def _saved_manifest(project: Path) -> Path:
    return sorted(project.glob("data/06_models/base/model_manifest.json/*/model_manifest.json"))[-1]


def _files(project: Path) -> dict[str, str]:
    return {
        p.relative_to(project).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((project / "data").rglob("*"))
        if p.is_file()
    }


def _run_manifests(project: Path) -> list[Path]:
    return sorted((project / "data" / "08_reporting" / "run_manifests").glob("*.json"))


def test_a_saved_manifest_cannot_switch_remote_code_on(project):
    before = _files(project)
    result = kedro_process(project, "run", "--pipelines", "events", timeout=600)
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    assert result.returncode == 1, output[-3000:]
    assert "Error (ConfigurationError)" in output
    assert "The saved model manifest of role 'base' records trust_remote_code: true" in output
    assert "A saved file never switches remote code on" in output
    assert "models.base.trust_remote_code: true" in output  # the fix
    assert "Running node" not in output and "Loaded " not in output
    assert _files(project) == before  # nothing written, nothing overwritten


def test_the_users_own_decision_runs_it_visibly_and_is_recorded(project):
    # the edited manifest no longer matches its stamp (framework/lineage.py would refuse it):
    # put the bytes the run wrote back
    manifest = _saved_manifest(project)
    record = json.loads(manifest.read_text())
    record["trust_remote_code"] = False
    manifest.write_text(json.dumps(record, indent=2, sort_keys=True))
    assert read_stamp(manifest)["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    manifests = set(_run_manifests(project))
    result = run_kedro(
        project,
        "run",
        "--pipelines",
        "events",
        "--nodes",
        "base.plan_event_conditions,base.fit_rate_matched_thresholds",  # loads the model
        "--params",
        "models.base.trust_remote_code=true",
        timeout=600,
    )
    output = " ".join((result.stdout + result.stderr).split())
    checkpoint = json.loads(_saved_manifest(project).read_text())["checkpoint"]
    assert "models.base.trust_remote_code is true: loading" in output
    assert "runs the checkpoint's own Python code" in output
    assert Path(checkpoint).name in output  # the trained step's directory
    new = sorted(set(_run_manifests(project)) - manifests)
    assert len(new) == 1
    run = json.loads(new[0].read_text())
    assert run["status"] == "completed"
    # the trained embedded Llama ships no Python of its own: the decision is recorded, and
    # the record says that no file ran
    assert run["remote_code"] == {"base": {"checkpoint": checkpoint, "revision": None, "files": []}}
