"""A save that fails half way, and a run that is interrupted, in a real ``kedro run``.

The disk fills up as the user meets it: ``python -m kedro run --pipelines training`` runs with
``RLIMIT_FSIZE`` (the kernel refuses to grow a file past the limit with ``EFBIG``, "File too
large", the way a full disk refuses with ``ENOSPC``), in a project copy whose training pipeline
ran once with the tiny recipe of test_concurrent_runs, so the run reuses its checkpoints and
only writes ``embedded_models`` and the run manifest. ``embedded_models`` is written with a
large ``indent`` (conf/local) so that it is the largest file of the run.

* limit between the manifest's size and the dataset's: the save fails half way; the run shows
  that dataset's own error, no new version is listed (the first run's is still the latest,
  byte for byte), no staged file is left, and the run manifest says ``failed``;
* limit below both (a full disk): the save's error is still the one shown, the manifest
  writer's own error is only logged;
* SIGINT while the training node runs: exit status 130 and a manifest ``interrupted: SIGINT``.
"""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project, kedro_env, run_kedro, start_kedro
from tests.integration.test_concurrent_runs import PARAMS

pytestmark = pytest.mark.slow

ARGS = ("run", "--pipelines", "training", "--params", PARAMS)
DATASET = Path("data/06_models/embedded_models.json")
MANIFESTS = Path("data/08_reporting/run_manifests")
INDENT = 4000  # ~100 lines of JSON: some 400 kB, the manifest some 4 kB


def _rich_logging() -> str:
    """Kedro's console-only logging (no info.log, which the file-size limit would also hit)."""
    import kedro.framework.project as project

    return str(Path(project.__file__).parent / "rich_logging.yml")


def _limited_run(project: Path, max_bytes: int) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return subprocess.run(
        [sys.executable, "-m", "kedro", *ARGS],
        cwd=project,
        env=kedro_env(KEDRO_LOGGING_CONFIG=_rich_logging()),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit,
    )


def _data_files(project: Path) -> dict[str, bytes]:
    return {
        p.relative_to(project).as_posix(): p.read_bytes()
        for p in sorted((project / "data").rglob("*"))
        if p.is_file() and MANIFESTS.name not in p.parts
    }


def _final_error(stderr: str) -> str:
    """The last exception line of the traceback: the error the run ended with."""
    return [line for line in stderr.splitlines() if re.match(r"^\w*(Error|Exception):", line)][-1]


def _manifests(project: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((project / MANIFESTS).glob("*.json"))]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("failed-saves"))
    (project / "conf" / "local" / "catalog.yml").write_text(
        yaml.safe_dump(
            {
                "embedded_models": {
                    "type": "avalanche_kedro.framework.datasets.JSONDataset",
                    "filepath": "data/06_models/embedded_models.json",
                    "save_args": {"indent": INDENT, "sort_keys": True},
                    "versioned": True,
                }
            }
        )
    )
    run_kedro(project, *ARGS, timeout=600)
    return project


def test_a_save_that_fills_the_disk_shows_its_error_and_publishes_nothing(project):
    before = _data_files(project)
    # the saved version and its stamp (framework/stamps.py)
    saved = [name for name in before if name.startswith(DATASET.as_posix())]
    (good,) = [name for name in saved if not name.endswith(".stamp.json")]
    assert len(saved) == 2
    size = len(before[good])
    manifests = len(_manifests(project))
    assert size > 100_000 and manifests == 1
    result = _limited_run(project, 64_000)  # the manifest fits, the dataset does not
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # the dataset's own error ends the run (with the write's OSError in its chain)
    assert _final_error(result.stderr).startswith(
        "DatasetError: embedded_models: Failed while saving data to dataset"
    )
    assert "[Errno 27] File too large" in result.stderr[-2000:]
    assert "framework/hooks.py" not in output  # no traceback through the manifest writer
    # nothing new or changed under data/: no version, no staged file, no empty version folder
    assert _data_files(project) == before
    assert sorted(p.name for p in (project / DATASET).iterdir()) == [Path(good).parts[-2]]
    runs = _manifests(project)
    assert len(runs) == manifests + 1
    failed = [m for m in runs if m["status"] != "completed"]
    assert len(failed) == 1 and failed[0]["status"].startswith("failed: DatasetError")
    assert "File too large" in failed[0]["status"]


def test_when_the_manifest_cannot_be_written_either_the_save_error_is_shown(project):
    manifests = sorted((project / MANIFESTS).iterdir())
    result = _limited_run(project, 3_000)  # a full disk: neither file fits
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "run manifest of this failed run could not be written" in " ".join(output.split())
    # the save's error, not the manifest writer's OSError (which the run used to end with)
    assert _final_error(result.stderr).startswith(
        "DatasetError: embedded_models: Failed while saving data to dataset"
    )
    assert "[Errno 27] File too large" in result.stderr[-2000:]
    assert "framework/hooks.py" not in output
    assert sorted((project / MANIFESTS).iterdir()) == manifests  # no partial manifest either


def test_sigint_during_a_run_leaves_a_manifest_marked_interrupted(tmp_path):
    project = copy_project(tmp_path)  # nothing trained: the training node runs for a while
    process, lines = start_kedro(project, *ARGS)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not any("Running node: train_embedded_models" in line for line in output):
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "".join(output[-40:])
            output.append(line)
        time.sleep(0.2)  # inside the node: it trains two recipes and saves checkpoints
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=10)) is not None:
        output.append(line)
    text = "".join(output)
    assert status == 130, text[-4000:]
    assert "Run interrupted (SIGINT)" in text
    (manifest,) = _manifests(project)
    assert manifest["status"] == "interrupted: SIGINT"
    assert manifest["nodes"] == {} and manifest["artifacts"] == []
    assert not (project / DATASET).exists()  # the interrupted node saved nothing
