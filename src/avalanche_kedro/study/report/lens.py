"""Report section "Where the prediction forms vs where cascades run" (T10, T11).

Per role it says where the logit lens sharpens - the layer into which the mean lens entropy
falls most (T10) and the mean collapse layer (T11) - next to the mean cascade depth, and
whether, token by token, the collapse layer and the cascade depth are rank-correlated beyond
the token-shuffle null (T11), with a plain verdict per (role, spike definition, target rate,
g condition):

- *aligned beyond the token-shuffle null* only when the permutation p < 0.05 **and** the 95 %
  window-bootstrap CI of rho excludes the null's mean;
- *not distinguishable from the token-shuffle null* otherwise;
- *undefined: <reason>* when rho is not defined (no token has an event, or the collapse layer
  is constant).

With an untrained control role among the roles, each trained role's rho is set against the
control's at the same (spike definition, rate, g condition). Both were measured on the same
windows with the same bootstrap, so the decision is paired: it *differs* when the 95 % CI of
the replicate differences (T11 ``diff_rho_ci_*_vs_control``) excludes 0. Only where T11 has
no paired CI (tables saved without it) does it fall back to two non-overlapping CIs, and says
that this is a descriptive comparison, not a paired test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..lens import KEYS, steepest_entropy_drop, untrained_roles
from .formatting import _finite, cite, key_number, num, value_ci

ALPHA = 0.05
ALIGNED = "aligned beyond the token-shuffle null"
NOT_DISTINGUISHABLE = "not distinguishable from the token-shuffle null"
UNDEFINED = "undefined"
DIFFERS = "differs from the control"
OVERLAPS = "does not differ from the control"
NOT_COMPARABLE = "not comparable"
G_LABELS = {"g1": "g = 1", "gstar": "g*"}
TITLE = "## Where the prediction forms vs where cascades run (T10, T11)"


def lens_tables(
    tables: Mapping[str, pd.DataFrame | None],
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """T10 and T11 from the report's table mapping (keys ``T10`` or ``T10_LENS`` ...)."""
    found: dict[str, pd.DataFrame | None] = {"T10": None, "T11": None}
    for key, value in tables.items():
        short = str(key)[:3].upper()
        if short in found:  # positions as the index: the n of a `T11:n` citation
            found[short] = (
                value.reset_index(drop=True) if isinstance(value, pd.DataFrame) else value
            )
    return found["T10"], found["T11"]


def decide_alignment(row: Mapping[str, Any]) -> tuple[str, str]:
    """``(decision, verdict text)`` of one T11 row (rules in the module docstring)."""
    if not bool(row["defined"]) or not _finite(row["spearman_rho"]):
        reason = str(row.get("reason", "") or "").strip() or "reason not recorded"
        return UNDEFINED, f"{UNDEFINED}: {reason}"
    p, mean = float(row["p_value_vs_null"]), float(row["null_rho_mean"])
    low, high = float(row["rho_ci_low"]), float(row["rho_ci_high"])
    if p < ALPHA and (mean < low or mean > high):
        return ALIGNED, ALIGNED
    return NOT_DISTINGUISHABLE, NOT_DISTINGUISHABLE


def compare_with_control(row: Mapping[str, Any], control: Mapping[str, Any] | None) -> str:
    """Whether a trained role's rho differs from the control's: the paired CI of the difference
    excludes 0 (or, without a paired CI, the two CIs do not overlap, said so):
    :data:`DIFFERS`, :data:`OVERLAPS`, or :data:`NOT_COMPARABLE` with the reason."""
    if control is None:
        return f"{NOT_COMPARABLE}: no control row"
    for side in (row, control):
        decision, text = decide_alignment(side)
        if decision == UNDEFINED:
            reason = text.split(": ", 1)[1]
            return f"{NOT_COMPARABLE}: rho of `{side['model_role']}` is undefined ({reason})"
    low, high = row.get("diff_rho_ci_low_vs_control"), row.get("diff_rho_ci_high_vs_control")
    if _finite(low) and _finite(high):  # the paired bootstrap on the same windows
        return DIFFERS if (float(low) > 0 or float(high) < 0) else OVERLAPS
    apart = float(row["rho_ci_high"]) < float(control["rho_ci_low"]) or float(
        row["rho_ci_low"]
    ) > float(control["rho_ci_high"])
    return (DIFFERS if apart else OVERLAPS) + " (CIs compared, not paired)"


