"""Nodes of the events pipeline: rate-matched thresholds and event rasters (SPEC §4-5, §7).

For every (intervention, g) the thresholds are re-fitted on the calibration slice so each
layer's event rate stays at its target (the key control against rate confounds); the analysis
slice is then thresholded with them, and the token-shuffled input (a null that keeps every
token but destroys their order) is thresholded with the same real thresholds.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ...checkpoints import load_model
from ...conditions import plan_conditions, threshold_settings
from ...forward import PassStats, token_progress
from ...gain import MLP_GLOBAL
from ...moments import DEFAULT_EPS, UnitMoments
from ...paths import project_path
from ...rasters import EventRasters, RasterWriter
from ...sweep import (
    NULL_NONE,
    NULL_TOKEN_SHUFFLE_INPUT,
    GainSetting,
    fit_thresholds,
    record_rasters,
    tau_array,
)
from ...thresholds import RATE_MATCH_REL_TOL, check_spike_defs, verify_rate_matching
from ...windows import shuffle_window_tokens, slice_windows

logger = logging.getLogger(__name__)

TAU_KEYS = ["intervention_id", "g", "spike_def_id", "target_rate"]


def plan_event_conditions(
    model_manifest: dict, gain_grid: list, events: dict, calibration: dict
) -> pd.DataFrame:
    """The condition table of dataset A: real conditions and the token-shuffle null."""
    return plan_conditions(
        model_role=model_manifest["model_role"],
        dataset_role="A",
        gain_grid=gain_grid,
        interventions=events["interventions"],
        token_shuffle_gains=events.get("token_shuffle_gains", [1.0]),
        spike_defs=check_spike_defs(calibration["spike_defs"]),
        target_rates=[float(r) for r in calibration["target_rates"]],
    )


def fit_rate_matched_thresholds(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    rate_targets: pd.DataFrame,
    conditions: pd.DataFrame,
    runtime: dict,
    calibration: dict,
    rate_matching: dict,
) -> pd.DataFrame:
    """Order-statistic tau per (intervention, g, spike def, target, layer), verified (SPEC §4)."""
    loaded = load_model(model_manifest, runtime)
    ids, _ = slice_windows(windows, "calibration")
    moments = UnitMoments.from_frame(unit_moments)
    spike_defs = check_spike_defs(calibration["spike_defs"])
    table, stats = fit_thresholds(
        loaded,
        ids,
        moments.standardizer(loaded.device, float(calibration.get("eps", DEFAULT_EPS))),
        rate_targets,
        threshold_settings(conditions),
        spike_defs,
        [float(r) for r in calibration["target_rates"]],
        int(runtime["batch_size"]),
        progress=bool(runtime.get("progress", False)),
    )
    table.insert(0, "model_role", model_manifest["model_role"])
    rel_tol = float(rate_matching.get("rel_tol", RATE_MATCH_REL_TOL))
    table["rate_match_tol"] = np.maximum(rel_tol * table["r_star"], 1.0 / table["n_values"])
    table["rate_match_abs_err"] = (table["achieved_rate_calibration"] - table["r_star"]).abs()
    verify_rate_matching(table, rel_tol, model_manifest["model_role"])
    logger.info(
        "Rate matching verified for %d cells (%d forward passes, %.1f s)",
        len(table),
        stats.windows,
        stats.seconds,
    )
    return table


def record_event_rasters(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    conditions: pd.DataFrame,
    runtime: dict,
    calibration: dict,
) -> tuple[EventRasters, pd.DataFrame, dict]:
    """Rasters of the analysis slice for every condition, plus the completed tau table.

    One forward pass per window per (input, intervention, g): each pass counts events for all
    spike definitions and target rates at once. The tau table gains the achieved rate on the
    analysis slice (reported, not gated: SPEC §4).
    """
    loaded = load_model(model_manifest, runtime)
    ids, seq_ids = slice_windows(windows, "analysis")
    moments = UnitMoments.from_frame(unit_moments)
    standardizer = moments.standardizer(loaded.device, float(calibration.get("eps", DEFAULT_EPS)))
    spike_defs = check_spike_defs(calibration["spike_defs"])
    target_rates = [float(r) for r in calibration["target_rates"]]
    batch_size = int(runtime["batch_size"])
    progress = bool(runtime.get("progress", False))

    scratch = project_path(runtime.get("scratch_dir", "data/02_intermediate/scratch"))
    scratch.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="rasters-", dir=scratch))
    writer = RasterWriter(
        directory, conditions["cond_id"].to_numpy(), seq_ids, loaded.n_layers, ids.shape[1]
    )
    shuffled = None
    stats = PassStats()
    groups = conditions.groupby(["null_id", "intervention_id", "g"], sort=False)
    bar = token_progress(groups.ngroups * ids.size, "event rasters (analysis slice)", progress)
    try:
        for (null_id, intervention, g), block in groups:
            setting = GainSetting(intervention, float(g))
            if null_id == NULL_TOKEN_SHUFFLE_INPUT:
                if shuffled is None:
                    shuffled = shuffle_window_tokens(
                        ids, seq_ids, "A", model_manifest.get("tokenizer_special_ids", [])
                    )
                inputs, tau_setting = shuffled, GainSetting(MLP_GLOBAL, float(g))
            else:
                inputs, tau_setting = ids, setting
            rows = np.empty((len(spike_defs), len(target_rates)), dtype=np.int64)
            lookup = block.set_index(["spike_def_id", "target_rate"])["cond_id"]
            for si, spike_def in enumerate(spike_defs):
                for ri, rate in enumerate(target_rates):
                    rows[si, ri] = int(lookup[(spike_def, rate)])
            stats.add(
                record_rasters(
                    loaded,
                    inputs,
                    standardizer,
                    tau_array(
                        threshold_fit, tau_setting, spike_defs, target_rates, loaded.n_layers
                    ),
                    rows,
                    spike_defs,
                    setting,
                    writer,
                    batch_size,
                    progress=bar,
                    description=f"{null_id} {intervention} g={g}",
                )
            )
        bar.close()
        rasters = writer.finalize()
    except BaseException:
        bar.close()
        writer.abort()
        raise

    try:
        tau_table = _with_analysis_rates(threshold_fit, conditions, rasters, loaded.d_ff)
        occupancy = [float(rasters.X[c].mean()) for c in range(rasters.n_conditions)]
    except BaseException:
        writer.abort()  # the finished rasters are not saved: remove them from the scratch
        raise
    summary = {
        "model_role": model_manifest["model_role"],
        "n_conditions": int(len(conditions)),
        "n_windows": int(ids.shape[0]),
        "seq_len": int(ids.shape[1]),
        "n_layers": loaded.n_layers,
        "d_ff": loaded.d_ff,
        "forward_passes": stats.windows,
        "tokens_forwarded": stats.tokens,
        "seconds": stats.seconds,
        "occupancy_mean": float(np.mean(occupancy)),
    }
    return rasters, tau_table, summary


def _with_analysis_rates(
    threshold_fit: pd.DataFrame, conditions: pd.DataFrame, rasters: EventRasters, d_ff: int
) -> pd.DataFrame:
    """Add ``achieved_rate_analysis`` = events / (N T d_ff) per layer from the real rasters."""
    n_windows, seq_len = rasters.A.shape[1], rasters.A.shape[3]
    rows = []
    real = conditions[conditions["null_id"] == NULL_NONE]
    for row in real.itertuples():
        per_layer = rasters.counts(row.cond_id).sum(axis=(0, 2), dtype=np.int64)
        for layer, events in enumerate(per_layer):
            rows.append(
                {
                    "intervention_id": row.intervention_id,
                    "g": float(row.g),
                    "spike_def_id": row.spike_def_id,
                    "target_rate": float(row.target_rate),
                    "layer": layer,
                    "n_exceed_analysis": int(events),
                    "n_values_analysis": int(n_windows * seq_len * d_ff),
                    "achieved_rate_analysis": events / (n_windows * seq_len * d_ff),
                }
            )
    analysis = pd.DataFrame(rows)
    return threshold_fit.merge(analysis, on=[*TAU_KEYS, "layer"], how="left", validate="1:1")
