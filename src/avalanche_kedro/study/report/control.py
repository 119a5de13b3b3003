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
from .formatting import _finite, ci, key_number, num, ref, row_refs, table, value_ci
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
            return Finding(key, decision, "", ("n/a", decision, "no T08 row"))
        return Finding(
            key,
            UNDETERMINED,
            "Against the untrained control: undetermined (no T08 row).",
            ("n/a", UNDETERMINED, "no T08 row"),
        )
    control = row["control_role"]
    low, high = _get(row, f"diff_{stat}_ci_low"), _get(row, f"diff_{stat}_ci_high")
    result = decide_specificity(decision, low, high, control_decision, absence_suffices)
    diff = f"diff {name} = {num(_get(row, f'diff_{stat}'))}, CI {ci(low, high)}"
    diff_cell = value_ci(_get(row, f"diff_{stat}"), low, high)
    if stat == "crackling_gamma" and not _finite(_get(row, f"diff_{stat}")):
        reason = str(row.get("opt_crackling_reason", "") or "").strip()
        diff = f"diff {name} not available ({reason or 'reason not recorded'})"
        diff_cell = "n/a (see T08)"
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
    label = {
        SPECIFIC: "**specific**" + ("" if result.separated else " (control lacks it)"),
        NOT_SPECIFIC: "not specific ("
        + ("control shows it" if result.control_shows_it else "not separated")
        + ")",
    }.get(result.decision, result.decision)
    return Finding(key, result.decision, text, (diff_cell, label, ref("T08", row)))


def specificity_findings(decided: Mapping[tuple, dict[str, Any]], t08: pd.DataFrame | None) -> None:
    """Add ``S1_spec``, ``S2_spec``, ``S3_spec`` to every group's decisions (in place)."""
    control = control_role(t08)
    for (role, spike, rate), findings in decided.items():
        for signature in SIGNATURE_STATS:
            key = f"{signature}_spec"
            if control is None:
                findings[key] = Finding(key, NO_CONTROL, "", ("n/a", "n/a (no control)", "n/a"))
            elif role == control:
                findings[key] = Finding(
                    key,
                    CONTROL,
                    "This role is the untrained control of T08.",
                    ("—", "control", ""),
                )
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


def _role_row(
    groups_: list[Group], role: str, control: str, t08: pd.DataFrame | None = None
) -> list[str]:
    """One row of the quality table: B perplexity at g = 1 of the role and of the control,
    their ratio, the paired difference role − control on the same B windows (T08
    ``opt_ppl_B_g1_diff``, bold when its CI excludes 0), and the largest held-out rate drift
    at g = 1 of both, with the rows."""
    mine, my_group = _ppl_g1(groups_, role)
    theirs, _ = _ppl_g1(groups_, control)
    cells = [f"{role} vs {control}"]
    for row in (mine, theirs):
        cells.append(
            value_ci(_get(row, "ppl"), _get(row, "opt_ppl_ci_low"), _get(row, "opt_ppl_ci_high"))
            if row is not None
            else "n/a (no T02 g1 row)"
        )
    cells.append(
        num(_get(theirs, "ppl") / _get(mine, "ppl"), 3)
        if mine is not None and theirs is not None
        else "n/a"
    )
    paired = None
    if t08 is not None and "opt_ppl_B_g1_diff" in t08:
        rows = t08[t08["compared_role"] == role]
        paired = rows.iloc[0] if not rows.empty else None
    if paired is not None:
        diff = [_get(paired, f"opt_ppl_B_g1_diff{s}") for s in ("", "_ci_low", "_ci_high")]
        text = value_ci(*diff)
        cells.append(f"**{text}**" if decide_paired_difference(*diff) == "differs" else text)
    else:
        cells.append("n/a")
    cited = [row_refs("T02", mine, theirs), ref("T08", paired) if paired is not None else "n/a"]
    for who in (role, control):
        value, group = _worst_drift_g1(groups_, who)
        cells.append(f"{num(100 * value, 3)} %" if group is not None else "n/a")
        if group is not None:
            cited.append(ref("T01", _one(group.t01, g=1.0)))
    return [*cells, " ".join(c for c in cited if c != "n/a") or "n/a"]


