"""Saved artifacts are verified before use, and never mixed across configurations (issue 20).

Real ``python -m kedro run`` subprocesses on copies of the shared end-to-end project
(``e2e_project``, never modified here), reproducing the silent cases an outside probe found:

- a raster corrupted in place, then ``--pipelines cascades,controls``;
- ``--only-missing-outputs`` after changing ``windows.n_raster``;
- ``--pipelines capture`` with one ``seq_len``, then ``--pipelines events`` with another.

Each must be refused (or, for ``--only-missing-outputs``, recomputed) with a message naming the
file, the hashes or the changed keys and the fix, and nothing already saved may change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from avalanche_kedro.framework.stamps import read_stamp, stamp_path
from avalanche_kedro.measure.rasters import EventRasters
from tests.conftest import kedro_process, run_kedro

pytestmark = pytest.mark.slow

CPU = "runtime.device=cpu"  # the e2e project's runs all passed it (it is a parameter)


@pytest.fixture
def project(e2e_project, tmp_path) -> Path:
    """A private copy of the finished end-to-end project (its data, conf and pyproject)."""
    copy = tmp_path / "project"
    shutil.copytree(e2e_project, copy, symlinks=True)
    return copy


def _latest(project: Path, relative: str) -> Path:
    name = Path(relative).name
    versions = sorted((project / "data" / relative).glob(f"*/{name}"))
    assert versions, f"no version of {relative}"
    return versions[-1]


def _snapshot(data: Path) -> dict[str, str]:
    return {
        str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*"))
        if p.is_file() and "run_manifests" not in p.parts and "scratch" not in p.parts
    }


def _output(result) -> str:
    return result.stdout + result.stderr


def test_every_saved_artifact_has_a_stamp_matching_its_content(project):
    rasters = _latest(project, "04_feature/base/event_rasters_A")
    stamp = read_stamp(rasters)
    assert stamp_path(rasters).parent == rasters.parent  # inside the version folder
    assert stamp["dataset"] == "base.event_rasters_A" and stamp["node"]
    assert stamp["parameters"]["windows.n_raster"] == 48
    assert stamp["parameters"]["runtime.device"] == "cpu"
    assert "runtime.torch_threads" not in stamp["parameters"]  # not a scientific parameter
    windows = _latest(project, "02_intermediate/base/windows.parquet")
    recorded = read_stamp(windows)
    assert recorded["sha256"] == hashlib.sha256(windows.read_bytes()).hexdigest()
    assert recorded["bytes"] == windows.stat().st_size
    # the run manifest lists the same hash for the same file (paths of the original project)
    manifests = sorted((project / "data/08_reporting/run_manifests").glob("*.json"))
    listed = {
        a["path"].split("/data/", 1)[1]: a["sha256"]
        for m in manifests
        for a in json.loads(m.read_text())["artifacts"]
    }
    assert listed[windows.relative_to(project / "data").as_posix()] == recorded["sha256"]


def test_a_raster_corrupted_in_place_is_refused_before_any_node_runs(project):
    raster = _latest(project, "04_feature/base/event_rasters_A")
    recorded = read_stamp(raster)
    array = raster / "A.npy"
    with open(array, "r+b") as handle:  # the probe: same size, last 64 KiB set to 0xFF
        handle.seek(-(64 << 10), 2)
        handle.write(b"\xff" * (64 << 10))
    before = _snapshot(project / "data")

    result = kedro_process(project, "run", "--pipelines", "cascades,controls", "--params", CPU)

    text = _output(result)
    assert result.returncode != 0
    assert "Dataset 'base.event_rasters_A'" in text and "changed after it was written" in text
    assert f"sha256 {recorded['sha256']}" in text
    assert "kedro run --pipelines events" in text
    assert "Running node" not in text  # refused before any node ran
    assert _snapshot(project / "data") == before  # nothing written, the file kept as it is


def test_a_corrupted_raster_with_a_forged_stamp_fails_its_invariants(project):
    """Even a raster whose stamp was rewritten to match (a corrupted write, an edited stamp)
    cannot be read: counts above d_ff are impossible."""
    raster = _latest(project, "04_feature/base/event_rasters_A")
    with open(raster / "A.npy", "r+b") as handle:
        handle.seek(-(64 << 10), 2)
        handle.write(b"\xff" * (64 << 10))
    stamp = json.loads(stamp_path(raster).read_text())
    from avalanche_kedro.framework.stamps import digest

    stamp.update(digest(raster))
    stamp_path(raster).write_text(json.dumps(stamp))

    result = kedro_process(project, "run", "--pipelines", "cascades", "--params", CPU)

    text = _output(result)
    assert result.returncode != 0
    assert "65535" in text and "d_ff" in text, text[-3000:]
    assert "Running node" not in text


def test_capture_with_one_seq_len_then_events_with_another_is_refused(project):
    # the training pipeline's outputs depend on the windows too (decontamination): it runs
    # again with seq_len 32 (reusing the trained checkpoints), then capture
    run_kedro(
        project, "run", "--pipelines", "training,capture", "--params", f"{CPU},windows.seq_len=32"
    )
    before = _snapshot(project / "data")

    result = kedro_process(project, "run", "--pipelines", "events", "--params", CPU)

    text = _output(result)
    assert result.returncode != 0
    assert "made with other parameters than this run's" in text
    assert "windows.seq_len: 32 -> 256" in text
    assert "Running node" not in text
    assert _snapshot(project / "data") == before


def _only_missing(project: Path, params: str):
    """``--only-missing-outputs`` over the pipelines that make the rasters (training included:
    its outputs depend on the windows too)."""
    pipelines = "training,capture,events"
    return run_kedro(
        project, "run", "--pipelines", pipelines, "--only-missing-outputs", "--params", params
    )


def test_only_missing_outputs_recomputes_what_other_parameters_made(project):
    # unchanged parameters: every output is verified and nothing runs
    same = _only_missing(project, CPU)
    assert "will be recomputed" not in _output(same)
    assert "Skipping all" in _output(same)

    changed = _only_missing(project, f"{CPU},windows.n_raster=12")

    text = _output(changed)
    assert "'base.windows' will be recomputed" in text
    assert "windows.n_raster: 48 -> 12" in text
    raster = _latest(project, "04_feature/base/event_rasters_A")
    assert EventRasters.open(raster).n_windows == 12
    assert read_stamp(raster)["parameters"]["windows.n_raster"] == 12
    # and the tables read by later pipelines now refuse the old n_raster, not mix it in
    refused = kedro_process(project, "run", "--pipelines", "cascades", "--params", CPU)
    assert refused.returncode != 0
    assert "windows.n_raster: 12 -> 48" in _output(refused)
