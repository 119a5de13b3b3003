"""Paper tables T01-T07 (SPEC §10), built from the pipelines' saved outputs (T08, trained roles
against the untrained control, is built by :mod:`avalanche_kedro.study.control`).

Every table starts with the provenance columns ``run_id, stage_id, model_id, model_role,
dataset_role, config_hash, code_version``, then the SPEC's required columns in order, then
extras prefixed ``opt_``; rows sorted by their keys (same inputs, byte-identical files).
Inputs are per-role mappings ``{role: DataFrame}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.lattice import ADJ_4N, ADJ_8N
from ..evaluation.gstar import identification_by_curve
from ..measure.gain import MLP_GLOBAL
from ..measure.sweep import NULL_NONE

PROVENANCE_COLUMNS = [
    "run_id",
    "stage_id",
    "model_id",
    "model_role",
    "dataset_role",
    "config_hash",
    "code_version",
]

T01_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g",
    "tau0_baseline",
    "rate_match_tol",
    "achieved_rate_mean",
    "achieved_rate_max_abs_err",
    "b_time",
    "b_depth",
    "b_tot",
    "b_time_perm",
    "b_depth_perm",
    "b_tot_perm",
    "delta_b_time",
    "delta_b_depth",
    "delta_b_tot",
    "chi",
    "crackling_gamma",
    "crackling_ci_low",
    "crackling_ci_high",
    "n_sequences",
    "n_avalanches",
    "avalanche_size_mean",
    "avalanche_size_median",
    "avalanche_span_tokens_mean",
    "avalanche_span_layers_mean",
]
T02_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g_condition",
    "g",
    "b_time",
    "b_depth",
    "b_tot",
    "delta_b_tot",
    "chi",
    "n_sequences",
    "ppl",
    "nll_mean",
]
T03_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g_condition",
    "g",
    "n_questions",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "mean_logprob_correct_minus_incorrect",
]
T04_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g",
    "xmin",
    "n_tail",
    "alpha_powerlaw",
    "lambda_exponential",
    "lognorm_mu",
    "lognorm_sigma",
    "ll_powerlaw",
    "ll_exponential",
    "ll_lognormal",
    "llr_powerlaw_vs_lognormal",
    "llr_powerlaw_vs_exponential",
]
T05_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g",
    "crackling_gamma",
    "crackling_ci_low",
    "crackling_ci_high",
    "crackling_ci_width",
    "n_duration_points",
    "n_avalanches_used",
    "r2",
    "pass",
]
T06_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "g_condition",
    "g",
    "intervention_id",
    "gain_target",
    "b_tot",
    "delta_b_tot",
    "chi",
    "achieved_rate_max_abs_err",
    "n_sequences",
]
T07_COLUMNS = [
    "spike_def_id",
    "target_rate",
    "reference_role",
    "compared_role",
    "reference_model_id",
    "compared_model_id",
    "g_star_reference",
    "g_star_compared",
    "delta_b_tot_reference",
    "delta_b_tot_compared",
    "diff_delta_b_tot",
    "diff_delta_b_tot_ci_low",
    "diff_delta_b_tot_ci_high",
    "chi_reference",
    "chi_compared",
    "diff_chi",
    "diff_chi_ci_low",
    "diff_chi_ci_high",
]

TABLE_IDS = {
    "T01": "T01_SUMMARY",
    "T02": "T02_GENERALIZATION",
    "T03": "T03_ARC",
    "T04": "T04_TAIL_FITS",
    "T05": "T05_CRACKLING_DIAGNOSTICS",
    "T06": "T06_ABLATIONS",
    "T07": "T07_REPLICATION_SUMMARY",
    "T08": "T08_TRAINED_VS_UNTRAINED",  # columns and builder in :mod:`.control`
    "T09": "T09_TRAINING_TRAJECTORY",  # columns and builder in :mod:`.trajectory`
    "T10": "T10_LENS",  # T10 and T11: columns, builders and schemas in :mod:`.lens`
    "T11": "T11_COLLAPSE_VS_CASCADE",
}


def _finish(
    table: pd.DataFrame,
    required: Sequence[str],
    extras: Mapping[str, str],
    provenance: Mapping[str, Any],
    stage_id: str,
    keys: Sequence[str],
) -> pd.DataFrame:
    """Provenance columns first, then the required ones, then ``opt_`` extras; sorted rows."""
    table = table.rename(columns=dict(extras))
    for column in ("run_id", "config_hash", "code_version"):
        table[column] = provenance[column]
    table["stage_id"] = stage_id
    optional = sorted(c for c in table.columns if c.startswith("opt_"))
    ordered = table[[*PROVENANCE_COLUMNS, *required, *optional]]
    return ordered.sort_values(list(keys), kind="stable").reset_index(drop=True)


def _model_ids(model_manifests: Mapping[str, dict]) -> dict[str, str]:
    return {role: manifest["model_id"] for role, manifest in model_manifests.items()}


def _real_mlp_a(table: pd.DataFrame) -> pd.DataFrame:
    keep = (table["null_id"] == NULL_NONE) & (table["intervention_id"] == MLP_GLOBAL)
    if "dataset_role" in table:
        keep &= table["dataset_role"] == "A"
    return table[keep]


def _rate_matching(tau_table: pd.DataFrame) -> pd.DataFrame:
    """Per (spike def, rate, g) of MLP_GLOBAL: calibration and analysis achieved rates."""
    taus = tau_table[tau_table["intervention_id"] == MLP_GLOBAL].assign(
        err_cal=lambda t: (t["achieved_rate_calibration"] - t["r_star"]).abs(),
        err_ana=lambda t: (t["achieved_rate_analysis"] - t["r_star"]).abs(),
    )
    return taus.groupby(["spike_def_id", "target_rate", "g"]).agg(
        achieved_rate_mean=("achieved_rate_calibration", "mean"),
        achieved_rate_max_abs_err=("err_cal", "max"),
        opt_achieved_rate_analysis_mean=("achieved_rate_analysis", "mean"),
        opt_achieved_rate_analysis_max_abs_err=("err_ana", "max"),
        opt_rate_match_tol_abs_max=("rate_match_tol", "max"),
    )


def build_t01(
    provenance: Mapping[str, Any],
    calibration: Mapping[str, Any],
    rate_matching: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    controls_summary: Mapping[str, pd.DataFrame],
    cascade_summary: Mapping[str, pd.DataFrame],
    crackling_fits: Mapping[str, pd.DataFrame],
    tau_tables: Mapping[str, pd.DataFrame],
    gstar: Mapping[str, pd.DataFrame],
    controls_summary_gstar: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """T01_SUMMARY: dataset A, one row per (role, spike def, target rate, g).

    ``controls_summary_gstar`` (rows of the real conditions at each g* that also carry the
    token-shuffle null recorded there) replaces the ``controls_summary`` rows of those cond_ids
    that have no token-shuffle null of their own (g = 1 keeps the events pipeline's).
    """
    parts = []
    for role, manifest in model_manifests.items():
        controls = _real_mlp_a(controls_summary[role])
        if controls_summary_gstar is not None:
            missing = controls.loc[controls["delta_b_tot_tokshuf"].isna(), "cond_id"]
            at_gstar = _real_mlp_a(controls_summary_gstar[role])[list(controls.columns)]
            at_gstar = at_gstar[at_gstar["cond_id"].isin(missing)]
            kept = controls[~controls["cond_id"].isin(at_gstar["cond_id"])]
            controls = pd.concat([kept, at_gstar], ignore_index=True).sort_values("cond_id")
        cascades = cascade_summary[role].set_index("cond_id")
        fits = crackling_fits[role].set_index(["cond_id", "adjacency"])
        rates = _rate_matching(tau_tables[role])
        g_star = gstar[role].set_index(["spike_def_id", "target_rate"])["g_star"]
        identified = identification_by_curve(gstar[role])  # of the curve, on each of its rows
        for row in controls.itertuples():
            cascade = cascades.loc[row.cond_id]
            fit = fits.loc[(row.cond_id, ADJ_4N)]
            fit_8n = (
                fits.loc[(row.cond_id, ADJ_8N)] if (row.cond_id, ADJ_8N) in fits.index else None
            )
            record = {
                "model_id": manifest["model_id"],
                "model_role": role,
                "dataset_role": "A",
                "spike_def_id": row.spike_def_id,
                "target_rate": float(row.target_rate),
                "g": float(row.g),
                "tau0_baseline": float(calibration["tau0"]),
                "rate_match_tol": float(rate_matching.get("rel_tol", 0.05)),
                **rates.loc[(row.spike_def_id, row.target_rate, row.g)].to_dict(),
                "crackling_gamma": fit["crackling_gamma"],
                "crackling_ci_low": fit["crackling_ci_low"],
                "crackling_ci_high": fit["crackling_ci_high"],
                "n_sequences": int(row.n_sequences),
                "n_avalanches": int(cascade["n_avalanches"]),
                "avalanche_size_mean": cascade["avalanche_size_mean"],
                "avalanche_size_median": cascade["avalanche_size_median"],
                "avalanche_span_tokens_mean": cascade["avalanche_span_tokens_mean"],
                "avalanche_span_layers_mean": cascade["avalanche_span_layers_mean"],
                "opt_cond_id": int(row.cond_id),
                "opt_condition_key": row.condition_key,
                "opt_is_gstar": bool(
                    float(row.g) == float(g_star.loc[(row.spike_def_id, row.target_rate)])
                ),
                **identified.get((row.spike_def_id, float(row.target_rate)), {}),
                "opt_branching_empty": bool(row.branching_empty),
                "opt_crackling_pass": bool(fit["pass"]),
                "opt_crackling_reason": fit["reason"],
                "opt_bootstrap_replicates": int(row.bootstrap_replicates),
                "opt_marginals_preserved_perm": bool(row.marginals_preserved_perm),
                "opt_marginals_preserved_shift": bool(row.marginals_preserved_shift),
            }
            values = row._asdict()
            for metric in ("b_time", "b_depth", "b_tot"):
                record[metric] = values[metric]
                record[f"{metric}_perm"] = values[f"{metric}_perm"]
                record[f"delta_{metric}"] = values[f"delta_{metric}"]
                for bound in ("ci_low", "ci_high"):
                    record[f"opt_{metric}_{bound}"] = values[f"{metric}_{bound}"]
                    record[f"opt_delta_{metric}_{bound}"] = values[f"delta_{metric}_{bound}"]
                    record[f"opt_delta_{metric}_shift_{bound}"] = values[
                        f"delta_{metric}_shift_{bound}"
                    ]
                    record[f"opt_delta_{metric}_tokshuf_{bound}"] = values[
                        f"delta_{metric}_tokshuf_{bound}"
                    ]
                record[f"opt_{metric}_shift"] = values[f"{metric}_shift"]
                record[f"opt_delta_{metric}_shift"] = values[f"delta_{metric}_shift"]
                record[f"opt_{metric}_tokshuf"] = values[f"{metric}_tokshuf"]
                record[f"opt_delta_{metric}_tokshuf"] = values[f"delta_{metric}_tokshuf"]
            record.update(chi=row.chi, opt_chi_ci_low=row.chi_ci_low)
            record["opt_chi_ci_high"] = row.chi_ci_high
            for column in (
                "n_avalanches",
                "avalanche_size_mean",
                "avalanche_size_median",
                "avalanche_span_tokens_mean",
                "avalanche_span_layers_mean",
            ):
                if f"{column}_8n" in cascade:
                    record[f"opt_{column}_8n"] = cascade[f"{column}_8n"]
            if fit_8n is not None:
                record["opt_crackling_gamma_8n"] = fit_8n["crackling_gamma"]
                record["opt_crackling_pass_8n"] = bool(fit_8n["pass"])
            parts.append(record)
    table = pd.DataFrame(parts)
    table["opt_n_avalanches_8n"] = table["opt_n_avalanches_8n"].astype("int64")
    return _finish(
        table,
        T01_COLUMNS,
        {},
        provenance,
        TABLE_IDS["T01"],
        ["model_role", "spike_def_id", "target_rate", "g"],
    )


def _stack_roles(
    model_manifests: Mapping[str, dict],
    per_role: Mapping[str, pd.DataFrame],
    dataset_role: str,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Every role's frame with its model_id, model_role and dataset_role, stacked in role order
    (``extra[role]`` adds constant columns per role)."""
    parts = []
    for role, manifest in model_manifests.items():
        frame = per_role[role].copy()
        frame["model_id"] = manifest["model_id"]
        frame["model_role"] = role
        frame["dataset_role"] = dataset_role
        for column, value in ((extra or {}).get(role) or {}).items():
            frame[column] = value
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _opt_extras(table: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """Every column outside the SPEC columns and provenance, renamed ``opt_<column>``."""
    return {
        column: f"opt_{column}"
        for column in table.columns
        if column not in columns
        and column not in PROVENANCE_COLUMNS
        and not column.startswith("opt_")
    }


def build_t02(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    generalization: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """T02_GENERALIZATION: dataset B at g1 and g* per (role, spike def, target rate)."""
    table = _stack_roles(model_manifests, generalization, "B")
    return _finish(
        table,
        T02_COLUMNS,
        _opt_extras(table, T02_COLUMNS),
        provenance,
        TABLE_IDS["T02"],
        ["model_role", "spike_def_id", "target_rate", "g_condition"],
    )


def build_t03(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    arc_summary: Mapping[str, pd.DataFrame],
    arc_manifests: Mapping[str, dict],
) -> pd.DataFrame:
    """T03_ARC: accuracy at g1 and g* per (role, spike def, target rate)."""
    prompt_hashes = {
        role: {"opt_prompt_sha256": arc_manifests[role]["prompt_sha256"]} for role in arc_manifests
    }
    table = _stack_roles(model_manifests, arc_summary, "ARC_MCQ", prompt_hashes)
    return _finish(
        table,
        T03_COLUMNS,
        _opt_extras(table, T03_COLUMNS),
        provenance,
        TABLE_IDS["T03"],
        ["model_role", "spike_def_id", "target_rate", "g_condition"],
    )


def _per_t01_row(
    model_manifests: Mapping[str, dict],
    conditions: Mapping[str, pd.DataFrame],
    per_condition: Mapping[str, pd.DataFrame],
    adjacency: str = ADJ_4N,
) -> pd.DataFrame:
    """Join a per-condition table to the T01 keys (real MLP_GLOBAL conditions of dataset A)."""
    parts = []
    for role, manifest in model_manifests.items():
        keys = _real_mlp_a(conditions[role])[["cond_id", "spike_def_id", "target_rate", "g"]]
        values = per_condition[role]
        values = values[values["adjacency"] == adjacency].drop(columns="adjacency")
        frame = keys.merge(values, on="cond_id", how="left", validate="1:1")
        frame["model_id"] = manifest["model_id"]
        frame["model_role"] = role
        frame["dataset_role"] = "A"
        frame = frame.rename(columns={"cond_id": "opt_cond_id"})
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def build_t04(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    conditions: Mapping[str, pd.DataFrame],
    tail_fits: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """T04_TAIL_FITS: one row per T01 row (primary adjacency)."""
    table = _per_t01_row(model_manifests, conditions, tail_fits)
    extras = {
        "available": "opt_available",
        "reason": "opt_reason",
        "p_powerlaw_vs_lognormal": "opt_p_powerlaw_vs_lognormal",
        "p_powerlaw_vs_exponential": "opt_p_powerlaw_vs_exponential",
    }
    table["available"] = table["available"].astype(bool)
    table["n_tail"] = table["n_tail"].astype("int64")
    return _finish(
        table,
        T04_COLUMNS,
        extras,
        provenance,
        TABLE_IDS["T04"],
        ["model_role", "spike_def_id", "target_rate", "g"],
    )


def build_t05(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    conditions: Mapping[str, pd.DataFrame],
    crackling_fits: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """T05_CRACKLING_DIAGNOSTICS: one row per T01 row (primary adjacency)."""
    table = _per_t01_row(model_manifests, conditions, crackling_fits)
    extras = {"reason": "opt_reason", "s3_available": "opt_s3_available"}
    return _finish(
        table,
        T05_COLUMNS,
        extras,
        provenance,
        TABLE_IDS["T05"],
        ["model_role", "spike_def_id", "target_rate", "g"],
    )


def build_t06(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    ablations: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """T06_ABLATIONS: MLP_GLOBAL at g1 and g*, every ablation at g*."""
    table = _stack_roles(model_manifests, ablations, "A")
    return _finish(
        table,
        T06_COLUMNS,
        _opt_extras(table, T06_COLUMNS),
        provenance,
        TABLE_IDS["T06"],
        ["model_role", "spike_def_id", "target_rate", "g_condition", "intervention_id"],
    )


def build_t07(provenance: Mapping[str, Any], replication: pd.DataFrame) -> pd.DataFrame:
    """T07_REPLICATION_SUMMARY: each role against the reference role at their own g*."""
    table = replication.copy()
    table["model_id"] = table["compared_model_id"]
    table["model_role"] = table["compared_role"]
    table["dataset_role"] = "A"
    extras = {"n_sequences": "opt_n_sequences", "bootstrap_replicates": "opt_bootstrap_replicates"}
    return _finish(
        table,
        T07_COLUMNS,
        extras,
        provenance,
        TABLE_IDS["T07"],
        ["compared_role", "spike_def_id", "target_rate"],
    )


def to_csv_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The same table for CSV: list/array cells as JSON-like text, floats kept in full."""
    frame = table.copy()
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            frame[column] = frame[column].map(
                lambda v: "[" + ", ".join(repr(float(x)) for x in v) + "]"
            )
    return frame
