"""Nodes of the calibration pipeline: g*, dataset B, ARC multiple choice, ablations (SPEC §8).

g* is chosen on dataset A from branching alone and frozen in ``gstar_A``; everything after it
(dataset B, ARC, ablations) reads that artifact and runs each distinct gain once: g = 1 and
every g* value.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from ...core.errors import ConfigurationError
from ...core.paths import project_path
from ...evaluation import comparison
from ...evaluation.ablation_shifts import paired_shifts, shift_key
from ...evaluation.gstar import gstar_identification, gstar_table, identification_key
from ...evaluation.perplexity import perplexity_difference_vs_gain, perplexity_summary, window_nll
from ...measure.checkpoints import load_model
from ...measure.conditions import plan_conditions, resolve_gains
from ...measure.forward import PassStats, token_progress
from ...measure.gain import ATTN_GLOBAL, MLP_GLOBAL
from ...measure.moments import UnitMoments
from ...measure.raster_checks import check_rasters_match
from ...measure.rasters import EventRasters, RasterWriter, new_scratch_directory, remove_scratch
from ...measure.sweep import NULL_NONE, GainSetting, record_rasters, tau_array
from ...measure.windows import slice_windows
from ...study.params import (
    AblationsParams,
    CalibrationParams,
    GainGrid,
    GeneralizationParams,
    GstarParams,
    RuntimeParams,
)

logger = logging.getLogger(__name__)

G1, GSTAR = "g1", "gstar"
#: The perplexity bootstrap resamples B windows with one key at every gain (paired g1 vs g*).
LM_BOOTSTRAP_KEY = "B|LM"


def _real_mlp(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["null_id"] == NULL_NONE) & (table["intervention_id"] == MLP_GLOBAL)]


def distinct_gains(gstar_A: pd.DataFrame) -> list[float]:
    """g = 1 and every g* value, ascending: each is run once whatever (spike def, rate) uses it."""
    return sorted({1.0, *(float(g) for g in gstar_A["g_star"])})


def select_gstar(
    cascade_summary_A: pd.DataFrame,
    conditions_A: pd.DataFrame,
    branching_per_window_A: pd.DataFrame,
    gstar: GstarParams,
) -> pd.DataFrame:
    """g* per (spike def, target rate): argmin |b_tot - 1| on dataset A (MLP_GLOBAL, real),
    and whether it is identified (:func:`gstar_identification`: g* beats every other gain by
    a paired bootstrap margin over the same windows).

    Reads branching only; no task metric can influence the choice.
    """
    gstar = GstarParams.coerce(gstar)
    rows = _real_mlp(cascade_summary_A[cascade_summary_A["dataset_role"] == "A"])
    table = gstar_table(rows, gstar.tie_tolerance)
    table.insert(0, "model_role", cascade_summary_A["model_role"].iloc[0])
    table["selection_rule"] = "argmin |b_tot - 1|; ties: closest to 1, then smaller gain"
    curves = _real_mlp(conditions_A[conditions_A["dataset_role"] == "A"])
    windows = branching_per_window_A.groupby("cond_id")
    identified = []
    for row in table.itertuples():
        curve = curves[
            (curves["spike_def_id"] == row.spike_def_id)
            & (curves["target_rate"] == row.target_rate)
        ]
        by_gain = {float(c.g): windows.get_group(c.cond_id) for c in curve.itertuples()}
        key = identification_key(row.spike_def_id, row.target_rate)
        identified.append(
            gstar_identification(by_gain, row.g_star, key, gstar.bootstrap_replicates)
        )
        logger.info(
            "g* = %s for %s at %s (b_tot %.4f, %s)",
            row.g_star,
            row.spike_def_id,
            row.target_rate,
            row.b_tot_at_gstar,
            "identified" if identified[-1]["gstar_identified"] else "not identified",
        )
    return pd.concat([table, pd.DataFrame(identified, index=table.index)], axis=1)


def plan_followup_conditions(
    model_manifest: dict,
    instrumentation_report: dict,
    gstar_A: pd.DataFrame,
    gain_grid: GainGrid,
    calibration: CalibrationParams,
    generalization: GeneralizationParams,
    ablations: AblationsParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Conditions of dataset B (g = 1, every g* and ``generalization.perplexity_gains``) and of
    the ablations (each g*), at the target rates resolved for this model's d_ff."""
    gain_grid = GainGrid.coerce(gain_grid).gains()
    calibration = CalibrationParams.coerce(calibration)
    generalization = GeneralizationParams.coerce(generalization)
    extra = resolve_gains(
        generalization.perplexity_gains, gain_grid, "generalization.perplexity_gains"
    )
    gains = sorted({*distinct_gains(gstar_A), *extra})
    spike_defs = tuple(calibration.spike_defs)
    rates = calibration.rates_for(int(instrumentation_report["d_ff"]))
    role = model_manifest["model_role"]
    conditions_B = plan_conditions(role, "B", gain_grid, {MLP_GLOBAL: gains}, [], spike_defs, rates)
    interventions = list(AblationsParams.coerce(ablations).interventions)
    if MLP_GLOBAL in interventions:
        raise ConfigurationError(
            "ablations.interventions lists MLP_GLOBAL, which the gain sweep already measures.",
            "List only ATTN_GLOBAL and the MLP_BAND_* interventions.",
        )
    gstars = sorted({float(g) for g in gstar_A["g_star"]})
    conditions_ablation = plan_conditions(
        role,
        "A",
        gain_grid,
        {intervention: gstars for intervention in interventions},
        [],
        spike_defs,
        rates,
        require_mlp_global=False,
    )
    return conditions_B, conditions_ablation


