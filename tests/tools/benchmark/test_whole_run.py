"""The whole-run benchmark: node records of a real (small) pipeline read back from the run
manifest, summarised per node and per function, and the subprocess plumbing (manifest found by
process id, the process tree's CPU time, the checkout's own code first on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from avalanche_kedro.framework.hooks import MANIFEST_FOLDER, ProvenanceHooks
from avalanche_kedro.tools.benchmark.cli import main
from avalanche_kedro.tools.benchmark.whole_run import (
    data_root,
    find_manifest,
    kedro_command,
    run_whole,
    summarize_manifest,
)
from tests.conftest import PROJECT_ROOT


def _spin(x, seconds: float = 0.2):
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass
    return x


def _quick(x):
    return x


def test_a_small_runs_node_records_come_back_per_node_and_per_function(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no context: the manifest goes to ./data/08_reporting/...
    provenance = ProvenanceHooks()
    manager = _create_hook_manager()
    manager.register(provenance)
    catalog = DataCatalog(datasets={"x": MemoryDataset(1)})
    pipeline = Pipeline(
        [
            node(_spin, "x", "a", name="base.fit"),
            node(_spin, "x", "b", name="instruct.fit"),
            node(_quick, "x", "c", name="report"),
        ]
    )
    params = {"run_id": "2026-12-01T00.00.00.000Z", "runner": "SequentialRunner"}
    manager.hook.before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
    SequentialRunner().run(pipeline, catalog, manager)
    provenance.nodes["base.fit"]["tokens_forwarded"] = 512  # as if the node ran a model
    manager.hook.after_pipeline_run(
        run_params=params, run_result={}, pipeline=pipeline, catalog=catalog
    )
    (path,) = (tmp_path / "data" / MANIFEST_FOLDER).glob("*.json")
    manifest = json.loads(path.read_text())
    manifest["models"] = {"base": {}, "instruct": {}}  # the roles of a real run

    summary = summarize_manifest(manifest)
    nodes = summary["nodes"]
    assert set(nodes) == {"base.fit", "instruct.fit", "report"}
    assert list(nodes)[-1] == "report"  # sorted by CPU, largest first
    for name in ("base.fit", "instruct.fit"):
        assert nodes[name]["cpu_seconds"] >= 0.19 and nodes[name]["wall_seconds"] >= 0.19
    assert summary["totals"]["cpu_seconds"] == pytest.approx(
        sum(n["cpu_seconds"] for n in nodes.values()), abs=2e-3
    )
    assert sum(n["cpu_share_percent"] for n in nodes.values()) == pytest.approx(100, abs=0.05)
    assert summary["totals"]["tokens_forwarded"] == 512 and summary["totals"]["cpu_recorded"]
    assert nodes["base.fit"]["tokens_per_cpu_second"] == pytest.approx(
        512 / nodes["base.fit"]["cpu_seconds"], rel=1e-3
    )
    assert nodes["report"]["tokens_per_cpu_second"] is None
    fit = summary["by_function"]["fit"]  # roles summed
    assert fit["nodes"] == 2 and fit["tokens_forwarded"] == 512
    assert fit["cpu_seconds"] == pytest.approx(
        nodes["base.fit"]["cpu_seconds"] + nodes["instruct.fit"]["cpu_seconds"], abs=2e-3
    )
    assert list(summary["by_function"]) == ["fit", "report"]

    # the CLI reads the same manifest back
    out = tmp_path / "whole-run.json"
    main(
        [
            "whole-run",
            "--from-manifest",
            str(path),
            "--project",
            str(PROJECT_ROOT),
            "--out",
            str(out),
        ]
    )
    written = json.loads(out.read_text())
    head = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert written["git"]["commit"] == head  # the checkout named, not the manifest's folder
    assert written["run"]["status"] == "completed"
    assert written["run"]["process"]["pid"] == os.getpid()
    assert written["date"] == time.strftime("%Y-%m-%d")
    assert set(written["nodes"]) == set(nodes)
    assert written["machine"]["cpu_count"] == os.cpu_count()


def test_a_manifest_without_cpu_records_is_summarised_with_gaps():
    manifest = {"nodes": {"a": {"seconds": 2.0, "tokens_forwarded": 0}}}
    summary = summarize_manifest(manifest)
    assert summary["nodes"]["a"]["cpu_seconds"] is None
    assert summary["nodes"]["a"]["cpu_share_percent"] is None
    assert summary["nodes"]["a"]["wall_share_percent"] == 100.0
    assert summary["totals"]["cpu_recorded"] is False


FAKE_KEDRO = textwrap.dedent(
    """
    import json, os, pathlib, time
    started = time.process_time()
    while time.process_time() - started < 0.3:
        pass
    folder = pathlib.Path("out/08_reporting/run_manifests")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "status": "completed",
        "env": os.environ.get("PYTHONPATH", ""),
        "process": {"pid": os.getpid()},
        "nodes": {"n": {"seconds": 0.3, "cpu_seconds": 0.3, "tokens_forwarded": 7}},
    }
    (folder / "other.json").write_text(json.dumps({"process": {"pid": -1}}))
    (folder / "mine.json").write_text(json.dumps(manifest))
    """
)


def test_the_run_is_found_by_its_process_id_with_the_process_trees_cpu(tmp_path):
    project = tmp_path / "checkout"
    (project / "src" / "avalanche_kedro").mkdir(parents=True)
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "base" / "globals.yml").write_text("data_root: out\n")
    result = run_whole(project, [sys.executable, "-c", FAKE_KEDRO])
    assert result["run"]["manifest"].endswith("mine.json")
    assert result["run"]["returncode"] == 0 and result["run"]["output_tail"] is None
    assert result["run"]["cpu_seconds_all_processes"] >= 0.28
    assert result["run"]["subprocess_wall_seconds"] >= 0.28
    assert result["totals"]["tokens_forwarded"] == 7
    # the checkout's own code runs: its src comes first on PYTHONPATH
    assert result["run"]["env"].split(os.pathsep)[0] == str(project / "src")
    assert len(result["machine"]["load_average_before"]) == 3


def test_a_run_that_writes_no_manifest_is_an_error_with_its_output(tmp_path):
    command = [sys.executable, "-c", "print('no kedro here'); raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match=r"(?s)return code 3.*no kedro here"):
        run_whole(tmp_path, command)


def test_manifests_before_the_run_or_of_other_processes_are_ignored(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"process": {"pid": 42}}))
    assert find_manifest(tmp_path, 42, time.time() - 60) == tmp_path / "a.json"
    assert find_manifest(tmp_path, 43, time.time() - 60) is None
    assert find_manifest(tmp_path, 42, time.time() + 60) is None
    assert find_manifest(tmp_path / "missing", 42, 0) is None


def test_the_data_root_and_the_kedro_command_follow_the_options(tmp_path):
    (tmp_path / "conf" / "dask").mkdir(parents=True)
    (tmp_path / "conf" / "dask" / "globals.yml").write_text("data_root: /mnt/shared\n")
    assert data_root(tmp_path, None) == tmp_path / "data"
    assert data_root(tmp_path, "dask") == tmp_path / "/mnt/shared"
    assert kedro_command()[1:] == ["-m", "kedro", "run"]
    assert kedro_command("paper", "runtime.torch_threads=1", "capture")[4:] == [
        "--env",
        "paper",
        "--params",
        "runtime.torch_threads=1",
        "--pipelines",
        "capture",
    ]


def test_the_kedro_command_can_run_named_nodes():
    assert kedro_command(params="a.b=1", nodes="base.fit_x,base.record_y")[4:] == [
        "--params",
        "a.b=1",
        "--nodes",
        "base.fit_x,base.record_y",
    ]
