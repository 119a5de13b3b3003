"""Report section "Signatures": S1 branching near 1 at g*, S2 chi peak near g*, S3 crackling."""

from __future__ import annotations

import math

from .decisions import (
    ABSENT,
    PRESENT,
    UNDETERMINED,
    crackling_gate_reason,
    decide_s1,
    decide_s2,
    decide_s3,
)
from .formatting import _finite, ci, key_number, num, ref, row_refs, value_ci
from .grouping import G_MATCH_ATOL, Finding, Group, _get, _one


def g_star_cell(group: Group, identification: bool = True) -> str:
    """g* for a table cell; ``(edge)`` when it is an end of the gain grid (not bracketed),
    ``n.i.`` when it is not identified (:func:`gstar_identified`; only with
    ``identification``), ``none`` when the tables have no g* row."""
    if not _finite(group.g_star):
        return "none"
    grid = group.t01["g"].astype(float).to_numpy()
    edge = grid.size and group.g_star in (grid.min(), grid.max())
    unidentified = identification and gstar_identified(group) is False
    marks = [m for m, on in (("edge", edge), ("n.i.", unidentified)) if on]
    suffix = f" ({', '.join(marks)})" if marks else ""
    return f"{key_number(group.g_star)}{suffix}"


def gstar_identified(group: Group) -> bool | None:
    """Whether g* beats every other gain by a paired margin whose CI lies above 0 (T01's
    ``opt_gstar_identified``, from :func:`avalanche_kedro.evaluation.gstar.gstar_identification`);
    None when T01 does not carry it."""
    star = _one(group.t01, g=group.g_star)
    value = _get(star, "opt_gstar_identified") if star is not None else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value)


def identification_finding(group: Group) -> Finding | None:
    """The evidence behind a g* cell's *n.i.*: runner-up gain, its paired margin over g* and
    how many gains the windows cannot exclude (None when T01 does not carry it)."""
    identified = gstar_identified(group)
    if identified is None:
        return None
    star = _one(group.t01, g=group.g_star)
    margin = [_get(star, f"opt_gstar_margin{s}") for s in ("", "_ci_low", "_ci_high")]
    not_excluded = _get(star, "opt_gstar_n_gains_not_excluded")
    n_gains = int(group.t01["g"].nunique())
    cells = (
        "**identified**" if identified else "not identified",
        key_number(_get(star, "opt_gstar_runner_up_g")),
        value_ci(*margin),
        f"{int(not_excluded)} of {n_gains - 1}" if _finite(not_excluded) else "n/a",
        ref("T01", star),
    )
    decision = "identified" if identified else "not identified"
    return Finding("gid", decision, identification_sentence(group).strip(), cells)


def identification_sentence(group: Group) -> str:
    """One sentence on whether g* is identified, with the runner-up's paired margin."""
    identified = gstar_identified(group)
    if identified is None:
        return ""
    star = _one(group.t01, g=group.g_star)
    runner, margin = _get(star, "opt_gstar_runner_up_g"), _get(star, "opt_gstar_margin")
    low, high = _get(star, "opt_gstar_margin_ci_low"), _get(star, "opt_gstar_margin_ci_high")
    over = (
        f"the runner-up g = {key_number(runner)} is farther from b_tot = 1 by {num(margin)}, "
        f"CI {ci(low, high)} (paired: one resample of the windows at every gain)"
    )
    if identified:
        return (
            f" g* is **identified**: every other gain is farther from 1 beyond the noise; {over}."
        )
    return (
        " **g* not identified** — b_tot is flat within noise across the grid: "
        f"{over} reaches 0, so the choice of g* is set by noise and every comparison "
        '"at g*" is at one gain of a flat curve.'
    )


def s1_finding(group: Group) -> Finding:
    star = _one(group.t01, g=group.g_star)
    one = _one(group.t01, g=1.0)
    b, low, high = (_get(star, c) for c in ("b_tot", "opt_b_tot_ci_low", "opt_b_tot_ci_high"))
    result = decide_s1(b, low, high)
    where = group.cite("T01", g=group.g_star)
    if result.decision == PRESENT:
        text = (
            f"S1 is **present**: at g* = {key_number(group.g_star)} b_tot = {num(b)}, "
            f"CI {ci(low, high)} contains 1 ({where})."
        )
    elif result.decision == ABSENT:
        side = "below" if high < 1.0 else "above"
        text = (
            f"S1 is **absent**: at g* = {key_number(group.g_star)} b_tot = {num(b)}, "
            f"CI {ci(low, high)} lies {side} 1 by {num(result.distance)} "
            f"(|b_tot − 1| = {num(abs(b - 1.0))}) ({where})."
        )
    else:
        text = (
            f"S1 is **undetermined**: no finite b_tot or CI at g* = "
            f"{key_number(group.g_star)} (no events?) ({where})."
        )
    text += identification_sentence(group)
    grid = group.t01["g"].astype(float).to_numpy()
    if grid.size and group.g_star in (grid.min(), grid.max()):
        text += (
            " g* is an end of the gain grid, so the grid does not bracket it: the minimum of"
            " |b_tot − 1| may lie beyond the grid."
        )
    if one is not None and abs(group.g_star - 1.0) > G_MATCH_ATOL:
        b1, l1, h1 = (_get(one, c) for c in ("b_tot", "opt_b_tot_ci_low", "opt_b_tot_ci_high"))
        inside = "contains" if decide_s1(b1, l1, h1).decision == PRESENT else "does not contain"
        text += (
            f" At g = 1 b_tot = {num(b1)}, CI {ci(l1, h1)} {inside} 1 ({group.cite('T01', g=1.0)})."
        )
    verdict = result.decision
    if result.decision == ABSENT:  # the gap from 1 to the nearer CI bound
        verdict = f"absent ({num(result.distance, 2)} {'below' if high < 1.0 else 'above'} 1)"
    at_one = (
        value_ci(*(_get(one, c) for c in ("b_tot", "opt_b_tot_ci_low", "opt_b_tot_ci_high")))
        if one is not None
        else "n/a"
    )
    cells = (
        value_ci(b, low, high),
        verdict,
        at_one,
        row_refs("T01", star, one),
    )
    return Finding("S1", result.decision, text, cells)