def _diff_cell(row: pd.Series, stat: str, suffix: str) -> str:
    """One paired difference with its CI, bold when the CI excludes 0 (*differs*)."""
    diff = _get(row, f"diff_{stat}{suffix}")
    if stat == "crackling_gamma" and not _finite(diff):
        return "n/a¹"
    low, high = _get(row, f"diff_{stat}_ci_low{suffix}"), _get(row, f"diff_{stat}_ci_high{suffix}")
    text = value_ci(diff, low, high)
    return f"**{text}**" if decide_paired_difference(diff, low, high) == "differs" else text


DIFF_STATS = ("b_tot", "delta_b_tot", "chi", "crackling_gamma")


def _unavailable_gamma(ordered: pd.DataFrame) -> list[str]:
    """¹: the rows whose crackling gamma difference is not available, grouped by reason."""
    by_reason: dict[str, list[str]] = {}
    for _, row in ordered.iterrows():
        for suffix, where in (("", "g*"), ("_g1", "g = 1")):
            if not _finite(_get(row, f"diff_crackling_gamma{suffix}")):
                reason = str(row.get(f"opt_crackling_reason{suffix}", "") or "").strip()
                by_reason.setdefault(reason or "reason not recorded", []).append(
                    f"{ref('T08', row)} at {where}"
                )
    return [
        f"- ¹ crackling gamma difference not available ({reason}): {', '.join(rows)}."
        for reason, rows in by_reason.items()
    ]


def control_section(groups_: list[Group], t08: pd.DataFrame | None) -> list[str]:
    """The "Trained vs untrained" section: per trained role the perplexity and drift numbers,
    then every T08 row's four paired differences at g* and at g = 1, as tables."""
    lines = ["## Trained vs untrained (T08)", ""]
    control = control_role(t08)
    if control is None:
        return [
            *lines,
            f"There is {NO_CONTROL_TEXT}: set `replication.control_role` to one of the model "
            "roles (the base model's untrained initialisation) to compare with it.",
        ]
    lines += [
        f"Control role `{control}` (model `{t08['control_model_id'].iloc[0]}`). T08 compares "
        "every other role with it on the same windows and the same bootstrap replicates, at "
        "each role's own g* and with both at g = 1. How far the control is from a language "
        "model: perplexity on dataset B at g = 1 (T02; the paired difference role − control on the "
        "same B windows from T08, **bold** when its CI excludes 0) and the largest held-out rate drift "
        "|achieved/r* − 1| over layers at g = 1 (T01, largest over spike definitions and rates).",
        "",
        *table(
            [
                "role vs control",
                "ppl B (role)",
                "ppl B (control)",
                "ratio control/role",
                "role − control, paired [CI]",
                "drift (role)",
                "drift (control)",
                "rows",
            ],
            [
                _role_row(groups_, role, control, t08)
                for role in dict.fromkeys(
                    t08.sort_values("compared_role", kind="stable")["compared_role"]
                )
            ],
        ),
        "",
        "Paired differences role − control; **bold**: the 95 % CI excludes 0 (*differs*).",
        "",
    ]
    ordered = t08.sort_values(["compared_role", "spike_def_id", "target_rate"], kind="stable")
    for title, suffix in (("at each role's own g*", ""), ("both at g = 1", "_g1")):
        rows = []
        for _, row in ordered.iterrows():
            cells = [
                f"{row['compared_role']} − {control}",
                row["spike_def_id"],
                key_number(row["target_rate"]),
            ]
            if not suffix:
                cells.append(
                    f"{key_number(row['g_star_compared'])} vs {key_number(row['g_star_control'])}"
                )
            cells += [_diff_cell(row, stat, suffix) for stat in DIFF_STATS]
            rows.append([*cells, ref("T08", row)])
        header = ["role − control", "spike def", "r*", *(["g*"] if not suffix else [])]
        header += [f"diff {stat}" for stat in DIFF_STATS]
        lines += [f"{title[0].upper()}{title[1:]}:", "", *table([*header, "row"], rows), ""]
    return [*lines, *_unavailable_gamma(ordered)]
