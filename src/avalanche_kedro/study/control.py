"""Trained roles against an untrained control: the paired table T08_TRAINED_VS_UNTRAINED.

A signature of criticality says something about training only if it separates a trained model
from the same architecture at its initialisation (the *control* role, ``untrained`` by default:
the base model's step-0 weights, same tokenizer, windows and seeds). For every role other than
the control and every (spike definition, target rate), four statistics of dataset A
(MLP_GLOBAL, real rasters) are computed for the compared role and for the control::

    b_tot           = (sum_n n_time + sum_n n_depth) / sum_n den
    delta_b_tot     = b_tot(real) - b_tot(within-layer time permutation null)
    chi             = var(Y, ddof=0) / (mean(Y) + 1e-8),   Y_n = events of window n
    crackling_gamma = OLS slope of log <S>(D) on log D over the distinct D in [3, 64]
                      (4N avalanches, <S>(D) = mean size of the avalanches of span D)

and ``diff = compared - control`` gets a 95 % percentile CI from B *paired* replicates: one
index matrix ``bootstrap_indices(n, B, "trained_vs_untrained|A|<spike def>|<rate>")`` (seed
``seed_of("boot", key)``) draws the same windows, matched by ``seq_id``, for both roles, so
``diff_b = stat_b(compared) - stat_b(control)`` replicate by replicate. The comparison is made
at each role's own g* (both g* recorded, as T07) and again with both roles at g = 1 (columns
suffixed ``_g1``): the g* of an untrained model can sit at an end of the gain grid.

The crackling difference is NaN, with the reason in ``opt_crackling_reason`` (``_g1``), when
either side has no finite gamma or fewer than ``min_points`` distinct durations (SPEC §6's
point count); a replicate in which either side keeps fewer than ``min(min_points, points)``
distinct durations gives no difference and is left out of the percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.bootstrap import (
    DEFAULT_REPLICATES,
    bootstrap_indices,
    percentile_interval,
    resample_weights,
)
from ..analysis.lattice import ADJ_4N
from ..analysis.scaling import (
    CRACKLING_D_MAX,
    CRACKLING_D_MIN,
    CRACKLING_MIN_POINTS,
    crackling_slopes,
)
from ..core.seeds import format_number
from ..core.threads import single_threaded_blas
from ..evaluation.perplexity import paired_perplexity_difference
from . import tables
from .replication import (
    ReplicationError,
    RoleCondition,
    check_same_windows,
    paired_b_tot,
    paired_chi,
    paired_delta_b_tot,
    role_at_gain,
    role_at_gstar,
)

#: The statistics compared, in column order.
STATS = ("b_tot", "delta_b_tot", "chi", "crackling_gamma")
#: Bootstrap key prefix: ``trained_vs_untrained|A|<spike def>|<rate>``.
BOOT_PREFIX = "trained_vs_untrained|A"


def stat_columns(suffix: str = "") -> list[str]:
    """``diff_<stat>, diff_<stat>_ci_low, diff_<stat>_ci_high, <stat>_compared,
    <stat>_control`` for every statistic, each name ending in ``suffix``."""
    columns = []
    for stat in STATS:
        columns += [
            f"diff_{stat}{suffix}",
            f"diff_{stat}_ci_low{suffix}",
            f"diff_{stat}_ci_high{suffix}",
            f"{stat}_compared{suffix}",
            f"{stat}_control{suffix}",
        ]
    return columns


T08_COLUMNS = [
    "compared_role",
    "control_role",
    "compared_model_id",
    "control_model_id",
    "spike_def_id",
    "target_rate",
    "g_star_compared",
    "g_star_control",
    *stat_columns(),
    *stat_columns("_g1"),
    "n_sequences",
    "bootstrap_replicates",
]


def _window_positions(seq_ids: np.ndarray, avalanche_seq_ids: np.ndarray, role: str) -> np.ndarray:
    """Position of each avalanche's window in the sorted ``seq_ids`` (the bootstrap's order)."""
    positions = np.searchsorted(seq_ids, avalanche_seq_ids)
    inside = positions < seq_ids.size
    if not (inside.all() and np.array_equal(seq_ids[positions], avalanche_seq_ids)):
        raise ReplicationError(
            f"{role}.avalanches_A has avalanches in windows that its branching counts lack.",
            "Rerun the cascades pipeline for that role so both come from the same rasters.",
        )
    return positions


class _Side:
    """One role's four statistics (point value and replicates) at one condition."""

    def __init__(
        self,
        role: str,
        condition: RoleCondition,
        avalanches: pd.DataFrame,
        seq_ids: np.ndarray,
        indices: np.ndarray,
        weights: np.ndarray,
        crackling: Mapping[str, int],
    ):
        self.role = role
        self.values: dict[str, tuple[float, np.ndarray]] = {
            "b_tot": paired_b_tot(weights, condition.real),
            "delta_b_tot": paired_delta_b_tot(weights, condition.real, condition.null),
            "chi": paired_chi(indices, condition.real),
        }
        at = avalanches[
            (avalanches["cond_id"] == condition.cond_id) & (avalanches["adjacency"] == ADJ_4N)
        ]
        slopes = crackling_slopes(
            _window_positions(seq_ids, at["seq_id"].to_numpy(), role),
            at["span_tokens"].to_numpy(),
            at["size"].to_numpy(),
            int(seq_ids.size),
            indices,
            d_min=crackling["d_min"],
            d_max=crackling["d_max"],
            min_points=crackling["min_points"],
        )
        self.values["crackling_gamma"] = (slopes.gamma, slopes.replicates)
        self.points = slopes.n_duration_points
        problems = []
        if not np.isfinite(slopes.gamma):
            problems.append("no finite gamma")
        if slopes.n_duration_points < crackling["min_points"]:
            problems.append(
                f"{slopes.n_duration_points} distinct durations in "
                f"[{crackling['d_min']}, {crackling['d_max']}] (< {crackling['min_points']})"
            )
        self.crackling_problem = "; ".join(problems)


