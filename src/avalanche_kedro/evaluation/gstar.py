"""Mechanistic gain calibration: g* is the grid gain whose b_tot on dataset A is nearest 1 (SPEC §8).

g* is chosen per (model role, spike definition, target rate) from the pooled b_tot of the
dataset A analysis slice under ``MLP_GLOBAL`` with rate matching; it never looks at a task
metric (perplexity, ARC). Among the gains whose ``|b_tot - 1|`` is within ``tie_tolerance``
(1e-12) of the minimum, the gain closest to 1 wins, then the smaller gain. Gains whose
distance to 1 differs by less than :data:`GAIN_DISTANCE_TOLERANCE` count as equally close,
so 0.85 and 1.15 tie (in binary floating point ``|0.85 - 1|`` and ``|1.15 - 1|`` differ in
the 17th digit) and the smaller, 0.85, is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.errors import ConfigurationError

TIE_TOLERANCE = 1e-12
GAIN_DISTANCE_TOLERANCE = 1e-9

GSTAR_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g_star",
    "b_tot_at_gstar",
    "abs_b_tot_minus_1",
    "n_gains",
    "n_finite",
    "curve_g",
    "curve_b_tot",
]


def select_gstar(
    gains: Sequence[float], b_tot: Sequence[float], tie_tolerance: float = TIE_TOLERANCE
) -> float:
    """The gain of a b_tot curve nearest b_tot = 1, with the SPEC §8 tie-breaking.

    NaN b_tot values (empty rasters) are ignored; a curve without any finite value raises.
    """
    g = np.asarray(gains, dtype=np.float64)
    b = np.asarray(b_tot, dtype=np.float64)
    if g.shape != b.shape or g.size == 0:
        raise ConfigurationError(
            f"A b_tot curve needs one value per gain; got {g.size} gains, {b.size} values.",
            "Pass the gain grid and the b_tot of each gain.",
        )
    finite = np.isfinite(b)
    if not finite.any():
        raise ConfigurationError(
            "Every gain of this b_tot curve is NaN (no events at all), so g* is undefined.",
            "Check the rasters of dataset A (events_summary, cascade_summary_A): the target "
            "rates may be too low for this model's width.",
        )
    distance = np.abs(b - 1.0)
    best = np.nanmin(np.where(finite, distance, np.nan))
    candidates = np.flatnonzero(finite & (distance <= best + tie_tolerance))
    to_one = np.abs(g[candidates] - 1.0)
    closest = candidates[to_one <= to_one.min() + GAIN_DISTANCE_TOLERANCE]
    return float(g[closest].min())


def gstar_table(summary: pd.DataFrame, tie_tolerance: float = TIE_TOLERANCE) -> pd.DataFrame:
    """g* per (spike_def_id, target_rate) from per-condition ``g`` and ``b_tot`` rows.

    ``summary`` holds the dataset A, ``MLP_GLOBAL``, real (``NULL_NONE``) conditions. The result
    keeps the whole curve (``curve_g``, ``curve_b_tot``) next to the choice.
    """
    rows = []
    for (spike_def, rate), curve in summary.groupby(["spike_def_id", "target_rate"], sort=True):
        curve = curve.sort_values("g")
        if curve["g"].duplicated().any():
            raise ConfigurationError(
                f"The b_tot curve of {spike_def} at {rate} has duplicated gains.",
                "Select one model role, dataset A, MLP_GLOBAL and the real conditions only.",
            )
        g_star = select_gstar(curve["g"], curve["b_tot"], tie_tolerance)
        at = curve[curve["g"] == g_star]["b_tot"].item()
        rows.append(
            {
                "spike_def_id": spike_def,
                "target_rate": float(rate),
                "g_star": g_star,
                "b_tot_at_gstar": float(at),
                "abs_b_tot_minus_1": abs(float(at) - 1.0),
                "n_gains": int(len(curve)),
                "n_finite": int(np.isfinite(curve["b_tot"]).sum()),
                "curve_g": curve["g"].to_numpy(dtype=np.float64),
                "curve_b_tot": curve["b_tot"].to_numpy(dtype=np.float64),
            }
        )
    return pd.DataFrame(rows, columns=GSTAR_COLUMNS)
