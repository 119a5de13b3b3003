"""pandera schemas of the paper tables, applied by the catalog on every save and load.

A table fails validation (and the run stops before anything is written) when a required column
is missing or an unexpected non-``opt_`` column appears, when a value that is required is NaN,
when a value leaves its range, or when the rows do not cover their key grid exactly once
(e.g. a gain missing for one target rate). Declared in ``conf/base/catalog.yml`` with
``validator: avalanche_kedro.study.schemas.T01_SCHEMA`` and so on.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np
import pandas as pd
import pandera.pandas as pa

from . import control, tables, trajectory

ROLE_KEYS = ["model_role", "spike_def_id", "target_rate"]


def _provenance() -> dict[str, pa.Column]:
    columns = {name: pa.Column(str, nullable=False) for name in tables.PROVENANCE_COLUMNS}
    columns["run_id"] = pa.Column(str, pa.Check.str_startswith("run-"), nullable=False)
    columns["config_hash"] = pa.Column(str, pa.Check.str_length(64, 64), nullable=False)
    return columns


def _optional() -> dict[str, pa.Column]:
    return {"^opt_": pa.Column(regex=True, required=False, nullable=True)}


def full_grid(keys: Sequence[str], name: str) -> pa.Check:
    """Every combination of the key columns' values appears exactly once."""

    def check(frame: pd.DataFrame) -> bool:
        if frame.empty:
            return False
        unique_rows = not frame.duplicated(list(keys)).any()
        return unique_rows and len(frame) == prod(frame[k].nunique() for k in keys)

    return pa.Check(check, name=f"{name}: one row per {' x '.join(keys)}", element_wise=False)


def same_plan_per_group(group_keys: Sequence[str], plan_keys: Sequence[str], name: str) -> pa.Check:
    """Every group has the same set of plan rows, each once (e.g. T06's interventions)."""

    def check(frame: pd.DataFrame) -> bool:
        if frame.empty or frame.duplicated([*group_keys, *plan_keys]).any():
            return False
        plans = frame.groupby(list(group_keys))[list(plan_keys)].apply(
            lambda part: tuple(sorted(map(tuple, part.to_numpy().tolist())))
        )
        return plans.nunique() == 1

    return pa.Check(
        check, name=f"{name}: same {' x '.join(plan_keys)} for every {' x '.join(group_keys)}"
    )


def nan_only_where(value_columns: Sequence[str], flag: str, name: str) -> pa.Check:
    """NaN in ``value_columns`` only on rows where the boolean column ``flag`` is True."""

    def check(frame: pd.DataFrame) -> bool:
        if flag not in frame:
            return not frame[list(value_columns)].isna().any().any()
        missing = frame[list(value_columns)].isna().any(axis=1)
        return bool((~missing | frame[flag].astype(bool)).all())

    return pa.Check(check, name=f"{name}: NaN in {list(value_columns)} only where {flag}")


RATE = pa.Check.in_range(0.0, 1.0, include_min=False, include_max=False)
PROBABILITY = pa.Check.in_range(0.0, 1.0)
NONNEGATIVE = pa.Check.ge(0)
G_CONDITIONS = pa.Check.isin(["g1", "gstar"])

T01_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g": pa.Column(float, NONNEGATIVE),
        "tau0_baseline": pa.Column(float),
        "rate_match_tol": pa.Column(float, pa.Check.gt(0)),
        "achieved_rate_mean": pa.Column(float, PROBABILITY),
        "achieved_rate_max_abs_err": pa.Column(float, NONNEGATIVE),
        **{c: pa.Column(float, nullable=True) for c in ("b_time", "b_depth", "b_tot")},
        **{
            c: pa.Column(float, nullable=True)
            for c in ("b_time_perm", "b_depth_perm", "b_tot_perm")
        },
        **{
            c: pa.Column(float, nullable=True)
            for c in ("delta_b_time", "delta_b_depth", "delta_b_tot")
        },
        "chi": pa.Column(float, NONNEGATIVE),
        "crackling_gamma": pa.Column(float, nullable=True),
        "crackling_ci_low": pa.Column(float, nullable=True),
        "crackling_ci_high": pa.Column(float, nullable=True),
        "n_sequences": pa.Column(int, pa.Check.gt(0)),
        "n_avalanches": pa.Column(int, NONNEGATIVE),
        "avalanche_size_mean": pa.Column(float, nullable=True),
        "avalanche_size_median": pa.Column(float, nullable=True),
        "avalanche_span_tokens_mean": pa.Column(float, nullable=True),
        "avalanche_span_layers_mean": pa.Column(float, nullable=True),
        **_optional(),
    },
    checks=[
        full_grid([*ROLE_KEYS, "g"], "T01"),
        nan_only_where(
            [
                "b_time",
                "b_depth",
                "b_tot",
                "b_time_perm",
                "b_depth_perm",
                "b_tot_perm",
                "delta_b_tot",
            ],
            "opt_branching_empty",
            "T01",
        ),
    ],
    strict=True,
    name="T01_SUMMARY",
)