def _rho_text(row: pd.Series) -> str:
    if decide_alignment(row)[0] == UNDEFINED:
        return "n/a"
    return value_ci(row["spearman_rho"], row["rho_ci_low"], row["rho_ci_high"])


def _diff_text(row: pd.Series) -> str:
    low, high = row.get("diff_rho_ci_low_vs_control"), row.get("diff_rho_ci_high_vs_control")
    if not (_finite(low) and _finite(high)):
        return "n/a"
    return value_ci(row["diff_rho_vs_control"], low, high)


def _null_text(row: pd.Series) -> str:
    if not _finite(row["null_rho_mean"]):
        return "n/a"
    return value_ci(row["null_rho_mean"], row["null_rho_low"], row["null_rho_high"])


#: a verdict in a table cell (the section's paragraph says each in full)
VERDICT_CELL = {ALIGNED: "**aligned**", NOT_DISTINGUISHABLE: "not distinguishable"}


def _verdict_cell(row: pd.Series) -> str:
    decision, text = decide_alignment(row)
    return VERDICT_CELL.get(decision, text)


def _cite11(row: pd.Series) -> str:
    return cite(
        "T11",
        row["model_role"],
        row["spike_def_id"],
        float(row["target_rate"]),
        g_condition=row["g_condition"],
    )


def _layers_of(t10: pd.DataFrame | None, row: pd.Series) -> pd.DataFrame:
    if t10 is None or t10.empty:
        return pd.DataFrame()
    keep = (
        (t10["model_role"] == row["model_role"])
        & (t10["g_condition"] == row["g_condition"])
        & (t10["spike_def_id"] == row["spike_def_id"])
        & np.isclose(t10["target_rate"].astype(float), float(row["target_rate"]), atol=0.0)
    )
    return t10[keep]


def _drop_text(layers: pd.DataFrame) -> str:
    layer, drop = steepest_entropy_drop(layers) if len(layers) else (None, float("nan"))
    return "n/a" if layer is None else f"{layer} (−{num(drop, 3)} nats)"


def _ordered(t11: pd.DataFrame, roles: Sequence[str]) -> pd.DataFrame:
    rank = t11["model_role"].map({role: i for i, role in enumerate(roles)})
    order = np.lexsort(
        (
            t11["g_condition"].map({"g1": 0, "gstar": 1}).to_numpy(),
            t11["target_rate"].astype(float).to_numpy(),
            t11["spike_def_id"].astype(str).to_numpy(),
            rank.to_numpy(),
        )
    )
    return t11.iloc[order]


def _role_summary(role: str, rows: pd.DataFrame, t10: pd.DataFrame | None) -> str:
    decisions = [decide_alignment(r)[0] for _, r in rows.iterrows()]
    first = rows.iloc[0]
    at_g1 = rows[rows["g_condition"] == "g1"]
    reference = at_g1.iloc[0] if len(at_g1) else first
    layers = _layers_of(t10, reference)
    counts = ", ".join(
        f"{label} in {decisions.count(decision)}"
        for decision, label in (
            (ALIGNED, "aligned beyond the null"),
            (NOT_DISTINGUISHABLE, "not distinguishable from it"),
            (UNDEFINED, "undefined"),
        )
        if decisions.count(decision)
    )
    return (
        f"- `{role}`: the mean lens entropy falls most into layer {_drop_text(layers)} at "
        f"g = 1 and the mean collapse layer is {num(reference['mean_collapse_layer'], 3)} "
        f"({_cite11(reference)}); collapse layer vs cascade depth is {counts} of "
        f"{len(rows)} (spike definition, rate, g condition) rows."
    )


