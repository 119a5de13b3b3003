"""framework.interrupts: SIGINT and SIGTERM during a run, with real signals sent to this process.

The runs here are real Kedro runs (SequentialRunner, a DataCatalog of versioned CSV files,
the project's hooks in a pluggy hook manager); the signal is a real ``os.kill`` of the test
process, which Python hands to the installed handler in the main thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pandas as pd
import pytest
from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.pandas import CSVDataset

from avalanche_kedro.framework.interrupts import InterruptHooks, RunInterrupted
from avalanche_kedro.measure import rasters
from avalanche_kedro.measure.rasters import (
    new_scratch_directory,
    remove_stale_scratch,
    scratch_directories,
)


@pytest.fixture(autouse=True)
def _default_handlers():
    """Every test starts and ends with Python's own SIGINT handler and the default SIGTERM."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # set them: a test process started in the background by a shell ignores SIGINT (SIG_IGN)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": [i * 0.5 for i in range(n)]})


class SignalDuringSave:
    """Sends ``signum`` to this process while ``dataset`` is being saved (after the interrupt
    hooks marked the save as started: registered before them, so called after them)."""

    def __init__(self, dataset: str, signum: int):
        self.dataset, self.signum = dataset, signum
        self.handled_during_save = False

    @hook_impl
    def before_dataset_saved(self, dataset_name, data, node):
        if dataset_name == self.dataset:
            os.kill(os.getpid(), self.signum)
            # the handler ran at the next bytecode and deferred the signal: we are still here
            self.handled_during_save = True


class SignalAfterNode:
    """Sends ``signum`` to this process when node ``name`` has returned, before its saves."""

    def __init__(self, name: str, signum: int):
        self.name, self.signum = name, signum

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id):
        if node.name == self.name:
            os.kill(os.getpid(), self.signum)


def _table_and_half(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _frame(n), _frame(n // 2)


def _run(tmp_path, hooks: InterruptHooks, extra_hooks=()):
    """``n -> make_tables -> (table, half) -> summarize -> summary``, versioned CSV outputs."""
    catalog = DataCatalog(
        {
            name: CSVDataset(filepath=str(tmp_path / f"{name}.csv"), version=Version(None, "v1"))
            for name in ("table", "half", "summary")
        }
    )
    catalog["n"] = 20_000
    pipeline = Pipeline(
        [
            node(_table_and_half, "n", ["table", "half"], name="make_tables"),
            node(lambda t: t.describe(), "table", "summary", name="summarize"),
        ]
    )
    manager = _create_hook_manager()
    for extra in extra_hooks:
        manager.register(extra)
    manager.register(hooks)  # LIFO: the interrupt hooks run first
    manager.hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    try:
        SequentialRunner().run(pipeline, catalog, manager)
    except Exception as error:
        manager.hook.on_pipeline_error(
            error=error, run_params={}, pipeline=pipeline, catalog=catalog
        )
        raise
    manager.hook.after_pipeline_run(
        run_params={}, run_result={}, pipeline=pipeline, catalog=catalog
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_save_stops_the_run_once_the_version_is_complete(tmp_path, signum):
    hooks = InterruptHooks()
    sender = SignalDuringSave("table", signum)
    with pytest.raises(RunInterrupted) as raised:
        _run(tmp_path, hooks, [sender])
    assert sender.handled_during_save
    assert isinstance(raised.value, KeyboardInterrupt)
    assert raised.value.signal_name == signal.Signals(signum).name
    saved = tmp_path / "table.csv" / "v1" / "table.csv"
    pd.testing.assert_frame_equal(pd.read_csv(saved), _frame(20_000))  # written whole
    saved = tmp_path / "half.csv" / "v1" / "half.csv"  # saved too: the node had returned
    pd.testing.assert_frame_equal(pd.read_csv(saved), _frame(10_000))
    assert not (tmp_path / "summary.csv").exists()  # the next node never ran
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_signal_after_a_node_returned_waits_for_all_its_outputs(tmp_path):
    hooks = InterruptHooks()
    with pytest.raises(RunInterrupted) as raised:
        _run(tmp_path, hooks, [SignalAfterNode("make_tables", signal.SIGTERM)])
    assert raised.value.signal_name == "SIGTERM"
    # both outputs of the node that had returned are saved whole, nothing after it ran
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "table.csv/v1/table.csv"), _frame(20_000))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "half.csv/v1/half.csv"), _frame(10_000))
    assert not (tmp_path / "summary.csv").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_sigterm_outside_a_save_raises_where_the_main_thread_is(tmp_path):
    hooks = InterruptHooks()
    hooks.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
    assert hooks.installed
    reached = []
    with pytest.raises(RunInterrupted) as raised:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10_000_000):  # the handler runs at the next bytecode: never finishes
            pass
        reached.append(True)
    assert reached == [] and raised.value.signal_name == "SIGTERM"
    assert not hooks.installed and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_completed_run_restores_the_handlers_and_keeps_its_outputs(tmp_path):
    hooks = InterruptHooks()
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _run(tmp_path, hooks)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (tmp_path / "summary.csv" / "v1" / "summary.csv").is_file()