T02_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g_condition": pa.Column(str, G_CONDITIONS),
        "g": pa.Column(float, NONNEGATIVE),
        "b_time": pa.Column(float),
        "b_depth": pa.Column(float),
        "b_tot": pa.Column(float),
        "delta_b_tot": pa.Column(float),
        "chi": pa.Column(float, NONNEGATIVE),
        "n_sequences": pa.Column(int, pa.Check.gt(0)),
        "ppl": pa.Column(float, pa.Check.ge(1.0)),
        "nll_mean": pa.Column(float, NONNEGATIVE),
        **_optional(),
    },
    checks=[full_grid([*ROLE_KEYS, "g_condition"], "T02")],
    strict=True,
    name="T02_GENERALIZATION",
)

T03_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g_condition": pa.Column(str, G_CONDITIONS),
        "g": pa.Column(float, NONNEGATIVE),
        "n_questions": pa.Column(int, pa.Check.gt(0)),
        "accuracy": pa.Column(float, PROBABILITY),
        "accuracy_ci_low": pa.Column(float, PROBABILITY),
        "accuracy_ci_high": pa.Column(float, PROBABILITY),
        "mean_logprob_correct_minus_incorrect": pa.Column(float),
        **_optional(),
    },
    checks=[
        full_grid([*ROLE_KEYS, "g_condition"], "T03"),
        pa.Check(
            lambda f: (f["accuracy_ci_low"] <= f["accuracy_ci_high"]).all(), name="T03: CI ordered"
        ),
    ],
    strict=True,
    name="T03_ARC",
)

_TAIL_VALUES = [
    c for c in tables.T04_COLUMNS if c not in ("spike_def_id", "target_rate", "g", "n_tail")
]
T04_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g": pa.Column(float, NONNEGATIVE),
        "n_tail": pa.Column(int, NONNEGATIVE),
        **{c: pa.Column(float, nullable=True) for c in _TAIL_VALUES},
        **_optional(),
    },
    checks=[
        full_grid([*ROLE_KEYS, "g"], "T04"),
        pa.Check(
            lambda f: not f.loc[f["opt_available"].astype(bool), _TAIL_VALUES].isna().any().any(),
            name="T04: every available fit has all its values",
        ),
    ],
    strict=True,
    name="T04_TAIL_FITS",
)

T05_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g": pa.Column(float, NONNEGATIVE),
        "crackling_gamma": pa.Column(float, nullable=True),
        "crackling_ci_low": pa.Column(float, nullable=True),
        "crackling_ci_high": pa.Column(float, nullable=True),
        "crackling_ci_width": pa.Column(float, nullable=True),
        "n_duration_points": pa.Column(int, NONNEGATIVE),
        "n_avalanches_used": pa.Column(int, NONNEGATIVE),
        "r2": pa.Column(float, nullable=True),
        "pass": pa.Column(bool),
        **_optional(),
    },
    checks=[
        full_grid([*ROLE_KEYS, "g"], "T05"),
        pa.Check(
            lambda f: (
                not f.loc[f["pass"], ["crackling_gamma", "crackling_ci_width"]].isna().any().any()
                and bool((f.loc[f["pass"], "crackling_ci_width"] <= 0.5).all())
            ),
            name="T05: a passed gate has a finite gamma and a CI no wider than 0.5",
        ),
    ],
    strict=True,
    name="T05_CRACKLING_DIAGNOSTICS",
)

