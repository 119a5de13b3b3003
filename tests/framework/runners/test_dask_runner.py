"""The study on a Dask cluster: same bytes as a sequential run, pinned resources, lost workers.

A two-worker cluster runs in this test process (one worker with a ``GPU`` resource, one with a
``CPU`` resource, both real worker processes); ``kedro run --env dask --runner
avalanche_kedro.framework.runners.DaskRunner --runner-params address=...`` connects to it from a separate
``kedro`` process exactly as on a real cluster. Its outputs are compared byte for byte with the
sequential run of the shared ``e2e_project`` (same parameters, same config hash).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT, copy_project, run_kedro

pytestmark = pytest.mark.slow

distributed = pytest.importorskip("distributed")

RUNNER = "avalanche_kedro.framework.runners.DaskRunner"
# Everything a run computes (tables, rasters, taus, per-role outputs, the report); run
# manifests, model folders and figure files (PDF metadata carries a creation date) excluded.
COMPARED = ("02_intermediate", "03_primary", "04_feature", "07_model_output", "08_reporting")


def make_cluster(resources: list[dict[str, float]], allowed_failures: int = 3):
    """A cluster of real worker processes (Nannies), one per entry of ``resources``: a
    ``LocalCluster`` when no worker has resources, else a SpecCluster with one spec each."""
    import dask
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    from avalanche_kedro.framework.runners.dask_runner import worker_environment

    config = {
        **worker_environment(1),
        "distributed.scheduler.allowed-failures": allowed_failures,
    }
    if not any(resources):
        with dask.config.set(config):
            return LocalCluster(
                n_workers=len(resources),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never clash with a running cluster
                silence_logs=40,
            )

    workers = {
        f"worker-{i}": {"cls": Nanny, "options": {"nthreads": 1, "resources": spec}}
        for i, spec in enumerate(resources)
    }
    with dask.config.set(config):
        return SpecCluster(
            workers=workers,
            scheduler={"cls": Scheduler, "options": {"dashboard_address": None}},
            silence_logs=40,
        )


#: files that name their own run's save version (the report's links to its figures)
REPORT_FILES = ("report.md", "report.html")


def _content_digest(handed_over: dict) -> bytes:
    """A canonical form of a role's hand-over mapping (``<role>.results``): pickles of equal
    objects differ between processes (pickle memoizes shared strings by identity), so the
    hand-over, a copy of per-role datasets, is compared by content: each table as CSV with its
    dtypes. Its mappings are the role's JSON manifests and summaries, which this comparison
    skips as files too (they record wall times and the project's path): only their names."""
    parts = []
    for name in sorted(handed_over):
        value = handed_over[name]
        if isinstance(value, pd.DataFrame):
            text = value.to_csv(index=False) + repr(list(value.dtypes.astype(str)))
        else:
            text = type(value).__name__
        parts.append(f"{name}\n{text}")
    return "\n".join(parts).encode()


def computed_files(project: Path):
    """(path without its version folder, version, sha256) of every computed file."""
    for folder in COMPARED:
        for path in sorted((project / "data" / folder).rglob("*")):
            if not path.is_file() or path.suffix == ".json" or "/figures/" in str(path):
                continue
            if "scratch" in path.parts or ".dask-storage-probe" in path.parts:
                continue
            relative = path.relative_to(project / "data")
            version = next((p for p in relative.parts if p.endswith("Z")), "")
            key = "/".join(p for p in relative.parts if not p.endswith("Z"))
            content = path.read_bytes()
            if path.name == "results.pkl":
                content = _content_digest(pickle.loads(content))
            if path.name in REPORT_FILES:
                # the report links the figures of its own run by their version folder: two runs
                # differ there by construction and must agree everywhere else
                content = content.replace(version.encode(), b"<save version>")
            yield key, version, hashlib.sha256(content).hexdigest()


def digests(project: Path) -> dict[str, str]:
    """sha256 of every computed file of a single run, keyed by its path without the version."""
    found: dict[str, str] = {}
    for key, _, digest in computed_files(project):
        assert key not in found, f"{key}: more than one version in a single-run project"
        found[key] = digest
    return found


def latest_digests(project: Path) -> dict[str, str]:
    """Like :func:`digests` but only the newest version of each versioned dataset."""
    newest: dict[str, tuple[str, str]] = {}
    for key, version, digest in computed_files(project):
        if key not in newest or version > newest[key][0]:
            newest[key] = (version, digest)
    return {key: digest for key, (_, digest) in newest.items()}


def manifest(project: Path) -> dict:
    return json.loads(
        sorted((project / "data/08_reporting/run_manifests").glob("*.json"))[-1].read_text()
    )


@pytest.fixture(scope="module")
def pinned_cluster():
    cluster = make_cluster([{"GPU": 1}, {"CPU": 1}])
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory, pinned_cluster, trained_models) -> Path:
    project = copy_project(tmp_path_factory.mktemp("dask"), trained_models)
    run_kedro(
        project,
        "run",
        "--env",
        "dask",
        "--params",
        "runtime.device=cpu",
        "--runner",
        RUNNER,
        "--runner-params",
        f"address={pinned_cluster.scheduler_address},model_resource=GPU,analysis_resource=CPU",
    )
    return project


