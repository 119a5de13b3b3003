"""The node that writes the run report (markdown and HTML) from the saved paper tables."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ...study import report
from ...study.tables import TABLE_IDS

#: Table datasets the report reads, in node-input order; T07 only with two or more roles, T08
#: only when the untrained control is one of them, T09 only for a training series, T10 and T11
#: only with the logit lens.
REPORT_TABLES = [TABLE_IDS[t] for t in ("T01", "T02", "T03", "T04", "T05", "T06")]
REPLICATION_TABLE = TABLE_IDS["T07"]
CONTROL_TABLE = TABLE_IDS["T08"]
TRAJECTORY_TABLE = TABLE_IDS["T09"]
LENS_TABLES = [TABLE_IDS["T10"], TABLE_IDS["T11"]]

#: From the report's version folder (``08_reporting/report.md/<V>/``) to the figures folder
#: (``08_reporting/figures``): both are under ``${globals:data_root}/08_reporting`` in
#: ``conf/base/catalog_report.yml`` and ``catalog_figures.yml``.
FIGURES_FROM_REPORT = "../../figures"


def figure_paths(figure_ids: Sequence[str], save_version: str) -> dict[str, str]:
    """Each figure's PNG relative to the report's folder, in the run's version folder:
    ``FigureDataset`` saves ``<filepath>/<V>/<name>/<name>.png`` with ``<name>`` the last part
    of its ``filepath`` (the figure id)."""
    return {
        figure_id: f"{FIGURES_FROM_REPORT}/{figure_id}/{save_version}/{figure_id}/{figure_id}.png"
        for figure_id in figure_ids
    }


def build_run_report(
    run_provenance: dict,
    run_save_version: str | None,
    *frames: pd.DataFrame,
    names: Sequence[str] | None = None,
    figures: Sequence[str] = (),
) -> tuple[str, str]:
    """(markdown, HTML) report of the run: ``frames`` are the tables ``names`` (T01-T06, then
    T07 with >= 2 roles, T08 with a control role, T09 for a training series, T10 and T11 with
    the logit lens); without ``names`` they are T01-T06 followed by T07 and T08 in that order.
    ``figures`` are the figure ids this pipeline draws, linked in the run's version folder
    ``run_save_version`` (None: not linked, and the report says so)."""
    names = list(names or [*REPORT_TABLES, REPLICATION_TABLE, CONTROL_TABLE][: len(frames)])
    if len(frames) != len(names) or names[: len(REPORT_TABLES)] != REPORT_TABLES:
        raise ValueError(f"expected the tables {names} (T01-T06 first), got {len(frames)} frames")
    tables = {name[:3]: frame for name, frame in zip(names, frames, strict=True)}
    for optional in ("T07", "T08", "T09", "T10", "T11"):
        tables.setdefault(optional, None)
    links = figure_paths(figures, run_save_version) if run_save_version else None
    markdown = report.build_report(run_provenance, tables, links)
    return markdown, report.render_html(markdown, links)
