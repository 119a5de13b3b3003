"""Cascades across training: an ordered checkpoint series and the table T09_TRAINING_TRAJECTORY.

The model roles of a run become a *training series* when ``trajectory.enabled`` is true: in
``model_roles`` order they are checkpoints of one training run, each carrying its training step
as data (``models.<role>.step``: an integer, or ``final`` for the last step of an embedded
training run). Steps must be unique and increasing, and every role shares the tokenizer, the
layer count and the windows (the replication pipeline's checks), so every statistic can be
compared step by step on the same windows.

T09 has one row per (step, spike definition, target rate, gain condition) - ``gstar`` (each
step at its own g*) and ``g1`` (every step at g = 1, the checkpoint as trained) - with:

- from T01 (dataset A, real MLP_GLOBAL): b_time, b_depth, b_tot with its CI, delta_b_tot
  against the within-layer permutation and circular-shift nulls with paired CIs, chi with CI,
  crackling gamma with its CI and gate, the held-out rate ratio
  ``heldout_rate_ratio = mean over layers of the analysis-slice rate / r*``;
- g* of the step; perplexity on dataset B (T02) and ARC accuracy (T03) with CIs;
- the paired differences ``step - step 0`` (``_vs_step0``) and ``step - previous step``
  (``_vs_previous``) of b_tot, delta_b_tot, chi and crackling gamma with 95 % percentile CIs
  over one shared set of window replicates per (spike definition, rate)
  (``seed_of("boot", "training_trajectory|A|<spike def>|<rate>")``, see
  :func:`.control.paired_differences`). Step 0's own differences are NaN (it is the
  reference), as are step 0's and the first step's ``_vs_previous`` where there is none.

A statistic *separates from step 0* at the first step whose ``_vs_step0`` CI excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.bootstrap import DEFAULT_REPLICATES
from ..analysis.scaling import CRACKLING_D_MAX, CRACKLING_D_MIN, CRACKLING_MIN_POINTS
from ..core.errors import ConfigurationError
from . import tables
from .control import STATS, paired_differences
from .replication import ReplicationError

#: ``models.<role>.step`` value naming the last step of an embedded training run.
FINAL_STEP = "final"
#: Bootstrap key prefix of the paired differences: ``training_trajectory|A|<spike def>|<rate>``.
BOOT_PREFIX = "training_trajectory|A"
#: The two references of the paired differences, as column suffixes.
REFERENCES = ("step0", "previous")
#: Gain conditions of T09 rows: T02/T03's labels.
G_CONDITIONS = ("g1", "gstar")
TABLE_ID = tables.TABLE_IDS["T09"]


def diff_columns(reference: str) -> list[str]:
    """``diff_<stat>_vs_<reference>`` with its CI bounds, for every statistic of T08."""
    columns = []
    for stat in STATS:
        columns += [
            f"diff_{stat}_vs_{reference}",
            f"diff_{stat}_vs_{reference}_ci_low",
            f"diff_{stat}_vs_{reference}_ci_high",
        ]
    return columns


T09_COLUMNS = [
    "step",
    "spike_def_id",
    "target_rate",
    "g_condition",
    "g",
    "g_star",
    "b_time",
    "b_depth",
    "b_tot",
    "b_tot_ci_low",
    "b_tot_ci_high",
    "delta_b_tot_perm",
    "delta_b_tot_perm_ci_low",
    "delta_b_tot_perm_ci_high",
    "delta_b_tot_shift",
    "delta_b_tot_shift_ci_low",
    "delta_b_tot_shift_ci_high",
    "chi",
    "chi_ci_low",
    "chi_ci_high",
    "crackling_gamma",
    "crackling_ci_low",
    "crackling_ci_high",
    "crackling_pass",
    "heldout_rate_ratio",
    "ppl_B",
    "ppl_B_ci_low",
    "ppl_B_ci_high",
    "arc_accuracy",
    "arc_accuracy_ci_low",
    "arc_accuracy_ci_high",
    "reference_step",
    "previous_step",
    *diff_columns("step0"),
    *diff_columns("previous"),
    "n_sequences",
    "bootstrap_replicates",
]


# --------------------------------------------------------------------------------------------
# The series


def _step_value(role: str, step: Any) -> int | str:
    """An integer step >= 0 or ``final``; anything else is a configuration error."""
    if isinstance(step, str) and step.strip().lower() == FINAL_STEP:
        return FINAL_STEP
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise ConfigurationError(
            f"models.{role}.step is {step!r}: a training series needs every role's training "
            "step as a non-negative integer (or 'final' for the last step of an embedded "
            "training run).",
            f"Set models.{role}.step, e.g. `step: 512` for the revision step512, or set "
            "trajectory.enabled: false to compare the roles without ordering them.",
        )
    return int(step)


def check_series(roles: Sequence[str], models: Mapping[str, Any]) -> dict[str, int | str]:
    """Validate the training series of ``model_roles`` from the configuration alone (before
    any model loads): every role has a step, the steps are unique and increase in role order,
    and ``final`` (the largest) can only be last. Returns ``{role: step}``."""
    if len(roles) < 2:
        raise ConfigurationError(
            f"trajectory.enabled needs at least two model roles (a series), got {list(roles)}.",
            "List the checkpoints of the series in model_roles, step 0 first.",
        )
    steps = {role: _step_value(role, (models.get(role) or {}).get("step")) for role in roles}
    order = [math.inf if step == FINAL_STEP else step for step in steps.values()]
    for i in range(1, len(roles)):
        if not order[i] > order[i - 1]:
            previous, current = roles[i - 1], roles[i]
            raise ConfigurationError(
                f"The training series is not ordered: models.{current}.step = "
                f"{steps[current]!r} does not come after models.{previous}.step = "
                f"{steps[previous]!r} (steps must be unique and increasing in model_roles "
                "order).",
                "List model_roles from the earliest checkpoint to the latest and give every "
                "role its own step.",
            )
    return steps


def resolved_steps(roles: Sequence[str], model_manifests: Mapping[str, dict]) -> dict[str, int]:
    """The training step of each role as its model manifest records it (``final`` resolved),
    checked again: unique and increasing in role order."""
    steps = {}
    for role in roles:
        step = model_manifests[role].get("training_step")
        if isinstance(step, str) and step.isdigit():
            step = int(step)
        if not isinstance(step, int | np.integer) or isinstance(step, bool):
            raise ReplicationError(
                f"{role}.model_manifest records no integer training step ({step!r}).",
                f"Set models.{role}.step to the checkpoint's training step and rerun the "
                "capture pipeline for that role.",
            )
        steps[role] = int(step)
    values = list(steps.values())
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise ReplicationError(
                f"Resolved training steps are not increasing: {roles[i - 1]} is at step "
                f"{values[i - 1]} and {roles[i]} at step {values[i]}.",
                "Order model_roles by training step and give each role a distinct step "
                "('final' resolves to the last step of the training run).",
            )
    return steps


# --------------------------------------------------------------------------------------------
# Paired differences along the series


def trajectory_pairs(roles: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(compared, reference, kind)``: every later step against step 0 and against the step
    before it (the first later step's previous step *is* step 0: both are listed)."""
    pairs = [(role, roles[0], "step0") for role in roles[1:]]
    pairs += [(roles[i], roles[i - 1], "previous") for i in range(1, len(roles))]
    return pairs