def test_the_dask_run_is_byte_identical_to_the_sequential_run(dask_run, e2e_project):
    distributed_run, sequential = digests(dask_run), latest_digests(e2e_project)
    # the dask environment records the event rasters in gain blocks; everything else matches
    blocks = {k for k in distributed_run if "event_rasters_A_blocks" in k}
    assert blocks, "conf/dask should split the event rasters into gain blocks"
    compared = {k: v for k, v in distributed_run.items() if k not in blocks}
    assert set(compared) == set(sequential)
    different = sorted(k for k in compared if compared[k] != sequential[k])
    assert not different, different
    tables = [k for k in compared if k.startswith("08_reporting/tables/")]
    assert len(tables) >= 14 and any(k.endswith("report.md") for k in compared)


def test_model_nodes_ran_on_the_gpu_worker_and_analysis_on_the_cpu_worker(dask_run):
    record = manifest(dask_run)
    runner = record["runner"]
    assert runner["name"] == "DaskRunner" and runner["n_workers"] == 2
    gpu = next(w for w, r in runner["resources"].items() if "GPU" in r)
    cpu = next(w for w, r in runner["resources"].items() if "CPU" in r)
    nodes = record["nodes"]
    assert len(nodes) > 60
    for name, info in nodes.items():
        is_model = "model" in _tags_of(name)
        assert info["worker"] == (gpu if is_model else cpu), (name, info["worker"])
    # each worker loaded each model once, however many of its nodes it ran
    loads: dict[str, list[str]] = {}
    for info in nodes.values():
        if len(info["models_loaded_by_worker"]) >= len(loads.get(info["worker"], [])):
            loads[info["worker"]] = info["models_loaded_by_worker"]
    # base, instruct and untrained, each loaded once
    assert len(loads[gpu]) == 3 and len(set(loads[gpu])) == 3
    assert loads.get(cpu, []) == []  # analysis never loads a model
    # both roles' gain blocks and the events merge are separate tasks
    assert {"base.record_event_rasters_block0", "base.record_event_rasters_block1"} <= set(nodes)
    assert "instruct.merge_event_raster_blocks" in nodes
    # provenance gathered from the workers: tokens, artifacts with hashes
    assert record["tokens_forwarded"] == sum(n["tokens_forwarded"] for n in nodes.values())
    assert record["tokens_forwarded"] > 0
    assert any(
        a["dataset"] == "base.tau_table" and len(a["sha256"]) == 64 for a in record["artifacts"]
    )


MODEL_NODE_NAMES = {
    "train_embedded_models",
    "validate_instrumentation",
    "accumulate_unit_moments",
    "measure_baseline_rates",
    "fit_rate_matched_thresholds",
    "record_event_rasters_block0",
    "record_event_rasters_block1",
    "record_dataset_B",
    "score_arc_questions",
    "fit_ablation_thresholds",
    "record_ablation_rasters",
    "record_gstar_token_shuffle",
    "measure_lens",
    "decode_lens_prompts",
}


