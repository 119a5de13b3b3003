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
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro.runner import AbstractRunner

from ...core.errors import ScaleOutError
from ...measure.remote_code import allow_remote_code, allowed_roles
from ..threads import thread_count
from .dask_storage import check_persisted, check_shared_storage, portable_catalog

logger = logging.getLogger(__name__)

PACKAGE = "avalanche_kedro"
MODEL_TAG = "model"  # nodes that run the model: pinned to `model_resource` workers
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
        from distributed import Event, as_completed

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
            stop = Event(f"avalanche-kedro-stop-{token}", client=client)
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
                    stop.name,
                    key=f"{node.name}-{token}",
                    pure=False,
                    resources=self._resources(node),
                )
            by_future = {future: node for node, future in futures.items()}
            for future in as_completed(list(futures.values())):
                node = by_future[future]
                try:
                    record = future.result()
                except Exception as exc:
                    try:
                        self._stop_after_failure(stop, by_future, done, provenance)
                    except Exception as stop_error:  # never hide the node's own error
                        logger.warning("Could not wait for the running nodes: %s", stop_error)
                    error = self._failure(exc, node, pipeline, done, catalog)
                    if error is exc:
                        raise
                    raise error from exc
                self._completed(record, done, provenance, node, len(futures))
        finally:
            for future in futures.values():
                if not future.done():
                    future.cancel()
            client.close()
            if cluster is not None:
                cluster.close()

    def _completed(self, record, done: set, provenance, node, total: int) -> None:
        done.add(node)
        if provenance is not None:
            provenance.record_remote_node(record)
        logger.info(
            "Completed node %s on %s (%.1f s); %d of %d done",
            node.name,
            record["worker"],
            record["seconds"],
            len(done),
            total,
        )

    def _stop_after_failure(self, stop, by_future: dict, done: set, provenance) -> None:
        """After a node failed: start nothing new, and let the nodes already running finish.

        A Dask task cannot be interrupted once it runs: cancelling its future only drops the
        result, while the worker goes on and saves the node's outputs, possibly after this run
        has ended and its lineage hooks have stamped what they found. A later
        ``--only-missing-outputs`` run would then see outputs this run never accounted for.
        So, like Kedro's own parallel runner on an error, this waits for the running nodes:
        the stop event makes every task that has not started yet return at once without
        running its node, and the tasks that had started are awaited and recorded, so when
        the error is raised every output of this run is complete, recorded and stamped.
        """
        from distributed import wait

        stop.set()
        pending = [future for future in by_future if not future.done()]
        if pending:
            logger.warning(
                "Stopping the run: no new node starts; waiting for the nodes already running "
                "to finish and save their outputs (%d tasks left).",
                len(pending),
            )
            wait(pending)
        for future in pending:
            if future.status != "finished":
                continue
            record = future.result()
            if not record.get("skipped"):
                self._completed(record, done, provenance, by_future[future], len(by_future))

    def _failure(self, exc: BaseException, node, pipeline, done, catalog) -> BaseException:
        """The error to raise for a failed node: a lost worker becomes a ScaleOutError naming
        the resume command; any other error is the node's own, with the resume hint logged."""
        from distributed import KilledWorker

        self._suggest_resume_scenario(pipeline, done, catalog)
        if isinstance(exc, KilledWorker):
            return ScaleOutError(
                f"The Dask workers running node '{node.name}' were lost ({exc}); "
                f"{len(done)} of {len(pipeline.nodes)} nodes had finished and their artifacts "
                "are saved.",
                "Check the workers' memory and logs, then rerun the same command with "
                "--only-missing-outputs: completed artifacts are kept and not recomputed.",
            )
        logger.error(
            "Node '%s' failed on a Dask worker; after fixing the cause, rerun with "
            "--only-missing-outputs to finish the remaining %d nodes.",
            node.name,
            len(pipeline.nodes) - len(done),
        )
        return exc

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
    stop_event: str | None = None,
) -> dict[str, Any]:
    """Run one node in a Dask worker; returns its provenance record (``upstream`` only orders
    the task after its dependencies; ``remote_code``: the roles the run's configuration lets
    run their checkpoint's code, :mod:`avalanche_kedro.measure.remote_code`; ``stop_event``:
    the run's :class:`distributed.Event`, set by the client after a node failed, when this
    task returns ``{"skipped": True}`` without running its node)."""
    from distributed import Event, get_worker

    if stop_event is not None and Event(stop_event).is_set():
        return {"node": node.name, "skipped": True}
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