def record_dataset_B(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    tau_table: pd.DataFrame,
    conditions_B: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
) -> tuple[EventRasters, pd.DataFrame, pd.DataFrame]:
    """Rasters of dataset B with the dataset A thresholds, and the windows' NLL, in one pass
    per distinct gain (the LM head runs in the same pass as the event counting).

    Returns the rasters, the per-window NLL table and the achieved rates on B per layer.
    """
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, seq_ids = slice_windows(windows, "eval_b")
    moments = UnitMoments.from_frame(unit_moments)
    standardizer = moments.standardizer(loaded.device, calibration.eps)
    spike_defs = tuple(calibration.spike_defs)
    rates = calibration.rates_for(loaded.d_ff)
    writer = RasterWriter(
        new_scratch_directory(project_path(runtime.scratch_dir), "B"),
        conditions_B["cond_id"].to_numpy(),
        seq_ids,
        loaded.n_layers,
        ids.shape[1],
        loaded.d_ff,
    )
    losses = []
    gains = sorted(conditions_B["g"].unique())
    bar = token_progress(len(gains) * ids.size, "dataset B (rasters + NLL)", runtime.progress)
    stats = PassStats()
    try:
        for g in gains:
            block = conditions_B[conditions_B["g"] == g].set_index(["spike_def_id", "target_rate"])
            rows = np.array(
                [[int(block.loc[(s, r), "cond_id"]) for r in rates] for s in spike_defs]
            )
            taus = tau_array(
                tau_table, GainSetting(MLP_GLOBAL, float(g)), spike_defs, rates, loaded.n_layers
            )

            def on_logits(start, stop, logits, g=g):
                batch = torch.as_tensor(ids[start:stop], dtype=torch.long, device=logits.device)
                nll, n_tokens = window_nll(logits, batch)
                for offset in range(stop - start):
                    losses.append(
                        {
                            "g": float(g),
                            "seq_id": int(seq_ids[start + offset]),
                            "nll_sum": nll[offset],
                            "n_tokens": int(n_tokens[offset]),
                        }
                    )

            stats.add(
                record_rasters(
                    loaded,
                    ids,
                    standardizer,
                    taus,
                    rows,
                    spike_defs,
                    GainSetting(MLP_GLOBAL, float(g)),
                    writer,
                    runtime.batch_size,
                    progress=bar,
                    description=f"B g={g}",
                    on_logits=on_logits,
                )
            )
        bar.close()
        rasters = writer.finalize()
    except BaseException:
        bar.close()
        writer.abort()
        raise
    try:
        achieved = _achieved_rates(rasters, conditions_B, tau_table, loaded.d_ff)
        nll = pd.DataFrame(losses)
    except BaseException:
        remove_scratch(writer.directory)  # the finished rasters are not saved
        raise
    logger.info("Dataset B: %d forward passes (%.1f s)", stats.windows, stats.seconds)
    return rasters, nll, achieved


