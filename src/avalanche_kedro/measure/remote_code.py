"""Remote code: which model roles may run a checkpoint's own Python (``trust_remote_code``).

``trust_remote_code: true`` lets transformers import and run Python files that come with a
checkpoint (a local directory's ``*.py``, or the modules a Hub repository's ``config.json``
names in ``auto_map``). That is a decision of the user, so it is taken from the configuration
the user passed for the run (``models.<role>.trust_remote_code``, ``--params``) and from
nothing else:

* a ``kedro run`` sets it here from its own parameters before any node runs
  (:class:`avalanche_kedro.framework.hooks.RemoteCodeHooks`), mirrors it into the environment
  variable :data:`ENV_VAR` for node processes, hands it to every Dask task, and puts the
  previous state back when the run ends;
* a notebook or script that loads models itself calls :func:`allow_remote_code`.

A saved artifact is never a source of the decision: a model manifest that records
``trust_remote_code: true`` while the configuration does not allow it is refused
(:func:`remote_code_allowed`), instead of running the checkpoint's code because a file says so.
When remote code is allowed, a warning names the checkpoint and the files that will run (once
per process, role and checkpoint), and the run manifest records them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import ConfigurationError
from ..core.paths import project_path

logger = logging.getLogger(__name__)

#: the environment variable that hands the run's decision to node processes (JSON: role ->
#: the configured checkpoint of every role allowed to run remote code)
ENV_VAR = "AVALANCHE_TRUST_REMOTE_CODE"

_STATE: dict[str, Any] = {"allowed": None}  # None: not set in this process (read ENV_VAR)
_WARNED: set[tuple[str, str]] = set()


def allowed_by(parameters: Mapping[str, Any] | None) -> dict[str, str]:
    """``{role: configured checkpoint}`` of every ``models.<role>`` with ``trust_remote_code:
    true`` in a run's parameters (plain mappings, as written)."""
    models = (parameters or {}).get("models") or {}
    allowed = {}
    for role, spec in models.items():
        if isinstance(spec, Mapping) and spec.get("trust_remote_code") is True:
            allowed[str(role)] = str(spec.get("checkpoint") or "")
    return allowed


def allow_remote_code(allowed: Mapping[str, str] | None) -> dict[str, str] | None:
    """Set which roles may run their checkpoint's own code in this process and its children.

    ``allowed``: ``{role: checkpoint}`` (``{}``: none; ``None``: unset, i.e. none unless a
    parent process handed a decision down in :data:`ENV_VAR`). For a notebook::

        allow_remote_code({"base": "org/model-with-custom-code"})

    Returns the previous setting (for :func:`allow_remote_code` to put back).
    """
    previous = _STATE["allowed"]
    if allowed is None:
        _STATE["allowed"] = None
        os.environ.pop(ENV_VAR, None)
    else:
        _STATE["allowed"] = {str(k): str(v) for k, v in allowed.items()}
        os.environ[ENV_VAR] = json.dumps(_STATE["allowed"], sort_keys=True)
    if _STATE["allowed"] != previous:
        _WARNED.clear()  # another decision warns again; the same one (each Dask task) does not
    return None if previous is None else dict(previous)


def allowed_roles() -> dict[str, str]:
    """The roles this process may run remote code for: :func:`allow_remote_code`, else what
    the parent process put in :data:`ENV_VAR`, else none."""
    if _STATE["allowed"] is not None:
        return dict(_STATE["allowed"])
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not a mapping")
    except ValueError as exc:
        raise ConfigurationError(
            f"The environment variable {ENV_VAR}={raw!r} is not a JSON mapping of model roles "
            "to checkpoints.",
            f"Unset {ENV_VAR} (the project sets it for its node processes) and set "
            "models.<role>.trust_remote_code in the configuration instead.",
        ) from exc
    return {str(k): str(v) for k, v in value.items()}


# --------------------------------------------------------------------------------------------
# The files that run


def _auto_map_modules(config: Mapping[str, Any] | None) -> set[str]:
    """The Python files an ``auto_map`` names: ``module.Class`` -> ``module.py``,
    ``org/repo--module.Class`` -> ``org/repo: module.py`` (code from another repository)."""
    modules: set[str] = set()
    auto_map = (config or {}).get("auto_map") or {}
    if not isinstance(auto_map, Mapping):
        return modules
    for value in auto_map.values():
        for reference in value if isinstance(value, list | tuple) else [value]:
            if not isinstance(reference, str) or "." not in reference:
                continue
            repo, _, dotted = reference.rpartition("--")
            module = dotted.rsplit(".", 1)[0].replace(".", "/") + ".py"
            modules.add(f"{repo}: {module}" if repo else module)
    return modules


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _hub_json(repo_id: str, filename: str, revision: str | None) -> dict | None:
    from huggingface_hub import hf_hub_download

    try:
        return _read_json(Path(hf_hub_download(repo_id, filename, revision=revision)))
    except Exception:  # not in the cache offline, no such file, no network
        return None