def test_an_ignored_signal_stays_ignored_during_the_run(tmp_path):
    hooks = InterruptHooks()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a shell's background job
    hooks.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
    try:
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == hooks._handle
    finally:
        hooks.after_pipeline_run(run_params={}, run_result={}, pipeline=None, catalog=None)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_an_interrupt_removes_the_scratch_the_run_made_and_nothing_else(tmp_path):
    root = tmp_path / "scratch"
    older = new_scratch_directory(root)  # held before the run started (another session's)
    hooks = InterruptHooks()
    hooks.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
    finished = new_scratch_directory(root)  # e.g. rasters a node returned, not yet saved
    (finished / "A.npy").write_bytes(b"\0" * 128)
    other_thread = []
    worker = threading.Thread(target=lambda: other_thread.append(new_scratch_directory(root)))
    worker.start()
    worker.join()
    with pytest.raises(RunInterrupted):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000_000):
            pass
    assert not finished.exists() and finished not in scratch_directories()
    # a node still running in a worker thread saves or removes its own scratch
    assert other_thread[0].is_dir() and older.is_dir()
    hooks.after_pipeline_run(run_params={}, run_result={}, pipeline=None, catalog=None)
    assert not other_thread[0].exists()  # the run ended: nothing will save it any more
    assert older.is_dir()
    rasters.remove_scratch(older)
    assert list(root.iterdir()) == []


def test_stale_scratch_of_a_dead_process_is_removed_and_a_live_one_kept(tmp_path):
    root = tmp_path / "scratch"
    root.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = rasters._HOST
        stale = root / f"rasters-{host}-{dead_pid}-abc123"
        stale_b = root / f"rasters-B-{host}-{dead_pid}-def456"
        running = root / f"rasters-{host}-{live.pid}-ghi789"
        elsewhere = root / f"rasters-otherhost-{dead_pid}-jkl012"  # another machine's process
        unrelated = root / "notes"
        for folder in (stale, stale_b, running, elsewhere, unrelated):
            folder.mkdir()
            (folder / "A.npy").write_bytes(b"1")
        assert sorted(remove_stale_scratch(root)) == sorted([stale, stale_b])
        assert sorted(p.name for p in root.iterdir()) == sorted(
            p.name for p in (running, elsewhere, unrelated)
        )
        made = new_scratch_directory(root, "B")  # a new one carries this process's id
        assert made.name.startswith(f"rasters-B-{host}-{os.getpid()}-")
        assert remove_stale_scratch(root) == []  # this process is alive
        rasters.remove_scratch(made)
    finally:
        live.kill()
        live.wait()


def test_the_project_registers_the_hooks_so_they_act_last_before_and_after():
    from avalanche_kedro.framework.hooks import ActiveConfigHooks
    from avalanche_kedro.settings import HOOKS

    # LIFO: first in the tuple = called last, so the input check may stop a run before any
    # handler is installed, and the provenance of a save is recorded before the run stops
    assert isinstance(HOOKS[0], InterruptHooks)
    assert isinstance(HOOKS[-1], ActiveConfigHooks)
