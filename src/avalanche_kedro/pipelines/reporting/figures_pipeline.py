"""Reporting nodes that draw the figures F01-F14 (PNG + PDF with provenance metadata)."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ..roles_io import role_inputs
from . import figures_nodes as n

#: Figures drawn from one paper table: (figure id = catalog name, node function, table).
TABLE_FIGURES = (
    ("F03_BRANCHING_VS_GAIN", n.draw_f03, "T01_SUMMARY"),
    ("F04_DELTA_B_VS_GAIN", n.draw_f04, "T01_SUMMARY"),
    ("F05_GSTAR_SELECTION", n.draw_f05, "T01_SUMMARY"),
    ("F06_GENERALIZATION_B", n.draw_f06, "T02_GENERALIZATION"),
    ("F07_ARC_ACCURACY", n.draw_f07, "T03_ARC"),
    ("F08_SPIKE_DEF_ROBUSTNESS", n.draw_f08, "T01_SUMMARY"),
    ("F09_SUSCEPTIBILITY", n.draw_f09, "T01_SUMMARY"),
    ("F10_NULL_COMPARISON", n.draw_f10, "T01_SUMMARY"),
    ("F11_ABLATIONS", n.draw_f11, "T06_ABLATIONS"),
)


def _bound(function, **kwargs):
    return update_wrapper(partial(function, **kwargs), function)


def create_figures_pipeline(
    roles: list[str],
    trajectory: bool = False,
    lens: bool = False,
    control_role: str | None = None,
) -> Pipeline:
    """One node per figure; F02 reads every role's tau table, F01 one role's rasters.

    Nothing reads T07, so a single model role (no replication) draws every figure; F12 (from
    T09) is drawn only when the roles are a training series (``trajectory``); F13 (from T10)
    and F14 (from T11 and every role's ``lens_collapse_crosstab``) only with the logit lens
    (``lens``), the ``control_role`` drawn as untrained.
    """
    raster_role = n.raster_role(roles)
    nodes = [
        node(
            _bound(n.draw_f01, role=raster_role),
            inputs=["run_provenance", "T01_SUMMARY", f"{raster_role}.event_rasters_A"],
            outputs="F01_RASTER",
            name="draw_F01_RASTER",
        ),
        node(
            _bound(n.draw_f02, roles=roles),
            inputs=["run_provenance", *role_inputs(roles, n.F02_INPUTS)],
            outputs="F02_RATE_MATCHING",
            name="draw_F02_RATE_MATCHING",
        ),
    ]
    nodes += [
        node(function, inputs=["run_provenance", table], outputs=figure, name=f"draw_{figure}")
        for figure, function, table in TABLE_FIGURES
    ]
    if trajectory:
        nodes.append(
            node(
                n.draw_f12,
                inputs=["run_provenance", "T09_TRAINING_TRAJECTORY"],
                outputs="F12_TRAINING_TRAJECTORY",
                name="draw_F12_TRAINING_TRAJECTORY",
            )
        )
    if lens:
        nodes += [
            node(
                _bound(n.draw_f13, control_role=control_role),
                inputs=["run_provenance", "T10_LENS"],
                outputs="F13_LENS_DEPTH",
                name="draw_F13_LENS_DEPTH",
            ),
            node(
                _bound(n.draw_f14, roles=roles, control_role=control_role),
                inputs=[
                    "run_provenance",
                    "T11_COLLAPSE_VS_CASCADE",
                    *role_inputs(roles, n.F14_INPUTS),
                ],
                outputs="F14_COLLAPSE_VS_CASCADE",
                name="draw_F14_COLLAPSE_VS_CASCADE",
            ),
        ]
    return Pipeline(nodes, tags=["reporting", "figures"])
