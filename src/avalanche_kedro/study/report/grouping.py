"""The report's view of the tables: one :class:`Group` per (role, spike definition, target rate)
with its g* and its rows of every table, and the :class:`Finding` each section decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .formatting import cite, key_number

TABLE_NAMES = {
    "T01": "T01_SUMMARY",
    "T02": "T02_GENERALIZATION",
    "T03": "T03_ARC",
    "T04": "T04_TAIL_FITS",
    "T05": "T05_CRACKLING_DIAGNOSTICS",
    "T06": "T06_ABLATIONS",
    "T07": "T07_REPLICATION_SUMMARY",
    "T08": "T08_TRAINED_VS_UNTRAINED",
    "T09": "T09_TRAINING_TRAJECTORY",
}


REQUIRED_TABLES = ("T01", "T02", "T03", "T05", "T06")


GROUP_KEYS = ["model_role", "spike_def_id", "target_rate"]


G_MATCH_ATOL = 1e-9


def _normalize_tables(tables: Mapping[str, pd.DataFrame | None]) -> dict[str, pd.DataFrame | None]:
    """Accept ``T01`` or ``T01_SUMMARY`` keys; every required table must be present."""
    out: dict[str, pd.DataFrame | None] = {}
    for key, value in tables.items():
        short = str(key)[:3].upper()
        if short in TABLE_NAMES:
            # positions as the index: a row's label is the n of its `T01:n` citation
            out[short] = value.reset_index(drop=True) if value is not None else None
    missing = [TABLE_NAMES[t] for t in REQUIRED_TABLES if out.get(t) is None]
    if missing:
        raise ValueError(f"the report needs the tables {missing}")
    return out


def _rows(table: pd.DataFrame | None, role: str, spike: str, rate: float) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame()
    keep = (
        (table["model_role"] == role)
        & (table["spike_def_id"] == spike)
        & np.isclose(table["target_rate"].astype(float), rate, rtol=1e-12, atol=0.0)
    )
    return table[keep]


def _one(rows: pd.DataFrame, **match: Any) -> pd.Series | None:
    keep = np.ones(len(rows), dtype=bool)
    for column, value in match.items():
        if column not in rows:
            return None
        if isinstance(value, float):
            keep &= np.isclose(rows[column].astype(float), value, rtol=0.0, atol=G_MATCH_ATOL)
        else:
            keep &= (rows[column] == value).to_numpy()
    picked = rows[keep]
    return None if picked.empty else picked.iloc[0]


def _get(row: pd.Series | None, column: str) -> float:
    if row is None or column not in row.index:
        return float("nan")
    value = row[column]
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class Group:
    """One (role, spike def, target rate) with its g* and the rows of every table."""

    role: str
    spike: str
    rate: float
    g_star: float
    t01: pd.DataFrame
    t02: pd.DataFrame
    t03: pd.DataFrame
    t04: pd.DataFrame
    t05: pd.DataFrame
    t06: pd.DataFrame

    def cite(self, table: str, **kwargs: Any) -> str:
        return cite(table, self.role, self.spike, self.rate, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.role}, {self.spike}, r = {key_number(self.rate)}"


def _g_star(t01: pd.DataFrame, t02: pd.DataFrame) -> float:
    """g* of one group: T01's ``opt_is_gstar`` row, else T02's ``gstar`` row, else NaN (no g*
    row: every finding at g* is then undetermined and the summary says why)."""
    if "opt_is_gstar" in t01 and t01["opt_is_gstar"].astype(bool).sum() == 1:
        return float(t01.loc[t01["opt_is_gstar"].astype(bool), "g"].iloc[0])
    row = _one(t02, g_condition="gstar")
    if row is not None:
        return float(row["g"])
    return float("nan")


def groups(tables: Mapping[str, pd.DataFrame | None]) -> list[Group]:
    """Every (role, spike def, target rate) of T01, in table order."""
    t01 = tables["T01"]
    keys = t01[GROUP_KEYS].drop_duplicates().sort_values(GROUP_KEYS, kind="stable")
    out = []
    for role, spike, rate in keys.itertuples(index=False):
        rows = {t: _rows(tables.get(t), role, spike, float(rate)) for t in TABLE_NAMES}
        t01_rows = rows["T01"].sort_values("g", kind="stable")
        out.append(
            Group(
                role,
                spike,
                float(rate),
                _g_star(t01_rows, rows["T02"]),
                t01_rows,
                rows["T02"],
                rows["T03"],
                rows["T04"],
                rows["T05"],
                rows["T06"],
            )
        )
    return out


@dataclass(frozen=True)
class Finding:
    """One decided result: what was decided, the sentence that says it, the rows it cites."""

    key: str
    decision: str
    sentence: str
    #: the report's table cells for this finding (its section's evidence columns, citations
    #: included); the sentence says the same in words, for notebooks
    cells: tuple[str, ...] = ()
