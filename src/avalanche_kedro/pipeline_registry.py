"""Project pipelines, one namespaced copy per model role."""

from __future__ import annotations

import warnings

from kedro.pipeline import Pipeline

from .framework.active_config import configured_parameters, remember_config_loader
from .framework.context import registry_parameters
from .pipelines import (
    calibration,
    capture,
    cascades,
    controls,
    events,
    lens,
    replication,
    reporting,
    training,
)
from .pipelines.handover import hand_over
from .pipelines.roles import check_roles
from .study.params import EventsParams, LensParams, ReplicationParams, TrajectoryParams

__all__ = [
    "PIPELINE_ORDER",
    "configured_parameters",
    "register_pipelines",
    "remember_config_loader",
]

PIPELINE_ORDER = (
    "training",
    "capture",
    "events",
    "cascades",
    "controls",
    "calibration",
    "lens",
    "replication",
    "reporting",
)

#: Pipelines with one namespaced copy per model role, and the pipelines across roles.
PER_ROLE = ("capture", "events", "cascades", "controls", "calibration", "lens")
CROSS_ROLE = ("replication", "reporting")

# The replication and reporting nodes read every role's namespaced datasets (`base.gstar_A`)
# on purpose; Kedro would warn about dotted names outside their namespace on every run.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.' characters")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        ``training`` (the embedded models the roles use), ``capture``, ``events``,
        ``cascades``, ``controls``, ``calibration``, ``lens`` (one namespaced copy per model
        role; ``lens`` only when ``lens.enabled``),
        ``replication`` and ``reporting`` (across roles) and
        ``__default__`` (everything), each containing one
        namespaced copy per role listed in the ``model_roles`` parameter.
    """
    # top-level keys and the blocks read here are validated now: they decide which nodes exist,
    # and Kedro's typed-parameter check covers only the blocks of registered nodes
    parameters = registry_parameters()
    roles = check_roles(parameters.get("model_roles"), parameters.get("models"))
    factories = {
        "training": training.create_pipeline,
        "capture": capture.create_pipeline,
        "events": events.create_pipeline,
        "cascades": cascades.create_pipeline,
        "controls": controls.create_pipeline,
        "calibration": calibration.create_pipeline,
        "lens": lens.create_pipeline,
        "replication": replication.create_pipeline,
        "reporting": reporting.create_pipeline,
    }
    # events.gain_blocks > 1 splits the event rasters into blocks of gains that a distributed
    # runner can record on different workers at once (conf/dask); 1 keeps one node per role.
    gain_blocks = EventsParams.coerce(parameters.get("events", {})).gain_blocks
    # the cross-role pipelines get the parameters read here rather than reading the
    # configuration again: the control role of T08 and the training series of T09
    cross_role = {
        "control_role": ReplicationParams.coerce(parameters.get("replication", {})).control_role,
        "trajectory": TrajectoryParams.coerce(parameters.get("trajectory", {})),
        "models": parameters.get("models") or {},
    }
    # the logit lens (lens.enabled): its per-role pipeline and T10/T11, F13/F14 and the report
    lens_enabled = LensParams.coerce(parameters.get("lens", {})).enabled
    extra = {
        "events": {"gain_blocks": gain_blocks},
        "lens": {"enabled": lens_enabled},
        "replication": cross_role,
        "reporting": {**cross_role, "lens": lens_enabled},
    }
    pipelines = {name: factories[name](roles, **extra.get(name, {})) for name in PIPELINE_ORDER}
    # each role hands its results to replication and reporting as one dataset <role>.results
    # (pipelines/handover.py): one arrow per role into the cross-role steps in Kedro-Viz; the
    # hand-over nodes run with either cross-role pipeline, so each still runs alone
    per_role = sum((pipelines[name] for name in PER_ROLE), Pipeline([]))
    handover, rewire = hand_over(roles, per_role, pipelines["replication"] + pipelines["reporting"])
    for name in CROSS_ROLE:
        if pipelines[name].nodes:
            pipelines[name] = handover + rewire(pipelines[name])
    pipelines["__default__"] = sum((pipelines[name] for name in PIPELINE_ORDER), Pipeline([]))
    return pipelines
