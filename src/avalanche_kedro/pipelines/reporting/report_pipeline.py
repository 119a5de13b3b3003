"""Reporting node that writes the run report from the tables and the run provenance."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from . import report_nodes as n


def create_report_pipeline(
    roles: list[str],
    control_role: str | None = None,
    trajectory: bool = False,
    lens: bool = False,
) -> Pipeline:
    """The report reads T01-T06, T07 with two or more roles, T08 with a control role, T09
    when the roles are a training series and T10/T11 with the logit lens (``lens``)."""
    tables = list(n.REPORT_TABLES)
    if len(roles) >= 2:
        tables.append(n.REPLICATION_TABLE)
        if control_role is not None:
            tables.append(n.CONTROL_TABLE)
        if trajectory:
            tables.append(n.TRAJECTORY_TABLE)
    if lens:
        tables += n.LENS_TABLES
    return Pipeline(
        [
            node(
                update_wrapper(partial(n.build_run_report, names=tables), n.build_run_report),
                inputs=["run_provenance", *tables],
                outputs="run_report",
                name="build_run_report",
            )
        ],
        tags=["reporting"],
    )
