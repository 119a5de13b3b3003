"""Saved artifacts are verified when read, and never mixed across configurations.

:class:`LineageHooks` stamps every artifact a run saves (:mod:`.stamps`: size, sha256 and the
parameter leaves it depends on) and checks, before anything is computed from a saved artifact:

1. **Content**: its size and sha256 are those its stamp recorded when it was written; an event
   raster also keeps its invariants (counts <= d_ff, X == (A > 0)) and has the run's window
   count and length. An artifact with no stamp (written outside a run, or by a version of the
   project without stamps) cannot be verified and is refused too.
2. **Lineage**: the parameters it was made with equal the current run's, for every parameter it
   depends on (the ``params:`` inputs of its node and of every node upstream). A run that would
   read an artifact made with other windows, gains, thresholds, ... stops and names the changed
   keys and both values, instead of mixing configurations. Because every input is compared
   with the one current configuration, two inputs of one node can never come from two.
3. ``kedro run --only-missing-outputs`` treats an output whose stamp is missing, does not match
   its content or was made with other parameters as missing, so it is recomputed (a new
   version) rather than silently skipped; the log names each one and why.

Where: the pipeline's saved inputs are verified in ``before_pipeline_run``, before any node
runs or model loads (this covers nodes that run in other processes: ParallelRunner, Dask
workers); in-process nodes also verify each input just before it is loaded (a file hashed once
per run unless it changes). Outputs saved by nodes in other processes, which run no hook of
this process, are stamped when the run ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from ..core.errors import ArtifactError, ConfigurationError
from ..study.provenance import NON_SCIENTIFIC_PARAMETERS
from .stamps import (
    changed_parameters,
    identity,
    leaves_sha256,
    parameter_leaves,
    read_stamp,
    stamp_path,
    verify_file,
    write_stamp,
)

logger = logging.getLogger(__name__)

# parameters that change how a run executes, never what it computes (as in the config hash),
# and the remote-code permission: a decision of each run, never a property of an artifact
NOT_LINEAGE = (
    *(f"{section}.{key}" for section, key in NON_SCIENTIFIC_PARAMETERS),
    "models.*.trust_remote_code",
)
RASTER_WINDOWS = {"event_rasters_A": "n_raster", "event_rasters_B": "n_eval_b"}


def artifact_path(dataset: Any, *, saved: bool = False) -> Path | None:
    """The local file or folder ``dataset`` loads (``saved``: just saved), ``None`` when it has
    none (memory, parameters, remote storage) or no version exists yet."""
    if dataset is None or not hasattr(dataset, "_filepath"):
        return None
    if getattr(dataset, "_protocol", "file") not in ("file", None):
        return None
    try:
        if getattr(dataset, "_version", None) is None:
            path = dataset._filepath
        elif saved:
            path = dataset._get_versioned_path(dataset.resolve_save_version())
        else:
            path = dataset._get_load_path()
    except Exception:  # no version saved yet
        return None
    return Path(str(path))


class LineageHooks:
    """Stamps saved artifacts and verifies them (content and parameters) before they are read."""

    def __init__(self, registered: Mapping[str, Any] | None = None) -> None:
        """``registered``: the pipelines by name (default: the project's registry)."""
        self.context = None
        self.registered = registered
        self._reset()

    def _pipelines(self) -> Mapping[str, Any]:
        if self.registered is not None:
            return self.registered
        from kedro.framework.project import pipelines

        return pipelines

    def _reset(self) -> None:
        self.catalog = None
        self.session_id: str | None = None
        self.started = 0.0
        self.parameters: dict[str, Any] = {}
        self.depends_on: dict[str, set[str]] = {}
        self.producer: dict[str, str] = {}
        self.verified: dict[str, tuple] = {}
        self.stamped: set[str] = set()

    @hook_impl
    def after_context_created(self, context) -> None:
        self._reset()
        self.context = context

    # ---- what each dataset depends on -----------------------------------------------------

    def _learn_pipelines(self) -> None:
        """Which node writes each dataset, and the parameter keys each dataset depends on (the
        ``params:`` inputs of its node and of every node upstream, over every registered
        pipeline, so the answer does not depend on ``--pipelines``)."""
        pipelines = self._pipelines()
        self.parameters = with_defaults(self.context.params) if self.context else {}
        writers: dict[str, Any] = {}
        for name in sorted(pipelines):
            for node in pipelines[name].nodes:
                for output in node.outputs:
                    writers.setdefault(output, node)
        self.producer = {name: node.name for name, node in writers.items()}
        memo: dict[str, set[str]] = {}

        def keys_of(dataset: str, seen: frozenset = frozenset()) -> set[str]:
            if dataset in memo:
                return memo[dataset]
            node = writers.get(dataset)
            keys: set[str] = set()
            if node is not None and dataset not in seen:
                for name in node.inputs:
                    if name == "parameters":
                        keys.add("")
                    elif name.startswith("params:"):
                        keys.add(name[len("params:") :])
                    else:
                        keys |= keys_of(name, seen | {dataset})
            memo[dataset] = keys
            return keys

        self.depends_on = {name: keys_of(name) for name in writers}

    def _current(self, dataset: str) -> dict[str, Any]:
        leaves = parameter_leaves(self.parameters, self.depends_on.get(dataset, ()))
        return {
            key: value
            for key, value in leaves.items()
            if not any(fnmatchcase(key, p) or fnmatchcase(key, p + ".*") for p in NOT_LINEAGE)
        }

    def _command(self, dataset: str) -> str:
        pipelines = self._pipelines()
        for name in sorted(pipelines):
            if name != "__default__" and dataset in pipelines[name].all_outputs():
                return f"kedro run --pipelines {name}"
        return "kedro run"

    # ---- the checks -----------------------------------------------------------------------

    def problem(self, dataset: str) -> str | None:
        """Why the saved ``dataset`` must not be used, in one line (``None``: verified)."""
        try:
            self.verify(dataset)
        except StaleArtifactError as exc:
            return "made with other parameters: " + "; ".join(exc.changes)
        except (ArtifactError, ConfigurationError) as exc:
            return exc.problem.replace("\n", " ")
        return None

    def verify(self, dataset: str) -> None:
        """Stop unless the saved ``dataset`` is what its stamp says and was made with the
        current parameters (a dataset the project does not write, or that is not saved in a
        local file, is not checked)."""
        if dataset not in self.producer or self.catalog is None:
            return
        try:
            path = artifact_path(self.catalog.get(dataset))
        except Exception:
            return
        if path is None or not path.exists():
            return  # missing: InputCheckHooks names the producing pipeline
        if self.verified.get(dataset) == identity(path):
            return
        command = self._command(dataset)
        stamp = _stamp_of(path)
        if stamp is None:
            raise ArtifactError(
                f"Dataset '{dataset}' at '{path}' has no stamp ({stamp_path(path).name}): it was "
                "not written by a `kedro run` of this project version, so neither its content "
                "nor the parameters it was made with can be verified.",
                f"Rerun the pipeline that produces it: `{command}` (or rerun with "
                "`--only-missing-outputs`, which recomputes unverifiable outputs).",
            )
        verify_file(path, stamp, dataset=dataset, command=command)
        changes = changed_parameters(stamp.get("parameters", {}), self._current(dataset))
        if changes:
            shown = changes[:10] + ([f"... and {len(changes) - 10} more"] if changes[10:] else [])
            raise StaleArtifactError(
                f"Dataset '{dataset}' at '{path}' was made with other parameters than this run's "
                f"(session {stamp.get('session_id')}); reading it would mix two configurations:"
                "\n    " + "\n    ".join(shown),
                "Run with the parameters it was made with, or recompute it with this run's: "
                f"`{command}` with this run's --env and --params (or add "
                "`--only-missing-outputs` to a run of all the pipelines it needs: outputs made "
                "with other parameters count as missing and are recomputed).",
                dataset=dataset,
                changes=tuple(shown),
            )
        self._check_raster(dataset, path)
        self.verified[dataset] = identity(path)

    def _check_raster(self, dataset: str, path: Path) -> None:
        """A raster's invariants, and its window count and length against this run's."""
        if type(self.catalog.get(dataset)).__name__ != "EventRasterDataset":
            return
        from ..measure.rasters import EventRasters

        rasters = EventRasters.open(path)
        rasters.check_invariants(where=dataset)
        windows = self.parameters.get("windows") or {}
        axes = [("T (tokens per window, windows.seq_len)", rasters.n_tokens, "seq_len")]
        key = RASTER_WINDOWS.get(dataset.rsplit(".", 1)[-1])
        if key:
            axes.append((f"N (windows, windows.{key})", rasters.n_windows, key))
        wrong = [
            f"{axis} is {found}, this run's is {windows[key]}"
            for axis, found, key in axes
            if windows.get(key) is not None and found != windows[key]
        ]
        if wrong:
            raise ArtifactError(
                f"Rasters '{dataset}' at '{path}' do not have this run's windows: "
                + "; ".join(wrong)
                + ".",
                f"Rerun the pipeline that writes them: `{self._command(dataset)}`.",
            )

    # ---- hooks ----------------------------------------------------------------------------

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        if self.context is None:  # a process without a session (a spawned node process)
            return
        self.catalog = catalog
        self.session_id = run_params.get("run_id") or run_params.get("session_id")
        self.started = time.time()
        self._learn_pipelines()
        if run_params.get("only_missing_outputs"):
            self._mark_stale_outputs_missing(pipeline)
        problems = []
        for dataset in sorted(pipeline.inputs()):
            try:
                self.verify(dataset)
            except (ArtifactError, ConfigurationError) as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise _together(problems)

    def _mark_stale_outputs_missing(self, pipeline) -> None:
        """``--only-missing-outputs`` asks each output's ``exists()``: an output that cannot be
        verified, or was made with other parameters, must count as missing."""
        for dataset in sorted(pipeline.all_outputs()):
            reason = self.problem(dataset)
            if reason is None:
                continue
            instance = self.catalog.get(dataset)
            instance.exists = _missing  # this run's instance only; the file is kept
            logger.warning(
                "--only-missing-outputs: '%s' will be recomputed (a new version; the old one is "
                "kept): %s",
                dataset,
                reason,
            )

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node) -> None:
        if self.context is not None and self.catalog is not None:
            self.verify(dataset_name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self.context is None or self.catalog is None or dataset_name not in self.producer:
            return
        path = artifact_path(self.catalog.get(dataset_name), saved=True)
        if path is not None and path.exists():
            self._stamp(dataset_name, path, node.name if node else None)

    def _stamp(self, dataset: str, path: Path, node: str | None) -> None:
        current = self._current(dataset)
        write_stamp(
            path,
            {
                "dataset": dataset,
                "node": node or self.producer.get(dataset),
                "session_id": self.session_id,
                "parameters": current,
                "parameters_sha256": leaves_sha256(current),
            },
        )
        self.stamped.add(dataset)
        self.verified[dataset] = identity(path)

    def _stamp_outputs_of_other_processes(self, pipeline) -> None:
        """Outputs this run wrote from another process (no hook of this process saw the save):
        stamped now, with this run's parameters, if they were written after the run started."""
        if self.context is None or self.catalog is None:
            return
        for dataset in sorted(pipeline.all_outputs()):
            if dataset in self.stamped or dataset not in self.producer:
                continue
            try:
                path = artifact_path(self.catalog.get(dataset))
            except Exception:
                continue
            if path is None or not path.exists() or read_stamp_quietly(path) is not None:
                continue
            if path.stat().st_mtime >= self.started - 1:
                self._stamp(dataset, path, None)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._stamp_outputs_of_other_processes(pipeline)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        try:  # the outputs that were completely saved before the error are good
            self._stamp_outputs_of_other_processes(pipeline)
        except Exception as exc:  # never hide the run's own error
            logger.warning("Could not stamp the outputs of the failed run: %s", exc)


class StaleArtifactError(ConfigurationError):
    """A saved artifact was made with other parameters than the current run's."""

    def __init__(self, problem: str, fix: str, *, dataset: str = "", changes: tuple = ()):
        super().__init__(problem, fix)
        self.dataset, self.changes = dataset, tuple(changes)

    def __reduce__(self):
        return (_stale, (self.problem, self.fix, self.dataset, self.changes))


def _stale(problem: str, fix: str, dataset: str, changes: tuple) -> StaleArtifactError:
    return StaleArtifactError(problem, fix, dataset=dataset, changes=changes)


def _together(problems: list[Exception]) -> Exception:
    """One error for several unusable inputs: datasets made with the same other parameters are
    listed together under those changes; content problems one by one."""
    stale = [p for p in problems if isinstance(p, StaleArtifactError)]
    lines, groups = [], {}
    for problem in stale:
        groups.setdefault(problem.changes, []).append(problem.dataset)
    for changes, datasets in groups.items():
        lines.append(
            f"{', '.join(datasets)} ({len(datasets)} datasets) were made with other parameters "
            "than this run's; reading them would mix two configurations:\n    "
            + "\n    ".join(changes)
        )
    lines += [p.problem for p in problems if p not in stale][:8]
    kind = ArtifactError if len(stale) < len(problems) else ConfigurationError
    return kind(
        f"{len(problems)} saved inputs of the selected pipelines cannot be used:\n  "
        + "\n  ".join(line.replace("\n", "\n  ") for line in lines),
        problems[0].fix,
    )


def _stamp_of(path: Path, *, fresh_seconds: float = 60.0, wait_seconds: float = 10.0):
    """The artifact's stamp. A run publishes an artifact, then writes its stamp: a concurrent
    run that reads an artifact published a moment ago waits (up to ``wait_seconds``) for the
    stamp rather than refuse it."""
    stamp = read_stamp(path)
    deadline = time.monotonic() + wait_seconds
    while stamp is None and time.time() - path.stat().st_mtime < fresh_seconds:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
        stamp = read_stamp(path)
    return stamp


def read_stamp_quietly(path: Path) -> dict | None:
    try:
        return read_stamp(path)
    except ArtifactError:
        return None


def with_defaults(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as plain JSON values, every typed block (``study.params.BLOCKS``, and
    ``models.<role>``) validated with its defaults filled in, whether or not Kedro validated it
    for the pipelines of this run: an artifact made with a default spelled out, or by a run
    that validated fewer blocks, compares right."""
    from ..study.params import BLOCKS, ModelParams

    def typed(key: str, value: Any) -> Any:
        try:
            if key == "models" and isinstance(value, Mapping):
                return {role: ModelParams.coerce(v) for role, v in value.items()}
            return BLOCKS[key].coerce(value) if key in BLOCKS else value
        except Exception:  # a bad block is the typed-parameter check's to report
            return value

    return _plain({key: typed(key, value) for key, value in parameters.items()})


def _plain(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _missing() -> bool:
    return False
