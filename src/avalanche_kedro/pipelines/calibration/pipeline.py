"""The calibration pipeline, one namespaced copy per model role."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .ablation_nodes import fit_ablation_thresholds, record_ablation_rasters
from .arc_nodes import score_arc_questions, summarize_arc
from .nodes import (
    analyze_ablations,
    analyze_dataset_B,
    plan_followup_conditions,
    record_dataset_B,
    select_gstar,
    summarize_perplexity_curve,
)
from .token_shuffle_nodes import compare_token_shuffle_at_gstar, record_gstar_token_shuffle


def template() -> Pipeline:
    return Pipeline(
        [
            node(
                select_gstar,
                inputs=[
                    "cascade_summary_A",
                    "conditions_A",
                    "branching_per_window_A",
                    "params:gstar",
                ],
                outputs="gstar_A",
                name="select_gstar",
            ),
            node(
                record_gstar_token_shuffle,
                inputs=[
                    "model_manifest",
                    "instrumentation_report",
                    "windows",
                    "unit_moments",
                    "threshold_fit",
                    "conditions_A",
                    "gstar_A",
                    "params:runtime",
                    "params:calibration",
                    "params:controls",
                ],
                outputs=["conditions_tokshuf_A", "branching_per_window_tokshuf_A"],
                name="record_gstar_token_shuffle",
                tags=["model"],
            ),
            node(
                compare_token_shuffle_at_gstar,
                inputs=[
                    "conditions_A",
                    "conditions_tokshuf_A",
                    "branching_per_window_A",
                    "branching_per_window_tokshuf_A",
                    "null_branching_per_window_A",
                    "marginal_checks_A",
                    "gstar_A",
                    "params:controls",
                ],
                outputs="controls_summary_gstar_A",
                name="compare_token_shuffle_at_gstar",
            ),
            node(
                plan_followup_conditions,
                inputs=[
                    "model_manifest",
                    "instrumentation_report",
                    "gstar_A",
                    "params:gain_grid",
                    "params:calibration",
                    "params:generalization",
                    "params:ablations",
                ],
                outputs=["conditions_B", "conditions_ablation"],
                name="plan_followup_conditions",
            ),
            node(
                record_dataset_B,
                inputs=[
                    "model_manifest",
                    "windows",
                    "unit_moments",
                    "tau_table",
                    "conditions_B",
                    "params:runtime",
                    "params:calibration",
                ],
                outputs=["event_rasters_B", "lm_loss_B", "achieved_rates_B"],
                name="record_dataset_B",
                tags=["model"],
            ),
            node(
                analyze_dataset_B,
                inputs=[
                    "conditions_B",
                    "event_rasters_B",
                    "lm_loss_B",
                    "achieved_rates_B",
                    "gstar_A",
                    "params:generalization",
                ],
                outputs="generalization_B",
                name="analyze_dataset_B",
            ),
            node(
                summarize_perplexity_curve,
                inputs=["lm_loss_B", "params:generalization"],
                outputs="perplexity_curve_B",
                name="summarize_perplexity_curve",
            ),
            node(
                score_arc_questions,
                inputs=[
                    "model_manifest",
                    "arc_questions",
                    "gstar_A",
                    "params:runtime",
                    "params:arc",
                ],
                outputs=["arc_scores", "arc_manifest"],
                name="score_arc_questions",
                tags=["model"],
            ),
            node(
                summarize_arc,
                inputs=["arc_scores", "gstar_A", "params:arc"],
                outputs="arc_summary",
                name="summarize_arc",
            ),
            node(
                fit_ablation_thresholds,
                inputs=[
                    "model_manifest",
                    "windows",
                    "unit_moments",
                    "rate_targets",
                    "conditions_ablation",
                    "threshold_fit",
                    "params:runtime",
                    "params:calibration",
                    "params:rate_matching",
                    "params:ablations",
                ],
                outputs="ablation_threshold_fit",
                name="fit_ablation_thresholds",
                tags=["model"],
            ),
            node(
                record_ablation_rasters,
                inputs=[
                    "model_manifest",
                    "windows",
                    "unit_moments",
                    "ablation_threshold_fit",
                    "conditions_ablation",
                    "threshold_fit",
                    "event_rasters_A",
                    "conditions_A",
                    "params:runtime",
                    "params:calibration",
                    "params:ablations",
                ],
                outputs=["event_rasters_ablation", "ablation_tau_table", "ablation_events_summary"],
                name="record_ablation_rasters",
                tags=["model"],
            ),
            node(
                analyze_ablations,
                inputs=[
                    "conditions_ablation",
                    "event_rasters_ablation",
                    "ablation_tau_table",
                    "controls_summary_A",
                    "tau_table",
                    "gstar_A",
                    "conditions_A",
                    "branching_per_window_A",
                    "params:ablations",
                ],
                outputs="ablations_A",
                name="analyze_ablations",
            ),
        ]
    )


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = model_roles or ["base"]
    return sum((for_role(template(), role, "calibration") for role in roles), Pipeline([]))