def _tags_of(name: str) -> set[str]:
    return {"model"} if name.split(".")[-1] in MODEL_NODE_NAMES else set()


def test_every_model_node_is_tagged():
    """The pinning above relies on the `model` tag: it must sit on exactly the nodes that load
    the model (checked against the pipeline definitions)."""
    from avalanche_kedro.pipelines import calibration, capture, events, lens, training

    tagged = set()
    for module in (training, capture, events, calibration, lens):
        kwargs = {"gain_blocks": 2} if module is events else {}
        for n in module.create_pipeline(["base"], **kwargs).nodes:
            if "model" in n.tags:
                tagged.add(n.name.split(".")[-1])
    assert tagged == MODEL_NODE_NAMES


# -------------------------------------------------------------------------------------------
# A lost worker, then --only-missing-outputs


def _versions(project: Path) -> dict[str, set[str]]:
    """Version folders of every versioned dataset: {dataset path: {versions}}."""
    found: dict[str, set[str]] = {}
    for path in (project / "data").rglob("*Z"):
        if path.is_dir() and path.name.endswith("Z"):
            found.setdefault(str(path.parent.relative_to(project)), set()).add(path.name)
    return found


def test_a_lost_worker_stops_the_run_and_only_missing_outputs_finishes_it(
    tmp_path, e2e_project, trained_models
):
    from distributed import Client

    cluster = make_cluster([{}, {}], allowed_failures=0)
    client = Client(cluster)
    project = copy_project(tmp_path, trained_models)
    args = [
        sys.executable, "-m", "kedro", "run", "--env", "dask",
        "--pipelines", "training,capture,events",
        "--params", "runtime.device=cpu", "--runner", RUNNER,
        "--runner-params", f"address={cluster.scheduler_address}",
    ]  # fmt: skip
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1")
    try:
        process = subprocess.Popen(
            args, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        victim = None
        deadline = time.time() + 600
        while victim is None and time.time() < deadline and process.poll() is None:
            for worker, keys in client.processing().items():
                if any("record_event_rasters_block" in str(k) for k in keys):
                    victim = worker
                    break
            time.sleep(0.2)
        assert victim is not None, "no gain-block task was ever seen running"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=600)
        assert process.returncode != 0
        assert "were lost" in output and "--only-missing-outputs" in output
        before = _versions(project)
        assert any("windows.parquet" in k for k in before)  # capture finished before the kill

        run_kedro(project, *args[3:], "--only-missing-outputs")
        after = _versions(project)
        # completed artifacts were kept and not recomputed: no new version next to them
        for dataset, versions in before.items():
            if "event_rasters_A_blocks" in dataset and len(versions) == 0:
                continue
            assert after[dataset] == versions, dataset
        assert any("tau_table" in k for k in set(after) - set(before))
        finished = latest_digests(project)
        sequential = latest_digests(e2e_project)
        for key in ("04_feature/base/tau_table.parquet/tau_table.parquet",
                    "04_feature/instruct/event_rasters_A/event_rasters_A/A.npy"):  # fmt: skip
            assert key in finished and finished[key] == sequential[key], key
    finally:
        client.close()
        cluster.close()


# -------------------------------------------------------------------------------------------
# Bad input


def test_an_unreachable_scheduler_is_a_clear_error_and_writes_nothing(tmp_path):
    project = copy_project(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kedro",
            "run",
            "--env",
            "dask",
            "--pipelines",
            "training,capture",
            "--runner",
            RUNNER,
            "--runner-params",
            "address=tcp://127.0.0.1:9,timeout=2",
        ],  # fmt: skip
        cwd=project,
        env=dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 2 s" in output
    assert "How to fix" in output
    written = [p for p in (project / "data").rglob("*") if p.is_file() and "01_raw" not in p.parts]
    assert [p for p in written if "run_manifests" not in p.parts] == []


def _first(frame):
    return frame.head(1)


# -------------------------------------------------------------------------------------------
# kedro airflow create


