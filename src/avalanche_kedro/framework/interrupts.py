"""Interrupted runs: SIGTERM unwinds like Ctrl-C, and no save is cut in half.

For the duration of a ``kedro run`` (in the main thread) :class:`InterruptHooks` handles SIGINT
and SIGTERM itself:

* the signal raises :class:`RunInterrupted` (a ``KeyboardInterrupt`` that records which signal
  it was, :attr:`RunInterrupted.signal_name`), so a scheduler's SIGTERM unwinds the run like
  Ctrl-C: the node being run removes its scratch files on the way out, instead of the process
  dying with them on disk;
* a signal that arrives while a catalog dataset is being saved waits until that save is done,
  so a dataset version is never half written (``kedro run --only-missing-outputs`` would take
  a half-written version for a finished one); once a node has returned, a signal waits until
  all of its outputs are saved, so the outputs of one node are kept together or not at all (a
  rerun never finds a new version of one output beside an older version of another);
* scratch directories this process made during the run and still holds (a raster a node
  finished but had not saved yet) are removed when the run is interrupted or ends;
* Kedro calls no hook for a ``KeyboardInterrupt`` (``on_pipeline_error`` is for exceptions),
  so when the run is stopped every registered hook object with an ``on_run_interrupted(error)``
  method is called first (:class:`~avalanche_kedro.framework.hooks.ProvenanceHooks` writes the
  run manifest with ``status: interrupted: SIGINT``);
* scratch left by a run that was killed outright (``kill -9``) is removed at the next run on
  the same host, as long as the process that made it is gone
  (:func:`avalanche_kedro.measure.rasters.remove_stale_scratch`).

The previous handlers come back when the run completes, when it fails, and as soon as the
signal is acted on (so a second signal while the run unwinds has its usual effect).
"""

from __future__ import annotations

import _thread
import inspect
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

#: the signals a run turns into :class:`RunInterrupted`
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal; :attr:`signal_name` is ``"SIGINT"`` or ``"SIGTERM"``."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


class InterruptHooks:
    """Kedro hooks that make SIGINT and SIGTERM stop a run cleanly (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._previous: dict[int, Any] = {}
        self._saving: dict[str, int] = {}
        self._unsaved: dict[str, set[str]] = {}  # node -> its outputs not saved yet
        self._pending: int | None = None
        self._scratch_before: set[Path] = set()
        self._context = None

    # ---- run lifecycle ----------------------------------------------------------------------

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        from ..measure.rasters import remove_stale_scratch, scratch_directories

        with self._lock:
            self._saving.clear()
            self._unsaved.clear()
            self._pending = None
        self._scratch_before = set(scratch_directories())
        root = self._scratch_root()
        if root is not None:
            for path in remove_stale_scratch(root):
                logger.info("Removed the scratch directory of a run that was killed: %s", path)
        self.install()

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._end_of_run()

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._end_of_run()

    # ---- saves --------------------------------------------------------------------------------

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        if outputs and not inspect.isgeneratorfunction(node.func):  # generators save chunks
            with self._lock:
                self._unsaved[node.name] = set(outputs)

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        with self._lock:
            self._saving[dataset_name] = self._saving.get(dataset_name, 0) + 1

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        with self._lock:
            left = self._saving.get(dataset_name, 0) - 1
            if left > 0:
                self._saving[dataset_name] = left
            else:
                self._saving.pop(dataset_name, None)
            unsaved = self._unsaved.get(getattr(node, "name", None))
            if unsaved is not None:
                unsaved.discard(dataset_name)
                if not unsaved:
                    del self._unsaved[node.name]
            pending = None if self._busy() else self._pending
            if pending is not None:
                self._pending = None
        if pending is None:
            return
        if threading.current_thread() is threading.main_thread():
            self._interrupt(pending)
        else:  # a save in a worker thread: the main thread runs the handler again
            _thread.interrupt_main(pending)

    # ---- signal handling ----------------------------------------------------------------------

    @property
    def installed(self) -> bool:
        """Whether this object's handlers are installed now."""
        return bool(self._previous)

    def install(self) -> None:
        """Handle SIGINT and SIGTERM until the run ends (main thread only; elsewhere Python
        cannot install signal handlers and the run keeps the process's handlers)."""
        if threading.current_thread() is not threading.main_thread():
            logger.debug("Not in the main thread: SIGINT and SIGTERM keep their handlers")
            return
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN:
                # ignored on purpose (a shell's background job ignores SIGINT): keep it so
                continue
            if current != self._handle:  # installed again without a restore: keep the first
                self._previous[signum] = current
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        with self._lock:
            saving = sorted({*self._saving, *(o for out in self._unsaved.values() for o in out)})
            if saving:
                self._pending = signum
        if saving:
            logger.warning(
                "%s received while saving %s: the run stops as soon as the finished node's "
                "outputs are saved.",
                name,
                ", ".join(saving),
            )
            return
        self._interrupt(signum)

    def _busy(self) -> bool:
        """A save is going on, or a node returned and not all its outputs are saved yet."""
        return bool(self._saving or self._unsaved)

    def _interrupt(self, signum: int) -> None:
        """Stop the run: handlers back, the main thread's unsaved scratch removed, the hooks
        told (``on_run_interrupted``), and :class:`RunInterrupted` raised where the main thread
        is."""
        self.restore()
        self._discard_scratch(threading.main_thread().ident)
        error = RunInterrupted(signal.Signals(signum).name)
        self._tell_hooks(error)
        raise error

    def _tell_hooks(self, error: RunInterrupted) -> None:
        """Call ``on_run_interrupted(error)`` of every hook object of the session that has
        one; a hook's own failure is logged, the run still stops with ``error``."""
        manager = getattr(self._context, "_hook_manager", None)
        for plugin in manager.get_plugins() if manager is not None else ():
            callback = getattr(plugin, "on_run_interrupted", None)
            if not callable(callback):
                continue
            try:
                callback(error)
            except Exception as exc:
                logger.error("%s could not record the interruption: %s", plugin, exc)

    # ---- scratch ------------------------------------------------------------------------------

    def _end_of_run(self) -> None:
        self.restore()
        with self._lock:
            self._saving.clear()
            self._unsaved.clear()
            self._pending = None
        self._discard_scratch(None)

    def _discard_scratch(self, thread_id: int | None) -> None:
        """Remove the scratch directories made since the run started (by ``thread_id`` only,
        when given) that this process still holds: nothing will save them any more."""
        from ..measure.rasters import remove_scratch, scratch_directories

        for path, owner in scratch_directories().items():
            if path in self._scratch_before or (thread_id is not None and owner != thread_id):
                continue
            remove_scratch(path)

    def _scratch_root(self) -> Path | None:
        """``runtime.scratch_dir`` of the active configuration (None when it cannot be read)."""
        if self._context is None:
            return None
        try:
            from ..core.paths import project_path
            from ..study.params import RuntimeParams, as_plain

            runtime = as_plain(self._context.params).get("runtime") or {}
            return project_path(RuntimeParams.coerce(runtime).scratch_dir)
        except Exception as exc:  # the run's own parameter check reports bad values
            logger.debug("No scratch folder to check for stale directories: %s", exc)
            return None
