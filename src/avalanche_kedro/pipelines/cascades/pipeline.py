"""The cascades pipeline, one namespaced copy per model role."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .nodes import find_avalanches, fit_crackling, fit_tails, measure_branching, summarize_cascades


def template() -> Pipeline:
    return Pipeline(
        [
            node(
                find_avalanches,
                inputs=["event_rasters_A", "conditions_A", "params:cascades"],
                outputs="avalanches_A",
                name="find_avalanches",
            ),
            node(
                measure_branching,
                inputs=["event_rasters_A", "conditions_A"],
                outputs="branching_per_window_A",
                name="measure_branching",
            ),
            node(
                summarize_cascades,
                inputs=["conditions_A", "branching_per_window_A", "avalanches_A"],
                outputs="cascade_summary_A",
                name="summarize_cascades",
            ),
            node(
                fit_crackling,
                inputs=[
                    "avalanches_A",
                    "conditions_A",
                    "branching_per_window_A",
                    "params:cascades",
                ],
                outputs="crackling_fits_A",
                name="fit_crackling",
            ),
            node(
                fit_tails,
                inputs=["avalanches_A", "conditions_A", "params:cascades"],
                outputs="tail_fits_A",
                name="fit_tails",
            ),
        ]
    )


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = model_roles or ["base"]
    return sum((for_role(template(), role, "cascades") for role in roles), Pipeline([]))
