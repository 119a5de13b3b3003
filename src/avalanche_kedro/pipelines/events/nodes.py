"""Nodes of the events pipeline: rate-matched thresholds and event rasters (SPEC §4-5, §7).

For every (intervention, g) the thresholds are re-fitted on the calibration slice so each
layer's event rate stays at its target (the key control against rate confounds); the analysis
slice is then thresholded with them, and the token-shuffled input (a null that keeps every
token but destroys their order) is thresholded with the same real thresholds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.paths import project_path
from ...measure.checkpoints import load_model
from ...measure.conditions import plan_conditions, threshold_settings
from ...measure.forward import PassStats, token_progress
from ...measure.gain import MLP_GLOBAL
from ...measure.moments import UnitMoments
from ...measure.rasters import (
    EventRasters,
    RasterWriter,
    is_scratch,
    new_scratch_directory,
    remove_scratch,
)
from ...measure.sweep import (
    NULL_NONE,
    NULL_TOKEN_SHUFFLE_INPUT,
    GainSetting,
    fit_thresholds,
    record_rasters,
    tau_array,
)
from ...measure.thresholds import verify_rate_matching
from ...measure.windows import shuffle_window_tokens, slice_windows
from ...study.params import (
    CalibrationParams,
    EventsParams,
    GainGrid,
    RateMatchingParams,
    RuntimeParams,
)

logger = logging.getLogger(__name__)

TAU_KEYS = ["intervention_id", "g", "spike_def_id", "target_rate"]


def plan_event_conditions(
    model_manifest: dict,
    instrumentation_report: dict,
    gain_grid: GainGrid,
    events: EventsParams,
    calibration: CalibrationParams,
) -> pd.DataFrame:
    """The condition table of dataset A: real conditions and the token-shuffle null, at the
    target rates resolved for this model's d_ff (its ``target_rate`` column records them)."""
    events = EventsParams.coerce(events)
    calibration = CalibrationParams.coerce(calibration)
    return plan_conditions(
        model_role=model_manifest["model_role"],
        dataset_role="A",
        gain_grid=GainGrid.coerce(gain_grid).gains(),
        interventions=dict(events.interventions),
        token_shuffle_gains=events.token_shuffle_gains,
        spike_defs=tuple(calibration.spike_defs),
        target_rates=calibration.rates_for(int(instrumentation_report["d_ff"])),
    )


def fit_rate_matched_thresholds(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    rate_targets: pd.DataFrame,
    baseline_rates: pd.DataFrame | None,
    conditions: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
    rate_matching: RateMatchingParams,
) -> pd.DataFrame:
    """Order-statistic tau per (intervention, g, spike def, target, layer), verified (SPEC §4).

    ``baseline_rates`` (the g = 1 counts above tau0 on the same calibration windows; None:
    none) only seeds the first fit's top-k, which decides how many values the hooks keep,
    never a tau."""
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, _ = slice_windows(windows, "calibration")
    moments = UnitMoments.from_frame(unit_moments)
    spike_defs = tuple(calibration.spike_defs)
    table, stats = fit_thresholds(
        loaded,
        ids,
        moments.standardizer(loaded.device, calibration.eps),
        rate_targets,
        threshold_settings(conditions),
        spike_defs,
        calibration.rates_for(loaded.d_ff),
        runtime.batch_size,
        progress=runtime.progress,
        baseline=baseline_rates,
    )
    return verified_threshold_table(table, model_manifest, rate_matching, stats)


def verified_threshold_table(
    table: pd.DataFrame,
    model_manifest: dict,
    rate_matching: RateMatchingParams,
    stats: PassStats,
) -> pd.DataFrame:
    """The fitted thresholds with their role, tolerance and error columns, verified (SPEC §4:
    ``|achieved - r*| <= max(rel_tol * r*, 1/n)`` on the calibration slice, else a hard fail)."""
    table.insert(0, "model_role", model_manifest["model_role"])
    rel_tol = RateMatchingParams.coerce(rate_matching).rel_tol
    table["rate_match_tol"] = np.maximum(rel_tol * table["r_star"], 1.0 / table["n_values"])
    table["rate_match_abs_err"] = (table["achieved_rate_calibration"] - table["r_star"]).abs()
    verify_rate_matching(table, rel_tol, model_manifest["model_role"])
    logger.info(
        "Rate matching verified for %d cells (%d window passes, %.1f s)",
        len(table),
        stats.windows,
        stats.seconds,
    )
    return table


