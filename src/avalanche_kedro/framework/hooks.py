"""Project hooks: the active configuration for the pipeline registry, and run provenance."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

MANIFEST_FOLDER = Path("08_reporting/run_manifests")  # under globals.data_root (default data)


class ActiveConfigHooks:
    """Hands the session's config loader to the pipeline registry.

    The model roles (one namespace per role) are read from the parameters of the *active*
    environment (``kedro run --env paper``, ``--params``), which only the session knows; Kedro
    registers pipelines after the context is created, so the registry can use this loader.
    """

    @hook_impl
    def after_context_created(self, context) -> None:
        from ..core.paths import remember_project_root
        from .active_config import remember_config_loader

        remember_config_loader(context.config_loader)
        remember_project_root(context.project_path)


class InputCheckHooks:
    """Before a run, before any node: the preflight, then the saved inputs.

    1. The preflight (:mod:`.preflight`): device and dtype, every local corpus and question
       file, every local checkpoint the project does not build - all without loading a model
       or tokenizing a window, so a bad value or file fails in seconds.
    2. Every dataset the selected pipelines read but do not write must exist and be readable,
       otherwise stop with the dataset's name and the command that produces it: a
       `kedro run --pipelines reporting` without upstream outputs, or with a truncated or
       corrupted artifact, stops before anything is written.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        from kedro.framework.project import pipelines as registered

        from ..core.errors import ArtifactError
        from .preflight import run_preflight

        produced_by = {
            output: key
            for key, candidate in sorted(registered.items())
            if key != "__default__"
            for output in candidate.all_outputs()
        }
        checks = run_preflight(pipeline, catalog, set(produced_by))
        logger.info(
            "Preflight passed before any model was loaded: %s",
            "; ".join(checks) if checks else "nothing to check for these pipelines",
        )
        problems = []
        for name in sorted(pipeline.inputs()):
            # raw inputs (corpora, the ARC file) are not produced by the project: their own
            # loaders report problems with them; parameters are always there
            if name not in produced_by:
                continue
            try:
                dataset = catalog.get(name)
            except Exception:
                dataset = None
            if dataset is None or type(dataset).__name__ == "MemoryDataset":
                continue
            try:
                if not catalog.exists(name):
                    problems.append((name, "has not been produced yet"))
                    continue
                catalog.load(name)
            except Exception as exc:  # unreadable: truncated, corrupted, wrong format
                reason = (
                    str(exc).strip().splitlines()[-1][:300]
                    if str(exc).strip()
                    else type(exc).__name__
                )
                problems.append((name, f"cannot be read ({reason})"))
        if not problems:
            return
        lines, commands = [], []
        for name, what in problems:
            command = f"kedro run --pipelines {produced_by[name]}"
            commands.append(command)
            lines.append(f"{name} {what}; it is written by `{command}`")
        shown = lines[:12] + ([f"... and {len(lines) - 12} more"] if len(lines) > 12 else [])
        raise ArtifactError(
            "The selected pipelines need saved datasets that are missing or unreadable:\n  "
            + "\n  ".join(shown),
            "Run the producing pipelines first (or plain `kedro run` for everything): "
            + ", ".join(f"`{c}`" for c in dict.fromkeys(commands))
            + ". Earlier versions are never overwritten; a rerun writes a new version.",
        )


class RemoteCodeHooks:
    """``models.<role>.trust_remote_code`` of the run's own parameters (``--params`` included)
    decides which roles may run their checkpoint's code, for this run only
    (:mod:`avalanche_kedro.measure.remote_code`): set after the preflight, mirrored into the
    environment for node processes (the Dask runner hands it to each task), and put back when
    the run ends or fails. A saved model manifest is never read for it."""

    def __init__(self) -> None:
        self._active = False
        self._previous: dict[str, str] | None = None
        self._previous_env: str | None = None

    @hook_impl(trylast=True)  # after the preflight: a run that stops there changes nothing
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        import os

        from ..measure.remote_code import ENV_VAR, allow_remote_code, allowed_by
        from .preflight import run_parameters

        allowed = allowed_by(run_parameters(catalog))
        self._previous_env = os.environ.get(ENV_VAR)
        self._previous = allow_remote_code(allowed)
        self._active = True
        if allowed:
            logger.warning(
                "trust_remote_code is true in this run's configuration for %s: their "
                "checkpoints' own Python code will run when they load",
                ", ".join(f"{role} ('{checkpoint}')" for role, checkpoint in allowed.items()),
            )

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._restore()

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._restore()

    def _restore(self) -> None:
        import os

        from ..measure.remote_code import ENV_VAR, allow_remote_code

        if not self._active:
            return
        allow_remote_code(self._previous)
        if self._previous_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = self._previous_env
        self._active, self._previous, self._previous_env = False, None, None


