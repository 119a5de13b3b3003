"""A Kedro runner that executes each node as a task on a Dask cluster.

Kedro's documented Dask deployment, kept small and adapted to Kedro 1.7: the client (the
``kedro run`` process) submits one task per node with its upstream nodes' tasks as
dependencies, so the scheduler runs independent work (model roles, gain blocks, the analyses
of different roles) on different workers at the same time. Nothing is passed between nodes
in memory: every dataset is persisted by the catalog on storage that all workers reach
(``conf/dask``), so a worker only ever needs the project's code and that storage, and a failed
run is resumed with ``--only-missing-outputs``.

Each worker keeps a process-wide model cache (:func:`avalanche_kedro.measure.checkpoints.load_model`),
so it loads a model at most once whatever number of that model's nodes it runs. Node hooks fire
in the worker; the wall time, the worker process's CPU time, torch's thread count, tokens
forwarded and saved artifacts they measure travel back with the task's result into the
client's run manifest.

Torch's threads in a worker, the first of: the runner's ``torch_threads`` argument, the run's
``runtime.torch_threads``, and on a local cluster the cores divided by ``n_workers`` (so n
workers do not each start an all-core pool); on a remote cluster without either, torch's
default of each worker machine. A count above a worker's own cores is lowered to them, with a
warning in the worker's log.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import AbstractRunner

from ...core.errors import ScaleOutError
from ...measure.remote_code import allow_remote_code, allowed_roles
from ..threads import thread_count

logger = logging.getLogger(__name__)

PACKAGE = "avalanche_kedro"
MODEL_TAG = "model"  # nodes that run the model: pinned to `model_resource` workers
PROBE_FOLDER = ".dask-storage-probe"
_WORKER_STATE: dict[str, Any] = {"configured": False}


class DaskRunner(AbstractRunner):
    """Runs a Kedro pipeline on a Dask cluster, one task per node.

    Args:
        address: the scheduler, e.g. ``tcp://10.0.0.5:8786``. Without one, a
            ``distributed.LocalCluster`` with ``n_workers`` processes is started for the run.
        n_workers: workers of that local cluster (ignored with ``address``).
        threads_per_worker: threads of each local worker (ignored with ``address``).
        timeout: seconds to wait for the scheduler before giving up.
        model_resource: a worker resource (``--resources "GPU=1"`` on ``dask worker``) that
            nodes tagged ``model`` need one unit of, so forward passes run only on GPU workers.
        analysis_resource: the same for every other node (e.g. ``CPU``).
        torch_threads: ``torch.set_num_threads`` in each worker before a node runs; overrides
            ``runtime.torch_threads`` for the workers (without either, a local cluster uses the
            cores divided by ``n_workers`` and a remote worker torch's default).
        is_async: Kedro's asynchronous loading and saving, inside each task.
    """

    def __init__(
        self,
        address: str | None = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        timeout: float = 30,
        model_resource: str | None = None,
        analysis_resource: str | None = None,
        torch_threads: int | None = None,
        is_async: bool = False,
    ):
        super().__init__(is_async=is_async)
        self.address = str(address) if address else None
        self.n_workers = int(n_workers)
        self.threads_per_worker = int(threads_per_worker)
        self.timeout = float(timeout)
        self.model_resource = model_resource or None
        self.analysis_resource = analysis_resource or None
        self.torch_threads = thread_count(
            torch_threads,
            f"The DaskRunner's torch_threads={torch_threads!r} is not a thread count.",
            "Pass --runner-params torch_threads=<an integer >= 1>, or leave it out to use "
            "runtime.torch_threads (or, on a local cluster, the cores divided by n_workers).",
        )

    # -- AbstractRunner -------------------------------------------------------------------------

    def _get_executor(self, max_workers: int) -> None:
        return None  # the Dask client is the executor

    def _run(
        self,
        pipeline: Pipeline,
        catalog,
        hook_manager=None,
        run_id: str | None = None,
    ) -> None:
        from distributed import as_completed

        check_persisted(pipeline, catalog)
        threads = self.worker_threads(catalog)
        client, cluster = self._connect(threads)
        futures: dict[Any, Any] = {}
        done: set = set()
        try:
            check_shared_storage(client, pipeline, catalog)
            provenance = _provenance_hooks(hook_manager)
            if provenance is not None:
                provenance.record_runner({**self.describe(client), "torch_threads": threads})
            portable = portable_catalog(pipeline, catalog)
            project_root = _project_root()
            remote_code = allowed_roles()  # the run's configuration (RemoteCodeHooks)
            token = uuid.uuid4().hex[:8]
            for node in pipeline.nodes:  # topological order: dependencies are submitted first
                upstream = [futures[parent] for parent in pipeline.node_dependencies[node]]
                futures[node] = client.submit(
                    run_node_on_worker,
                    node,
                    portable,
                    run_id,
                    self._is_async,
                    str(project_root),
                    threads,
                    upstream,
                    remote_code,
                    key=f"{node.name}-{token}",
                    pure=False,
                    resources=self._resources(node),
                )
            by_future = {future: node for node, future in futures.items()}
            for future in as_completed(list(futures.values())):
                node = by_future[future]
                record = self._result(future, node, pipeline, done, catalog)
                done.add(node)
                if provenance is not None:
                    provenance.record_remote_node(record)
                logger.info(
                    "Completed node %s on %s (%.1f s); %d of %d done",
                    node.name,
                    record["worker"],
                    record["seconds"],
                    len(done),
                    len(futures),
                )
        finally:
            for future in futures.values():
                if not future.done():
                    future.cancel()
            client.close()
            if cluster is not None:
                cluster.close()

    # -- helpers --------------------------------------------------------------------------------

    def worker_threads(self, catalog) -> int | None:
        """Torch's threads per worker (module doc): the runner argument, else
        ``runtime.torch_threads``, else on a local cluster the cores over ``n_workers``."""
        from ...core.threads import available_cores
        from ..threads import runtime_torch_threads

        if self.torch_threads is not None:
            return self.torch_threads
        try:
            parameters = catalog.load("parameters")
        except Exception:  # a bare catalog (a test): no runtime block
            parameters = {}
        configured = runtime_torch_threads(parameters)
        if configured is not None or self.address is not None:
            return configured
        # share the cores: n workers x all-core torch pools would oversubscribe the CPU
        return max(1, available_cores() // max(1, self.n_workers))

    def _connect(self, threads: int | None):
        import dask
        from distributed import Client, LocalCluster

        if self.address is None:
            with dask.config.set(worker_environment(threads or 1)):
                cluster = LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=self.threads_per_worker,
                    processes=True,
                    dashboard_address=":0",  # any free port: never clash with a running cluster
                )
            return Client(cluster), cluster
        try:
            return Client(self.address, timeout=self.timeout), None
        except (OSError, TimeoutError) as exc:
            raise ScaleOutError(
                f"Cannot reach the Dask scheduler at {self.address} within {self.timeout:g} s "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reply'}).",
                "Start a scheduler there (`dask scheduler`) and workers (`dask worker "
                f"{self.address}`), or correct --runner-params address=...; leave address out to "
                "run on a local cluster. Nothing was run or written.",
            ) from exc

    def _resources(self, node) -> dict[str, float] | None:
        resource = self.model_resource if MODEL_TAG in node.tags else self.analysis_resource
        return {resource: 1} if resource else None

    def _result(self, future, node, pipeline, done, catalog) -> dict[str, Any]:
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            self._suggest_resume_scenario(pipeline, done, catalog)
            raise ScaleOutError(
                f"The Dask workers running node '{node.name}' were lost ({exc}); "
                f"{len(done)} of {len(pipeline.nodes)} nodes had finished and their artifacts "
                "are saved.",
                "Check the workers' memory and logs, then rerun the same command with "
                "--only-missing-outputs: completed artifacts are kept and not recomputed.",
            ) from exc
        except Exception:
            self._suggest_resume_scenario(pipeline, done, catalog)
            logger.error(
                "Node '%s' failed on a Dask worker; after fixing the cause, rerun with "
                "--only-missing-outputs to finish the remaining %d nodes.",
                node.name,
                len(pipeline.nodes) - len(done),
            )
            raise

    def describe(self, client) -> dict[str, Any]:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        return {
            "name": "DaskRunner",
            "scheduler": info.get("address"),
            "n_workers": len(workers),
            "workers": sorted(workers),
            "resources": {w: spec.get("resources", {}) for w, spec in sorted(workers.items())},
            "model_resource": self.model_resource,
            "analysis_resource": self.analysis_resource,
        }


def worker_environment(torch_threads: int) -> dict[str, Any]:
    """Dask config for the environment of spawned workers (``dask.config.set``).

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` so workers hand freed memory back to
    the OS at once. The forward passes allocate and free large activation buffers for every
    batch, and with that setting each free became an munmap: the events node took 28 s instead
    of 19 s, 17 s of it in the kernel (docs/scaling.md). Unset it, and give BLAS/OpenMP the
    worker's share of the cores instead of Dask's default of one thread.
    """
    threads = str(int(torch_threads))
    prefix = "distributed.nanny.pre-spawn-environ"
    return {
        f"{prefix}.MALLOC_TRIM_THRESHOLD_": None,
        f"{prefix}.OMP_NUM_THREADS": threads,
        f"{prefix}.MKL_NUM_THREADS": threads,
        f"{prefix}.OPENBLAS_NUM_THREADS": threads,
    }


def check_persisted(pipeline: Pipeline, catalog) -> None:
    """Every dataset a node writes must be persisted: workers share no memory."""
    in_memory = []
    for name in sorted(pipeline.all_outputs()):
        dataset = catalog.get(name, fallback_to_runtime_pattern=True)
        if isinstance(dataset, MemoryDataset) or dataset is None:
            in_memory.append(name)
    if in_memory:
        raise ScaleOutError(
            f"Datasets passed between nodes only in memory cannot cross Dask workers: "
            f"{', '.join(in_memory[:12])}{' ...' if len(in_memory) > 12 else ''}.",
            "Run with --env dask (its catalog persists every dataset on shared storage), or "
            "declare these datasets in the catalog with a filepath every worker can reach.",
        )


def _filepath(dataset) -> Path | None:
    path = getattr(dataset, "_filepath", None)
    if path is None:
        return None
    protocol = getattr(dataset, "_protocol", "file")
    if protocol not in ("file", None):
        return None  # object stores are reachable by construction
    return Path(str(path))


def check_shared_storage(client, pipeline: Pipeline, catalog) -> None:
    """Every worker must see the client's storage: the output root and every input file.

    The client writes a probe file under the common root of all outputs; each worker must read
    back its token and write its own, which the client must then see. Input files (corpora, the
    ARC file) must exist on every worker. A path that only the client sees fails here, before
    any node runs, instead of as a missing file halfway through the run.
    """
    outputs = [
        p for name in pipeline.all_outputs() if (p := _filepath(catalog.get(name))) is not None
    ]
    inputs = [
        str(p)
        for name in pipeline.inputs()
        if not name.startswith("params:") and (p := _filepath(catalog.get(name))) is not None
    ]
    problems: list[str] = []
    if outputs:
        root = Path(os.path.commonpath([str(p.parent) for p in outputs]))
        probe_dir = root / PROBE_FOLDER
        probe_dir.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        probe = probe_dir / f"client-{token}"
        probe.write_text(token)
        try:
            replies = client.run(_probe_storage, str(probe), token, str(probe_dir))
            for worker, reply in sorted(replies.items()):
                if reply["error"]:
                    problems.append(f"worker {worker}: {reply['error']}")
                elif not Path(reply["written"]).exists():
                    problems.append(
                        f"worker {worker} wrote {reply['written']}, which this client cannot see"
                    )
                else:
                    Path(reply["written"]).unlink()
        finally:
            probe.unlink(missing_ok=True)
        storage = str(root)
    else:
        storage = "(no file outputs)"
    if inputs:
        for worker, missing in sorted(client.run(_missing_files, inputs).items()):
            if missing:
                problems.append(f"worker {worker} cannot find input files {missing[:3]}")
    if problems:
        raise ScaleOutError(
            f"Dask workers do not share this run's storage ({storage}):\n  "
            + "\n  ".join(problems[:10]),
            "Put data_root (conf/dask/globals.yml) and the input files on storage every worker "
            "mounts at the same path (NFS, a shared volume), or run the workers on this "
            "machine. Nothing was run or written.",
        )


def _probe_storage(probe: str, token: str, probe_dir: str) -> dict[str, str | None]:
    """On a worker: read the client's probe and leave one of our own next to it."""
    try:
        seen = Path(probe).read_text()
    except OSError as exc:
        return {"error": f"cannot read {probe} ({type(exc).__name__})", "written": None}
    if seen != token:
        return {"error": f"{probe} holds another run's token", "written": None}
    written = Path(probe_dir) / f"worker-{uuid.uuid4().hex}"
    try:
        written.write_text(token)
    except OSError as exc:
        return {"error": f"cannot write in {probe_dir} ({type(exc).__name__})", "written": None}
    return {"error": None, "written": str(written)}


def _missing_files(paths: list[str]) -> list[str]:
    return [p for p in paths if not Path(p).exists()]


def portable_catalog(pipeline: Pipeline, catalog) -> DataCatalog:
    """A plain, picklable catalog with the run's dataset objects (versions included)."""
    return DataCatalog(datasets={name: catalog.get(name) for name in sorted(pipeline.datasets())})


def _project_root() -> Path:
    from ...core.paths import _ROOT

    return _ROOT["project"] or Path.cwd()


def _provenance_hooks(hook_manager):
    if hook_manager is None:
        return None
    for plugin in hook_manager.get_plugins():
        if hasattr(plugin, "record_remote_node"):
            return plugin
    return None


class _NodeRecorder:
    """Worker-side node hooks: wall time, CPU time, tokens forwarded and the artifacts saved."""

    def __init__(self, catalog) -> None:
        self.catalog = catalog
        self.started = 0.0
        self.cpu_started = 0.0
        self.tokens = 0
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.artifacts: list[dict[str, Any]] = []

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        from ...measure.forward import tokens_forwarded

        self.started, self.tokens = time.perf_counter(), tokens_forwarded()
        self.cpu_started = time.process_time()

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        from ...measure.forward import tokens_forwarded

        self.seconds = time.perf_counter() - self.started
        self.cpu_seconds = time.process_time() - self.cpu_started
        self.tokens = tokens_forwarded() - self.tokens

    @hook_impl
    def after_dataset_saved(self, dataset_name, data, node) -> None:
        from ...study.provenance import artifact_records
        from ..hooks import _saved_paths

        for path in _saved_paths(self.catalog, dataset_name):
            for record in artifact_records(path):
                self.artifacts.append({"dataset": dataset_name, **record})


def _worker_hook_manager(recorder: _NodeRecorder):
    """The project's hooks for one node on a worker, with the recorder standing in for the
    run-level provenance hook (which lives in the client)."""
    from kedro.framework.hooks.manager import _create_hook_manager
    from kedro.framework.project import settings

    from ..hooks import ProvenanceHooks

    manager = _create_hook_manager()
    for hook in settings.HOOKS:
        if not isinstance(hook, ProvenanceHooks):
            manager.register(hook)
    manager.register(recorder)
    return manager


def run_node_on_worker(
    node,
    catalog: DataCatalog,
    run_id: str | None,
    is_async: bool,
    project_root: str,
    torch_threads: int | None,
    upstream: list,
    remote_code: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one node in a Dask worker; returns its provenance record (``upstream`` only orders
    the task after its dependencies; ``remote_code``: the roles the run's configuration lets
    run their checkpoint's code, :mod:`avalanche_kedro.measure.remote_code`)."""
    from distributed import get_worker
    from kedro.framework.project import configure_project
    from kedro.runner.task import Task

    from ...core.paths import remember_project_root

    if not _WORKER_STATE["configured"]:
        configure_project(PACKAGE)
        _WORKER_STATE["configured"] = True
    remember_project_root(project_root)
    import torch

    from ..threads import ENV_VAR, at_most_cores, set_torch_threads

    # a long-lived worker goes back to its own default when a later run sets no count
    default = _WORKER_STATE.setdefault("torch_threads", torch.get_num_threads())
    threads = at_most_cores(torch_threads, "Dask worker")
    if threads is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = str(threads)  # the project's node hooks in this worker read it
    set_torch_threads(threads or default)
    allow_remote_code(remote_code or {})  # this run's decision, never an earlier run's
    recorder = _NodeRecorder(catalog)
    Task(
        node=node,
        catalog=catalog,
        is_async=is_async,
        hook_manager=_worker_hook_manager(recorder),
        run_id=run_id,
    ).execute()
    from ...measure.checkpoints import models_loaded

    return {
        "node": node.name,
        "worker": get_worker().address,
        "models_loaded_by_worker": models_loaded(),
        "seconds": round(recorder.seconds, 3),
        "cpu_seconds": round(recorder.cpu_seconds, 3),
        "torch_threads": torch.get_num_threads(),
        "tokens_forwarded": int(recorder.tokens),
        "artifacts": recorder.artifacts,
    }
