"""The node that writes the run report (markdown) from the saved paper tables."""

from __future__ import annotations

import pandas as pd

from ...study import report
from ...study.tables import TABLE_IDS

#: Table datasets the report reads, in node-input order; T07 only with two or more roles, T08
#: only when the untrained control is one of them.
REPORT_TABLES = [TABLE_IDS[t] for t in ("T01", "T02", "T03", "T04", "T05", "T06")]
REPLICATION_TABLE = TABLE_IDS["T07"]
CONTROL_TABLE = TABLE_IDS["T08"]


def build_run_report(run_provenance: dict, *frames: pd.DataFrame) -> str:
    """Markdown report of the run: ``frames`` are T01-T06, then T07 (>= 2 roles), then T08
    (a control role among them)."""
    names = [*REPORT_TABLES, REPLICATION_TABLE, CONTROL_TABLE][: len(frames)]
    if len(frames) not in (len(REPORT_TABLES), len(REPORT_TABLES) + 1, len(REPORT_TABLES) + 2):
        raise ValueError(
            f"expected {len(REPORT_TABLES)} to {len(REPORT_TABLES) + 2} tables, got {len(frames)}"
        )
    tables = {name[:3]: frame for name, frame in zip(names, frames, strict=True)}
    tables.setdefault("T07", None)
    tables.setdefault("T08", None)
    return report.build_report(run_provenance, tables)