class ProvenanceHooks:
    """Writes one run manifest per ``kedro run`` (SPEC §12), also when the run fails or is
    interrupted (``status``: ``completed``, ``failed: <error>``, ``interrupted: SIGINT``).

    ``data/08_reporting/run_manifests/<session id>.json`` holds the session id and the content
    run id, the config hash, code version, package versions, machine, device and dtype, each
    role's model identity and slice hashes, per node the wall time, the CPU time of the
    process, torch's thread count and the tokens forwarded, the process's own CPU time and peak
    memory, the path, size and sha256 of every artifact saved by the run, and under
    ``remote_code`` each role whose configuration allows its checkpoint's own code to run,
    with the Python files that run (``{}``: none).

    A node's ``cpu_seconds`` is the CPU time (user + system) of the process while the node ran,
    every thread included (torch's intra-op pool), plus that of the child processes it started
    and waited for (the tail fits' process pool), which ``cpu_seconds_children`` gives apart
    (:func:`cpu_clock`). Nodes that ran at the same time in one process (ThreadRunner) share the
    process's time, so their values overlap. Nodes that ran on Dask workers carry the worker
    process's CPU time instead (:meth:`ProvenanceHooks.record_remote_node`).
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.context = None
        self.catalog = None
        self.started = 0.0
        self.cpu_started = (0.0, 0.0)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.artifacts: list[dict[str, Any]] = []
        self._node_start: dict[str, tuple[float, tuple[float, float], int]] = {}
        self.remote_tokens = 0
        self.runner: dict[str, Any] = {}
        self.run_params: dict[str, Any] | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._reset()
        self.context = context

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        self.catalog = catalog
        self.run_params = run_params
        self.started = time.time()
        self.cpu_started = cpu_clock()

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        from ..measure.forward import tokens_forwarded

        self._node_start[node.name] = (time.perf_counter(), cpu_clock(), tokens_forwarded())

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        import torch

        from ..measure.forward import tokens_forwarded

        now = (time.perf_counter(), cpu_clock(), tokens_forwarded())
        started, cpu, tokens = self._node_start.pop(node.name, now)
        own, children = now[1][0] - cpu[0], now[1][1] - cpu[1]
        self.nodes[node.name] = {
            "seconds": round(now[0] - started, 3),
            "cpu_seconds": round(own + children, 3),
            "cpu_seconds_children": round(children, 3),
            "tokens_forwarded": now[2] - tokens,
            "torch_threads": torch.get_num_threads(),
        }

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        from ..study.provenance import artifact_records

        for path in _saved_paths(self.catalog, dataset_name):
            for record in artifact_records(path):
                self.artifacts.append({"dataset": dataset_name, **record})

    def record_remote_node(self, record: dict[str, Any]) -> None:
        """A node that ran in another process (a Dask worker): its time, tokens and artifacts.

        Node hooks fire in the worker, so the worker measures them (see
        :mod:`avalanche_kedro.framework.runners.dask`) and the runner hands the record over here.
        """
        self.nodes[record["node"]] = {
            "seconds": record["seconds"],
            "cpu_seconds": record.get("cpu_seconds"),
            "tokens_forwarded": record["tokens_forwarded"],
            "torch_threads": record.get("torch_threads"),
            "worker": record.get("worker"),
            "models_loaded_by_worker": record.get("models_loaded_by_worker", []),
        }
        self.remote_tokens += int(record["tokens_forwarded"])
        self.artifacts.extend(record.get("artifacts", []))

    def record_runner(self, description: dict[str, Any]) -> None:
        """How the run was executed (runner, scheduler address, workers)."""
        self.runner = dict(description)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self.run_params = None
        self._write_quietly(run_params, "completed")

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self.run_params = None
        self._write_quietly(run_params, f"failed: {type(error).__name__}: {error}"[:2000])

    def on_run_interrupted(self, error: BaseException) -> None:
        """The run was stopped by a signal (called by
        :class:`~avalanche_kedro.framework.interrupts.InterruptHooks`; Kedro calls no hook for a
        ``KeyboardInterrupt``): the manifest of what ran, with ``status`` ``interrupted: SIGINT``
        (or ``SIGTERM``)."""
        run_params, self.run_params = self.run_params, None
        if run_params is None:  # no run in progress, or its manifest is written already
            return
        name = getattr(error, "signal_name", None) or type(error).__name__
        self._write_quietly(run_params, f"interrupted: {name}")

    def _write_quietly(self, run_params: dict[str, Any], status: str) -> None:
        """:meth:`_write`, with a problem writing the manifest logged as an error, never
        raised: a failing run's own error (a dataset's failed save) is the one shown, and the
        other hooks of the run's end (signal handlers put back) still run."""
        try:
            self._write(run_params, status)
        except Exception as exc:
            logger.error(
                "The run manifest of this %s run could not be written to %s (%s: %s). Free "
                "disk space or make that folder writable; the run's outputs and errors are "
                "as reported.",
                status.split(":", 1)[0],
                manifest_folder(self.context),
                type(exc).__name__,
                exc,
            )

    def _write(self, run_params: dict[str, Any], status: str) -> None:
        """Write the manifest under a staged name, then link it to ``<session id>.json``
        (another name if that exists): it appears complete or not at all, and never replaces
        another run's manifest."""
        from .atomic import staged_path

        try:
            manifest = self._manifest(run_params, status)
        except Exception as exc:  # provenance must never hide the run's own outcome
            logger.warning("Could not assemble the run manifest: %s", exc)
            return
        folder = manifest_folder(self.context)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
        target = folder / f"{manifest['session_id']}.json"
        staged = Path(str(staged_path(PurePosixPath(target.as_posix()))))
        try:
            staged.write_text(text)
            for attempt in range(100):
                try:
                    os.link(staged, target)  # never replaces: two runs keep both manifests
                    break
                except FileExistsError:
                    target = folder / f"{manifest['session_id']}-{time.time_ns()}-{attempt}.json"
                except OSError:  # no hard links here: an exclusive create, then the text
                    with open(target, "x") as handle:
                        handle.write(text)
                    break
        finally:
            staged.unlink(missing_ok=True)
        logger.info("Run manifest written to %s", target)

    def _manifest(self, run_params: dict[str, Any], status: str) -> dict[str, Any]:
        from ..measure.forward import tokens_forwarded
        from ..measure.remote_code import allowed_by, remote_code_record
        from ..study.params import as_plain
        from ..study.provenance import (
            code_version,
            config_hash,
            content_run_id,
            machine,
            package_versions,
        )

        # the blocks are parameter models once Kedro validated them: hash the written mappings
        parameters = as_plain(self.context.params) if self.context else {}
        roles = list(parameters.get("model_roles") or [])
        models, slices, devices = {}, {}, {}
        for role in roles:
            models[role] = _load_latest(self.catalog, f"{role}.model_manifest")
            slices[role] = _load_latest(self.catalog, f"{role}.slice_manifest")
            report = _load_latest(self.catalog, f"{role}.instrumentation_report")
            if report:
                devices[role] = {
                    k: report.get(k)
                    for k in ("device", "dtype", "n_layers", "d_ff", "n_parameters")
                }
        config_sha = config_hash(parameters)
        code = code_version(self.context.project_path if self.context else None)
        complete = all(models.values()) and all(slices.values()) and roles
        return {
            "session_id": run_params.get("run_id") or run_params.get("session_id"),
            "run_id": content_run_id(config_sha, code, models, slices) if complete else None,
            "status": status,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "wall_seconds": round(time.time() - self.started, 3),
            "env": run_params.get("env"),
            "pipeline_names": run_params.get("pipeline_names"),
            "namespaces": run_params.get("namespaces"),
            "runtime_params": run_params.get("runtime_params"),
            "config_hash": config_sha,
            "code_version": code,
            "packages": package_versions(),
            "machine": machine(),
            "runtime": parameters.get("runtime"),
            "devices": devices,
            "models": {
                role: {
                    k: (m or {}).get(k)
                    for k in (
                        "model_id",
                        "checkpoint",
                        "source",
                        "revision_requested",
                        "revision",
                        "content_sha256",
                        "weights_sha256",
                        "tokenizer_sha256",
                        "model_type",
                    )
                }
                for role, m in models.items()
            },
            "remote_code": remote_code_record(allowed_by(parameters), models),
            "slices": {
                role: [
                    {
                        k: s.get(k)
                        for k in ("dataset_role", "slice", "n_windows", "seq_len", "sha256")
                    }
                    for s in (m or {}).get("slices", [])
                ]
                for role, m in slices.items()
            },
            "tokens_forwarded": tokens_forwarded() + self.remote_tokens,
            "torch_threads": {
                "setting": (parameters.get("runtime") or {}).get("torch_threads"),
                "used_by_nodes": sorted(
                    {n["torch_threads"] for n in self.nodes.values() if n.get("torch_threads")}
                ),
            },
            "process": _process_record(self.cpu_started),
            # the runner in this process (SequentialRunner, ThreadRunner, ...)
            "runner": self.runner or {"name": "in-process", "class": _runner_class(run_params)},
            "nodes": self.nodes,
            "artifacts": self.artifacts,
        }


