"""The node that writes the run report (markdown) from the saved paper tables."""

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


def build_run_report(
    run_provenance: dict, *frames: pd.DataFrame, names: Sequence[str] | None = None
) -> str:
    """Markdown report of the run: ``frames`` are the tables ``names`` (T01-T06, then T07 with
    >= 2 roles, T08 with a control role, T09 for a training series, T10 and T11 with the logit
    lens); without ``names`` they are T01-T06 followed by T07 and T08 in that order."""
    names = list(names or [*REPORT_TABLES, REPLICATION_TABLE, CONTROL_TABLE][: len(frames)])
    if len(frames) != len(names) or names[: len(REPORT_TABLES)] != REPORT_TABLES:
        raise ValueError(f"expected the tables {names} (T01-T06 first), got {len(frames)} frames")
    tables = {name[:3]: frame for name, frame in zip(names, frames, strict=True)}
    for optional in ("T07", "T08", "T09", "T10", "T11"):
        tables.setdefault(optional, None)
    return report.build_report(run_provenance, tables)
