"""Reporting nodes that draw the figures F01-F14 (PNG + PDF with provenance metadata) and the
contact sheet of every figure the pipeline draws."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ...study.figures import CONTACT_SHEET
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
    """One node per figure; F02 reads every role's tau table, F01 one role's rasters; one
    CONTACT_SHEET node lays out exactly the figures drawn here, read back as PNGs.

    Nothing reads T07, so a single model role (no replication) draws every figure; F12 (from
    T09) is drawn only when the roles are a training series (``trajectory``); F13 (from T10)
    and F14 (from T11 and every role's ``lens_collapse_crosstab``) only with the logit lens
    (``lens``), the ``control_role`` drawn as untrained.
    """
    raster_role = n.raster_role(roles)
    drawn = [  # (figure id, node function, inputs)
        (
            "F01_RASTER",
            _bound(n.draw_f01, role=raster_role),
            ["run_provenance", "T01_SUMMARY", f"{raster_role}.event_rasters_A"],
        ),
        (
            "F02_RATE_MATCHING",
            _bound(n.draw_f02, roles=roles, control_role=control_role),
            ["run_provenance", *role_inputs(roles, n.F02_INPUTS)],
        ),
    ]
    drawn += [
        (figure, _bound(function, control_role=control_role), ["run_provenance", table])
        for figure, function, table in TABLE_FIGURES
    ]
    if trajectory:
        drawn.append(
            ("F12_TRAINING_TRAJECTORY", n.draw_f12, ["run_provenance", "T09_TRAINING_TRAJECTORY"])
        )
    if lens:
        drawn += [
            (
                "F13_LENS_DEPTH",
                _bound(n.draw_f13, control_role=control_role),
                ["run_provenance", "T10_LENS"],
            ),
            (
                "F14_COLLAPSE_VS_CASCADE",
                _bound(n.draw_f14, roles=roles, control_role=control_role),
                [
                    "run_provenance",
                    "T11_COLLAPSE_VS_CASCADE",
                    *role_inputs(roles, n.F14_INPUTS),
                ],
            ),
        ]
    nodes = [
        node(function, inputs=inputs, outputs=figure, name=f"draw_{figure}")
        for figure, function, inputs in drawn
    ]
    # the sheet reads the saved figures back (a FigureDataset loads its PNG), so it shows what
    # was written; the figures are then internal to the reporting namespace in Kedro-Viz
    figure_ids = [figure for figure, _, _ in drawn]
    nodes.append(
        node(
            _bound(n.draw_contact_sheet, figure_ids=figure_ids),
            inputs=["run_provenance", *figure_ids],
            outputs=CONTACT_SHEET,
            name=f"draw_{CONTACT_SHEET}",
        )
    )
    # one collapsible group in Kedro-Viz; the figure datasets keep their unprefixed names
    return Pipeline(
        nodes,
        tags=["reporting", "figures"],
        namespace="reporting.figures",
        prefix_datasets_with_namespace=False,
    )