def _control_lines(ordered: pd.DataFrame, control: str) -> list[str]:
    lines = [
        f"### Against the untrained control `{control}`",
        "",
        "Each trained role's rho next to the control's at the same spike definition, rate and "
        "g condition (each role at its own g*), on the same windows. *Differs* means the 95 % "
        "CI of the paired difference (the same bootstrap replicates for both roles) excludes 0.",
        "",
        "| role | spike def | r* | g condition | rho [95 % CI] | control rho [95 % CI] | "
        "rho − control [paired 95 % CI] | comparison |",
        "|---|---|---|---|---|---|---|---|",
    ]
    controls = ordered[ordered["model_role"] == control].set_index(KEYS)
    tally: dict[str, dict[str, int]] = {}
    for _, row in ordered[ordered["model_role"] != control].iterrows():
        key = (row["g_condition"], row["spike_def_id"], row["target_rate"])
        other = controls.loc[key] if key in controls.index else None
        verdict = compare_with_control(row, other)
        kind = verdict.split(":")[0]
        tally.setdefault(row["model_role"], {}).setdefault(kind, 0)
        tally[row["model_role"]][kind] += 1
        lines.append(
            f"| {row['model_role']} | {row['spike_def_id']} | {key_number(row['target_rate'])} | "
            f"{G_LABELS[row['g_condition']]} | {_rho_text(row)} | "
            f"{'n/a' if other is None else _rho_text(other)} | {_diff_text(row)} | {verdict} |"
        )
    lines.append("")
    for role, verdicts in tally.items():
        parts = ", ".join(f"{verdict} in {n}" for verdict, n in verdicts.items())
        lines.append(f"- `{role}` vs `{control}`: {parts} of {sum(verdicts.values())} rows.")
    return lines


def lens_section(
    t10: pd.DataFrame | None,
    t11: pd.DataFrame | None,
    provenance: Mapping[str, Any] | None = None,
    control_role: str | None = None,
) -> list[str]:
    """The section's lines; empty without T11 (the lens was not run)."""
    if t11 is None or t11.empty:
        return []
    present = list(dict.fromkeys(t11["model_role"].astype(str)))
    roles = [r for r in (provenance or {}).get("roles", []) if r in present]
    roles += [r for r in present if r not in roles]
    untrained = untrained_roles(roles, provenance, control_role)
    control = control_role if control_role in roles else (untrained[0] if untrained else None)
    ordered = _ordered(t11, roles)
    lines = [
        TITLE,
        "",
        "The logit lens decodes the residual stream after each block through the final norm "
        "and the unembedding (dataset A analysis windows, MLP_GLOBAL at g = 1 and at each "
        "role's g*). Per token, the *collapse layer* is the first layer from which the lens "
        "top-1 stays the final top-1 and the *cascade depth* is the number of layers spanned "
        "by events at that token; rho is their Spearman rank correlation over tokens with a "
        "95 % window-bootstrap CI, set against the token-shuffle null (cascade depths permuted "
        "across the tokens of each window; its mean and 2.5–97.5 % interval). Verdict: "
        f"*{ALIGNED}* only when p < {ALPHA:g} and the CI of rho excludes the null's mean; "
        f"otherwise *{NOT_DISTINGUISHABLE}*; *undefined* with the reason when rho is not "
        "defined. *entropy drop into*: the layer into which the mean lens entropy falls most "
        "(T10); *collapse*: mean collapse layer; *depth*: mean cascade depth (layers). Figures "
        "F13 and F14 draw one spike definition and rate.",
        "",
        "| role | spike def | r* | at | g | entropy drop into | collapse | depth | rho [95 % CI] "
        "| null [2.5, 97.5 %] | p | verdict | row |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in ordered.iterrows():
        p = num(row["p_value_vs_null"], 2) if _finite(row["p_value_vs_null"]) else "n/a"
        lines.append(
            f"| {row['model_role']} | {row['spike_def_id']} | {key_number(row['target_rate'])} | "
            f"{G_LABELS[row['g_condition']]} | {key_number(row['g'])} | "
            f"{_drop_text(_layers_of(t10, row))} | {num(row['mean_collapse_layer'], 3)} | "
            f"{num(row['mean_cascade_depth'], 3)} | {_rho_text(row)} | {_null_text(row)} | {p} | "
            f"{_verdict_cell(row)} | T11:{row.name} |"
        )
    lines.append("")
    lines += [
        _role_summary(role, ordered[ordered["model_role"] == role], t10)
        for role in roles
        if (ordered["model_role"] == role).any()
    ]
    lines.append("")
    if control is None:
        lines.append(
            "No untrained control in this run: whether the alignment is more than what the "
            "architecture and the event rate give without training cannot be said."
        )
    elif len(roles) < 2:
        lines.append(
            f"The only role, `{control}`, is untrained: there is no trained role to "
            "compare with it."
        )
    else:
        lines += _control_lines(ordered, control)
    return lines
