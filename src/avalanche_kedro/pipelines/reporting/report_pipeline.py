"""Reporting node that writes the run report from the tables and the run provenance."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from . import report_nodes as n


def create_report_pipeline(roles: list[str]) -> Pipeline:
    tables = list(n.REPORT_TABLES)
    if len(roles) >= 2:
        tables.append(n.REPLICATION_TABLE)
    return Pipeline(
        [
            node(
                n.build_run_report,
                inputs=["run_provenance", *tables],
                outputs="run_report",
                name="build_run_report",
            )
        ],
        tags=["reporting"],
    )
