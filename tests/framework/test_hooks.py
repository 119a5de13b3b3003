"""`kedro run` checks its saved inputs before any node runs (issue: bad input).

Running a pipeline whose inputs were never produced, or were truncated on disk, stops with the
dataset's name and the command that writes it, and nothing earlier is touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, kedro_process

pytestmark = pytest.mark.slow


def _project(tmp_path: Path, trained_models: Path | None = None) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, project)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters.yml").write_text(
        "model_roles: [base]\nruntime:\n  progress: false\n"
    )
    shutil.copytree(PROJECT_ROOT / "data" / "01_raw", project / "data" / "01_raw")
    (project / "src").mkdir()
    for folder in sorted(trained_models.iterdir()) if trained_models else []:
        if (folder / "TRAINING.json").exists():  # the session's trained models, reused
            shutil.copytree(folder, project / "data" / "06_models" / folder.name)
    return project


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return kedro_process(project, *args, timeout=600)


def _files(project: Path) -> dict[str, bytes]:
    return {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in sorted((project / "data").rglob("*"))
        if p.is_file() and "run_manifests" not in p.parts
    }


def test_reporting_before_its_inputs_exist(tmp_path):
    project = _project(tmp_path)
    result = _kedro(project, "run", "--pipelines", "reporting")
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())  # rich wraps long lines
    # the first 12 missing inputs in name order are listed; every producing command is named
    assert "base.cascade_summary_A has not been produced yet" in output
    assert "kedro run --pipelines calibration" in output
    assert all(path.startswith("data/01_raw/") for path in _files(project))  # nothing written


def test_a_truncated_artifact_is_named_with_the_command_that_rewrites_it(tmp_path, trained_models):
    project = _project(tmp_path, trained_models)
    assert _kedro(project, "run", "--pipelines", "training,capture").returncode == 0
    windows = sorted(project.glob("data/02_intermediate/base/windows.parquet/*/windows.parquet"))[
        -1
    ]
    windows.write_bytes(windows.read_bytes()[:100])  # a crashed copy, say
    before = _files(project)
    result = _kedro(project, "run", "--pipelines", "events")
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert "base.windows cannot be read" in output
    assert "kedro run --pipelines capture" in output
    assert _files(project) == before  # nothing written, nothing overwritten


def _busy_child(x):
    # a node that starts a child process and waits for it, as the tail fits' pool does
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass",
        ],
        check=True,
    )
    return x


def test_node_cpu_time_includes_the_child_processes_it_waited_for():
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro.runner import SequentialRunner

    from avalanche_kedro.framework.hooks import ProvenanceHooks

    provenance = ProvenanceHooks()
    manager = _create_hook_manager()
    manager.register(provenance)
    catalog = DataCatalog(datasets={"x": MemoryDataset(1)})
    pipeline = Pipeline([node(_busy_child, "x", "y", name="busy")])
    manager.hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    SequentialRunner().run(pipeline, catalog, manager)
    record = provenance.nodes["busy"]
    assert 0.3 < record["cpu_seconds_children"] <= record["cpu_seconds"]
    assert record["seconds"] >= 0.3 and record["tokens_forwarded"] == 0
    process = provenance._manifest({}, "completed")["process"]
    assert process["cpu_seconds_children"] >= record["cpu_seconds_children"]
    assert process["cpu_seconds_pipeline"] >= record["cpu_seconds"]


def _decision_seen_by_a_node(x):
    import os

    from avalanche_kedro.measure.remote_code import ENV_VAR, allowed_roles

    return {"allowed": allowed_roles(), "env": os.environ.get(ENV_VAR)}


def test_remote_code_follows_the_runs_own_parameters_and_is_put_back():
    import json
    import os

    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro.runner import SequentialRunner

    from avalanche_kedro.framework.hooks import RemoteCodeHooks
    from avalanche_kedro.measure.remote_code import ENV_VAR, allowed_roles

    assert ENV_VAR not in os.environ and allowed_roles() == {}
    manager = _create_hook_manager()
    manager.register(RemoteCodeHooks())
    models = {
        "base": {"checkpoint": "org/custom", "trust_remote_code": True},
        "instruct": {"checkpoint": "org/plain", "trust_remote_code": False},
    }
    catalog = DataCatalog(
        datasets={"parameters": MemoryDataset({"models": models}), "x": MemoryDataset(1)}
    )
    pipeline = Pipeline([node(_decision_seen_by_a_node, "x", "seen", name="look")])
    manager.hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    result = SequentialRunner().run(pipeline, catalog, manager)
    seen = result["seen"].load() if hasattr(result["seen"], "load") else result["seen"]
    assert seen["allowed"] == {"base": "org/custom"}
    assert json.loads(seen["env"]) == {"base": "org/custom"}  # for node processes
    manager.hook.after_pipeline_run(
        run_params={}, run_result=result, pipeline=pipeline, catalog=catalog
    )
    assert ENV_VAR not in os.environ and allowed_roles() == {}  # nothing left for the next run
