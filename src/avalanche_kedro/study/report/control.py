"""Report section "Trained vs untrained" (T08) and the specificity of the signatures S1-S3.

A signature that the same architecture shows at its initialisation says nothing about training.
So a signature present in a trained role is *specific* only when it separates from the untrained
control of T08 (rules in :func:`.decisions.decide_specificity`): S1 when the paired CI of
``diff_b_tot`` at g* excludes 0, S2 when that of ``diff_chi`` does, S3 when the control's own S3
is absent or the CI of ``diff_crackling_gamma`` excludes 0. The section also gives, per trained
role, the two numbers that say how far the control is from a language model: the dataset B
perplexity at g = 1 against the control's (T02) and the largest held-out rate drift at g = 1
(T01).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .decisions import (
    ABSENT,
    CONTROL,
    NO_CONTROL,
    NOT_SPECIFIC,
    PRESENT,
    SPECIFIC,
    UNDETERMINED,
    decide_paired_difference,
    decide_specificity,
)
from .formatting import _finite, ci, key_number, num
from .grouping import Finding, Group, _get, _one

NO_CONTROL_TEXT = "no untrained control in this run — signatures cannot be called specific"

#: signature -> (T08 statistic, its name in sentences, whether an absent control S suffices)
SIGNATURE_STATS = {
    "S1": ("b_tot", "b_tot", False),
    "S2": ("chi", "chi", False),
    "S3": ("crackling_gamma", "crackling gamma", True),
}


def control_role(t08: pd.DataFrame | None) -> str | None:
    """The control role named by T08 (None without T08 rows)."""
    if t08 is None or t08.empty:
        return None
    return str(t08["control_role"].iloc[0])


def t08_row(t08: pd.DataFrame | None, role: str, spike: str, rate: float) -> pd.Series | None:
    if t08 is None or t08.empty:
        return None
    rows = t08[
        (t08["compared_role"] == role)
        & (t08["spike_def_id"] == spike)
        & np.isclose(t08["target_rate"].astype(float), rate, rtol=1e-12, atol=0.0)
    ]
    return None if rows.empty else rows.iloc[0]


def cite_t08(row: pd.Series) -> str:
    return (
        f"`T08[{row['compared_role']} vs {row['control_role']}, {row['spike_def_id']}, "
        f"r={key_number(row['target_rate'])}]`"
    )


def _specificity(
    signature: str, decision: str, row: pd.Series | None, control_decision: str | None
) -> Finding:
    stat, name, absence_suffices = SIGNATURE_STATS[signature]
    key = f"{signature}_spec"
    if row is None:
        if decision != PRESENT:
            return Finding(key, decision, "")
        return Finding(
            key, UNDETERMINED, "Against the untrained control: undetermined (no T08 row)."
        )
    control = row["control_role"]
    low, high = _get(row, f"diff_{stat}_ci_low"), _get(row, f"diff_{stat}_ci_high")
    result = decide_specificity(decision, low, high, control_decision, absence_suffices)
    diff = f"diff {name} = {num(_get(row, f'diff_{stat}'))}, CI {ci(low, high)}"
    if stat == "crackling_gamma" and not _finite(_get(row, f"diff_{stat}")):
        reason = str(row.get("opt_crackling_reason", "") or "").strip()
        diff = f"diff {name} not available ({reason or 'reason not recorded'})"
    head = f"Against the untrained control `{control}`:"
    if result.decision == SPECIFIC:
        why = (
            f"{diff} excludes 0"
            if result.separated
            else f"the control's {signature} is absent; {diff}"
        )
        text = f"{head} **specific** ({why}; {cite_t08(row)})."
    elif result.decision == NOT_SPECIFIC:
        why = (
            "the untrained control shows it too"
            if result.control_shows_it
            else "not separated from the untrained control"
        )
        text = f"{head} **present but not specific** ({why}: {diff}; {cite_t08(row)})."
    elif result.decision == ABSENT:
        text = f"{head} absent, so nothing to separate ({cite_t08(row)})."
    else:
        text = f"{head} undetermined ({cite_t08(row)})."
    return Finding(key, result.decision, text)


def specificity_findings(decided: Mapping[tuple, dict[str, Any]], t08: pd.DataFrame | None) -> None:
    """Add ``S1_spec``, ``S2_spec``, ``S3_spec`` to every group's decisions (in place)."""
    control = control_role(t08)
    for (role, spike, rate), findings in decided.items():
        for signature in SIGNATURE_STATS:
            key = f"{signature}_spec"
            if control is None:
                findings[key] = Finding(key, NO_CONTROL, "")
            elif role == control:
                findings[key] = Finding(key, CONTROL, "This role is the untrained control of T08.")
            else:
                control_findings = decided.get((control, spike, rate))
                control_decision = (
                    control_findings[signature].decision if control_findings else None
                )
                findings[key] = _specificity(
                    signature,
                    findings[signature].decision,
                    t08_row(t08, role, spike, rate),
                    control_decision,
                )


def specificity_label(findings: Mapping[str, Any]) -> str:
    """The summary cell: ``control``, ``n/a`` (no control), or the specific signatures."""
    decisions = [findings[f"{s}_spec"].decision for s in SIGNATURE_STATS]
    if CONTROL in decisions:
        return "control"
    if NO_CONTROL in decisions:
        return "n/a"
    specific = [s for s, d in zip(SIGNATURE_STATS, decisions, strict=True) if d == SPECIFIC]
    return ", ".join(specific) if specific else "none"