def test_kedro_airflow_creates_one_dag_per_pipeline_grouped_by_namespace(tmp_path):
    from avalanche_kedro.pipeline_registry import PIPELINE_ORDER

    project = copy_project(tmp_path)
    template = PROJECT_ROOT / "src/avalanche_kedro/framework/templates/airflow_dag.j2"
    run_kedro(
        project, "airflow", "create", "--all", "--group-by", "namespace",
        "--target-dir", "dags", "--jinja-file", str(template),
    )  # fmt: skip
    dags = {path.name: path.read_text() for path in (project / "dags").glob("*.py")}
    expected = {f"avalanche_kedro_{name}_dag.py" for name in PIPELINE_ORDER}
    assert set(dags) == expected | {"avalanche_kedro_dag.py"}
    dag_ids = set()
    for name, text in dags.items():
        tree = ast.parse(text)  # valid Python
        assigned = {
            node.targets[0].id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        }
        pipeline = assigned["PIPELINE_NAME"]
        assert name == (
            "avalanche_kedro_dag.py"
            if pipeline == "__default__"
            else f"avalanche_kedro_{pipeline}_dag.py"
        )
        dag_ids.add(text.split('dag_id="')[1].split('"')[0])
    assert len(dag_ids) == len(dags)  # one distinct DAG id per pipeline
    default = dags["avalanche_kedro_dag.py"]
    # the per-role work is one task per namespace, and so are the cross-role namespaces
    # replication and reporting (whose nodes run in one session each)
    assert 'run_group(namespaces=["base"])' in default
    assert 'run_group(namespaces=["instruct"])' in default
    assert 'run_group(namespaces=["reporting"])' in default
    assert 'tasks["base"] >> tasks["replication"]' in default
    assert 'tasks["replication"] >> tasks["reporting"]' in default
    for pipeline in PIPELINE_ORDER:
        assert f'PIPELINE_NAME = "{pipeline}"' in dags[f"avalanche_kedro_{pipeline}_dag.py"]


def test_worker_threads_come_from_the_runner_then_the_runtime_then_the_local_share(monkeypatch):
    from kedro.io import DataCatalog, MemoryDataset

    from avalanche_kedro.core.errors import ConfigurationError
    from avalanche_kedro.framework.runners.dask_runner import DaskRunner

    monkeypatch.setattr("avalanche_kedro.core.threads.available_cores", lambda: 8)
    configured = DataCatalog(
        datasets={"parameters": MemoryDataset({"runtime": {"torch_threads": 3}})}
    )
    unset = DataCatalog(datasets={"parameters": MemoryDataset({"runtime": {}})})
    assert DaskRunner(torch_threads="2").worker_threads(configured) == 2  # --runner-params
    assert DaskRunner().worker_threads(configured) == 3  # runtime.torch_threads
    assert DaskRunner(n_workers=4).worker_threads(unset) == 2  # local cluster: 8 cores / 4
    assert DaskRunner(n_workers=16).worker_threads(unset) == 1
    assert DaskRunner(address="tcp://x:8786").worker_threads(unset) is None  # torch's default
    with pytest.raises(ConfigurationError, match="torch_threads=0 is not a thread count"):
        DaskRunner(torch_threads=0)


def _worker_torch_threads(x):
    import torch

    return pd.DataFrame({"threads": [torch.get_num_threads()]})


def test_workers_run_nodes_with_runtime_torch_threads_and_report_them(tmp_path):
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pandas import CSVDataset

    from avalanche_kedro.framework.hooks import ProvenanceHooks
    from avalanche_kedro.framework.runners.dask_runner import DaskRunner

    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv", index=False)
    catalog = DataCatalog(
        datasets={
            "parameters": MemoryDataset({"runtime": {"torch_threads": 1}}),
            "x": CSVDataset(filepath=str(tmp_path / "x.csv")),
            "seen": CSVDataset(filepath=str(tmp_path / "seen.csv")),
        }
    )
    provenance = ProvenanceHooks()
    manager = _create_hook_manager()
    manager.register(provenance)
    pipeline = Pipeline([node(_worker_torch_threads, "x", "seen", name="threads")])
    DaskRunner(n_workers=1).run(pipeline, catalog, manager)
    assert pd.read_csv(tmp_path / "seen.csv")["threads"].tolist() == [1]
    assert provenance.runner["torch_threads"] == 1
    record = provenance.nodes["threads"]
    assert record["torch_threads"] == 1 and record["cpu_seconds"] >= 0


