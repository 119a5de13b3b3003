"""Torch's CPU threads for a whole run: ``runtime.torch_threads`` on every runner.

``runtime.torch_threads`` (null by default: torch's own choice, about one thread per physical
core) sets torch's intra-op threads (:func:`torch.set_num_threads`, which also sizes torch's
OpenMP and MKL pools) in every process that runs a node:

* the ``kedro run`` process (SequentialRunner, ThreadRunner): :class:`TorchThreadHooks` sets
  it once the preflight has passed and puts torch's previous count back when the run ends or
  fails, so a notebook's session is left as it was;
* every node, before it runs (``before_node_run``): a node that changed the count (the lens's
  prompt view runs on one thread) does not leak it into the next, and ThreadRunner's worker
  threads get it too;
* ParallelRunner's node processes and Dask workers: the count travels in the environment
  variable :data:`ENV_VAR`, which the node hooks of those processes read
  (:mod:`avalanche_kedro.framework.runners.dask_runner` sets it per node from its own
  ``torch_threads`` argument, else from ``runtime.torch_threads``), and in
  ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, which torch reads when it starts in a new process:
  ParallelRunner's *spawned* processes (macOS, Windows, Python 3.14's default) run no project
  hook at all (Kedro configures the project there only when it forked), and still get it.

A count of 0, a negative one or more than the cores this process may use stops the run before
any model loads (:class:`~avalanche_kedro.study.params.RuntimeParams`). Why the setting
exists, measured on a 2-core machine: docs/performance.md ("Torch threads and whole-run
timing").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

#: the environment variable that hands the run's thread count to node processes
ENV_VAR = "AVALANCHE_TORCH_THREADS"
#: set with it for the run: the thread pools of a process that starts during it
STARTUP_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def runtime_torch_threads(parameters: Mapping[str, Any] | None) -> int | None:
    """``runtime.torch_threads`` of a run's parameters, validated (None: torch's default).

    ``parameters`` is Kedro's ``parameters`` (blocks may already be parameter models). Raises
    :class:`~avalanche_kedro.core.errors.ConfigurationError` naming the key for a bad value.
    """
    from ..study.params import RuntimeParams

    runtime = (parameters or {}).get("runtime")
    if runtime is None:
        return None
    return RuntimeParams.coerce(runtime).torch_threads


def thread_count(value: Any, problem: str, fix: str) -> int | None:
    """``value`` (an int or its text; None or "" for none) as a thread count >= 1; anything
    else raises :class:`~avalanche_kedro.core.errors.ConfigurationError` (problem, fix)."""
    from ..core.errors import ConfigurationError

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1 or isinstance(value, bool | float):
        raise ConfigurationError(problem, fix)
    return threads


def at_most_cores(threads: int | None, where: str) -> int | None:
    """``threads`` lowered to the cores this process may use, with a warning naming ``where``
    (a remote Dask worker may have fewer cores than the client that validated the count)."""
    from ..core.threads import available_cores

    cores = available_cores()
    if threads is not None and threads > cores:
        logger.warning(
            "torch_threads=%d exceeds the %d cores of %s (process %d); using %d",
            threads,
            cores,
            where,
            os.getpid(),
            cores,
        )
        return cores
    return threads


def threads_from_environment() -> int | None:
    """The thread count a parent process handed down in :data:`ENV_VAR` (None when unset)."""
    raw = os.environ.get(ENV_VAR)
    return thread_count(
        raw,
        f"The environment variable {ENV_VAR}={raw!r} is not a thread count.",
        f"Unset {ENV_VAR} (the project sets it for its node processes) and set "
        "runtime.torch_threads instead: an integer >= 1, or null for torch's default.",
    )


def set_torch_threads(threads: int) -> int:
    """Set torch's intra-op threads to ``threads`` (a no-op when already so); returns the
    previous count."""
    import torch

    previous = torch.get_num_threads()
    if previous != int(threads):
        torch.set_num_threads(int(threads))
    return previous


def _run_parameters(catalog) -> dict[str, Any]:
    try:
        return dict(catalog.load("parameters") or {})
    except Exception:  # a bare catalog (a test): no parameters, torch's default
        return {}


class TorchThreadHooks:
    """Applies ``runtime.torch_threads`` to the run's process and to every node (module doc)."""

    def __init__(self) -> None:
        self.threads: int | None = None
        self._previous: int | None = None
        self._previous_env: dict[str, str | None] = {}
        self._active = False

    @hook_impl(trylast=True)  # after the preflight: a run that stops there changes nothing
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        import torch

        self.threads = runtime_torch_threads(_run_parameters(catalog))
        self._previous_env = {name: os.environ.get(name) for name in (ENV_VAR, *STARTUP_VARS)}
        self._previous = torch.get_num_threads()
        self._active = True
        if self.threads is None:
            os.environ.pop(ENV_VAR, None)  # node processes keep torch's default too
            logger.info(
                "torch threads: %d (torch's default; runtime.torch_threads is null)", self._previous
            )
            return
        for name in (ENV_VAR, *STARTUP_VARS):
            os.environ[name] = str(self.threads)
        set_torch_threads(self.threads)
        logger.info(
            "torch threads: %d per process (runtime.torch_threads; torch's default here: %d)",
            self.threads,
            self._previous,
        )

    @hook_impl(tryfirst=True)  # before the provenance hook reads the count of the node
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        threads = self.threads if self._active else threads_from_environment()
        if threads is not None:
            set_torch_threads(threads)

    @hook_impl(trylast=True)  # after the run manifest recorded the count
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._restore()

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._restore()

    def _restore(self) -> None:
        if not self._active:
            return
        if self._previous is not None:
            set_torch_threads(self._previous)
        for name, value in self._previous_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.threads, self._previous, self._previous_env = None, None, {}
        self._active = False
