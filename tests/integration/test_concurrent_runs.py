"""Two ``kedro run``s at once in one project folder, before the embedded models are trained.

The original bug: the second of two concurrent runs failed with a traceback while the first
built the embedded checkpoint. Here two real ``python -m kedro run --pipelines training``
start at once in one fresh project copy, with identical parameters that shrink both trained
recipes to a few steps of a tiny Llama. So that both really meet at the build, this test holds
the base recipe's build lock (as a third run would) until both runs say they are waiting for
it. Both must then succeed, each recipe is trained exactly once, and each run keeps its own
versions of ``embedded_models`` and its own run manifest; nothing but the checkpoints and those
versions is left in ``data/06_models``.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import time
from pathlib import Path

import pytest

from avalanche_kedro.measure.build_lock import build_lock, lock_file
from tests.conftest import TINY_ARCHITECTURE, copy_project, start_kedro

pytestmark = pytest.mark.slow

BASE, QA = "tiny-llama-stdlib", "tiny-llama-stdlib-qa"
TINY_TRAINING = {"batch_size": 2, "seq_len": 16, "warmup_steps": 1, "checkpoints": 2}
PARAMS = ",".join(
    ["runtime.device=cpu"]
    + [
        f"embedded_checkpoints.{BASE}.{key}={value}"
        for key, value in {
            **TINY_ARCHITECTURE,
            **{f"training.{k}": v for k, v in {**TINY_TRAINING, "steps": 3}.items()},
        }.items()
    ]
    + [
        f"embedded_checkpoints.{QA}.training.{k}={v}"
        for k, v in {**TINY_TRAINING, "steps": 2}.items()
    ]
)
WAITING = "Waiting for another run that is building"
TIMEOUT = 300


def _start(project: Path) -> tuple[subprocess.Popen, queue.Queue]:
    return start_kedro(project, "run", "--pipelines", "training", "--params", PARAMS)


def _drain(lines: queue.Queue, into: list[str]) -> bool:
    """Move the lines read so far into ``into``; False once the output has ended."""
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return True
        if line is None:
            return False
        into.append(line)


def test_two_runs_at_once_train_once_and_keep_both_versions(tmp_path):
    project = copy_project(tmp_path)
    models = project / "data" / "06_models"
    started = time.monotonic()
    runs = []
    outputs: list[list[str]] = [[], []]
    try:
        with build_lock(models / BASE):
            runs = [_start(project), _start(project)]
            # both runs reach the build of the missing checkpoint and wait for it
            deadline = time.monotonic() + TIMEOUT
            while not all(any(WAITING in line for line in out) for out in outputs):
                for (process, lines), out in zip(runs, outputs, strict=True):
                    open_ = _drain(lines, out)
                    assert open_ and process.poll() is None, "".join(out[-60:])
                assert time.monotonic() < deadline, [o[-20:] for o in outputs]
                time.sleep(0.1)
        # released: one of them trains, the other waits for it and reuses what it trained
        statuses = [process.wait(timeout=TIMEOUT) for process, _ in runs]
    finally:
        for process, _ in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
    took = time.monotonic() - started
    for (_, lines), out in zip(runs, outputs, strict=True):
        deadline = time.monotonic() + 10
        while _drain(lines, out) and time.monotonic() < deadline:
            time.sleep(0.05)
    texts = ["".join(out) for out in outputs]
    assert statuses == [0, 0], "\n\n".join(t[-6000:] for t in texts)
    assert all("Traceback" not in text for text in texts)

    # each run said once that it waits for the base model, with the lock's path
    for text in texts:
        assert text.count(WAITING) >= 1
        assert f"{WAITING} {models / BASE} (lock {lock_file(models / BASE)})" in text
    # each recipe was trained exactly once, by one of the two runs
    for name in (BASE, QA):
        trained = re.compile(rf"Trained {re.escape(str(models / name))}: ")
        assert sum(len(trained.findall(text)) for text in texts) == 1, name
    assert sum(f"Reusing {models / BASE}, trained by the run" in text for text in texts) == 1
    record = json.loads((models / BASE / "TRAINING.json").read_text())
    assert record["final_step"] == 3 and sorted(record["steps"], key=int) == ["0", "1", "3"]

    # two versions of embedded_models, one per run, telling the same trained checkpoints
    versions = sorted((models / "embedded_models.json").iterdir())
    assert len(versions) == 2
    saved = [json.loads((v / "embedded_models.json").read_text()) for v in versions]
    for name in (BASE, QA):
        assert saved[0]["recipes"][name]["steps"] == saved[1]["recipes"][name]["steps"]
        # the run that waited says it reused what the other trained
        assert sorted(s["recipes"][name]["reused"] for s in saved) == [False, True], name
    assert saved[0]["recipes"][BASE]["steps"] == record["steps"]
    # two run manifests, both completed, each naming its own embedded_models version
    manifests = sorted((project / "data" / "08_reporting" / "run_manifests").glob("*.json"))
    assert len(manifests) == 2
    written = [json.loads(m.read_text()) for m in manifests]
    assert [m["status"] for m in written] == ["completed", "completed"]
    assert written[0]["session_id"] != written[1]["session_id"]
    paths = {
        a["path"] for m in written for a in m["artifacts"] if a["dataset"] == "embedded_models"
    }
    assert paths == {str(v / "embedded_models.json") for v in versions}

    # nothing else: no staging folder and no lock file
    assert sorted(p.name for p in models.iterdir()) == sorted([BASE, QA, "embedded_models.json"])
    assert took < 240, f"two tiny training runs took {took:.0f} s"