def s2_finding(group: Group) -> Finding:
    gains = group.t01["g"].astype(float).to_list()
    chi = group.t01["chi"].astype(float).to_list()
    result = decide_s2(gains, chi, group.g_star)
    star = _one(group.t01, g=group.g_star)
    if result.decision == UNDETERMINED:
        return Finding(
            "S2",
            UNDETERMINED,
            f"S2 is **undetermined**: no finite chi on the grid or g* not on it "
            f"({group.cite('T01', g=group.g_star)}).",
            ("n/a", "n/a", "undetermined", "", ref("T01", star)),
        )
    peak = _one(group.t01, g=result.g_argmax)
    peak_text = (
        f"chi is largest at g = {key_number(result.g_argmax)} "
        f"(chi = {num(_get(peak, 'chi'))}, CI "
        f"{ci(_get(peak, 'opt_chi_ci_low'), _get(peak, 'opt_chi_ci_high'))}, "
        f"{group.cite('T01', g=result.g_argmax)})"
    )
    if result.steps == 0:
        relation = "which is g* itself"
    elif result.steps == 1:
        relation = f"one grid step from g* = {key_number(group.g_star)}"
    else:
        relation = (
            f"{result.steps} grid steps from g* = {key_number(group.g_star)} "
            f"(chi = {num(_get(star, 'chi'))} there, {group.cite('T01', g=group.g_star)})"
        )
    verdict = "**present**" if result.decision == PRESENT else "**absent**"
    text = f"S2 is {verdict}: {peak_text}, {relation}."
    if result.at_edge:
        text += " The maximum sits at the edge of the grid, so it is not an interior peak"
        text += (
            f": chi {result.monotone} monotonically with g over the whole grid."
            if result.monotone
            else "."
        )
        if result.decision == PRESENT:
            text += " Read this S2 as weak."
    shape = "edge" if result.at_edge else "interior"
    if result.monotone:
        shape += f", {result.monotone}"  # chi falls / rises monotonically over the grid
    cells = (
        value_ci(_get(star, "chi"), _get(star, "opt_chi_ci_low"), _get(star, "opt_chi_ci_high")),
        f"{key_number(result.g_argmax)} ({result.steps} step{'s' if result.steps != 1 else ''})",
        result.decision + (" (weak)" if result.at_edge and result.decision == PRESENT else ""),
        shape,
        row_refs("T01", star, peak),
    )
    return Finding("S2", result.decision, text, cells)


def s3_finding(group: Group) -> Finding:
    row = _one(group.t05, g=group.g_star)
    where = group.cite("T05", g=group.g_star)
    if row is None:
        return Finding(
            "S3",
            UNDETERMINED,
            f"S3 is **undetermined**: no T05 row ({where}).",
            ("n/a", "n/a", "n/a", "undetermined", "no T05 row at g*", "n/a"),
        )
    decision = decide_s3(bool(row["pass"]))
    gamma, low, high = (
        _get(row, c) for c in ("crackling_gamma", "crackling_ci_low", "crackling_ci_high")
    )
    points = int(_get(row, "n_duration_points")) if _finite(_get(row, "n_duration_points")) else 0
    detail = (
        f"gamma = {num(gamma)}, CI {ci(low, high)}, r² = {num(_get(row, 'r2'))}, "
        f"{points} distinct durations, {num(_get(row, 'n_avalanches_used'))} avalanches"
    )
    cells = [
        value_ci(gamma, low, high),
        num(_get(row, "r2"), 3),
        f"{points} / {num(_get(row, 'n_avalanches_used'))}",
        decision,
        "",
        ref("T05", row),
    ]
    if decision == PRESENT:
        text = f"S3 is **present** (gate passed) at g* = {key_number(group.g_star)}: {detail} ({where})."
    else:
        recorded = row.get("opt_reason", "")
        recorded = recorded.strip() if isinstance(recorded, str) else ""
        reason = recorded or crackling_gate_reason(gamma, points, _get(row, "crackling_ci_width"))
        text = (
            f"S3 is **absent** (not available) at g* = {key_number(group.g_star)}: the crackling "
            f"gate failed ({reason or 'reason not recorded'}); {detail} ({where})."
        )
        cells[4] = reason or "reason not recorded"
    return Finding("S3", decision, text, tuple(cells))