def _achieved_rates(
    rasters: EventRasters, conditions: pd.DataFrame, tau_table: pd.DataFrame, d_ff: int
) -> pd.DataFrame:
    """Events per layer / (N T d_ff) of every condition, next to the layer's r*."""
    n_values = rasters.A.shape[1] * rasters.A.shape[3] * d_ff
    targets = tau_table.drop_duplicates(["spike_def_id", "target_rate", "layer"]).set_index(
        ["spike_def_id", "target_rate", "layer"]
    )["r_star"]
    rows = []
    for row in conditions.itertuples():
        per_layer = np.asarray(rasters.counts(row.cond_id)).sum(axis=(0, 2), dtype=np.int64)
        for layer, events in enumerate(per_layer):
            rows.append(
                {
                    "cond_id": row.cond_id,
                    "layer": layer,
                    "n_exceed": int(events),
                    "n_values": int(n_values),
                    "achieved_rate": events / n_values,
                    "r_star": float(targets[(row.spike_def_id, row.target_rate, layer)]),
                }
            )
    return pd.DataFrame(rows)


def _rate_errors(achieved: pd.DataFrame) -> pd.DataFrame:
    error = (achieved["achieved_rate"] - achieved["r_star"]).abs()
    return (
        achieved.assign(abs_err=error)
        .groupby("cond_id")
        .agg(
            achieved_rate_mean=("achieved_rate", "mean"),
            achieved_rate_max_abs_err=("abs_err", "max"),
        )
    )


