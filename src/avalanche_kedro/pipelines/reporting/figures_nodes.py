"""Nodes that draw the paper figures F01-F14 (SPEC §11; F12 for a training series, F13-F14 with the logit lens) from saved tables and rasters, and the contact sheet of them all.

Each node returns one :class:`matplotlib.figure.Figure` carrying its provenance
(:mod:`avalanche_kedro.study.figures`); the catalog's ``FigureDataset`` writes it as PNG and PDF with
that provenance in the file metadata. Nothing here runs a model: the inputs are the paper
tables, the per-role tau tables and the base role's dataset A rasters.
:func:`draw_contact_sheet` lays out the contact sheet from the saved PNGs the figure datasets
load back: no figure is drawn twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from ...study import figures
from ..roles_io import regroup

F02_INPUTS = ["tau_table"]
F14_INPUTS = ["lens_collapse_crosstab"]


def raster_role(roles: Sequence[str]) -> str:
    """The role whose raster F01 shows: ``base`` when present, else the first role."""
    return "base" if "base" in roles else roles[0]


def draw_f01(run_provenance: dict, t01, rasters, *, role: str) -> Figure:
    return figures.f01_raster(t01, rasters, run_provenance, role=role)


def draw_f02(
    run_provenance: dict, *values, roles: Sequence[str], control_role: str | None = None
) -> Figure:
    data = regroup(values, roles, F02_INPUTS)
    return figures.f02_rate_matching(data["tau_table"], run_provenance, control_role=control_role)


def draw_f03(run_provenance: dict, t01, *, control_role: str | None = None) -> Figure:
    return figures.f03_branching_vs_gain(t01, run_provenance, control_role=control_role)


def draw_f04(run_provenance: dict, t01, *, control_role: str | None = None) -> Figure:
    return figures.f04_delta_b_vs_gain(t01, run_provenance, control_role=control_role)


def draw_f05(run_provenance: dict, t01, *, control_role: str | None = None) -> Figure:
    return figures.f05_gstar_selection(t01, run_provenance, control_role=control_role)


def draw_f06(run_provenance: dict, t02, *, control_role: str | None = None) -> Figure:
    return figures.f06_generalization_b(t02, run_provenance, control_role=control_role)


def draw_f07(run_provenance: dict, t03, *, control_role: str | None = None) -> Figure:
    return figures.f07_arc_accuracy(t03, run_provenance, control_role=control_role)


def draw_f08(run_provenance: dict, t01, *, control_role: str | None = None) -> Figure:
    return figures.f08_spike_def_robustness(t01, run_provenance, control_role=control_role)


def draw_f09(run_provenance: dict, t01, *, control_role: str | None = None) -> Figure:
    return figures.f09_susceptibility(t01, run_provenance, control_role=control_role)


def draw_f10(run_provenance: dict, t01, *, control_role: str | None = None) -> Figure:
    return figures.f10_null_comparison(t01, run_provenance, control_role=control_role)


def draw_f11(run_provenance: dict, t06, *, control_role: str | None = None) -> Figure:
    return figures.f11_ablations(t06, run_provenance, control_role=control_role)


def draw_f12(run_provenance: dict, t09) -> Figure:
    return figures.f12_training_trajectory(t09, run_provenance)


def draw_f13(run_provenance: dict, t10, *, control_role: str | None = None) -> Figure:
    return figures.f13_lens_depth(t10, run_provenance, control_role=control_role)


def draw_f14(
    run_provenance: dict, t11, *values, roles: Sequence[str], control_role: str | None = None
) -> Figure:
    data = regroup(values, roles, F14_INPUTS)
    return figures.f14_collapse_vs_cascade(
        t11, data["lens_collapse_crosstab"], run_provenance, control_role=control_role
    )


def draw_contact_sheet(run_provenance: dict, *pngs: bytes, figure_ids: Sequence[str]) -> Figure:
    """The contact sheet of ``figure_ids`` (in that order) from their saved PNGs (the bytes a
    FigureDataset loads)."""
    return figures.make_contact_sheet(dict(zip(figure_ids, pngs, strict=True)), run_provenance)
