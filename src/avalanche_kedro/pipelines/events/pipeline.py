"""The events pipeline, one namespaced copy per model role."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ..roles import for_role
from .nodes import (
    fit_rate_matched_thresholds,
    merge_event_raster_blocks,
    plan_event_conditions,
    record_event_raster_block,
    record_event_rasters,
)

RASTER_INPUTS = [
    "model_manifest",
    "windows",
    "unit_moments",
    "threshold_fit",
    "conditions_A",
    "params:runtime",
    "params:calibration",
]
RASTER_OUTPUTS = ["event_rasters_A", "tau_table", "events_summary"]


def raster_nodes(gain_blocks: int) -> list:
    """One raster node, or (``gain_blocks`` > 1) one node per gain block and a merge node.

    The blocks are independent, so a distributed runner (``conf/dask``) can run them on
    different workers at once; the merged outputs are byte-identical to the single node's.
    """
    if gain_blocks <= 1:
        return [
            node(
                record_event_rasters,
                inputs=RASTER_INPUTS,
                outputs=RASTER_OUTPUTS,
                name="record_event_rasters",
                tags=["model"],
            )
        ]
    blocks = [
        node(
            # keyword-bound and wrapped, so Kedro reads the parameter types of the node
            update_wrapper(
                partial(record_event_raster_block, block=block, n_blocks=gain_blocks),
                record_event_raster_block,
            ),
            inputs=RASTER_INPUTS,
            outputs=[f"event_rasters_A_block{block}", f"event_rasters_A_block{block}_stats"],
            name=f"record_event_rasters_block{block}",
            tags=["model"],
        )
        for block in range(gain_blocks)
    ]
    parts = [name for block in blocks for name in block.outputs]
    merge = node(
        merge_event_raster_blocks,
        inputs=["model_manifest", "threshold_fit", "conditions_A", "params:runtime", *parts],
        outputs=RASTER_OUTPUTS,
        name="merge_event_raster_blocks",
    )
    return [*blocks, merge]


def template(gain_blocks: int = 1) -> Pipeline:
    return Pipeline(
        [
            node(
                plan_event_conditions,
                inputs=[
                    "model_manifest",
                    "instrumentation_report",
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
                    "baseline_rates",
                    "conditions_A",
                    "params:runtime",
                    "params:calibration",
                    "params:rate_matching",
                ],
                outputs="threshold_fit",
                name="fit_rate_matched_thresholds",
                tags=["model"],
            ),
            *raster_nodes(gain_blocks),
        ]
    )


def create_pipeline(
    model_roles: list[str] | None = None, gain_blocks: int = 1, **kwargs
) -> Pipeline:
    roles = model_roles or ["base"]
    return sum(
        (for_role(template(int(gain_blocks)), role, "events") for role in roles), Pipeline([])
    )