T06_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g_condition": pa.Column(str, G_CONDITIONS),
        "g": pa.Column(float, NONNEGATIVE),
        "intervention_id": pa.Column(str),
        "gain_target": pa.Column(str, pa.Check.isin(["MLP", "ATTN"])),
        "b_tot": pa.Column(float),
        "delta_b_tot": pa.Column(float),
        "chi": pa.Column(float, NONNEGATIVE),
        "achieved_rate_max_abs_err": pa.Column(float, NONNEGATIVE),
        "n_sequences": pa.Column(int, pa.Check.gt(0)),
        **_optional(),
    },
    checks=[same_plan_per_group(ROLE_KEYS, ["g_condition", "intervention_id"], "T06")],
    strict=True,
    name="T06_ABLATIONS",
)

T07_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "reference_role": pa.Column(str),
        "compared_role": pa.Column(str),
        "reference_model_id": pa.Column(str),
        "compared_model_id": pa.Column(str),
        "g_star_reference": pa.Column(float, NONNEGATIVE),
        "g_star_compared": pa.Column(float, NONNEGATIVE),
        **{
            c: pa.Column(float)
            for c in (
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
            )
        },
        **_optional(),
    },
    checks=[full_grid(["compared_role", "spike_def_id", "target_rate"], "T07")],
    strict=True,
    name="T07_REPLICATION_SUMMARY",
)


def _t08_values(suffix: str) -> dict[str, pa.Column]:
    """T08's value columns of one setting (g* or ``_g1``): crackling may be NaN, nothing else."""
    columns = {}
    for stat in control.STATS:
        nullable = stat == "crackling_gamma"
        for name in (f"diff_{stat}", f"diff_{stat}_ci_low", f"diff_{stat}_ci_high"):
            columns[f"{name}{suffix}"] = pa.Column(float, nullable=nullable)
        point = NONNEGATIVE if stat in ("b_tot", "chi") else None
        for side in ("compared", "control"):
            columns[f"{stat}_{side}{suffix}"] = pa.Column(float, point, nullable=nullable)
    return columns


def _t08_consistent(frame: pd.DataFrame) -> bool:
    """Every diff is compared - control, every CI is ordered, and the crackling diff is NaN
    exactly where ``opt_crackling_reason`` (``_g1``) gives a reason."""
    for suffix in ("", "_g1"):
        for stat in control.STATS:
            diff = frame[f"diff_{stat}{suffix}"].astype(float)
            expected = frame[f"{stat}_compared{suffix}"] - frame[f"{stat}_control{suffix}"]
            finite = np.isfinite(diff)
            if not np.allclose(diff[finite], expected[finite], rtol=1e-12, atol=1e-12):
                return False
            low = frame[f"diff_{stat}_ci_low{suffix}"].astype(float)
            high = frame[f"diff_{stat}_ci_high{suffix}"].astype(float)
            both = np.isfinite(low) & np.isfinite(high)
            if (low[both] > high[both]).any() or (np.isfinite(low) != np.isfinite(high)).any():
                return False
        reason_column = f"opt_crackling_reason{suffix}"
        reasons = (
            frame[reason_column].fillna("").astype(str).str.len() > 0
            if reason_column in frame
            else pd.Series(False, index=frame.index)
        )
        missing = frame[f"diff_crackling_gamma{suffix}"].isna()
        if not (missing == reasons).all():
            return False
    return True


T08_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "compared_role": pa.Column(str),
        "control_role": pa.Column(str),
        "compared_model_id": pa.Column(str),
        "control_model_id": pa.Column(str),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g_star_compared": pa.Column(float, NONNEGATIVE),
        "g_star_control": pa.Column(float, NONNEGATIVE),
        **_t08_values(""),
        **_t08_values("_g1"),
        "n_sequences": pa.Column(int, pa.Check.gt(0)),
        "bootstrap_replicates": pa.Column(int, pa.Check.gt(0)),
        **_optional(),
    },
    checks=[
        full_grid(["compared_role", "spike_def_id", "target_rate"], "T08"),
        pa.Check(
            lambda f: (
                f["control_role"].nunique() == 1
                and bool((f["compared_role"] != f["control_role"]).all())
            ),
            name="T08: one control role, never compared with itself",
        ),
        pa.Check(
            _t08_consistent,
            name="T08: diff = compared - control, ordered CIs, crackling NaN only with a reason",
        ),
    ],
    strict=True,
    name="T08_TRAINED_VS_UNTRAINED",
)


