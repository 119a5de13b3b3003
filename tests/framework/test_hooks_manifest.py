"""framework.hooks: the run manifest of a failed and of an interrupted run, written whole.

In-process Kedro runs (SequentialRunner, the project's ProvenanceHooks and InterruptHooks in a
pluggy hook manager, a real signal sent to this process); the real ``kedro run`` cases are in
tests/integration/test_failed_saves.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, DatasetError, Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from avalanche_kedro.framework.atomic import PARTIAL, JSONDataset
from avalanche_kedro.framework.hooks import ProvenanceHooks, manifest_folder
from avalanche_kedro.framework.interrupts import InterruptHooks, RunInterrupted


@pytest.fixture(autouse=True)
def _default_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


class Unserializable:
    """Not JSON: the ``second`` save fails half way through its write."""


class SignalAfter:
    """SIGINT once node ``first`` returned (its output is saved, then the run stops)."""

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id):
        if node.name == "first":
            os.kill(os.getpid(), signal.SIGINT)


def _run(tmp_path: Path, second_output, extra_hooks=()) -> tuple[Path, ProvenanceHooks]:
    """``first -> a``, ``second -> b`` (versioned JSON), with the project's two hooks."""
    manager = _create_hook_manager()
    context = SimpleNamespace(
        params={}, project_path=tmp_path, config_loader={"globals": {}}, _hook_manager=manager
    )
    provenance, interrupts = ProvenanceHooks(), InterruptHooks()
    # settings.HOOKS' order (interrupts, then provenance); pluggy calls the last one first
    for hooks in (*extra_hooks, interrupts, provenance):
        manager.register(hooks)
    manager.hook.after_context_created(context=context)
    catalog = DataCatalog(
        {
            name: JSONDataset(filepath=str(tmp_path / f"{name}.json"), version=Version(None, "v1"))
            for name in ("a", "b")
        }
    )
    pipeline = Pipeline(
        [
            node(lambda: {"ok": 1}, None, "a", name="first"),
            node(lambda a: second_output, "a", "b", name="second"),
        ]
    )
    run_params = {"session_id": "2026-12-01T00.00.00.000Z", "env": "test"}
    manager.hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
    try:
        SequentialRunner().run(pipeline, catalog, manager)
    except Exception as error:  # as KedroSession.run does: KeyboardInterrupt passes through
        manager.hook.on_pipeline_error(
            error=error, run_params=run_params, pipeline=pipeline, catalog=catalog
        )
        raise
    manager.hook.after_pipeline_run(
        run_params=run_params, run_result={}, pipeline=pipeline, catalog=catalog
    )
    return manifest_folder(context), provenance


def _manifests(tmp_path: Path) -> list[dict]:
    folder = tmp_path / "data" / "08_reporting" / "run_manifests"
    assert not [p for p in folder.iterdir() if PARTIAL in p.name]  # no staged file left
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_a_failed_save_writes_a_manifest_marked_failed(tmp_path):
    with pytest.raises(DatasetError, match="Unserializable is not JSON serializable"):
        _run(tmp_path, {"bad": Unserializable()})
    (manifest,) = _manifests(tmp_path)
    assert manifest["status"].startswith("failed: DatasetError: b: Failed while saving data")
    assert "Unserializable is not JSON serializable" in manifest["status"]
    assert set(manifest["nodes"]) == {"first", "second"}  # "second" ran; its save failed
    assert [a["dataset"] for a in manifest["artifacts"]] == ["a"]
    assert not list((tmp_path / "b.json").iterdir())  # no staged file, no version folder


def test_the_manifest_writer_never_hides_the_failed_save(tmp_path, caplog):
    """The manifest folder cannot be made (a file is in the way, as a full disk fails it):
    the save's own error is raised, the hook's problem is logged."""
    blocked = tmp_path / "data" / "08_reporting" / "run_manifests"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    with caplog.at_level(logging.ERROR, logger="avalanche_kedro.framework.hooks"):
        with pytest.raises(DatasetError, match="is not JSON serializable") as raised:
            _run(tmp_path, {"bad": Unserializable()})
    assert not isinstance(raised.value, OSError)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "run manifest of this failed run could not be written" in message
    assert str(blocked) in message and "FileExistsError" in message
    assert blocked.read_text() == "not a folder"


def test_an_interrupted_run_writes_a_manifest_marked_interrupted(tmp_path):
    with pytest.raises(RunInterrupted):
        _run(tmp_path, {"ok": 2}, extra_hooks=[SignalAfter()])
    (manifest,) = _manifests(tmp_path)
    assert manifest["status"] == "interrupted: SIGINT"
    assert manifest["session_id"] == "2026-12-01T00.00.00.000Z"
    assert set(manifest["nodes"]) == {"first"}  # what ran and was saved before the signal
    assert [a["dataset"] for a in manifest["artifacts"]] == ["a"]
    assert not (tmp_path / "b.json").exists()


def test_a_completed_run_writes_one_manifest_and_a_second_never_replaces_it(tmp_path):
    _run(tmp_path, {"ok": 2})
    first = _manifests(tmp_path)
    assert [m["status"] for m in first] == ["completed"]
    # the same session id again (two runs at once): a second name, the first kept as it was
    (tmp_path / "a.json").rename(tmp_path / "a-old")
    (tmp_path / "b.json").rename(tmp_path / "b-old")
    _run(tmp_path, {"ok": 3})
    assert [m["status"] for m in _manifests(tmp_path)] == ["completed", "completed"]
    folder = tmp_path / "data" / "08_reporting" / "run_manifests"
    assert json.loads((folder / "2026-12-01T00.00.00.000Z.json").read_text()) == first[0]
