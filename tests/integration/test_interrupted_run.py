"""An interrupted ``kedro run`` resumes with ``--only-missing-outputs`` to the same tables.

A real ``python -m kedro run`` in a fresh project copy gets SIGTERM while the events node of a
model role is writing its rasters; the run must unwind (not die), leave no scratch or staging
directory and no half-written version, and leave every file it had already written untouched.
``--only-missing-outputs`` then reruns what is missing, and the latest versions of the
capture and events tables (and the rasters) are byte-identical to the uninterrupted run of the
shared end-to-end project (same parameters: tables are content-addressed, so equal runs give
equal bytes). SIGINT during a save is covered in tests/framework/test_interrupts.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from avalanche_kedro.measure.rasters import EventRasters
from tests.conftest import copy_project, run_kedro, start_kedro

pytestmark = pytest.mark.slow

ARGS = ["run", "--pipelines", "training,capture,events", "--params", "runtime.device=cpu"]
ROLES = ("base", "instruct", "untrained")
TABLES = [
    "02_intermediate/{role}/windows.parquet",
    "03_primary/{role}/unit_moments.parquet",
    "03_primary/{role}/baseline_rates.parquet",
    "03_primary/{role}/rate_targets.parquet",
    "04_feature/{role}/conditions_A.parquet",
    "04_feature/{role}/threshold_fit.parquet",
    "04_feature/{role}/tau_table.parquet",
]
RASTER_FILES = ("A.npy", "X.npy", "cond_id.npy", "seq_id.npy", "raster.json")
# Kedro logs the node without its namespace; the role is that of its inputs
EVENTS_NODE = re.compile(r"Running node: record_event_rasters: record_event_rasters\(\[(\w+)\.")
SCRATCH = Path("data/02_intermediate/scratch")


def _snapshot(data: Path) -> dict[str, str]:
    """sha256 of every file under ``data`` except the scratch folder."""
    return {
        str(path.relative_to(data)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data.rglob("*"))
        if path.is_file() and "scratch" not in path.relative_to(data).parts
    }


def _latest(data: Path, relative: str) -> Path:
    name = Path(relative).name
    versions = sorted((data / relative).glob(f"*/{name}"))
    assert versions, f"no version of {relative}"
    return versions[-1]


def _interrupt_events_node(project: Path) -> tuple[int, str, str, dict[str, str], float]:
    """Start the run, SIGTERM it while an events node writes its rasters.

    Returns the exit status, the whole output, the role interrupted, the data snapshot taken
    just before the signal, and the seconds from the signal to the exit.
    """
    process, lines = start_kedro(project, *ARGS)
    output, role = [], None
    try:
        deadline = time.monotonic() + 600
        while role is None:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "the run ended before an events node started:\n" + "".join(
                output[-60:]
            )
            output.append(line)
            match = EVENTS_NODE.search(line)
            role = match.group(1) if match else None
        # wait until the node's RasterWriter made its scratch directory, then a little more:
        # the node is in the middle of its forward passes when the signal comes
        scratch = project / SCRATCH
        while time.monotonic() < deadline and not (
            scratch.is_dir() and any(p.name.startswith("rasters-") for p in scratch.iterdir())
        ):
            assert process.poll() is None, "".join(output[-60:])
            time.sleep(0.1)
        time.sleep(2.0)
        assert process.poll() is None, "the events node finished before the signal"
        assert [p.name for p in scratch.iterdir()], "no scratch directory while the node ran"
        snapshot = _snapshot(project / "data")
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=120)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=30)) is not None:  # the rest of the output, to its end
        output.append(line)
    return status, "".join(output), role, snapshot, took


def _assert_versions_whole(data: Path) -> None:
    """Every saved version can be read: no half-written table, JSON or raster set."""
    # versioned entries are folders named like their files: read the files only
    for path in data.rglob("*.parquet"):
        if path.is_file():
            pd.read_parquet(path)
    for path in data.rglob("*.json"):
        if path.is_file():
            json.loads(path.read_text())
    for path in data.rglob("raster.json"):
        EventRasters.open(path.parent)


def test_sigterm_in_the_events_node_then_only_missing_outputs(
    tmp_path, monkeypatch, trained_models, e2e_project
):
    project = copy_project(tmp_path, trained_models)
    data = project / "data"
    status, output, role, before, took = _interrupt_events_node(project)

    # it unwound (a process killed by the signal has status -15) and said why, promptly
    assert status == 128 + signal.SIGTERM, output[-4000:]  # as a shell reports a signal
    flat = " ".join(output.split())
    assert "Run interrupted (SIGTERM)" in flat, output[-4000:]
    assert "To resume: kedro run --pipelines training,capture,events" in flat
    assert "--only-missing-outputs" in flat and "Traceback" not in output
    assert took < 60, f"{took:.1f} s from SIGTERM to exit"
    # nothing of the interrupted node survives: no scratch, no staging, no raster version
    assert not [p for p in (project / SCRATCH).iterdir()], "scratch left behind"
    assert not [p for p in data.rglob(".*") if p.is_dir()], "staging directories left behind"
    assert not (data / "04_feature" / role / "event_rasters_A").exists()
    assert not (data / "04_feature" / role / "tau_table.parquet").exists()
    _assert_versions_whole(data)
    after = _snapshot(data)
    assert {k: after.get(k) for k in before} == before  # earlier files untouched

    monkeypatch.setenv("COLUMNS", "400")  # one log record per line
    resumed = run_kedro(project, *ARGS, "--only-missing-outputs")
    log = resumed.stdout + resumed.stderr
    ran = set(re.findall(r"Running node: (\w+):", log))
    # only events nodes whose outputs are missing ran, the interrupted one among them;
    # training, capture and the thresholds of every role were skipped
    assert "Skipping" in log and ran == {"record_event_rasters"}, (ran, log[-4000:])
    assert f"record_event_rasters([{role}.model_manifest" in log
    assert not [p for p in (project / SCRATCH).iterdir()]
    final = _snapshot(data)
    assert {k: final.get(k) for k in before} == before  # the resumed run only added versions

    reference = e2e_project / "data"
    for role_name in ROLES:
        for table in TABLES:
            relative = table.format(role=role_name)
            assert (
                _latest(data, relative).read_bytes() == _latest(reference, relative).read_bytes()
            ), relative
        rasters = f"04_feature/{role_name}/event_rasters_A"
        versions = sorted((data / rasters).iterdir())
        assert len(versions) == 1, versions  # one version per role: the interrupted node saved none
        ours, theirs = _latest(data, rasters), _latest(reference, rasters)
        for name in RASTER_FILES:
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), (role_name, name)
