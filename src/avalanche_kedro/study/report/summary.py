"""The one-page summary at the top of the report (at most :data:`SUMMARY_MAX_LINES` lines).

Three sentences on the study, the verdict table (one row per role × spike definition × target
rate: S1-S3 with their specificity against the untrained control, falsifiers (a)-(c), and the
rows that decide them), five numbers with CIs per role for one headline group, the caveats,
what this run could not decide and why, and a link to every figure of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .decisions import (
    DOES_NOT_FIRE,
    FIRES,
    NOT_SPECIFIC,
    PRESENT,
    SPECIFIC,
    UNDETERMINED,
    decide_null_falsifier,
    decide_s2,
)
from .falsifiers import NULL_SHORT, NULLS, _null_values
from .formatting import _finite, key_number, ref, row_refs, table, value_ci
from .grouping import G_MATCH_ATOL, Group, _get, _one
from .signatures import g_star_cell, gstar_identified
from .time_depth import CONTEXT_DRIVEN

#: The summary (title and run line included) fits in this many lines.
SUMMARY_MAX_LINES = 60
#: Above this many groups the verdict table aggregates over target rates (then spike defs).
MAX_VERDICT_ROWS = 26

#: Each figure's caption in the summary's list and the HTML gallery.
FIGURE_CAPTIONS = {
    "F01_RASTER": "event raster",
    "F02_RATE_MATCHING": "rate matching",
    "F03_BRANCHING_VS_GAIN": "b_tot vs gain",
    "F04_DELTA_B_VS_GAIN": "delta_b_tot vs gain",
    "F05_GSTAR_SELECTION": "g* selection",
    "F06_GENERALIZATION_B": "dataset B at g*",
    "F07_ARC_ACCURACY": "ARC accuracy",
    "F08_SPIKE_DEF_ROBUSTNESS": "spike definitions",
    "F09_SUSCEPTIBILITY": "chi vs gain",
    "F10_NULL_COMPARISON": "the three nulls",
    "F11_ABLATIONS": "ablations",
    "F12_TRAINING_TRAJECTORY": "training trajectory",
    "F13_LENS_DEPTH": "logit lens by layer",
    "F14_COLLAPSE_VS_CASCADE": "collapse vs cascade depth",
    "CONTACT_SHEET": "contact sheet of every figure",
}

SIGNATURES = ("S1", "S2", "S3")
NBSP = "\u00a0"


def figure_label(figure_id: str) -> str:
    """``F03 b_tot vs gain``: the short id and the caption."""
    caption = FIGURE_CAPTIONS.get(figure_id, figure_id.split("_", 1)[-1].lower())
    return f"{figure_id.split('_')[0]} {caption}" if figure_id[:1] == "F" else caption


def figure_refs(figure_ids: Sequence[str], figures: Mapping[str, str] | None) -> str:
    """Reference-style links ``[F03 b_tot vs gain][F03_BRANCHING_VS_GAIN]`` to the figures this
    run drew (their targets are defined at the end of the report); empty without figures."""
    # no-break spaces inside a link text: wrapping never splits one link over two lines
    return " · ".join(
        f"[{figure_label(f).replace(' ', NBSP)}][{f}]"
        for f in figure_ids
        if figures and f in figures
    )


def _signature_cell(decided: Mapping[str, Any], signature: str) -> str:
    decision = decided[signature].decision
    if decision != PRESENT:
        return decision
    spec = decided[f"{signature}_spec"].decision
    return {SPECIFIC: "**specific**", NOT_SPECIFIC: "not specific"}.get(spec, PRESENT)


def _falsifier_cells(group: Group, decided: Mapping[str, Any]) -> list[str]:
    a = "**fires**" if decided["a"].decision == FIRES else "no"
    if decided["drift"].within_tolerance is False:
        a += ", drift"
    b = decided["b"]
    deciding = decide_null_falsifier(
        {name: _null_values(_one(group.t01, g=group.g_star), s) for name, s in NULLS}
    ).deciding
    b_cell = {FIRES: "**fires**", DOES_NOT_FIRE: "no"}.get(b.decision, b.decision)
    if deciding:
        b_cell += f" ({NULL_SHORT[deciding]})"
    c = decided["c"].decision
    c_cell = {FIRES: "**fires**", DOES_NOT_FIRE: "no"}.get(c, c)
    if _finite(group.g_star) and abs(group.g_star - 1.0) <= G_MATCH_ATOL:
        c_cell = "empty (g* = 1)"
    return [a, b_cell, c_cell]


def _deciding_rows(group: Group, decided: Mapping[str, Any]) -> str:
    """T01 at g* (S1, S2, (a), (b)), T05 at g* (S3), T02 at g* ((c)), T08 (specificity)."""
    spec = decided["S1_spec"].cells[2] if decided["S1_spec"].cells else "n/a"
    return (
        row_refs("T01", _one(group.t01, g=group.g_star))
        + " "
        + " ".join(
            r
            for r in (
                row_refs("T05", _one(group.t05, g=group.g_star)),
                row_refs("T02", _one(group.t02, g_condition="gstar")),
                spec if spec.startswith("T08:") else "",
            )
            if r and r != "n/a"
        )
    )


def _role_label(role: str, control: str | None) -> str:
    return f"{role} (control)" if role == control else role


def _verdict_rows(
    groups_: list[Group], findings: Mapping[tuple, Mapping[str, Any]], control: str | None
) -> tuple[list[str], list[list[str]]]:
    """The verdict table, one row per group; aggregated over rates (then spike definitions)
    when there are more than :data:`MAX_VERDICT_ROWS` groups, cells then counting groups."""
    header = ["role", "spike def", "r*", "g*", "S1", "S2", "S3", "(a)", "(b)", "(c)", "rows"]
    if len(groups_) <= MAX_VERDICT_ROWS:
        rows = []
        for group in groups_:
            decided = findings[(group.role, group.spike, group.rate)]
            rows.append(
                [
                    _role_label(group.role, control),
                    group.spike,
                    key_number(group.rate),
                    g_star_cell(group),
                    *(_signature_cell(decided, s) for s in SIGNATURES),
                    *_falsifier_cells(group, decided),
                    _deciding_rows(group, decided),
                ]
            )
        return header, rows
    by_spike = len({(g.role, g.spike) for g in groups_}) <= MAX_VERDICT_ROWS
    keys = list(dict.fromkeys((g.role, g.spike if by_spike else "every") for g in groups_))
    rows = []
    for role, spike in keys:
        members = [g for g in groups_ if g.role == role and spike in (g.spike, "every")]
        decided = [findings[(g.role, g.spike, g.rate)] for g in members]
        n = len(members)

        def count(key: str, value: str, decided=decided) -> int:
            return sum(d[key].decision == value for d in decided)

        cells = [
            f"{PRESENT} {count(s, PRESENT)}/{n}"
            + (f" (specific {count(f'{s}_spec', SPECIFIC)})" if control and role != control else "")
            for s in SIGNATURES
        ]
        cells += [f"fires {count(k, FIRES)}/{n}" for k in ("a", "b", "c")]
        rows.append(
            [_role_label(role, control), spike, f"{n} groups", "each its own", *cells, "below"]
        )
    return header, rows


def _headline(groups_: list[Group], provenance: Mapping[str, Any]) -> dict[str, Group]:
    """Per role the headline group: the configuration's first spike definition (else the first
    in T01) at that role's median target rate (the lower middle of an even count). Chosen
    before looking at any result, so the five numbers are not picked for their values."""
    configured = ((provenance.get("parameters") or {}).get("calibration") or {}).get(
        "spike_defs"
    ) or []
    present = list(dict.fromkeys(g.spike for g in groups_))
    spike = next((s for s in configured if s in present), present[0] if present else None)
    out: dict[str, Group] = {}
    for role in dict.fromkeys(g.role for g in groups_):
        mine = sorted(
            (g for g in groups_ if g.role == role and g.spike == spike), key=lambda g: g.rate
        )
        if mine:
            out[role] = mine[(len(mine) - 1) // 2]
    return out


def _strictest_null(group: Group) -> tuple[str, str]:
    star = _one(group.t01, g=group.g_star)
    values = {name: _null_values(star, suffix) for name, suffix in NULLS}
    deciding = decide_null_falsifier(values).deciding
    if deciding is None:
        return "n/a", ""
    return f"{value_ci(*values[deciding])} ({NULL_SHORT[deciding]})", ref("T01", star)


def _five_numbers(
    headline: Mapping[str, Group], t08: pd.DataFrame | None, control: str | None
) -> list[str]:
    from .control import t08_row

    rows = []
    for role, group in headline.items():
        star = _one(group.t01, g=group.g_star)
        null_cell, _ = _strictest_null(group)
        pair = t08_row(t08, role, group.spike, group.rate) if control and role != control else None
        b_s, b_1 = _one(group.t02, g_condition="gstar"), _one(group.t02, g_condition="g1")
        t05 = _one(group.t05, g=group.g_star)

        def ppl(row):
            return value_ci(
                _get(row, "ppl"), _get(row, "opt_ppl_ci_low"), _get(row, "opt_ppl_ci_high")
            )

        # the paired difference on the same B windows (falsifier (c)); older tables: both CIs
        diff = [_get(b_s, f"opt_ppl_diff_vs_g1{s}") for s in ("", "_ci_low", "_ci_high")]

        rows.append(
            [
                _role_label(role, control),
                value_ci(
                    *(_get(star, c) for c in ("b_tot", "opt_b_tot_ci_low", "opt_b_tot_ci_high"))
                ),
                null_cell,
                "—"
                if role == control
                else "n/a"
                if pair is None
                else value_ci(
                    _get(pair, "diff_b_tot"),
                    _get(pair, "diff_b_tot_ci_low"),
                    _get(pair, "diff_b_tot_ci_high"),
                ),
                value_ci(*diff) if _finite(diff[0]) else f"{ppl(b_s)} vs {ppl(b_1)}",
                value_ci(
                    _get(t05, "crackling_gamma"),
                    _get(t05, "crackling_ci_low"),
                    _get(t05, "crackling_ci_high"),
                ),
                " ".join(
                    r
                    for r in (
                        row_refs("T01", star),
                        ref("T08", pair) if pair is not None else "",
                        row_refs("T02", b_s, b_1),  # g*, then g = 1
                        row_refs("T05", t05),
                    )
                    if r and r != "n/a"
                ),
            ]
        )
    header = [
        "role",
        "1. b_tot at g*",
        "2. delta_b_tot, strictest null",
        "3. b_tot − control (T08)",
        "4. ppl B: g* − g = 1, paired",
        "5. crackling gamma",
        "rows",
    ]
    return table(header, rows)


def _not_available(
    groups_: list[Group],
    findings: Mapping[tuple, Mapping[str, Any]],
    tables: Mapping[str, pd.DataFrame | None],
    roles: list[str],
    control: str | None,
    figures: Mapping[str, str] | None,
) -> list[str]:
    """What this run could not decide, and why, in words."""
    notes = []
    if not groups_:
        notes.append("T01 has no (role, spike definition, rate) group: nothing could be decided.")
    no_gstar = [g for g in groups_ if not _finite(g.g_star)]
    if no_gstar:
        notes.append(
            f"g* is unknown in {len(no_gstar)} of {len(groups_)} groups (no T01 row with "
            "`opt_is_gstar`, no T02 `gstar` row): every verdict at g* is undetermined there."
        )
    missing = [
        s
        for s in SIGNATURES
        if groups_ and all(findings[k][s].decision == UNDETERMINED for k in findings)
    ]
    if groups_ and len(missing) == len(SIGNATURES):
        notes.append(
            "No signature is available in this run: S1, S2 and S3 are undetermined in every "
            "group (no finite b_tot or CI at g*, no finite chi on the grid, no T05 row at g*)."
        )
    elif missing:
        notes.append(
            f"{', '.join(missing)} not available in any group: undetermined everywhere (see the "
            "section of each)."
        )
    if control is None:
        notes.append(
            "Specificity not available: this run has no untrained control role (no T08), so no "
            "signature can be called specific."
        )
    t07 = tables.get("T07")
    if t07 is None or t07.empty:
        if len(roles) < 2:
            notes.append(
                f"Replication (T07) not available: this run has one model role (`{roles[0]}`)."
                if roles
                else "Replication (T07) not available: no model role."
            )
        else:
            notes.append(
                f"Replication (T07) not available: the table is missing although the run has "
                f"{len(roles)} roles."
            )
    if figures is None:
        notes.append(
            "Figures not linked: the run's save version was not given (report built outside a "
            "Kedro run)."
        )
    return [f"- {note}" for note in notes]


def _caveats(groups_: list[Group], findings: Mapping[tuple, Mapping[str, Any]]) -> list[str]:
    n = len(groups_)
    with_gstar = [g for g in groups_ if _finite(g.g_star)]
    edge = sum(g.g_star in (g.t01["g"].min(), g.t01["g"].max()) for g in with_gstar)
    s2 = [decide_s2(g.t01["g"].to_list(), g.t01["chi"].to_list(), g.g_star) for g in with_gstar]
    drifting = sum(
        findings[(g.role, g.spike, g.rate)]["drift"].within_tolerance is False for g in groups_
    )
    unidentified = sum(gstar_identified(g) is False for g in with_gstar)
    notes = []
    if unidentified:
        notes.append(
            f"**g* not identified** (n.i.) in {unidentified} of {n} groups: b_tot is flat within "
            'noise across the grid, so results "at g*" there are at one gain of a flat curve'
        )
    if edge:
        notes.append(f"g* is an end of the gain grid in {edge} of {n} groups (not bracketed)")
    if sum(d.at_edge for d in s2):
        notes.append(f"chi peaks at a grid end in {sum(d.at_edge for d in s2)} of {n}")
    if drifting:
        notes.append(
            f"**held-out rates drift** in {drifting} of {n} (trends with g on the analysis "
            "slice can partly be rate effects; section (a))"
        )
    return [f"Caveats: {'; '.join(notes)}."] if notes else []


def _study_sentences(
    provenance: Mapping[str, Any], groups_: list[Group], roles: list[str], control: str | None
) -> str:
    models = provenance.get("models") or {}
    params = provenance.get("parameters") or {}
    windows = params.get("windows") or {}
    grid = [float(g) for g in params.get("gain_grid") or []]
    who = ", ".join(
        f"`{r}`{' (untrained control)' if r == control else ''} = "
        f"{(models.get(r) or {}).get('model_id', 'n/a')}"
        for r in roles
    )
    gains = (
        f" at {len(grid)} MLP gains g from {key_number(min(grid))} to {key_number(max(grid))}"
        if grid
        else ""
    )
    spikes = list(dict.fromkeys(g.spike for g in groups_))
    n_rates = len({(g.role, g.rate) for g in groups_}) // max(1, len({g.role for g in groups_}))
    return (
        f"This run measures activation-event cascades in {len(roles)} model role"
        f"{'s' if len(roles) != 1 else ''} ({who}){gains}. "
        f"It reads windows of {windows.get('seq_len', 'n/a')} tokens: "
        f"{windows.get('n_calibration', 'n/a')} calibration and {windows.get('n_raster', 'n/a')} "
        f"analysis windows of dataset A and {windows.get('n_eval_b', 'n/a')} of dataset B, plus "
        "ARC questions. For each of its "
        f"{len(groups_)} groups ({len(spikes)} spike definition{'s' if len(spikes) != 1 else ''} "
        f"× {n_rates} target rate{'s' if n_rates != 1 else ''} per role) it tests three signatures "
        "of criticality at g*, the gain with branching b_tot nearest 1 (S1 b_tot ≈ 1, S2 a chi "
        "peak, S3 crackling), and three falsifiers ((a) rate matching, (b) rate-preserving "
        "nulls, (c) generalization to dataset B and ARC)."
    )


def _counts(
    groups_: list[Group], findings: Mapping[tuple, Mapping[str, Any]], control: str | None
) -> str:
    def count(key: str, value: str, among=groups_) -> int:
        return sum(findings[(g.role, g.spike, g.rate)][key].decision == value for g in among)

    text = (
        f"Over {len(groups_)} groups: S1 present in {count('S1', PRESENT)}, S2 in "
        f"{count('S2', PRESENT)}, S3 in {count('S3', PRESENT)}; (a) fires in {count('a', FIRES)}, "
        f"(b) in {count('b', FIRES)}, (c) in {count('c', FIRES)}. Connectivity beyond the "
        f"token-shuffle null (context-driven) in {count('td', CONTEXT_DRIVEN)}"
        + "".join(
            f", {role} {count('td', CONTEXT_DRIVEN, among)} of {len(among)}"
            for role in dict.fromkeys(g.role for g in groups_)
            if (among := [g for g in groups_ if g.role == role])
        )
        + " (section Time vs depth)."
    )
    if control is not None:
        trained = [g for g in groups_ if g.role != control]
        text += (
            f" Specific against the untrained control `{control}` (T08), over {len(trained)} "
            f"trained groups: S1 in {count('S1_spec', SPECIFIC, trained)}, S2 in "
            f"{count('S2_spec', SPECIFIC, trained)}, S3 in {count('S3_spec', SPECIFIC, trained)}."
        )
    return text


def _legend(control: str | None) -> str:
    specific = (
        " a present signature of a trained role is **specific** or *not specific* against the "
        "untrained control (T08);"
        if control
        else ""
    )
    return (
        f"S cells: *present* / *absent* / *undetermined*;{specific} (a) *drift*: held-out rates "
        "drift; (b) names the deciding (strictest) null. Rows: T01 at g* (S1, S2, (a), (b)), T05 "
        f"(S3), T02 ((c)){', T08 (specificity)' if control else ''}; `T01:12` is `T01.iloc[12]`."
    )


def summary_section(
    provenance: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame | None],
    groups_: list[Group],
    findings: Mapping[tuple, Mapping[str, Any]],
    control: str | None,
    figures: Mapping[str, str] | None,
) -> list[str]:
    """The summary's lines (before wrapping to :data:`.formatting.MAX_LINE`)."""
    roles = list(provenance.get("roles") or dict.fromkeys(g.role for g in groups_))
    lines = ["## Summary", "", _study_sentences(provenance, groups_, roles, control), ""]
    if groups_:
        header, rows = _verdict_rows(groups_, findings, control)
        lines += [
            _counts(groups_, findings, control),
            "",
            *table(header, rows),
            "",
            _legend(control),
        ]
        headline = _headline(groups_, provenance)
        if headline:
            first = next(iter(headline.values()))
            rates = {key_number(g.rate) for g in headline.values()}
            at = (
                f"r* = {next(iter(rates))}"
                if len(rates) == 1
                else ", ".join(f"{r} r* = {key_number(g.rate)}" for r, g in headline.items())
            )
            lines += [
                "",
                f"Five numbers with 95 % CIs per role, for the headline group {first.spike} at the "
                f"median target rate ({at}), chosen before any result; every group is in the "
                "sections below. Nulls: perm = time permutation, shift = circular shift, tokens = "
                "token shuffle.",
                "",
                *_five_numbers(headline, tables.get("T08"), control),
            ]
        caveats = _caveats(groups_, findings)
        lines += ["", *caveats] if caveats else []
    unavailable = _not_available(groups_, findings, tables, roles, control, figures)
    if unavailable:
        lines += ["", *unavailable]
    links = figure_refs(list(figures or {}), figures)
    if links:
        lines += ["", f"Figures of this run: {links}."]
    return lines
