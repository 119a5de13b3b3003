"""Paired shifts of b_tot under each ablation at g* against MLP_GLOBAL at g = 1 (T06).

Every ablation raster and the dataset A raster at g = 1 hold the same analysis windows, so the
shift of an intervention, ``shift = b_tot(intervention, g*) - b_tot(MLP_GLOBAL, g = 1)``, gets a
paired CI: each bootstrap replicate draws one resample of the windows and applies it to both
rasters (``b_tot_b = W_b·(n_time + n_depth) / W_b·den``). Whether the effect of g* *tracks* the
MLP gain or attention is decided on the same replicates: the margin
``|shift(MLP_GLOBAL)| - |shift(ATTN_GLOBAL)|`` with its CI (above 0: the MLP gain; below 0:
attention; containing 0: not resolved by these windows).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..analysis.bootstrap import (
    bootstrap_indices,
    paired_b_tot,
    percentile_interval,
    resample_weights,
)

MLP_GLOBAL = "MLP_GLOBAL"
ATTN_GLOBAL = "ATTN_GLOBAL"


def shift_key(spike_def_id: str, target_rate: float) -> str:
    """Bootstrap key of one (spike def, rate)'s ablation shifts (``seed_of("boot", key)``)."""
    return f"A|ablation|{spike_def_id}|{float(target_rate)!r}"


def paired_shifts(
    reference: pd.DataFrame,
    interventions: Mapping[str, pd.DataFrame],
    key: str,
    replicates: int,
) -> dict[str, dict[str, float]]:
    """``{intervention: {shift_vs_g1, shift_vs_g1_ci_low, shift_vs_g1_ci_high}}``, and on
    MLP_GLOBAL (when ATTN_GLOBAL is there too) ``tracks_margin`` with its CI.

    ``reference`` and every frame of ``interventions`` hold per-window counts (``seq_id``,
    ``n_time``, ``n_depth``, ``den``) of the same windows."""
    reference = reference.sort_values("seq_id")
    seq_ids = reference["seq_id"].tolist()
    ordered = {name: frame.sort_values("seq_id") for name, frame in interventions.items()}
    for name, frame in ordered.items():
        if frame["seq_id"].tolist() != seq_ids:
            raise ValueError(f"{name} was not measured on the windows of MLP_GLOBAL at g = 1")
    weights = resample_weights(bootstrap_indices(len(seq_ids), replicates, key), len(seq_ids))
    point_reference, at_reference = paired_b_tot(weights, reference)
    points, replicate_shifts = {}, {}
    for name, frame in ordered.items():
        point, replicates = paired_b_tot(weights, frame)
        points[name], replicate_shifts[name] = point - point_reference, replicates - at_reference
    out = {}
    for name, shifts in replicate_shifts.items():
        low, high = percentile_interval(shifts)
        out[name] = {
            "shift_vs_g1": points[name],
            "shift_vs_g1_ci_low": low,
            "shift_vs_g1_ci_high": high,
        }
    if MLP_GLOBAL in out and ATTN_GLOBAL in out:
        margins = np.abs(replicate_shifts[MLP_GLOBAL]) - np.abs(replicate_shifts[ATTN_GLOBAL])
        low, high = percentile_interval(margins)
        out[MLP_GLOBAL].update(
            tracks_margin=abs(out[MLP_GLOBAL]["shift_vs_g1"])
            - abs(out[ATTN_GLOBAL]["shift_vs_g1"]),
            tracks_margin_ci_low=low,
            tracks_margin_ci_high=high,
        )
    return out
