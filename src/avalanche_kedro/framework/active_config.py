"""The configuration of the active Kedro session, for code that Kedro calls without it.

Kedro registers pipelines (``pipeline_registry.register_pipelines``) without handing them the
session's config loader, but the model roles - one namespace per role - must come from the
*active* environment (``kedro run --env paper``, ``--params``). The project hook
:class:`avalanche_kedro.framework.hooks.ActiveConfigHooks` records the loader here for every
new context; outside a session the loader of ``KEDRO_ENV`` (or ``local``) is built on demand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_ACTIVE: dict[str, Any] = {"config_loader": None}


def remember_config_loader(config_loader: Any) -> None:
    """Called by :class:`avalanche_kedro.framework.hooks.ActiveConfigHooks` for every context."""
    _ACTIVE["config_loader"] = config_loader


def _project_root() -> Path:
    for folder in (Path.cwd(), *Path.cwd().parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.exists() and "[tool.kedro]" in pyproject.read_text():
            return folder
    # src/avalanche_kedro/framework/active_config.py -> the repository root
    return Path(__file__).resolve().parents[3]


def active_config_loader() -> Any:
    """The config loader of the active session (or of ``KEDRO_ENV`` / ``local`` without one)."""
    loader = _ACTIVE["config_loader"]
    if loader is None:
        from kedro.framework.project import settings

        loader = settings.CONFIG_LOADER_CLASS(
            conf_source=str(_project_root() / settings.CONF_SOURCE),
            env=os.environ.get("KEDRO_ENV"),
            **settings.CONFIG_LOADER_ARGS,
        )
    return loader


def configured_parameters() -> dict[str, Any]:
    """Parameters of the active environment (or of ``KEDRO_ENV`` / ``local`` without a session)."""
    return active_config_loader()["parameters"]