def gain_blocks(conditions: pd.DataFrame, n_blocks: int) -> list[list[tuple]]:
    """The (null_id, intervention, g) pass groups of ``conditions`` cut into ``n_blocks`` blocks.

    Groups keep the condition table's order and each block is a contiguous run of them (sizes
    differ by at most one), so block k always holds the same gains for the same config. A block
    past the number of groups is empty.
    """
    if int(n_blocks) < 1:
        raise ValueError(f"events.gain_blocks must be a positive integer, got {n_blocks!r}")
    keys = list(conditions.groupby(["null_id", "intervention_id", "g"], sort=False).groups)
    bounds = np.array_split(np.arange(len(keys)), int(n_blocks))
    return [[keys[i] for i in part] for part in bounds]


def record_analysis_rasters(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    conditions: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
    description: str,
) -> tuple[EventRasters, PassStats, int]:
    """Rasters of the analysis slice for the conditions given (one pass per window per group)."""
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, seq_ids = slice_windows(windows, "analysis")
    moments = UnitMoments.from_frame(unit_moments)
    standardizer = moments.standardizer(loaded.device, calibration.eps)
    spike_defs = tuple(calibration.spike_defs)
    target_rates = calibration.rates_for(loaded.d_ff)
    batch_size = runtime.batch_size
    progress = runtime.progress

    writer = scratch_raster_writer(
        runtime, conditions, seq_ids, loaded.n_layers, ids.shape[1], loaded.d_ff
    )
    # raster row of each cond_id (the row order is the condition table's, also for a block)
    row_of = {int(c): i for i, c in enumerate(conditions["cond_id"].to_numpy())}
    shuffled = None
    stats = PassStats()
    groups = conditions.groupby(["null_id", "intervention_id", "g"], sort=False)
    bar = token_progress(groups.ngroups * ids.size, description, progress)
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
                    rows[si, ri] = row_of[int(lookup[(spike_def, rate)])]
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
        return writer.finalize(), stats, loaded.d_ff
    except BaseException:
        bar.close()
        writer.abort()
        raise


def scratch_raster_writer(
    runtime: RuntimeParams,
    conditions: pd.DataFrame,
    seq_ids,
    n_layers: int,
    seq_len: int,
    d_ff: int,
) -> RasterWriter:
    """A raster writer in a new scratch directory, one row per condition of ``conditions``
    (in table order) and one window per ``seq_ids`` entry, counting units of layers ``d_ff``
    wide (recorded in raster.json as the bound of every count)."""
    return RasterWriter(
        _scratch_directory(runtime),
        conditions["cond_id"].to_numpy(),
        seq_ids,
        n_layers,
        seq_len,
        d_ff,
    )


def _scratch_directory(runtime: RuntimeParams, label: str = "") -> Path:
    """A new scratch directory of this process under ``runtime.scratch_dir``
    (:func:`~avalanche_kedro.measure.rasters.new_scratch_directory`)."""
    return new_scratch_directory(project_path(RuntimeParams.coerce(runtime).scratch_dir), label)


def finish_rasters(
    model_manifest: dict,
    threshold_fit: pd.DataFrame,
    conditions: pd.DataFrame,
    rasters: EventRasters,
    d_ff: int,
    forward_passes: int,
    tokens: int,
    seconds: float,
    abort,
) -> tuple[EventRasters, pd.DataFrame, dict]:
    """The tau table completed with analysis-slice rates, and the run summary."""
    try:
        tau_table = _with_analysis_rates(threshold_fit, conditions, rasters, d_ff)
        occupancy = [float(rasters.X[c].mean()) for c in range(rasters.n_conditions)]
    except BaseException:
        abort()  # the finished rasters are not saved: remove them from the scratch
        raise
    summary = {
        "model_role": model_manifest["model_role"],
        "n_conditions": int(len(conditions)),
        "n_windows": int(rasters.A.shape[1]),
        "seq_len": int(rasters.A.shape[3]),
        "n_layers": int(rasters.A.shape[2]),
        "d_ff": int(d_ff),
        "forward_passes": int(forward_passes),
        "tokens_forwarded": int(tokens),
        "seconds": float(seconds),
        "occupancy_mean": float(np.mean(occupancy)),
    }
    return rasters, tau_table, summary


