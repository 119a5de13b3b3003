"""runtime.torch_threads on Kedro's runners: set after the preflight, before every node, handed
to node processes through the environment, and put back when the run ends or fails."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial

import pytest
import torch
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner, ThreadRunner

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.framework.hooks import ProvenanceHooks
from avalanche_kedro.framework.threads import (
    ENV_VAR,
    STARTUP_VARS,
    TorchThreadHooks,
    at_most_cores,
    runtime_torch_threads,
    set_torch_threads,
    thread_count,
    threads_from_environment,
)
from avalanche_kedro.study.params import RuntimeParams


@pytest.fixture(autouse=True)
def _torch_default_two_threads(monkeypatch):
    """Every test starts from torch at 2 threads and leaves torch and the environment as found."""
    for name in (ENV_VAR, *STARTUP_VARS):
        monkeypatch.delenv(name, raising=False)
    before = set_torch_threads(2)
    yield
    torch.set_num_threads(before)


SEEN: dict[str, int] = {}


def _seen_threads(x, name: str = "seen"):
    SEEN[name] = torch.get_num_threads()
    return SEEN[name]


def _widen_threads(x):
    torch.set_num_threads(2)  # a node that changes the count (as the lens prompt view does)
    return _seen_threads(x, "widened")


def _fail(x):
    raise RuntimeError("node failed")


def _run(pipeline, runner, parameters, hooks):
    manager = _create_hook_manager()
    for hook in hooks:
        manager.register(hook)
    catalog = DataCatalog(datasets={"parameters": MemoryDataset(parameters), "x": MemoryDataset(0)})
    params = {"runner": type(runner).__name__}
    manager.hook.before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
    try:
        runner.run(pipeline, catalog, manager)
    except Exception as error:
        manager.hook.on_pipeline_error(
            error=error, run_params=params, pipeline=pipeline, catalog=catalog
        )
        raise
    manager.hook.after_pipeline_run(
        run_params=params, run_result={}, pipeline=pipeline, catalog=catalog
    )
    return {name: catalog.load(name) for name in pipeline.outputs()}


@pytest.mark.parametrize("runner", [SequentialRunner(), ThreadRunner(max_workers=2)])
def test_every_node_runs_with_the_configured_count_and_the_default_comes_back(runner):
    SEEN.clear()
    pipeline = Pipeline(
        [
            node(partial(_seen_threads, name="first"), "x", "first", name="first"),
            node(_widen_threads, "first", "widened", name="widened"),
            node(partial(_seen_threads, name="after"), "widened", "after", name="after"),
            node(partial(_seen_threads, name="beside"), "x", "beside", name="beside"),
        ]
    )
    hooks = TorchThreadHooks()
    _run(pipeline, runner, {"runtime": {"torch_threads": 1}}, [hooks])
    # ThreadRunner's worker threads see it too; a node's own change does not leak
    assert SEEN == {"first": 1, "widened": 2, "after": 1, "beside": 1}
    assert torch.get_num_threads() == 2
    assert ENV_VAR not in os.environ and hooks.threads is None


def _new_process_threads(x):
    # a process started during the run, with no project hook in it (ParallelRunner's spawned
    # node processes): torch reads its thread count from the environment when it starts
    code = "import torch; print(torch.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    SEEN["new process"] = int(result.stdout)
    return x


def test_a_process_started_during_the_run_starts_torch_with_the_count():
    SEEN.clear()
    pipeline = Pipeline([node(_new_process_threads, "x", "y", name="spawns")])
    _run(pipeline, SequentialRunner(), {"runtime": {"torch_threads": 1}}, [TorchThreadHooks()])
    assert SEEN == {"new process": 1}
    assert all(name not in os.environ for name in (ENV_VAR, *STARTUP_VARS))  # put back


def test_null_keeps_torchs_default_and_hands_no_count_down():
    os.environ[ENV_VAR] = "1"  # left over from an outer run: a run with null ignores it
    pipeline = Pipeline([node(_seen_threads, "x", "seen", name="seen")])
    outputs = _run(
        pipeline, SequentialRunner(), {"runtime": {"device": "cpu"}}, [TorchThreadHooks()]
    )
    assert outputs == {"seen": 2}
    assert os.environ[ENV_VAR] == "1"  # the outer value is put back


def test_a_failed_run_puts_the_default_back():
    pipeline = Pipeline([node(_fail, "x", "y", name="fails")])
    with pytest.raises(RuntimeError, match="node failed"):
        _run(pipeline, SequentialRunner(), {"runtime": {"torch_threads": 1}}, [TorchThreadHooks()])
    assert torch.get_num_threads() == 2 and ENV_VAR not in os.environ


@pytest.mark.parametrize("threads", [0, -1, 10_000])
def test_a_bad_count_stops_the_run_before_any_node_and_changes_nothing(threads):
    pipeline = Pipeline([node(_fail, "x", "y", name="never")])
    with pytest.raises(ConfigurationError, match=r"runtime\.torch_threads"):
        _run(
            pipeline,
            SequentialRunner(),
            {"runtime": {"torch_threads": threads}},
            [TorchThreadHooks()],
        )
    assert torch.get_num_threads() == 2 and ENV_VAR not in os.environ


def test_the_manifest_records_each_nodes_threads_cpu_and_the_process():
    pipeline = Pipeline([node(_seen_threads, "x", "seen", name="seen")])
    provenance = ProvenanceHooks()
    _run(
        pipeline,
        SequentialRunner(),
        {"runtime": {"torch_threads": 1}},
        [provenance, TorchThreadHooks()],
    )
    record = provenance.nodes["seen"]
    assert record["torch_threads"] == 1  # the thread hook ran first (tryfirst)
    assert record["cpu_seconds"] >= 0 and record["seconds"] >= 0
    manifest = provenance._manifest({"runner": "SequentialRunner"}, "completed")
    assert manifest["torch_threads"]["used_by_nodes"] == [1]
    assert manifest["process"]["pid"] == os.getpid()
    assert manifest["process"]["cpu_seconds"] >= manifest["process"]["cpu_seconds_pipeline"] >= 0
    assert manifest["runner"] == {"name": "in-process", "class": "SequentialRunner"}
    # what Kedro's session records: str() of the runner instance
    kedro_style = {
        "runner": f"<kedro.runner.sequential_runner.SequentialRunner object at 0x7f{id(provenance):x}>"
    }
    assert provenance._manifest(kedro_style, "completed")["runner"]["class"] == "SequentialRunner"


def test_a_node_process_takes_the_count_from_the_environment(monkeypatch):
    """ParallelRunner's node processes and Dask workers build fresh hooks: no run state, the
    count comes in ENV_VAR."""
    monkeypatch.setenv(ENV_VAR, "1")
    TorchThreadHooks().before_node_run(
        node=None, catalog=None, inputs={}, is_async=False, run_id="r"
    )
    assert torch.get_num_threads() == 1
    monkeypatch.setenv(ENV_VAR, "zero")
    with pytest.raises(ConfigurationError, match=f"{ENV_VAR}='zero' is not a thread count"):
        threads_from_environment()


def test_thread_counts_are_parsed_and_checked():
    assert thread_count("3", "p", "f") == 3 and thread_count(2, "p", "f") == 2
    assert thread_count(None, "p", "f") is None and thread_count(" ", "p", "f") is None
    for bad in (0, "-1", "two", 1.5, True):
        with pytest.raises(ConfigurationError, match="problem"):
            thread_count(bad, "problem", "fix")
    assert runtime_torch_threads({}) is None
    assert runtime_torch_threads({"runtime": RuntimeParams(torch_threads=1)}) == 1
    assert runtime_torch_threads({"runtime": {"torch_threads": 1}}) == 1


def test_more_threads_than_a_workers_cores_are_lowered_with_a_warning(monkeypatch, caplog):
    from avalanche_kedro.framework import threads

    monkeypatch.setattr("avalanche_kedro.core.threads.available_cores", lambda: 2)
    assert threads.at_most_cores(2, "Dask worker") == 2 and at_most_cores(None, "w") is None
    with caplog.at_level("WARNING", logger=threads.__name__):
        assert at_most_cores(8, "Dask worker") == 2
    assert "torch_threads=8 exceeds the 2 cores of Dask worker" in caplog.text
