"""Two runs at once: real processes racing to build one checkpoint build it once.

The races use two spawned processes (fresh interpreters, like two ``kedro run``s) that start
building at the same moment behind a barrier; their log records come back through a queue.
The lock protocol itself (wait message, timeout, deleting the lock file while other threads
wait on it, which staging folders are whose) is checked in this process: ``flock`` locks of
two ``open()`` calls exclude each other even within one process.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import queue
import threading
import time
import traceback
from pathlib import Path

import pytest

from avalanche_kedro.core.errors import CheckpointError
from avalanche_kedro.measure.build_lock import (
    build_lock,
    lock_file,
    make_staging,
    remove_stale_staging,
    staging_folders,
)
from avalanche_kedro.measure.checkpoints import directory_sha256
from avalanche_kedro.measure.embedded import (
    BUILD_RECORD,
    embedded_recipe,
    ensure_embedded_checkpoint,
)
from avalanche_kedro.measure.trained import (
    TRAINING_RECORD,
    ensure_trained_checkpoints,
    read_training_record,
    step_directory,
    trained_recipe,
)
from tests.conftest import SMALL_RECIPE
from tests.measure.test_trained import SPECS

WAITING = "Waiting for another run that is building"
SPAWN = multiprocessing.get_context("spawn")
#: Seconds a test waits for a child process at most (a spawn imports torch and transformers).
CHILD_TIMEOUT = 180


@pytest.fixture(scope="module")
def records(python_corpus_a) -> list[str]:
    return python_corpus_a[:30]


# --------------------------------------------------------------------------------------------
# Child processes


def _child(kinds: list[str], directory: str, records: list[str], barrier, results) -> None:
    """In a fresh interpreter, build each of ``kinds`` ("embedded": ``resolve_checkpoint``;
    "trained": ``ensure_trained_checkpoints``) under ``directory``, each after ``barrier``.

    Every log record of avalanche_kedro and each outcome go to ``results``."""
    handler = logging.handlers.QueueHandler(results)
    package = logging.getLogger("avalanche_kedro")
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        for kind in kinds:
            if barrier is not None:
                barrier.wait(timeout=CHILD_TIMEOUT)
            if kind == "embedded":
                from avalanche_kedro.measure.checkpoints import resolve_checkpoint

                spec = {"checkpoint": str(Path(directory) / kind), "embedded": SMALL_RECIPE}
                outcome = resolve_checkpoint("base", spec, records)["content_sha256"]
            else:
                recipe = trained_recipe("base", SPECS)
                outcome = ensure_trained_checkpoints(Path(directory) / kind, recipe, records[:20])
            results.put(("done", os.getpid(), kind, outcome))
    except BaseException:
        results.put(("failed", os.getpid(), None, traceback.format_exc()))


def _start(kinds: list[str], directory: Path, records: list[str], barrier, results):
    process = SPAWN.Process(
        target=_child, args=(kinds, str(directory), records, barrier, results), daemon=True
    )
    process.start()
    return process


def _collect(results, processes, kinds: list[str]) -> dict[str, dict[int, tuple]]:
    """By kind, then pid: (outcome, log messages while building it), once all reported."""
    found: dict[str, dict[int, tuple]] = {kind: {} for kind in kinds}
    pending = {p.pid: [] for p in processes}  # messages since the last outcome
    deadline = time.monotonic() + CHILD_TIMEOUT
    while sum(len(v) for v in found.values()) < len(kinds) * len(processes):
        item = results.get(timeout=max(1.0, deadline - time.monotonic()))
        if isinstance(item, logging.LogRecord):
            pending[item.process].append(item.getMessage())
            continue
        status, pid, kind, outcome = item
        assert status == "done", outcome
        found[kind][pid] = (outcome, pending[pid])
        pending[pid] = []
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return found


@pytest.fixture(scope="module")
def race(tmp_path_factory, records) -> tuple[Path, dict[str, dict[int, tuple]]]:
    """Two spawned processes build the embedded, then the trained checkpoint at one moment."""
    root = tmp_path_factory.mktemp("race") / "models"
    kinds = ["embedded", "trained"]
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    processes = [_start(kinds, root, records, barrier, results) for _ in range(2)]
    return root, _collect(results, processes, kinds)


# --------------------------------------------------------------------------------------------
# Two processes race to build the same checkpoint


def test_two_processes_resolving_one_embedded_checkpoint_build_it_once(race):
    root, found = race
    directory = root / "embedded"
    messages = {pid: lines for pid, (_, lines) in found["embedded"].items()}
    built = [
        pid for pid, lines in messages.items() if any("Built the embedded" in m for m in lines)
    ]
    assert len(built) == 1, messages  # exactly one built it
    (other,) = set(messages) - set(built)
    # the other waited for the lock and then reused the checkpoint (or found it complete)
    if any(WAITING in m for m in messages[other]):
        assert f"Reusing {directory}, built by the run this one waited for" in messages[other]
    # both results are the one checkpoint on disk
    assert {outcome for outcome, _ in found["embedded"].values()} == {directory_sha256(directory)}
    assert (directory / BUILD_RECORD).exists()
    assert sorted(os.listdir(root)) == ["embedded", "trained"]  # no staging, no lock file


def test_two_processes_training_one_recipe_train_it_once(race):
    root, found = race
    directory = root / "trained"
    messages = {pid: lines for pid, (_, lines) in found["trained"].items()}
    trained = [pid for pid, lines in messages.items() if any("Trained " in m for m in lines)]
    assert len(trained) == 1, messages
    (other,) = set(messages) - set(trained)
    if any(WAITING in m for m in messages[other]):
        assert f"Reusing {directory}, trained by the run this one waited for" in messages[other]
    # both got the record on disk, whose step hashes are those of the files on disk
    first, second = (outcome for outcome, _ in found["trained"].values())
    assert first == second == read_training_record(directory)
    for step, digest in first["steps"].items():
        assert directory_sha256(step_directory(directory, int(step))) == digest
    assert sorted(os.listdir(root)) == ["embedded", "trained"]  # no staging, no lock file
    assert (directory / TRAINING_RECORD).exists()


def test_a_held_lock_makes_another_process_wait_then_build(tmp_path, records):
    directory = tmp_path / "models" / "embedded"
    results = SPAWN.Queue()
    with build_lock(directory) as waited:
        assert waited is False and lock_file(directory).exists()
        process = _start(["embedded"], directory.parent, records, None, results)
        deadline = time.monotonic() + CHILD_TIMEOUT
        message = None
        while message is None:
            item = results.get(timeout=max(1.0, deadline - time.monotonic()))
            assert isinstance(item, logging.LogRecord), item  # no outcome while we hold it
            if WAITING in item.getMessage():
                message = item
        assert message.levelname == "WARNING"
        assert message.getMessage() == (
            f"Waiting for another run that is building {directory} (lock "
            f"{lock_file(directory)}); this run goes on with that checkpoint when it is done."
        )
        time.sleep(0.5)  # it keeps waiting while the lock is held
        assert process.is_alive() and not directory.exists()
    ((outcome, messages),) = _collect(results, [process], ["embedded"])["embedded"].values()
    assert outcome == directory_sha256(directory)
    assert f"Built the embedded checkpoint at {directory}" in messages
    assert sorted(os.listdir(directory.parent)) == ["embedded"]


# --------------------------------------------------------------------------------------------
# The lock protocol, in this process


def test_the_wait_message_once_and_the_timeout_error(tmp_path, caplog):
    directory = tmp_path / "models" / "m"
    with build_lock(directory):
        started = time.monotonic()
        with caplog.at_level(logging.INFO, "avalanche_kedro"):
            with pytest.raises(CheckpointError) as info:
                with build_lock(directory, timeout=0.3):
                    pytest.fail("got a lock another holder holds")
        assert 0.3 <= time.monotonic() - started < 5
    waits = [r for r in caplog.records if WAITING in r.getMessage()]
    assert len(waits) == 1 and waits[0].levelname == "WARNING"  # one message, not one a poll
    lock = lock_file(directory)
    assert info.value.problem == (
        f"Another run has been building '{directory}' for more than 0.3 s (it holds the lock "
        f"'{lock}'), so this run stopped waiting for it."
    )
    assert "Let that run finish (or stop it) and start this one again" in info.value.fix
    assert f"delete '{lock}'" in info.value.fix
    assert not lock.exists()  # the holder removed it on release
    with build_lock(directory, timeout=0.3) as waited:  # free again: no wait
        assert waited is False


def test_the_lock_file_is_deleted_while_others_wait_yet_one_holder_at_a_time(tmp_path):
    """Threads (each its own open file) take the lock over and over: the holder deletes the
    lock file as it lets go, so waiters often hold a deleted file and must lock afresh."""
    directory = tmp_path / "m"
    inside, most, entries = [0], [0], []
    guard = threading.Lock()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(15):
                with build_lock(directory):
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                        entries.append(n)
                    time.sleep(0.001)
                    with guard:
                        inside[0] -= 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert most[0] == 1  # never two holders at once
    assert len(entries) == 6 * 15
    assert list(tmp_path.iterdir()) == []  # no lock file left


def test_only_this_directorys_staging_folders_are_stale(tmp_path):
    directory = tmp_path / "tiny-llama-stdlib"
    own = [make_staging(directory), tmp_path / ".tiny-llama-stdlib-killed"]
    own[1].mkdir()
    neighbours = [
        tmp_path / ".tiny-llama-stdlib-qa-abc12345",  # the staging of tiny-llama-stdlib-qa
        tmp_path / ".tiny-llama-stdlib-qa.lock",
        tmp_path / ".tiny-llama-stdlib.lock",
        tmp_path / "tiny-llama-stdlib-qa",
    ]
    neighbours[0].mkdir()
    neighbours[3].mkdir()
    for path in neighbours[1:3]:
        path.write_text("")
    assert own[0].name.startswith(".tiny-llama-stdlib-") and own[0].is_dir()
    assert staging_folders(directory) == sorted(own)
    assert remove_stale_staging(directory) == sorted(own)
    assert not any(path.exists() for path in own)
    assert all(path.exists() for path in neighbours)
    assert staging_folders(tmp_path / "missing" / "x") == []


def test_an_embedded_build_removes_a_killed_builds_staging(tmp_path, records):
    tiny = {**SMALL_RECIPE, "tokenizer_vocab_size": 300, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1}  # fmt: skip
    directory = tmp_path / "tiny"
    stale = tmp_path / ".tiny-k1ll3d"
    stale.mkdir()
    (stale / "config.json").write_text("half-written")
    assert ensure_embedded_checkpoint(directory, embedded_recipe(tiny), records) is True
    assert sorted(os.listdir(tmp_path)) == ["tiny"]
    assert (directory / "config.json").read_text() != "half-written"


def test_a_run_waiting_on_the_lock_reuses_what_the_holder_built(tmp_path, records, caplog):
    """In one process: a thread waits on the lock while this thread builds; it then returns
    False (reused) without building again."""
    tiny = {**SMALL_RECIPE, "tokenizer_vocab_size": 300, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1}  # fmt: skip
    recipe = embedded_recipe(tiny)
    directory = tmp_path / "tiny"
    returned: queue.Queue = queue.Queue()
    with caplog.at_level(logging.INFO, "avalanche_kedro"):
        with build_lock(directory):
            waiter = threading.Thread(
                target=lambda: returned.put(ensure_embedded_checkpoint(directory, recipe, records))
            )
            waiter.start()
            deadline = time.monotonic() + 30
            while not any(WAITING in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the waiter never said it waits"
                time.sleep(0.02)
            # build it here while the waiter waits, as another run would
            from avalanche_kedro.measure.embedded import _build_checkpoint

            _build_checkpoint(directory, recipe, records)
        waiter.join(timeout=60)
    assert returned.get(timeout=1) is False  # reused, not built twice
    assert any(
        r.getMessage() == f"Reusing {directory}, built by the run this one waited for"
        for r in caplog.records
    )
    assert not any("Built the embedded checkpoint" in r.getMessage() for r in caplog.records)
    assert sorted(os.listdir(tmp_path)) == ["tiny"]