def record_event_rasters(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    conditions: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
) -> tuple[EventRasters, pd.DataFrame, dict]:
    """Rasters of the analysis slice for every condition, plus the completed tau table.

    One forward pass per window per (input, intervention, g): each pass counts events for all
    spike definitions and target rates at once. The tau table gains the achieved rate on the
    analysis slice (reported, not gated: SPEC §4).
    """
    rasters, stats, d_ff = record_analysis_rasters(
        model_manifest,
        windows,
        unit_moments,
        threshold_fit,
        conditions,
        runtime,
        calibration,
        "event rasters (analysis slice)",
    )
    return finish_rasters(
        model_manifest,
        threshold_fit,
        conditions,
        rasters,
        d_ff,
        stats.windows,
        stats.tokens,
        stats.seconds,
        lambda: remove_rasters(rasters),
    )


def record_event_raster_block(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    conditions: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
    *,
    block: int,
    n_blocks: int,
) -> tuple[EventRasters, dict]:
    """Rasters of gain block ``block`` of ``n_blocks`` (:func:`gain_blocks`) and its pass stats.

    Blocks are independent (each condition's raster depends only on its own thresholds and
    passes), so they can run on different workers; :func:`merge_event_raster_blocks` puts them
    back together into exactly the raster :func:`record_event_rasters` writes.
    """
    keys = gain_blocks(conditions, n_blocks)[block]
    if not keys:
        raise ValueError(
            f"Gain block {block} of {n_blocks} is empty: there are fewer (input, intervention, g) "
            "pass groups than blocks. Lower events.gain_blocks."
        )
    selected = set(keys)
    mask = [
        (row.null_id, row.intervention_id, row.g) in selected
        for row in conditions.itertuples(index=False)
    ]
    rasters, stats, d_ff = record_analysis_rasters(
        model_manifest,
        windows,
        unit_moments,
        threshold_fit,
        conditions[mask],
        runtime,
        calibration,
        f"event rasters (analysis slice, gain block {block + 1}/{n_blocks})",
    )
    return rasters, {
        "block": block,
        "d_ff": d_ff,
        "forward_passes": stats.windows,
        "tokens_forwarded": stats.tokens,
        "seconds": stats.seconds,
    }


def merge_event_raster_blocks(
    model_manifest: dict,
    threshold_fit: pd.DataFrame,
    conditions: pd.DataFrame,
    runtime: RuntimeParams,
    *blocks: EventRasters | dict,
) -> tuple[EventRasters, pd.DataFrame, dict]:
    """One raster set in condition-table order from the gain blocks' rasters (given as
    ``rasters_0, stats_0, rasters_1, stats_1, ...``), plus the tau table and the summary."""
    parts, stats = list(blocks[0::2]), list(blocks[1::2])
    order = conditions["cond_id"].to_numpy()
    found = np.concatenate([part.cond_id for part in parts])
    if sorted(found.tolist()) != sorted(order.tolist()):
        raise ValueError(
            f"The gain blocks cover cond_ids {sorted(found.tolist())}, the condition table "
            f"{sorted(order.tolist())}: re-run the events pipeline so every block is recomputed."
        )
    first = parts[0]
    writer = RasterWriter(
        _scratch_directory(runtime),
        order,
        first.seq_id,
        first.A.shape[2],
        first.A.shape[3],
        stats[0]["d_ff"],
    )
    try:
        owner = {int(c): part for part in parts for c in part.cond_id}
        for row, cond_id in enumerate(order):
            writer.write(row, 0, np.asarray(owner[int(cond_id)].counts(int(cond_id))))
        rasters = writer.finalize()
    except BaseException:
        writer.abort()
        raise
    return finish_rasters(
        model_manifest,
        threshold_fit,
        conditions,
        rasters,
        stats[0]["d_ff"],
        sum(s["forward_passes"] for s in stats),
        sum(s["tokens_forwarded"] for s in stats),
        sum(s["seconds"] for s in stats),
        lambda: remove_rasters(rasters),
    )


def remove_rasters(rasters: EventRasters) -> None:
    """Remove the scratch directory of rasters that are not saved; a directory that is not
    this process's scratch (a saved version the rasters were loaded from) is left alone."""
    if is_scratch(rasters.directory):
        remove_scratch(rasters.directory)


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