def _slow_save(x, folder: str):
    """Announces that it runs, then takes a while before its output is saved."""
    Path(folder, "slow-started").write_text("")
    time.sleep(3)
    return pd.DataFrame({"slow": [1]})


def _fail_once_slow_runs(x, folder: str):
    deadline = time.time() + 60
    while not Path(folder, "slow-started").exists() and time.time() < deadline:
        time.sleep(0.05)
    raise ValueError("this node fails while another one is running")


def test_a_failed_node_lets_running_nodes_finish_and_starts_no_new_one(tmp_path):
    """A running Dask task cannot be interrupted: the runner waits for it before raising, so
    its output is complete, recorded and stamped when the run ends (a later
    --only-missing-outputs run never meets an output saved behind its back), while the nodes
    that had not started yet never run."""
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pandas import CSVDataset

    from avalanche_kedro.framework.hooks import ProvenanceHooks
    from avalanche_kedro.framework.runners.dask_runner import DaskRunner

    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv", index=False)
    names = ("slow", "after_slow", "failed")
    catalog = DataCatalog(
        datasets={
            "parameters": MemoryDataset({"runtime": {"torch_threads": 1}}),
            "folder": MemoryDataset(str(tmp_path)),
            "x": CSVDataset(filepath=str(tmp_path / "x.csv")),
            **{n: CSVDataset(filepath=str(tmp_path / f"{n}.csv")) for n in names},
        }
    )
    provenance = ProvenanceHooks()
    manager = _create_hook_manager()
    manager.register(provenance)
    pipeline = Pipeline(
        [
            node(_slow_save, ["x", "folder"], "slow", name="slow"),
            node(_first, "slow", "after_slow", name="after_slow"),
            node(_fail_once_slow_runs, ["x", "folder"], "failed", name="failed"),
        ]
    )
    with pytest.raises(ValueError, match="fails while another one is running"):
        DaskRunner(n_workers=2).run(pipeline, catalog, manager)
    assert pd.read_csv(tmp_path / "slow.csv")["slow"].tolist() == [1]  # finished before the raise
    assert "slow" in provenance.nodes  # and recorded in the run's manifest
    assert not (tmp_path / "after_slow.csv").exists()  # never started
    assert not (tmp_path / "failed.csv").exists()
    assert "after_slow" not in provenance.nodes


def _worker_remote_code(x):
    from avalanche_kedro.measure.remote_code import allowed_roles

    return pd.DataFrame({"allowed": [json.dumps(allowed_roles(), sort_keys=True)]})


def test_workers_get_the_runs_remote_code_decision(tmp_path):
    """A Dask worker is another process: the run's trust_remote_code decision (from its own
    parameters, RemoteCodeHooks) travels with each task, never from a saved manifest."""
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pandas import CSVDataset

    from avalanche_kedro.framework.hooks import RemoteCodeHooks
    from avalanche_kedro.framework.runners.dask_runner import DaskRunner
    from avalanche_kedro.measure.remote_code import allowed_roles

    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "x.csv", index=False)
    models = {"base": {"checkpoint": "org/custom", "trust_remote_code": True}}
    catalog = DataCatalog(
        datasets={
            "parameters": MemoryDataset({"models": models, "runtime": {"torch_threads": 1}}),
            "x": CSVDataset(filepath=str(tmp_path / "x.csv")),
            "seen": CSVDataset(filepath=str(tmp_path / "seen.csv")),
        }
    )
    manager = _create_hook_manager()
    manager.register(RemoteCodeHooks())
    pipeline = Pipeline([node(_worker_remote_code, "x", "seen", name="remote_code")])
    manager.hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    DaskRunner(n_workers=1).run(pipeline, catalog, manager)
    manager.hook.after_pipeline_run(
        run_params={}, run_result={}, pipeline=pipeline, catalog=catalog
    )
    seen = json.loads(pd.read_csv(tmp_path / "seen.csv")["allowed"][0])
    assert seen == {"base": "org/custom"}
    assert allowed_roles() == {}  # put back in the client after the run
