"""The node that writes the run report (markdown) from the saved paper tables."""

from __future__ import annotations

import pandas as pd

from ...study import report
from ...study.tables import TABLE_IDS

#: Table datasets the report reads, in node-input order; T07 only with two or more roles.
REPORT_TABLES = [TABLE_IDS[t] for t in ("T01", "T02", "T03", "T04", "T05", "T06")]
REPLICATION_TABLE = TABLE_IDS["T07"]


def build_run_report(run_provenance: dict, *frames: pd.DataFrame) -> str:
    """Markdown report of the run: ``frames`` are T01-T06 and, with >= 2 roles, T07."""
    names = REPORT_TABLES + ([REPLICATION_TABLE] if len(frames) > len(REPORT_TABLES) else [])
    if len(frames) != len(names):
        raise ValueError(f"expected {len(REPORT_TABLES)} or {len(names)} tables, got {len(frames)}")
    tables = {name[:3]: frame for name, frame in zip(names, frames, strict=True)}
    tables.setdefault("T07", None)
    return report.build_report(run_provenance, tables)