def trajectory_differences(
    roles: Sequence[str],
    steps: Mapping[str, int],
    model_ids: Mapping[str, str],
    gstar: Mapping[str, pd.DataFrame],
    conditions: Mapping[str, pd.DataFrame],
    window_counts: Mapping[str, pd.DataFrame],
    null_window_counts: Mapping[str, pd.DataFrame],
    avalanches: Mapping[str, pd.DataFrame],
    replicates: int = DEFAULT_REPLICATES,
    d_min: int = CRACKLING_D_MIN,
    d_max: int = CRACKLING_D_MAX,
    min_points: int = CRACKLING_MIN_POINTS,
) -> pd.DataFrame:
    """One row per (step role, spike def, target rate, gain condition) with the paired
    differences to step 0 and to the previous step (NaN where there is no such reference)."""
    pairs = trajectory_pairs(roles)
    rows = paired_differences(
        roles,
        [(compared, reference) for compared, reference, _ in pairs],
        gstar,
        conditions,
        window_counts,
        null_window_counts,
        avalanches,
        replicates,
        d_min,
        d_max,
        min_points,
        boot_prefix=BOOT_PREFIX,
        reference_label="reference",
    )
    # each group's rows come in pair order, and one (compared, reference) pair can be of both
    # kinds (the first step after step 0), so rows are matched to pairs by position
    records: dict[tuple, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        compared, reference, kind = pairs[i % len(pairs)]
        if (row["compared_role"], row["reference_role"]) != (compared, reference):
            raise ReplicationError(
                "Paired differences came back out of order.", "Report this as a bug."
            )
        for suffix, condition in (("", "gstar"), ("_g1", "g1")):
            key = (compared, row["spike_def_id"], row["target_rate"], condition)
            record = records.setdefault(
                key,
                {
                    "model_role": compared,
                    "step": steps[compared],
                    "spike_def_id": row["spike_def_id"],
                    "target_rate": row["target_rate"],
                    "g_condition": condition,
                    "n_sequences": row["n_sequences"],
                    "bootstrap_replicates": row["bootstrap_replicates"],
                },
            )
            for stat in STATS:
                for bound in ("", "_ci_low", "_ci_high"):
                    record[f"diff_{stat}_vs_{kind}{bound}"] = row[f"diff_{stat}{bound}{suffix}"]
            record[f"opt_crackling_reason_vs_{kind}"] = row[f"opt_crackling_reason{suffix}"]
    first = roles[0]
    for row in rows[:: len(pairs)]:  # one row per group: step 0 has no reference of either kind
        for condition in G_CONDITIONS:
            records.setdefault(
                (first, row["spike_def_id"], row["target_rate"], condition),
                {
                    "model_role": first,
                    "step": steps[first],
                    "spike_def_id": row["spike_def_id"],
                    "target_rate": row["target_rate"],
                    "g_condition": condition,
                    "n_sequences": row["n_sequences"],
                    "bootstrap_replicates": row["bootstrap_replicates"],
                },
            )
    table = pd.DataFrame(list(records.values()))
    for kind in REFERENCES:
        for column in diff_columns(kind):
            if column not in table:
                table[column] = np.nan
        reason = f"opt_crackling_reason_vs_{kind}"
        table[reason] = table[reason].fillna("") if reason in table else ""
    table["model_id"] = table["model_role"].map(model_ids)
    table["reference_step"] = steps[first]
    previous = {roles[i]: steps[roles[i - 1]] for i in range(1, len(roles))}
    table["previous_step"] = table["model_role"].map(previous).astype("float")
    return table


# --------------------------------------------------------------------------------------------
# The table


def _at_condition(frame: pd.DataFrame, role: str, spike: str, rate: float, condition: str):
    """T02/T03's row of (role, spike def, rate, g_condition), or None."""
    rows = frame[
        (frame["model_role"] == role)
        & (frame["spike_def_id"] == spike)
        & (frame["target_rate"] == rate)
        & (frame["g_condition"] == condition)
    ]
    return rows.iloc[0] if len(rows) else None


def build_t09(
    provenance: Mapping[str, Any],
    t01: pd.DataFrame,
    t02: pd.DataFrame,
    t03: pd.DataFrame,
    differences: pd.DataFrame,
) -> pd.DataFrame:
    """T09_TRAINING_TRAJECTORY from T01-T03 and the paired differences of the series."""
    records = []
    for _, diff in differences.iterrows():
        role, spike, rate = diff["model_role"], diff["spike_def_id"], float(diff["target_rate"])
        condition = diff["g_condition"]
        rows = t01[
            (t01["model_role"] == role)
            & (t01["spike_def_id"] == spike)
            & (t01["target_rate"] == rate)
        ]
        star = rows[rows["opt_is_gstar"].astype(bool)]
        summary = star if condition == "gstar" else rows[rows["g"].astype(float) == 1.0]
        if len(summary) != 1 or len(star) != 1:
            raise ReplicationError(
                f"T01 has {len(summary)} rows for {role}, {spike}, r = {rate:g} at "
                f"{condition} (expected one).",
                "Rebuild the tables of this run (kedro run --pipelines reporting); the gain "
                "grid must contain 1.0.",
            )
        s = summary.iloc[0]
        generalization = _at_condition(t02, role, spike, rate, condition)
        arc = _at_condition(t03, role, spike, rate, condition)
        record = {
            "model_id": s["model_id"],
            "model_role": role,
            "dataset_role": "A",
            "step": int(diff["step"]),
            "spike_def_id": spike,
            "target_rate": rate,
            "g_condition": condition,
            "g": float(s["g"]),
            "g_star": float(star.iloc[0]["g"]),
            "b_time": s["b_time"],
            "b_depth": s["b_depth"],
            "b_tot": s["b_tot"],
            "b_tot_ci_low": s["opt_b_tot_ci_low"],
            "b_tot_ci_high": s["opt_b_tot_ci_high"],
            "delta_b_tot_perm": s["delta_b_tot"],
            "delta_b_tot_perm_ci_low": s["opt_delta_b_tot_ci_low"],
            "delta_b_tot_perm_ci_high": s["opt_delta_b_tot_ci_high"],
            "delta_b_tot_shift": s["opt_delta_b_tot_shift"],
            "delta_b_tot_shift_ci_low": s["opt_delta_b_tot_shift_ci_low"],
            "delta_b_tot_shift_ci_high": s["opt_delta_b_tot_shift_ci_high"],
            "chi": s["chi"],
            "chi_ci_low": s["opt_chi_ci_low"],
            "chi_ci_high": s["opt_chi_ci_high"],
            "crackling_gamma": s["crackling_gamma"],
            "crackling_ci_low": s["crackling_ci_low"],
            "crackling_ci_high": s["crackling_ci_high"],
            "crackling_pass": bool(s["opt_crackling_pass"]),
            "heldout_rate_ratio": float(s["opt_achieved_rate_analysis_mean"]) / rate,
            "ppl_B": np.nan if generalization is None else generalization["ppl"],
            "ppl_B_ci_low": np.nan if generalization is None else generalization["opt_ppl_ci_low"],
            "ppl_B_ci_high": (
                np.nan if generalization is None else generalization["opt_ppl_ci_high"]
            ),
            "arc_accuracy": np.nan if arc is None else arc["accuracy"],
            "arc_accuracy_ci_low": np.nan if arc is None else arc["accuracy_ci_low"],
            "arc_accuracy_ci_high": np.nan if arc is None else arc["accuracy_ci_high"],
            "opt_heldout_max_layer_rel_err": float(s["opt_achieved_rate_analysis_max_abs_err"])
            / rate,
            "opt_crackling_reason": s.get("opt_crackling_reason", ""),
        }
        for column in (
            "reference_step",
            "previous_step",
            "n_sequences",
            "bootstrap_replicates",
            *diff_columns("step0"),
            *diff_columns("previous"),
            "opt_crackling_reason_vs_step0",
            "opt_crackling_reason_vs_previous",
        ):
            record[column] = diff[column]
        records.append(record)
    table = pd.DataFrame(records)
    for column in ("step", "reference_step", "n_sequences", "bootstrap_replicates"):
        table[column] = table[column].astype("int64")
    table["previous_step"] = table["previous_step"].astype(float)
    return tables._finish(
        table,
        T09_COLUMNS,
        {},
        provenance,
        TABLE_ID,
        ["step", "spike_def_id", "target_rate", "g_condition"],
    )


def first_separation(t09: pd.DataFrame, stat: str, condition: str = "g1") -> pd.DataFrame:
    """Per (spike def, rate): the first step whose ``diff_<stat>_vs_step0`` CI excludes 0
    (``first_step``; NaN when none does) and whether every later step stays separated
    (``stays``)."""
    rows = []
    chosen = t09[t09["g_condition"] == condition].sort_values("step", kind="stable")
    for (spike, rate), group in chosen.groupby(["spike_def_id", "target_rate"], sort=True):
        low = group[f"diff_{stat}_vs_step0_ci_low"].to_numpy(dtype=float)
        high = group[f"diff_{stat}_vs_step0_ci_high"].to_numpy(dtype=float)
        separated = np.isfinite(low) & np.isfinite(high) & ((low > 0) | (high < 0))
        steps = group["step"].to_numpy()
        hits = np.flatnonzero(separated)
        first = int(steps[hits[0]]) if hits.size else None
        stays = bool(hits.size and separated[hits[0] :].all())
        rows.append(
            {
                "spike_def_id": spike,
                "target_rate": float(rate),
                "first_step": first,
                "stays": stays,
                "n_steps": int(len(group)),
            }
        )
    return pd.DataFrame(rows)
