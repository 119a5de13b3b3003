"""Reporting node that writes the run report (markdown and HTML) from the tables, the run
provenance and the run's save version (to link the figures of the same run)."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from . import report_nodes as n
from .figures_pipeline import create_figures_pipeline


def drawn_figures(figures: Pipeline) -> list[str]:
    """The figure datasets (F01-F14 and the contact sheet, each a FigureDataset) a figures
    pipeline writes, in name order (the contact sheet reads the others back, so only it is a
    final output of the pipeline)."""
    return sorted(
        name
        for name in figures.all_outputs()
        if (name[:1] == "F" and name[1:3].isdigit()) or name == "CONTACT_SHEET"
    )


def create_report_pipeline(
    roles: list[str],
    control_role: str | None = None,
    trajectory: bool = False,
    lens: bool = False,
) -> Pipeline:
    """The report reads T01-T06, T07 with two or more roles, T08 with a control role, T09
    when the roles are a training series and T10/T11 with the logit lens (``lens``); it links
    the figures the figures pipeline of the same configuration draws, in the version folder
    ``run_save_version`` (:class:`avalanche_kedro.framework.run_version.SaveVersionDataset`)."""
    tables = list(n.REPORT_TABLES)
    if len(roles) >= 2:
        tables.append(n.REPLICATION_TABLE)
        if control_role is not None:
            tables.append(n.CONTROL_TABLE)
        if trajectory:
            tables.append(n.TRAJECTORY_TABLE)
    if lens:
        tables += n.LENS_TABLES
    figures = drawn_figures(create_figures_pipeline(roles, trajectory, lens, control_role))
    return Pipeline(
        [
            node(
                update_wrapper(
                    partial(n.build_run_report, names=tables, figures=figures), n.build_run_report
                ),
                inputs=["run_provenance", "run_save_version", *tables],
                outputs=["run_report", "run_report_html"],
                name="build_run_report",
            )
        ],
        tags=["reporting"],
        # one collapsible group in Kedro-Viz; the datasets keep their unprefixed names
        namespace="reporting.report",
        prefix_datasets_with_namespace=False,
    )
