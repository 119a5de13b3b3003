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

from ..analysis.bootstrap import (
    bootstrap_indices,
    paired_b_tot,
    percentile_interval,
    resample_weights,
)
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


#: Columns :func:`gstar_identification` adds to the g* table.
IDENTIFICATION_COLUMNS = [
    "gstar_identified",
    "gstar_at_grid_edge",
    "gstar_runner_up_g",
    "gstar_margin",
    "gstar_margin_ci_low",
    "gstar_margin_ci_high",
    "gstar_n_gains_not_excluded",
    "gstar_identification_key",
]


def identification_key(spike_def_id: str, target_rate: float) -> str:
    """Bootstrap key of the g* identification of one curve (``seed_of("boot", key)``)."""
    return f"A|gstar|{spike_def_id}|{float(target_rate)!r}"


def gstar_identification(
    windows_by_gain: dict[float, pd.DataFrame],
    g_star: float,
    key: str,
    replicates: int,
) -> dict[str, object]:
    """Whether g* beats every other gain of its curve beyond the window noise.

    ``windows_by_gain[g]`` holds the per-window branching counts (``seq_id``, ``n_time``,
    ``n_depth``, ``den``) of one gain; every gain was measured on the same windows. Each
    bootstrap replicate draws one resample of the windows (``key``) and applies it to every
    gain (paired): ``b_tot_b(g) = W_b·(n_time + n_depth) / W_b·den`` and the margin of gain g
    over g* is ``d_b(g) = |b_tot_b(g) - 1| - |b_tot_b(g*) - 1|``. g* is *identified* when the
    95 % CI of every ``d(g)`` lies above 0. The runner-up is the gain whose margin CI has the
    lowest lower bound (the hardest to exclude); ``gstar_n_gains_not_excluded`` counts the gains
    whose margin CI reaches 0. ``gstar_at_grid_edge``: g* is the smallest or largest gain.
    """
    gains = sorted(float(g) for g in windows_by_gain)
    if float(g_star) not in gains:
        raise ValueError(f"g* = {g_star} is not one of the gains {gains}")
    ordered = {g: windows_by_gain[g].sort_values("seq_id") for g in gains}
    seq_ids = ordered[float(g_star)]["seq_id"].tolist()
    for g, table in ordered.items():
        if table["seq_id"].tolist() != seq_ids:
            raise ValueError(f"gain {g} was not measured on the windows of g* = {g_star}")
    weights = resample_weights(bootstrap_indices(len(seq_ids), replicates, key), len(seq_ids))

    # |b_tot - 1| of every gain: the pooled point and one replicate per shared window draw
    distance = {g: [np.abs(v - 1.0) for v in paired_b_tot(weights, t)] for g, t in ordered.items()}
    point_star, at_star = distance[float(g_star)]
    margins = {
        g: (point - point_star, *percentile_interval(replicates - at_star))
        for g, (point, replicates) in distance.items()
        if g != float(g_star)
    }
    edge = float(g_star) in (gains[0], gains[-1])
    if not margins:  # a one-gain grid: nothing to beat
        return dict(
            zip(
                IDENTIFICATION_COLUMNS,
                [False, edge, np.nan, np.nan, np.nan, np.nan, 0, key],
                strict=True,
            )
        )
    not_excluded = [g for g, (_, low, _) in margins.items() if not (np.isfinite(low) and low > 0)]
    runner_up = min(margins, key=lambda g: (np.nan_to_num(margins[g][1], nan=-np.inf), g))
    point, low, high = margins[runner_up]
    return dict(
        zip(
            IDENTIFICATION_COLUMNS,
            [not not_excluded, edge, runner_up, point, low, high, len(not_excluded), key],
            strict=True,
        )
    )


def identification_by_curve(gstar: pd.DataFrame) -> dict[tuple[str, float], dict[str, object]]:
    """``{(spike def, target rate): {opt_gstar_identified: ..., ...}}`` from a g* table, for
    the T01 rows of that curve; empty for a table without the identification columns."""
    columns = [c for c in IDENTIFICATION_COLUMNS if c in gstar.columns and c.startswith("gstar_")]
    return {
        (row["spike_def_id"], float(row["target_rate"])): {f"opt_{c}": row[c] for c in columns}
        for _, row in gstar.iterrows()
    }