def remote_code_files(location: str, revision: str | None = None) -> list[str]:
    """The Python files ``trust_remote_code`` lets transformers run for a checkpoint.

    A local directory: every ``*.py`` in it (hidden folders excluded), plus modules its
    ``config.json`` / ``tokenizer_config.json`` ``auto_map`` takes from other repositories. A
    Hub id: the ``auto_map`` modules of those two files (read from the cache or the Hub;
    unreadable ones are left out).
    """
    directory = Path(location).expanduser()
    names = ("config.json", "tokenizer_config.json")
    files: set[str] = set()
    if directory.is_dir():
        for path in directory.rglob("*.py"):
            relative = path.relative_to(directory).as_posix()
            if not (relative.startswith(".") or "/." in relative):
                files.add(relative)
        for name in names:
            files |= {m for m in _auto_map_modules(_read_json(directory / name)) if ": " in m}
    else:
        for name in names:
            files |= _auto_map_modules(_hub_json(location, name, revision))
    return sorted(files)


def describe_files(files: list[str]) -> str:
    if not files:
        return "no Python files found (nothing in auto_map, no *.py in the checkpoint)"
    return ", ".join(files)


def warn_remote_code(role: str, location: str, revision: str | None = None) -> list[str]:
    """Log (once per process, role and checkpoint) that ``location``'s own code will run, and
    which files; returns those files."""
    files = remote_code_files(location, revision)
    if (role, location) not in _WARNED:
        _WARNED.add((role, location))
        logger.warning(
            "models.%s.trust_remote_code is true: loading '%s'%s runs the checkpoint's own "
            "Python code with this process's permissions: %s",
            role,
            location,
            f" (revision {revision})" if revision else "",
            describe_files(files),
        )
    return files


# --------------------------------------------------------------------------------------------
# The decision for a saved model manifest


def _names(checkpoint: str) -> set[str]:
    names = {checkpoint}
    try:
        names.add(str(project_path(checkpoint).resolve()))
    except (OSError, RuntimeError, ValueError):
        pass
    return names


def same_checkpoint(configured: str, manifest: Mapping[str, Any]) -> bool:
    """Whether the manifest's checkpoint is the configured one (the same Hub id or directory,
    or a saved training step inside the configured directory)."""
    location = str(manifest.get("checkpoint") or "")
    if not location:
        return False
    mine, theirs = _names(configured), _names(location)
    if mine & theirs:
        return True
    if manifest.get("source") == "hub":
        return False
    resolved = Path(max(theirs, key=len))
    return any(Path(name) in resolved.parents for name in mine if Path(name).is_absolute())


def remote_code_allowed(manifest: Mapping[str, Any]) -> bool:
    """``trust_remote_code`` for loading the model or tokenizer a saved manifest describes.

    True only when the configuration allows remote code for the manifest's role and names
    its checkpoint (with a warning naming the files that will run). A manifest recording
    ``trust_remote_code: true`` that the configuration does not allow is refused with a
    :class:`~avalanche_kedro.core.errors.ConfigurationError`: the flag is never read back
    from a saved file.
    """
    allowed = allowed_roles()
    check_manifest(manifest, allowed)
    role = str(manifest.get("model_role") or "")
    if role not in allowed:
        return False
    revision = manifest.get("revision") or manifest.get("revision_requested")
    warn_remote_code(role, str(manifest.get("checkpoint") or ""), revision)
    return True


def check_manifest(manifest: Mapping[str, Any], allowed: Mapping[str, str]) -> None:
    """Refuse a saved model manifest that would run remote code the decision ``allowed``
    (``{role: configured checkpoint}``) does not cover: it records ``trust_remote_code: true``
    for a role not allowed, or names another checkpoint than the allowed one. The preflight
    calls it with the run's parameters before any node runs."""
    role = str(manifest.get("model_role") or "")
    location = str(manifest.get("checkpoint") or "")
    if role in allowed:
        if not same_checkpoint(allowed[role], manifest):
            raise ConfigurationError(
                f"models.{role}.trust_remote_code allows the code of '{allowed[role]}', but the "
                f"saved model manifest of role '{role}' names the checkpoint '{location}'.",
                f"Re-run `kedro run --pipelines capture` so the saved manifest describes "
                f"models.{role}.checkpoint, or point models.{role}.checkpoint at '{location}' "
                "if you trust its code.",
            )
        return
    if manifest.get("trust_remote_code"):
        revision = manifest.get("revision") or manifest.get("revision_requested")
        files = remote_code_files(location, revision)
        raise ConfigurationError(
            f"The saved model manifest of role '{role}' records trust_remote_code: true, but "
            f"the configuration of this run does not allow remote code for it: loading "
            f"'{location}' would run the checkpoint's own Python code ({describe_files(files)}). "
            "A saved file never switches remote code on.",
            f"If you trust that code, set models.{role}.trust_remote_code: true in your "
            f"configuration (or --params models.{role}.trust_remote_code=true; in a notebook, "
            f"avalanche_kedro.measure.remote_code.allow_remote_code({{'{role}': '{location}'}})"
            "); otherwise re-run `kedro run --pipelines capture` to resolve the model again "
            "without it.",
        )


def remote_code_record(
    allowed: Mapping[str, str], manifests: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, dict[str, Any]]:
    """For the run manifest: ``{role: {checkpoint, revision, files}}`` of every role the
    configuration allows to run remote code (``manifests``: the roles' model manifests, for
    the resolved location and revision; the configured checkpoint without one)."""
    record = {}
    for role, configured in sorted(allowed.items()):
        manifest = manifests.get(role) or {}
        location = str(manifest.get("checkpoint") or configured)
        revision = manifest.get("revision") or manifest.get("revision_requested")
        record[role] = {
            "checkpoint": location,
            "revision": revision,
            "files": remote_code_files(location, revision),
        }
    return record