def _compare(
    rasters: EventRasters, conditions: pd.DataFrame, replicates: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real-vs-null comparison of ``conditions`` and their per-window counts (read once:
    the paired g* comparisons reuse them)."""
    windows = comparison.window_counts(rasters, conditions)
    nulls, checks = comparison.null_window_counts(rasters, conditions)
    return comparison.compare_with_nulls(conditions, windows, nulls, checks, replicates), windows


def _gain_rows(gstar_A: pd.DataFrame):
    """(spike def, rate, g_condition, g) for g = 1 and g* of every (spike def, rate)."""
    for row in gstar_A.itertuples():
        yield row.spike_def_id, float(row.target_rate), G1, 1.0
        yield row.spike_def_id, float(row.target_rate), GSTAR, float(row.g_star)


def analyze_dataset_B(
    conditions_B: pd.DataFrame,
    event_rasters_B: EventRasters,
    lm_loss_B: pd.DataFrame,
    achieved_rates_B: pd.DataFrame,
    gstar_A: pd.DataFrame,
    generalization: GeneralizationParams,
) -> pd.DataFrame:
    """Dataset B at g = 1 and g*: branching, delta_b vs both raster nulls, chi, NLL and ppl.

    One row per (spike def, target rate, g_condition); when g* = 1 both rows hold the same
    measurement (the gain was run once).
    """
    replicates = GeneralizationParams.coerce(generalization).bootstrap_replicates
    # every (spike def, rate) needs only g = 1 and its own g* (the extra gains are for the
    # perplexity curve): only those conditions get nulls and bootstrap CIs
    wanted = pd.DataFrame(
        [(s, r, g) for s, r, _, g in _gain_rows(gstar_A)],
        columns=["spike_def_id", "target_rate", "g"],
    ).drop_duplicates()
    needed = conditions_B.merge(wanted, on=["spike_def_id", "target_rate", "g"])
    check_rasters_match(
        event_rasters_B, conditions_B, raster_name="event_rasters_B", conditions_name="conditions_B"
    )
    compared, b_windows = _compare(event_rasters_B, needed, replicates)
    b_windows = b_windows.groupby("cond_id")
    compared = compared.set_index(["spike_def_id", "target_rate", "g"])
    errors = _rate_errors(achieved_rates_B)
    quality = {
        g: perplexity_summary(part["nll_sum"], part["n_tokens"], LM_BOOTSTRAP_KEY, replicates)
        for g, part in lm_loss_B.sort_values(["g", "seq_id"]).groupby("g")
    }
    rows = []
    for spike_def, rate, g_condition, g in _gain_rows(gstar_A):
        measured = compared.loc[(spike_def, rate, g)]
        rows.append(
            {
                "model_role": measured["model_role"],
                "dataset_role": "B",
                "spike_def_id": spike_def,
                "target_rate": rate,
                "g_condition": g_condition,
                "g": g,
                **{k: measured[k] for k in _B_COLUMNS},
                **quality[g],
                # g* against g = 1 on the same windows (falsifier (c)); NaN on the g = 1 rows
                **_vs_g1(
                    perplexity_difference_vs_gain(lm_loss_B, g, 1.0, LM_BOOTSTRAP_KEY, replicates),
                    g_condition == GSTAR,
                ),
                **errors.loc[int(measured["cond_id"])].to_dict(),
                **_nearer_on_b(b_windows, compared, spike_def, rate, g, g_condition, replicates),
            }
        )
    return pd.DataFrame(rows)


def _nearer_on_b(b_windows, compared, spike_def, rate, g, g_condition, replicates) -> dict:
    """``b_nearer_margin_vs_g1`` = |b_tot(1) - 1| - |b_tot(g*) - 1| on B's windows (> 0: g*
    nearer 1) with a paired CI (:func:`gstar_identification` over the two gains); NaN on the
    g = 1 rows and when g* = 1."""
    names = [
        "b_nearer_margin_vs_g1",
        "b_nearer_margin_vs_g1_ci_low",
        "b_nearer_margin_vs_g1_ci_high",
    ]
    if g_condition != GSTAR or g == 1.0:
        return dict.fromkeys(names, np.nan)
    cond = {gain: int(compared.loc[(spike_def, rate, gain), "cond_id"]) for gain in (1.0, g)}
    paired = gstar_identification(
        {gain: b_windows.get_group(c) for gain, c in cond.items()},
        g,
        f"B|nearer|{spike_def}|{float(rate)!r}",
        replicates,
    )
    values = ["gstar_margin", "gstar_margin_ci_low", "gstar_margin_ci_high"]
    return {name: paired[value] for name, value in zip(names, values, strict=True)}


def _vs_g1(paired: dict, keep: bool = True) -> dict:
    """A paired difference from g = 1 as ``<stat>_diff_vs_g1`` columns; NaN unless ``keep``."""
    return {k.replace("_diff", "_diff_vs_g1"): v if keep else np.nan for k, v in paired.items()}


def summarize_perplexity_curve(
    lm_loss_B: pd.DataFrame, generalization: GeneralizationParams
) -> pd.DataFrame:
    """Dataset B perplexity at every gain B was run at (g = 1, each g*, the extra gains).

    Windows are resampled with one key at every gain, so the CIs of two gains are paired;
    ``ppl_diff_vs_g1`` is each gain's paired difference from g = 1 with its CI.
    """
    replicates = GeneralizationParams.coerce(generalization).bootstrap_replicates
    rows = [
        {
            "g": float(g),
            "n_sequences": int(len(part)),
            "n_tokens": int(part["n_tokens"].sum()),
            **perplexity_summary(part["nll_sum"], part["n_tokens"], LM_BOOTSTRAP_KEY, replicates),
            **_vs_g1(
                perplexity_difference_vs_gain(lm_loss_B, g, 1.0, LM_BOOTSTRAP_KEY, replicates)
            ),
        }
        for g, part in lm_loss_B.sort_values(["g", "seq_id"]).groupby("g")
    ]
    return pd.DataFrame(rows)


_B_COLUMNS = [
    "cond_id",
    "condition_key",
    "n_sequences",
    "b_time",
    "b_depth",
    "b_tot",
    "b_tot_ci_low",
    "b_tot_ci_high",
    "delta_b_tot",
    "delta_b_tot_ci_low",
    "delta_b_tot_ci_high",
    "b_tot_perm",
    "delta_b_tot_shift",
    "delta_b_tot_shift_ci_low",
    "delta_b_tot_shift_ci_high",
    "chi",
    "chi_ci_low",
    "chi_ci_high",
    "marginals_preserved_perm",
    "marginals_preserved_shift",
]


def analyze_ablations(
    conditions_ablation: pd.DataFrame,
    event_rasters_ablation: EventRasters,
    ablation_tau_table: pd.DataFrame,
    controls_summary_A: pd.DataFrame,
    tau_table: pd.DataFrame,
    gstar_A: pd.DataFrame,
    conditions_A: pd.DataFrame,
    branching_per_window_A: pd.DataFrame,
    ablations: AblationsParams,
) -> pd.DataFrame:
    """MLP_GLOBAL at g = 1 and g* next to every ablation at g*, per (spike def, target rate).

    Each ablation had its own rate matching; ``achieved_rate_max_abs_err`` is the largest
    |achieved - r*| over layers on the analysis slice. The g* rows carry the paired shift from
    MLP_GLOBAL at g = 1 on the same windows (:func:`paired_shifts`; ``tracks_margin`` on the
    MLP_GLOBAL row decides whether the effect tracks the MLP gain or attention).
    """
    ablations = AblationsParams.coerce(ablations)
    replicates = ablations.bootstrap_replicates
    # A pass at one g* records every (spike def, rate); each of them needs only its own g*, so
    # only those conditions get nulls and bootstrap CIs (the others are never reported).
    own_gstar = gstar_A[["spike_def_id", "target_rate", "g_star"]].rename(columns={"g_star": "g"})
    needed = conditions_ablation.merge(own_gstar, on=["spike_def_id", "target_rate", "g"])
    names = {"raster_name": "event_rasters_ablation", "conditions_name": "conditions_ablation"}
    check_rasters_match(event_rasters_ablation, conditions_ablation, **names)
    compared, ablation_windows = _compare(event_rasters_ablation, needed, replicates)
    keys = ["intervention_id", "spike_def_id", "target_rate", "g"]
    measured = pd.concat([_real_mlp(controls_summary_A), compared], ignore_index=True).set_index(
        keys
    )
    # per-window counts of every condition the shifts compare: A's MLP_GLOBAL conditions and
    # the ablations, keyed like `measured`
    a_conditions = _real_mlp(conditions_A).set_index(["spike_def_id", "target_rate", "g"])
    a_windows = branching_per_window_A.groupby("cond_id")
    ablation_windows = ablation_windows.groupby("cond_id")
    windows = {
        (MLP_GLOBAL, *k): a_windows.get_group(int(c)) for k, c in a_conditions["cond_id"].items()
    }
    windows |= {
        (r.intervention_id, r.spike_def_id, float(r.target_rate), float(r.g)): (
            ablation_windows.get_group(int(r.cond_id))
        )
        for r in needed.itertuples()
    }
    taus = pd.concat([tau_table, ablation_tau_table], ignore_index=True)
    taus = taus.assign(abs_err=(taus["achieved_rate_analysis"] - taus["r_star"]).abs())
    rate_error = taus.groupby(keys)["abs_err"].max()
    rows = []
    for g_row in gstar_A.itertuples():
        spike_def, rate, g_star = g_row.spike_def_id, float(g_row.target_rate), float(g_row.g_star)
        plan = [(MLP_GLOBAL, G1, 1.0), (MLP_GLOBAL, GSTAR, g_star)]
        plan += [(i, GSTAR, g_star) for i in ablations.interventions]
        shifts = paired_shifts(
            windows[(MLP_GLOBAL, spike_def, rate, 1.0)],
            {i: windows[(i, spike_def, rate, g)] for i, c, g in plan if c == GSTAR},
            shift_key(spike_def, rate),
            replicates,
        )
        for intervention, g_condition, g in plan:
            key = (intervention, spike_def, rate, g)
            row = measured.loc[key]
            rows.append(
                {
                    "model_role": row["model_role"],
                    "spike_def_id": spike_def,
                    "target_rate": rate,
                    "g_condition": g_condition,
                    "g": g,
                    "intervention_id": intervention,
                    "gain_target": "ATTN" if intervention == ATTN_GLOBAL else "MLP",
                    "b_tot": row["b_tot"],
                    "b_tot_ci_low": row["b_tot_ci_low"],
                    "b_tot_ci_high": row["b_tot_ci_high"],
                    "delta_b_tot": row["delta_b_tot"],
                    "delta_b_tot_ci_low": row["delta_b_tot_ci_low"],
                    "delta_b_tot_ci_high": row["delta_b_tot_ci_high"],
                    "chi": row["chi"],
                    "chi_ci_low": row["chi_ci_low"],
                    "chi_ci_high": row["chi_ci_high"],
                    "achieved_rate_max_abs_err": float(rate_error.loc[key]),
                    "n_sequences": int(row["n_sequences"]),
                    **(shifts[intervention] if g_condition == GSTAR else {}),
                }
            )
    return pd.DataFrame(rows)
