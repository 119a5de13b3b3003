"""The scaling benchmark: the whole embedded study, SequentialRunner against the DaskRunner."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def fresh_project_copy(project_root: Path, folder: Path) -> Path:
    """A new project in ``folder/project``: pyproject, conf (progress bars off), the raw ARC file.

    The package itself comes from the environment, so the copy runs the installed code.
    """
    project = folder / "project"
    project.mkdir()
    shutil.copy(project_root / "pyproject.toml", project)
    shutil.copytree(project_root / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters.yml").write_text("runtime:\n  progress: false\n")
    shutil.copytree(project_root / "data" / "01_raw", project / "data" / "01_raw")
    (project / "src").mkdir()
    return project


def table_digests(project: Path) -> dict[str, str]:
    """sha256 of every parquet table a run of ``project`` wrote, by file name."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((project / "data/08_reporting/tables").rglob("*.parquet"))
        if path.is_file()
    }


def run_scaling(project_root: Path, n_workers: int, repeats: int) -> dict[str, Any]:
    """Wall time of ``kedro run --env dask`` sequentially and on a local Dask cluster."""
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1")
    runs: dict[str, list[float]] = {"sequential": [], "dask": []}
    digests: dict[str, dict[str, str]] = {}
    runner = ["--runner", "avalanche_kedro.framework.runners.DaskRunner"]
    runner += ["--runner-params", f"n_workers={n_workers}"]
    for _ in range(repeats):
        for name, extra in (("sequential", []), ("dask", runner)):
            with tempfile.TemporaryDirectory() as folder:
                project = fresh_project_copy(project_root, Path(folder))
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "kedro", "run", "--env", "dask", *extra],
                    cwd=project,
                    env=env,
                    check=True,
                    capture_output=True,
                )
                runs[name].append(round(time.perf_counter() - started, 2))
                digests[name] = table_digests(project)
    sequential, distributed = min(runs["sequential"]), min(runs["dask"])
    return {
        "benchmark": "kedro run --env dask: SequentialRunner vs DaskRunner on a LocalCluster",
        "n_workers": n_workers,
        "repeats": repeats,
        "sequential_seconds": runs["sequential"],
        "dask_seconds": runs["dask"],
        "speedup_best_of": round(sequential / distributed, 3),
        "tables_identical": digests["sequential"] == digests["dask"],
        "n_tables": len(digests["sequential"]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads_sequential": torch.get_num_threads(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
