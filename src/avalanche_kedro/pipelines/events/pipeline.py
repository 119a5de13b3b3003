"""The events pipeline, one namespaced copy per model role."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .nodes import fit_rate_matched_thresholds, plan_event_conditions, record_event_rasters


def template() -> Pipeline:
    return Pipeline(
        [
            node(
                plan_event_conditions,
                inputs=[
                    "model_manifest",
                    "params:gain_grid",
                    "params:events",
                    "params:calibration",
                ],
                outputs="conditions_A",
                name="plan_event_conditions",
            ),
            node(
                fit_rate_matched_thresholds,
                inputs=[
                    "model_manifest",
                    "windows",
                    "unit_moments",
                    "rate_targets",
                    "conditions_A",
                    "params:runtime",
                    "params:calibration",
                    "params:rate_matching",
                ],
                outputs="threshold_fit",
                name="fit_rate_matched_thresholds",
            ),
            node(
                record_event_rasters,
                inputs=[
                    "model_manifest",
                    "windows",
                    "unit_moments",
                    "threshold_fit",
                    "conditions_A",
                    "params:runtime",
                    "params:calibration",
                ],
                outputs=["event_rasters_A", "tau_table", "events_summary"],
                name="record_event_rasters",
            ),
        ]
    )


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = model_roles or ["base"]
    return sum((for_role(template(), role, "events") for role in roles), Pipeline([]))
