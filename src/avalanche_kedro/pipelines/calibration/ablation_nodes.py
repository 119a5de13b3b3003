"""Calibration nodes of the ablation passes: thresholds and rasters of each ablation at g*.

With ``ablations.reuse_unchanged_layers`` (the default) an ablation that leaves the blocks below
``s`` untouched is computed from block ``s`` on, and its lower layers take the g = 1 thresholds
and rasters of the events pipeline (:mod:`avalanche_kedro.measure.ablation_passes`): the same
tables, bit for bit, for less work. ``false`` runs every ablation as a whole pass.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from ...core.errors import ConfigurationError
from ...measure.ablation_passes import fit_thresholds_reusing_g1, record_rasters_reusing_g1
from ...measure.checkpoints import LoadedModel, load_model
from ...measure.conditions import threshold_settings
from ...measure.gain import MLP_GLOBAL, layer_gains
from ...measure.moments import UnitMoments
from ...measure.raster_checks import check_rasters_match
from ...measure.rasters import EventRasters
from ...measure.resume import check_resume_exact, reusable_blocks
from ...measure.sweep import NULL_NONE, GainSetting, tau_array
from ...measure.windows import slice_windows
from ...study.params import AblationsParams, CalibrationParams, RateMatchingParams, RuntimeParams
from ..events.nodes import (
    finish_rasters,
    fit_rate_matched_thresholds,
    record_event_rasters,
    remove_rasters,
    scratch_raster_writer,
    verified_threshold_table,
)

logger = logging.getLogger(__name__)


def _resume_starts(
    loaded: LoadedModel, settings: list[GainSetting], probe: np.ndarray
) -> tuple[list[int], bool]:
    """The block each setting resumes at, and whether blocks return tuples. A setting resumes
    only where :func:`check_resume_exact` reproduces a full pass bit for bit on ``probe``
    windows; otherwise (an architecture whose blocks do not simply chain) every setting that
    needs a forward runs whole, and a warning says so."""
    n_layers = loaded.n_layers
    starts = [reusable_blocks(s.intervention_id, s.g, n_layers) for s in settings]
    batch = torch.as_tensor(probe, dtype=torch.long, device=loaded.device)
    tuple_output = False
    for setting, start in zip(settings, starts, strict=True):
        if 0 < start < n_layers:
            gains = layer_gains(setting.intervention_id, setting.g, n_layers)
            check = check_resume_exact(loaded, batch, gains, start)
            tuple_output = check["tuple_output"]
            if not check["exact"]:
                logger.warning(
                    "Resuming %s at block %d does not reproduce a full pass (%s); every "
                    "ablation runs whole passes.",
                    setting,
                    start,
                    check["reason"],
                )
                return [n_layers if s == n_layers else 0 for s in starts], tuple_output
    return starts, tuple_output


def fit_ablation_thresholds(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    rate_targets: pd.DataFrame,
    conditions_ablation: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
    rate_matching: RateMatchingParams,
    ablations: AblationsParams,
) -> pd.DataFrame:
    """Rate-matched thresholds of every ablation at g*, verified (SPEC §4); the layers an
    ablation leaves at g = 1 take ``threshold_fit``'s MLP_GLOBAL g = 1 rows."""
    if not AblationsParams.coerce(ablations).reuse_unchanged_layers:
        return fit_rate_matched_thresholds(
            model_manifest,
            windows,
            unit_moments,
            rate_targets,
            None,  # no baseline seeds: the first ablation's top-k seeds itself from a sample
            conditions_ablation,
            runtime,
            calibration,
            rate_matching,
        )
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, _ = slice_windows(windows, "calibration")
    settings = threshold_settings(conditions_ablation)
    starts, tuple_output = _resume_starts(loaded, settings, ids[: runtime.batch_size])
    table, stats, work = fit_thresholds_reusing_g1(
        loaded,
        ids,
        UnitMoments.from_frame(unit_moments),
        calibration.eps,
        rate_targets,
        settings,
        tuple(calibration.spike_defs),
        calibration.rates_for(loaded.d_ff),
        runtime.batch_size,
        threshold_fit,
        starts,
        tuple_output,
        progress=runtime.progress,
    )
    _log_work("ablation thresholds", work)
    return verified_threshold_table(table, model_manifest, rate_matching, stats)


def _log_work(what: str, work: dict) -> None:
    logger.info(
        "%s: %d of %d window-blocks computed (%.0f %%; the rest reused from g = 1)",
        what,
        work["block_passes"],
        work["block_passes_full"],
        100.0 * work["block_passes"] / max(1, work["block_passes_full"]),
    )