def _ppl_g1(groups_: list[Group], role: str) -> tuple[pd.Series | None, Group | None]:
    for group in groups_:
        if group.role == role:
            row = _one(group.t02, g_condition="g1")
            if row is not None:
                return row, group
    return None, None


def _worst_drift_g1(groups_: list[Group], role: str) -> tuple[float, Group | None]:
    """max over (spike def, rate) of T01's largest per-layer held-out |achieved - r*| / r*
    at g = 1, i.e. max |achieved / r* - 1| over layers."""
    worst, where = float("nan"), None
    for group in groups_:
        row = _one(group.t01, g=1.0) if group.role == role else None
        value = _get(row, "opt_achieved_rate_analysis_max_abs_err") / group.rate
        if _finite(value) and not (_finite(worst) and value <= worst):
            worst, where = value, group
    return worst, where


def _role_lines(groups_: list[Group], role: str, control: str) -> str:
    mine, my_group = _ppl_g1(groups_, role)
    theirs, their_group = _ppl_g1(groups_, control)
    if mine is None or theirs is None:
        ppl_text = "perplexity on dataset B at g = 1: n/a (no T02 g1 row)"
    else:
        ratio = _get(theirs, "ppl") / _get(mine, "ppl")
        ppl_text = (
            f"perplexity on dataset B at g = 1 is {num(_get(mine, 'ppl'))}, CI "
            f"{ci(_get(mine, 'opt_ppl_ci_low'), _get(mine, 'opt_ppl_ci_high'))}, against "
            f"{num(_get(theirs, 'ppl'))}, CI "
            f"{ci(_get(theirs, 'opt_ppl_ci_low'), _get(theirs, 'opt_ppl_ci_high'))} for the "
            f"control: ratio control/{role} = {num(ratio)} "
            f"({my_group.cite('T02', g_condition='g1')}, "
            f"{their_group.cite('T02', g_condition='g1')})"
        )
    drifts = []
    for who in (role, control):
        value, group = _worst_drift_g1(groups_, who)
        drifts.append(
            f"{num(100 * value, 3)} % for `{who}` ({group.cite('T01', g=1.0)})"
            if group is not None
            else f"n/a for `{who}` (no held-out rates in T01)"
        )
    return (
        f"`{role}` vs `{control}`: {ppl_text}. Largest held-out rate drift |achieved/r* − 1| "
        f"over layers at g = 1: {drifts[0]}, against {drifts[1]}."
    )


def _difference_clause(row: pd.Series, suffix: str) -> str:
    parts = []
    for stat, name in (
        ("b_tot", "b_tot"),
        ("delta_b_tot", "delta_b_tot"),
        ("chi", "chi"),
        ("crackling_gamma", "crackling gamma"),
    ):
        diff = _get(row, f"diff_{stat}{suffix}")
        low, high = (
            _get(row, f"diff_{stat}_ci_low{suffix}"),
            _get(row, f"diff_{stat}_ci_high{suffix}"),
        )
        if stat == "crackling_gamma" and not _finite(diff):
            reason = str(row.get(f"opt_crackling_reason{suffix}", "") or "").strip()
            parts.append(f"diff {name} not available ({reason or 'reason not recorded'})")
            continue
        verdict = decide_paired_difference(diff, low, high)
        parts.append(f"diff {name} = {num(diff)}, CI {ci(low, high)} (**{verdict}**)")
    return "; ".join(parts)


def control_section(groups_: list[Group], t08: pd.DataFrame | None) -> list[str]:
    """The "Trained vs untrained" section: per trained role the perplexity and drift numbers,
    then one sentence per T08 row with the four paired differences at g* and at g = 1."""
    lines = ["## Trained vs untrained (T08)", ""]
    control = control_role(t08)
    if control is None:
        return [
            *lines,
            f"There is {NO_CONTROL_TEXT}: set `replication.control_role` to one of the model "
            "roles (the base model's untrained initialisation) to compare with it.",
        ]
    lines.append(
        f"Control role `{control}` (model `{t08['control_model_id'].iloc[0]}`). T08 compares "
        "every other role with it on the same windows and the same bootstrap replicates, at "
        "each role's own g* and with both at g = 1; differences are role − control and a "
        "difference *differs* when its CI excludes 0."
    )
    lines.append("")
    compared = list(dict.fromkeys(t08.sort_values("compared_role", kind="stable")["compared_role"]))
    lines += [f"- {_role_lines(groups_, role, control)}" for role in compared]
    lines.append("")
    ordered = t08.sort_values(["compared_role", "spike_def_id", "target_rate"], kind="stable")
    for _, row in ordered.iterrows():
        lines.append(
            f"- {row['compared_role']} − {control}, {row['spike_def_id']}, "
            f"r = {key_number(row['target_rate'])} (g* {key_number(row['g_star_compared'])} vs "
            f"{key_number(row['g_star_control'])}): "
            f"at g*, {_difference_clause(row, '')}; at g = 1, {_difference_clause(row, '_g1')} "
            f"({cite_t08(row)})."
        )
    return lines
