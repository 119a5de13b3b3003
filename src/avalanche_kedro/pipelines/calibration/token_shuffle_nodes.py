"""Calibration node for the token-shuffle null at each g* (SPEC §7), recorded once g* is known.

The events pipeline records the token-shuffled input at ``events.token_shuffle_gains``
(g = 1 by default); falsifier (b) also needs it at every g*, which only exists after
:func:`~avalanche_kedro.pipelines.calibration.nodes.select_gstar`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...evaluation import comparison
from ...measure.conditions import plan_conditions
from ...measure.gain import MLP_GLOBAL
from ...measure.sweep import NULL_NONE, NULL_TOKEN_SHUFFLE_INPUT
from ...study.params import CalibrationParams, ControlsParams, RuntimeParams
from ..events.nodes import record_analysis_rasters, remove_rasters


def record_gstar_token_shuffle(
    model_manifest: dict,
    instrumentation_report: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    threshold_fit: pd.DataFrame,
    conditions_A: pd.DataFrame,
    gstar_A: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
    controls: ControlsParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The token-shuffle null (SPEC §7) at each g* the events pipeline did not record.

    g* is chosen from the real rasters alone, so the null is needed only at g = 1 (recorded by
    the events pipeline, ``events.token_shuffle_gains``) and at each g*: recording it at every
    grid gain would double the raster passes. Same thresholds (the real MLP_GLOBAL ones of that
    gain), same shuffled windows and same condition keys as the events pipeline would use, so
    the numbers are those a grid-wide recording gives. Returns the new conditions (cond_id
    after those of ``conditions_A``) and their per-window branching counts; the rasters
    themselves are not kept.
    """
    recorded = conditions_A.loc[conditions_A["null_id"] == NULL_TOKEN_SHUFFLE_INPUT, "g"]
    wanted = sorted({float(g) for g in gstar_A["g_star"]} - {float(g) for g in recorded})
    if not ControlsParams.coerce(controls).token_shuffle_at_gstar:
        wanted = []
    calibration = CalibrationParams.coerce(calibration)
    spike_defs = tuple(calibration.spike_defs)
    rates = calibration.rates_for(int(instrumentation_report["d_ff"]))
    plan = plan_conditions(
        model_manifest["model_role"],
        "A",
        sorted({*(float(g) for g in conditions_A["g"]), *wanted}),
        {MLP_GLOBAL: wanted},
        wanted,
        spike_defs,
        rates,
        require_mlp_global=False,
    )
    shuffled = plan[plan["null_id"] == NULL_TOKEN_SHUFFLE_INPUT].reset_index(drop=True)
    shuffled["cond_id"] = np.arange(len(shuffled), dtype=np.int32) + (
        int(conditions_A["cond_id"].max()) + 1
    )
    if shuffled.empty:
        counts = pd.DataFrame(
            {"cond_id": pd.Series(dtype=np.int32), "seq_id": pd.Series(dtype=np.int32)}
        )
        for column in ("n_time", "n_depth", "den", "events"):
            counts[column] = pd.Series(dtype=np.int64)
        return shuffled, counts
    rasters, _, _ = record_analysis_rasters(
        model_manifest,
        windows,
        unit_moments,
        threshold_fit,
        shuffled,
        runtime,
        calibration,
        "token-shuffle null at g*",
    )
    try:
        return shuffled, comparison.window_counts(rasters, shuffled)
    finally:
        remove_rasters(rasters)


def compare_token_shuffle_at_gstar(
    conditions_A: pd.DataFrame,
    conditions_tokshuf_A: pd.DataFrame,
    branching_per_window_A: pd.DataFrame,
    branching_per_window_tokshuf_A: pd.DataFrame,
    null_branching_per_window_A: pd.DataFrame,
    marginal_checks_A: pd.DataFrame,
    gstar_A: pd.DataFrame,
    controls: ControlsParams,
) -> pd.DataFrame:
    """``controls_summary_A`` rows of the real MLP_GLOBAL condition of each (spike def, rate) at its
    own g*, recomputed
    with the token-shuffle null recorded there (same bootstrap indices, so the permutation and
    shift columns equal those of ``controls_summary_A``). The paper tables take these rows in
    place of the ones without the token-shuffle null."""
    own_gstar = gstar_A[["spike_def_id", "target_rate", "g_star"]].rename(columns={"g_star": "g"})
    real = conditions_A[
        (conditions_A["null_id"] == NULL_NONE) & (conditions_A["intervention_id"] == MLP_GLOBAL)
    ].merge(own_gstar, on=["spike_def_id", "target_rate", "g"])  # each (spike def, rate) at its g*
    # every token-shuffle condition (g = 1 from the events pipeline, the others recorded here),
    # so a g* equal to 1 finds its null too
    shuffled = conditions_A[conditions_A["null_id"] == NULL_TOKEN_SHUFFLE_INPUT]
    return comparison.compare_with_nulls(
        pd.concat([real, shuffled, conditions_tokshuf_A], ignore_index=True),
        pd.concat([branching_per_window_A, branching_per_window_tokshuf_A], ignore_index=True),
        null_branching_per_window_A,
        marginal_checks_A,
        ControlsParams.coerce(controls).bootstrap_replicates,
    )
