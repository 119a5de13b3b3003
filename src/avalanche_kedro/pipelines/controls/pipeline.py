"""The controls pipeline, one namespaced copy per model role."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .nodes import compare_with_nulls, measure_null_branching


def template() -> Pipeline:
    return Pipeline(
        [
            node(
                measure_null_branching,
                inputs=["event_rasters_A", "conditions_A"],
                outputs=["null_branching_per_window_A", "marginal_checks_A"],
                name="measure_null_branching",
            ),
            node(
                compare_with_nulls,
                inputs=[
                    "conditions_A",
                    "branching_per_window_A",
                    "null_branching_per_window_A",
                    "marginal_checks_A",
                    "params:controls",
                ],
                outputs="controls_summary_A",
                name="compare_with_nulls",
            ),
        ]
    )


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = model_roles or ["base"]
    return sum((for_role(template(), role, "controls") for role in roles), Pipeline([]))
