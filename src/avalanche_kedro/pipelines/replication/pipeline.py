"""The replication pipeline: one set of nodes over all model roles."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ..roles_io import role_inputs
from .nodes import CHECK_INPUTS, COMPARE_INPUTS, check_roles, compare_roles


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    """Empty with fewer than two roles (there is nothing to replicate)."""
    roles = list(model_roles or [])
    if len(roles) < 2:
        return Pipeline([], tags=["replication"])
    return Pipeline(
        [
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
        ],
        tags=["replication"],
    )
