"""Stamps: what a saved artifact was when it was written, kept beside it.

A run writes, next to every file or folder a project dataset saves, a hidden stamp
``.<name>.stamp.json`` in the same folder (for a versioned dataset: inside the version folder,
where Kedro's version listing ``<filepath>/*/<name>`` never matches it). The stamp holds

- ``bytes`` and ``sha256`` of the artifact (a folder: of its files, see :func:`digest`), the
  same values the run manifest lists under ``artifacts``;
- ``parameters``: every parameter leaf (dotted key -> value) the artifact depends on, i.e. the
  ``params:`` inputs of the node that wrote it and of every node upstream of it, and
  ``parameters_sha256``, their hash;
- the dataset, the node, the session and the time it was written.

:func:`verify_file` compares an artifact with its stamp; :func:`changed_parameters` compares the
stamp's parameters with the current run's. Both are pure functions of files and mappings
(Kedro-free), used by :class:`~avalanche_kedro.framework.lineage.LineageHooks`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..core.errors import ArtifactError
from ..study.provenance import artifact_records, file_identity
from .atomic import staged_path

STAMP_FORMAT = 1
STAMP_SUFFIX = ".stamp.json"
ABSENT = "<not set>"


def stamp_path(artifact: Path) -> Path:
    """``<folder>/.<name>.stamp.json`` for the artifact ``<folder>/<name>``."""
    return artifact.parent / f".{artifact.name}{STAMP_SUFFIX}"


def identity(artifact: Path) -> tuple:
    """Changes whenever the artifact (any file of a folder) or its stamp is rewritten: the
    key under which a run remembers it verified the artifact."""
    files = sorted(p for p in artifact.rglob("*") if p.is_file()) if artifact.is_dir() else []
    stamp = stamp_path(artifact)
    return (
        file_identity(artifact) if artifact.is_file() else tuple(file_identity(p) for p in files),
        file_identity(stamp) if stamp.exists() else None,
    )


def digest(artifact: Path) -> dict[str, Any]:
    """``{"bytes", "sha256"}`` of a file, or of a folder: ``bytes`` summed over its files and
    ``sha256`` of the lines ``<relative path> <bytes> <sha256>`` of its files, sorted by path
    (so a renamed, added, removed or changed file changes it). The per-file values are the
    run manifest's (:func:`~avalanche_kedro.study.provenance.artifact_records`)."""
    records = artifact_records(artifact)
    if artifact.is_file():
        return {"bytes": records[0]["bytes"], "sha256": records[0]["sha256"]}
    lines = [
        f"{Path(r['path']).relative_to(artifact).as_posix()} {r['bytes']} {r['sha256']}\n"
        for r in records
    ]
    total = sum(r["bytes"] for r in records)
    return {"bytes": total, "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}


def parameter_leaves(parameters: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The leaves (dotted key -> value) under each of ``keys`` (``windows``, ``models.base``,
    ``""`` for all) of the plain ``parameters``; lists are leaves, an absent key is
    :data:`ABSENT`. Values are JSON round-tripped so that a stamp read back compares equal."""
    leaves: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for name in sorted(value):
                walk(f"{prefix}.{name}" if prefix else str(name), value[name])
        else:
            leaves[prefix] = json.loads(json.dumps(value, sort_keys=True, default=str))

    for key in sorted(set(keys)):
        value: Any = parameters
        for part in key.split(".") if key else []:
            value = value.get(part, ABSENT) if isinstance(value, Mapping) else ABSENT
        walk(key, value)
    return leaves


def leaves_sha256(leaves: Mapping[str, Any]) -> str:
    text = json.dumps(leaves, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changed_parameters(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: <recorded> -> <current>`` for every leaf that differs (or exists on one side)."""
    lines = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key, ABSENT), current.get(key, ABSENT)
        if old != new:
            lines.append(f"{key or 'parameters'}: {_show(old)} -> {_show(new)}")
    return lines


def _show(value: Any) -> str:
    if value == ABSENT:
        return ABSENT
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def write_stamp(artifact: Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` plus the artifact's digest to its stamp (staged, then renamed: a
    stamp is complete or absent). Returns the stamp's path."""
    target = stamp_path(artifact)
    body = {"format": STAMP_FORMAT, "artifact": artifact.name, **digest(artifact), **record}
    body.setdefault("written", time.strftime("%Y-%m-%dT%H:%M:%S"))
    staged = Path(str(staged_path(PurePosixPath(target.as_posix()))))
    try:
        staged.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return target


def read_stamp(artifact: Path) -> dict[str, Any] | None:
    """The artifact's stamp, ``None`` if it has none; an unreadable stamp is an error."""
    path = stamp_path(artifact)
    if not path.exists():
        return None
    try:
        stamp = json.loads(path.read_text())
        if not isinstance(stamp, dict) or "sha256" not in stamp:
            raise ValueError("not a stamp")
        return stamp
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"The stamp '{path}' of '{artifact}' cannot be read ({exc}).",
            "The artifact cannot be verified: rerun the pipeline that produces it.",
        ) from exc


def verify_file(artifact: Path, stamp: Mapping[str, Any], *, dataset: str, command: str) -> None:
    """Stop unless ``artifact``'s size and sha256 are those its stamp recorded."""
    found = digest(artifact)
    if found["bytes"] == stamp.get("bytes") and found["sha256"] == stamp.get("sha256"):
        return
    raise ArtifactError(
        f"Dataset '{dataset}' at '{artifact}' changed after it was written: expected "
        f"{stamp.get('bytes')} bytes with sha256 {stamp.get('sha256')} (recorded by "
        f"session {stamp.get('session_id')}), found {found['bytes']} bytes with sha256 "
        f"{found['sha256']}. The file is corrupted or was edited; nothing was computed from it.",
        f"Rerun the pipeline that produces it: `{command}` (it writes a new version; the "
        "changed one is kept for inspection).",
    )