def _compare(
    compared: _Side, reference: _Side, suffix: str, reference_label: str = "control"
) -> dict[str, Any]:
    """The ``diff_*`` columns (point, CI) and both point values, for one setting; the
    reference side's columns are named ``<stat>_<reference_label><suffix>``."""
    out: dict[str, Any] = {}
    for stat in STATS:
        point_compared, reps_compared = compared.values[stat]
        point_reference, reps_reference = reference.values[stat]
        low, high = percentile_interval(reps_compared - reps_reference)
        out[f"diff_{stat}{suffix}"] = point_compared - point_reference
        out[f"diff_{stat}_ci_low{suffix}"] = low
        out[f"diff_{stat}_ci_high{suffix}"] = high
        out[f"{stat}_compared{suffix}"] = point_compared
        out[f"{stat}_{reference_label}{suffix}"] = point_reference
    reasons = [
        f"{label} {side.role}: {side.crackling_problem}"
        for label, side in (("compared", compared), (reference_label, reference))
        if side.crackling_problem
    ]
    if not reasons and not np.isfinite(out[f"diff_crackling_gamma_ci_low{suffix}"]):
        reasons.append("no replicate kept enough durations on both sides")
    if reasons:
        for column in ("", "_ci_low", "_ci_high"):
            out[f"diff_crackling_gamma{column}{suffix}"] = float("nan")
    out[f"opt_crackling_reason{suffix}"] = "; ".join(reasons)
    out[f"opt_crackling_points_compared{suffix}"] = compared.points
    out[f"opt_crackling_points_{reference_label}{suffix}"] = reference.points
    return out


#: The two settings of every paired comparison: each role at its own g* (no suffix) and both
#: roles at g = 1 (``_g1``).
SETTINGS = ("", "_g1")


@single_threaded_blas
def paired_differences(
    roles: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    gstar: Mapping[str, pd.DataFrame],
    conditions: Mapping[str, pd.DataFrame],
    window_counts: Mapping[str, pd.DataFrame],
    null_window_counts: Mapping[str, pd.DataFrame],
    avalanches: Mapping[str, pd.DataFrame],
    replicates: int = DEFAULT_REPLICATES,
    d_min: int = CRACKLING_D_MIN,
    d_max: int = CRACKLING_D_MAX,
    min_points: int = CRACKLING_MIN_POINTS,
    boot_prefix: str = BOOT_PREFIX,
    reference_label: str = "control",
) -> list[dict[str, Any]]:
    """Paired differences compared - reference of b_tot, delta_b_tot, chi and crackling gamma
    for every ``(compared, reference)`` pair and every (spike def, target rate) of
    ``gstar[roles[0]]``, at each role's own g* and at g = 1 (``_g1``).

    One bootstrap index matrix per (spike def, rate) - key ``<boot_prefix>|<spike def>|<rate>``
    - serves every role, so all pairs of a group are paired on the same resampled windows;
    each role's statistics are computed once per setting whatever the number of pairs.
    """
    crackling = {"d_min": int(d_min), "d_max": int(d_max), "min_points": int(min_points)}
    needed = list(dict.fromkeys(role for pair in pairs for role in pair))
    rows = []
    for row in gstar[roles[0]].itertuples():
        spike_def, rate = row.spike_def_id, float(row.target_rate)
        settings = {}
        for suffix in SETTINGS:
            settings[suffix] = {
                role: (
                    role_at_gstar(
                        role,
                        gstar[role],
                        conditions[role],
                        window_counts[role],
                        null_window_counts[role],
                        spike_def,
                        rate,
                    )
                    if suffix == ""
                    else role_at_gain(
                        conditions[role],
                        window_counts[role],
                        null_window_counts[role],
                        spike_def,
                        rate,
                        1.0,
                        role,
                    )
                )
                for role in needed
            }
        seq_ids = check_same_windows(
            {f"{r}{s}": c for s, m in settings.items() for r, c in m.items()},
            pairs[0][1],
        )
        indices = bootstrap_indices(
            len(seq_ids), replicates, f"{boot_prefix}|{spike_def}|{format_number(rate)}"
        )
        weights = resample_weights(indices, len(seq_ids))
        sides = {
            (role, suffix): _Side(
                role, condition, avalanches[role], seq_ids, indices, weights, crackling
            )
            for suffix, measured in settings.items()
            for role, condition in measured.items()
        }
        for compared, reference in pairs:
            record = {
                "compared_role": compared,
                "reference_role": reference,
                "spike_def_id": spike_def,
                "target_rate": rate,
                "g_star_compared": settings[""][compared].g,
                "g_star_reference": settings[""][reference].g,
                "n_sequences": int(len(seq_ids)),
                "bootstrap_replicates": int(replicates),
            }
            for suffix in SETTINGS:
                record.update(
                    _compare(
                        sides[(compared, suffix)],
                        sides[(reference, suffix)],
                        suffix,
                        reference_label,
                    )
                )
            rows.append(record)
    return rows