def _runner_class(run_params: dict[str, Any]) -> str | None:
    """The runner's class name (Kedro records ``<kedro.runner....SequentialRunner object at
    0x...>``, the ``str`` of the instance)."""
    text = str(run_params.get("runner") or "")
    return re.sub(r"^<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>$", r"\1", text) or None


def cpu_clock() -> tuple[float, float]:
    """CPU seconds (user + system) of this process (all threads) and of its child processes
    that have ended and been waited for (0 where the OS cannot tell: Windows)."""
    try:
        import resource
    except ImportError:
        return time.process_time(), 0.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def _process_record(cpu_started: tuple[float, float]) -> dict[str, Any]:
    """The run's process: id, CPU seconds of it (all threads) and of its ended children, both
    since the pipeline started (Dask workers: in each node's record), peak resident memory."""
    import os
    import sys

    own, children = cpu_clock()
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, B on macOS
        peak_bytes = int(peak if sys.platform == "darwin" else peak * 1024)
    except ImportError:  # Windows
        peak_bytes = None
    return {
        "pid": os.getpid(),
        "cpu_seconds": round(own, 3),
        "cpu_seconds_children": round(children, 3),
        "cpu_seconds_pipeline": round(own + children - sum(cpu_started), 3),
        "peak_rss_bytes": peak_bytes,
    }


