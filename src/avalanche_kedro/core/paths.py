"""Relative paths in parameters are relative to the Kedro project root, not the shell's cwd.

Kedro makes catalog ``filepath``s absolute itself; parameters (a checkpoint directory, the
scratch folder) are plain strings, so a notebook running in ``notebooks/`` would otherwise
resolve them against the wrong folder. The project hook records the root of the active
session here; outside a session the current directory is used.
"""

from __future__ import annotations

from pathlib import Path

_ROOT: dict[str, Path | None] = {"project": None}


def remember_project_root(path: Path | str) -> None:
    _ROOT["project"] = Path(path).resolve()


def project_path(value: str | Path) -> Path:
    """``value`` made absolute against the active Kedro project (or the current directory)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return (_ROOT["project"] or Path.cwd()) / path
