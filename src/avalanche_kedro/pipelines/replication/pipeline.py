"""The replication pipeline: one set of nodes over all model roles."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ...framework.active_config import configured_parameters
from ...study.params import ReplicationParams, TrajectoryParams
from ...study.trajectory import check_series
from ..roles_io import role_inputs
from .nodes import (
    CHECK_INPUTS,
    COMPARE_INPUTS,
    CONTROL_INPUTS,
    CONTROL_LM_INPUTS,
    check_roles,
    compare_roles,
    compare_training_steps,
    compare_with_control,
)

#: Default of ``control_role``: read the parameter from the active configuration.
FROM_CONFIG = object()

#: Kedro namespace of the replication nodes (``kedro run --namespaces replication`` runs them).
NAMESPACE = "replication"


def control_role_of(roles: Sequence[str] | None, control_role=FROM_CONFIG) -> str | None:
    """The control role of T08 when it is one of two or more roles, else None.

    Without ``control_role`` the parameter ``replication.control_role`` of the active
    configuration is read (:func:`configured_parameters`, as the registry reads
    ``model_roles``); a missing parameter means ``untrained`` and ``null`` means no control.
    """
    if control_role is FROM_CONFIG:
        replication = configured_parameters().get("replication", {})
        control_role = ReplicationParams.coerce(replication).control_role
    roles = list(roles or [])
    return control_role if len(roles) >= 2 and control_role in roles else None


def trajectory_series(
    roles: Sequence[str] | None, trajectory=FROM_CONFIG, models=FROM_CONFIG
) -> dict | None:
    """``{role: step}`` when the roles form a training series (``trajectory.enabled``), else
    None; the series is validated here, from the configuration, before any model loads.

    Without ``trajectory``/``models`` the parameters of the active configuration are read.
    """
    if trajectory is FROM_CONFIG or models is FROM_CONFIG:
        parameters = configured_parameters()
        if trajectory is FROM_CONFIG:
            trajectory = parameters.get("trajectory", {})
        if models is FROM_CONFIG:
            models = parameters.get("models") or {}
    if not TrajectoryParams.coerce(trajectory or {}).enabled:
        return None
    return check_series(list(roles or []), models or {})


def create_pipeline(
    model_roles: list[str] | None = None,
    control_role=FROM_CONFIG,
    trajectory=FROM_CONFIG,
    models=FROM_CONFIG,
    **kwargs,
) -> Pipeline:
    """Empty with fewer than two roles (there is nothing to replicate); the T08 node
    (``compare_with_control`` -> ``trained_vs_untrained_A``) only when the control role is one
    of the roles; the training-series node (``compare_training_steps`` ->
    ``training_trajectory_A``) only when ``trajectory.enabled`` (the series is validated
    first)."""
    series = trajectory_series(model_roles, trajectory, models)
    roles = list(model_roles or [])
    if len(roles) < 2:
        return Pipeline([], tags=["replication"])
    nodes = [
        node(
            update_wrapper(
                partial(check_roles, roles=roles, series=series is not None), check_roles
            ),
            inputs=role_inputs(roles, CHECK_INPUTS),
            outputs="replication_checks",
            name="check_roles_comparable",
        ),
        node(
            update_wrapper(partial(compare_roles, roles=roles), compare_roles),
            inputs=[
                "replication_checks",
                "params:controls",
                *role_inputs(roles, COMPARE_INPUTS),
            ],
            outputs="replication_A",
            name="compare_roles",
        ),
    ]
    control = control_role_of(roles, control_role)
    if control is not None:
        nodes.append(
            node(
                update_wrapper(
                    partial(compare_with_control, roles=roles, control_role=control),
                    compare_with_control,
                ),
                inputs=[
                    "replication_checks",
                    "params:controls",
                    "params:cascades",
                    *role_inputs(roles, CONTROL_INPUTS),
                    *role_inputs(roles, CONTROL_LM_INPUTS),
                ],
                outputs="trained_vs_untrained_A",
                name="compare_with_control",
            )
        )
    if series is not None:
        nodes.append(
            node(
                update_wrapper(
                    partial(compare_training_steps, roles=roles), compare_training_steps
                ),
                inputs=[
                    "replication_checks",
                    "params:controls",
                    "params:cascades",
                    *role_inputs(roles, CONTROL_INPUTS),
                ],
                outputs="training_trajectory_A",
                name="compare_training_steps",
            )
        )
    # one collapsible group in Kedro-Viz (node names replication.<name>); the datasets keep
    # their unprefixed names (replication_A, trained_vs_untrained_A, ...)
    return Pipeline(
        nodes, tags=["replication"], namespace=NAMESPACE, prefix_datasets_with_namespace=False
    )
