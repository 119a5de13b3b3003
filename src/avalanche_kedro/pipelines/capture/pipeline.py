"""The capture pipeline, one namespaced copy per model role."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .nodes import (
    accumulate_unit_moments,
    derive_rate_targets,
    measure_baseline_rates,
    resolve_model,
    select_windows,
    validate_model_instrumentation,
)


def template(model_role: str) -> Pipeline:
    return Pipeline(
        [
            node(
                update_wrapper(partial(resolve_model, model_role=model_role), resolve_model),
                inputs=[
                    "corpus_A",
                    "embedded_models",
                    "params:model",
                    "params:embedded_checkpoints",
                    "params:windows",
                ],
                outputs="model_manifest",
                name="resolve_model",
            ),
            node(
                select_windows,
                inputs=["corpus_A", "corpus_B", "model_manifest", "params:windows"],
                outputs=["windows", "slice_manifest"],
                name="select_windows",
            ),
            node(
                validate_model_instrumentation,
                inputs=["model_manifest", "windows", "params:runtime"],
                outputs="instrumentation_report",
                name="validate_instrumentation",
                tags=["model"],
            ),
            node(
                accumulate_unit_moments,
                inputs=[
                    "model_manifest",
                    "windows",
                    "instrumentation_report",
                    "params:runtime",
                    "params:calibration",
                ],
                outputs=["unit_moments", "calibration_summary"],
                name="accumulate_unit_moments",
                tags=["model"],
            ),
            node(
                measure_baseline_rates,
                inputs=[
                    "model_manifest",
                    "windows",
                    "unit_moments",
                    "params:runtime",
                    "params:calibration",
                ],
                outputs="baseline_rates",
                name="measure_baseline_rates",
                tags=["model"],
            ),
            node(
                derive_rate_targets,
                inputs=["baseline_rates", "instrumentation_report", "params:calibration"],
                outputs="rate_targets",
                name="derive_rate_targets",
            ),
        ]
    )


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = model_roles or ["base"]
    return sum((for_role(template(role), role, "capture") for role in roles), Pipeline([]))
