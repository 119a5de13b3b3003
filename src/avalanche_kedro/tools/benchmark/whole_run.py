"""The whole-run benchmark: one ``kedro run``, per node its wall time, CPU time and tokens.

``python -m avalanche_kedro.tools.benchmark whole-run --out FILE.json`` runs ``python -m kedro
run`` (with ``--env``, ``--params``, ``--pipelines``, ``--nodes``, ``--runner``, ``--runner-params`` passed
through) as a subprocess in a project folder (``--project``, default the current one). When
that folder has ``src/avalanche_kedro``, its own code runs (it goes first on ``PYTHONPATH``), so
a ``git worktree`` of another commit is measured with that commit's code and configuration.

The numbers come from the run manifest the project's ``ProvenanceHooks`` write (the manifest
of the subprocess is the one whose ``process.pid`` is the subprocess's id): per node the wall
seconds, the CPU seconds of the run's process while the node ran (all threads, plus the
child processes the node waited for; a Dask worker's own process for nodes run on Dask),
torch's thread count and the tokens forwarded. The JSON adds each node's share of the nodes'
total CPU and wall time, the same summed over model roles (``by_function``: ``base.fit_x`` and
``instruct.fit_x`` are ``fit_x``), the totals, the subprocess's wall time and the CPU time of
the whole process tree (``getrusage`` of the waited-for children), the date, the git commit
(and the files that differ from it), the machine with its load average before and after, and
torch's thread setting. ``--from-manifest`` summarises an existing manifest without running.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ...core.threads import available_cores
from ...framework.hooks import MANIFEST_FOLDER

PACKAGE = "avalanche_kedro"


def kedro_command(
    env: str | None = None,
    params: str | None = None,
    pipelines: str | None = None,
    runner: str | None = None,
    runner_params: str | None = None,
    nodes: str | None = None,
) -> list[str]:
    """``python -m kedro run`` with the options given (None: left out)."""
    command = [sys.executable, "-m", "kedro", "run"]
    for flag, value in (
        ("--env", env),
        ("--params", params),
        ("--pipelines", pipelines),
        ("--runner", runner),
        ("--runner-params", runner_params),
        ("--nodes", nodes),
    ):
        if value:
            command += [flag, value]
    return command


def data_root(project: Path, env: str | None) -> Path:
    """``globals.data_root`` of the base and run environments (default ``data``)."""
    root = "data"
    for name in ("base", env or "local"):
        path = project / "conf" / name / "globals.yml"
        if path.is_file():
            root = (yaml.safe_load(path.read_text()) or {}).get("data_root", root)
    return project / str(root)


def find_manifest(folder: Path, pid: int, since: float) -> Path | None:
    """The run manifest in ``folder`` written by process ``pid`` after ``since`` (epoch s)."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if path.stat().st_mtime < since:
            break
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (manifest.get("process") or {}).get("pid") == pid:
            return path
    return None


def git_state(project: Path) -> dict[str, Any]:
    """The commit of ``project`` and the tracked files that differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(project), *args], capture_output=True, text=True, check=True
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "changed_files": []}
    return {"commit": commit, "changed_files": sorted(changed)}


def _role_free(name: str, roles: set[str]) -> str:
    head, _, rest = name.partition(".")
    return rest if rest and head in roles else name


def _share(part: float | None, total: float) -> float | None:
    return None if part is None or total <= 0 else round(100 * part / total, 2)


def summarize_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Per node and per node function (roles summed): wall, CPU, tokens and shares; totals."""
    raw = manifest.get("nodes") or {}
    roles = set(manifest.get("models") or {})
    total_cpu = sum(float(n.get("cpu_seconds") or 0) for n in raw.values())
    total_wall = sum(float(n.get("seconds") or 0) for n in raw.values())
    nodes: dict[str, dict[str, Any]] = {}
    functions: dict[str, dict[str, Any]] = {}
    for name, record in raw.items():
        cpu = record.get("cpu_seconds")
        tokens = int(record.get("tokens_forwarded") or 0)
        nodes[name] = {
            "wall_seconds": record.get("seconds"),
            "cpu_seconds": cpu,
            "cpu_seconds_children": record.get("cpu_seconds_children"),
            "tokens_forwarded": tokens,
            "torch_threads": record.get("torch_threads"),
            "cpu_share_percent": _share(cpu, total_cpu),
            "wall_share_percent": _share(record.get("seconds"), total_wall),
            "tokens_per_cpu_second": round(tokens / cpu, 1) if tokens and cpu else None,
            **({"worker": record["worker"]} if record.get("worker") else {}),
        }
        group = functions.setdefault(
            _role_free(name, roles),
            {"nodes": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0, "tokens_forwarded": 0},
        )
        group["nodes"] += 1
        group["wall_seconds"] += float(record.get("seconds") or 0)
        group["cpu_seconds"] += float(cpu or 0)
        group["tokens_forwarded"] += tokens
    for group in functions.values():
        group["wall_seconds"] = round(group["wall_seconds"], 3)
        group["cpu_seconds"] = round(group["cpu_seconds"], 3)
        group["cpu_share_percent"] = _share(group["cpu_seconds"], total_cpu)
    order = sorted(nodes, key=lambda n: -(nodes[n]["cpu_seconds"] or nodes[n]["wall_seconds"] or 0))
    by_function = sorted(functions, key=lambda f: -functions[f]["cpu_seconds"])
    return {
        "totals": {
            "nodes": len(nodes),
            "wall_seconds": round(total_wall, 3),
            "cpu_seconds": round(total_cpu, 3),
            "tokens_forwarded": sum(n["tokens_forwarded"] for n in nodes.values()),
            "cpu_recorded": all(n.get("cpu_seconds") is not None for n in raw.values()),
        },
        "nodes": {name: nodes[name] for name in order},
        "by_function": {name: functions[name] for name in by_function},
    }


