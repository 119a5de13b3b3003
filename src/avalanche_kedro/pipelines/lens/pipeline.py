"""The lens pipeline, one namespaced copy per model role (when ``lens.enabled``)."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .nodes import align_lens_with_cascades, decode_lens_prompts, measure_lens


def template() -> Pipeline:
    return Pipeline(
        [
            node(
                measure_lens,
                inputs=["model_manifest", "windows", "gstar_A", "params:runtime", "params:lens"],
                outputs=["lens_tokens", "lens_manifest"],
                name="measure_lens",
                tags=["model"],
            ),
            node(
                align_lens_with_cascades,
                inputs=[
                    "lens_tokens",
                    "event_rasters_A",
                    "conditions_A",
                    "gstar_A",
                    "events_summary",
                    "params:lens",
                ],
                outputs=[
                    "lens_layers",
                    "lens_alignment",
                    "lens_collapse_crosstab",
                    "lens_collapse_tokens",
                ],
                name="align_lens_with_cascades",
            ),
            node(
                decode_lens_prompts,
                inputs=["model_manifest", "params:runtime", "params:lens"],
                outputs="lens_prompts",  # Parquet + CSV (one TableDataset entry)
                name="decode_lens_prompts",
                tags=["model"],
            ),
        ]
    )


def create_pipeline(
    model_roles: list[str] | None = None, enabled: bool = True, **kwargs
) -> Pipeline:
    """One copy per role; empty when ``enabled`` is false (``lens.enabled: false``)."""
    if not enabled:
        return Pipeline([])
    roles = model_roles or ["base"]
    return sum((for_role(template(), role, "lens") for role in roles), Pipeline([]))
