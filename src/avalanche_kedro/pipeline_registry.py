"""Project pipelines, one namespaced copy per model role."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from kedro.pipeline import Pipeline

from .pipelines import calibration, capture, cascades, controls, events, replication, reporting
from .pipelines.roles import check_roles

PIPELINE_ORDER = (
    "capture",
    "events",
    "cascades",
    "controls",
    "calibration",
    "replication",
    "reporting",
)
_ACTIVE: dict[str, Any] = {"config_loader": None}

# The replication and reporting nodes read every role's namespaced datasets (`base.gstar_A`)
# on purpose; Kedro would warn about dotted names outside their namespace on every run.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.' characters")


def remember_config_loader(config_loader: Any) -> None:
    """Called by :class:`avalanche_kedro.hooks.ActiveConfigHooks` for every new context."""
    _ACTIVE["config_loader"] = config_loader


def _project_root() -> Path:
    for folder in (Path.cwd(), *Path.cwd().parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.exists() and "[tool.kedro]" in pyproject.read_text():
            return folder
    return Path(__file__).resolve().parents[2]


def configured_parameters() -> dict[str, Any]:
    """Parameters of the active environment (or of ``KEDRO_ENV`` / ``local`` without a session)."""
    loader = _ACTIVE["config_loader"]
    if loader is None:
        from kedro.framework.project import settings

        loader = settings.CONFIG_LOADER_CLASS(
            conf_source=str(_project_root() / settings.CONF_SOURCE),
            env=os.environ.get("KEDRO_ENV"),
            **settings.CONFIG_LOADER_ARGS,
        )
    return loader["parameters"]


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        ``capture``, ``events``, ``cascades``, ``controls``, ``calibration`` (one namespaced
        copy per model role), ``replication`` and ``reporting`` (across roles) and
        ``__default__`` (everything), each containing one
        namespaced copy per role listed in the ``model_roles`` parameter.
    """
    parameters = configured_parameters()
    roles = check_roles(parameters.get("model_roles"), parameters.get("models"))
    factories = {
        "capture": capture.create_pipeline,
        "events": events.create_pipeline,
        "cascades": cascades.create_pipeline,
        "controls": controls.create_pipeline,
        "calibration": calibration.create_pipeline,
        "replication": replication.create_pipeline,
        "reporting": reporting.create_pipeline,
    }
    # events.gain_blocks > 1 splits the event rasters into blocks of gains that a distributed
    # runner can record on different workers at once (conf/dask); 1 keeps one node per role.
    gain_blocks = int((parameters.get("events") or {}).get("gain_blocks", 1) or 1)
    pipelines = {
        name: (
            factories[name](roles, gain_blocks=gain_blocks)
            if name == "events"
            else factories[name](roles)
        )
        for name in PIPELINE_ORDER
    }
    pipelines["__default__"] = sum((pipelines[name] for name in PIPELINE_ORDER), Pipeline([]))
    return pipelines