def _t09_consistent(frame: pd.DataFrame) -> bool:
    """One step per role and one role per step; CIs ordered; step 0's differences and the
    first rows' ``_vs_previous`` are NaN; each difference to step 0 equals the T01 points
    (b_tot, chi, delta_b_tot against the permutation null) of the two steps."""
    if frame.groupby("model_role")["step"].nunique().max() != 1:
        return False
    if frame.groupby("step")["model_role"].nunique().max() != 1:
        return False
    for reference in trajectory.REFERENCES:
        for stat in control.STATS:
            low = frame[f"diff_{stat}_vs_{reference}_ci_low"].astype(float)
            high = frame[f"diff_{stat}_vs_{reference}_ci_high"].astype(float)
            both = np.isfinite(low) & np.isfinite(high)
            if (low[both] > high[both]).any():
                return False
    first = frame["step"] == frame["reference_step"]
    if frame.loc[first, trajectory.diff_columns("step0")].notna().any().any():
        return False
    if (
        frame.loc[frame["previous_step"].isna(), trajectory.diff_columns("previous")]
        .notna()
        .any()
        .any()
    ):
        return False
    keys = ["spike_def_id", "target_rate", "g_condition"]
    base = frame[first].set_index(keys)
    for stat, column in (("b_tot", "b_tot"), ("chi", "chi"), ("delta_b_tot", "delta_b_tot_perm")):
        later = frame[~first].set_index(keys)
        expected = later[column] - base[column].reindex(later.index)
        diff = later[f"diff_{stat}_vs_step0"]
        finite = np.isfinite(diff) & np.isfinite(expected)
        if not np.allclose(diff[finite], expected[finite], rtol=1e-9, atol=1e-9):
            return False
    return True


#: T09 columns with a type or range of their own; every other column of
#: :data:`trajectory.T09_COLUMNS` is a float that may be NaN (b values on an empty raster,
#: crackling without a fit, differences without a reference).
_T09_TYPED = {
    "step": pa.Column(int, NONNEGATIVE),
    "spike_def_id": pa.Column(str),
    "target_rate": pa.Column(float, RATE),
    "g_condition": pa.Column(str, G_CONDITIONS),
    "g": pa.Column(float, NONNEGATIVE),
    "g_star": pa.Column(float, NONNEGATIVE),
    "chi": pa.Column(float, NONNEGATIVE),
    "chi_ci_low": pa.Column(float, NONNEGATIVE),
    "chi_ci_high": pa.Column(float, NONNEGATIVE),
    "crackling_pass": pa.Column(bool),
    "heldout_rate_ratio": pa.Column(float, NONNEGATIVE),
    "ppl_B": pa.Column(float, pa.Check.ge(1.0)),
    "ppl_B_ci_low": pa.Column(float, pa.Check.ge(1.0)),
    "ppl_B_ci_high": pa.Column(float, pa.Check.ge(1.0)),
    "arc_accuracy": pa.Column(float, PROBABILITY),
    "arc_accuracy_ci_low": pa.Column(float, PROBABILITY),
    "arc_accuracy_ci_high": pa.Column(float, PROBABILITY),
    "reference_step": pa.Column(int, NONNEGATIVE),
    "n_sequences": pa.Column(int, pa.Check.gt(0)),
    "bootstrap_replicates": pa.Column(int, pa.Check.gt(0)),
}

T09_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        **{
            column: _T09_TYPED.get(column, pa.Column(float, nullable=True))
            for column in trajectory.T09_COLUMNS
        },
        **_optional(),
    },
    checks=[
        full_grid(["model_role", "spike_def_id", "target_rate", "g_condition"], "T09"),
        pa.Check(
            _t09_consistent,
            name=(
                "T09: one step per role, ordered CIs, no difference without a reference, "
                "diff = step - step 0 of the T01 points"
            ),
        ),
    ],
    strict=True,
    name="T09_TRAINING_TRAJECTORY",
)

SCHEMAS = {
    "T01": T01_SCHEMA,
    "T02": T02_SCHEMA,
    "T03": T03_SCHEMA,
    "T04": T04_SCHEMA,
    "T05": T05_SCHEMA,
    "T06": T06_SCHEMA,
    "T07": T07_SCHEMA,
    "T08": T08_SCHEMA,
    "T09": T09_SCHEMA,
}
