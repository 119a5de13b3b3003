"""The replication pipeline: one set of nodes over all model roles."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ...framework.active_config import configured_parameters
from ..roles_io import role_inputs
from .nodes import (
    CHECK_INPUTS,
    COMPARE_INPUTS,
    CONTROL_INPUTS,
    check_roles,
    compare_roles,
    compare_with_control,
)

#: ``replication.control_role`` when the parameter is not set at all.
DEFAULT_CONTROL_ROLE = "untrained"
#: Default of ``control_role``: read the parameter from the active configuration.
FROM_CONFIG = object()


def control_role_of(roles: Sequence[str] | None, control_role=FROM_CONFIG) -> str | None:
    """The control role of T08 when it is one of two or more roles, else None.

    Without ``control_role`` the parameter ``replication.control_role`` of the active
    configuration is read (:func:`configured_parameters`, as the registry reads
    ``model_roles``); a missing parameter means ``untrained`` and ``null`` means no control.
    """
    if control_role is FROM_CONFIG:
        replication = configured_parameters().get("replication") or {}
        control_role = replication.get("control_role", DEFAULT_CONTROL_ROLE)
    roles = list(roles or [])
    return control_role if len(roles) >= 2 and control_role in roles else None


def create_pipeline(
    model_roles: list[str] | None = None, control_role=FROM_CONFIG, **kwargs
) -> Pipeline:
    """Empty with fewer than two roles (there is nothing to replicate); the T08 node
    (``compare_with_control`` -> ``trained_vs_untrained_A``) only when the control role is one
    of the roles."""
    roles = list(model_roles or [])
    if len(roles) < 2:
        return Pipeline([], tags=["replication"])
    nodes = [
        node(
            update_wrapper(partial(check_roles, roles=roles), check_roles),
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
                ],
                outputs="trained_vs_untrained_A",
                name="compare_with_control",
            )
        )
    return Pipeline(nodes, tags=["replication"])