def _g1_raster_rows(
    conditions_A: pd.DataFrame, event_rasters_A: EventRasters, spike_defs, target_rates
) -> np.ndarray:
    """``[S, R]`` rows of the MLP_GLOBAL g = 1 real conditions in ``event_rasters_A``."""
    g1 = conditions_A[
        (conditions_A["null_id"] == NULL_NONE)
        & (conditions_A["intervention_id"] == MLP_GLOBAL)
        & (conditions_A["g"] == 1.0)
    ].set_index(["spike_def_id", "target_rate"])["cond_id"]
    rows = np.empty((len(spike_defs), len(target_rates)), dtype=np.int64)
    for si, spike_def in enumerate(spike_defs):
        for ri, rate in enumerate(target_rates):
            rows[si, ri] = event_rasters_A.index_of(int(g1[(spike_def, float(rate))]))
    return rows


def record_ablation_rasters(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    ablation_threshold_fit: pd.DataFrame,
    conditions_ablation: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    event_rasters_A: EventRasters,
    conditions_A: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
    ablations: AblationsParams,
) -> tuple[EventRasters, pd.DataFrame, dict]:
    """Rasters of every ablation at g* on the analysis windows, the completed tau table and
    the run summary (:func:`~..events.nodes.record_event_rasters`'s outputs); layers an
    ablation leaves at g = 1 are copied from ``event_rasters_A``'s g = 1 rows."""
    check_rasters_match(
        event_rasters_A, conditions_A, raster_name="event_rasters_A", conditions_name="conditions_A"
    )
    if not AblationsParams.coerce(ablations).reuse_unchanged_layers:
        rasters, tau_table, summary = record_event_rasters(
            model_manifest,
            windows,
            unit_moments,
            ablation_threshold_fit,
            conditions_ablation,
            runtime,
            calibration,
        )
        full = int(summary["forward_passes"]) * int(summary["n_layers"])
        summary["window_blocks_computed"] = summary["window_blocks_full_passes"] = full
        return rasters, tau_table, summary
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    if set(conditions_ablation["null_id"]) - {NULL_NONE}:
        raise ConfigurationError(
            "The ablation conditions contain a null; reusing the g = 1 rasters covers real "
            "inputs only.",
            "Set ablations.reuse_unchanged_layers: false.",
        )
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, seq_ids = slice_windows(windows, "analysis")
    if not np.array_equal(np.asarray(event_rasters_A.seq_id), seq_ids):
        raise ConfigurationError(
            "event_rasters_A were recorded on other analysis windows than the current windows "
            "table, so their g = 1 counts cannot stand in for the ablations' lower layers.",
            "Re-run the events pipeline on the current windows (kedro run --pipelines "
            "events,calibration), or set ablations.reuse_unchanged_layers: false.",
        )
    spike_defs = tuple(calibration.spike_defs)
    target_rates = calibration.rates_for(loaded.d_ff)
    row_of = {int(c): i for i, c in enumerate(conditions_ablation["cond_id"].to_numpy())}
    blocks = []
    for (intervention, g), part in conditions_ablation.groupby(
        ["intervention_id", "g"], sort=False
    ):
        lookup = part.set_index(["spike_def_id", "target_rate"])["cond_id"]
        rows = np.array(
            [[row_of[int(lookup[(s, float(r))])] for r in target_rates] for s in spike_defs],
            dtype=np.int64,
        )
        blocks.append((GainSetting(intervention, float(g)), rows))
    starts, tuple_output = _resume_starts(
        loaded, [setting for setting, _ in blocks], ids[: runtime.batch_size]
    )
    writer = scratch_raster_writer(
        runtime, conditions_ablation, seq_ids, loaded.n_layers, ids.shape[1], loaded.d_ff
    )
    try:
        stats, work = record_rasters_reusing_g1(
            loaded,
            ids,
            UnitMoments.from_frame(unit_moments),
            calibration.eps,
            ablation_threshold_fit,
            tau_array(
                threshold_fit,
                GainSetting(MLP_GLOBAL, 1.0),
                spike_defs,
                target_rates,
                loaded.n_layers,
            ),
            blocks,
            starts,
            spike_defs,
            target_rates,
            writer,
            event_rasters_A,
            _g1_raster_rows(conditions_A, event_rasters_A, spike_defs, target_rates),
            runtime.batch_size,
            tuple_output,
            progress=runtime.progress,
        )
        rasters = writer.finalize()
    except BaseException:
        writer.abort()
        raise
    _log_work("ablation rasters", work)
    rasters_out, tau_table, summary = finish_rasters(
        model_manifest,
        ablation_threshold_fit,
        conditions_ablation,
        rasters,
        loaded.d_ff,
        stats.windows,
        stats.tokens,
        stats.seconds,
        lambda: remove_rasters(rasters),
    )
    summary["window_blocks_computed"] = int(work["block_passes"])
    summary["window_blocks_full_passes"] = int(work["block_passes_full"])
    return rasters_out, tau_table, summary
