"""Provenance: what exactly produced a result (SPEC §12).

* ``config_hash``: sha256 of the resolved parameters as canonical JSON (sorted keys, no
  whitespace), leaving out the settings that cannot change a number (progress bars, the scratch
  folder).
* ``code_version``: the project's git commit, ``<commit>-dirty`` when tracked files differ from
  it, or ``no_git_metadata`` outside a repository.
* ``run_id`` in tables: a *content* id, ``run-`` + 16 hex of sha256 over the config hash, the
  code version, every model's identity (revision or directory hash, tokenizer hash) and every
  slice hash. The same configuration on the same code and data gets the same id, so two runs
  produce byte-identical tables; Kedro's timestamped session id goes into the run manifest.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import threading
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..measure.weights import sha256_file

#: Parameters that cannot change any result.
# How a run is executed, not what it measures: the gain blocks of the event rasters merge into
# byte-identical outputs, so a distributed run shares the config hash of a sequential one. Torch's
# thread count is not hashed either (torch's default differs between machines and never was):
# the embedded model's hidden states are bit-identical at 1 and 2 threads (docs/benchmarks/
# torch-threads-cpu.json) and the run manifest records the count every node ran with.
NON_SCIENTIFIC_PARAMETERS = (
    ("runtime", "progress"),
    ("runtime", "scratch_dir"),
    ("runtime", "torch_threads"),
    ("events", "gain_blocks"),
)
PACKAGES = (
    "avalanche_kedro",
    "kedro",
    "kedro-datasets",
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "connected-components-3d",
    "powerlaw",
    "matplotlib",
    "pandera",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(parameters: Mapping[str, Any]) -> str:
    """sha256 of the resolved parameters without :data:`NON_SCIENTIFIC_PARAMETERS`."""
    scientific = json.loads(canonical_json(parameters))
    for section, key in NON_SCIENTIFIC_PARAMETERS:
        if isinstance(scientific.get(section), dict):
            scientific[section].pop(key, None)
    return hashlib.sha256(canonical_json(scientific).encode("ascii")).hexdigest()


def code_version(root: Path | str | None = None) -> str:
    """Git commit of the project (``-dirty`` if tracked files changed), else ``no_git_metadata``."""
    root = Path(root or Path.cwd())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no_git_metadata"
    if not commit:
        return "no_git_metadata"
    return f"{commit}-dirty" if status else commit


def content_run_id(
    config_sha256: str,
    code: str,
    model_manifests: Mapping[str, Mapping[str, Any]],
    slice_manifests: Mapping[str, Mapping[str, Any]],
) -> str:
    """``run-`` + 16 hex of sha256 over config, code, model identities and slice hashes."""
    identity = {
        "config_hash": config_sha256,
        "code_version": code,
        "models": {
            role: {
                key: manifest.get(key)
                # not the checkpoint path: the same model in another folder is the same model
                for key in (
                    "model_id",
                    "revision",
                    "content_sha256",
                    "tokenizer_sha256",
                    "model_type",
                )
            }
            for role, manifest in sorted(model_manifests.items())
        },
        "slices": {
            role: sorted((s["dataset_role"], s["slice"], s["sha256"]) for s in manifest["slices"])
            for role, manifest in sorted(slice_manifests.items())
        },
    }
    return "run-" + hashlib.sha256(canonical_json(identity).encode("ascii")).hexdigest()[:16]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


_digests: dict[tuple, tuple[int, str]] = {}
_digests_lock = threading.Lock()


def file_identity(path: Path) -> tuple:
    """``(path, size, mtime, inode)``: changes whenever the file is rewritten."""
    stat = path.stat()
    return (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def file_digest(path: Path) -> tuple[int, str]:
    """``(bytes, sha256)`` of a file, hashed once per :func:`file_identity` in a process: the
    run manifest's record and the artifact's stamp (framework.stamps) of a file just saved,
    and a later check of the same unchanged file, share one read."""
    key = file_identity(path)
    with _digests_lock:
        known = _digests.get(key)
    if known is None:
        known = (key[1], sha256_file(path))
        with _digests_lock:
            _digests[key] = known
    return known


def artifact_records(path: Path | str) -> list[dict[str, Any]]:
    """``{path, bytes, sha256}`` of a saved file, or of every file of a saved directory (sorted
    by path)."""
    path = Path(path)
    if not path.exists():
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [
        {"path": p.as_posix(), "bytes": size, "sha256": sha}
        for p in files
        for size, sha in [file_digest(p)]
    ]