def manifest_folder(context) -> Path:
    """``<data_root>/08_reporting/run_manifests`` of the active configuration."""
    if context is None:
        return Path("data") / MANIFEST_FOLDER
    try:
        data_root = context.config_loader["globals"].get("data_root", "data")
    except Exception:  # no globals: the default layout
        data_root = "data"
    return Path(context.project_path) / str(data_root) / MANIFEST_FOLDER


def _load_latest(catalog, name: str) -> dict | None:
    try:
        if catalog is None or not catalog.exists(name):
            return None
        return catalog.load(name)
    except Exception:  # a missing or unreadable optional input leaves a gap, not a crash
        return None


def _saved_paths(catalog, name: str) -> list[Path]:
    """Every file or folder the dataset just saved: its path, and the CSV copy of a
    :class:`~avalanche_kedro.framework.datasets.TableDataset` (one entry, two files)."""
    path = _saved_path(catalog, name)
    if path is None:
        return []
    companion = getattr(catalog.get(name), "csv_save_path", None)
    return [path] + ([Path(str(companion()))] if callable(companion) else [])


def _saved_path(catalog, name: str) -> Path | None:
    """Where the dataset just saved its data (the version folder's file for versioned ones)."""
    from .lineage import artifact_path

    if catalog is None:
        return None
    try:
        dataset = catalog.get(name)
    except Exception:
        return None
    return artifact_path(dataset, saved=True)
