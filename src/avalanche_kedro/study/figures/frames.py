"""Reading the paper tables for a figure: roles, rates, spike definitions, row selection, the
condition text, and the column check that names what a stale table lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...core.errors import ArtifactError


def _roles(table: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> list[str]:
    present = list(dict.fromkeys(table["model_role"].astype(str)))
    order = [r for r in (provenance or {}).get("roles", []) if r in present]
    return order + sorted(r for r in present if r not in order)


def _rates(table: pd.DataFrame) -> list[float]:
    return sorted(float(r) for r in table["target_rate"].unique())


def _spikes(table: pd.DataFrame) -> list[str]:
    return sorted(str(s) for s in table["spike_def_id"].unique())


def _model_ids_of(table: pd.DataFrame) -> dict[str, str]:
    if "model_id" not in table:
        return {}
    pairs = table[["model_role", "model_id"]].drop_duplicates()
    return {str(r): str(m) for r, m in zip(pairs["model_role"], pairs["model_id"], strict=True)}


def _models_title(roles: Sequence[str], model_ids: Mapping[str, str]) -> str:
    return ", ".join(f"{role} = {model_ids.get(role, '?')}" for role in roles)


def _select(table: pd.DataFrame, **values) -> pd.DataFrame:
    keep = np.ones(len(table), dtype=bool)
    for column, value in values.items():
        if isinstance(value, float):
            keep &= np.isclose(table[column].astype(float).to_numpy(), value, rtol=1e-12, atol=0)
        else:
            keep &= (table[column] == value).to_numpy()
    return table[keep]


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return frame[column].astype(float).to_numpy()


def _condition_text(table: pd.DataFrame, dataset_role: str, extra: str = "") -> str:
    parts = [f"dataset_role={dataset_role}"]
    if "spike_def_id" in table:
        parts.append("spike_def_id=" + ",".join(_spikes(table)))
    if "target_rate" in table:
        parts.append("target_rate=" + ",".join(f"{r:g}" for r in _rates(table)))
    if "g" in table:
        parts.append("g=" + ",".join(f"{g:g}" for g in sorted(table["g"].astype(float).unique())))
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        raise ArtifactError(
            f"{name} lacks the columns {missing} needed for this figure.",
            "Rebuild the table with this version of avalanche_kedro (kedro run --pipelines reporting).",
        )
    if table.empty:
        raise ArtifactError(f"{name} is empty; there is nothing to draw.", "Run the study first.")