def control_table(
    roles: Sequence[str],
    control_role: str,
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
    """One row per (role other than ``control_role``, spike def, target rate): the paired
    differences compared - control of b_tot, delta_b_tot, chi and crackling gamma at each
    role's own g* and at g = 1 (``_g1``), with percentile CIs on shared window replicates."""
    if control_role not in roles:
        raise ReplicationError(
            f"The control role {control_role!r} is not among the model roles {list(roles)}.",
            "Add it to model_roles or set replication.control_role to one of them.",
        )
    compared_roles = [role for role in roles if role != control_role]
    if not compared_roles:
        raise ReplicationError(
            "There is no role to compare with the control.",
            "List at least one trained role besides the control in model_roles.",
        )
    rows = paired_differences(
        [control_role, *compared_roles],
        [(role, control_role) for role in compared_roles],
        gstar,
        conditions,
        window_counts,
        null_window_counts,
        avalanches,
        replicates,
        d_min,
        d_max,
        min_points,
    )
    table = pd.DataFrame(rows).rename(
        columns={"reference_role": "control_role", "g_star_reference": "g_star_control"}
    )
    table["compared_model_id"] = table["compared_role"].map(model_ids)
    table["control_model_id"] = table["control_role"].map(model_ids)
    return table


def build_t08(provenance: Mapping[str, Any], trained_vs_untrained: pd.DataFrame) -> pd.DataFrame:
    """T08_TRAINED_VS_UNTRAINED: each trained role against the control, at g* and at g = 1."""
    table = trained_vs_untrained.copy()
    table["model_id"] = table["compared_model_id"]
    table["model_role"] = table["compared_role"]
    table["dataset_role"] = "A"
    return tables._finish(
        table,
        T08_COLUMNS,
        {},
        provenance,
        tables.TABLE_IDS["T08"],
        ["compared_role", "spike_def_id", "target_rate"],
    )


def with_paired_perplexity(
    table: pd.DataFrame,
    lm_losses: Mapping[str, pd.DataFrame],
    control_role: str,
    replicates: int = DEFAULT_REPLICATES,
) -> pd.DataFrame:
    """``table`` (T08 rows) with ``opt_ppl_B_g1_diff`` = ppl(compared) - ppl(control) on
    dataset B at g = 1 and its paired CI: one resample of B's windows (matched by ``seq_id``,
    key ``B|LM``) applied to both roles. The same value on every row of a compared role."""

    def at_g1(role: str) -> pd.DataFrame:
        losses = lm_losses[role]
        return losses[np.isclose(losses["g"].to_numpy(np.float64), 1.0)].sort_values("seq_id")

    control = at_g1(control_role)
    columns = {}
    for role in dict.fromkeys(table["compared_role"]):
        compared = at_g1(role)
        if not np.array_equal(compared["seq_id"].to_numpy(), control["seq_id"].to_numpy()):
            raise ReplicationError(
                f"{role} and {control_role} were scored on different dataset B windows.",
                "Run every role with the same windows parameters and tokenizer.",
            )
        paired = paired_perplexity_difference(
            control["nll_sum"],
            control["n_tokens"],
            compared["nll_sum"],
            compared["n_tokens"],
            "B|LM",
            replicates,
        )
        columns[role] = {
            "opt_ppl_B_g1_diff": paired["ppl_diff"],
            "opt_ppl_B_g1_diff_ci_low": paired["ppl_diff_ci_low"],
            "opt_ppl_B_g1_diff_ci_high": paired["ppl_diff_ci_high"],
        }
    extra = pd.DataFrame([columns[role] for role in table["compared_role"]], index=table.index)
    return pd.concat([table, extra], axis=1)