def _load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_whole(
    project: Path, command: list[str], env: str | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run ``command`` (a ``kedro run``) in ``project`` and summarise its run manifest."""
    project = project.resolve()
    environ = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1")
    if (project / "src" / PACKAGE).is_dir():  # that checkout's own code, not the installed one
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(project / "src"), environ.get("PYTHONPATH")) if p
        )
    load_before, cpu_before = _load_average(), _children_cpu()
    started_epoch, started = time.time(), time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=project, env=environ, stdout=log, stderr=log)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            returncode = None
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        log.seek(0)
        tail = log.read()[-4000:]
    folder = data_root(project, env) / MANIFEST_FOLDER
    path = find_manifest(folder, process.pid, started_epoch - 1)
    if path is None:
        raise RuntimeError(
            f"`{' '.join(command[2:])}` in {project} ended with return code {returncode} "
            f"and wrote no run manifest to {folder}; its last output:\n{tail}"
        )
    manifest = json.loads(path.read_text())
    result = describe(manifest, path, project)
    result["command"] = " ".join(["python", *command[1:]])
    result["run"].update(
        returncode=returncode,
        subprocess_wall_seconds=round(wall, 3),
        cpu_seconds_all_processes=round(cpu, 3),
        output_tail=None if returncode == 0 else re.sub(r"\x1b\[[0-9;]*m", "", tail),
    )
    result["machine"].update(load_average_before=load_before, load_average_after=_load_average())
    return result


def describe(manifest: Mapping[str, Any], path: Path, project: Path | None = None) -> dict:
    """The benchmark's JSON for one run manifest (see the module doc)."""
    import torch

    summary = summarize_manifest(manifest)
    process = manifest.get("process") or {}
    return {
        "benchmark": "whole kedro run: wall time, CPU time and tokens per node",
        "date": str(manifest.get("started") or time.strftime("%Y-%m-%d"))[:10],
        "project": str(project) if project else None,
        "git": git_state(project) if project else {"commit": None, "changed_files": []},
        "code_version": manifest.get("code_version"),
        "run": {
            "status": manifest.get("status"),
            "session_id": manifest.get("session_id"),
            "manifest": str(path),
            "env": manifest.get("env"),
            "pipeline_names": manifest.get("pipeline_names"),
            "runtime_params": manifest.get("runtime_params"),
            "runner": manifest.get("runner"),
            "pipeline_wall_seconds": manifest.get("wall_seconds"),
            "pipeline_cpu_seconds": process.get("cpu_seconds_pipeline"),
            "process": process,
            "tokens_forwarded": manifest.get("tokens_forwarded"),
            "artifacts": len(manifest.get("artifacts") or []),
        },
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "available_cores": available_cores(),
            "torch_default_threads_here": torch.get_num_threads(),
            "recorded": manifest.get("machine"),
        },
        "torch_threads": manifest.get("torch_threads"),
        **summary,
    }
