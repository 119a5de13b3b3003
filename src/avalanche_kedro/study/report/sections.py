"""The report's detailed sections, each written once: the rule in a short paragraph, then one
table row per (role, spike definition, target rate) group with its evidence and the rows
behind it (``T01:12`` is ``T01.iloc[12]``, :func:`.formatting.ref`).

The cells come from the findings (:attr:`.grouping.Finding.cells`), decided in
:mod:`.signatures`, :mod:`.falsifiers`, :mod:`.ablations` and :mod:`.control`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .control import NO_CONTROL_TEXT
from .formatting import _finite, key_number, num, ref, table
from .grouping import G_MATCH_ATOL, Group, _get, _one
from .replication import replication_findings
from .signatures import g_star_cell

#: Each section's rule, in words (the rules as code are in :mod:`.decisions`).
RULES = {
    "S1": "At g* (the T01 row with `opt_is_gstar`: the grid gain with b_tot nearest 1 on the "
    "dataset A analysis slice), S1 is *present* when the b_tot bootstrap CI contains 1 (bounds "
    "included), otherwise *absent*, with the gap from 1 to the nearer CI bound. The g = 1 value "
    "is shown next to it. *(edge)*: g* is an end of the gain grid, so the grid does not bracket "
    "the gain with b_tot nearest 1.",
    "S2": "chi = var(Y)/mean(Y) of the per-window event count. S2 is *present* when the grid "
    "gain of maximal chi (ties: the smaller gain) is g* or a grid neighbour of g*, else "
    "*absent*. A maximum at an end of the grid is no interior peak (*weak* when present).",
    "S3": "Mean avalanche size vs token span over 3 ≤ D ≤ 64 with a window-bootstrap CI (SPEC "
    "§6). S3 is *present* when the T05 gate passed at g* (finite gamma, ≥ 8 distinct "
    "durations, CI width ≤ 0.5), otherwise *absent* with the gate's reason.",
    "specific": "Against the untrained control (T08: role − control on the same windows and "
    "bootstrap replicates, each at its own g*), a present signature is **specific** when it "
    "separates: S1 when the CI of diff b_tot excludes 0, S2 when that of diff chi does, S3 when "
    "the control's own S3 is absent or the CI of diff crackling gamma excludes 0; otherwise "
    "*not specific* (the control shows it too, or it is not separated).",
    "a": "Thresholds are fitted on the calibration slice at every gain. (a) *fires* when an "
    "in-sample largest |achieved − r*| over layers (T01 `achieved_rate_max_abs_err`) exceeds the "
    "largest per-layer tolerance (`opt_rate_match_tol_abs_max`); the events pipeline stops the "
    "run first, so a saved run cannot show it. The held-out (analysis-slice) mean rate is "
    "reported, not gated: its largest distance from the target and its spread across gains, "
    "relative to the target; it *drifts* when either exceeds `rel_tol`, and trends of b_tot and "
    "chi with g on that slice can then partly be rate effects.",
    "b": "delta_b_tot = b_tot(real) − b_tot(null) at g*, with paired window-bootstrap CIs, "
    "against three nulls: the within-layer time permutation (perm), the within-layer circular "
    "shift (shift) and the input token shuffle (tokens). (b) *fires* when the CI of ANY recorded null contains 0 "
    "(explained by the rates) or lies below 0, and *does not fire* only when every recorded "
    "null's CI lies above 0 (**bold**). The deciding null is the recorded one with the smallest "
    "CI lower bound; a null not recorded at g* counts for nothing, and with none recorded (b) "
    "is *undetermined*. *perm > 0 at*: the gains whose permutation CI lies above 0; "
    "*marginals*: both raster nulls kept every (window, layer) event multiset at every gain.",
    "gid": "g* is *identified* when it beats every other grid gain beyond the window noise: for "
    "each other gain g the margin |b_tot(g) − 1| − |b_tot(g*) − 1| gets a paired CI (one resample "
    "of the analysis windows applied to every gain), and every margin CI must lie above 0. The "
    "runner-up is the gain whose margin CI has the lowest bound. Where g* is *not identified* "
    "(*n.i.* in the summary and S1) b_tot is flat within noise across the grid, so every result "
    '"at g*" of that group is at one gain of a flat curve.',
    "td": "b_tot = b_time + b_depth, so each null's delta splits into what it removes along "
    "tokens (b_time) and along layers (b_depth), at g* with paired CIs (T01). The permutation null "
    "scatters each layer's events over tokens (it removes both alignments); the token-shuffle "
    "null runs the model on the same tokens in shuffled order, so what survives it is driven by "
    "the context. *context-driven*: the delta_b_tot CI against token shuffle lies above 0; else "
    "*not context-driven* when the permutation b_time CI lies above 0 (structure along tokens that "
    "shuffled text gives too), *depth alignment only* when only its b_depth CI does, *none "
    "beyond rates* when neither; "
    "*context not tested* when the token-shuffle null is not recorded at g*.",
    "c": "g* is frozen on dataset A and applied unchanged to dataset B (with A's thresholds) and "
    "to ARC multiple choice. Both gains see the same B windows and the same questions, so (c) is "
    "decided on the paired difference g* − g = 1 (one bootstrap resample applied to both sides): "
    "it *fires* when the perplexity difference's CI lies above 0 or the accuracy difference's "
    "below 0 (**bold**: the side that fires); half a CI's width is the smallest difference the "
    "design detects. A table without the paired columns (an older run) shows the two values and "
    "is decided on non-overlapping CIs. With g* = 1 the test is empty. ARC has *no power* when "
    "accuracy at g = 1 is not above chance (its CI reaches the chance level, the mean of "
    "1/options). Whether b_tot on B is nearer 1 at g* is reported, next to B's mean event rate "
    "relative to r* (B uses A's thresholds, so its rates are not matched): *drift* when either "
    "gain's is off r* by more than rel_tol, and then a b_tot difference on B can be a rate effect.",
    "T06": "Each intervention is rate-matched separately; the shift is b_tot(intervention, g*) − "
    "b_tot(MLP_GLOBAL, g = 1) for MLP = MLP_GLOBAL, ATTN = ATTN_GLOBAL and the MLP bands "
    "early/mid/late, with a paired CI (the same windows resampled for both rasters). The effect "
    "*tracks the MLP gain* when the paired CI of |shift(MLP)| − |shift(ATTN)| (in the *tracks* "
    "cell) lies above 0, *attention* when it lies below 0, and is *not resolved* when it "
    "contains 0; a table without paired columns falls back to the point comparison. The MLP "
    "band with the largest |shift| is named.",
    "T07": "Paired differences compared − reference at each role's own g*, on the same windows "
    "and bootstrap indices; a difference *differs* when its CI excludes 0.",
}

KEY_HEADER = ["role", "spike def", "r*"]


def _key(group: Group, with_g: bool = True, identification: bool = False) -> list[str]:
    """The group's key cells; g* marked *n.i.* (not identified) only where ``identification``
    (the summary and S1, whose sentences explain it): the other tables keep their rows short."""
    return [
        group.role,
        group.spike,
        key_number(group.rate),
        *([g_star_cell(group, identification)] if with_g else []),
    ]


def _joined(*refs: str) -> str:
    return " ".join(r for r in dict.fromkeys(" ".join(refs).split(" ")) if r and r != "n/a") or (
        "n/a"
    )


def signature_section(
    signature: str,
    title: str,
    columns: list[str],
    groups_: list[Group],
    findings: Mapping[tuple, Mapping[str, Any]],
    control: str | None,
) -> list[str]:
    """S1, S2 or S3: the rule, then per group its evidence cells and, with a control role, the
    T08 difference and the specificity verdict."""
    spec_columns = [f"vs control: {columns[-1]}", "vs control"] if control else []
    rows = []
    for group in groups_:
        decided = findings[(group.role, group.spike, group.rate)]
        finding, spec = decided[signature], decided[f"{signature}_spec"]
        cells, cited = list(finding.cells[:-1]), finding.cells[-1]
        if control:
            cells += list(spec.cells[:2])
            cited = _joined(cited, spec.cells[2])
        rows.append([*_key(group, identification=signature == "S1"), *cells, cited])
    if not control:
        paragraph = f"{RULES[signature]} Specificity: {NO_CONTROL_TEXT}."
    elif signature == "S1":  # the specificity rule once, in the first signature's section
        paragraph = f"{RULES[signature]} {RULES['specific']}"
    else:
        paragraph = (
            f"{RULES[signature]} **specific** / *not specific* against `{control}`: as in S1."
        )
    header = [*KEY_HEADER, "g*", *columns[:-1], *spec_columns, "rows"]
    return [f"## {title}", "", paragraph, "", *table(header, rows)]


def group_section(
    key: str,
    title: str,
    columns: list[str],
    groups_: list[Group],
    findings,
    with_g: bool = True,
    skip_empty: bool = False,
) -> list[str]:
    """A falsifier or the ablations: the rule, then one row of evidence cells per group; with
    ``skip_empty`` no section at all when no group has the finding (older tables)."""
    rows = []
    for group in groups_:
        finding = findings[(group.role, group.spike, group.rate)].get(key)
        if finding is not None and finding.cells:
            rows.append([*_key(group, with_g), *finding.cells])
    if skip_empty and not rows:
        return []
    header = [*KEY_HEADER, *(["g*"] if with_g else []), *columns, "rows"]
    body = table(header, rows) if rows else ["No group has the rows this section reads."]
    return [f"## {title}", "", RULES[key], "", *body]


def replication_section(t07: pd.DataFrame | None, roles: list[str]) -> list[str]:
    lines = ["## Replication (T07)", ""]
    if t07 is None or t07.empty:
        return [
            *lines,
            f"Replication was not run: this run has {len(roles)} model role"
            f"{'s' if len(roles) != 1 else ''} ({', '.join(roles)}); T07 needs at least two.",
        ]
    reps = replication_findings(t07)
    differs = sum(f.decision == "differs" for f in reps)
    header = [
        "compared − reference",
        "spike def",
        "r*",
        "g*",
        "diff delta_b_tot",
        "verdict",
        "diff chi",
        "verdict",
        "row",
    ]
    return [
        *lines,
        f"{RULES['T07']} delta_b_tot differs between roles in {differs} of {len(reps)} rows.",
        "",
        *table(header, [list(f.cells) for f in reps]),
    ]


def shape_section(t01: pd.DataFrame) -> list[str]:
    """How much b_tot moves with g versus with the target rate (SPEC §13's shape)."""
    rows = []
    for (role, spike), part in t01.groupby(["model_role", "spike_def_id"], sort=True):
        over_g = part.groupby("target_rate")["b_tot"].agg(lambda s: s.max() - s.min())
        at_one = part[np.isclose(part["g"].astype(float), 1.0, rtol=0, atol=G_MATCH_ATOL)]
        if at_one.empty or over_g.empty:
            continue
        over_r = at_one["b_tot"].max() - at_one["b_tot"].min()
        rows.append(
            [
                role,
                spike,
                num(over_g.max(), 3),
                num(over_r, 3),
                f"`T01[{role}, {spike}, every r, g]`",
            ]
        )
    if not rows:
        return []
    return [
        "How b_tot moves with the gain versus with the target rate: the largest span of b_tot "
        "across the gain grid at a fixed rate, and its span across target rates at g = 1.",
        "",
        *table(["role", "spike def", "span over g", "span over r* at g = 1", "rows"], rows),
    ]


def tail_section(groups_: list[Group]) -> list[str]:
    rows = []
    for group in groups_:
        row = _one(group.t04, g=group.g_star)
        if row is None:
            continue
        n_tail = _get(row, "n_tail")
        rows.append(
            [
                *_key(group),
                "yes" if bool(row.get("opt_available", True)) else "no",
                str(int(n_tail)) if _finite(n_tail) else "n/a",
                num(_get(row, "alpha_powerlaw"), 3),
                f"{num(_get(row, 'llr_powerlaw_vs_lognormal'), 3)} "
                f"({num(_get(row, 'opt_p_powerlaw_vs_lognormal'), 2)})",
                f"{num(_get(row, 'llr_powerlaw_vs_exponential'), 3)} "
                f"({num(_get(row, 'opt_p_powerlaw_vs_exponential'), 2)})",
                ref("T04", row),
            ]
        )
    if not rows:
        return []
    header = [*KEY_HEADER, "g*", "available", "n_tail", "alpha", "LLR vs lognormal (p)"]
    header += ["LLR vs exponential (p)", "row"]
    return [
        "## Tail fits (T04, descriptive only)",
        "",
        "Heavy tails are not evidence of criticality; these fits describe the size distribution "
        "at g* and decide nothing. LLR > 0 favours the power law.",
        "",
        *table(header, rows),
    ]
