"""Report section "Falsifiers": (a) rate matching, (b) the marginal-preserving nulls, (c)
generalization of g* to dataset B and ARC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .decisions import (
    DOES_NOT_FIRE,
    FIRES,
    NULL_BELOW_NULL,
    NULL_BEYOND_RATES,
    NULL_EXPLAINED_BY_RATES,
    NULL_NOT_RECORDED,
    UNDETERMINED,
    HeldOutDrift,
    decide_generalization,
    decide_null,
    decide_null_falsifier,
    decide_rate_matching,
    held_out_drift,
)
from .formatting import _finite, ci, key_number, num, ref, row_refs, signed, value_ci
from .grouping import Finding, Group, _get, _one

#: a falsifier's decision in a table cell
SHORT = {FIRES: "**fires**", DOES_NOT_FIRE: "no", UNDETERMINED: UNDETERMINED}


def rate_finding(group: Group) -> tuple[Finding, HeldOutDrift]:
    t01 = group.t01
    errors = t01["achieved_rate_max_abs_err"].astype(float).to_numpy()
    if "opt_rate_match_tol_abs_max" in t01:
        tolerances = t01["opt_rate_match_tol_abs_max"].astype(float).to_numpy()
        tol_text = "largest per-layer tolerance max(rel_tol·r*, 1/n)"
    else:
        tolerances = t01["rate_match_tol"].astype(float).to_numpy() * group.rate
        tol_text = "rel_tol × target rate (per-layer tolerances not in the table)"
    result = decide_rate_matching(t01["g"].astype(float).to_numpy(), errors, tolerances)
    worst = group.cite("T01", g=result.worst_g)
    if result.decision == DOES_NOT_FIRE:
        text = (
            f"In sample, (a) **does not fire**: every gain's largest |achieved − r*| over layers "
            f"is within tolerance; the closest is {num(result.worst_error)} against a {tol_text} "
            f"of {num(result.worst_tolerance)} ({worst})."
        )
    else:
        text = (
            f"In sample, (a) **fires**: |achieved − r*| = {num(result.worst_error)} exceeds the "
            f"{tol_text} of {num(result.worst_tolerance)} ({worst}); rate matching failed, so "
            f"differences across gains may be rate effects."
        )
    rel_tol = float(t01["rate_match_tol"].iloc[0]) if "rate_match_tol" in t01 else 0.05
    drift = held_out_drift(
        group.rate,
        t01.get("opt_achieved_rate_analysis_mean", pd.Series(np.nan, index=t01.index)).astype(
            float
        ),
        rel_tol,
    )
    worst_row = _one(t01, g=result.worst_g)
    cells = [
        SHORT[result.decision],
        f"{num(result.worst_error, 3)} / {num(result.worst_tolerance, 3)} at g = "
        f"{key_number(result.worst_g)}",
        "n/a",
        "n/a",
        "n/a",
        "not in T01",
        ref("T01", worst_row),
    ]
    if math.isfinite(drift.level):
        means = t01["opt_achieved_rate_analysis_mean"].astype(float)
        g_lo, g_hi = float(t01.loc[means.idxmin(), "g"]), float(t01.loc[means.idxmax(), "g"])
        star = _one(t01, g=group.g_star)
        text += (
            f" Held out (analysis slice, reported, not gated): the mean rate is "
            f"{num(_get(star, 'opt_achieved_rate_analysis_mean'))} at g* against the target "
            f"{key_number(group.rate)}, largest per-layer |achieved − r*| "
            f"{num(_get(star, 'opt_achieved_rate_analysis_max_abs_err'))} "
            f"({group.cite('T01', g=group.g_star)}); across the grid the held-out mean rate runs "
            f"from {num(means.min())} ({group.cite('T01', g=g_lo)}) to {num(means.max())} "
            f"({group.cite('T01', g=g_hi)}), i.e. it is off the target by up to "
            f"{num(100 * drift.level, 3)} % and moves by {num(100 * drift.spread, 3)} % of the "
            f"target across gains."
        )
        if drift.within_tolerance is False:
            text += (
                f" **Held-out drift exceeds the {num(100 * rel_tol, 3)} % tolerance**: on the "
                f"analysis windows the rates are not matched across gains, so part of any trend "
                f"of b or chi with g there can be a rate effect."
            )
        cells[2:7] = [
            num(_get(star, "opt_achieved_rate_analysis_mean"), 3),
            f"{num(100 * drift.level, 3)} %",
            f"{num(100 * drift.spread, 3)} %",
            "within tol" if drift.within_tolerance else "**drifts**",
            row_refs("T01", worst_row, star, _one(t01, g=g_lo), _one(t01, g=g_hi)),
        ]
    return Finding("a", result.decision, text, tuple(cells)), drift


#: the nulls in table cells: time permutation, circular shift, token shuffle
NULL_SHORT = {"permutation": "perm", "shift": "shift", "token-shuffle": "tokens"}

#: The three nulls of falsifier (b): (name in sentences, T01 column suffix).
NULLS = (("permutation", ""), ("shift", "_shift"), ("token-shuffle", "_tokshuf"))


def _null_values(row: pd.Series | None, suffix: str) -> tuple[float, float, float]:
    delta = _get(row, f"delta_b_tot{suffix}" if not suffix else f"opt_delta_b_tot{suffix}")
    return (
        delta,
        _get(row, f"opt_delta_b_tot{suffix}_ci_low"),
        _get(row, f"opt_delta_b_tot{suffix}_ci_high"),
    )


def _null_cell(values: tuple[float, float, float]) -> str:
    """``0.05 [0.03, 0.07]`` in bold when the CI lies above 0 (beyond the rates); ``not
    recorded`` when the null has no value at this gain."""
    delta, low, high = values
    outcome = decide_null(delta, low, high)
    if outcome == NULL_NOT_RECORDED:
        return "not recorded"
    text = value_ci(delta, low, high)
    return f"**{text}**" if outcome == NULL_BEYOND_RATES else text


def _null_clause(name: str, values: tuple[float, float, float]) -> str:
    delta, low, high = values
    outcome = decide_null(delta, low, high)
    if outcome == NULL_NOT_RECORDED:
        return f"{name} null not recorded at this gain"
    meaning = {
        NULL_BEYOND_RATES: "CI excludes 0: real > null",
        NULL_EXPLAINED_BY_RATES: "CI includes 0: no difference",
        NULL_BELOW_NULL: "CI excludes 0: real < null",
    }[outcome]
    return f"{name} delta_b_tot = {num(delta)}, CI {ci(low, high)} ({meaning})"


def null_finding(group: Group) -> Finding:
    star = _one(group.t01, g=group.g_star)
    where = group.cite("T01", g=group.g_star)
    values = {name: _null_values(star, suffix) for name, suffix in NULLS}
    result = decide_null_falsifier(values)
    at = f"at g* = {key_number(group.g_star)}"
    if result.decision == DOES_NOT_FIRE:
        deciding = _null_clause(result.deciding, values[result.deciding])
        text = (
            f"(b) **does not fire** {at}: every recorded null's CI lies above 0, the least "
            f"favourable being the {result.deciding} null ({deciding}), so the cascades carry "
            f"connectivity beyond the per-layer rates ({where})."
        )
    elif result.decision == FIRES:
        deciding = _null_clause(result.deciding, values[result.deciding])
        why = (
            "the structure is explained by the rates"
            if result.outcomes[result.deciding] == NULL_EXPLAINED_BY_RATES
            else "real cascades are less connected than the rate-preserving null"
        )
        text = (
            f"(b) **fires** {at}, decided by the {result.deciding} null ({deciding}); {why} "
            f"({where})."
        )
    else:
        text = f"(b) is **undetermined** {at}: none of the three nulls was recorded ({where})."
    text += " All three nulls at g*: " + "; ".join(
        _null_clause(name, values[name]) for name, _ in NULLS
    )
    text += "."
    if result.deciding in values:
        _, low, high = values[result.deciding]
        text += (
            f" The smallest delta_b_tot the {result.deciding} null's paired CI can detect is "
            f"±{num(_half_width(low, high), 3)} (its half-width)."
        )
    if result.outcomes["token-shuffle"] == NULL_EXPLAINED_BY_RATES:
        text += " Shuffling the input tokens does not change b_tot detectably."
    flags = [
        c
        for c in ("opt_marginals_preserved_perm", "opt_marginals_preserved_shift")
        if c in group.t01
    ]
    broken = [c for c in flags if not group.t01[c].astype(bool).all()]
    if flags:
        text += (
            " Both raster nulls preserved every (window, layer) event multiset exactly at every gain."
            if not broken
            else f" **Marginals were NOT preserved** ({', '.join(broken)} false): the null "
            f"comparison is invalid."
        )
    marginals = "n/a" if not flags else ("yes" if not broken else "**NOT preserved**")
    cells = [
        SHORT[result.decision],
        NULL_SHORT.get(result.deciding, "none"),
        *(_null_cell(values[name]) for name, _ in NULLS),
        "n/a",
        marginals,
        ref("T01", star),
    ]
    deltas = group.t01
    if {"opt_delta_b_tot_ci_low", "opt_delta_b_tot_ci_high"} <= set(deltas.columns):
        outcomes = [
            decide_null(d, lo, hi)
            for d, lo, hi in zip(
                deltas["delta_b_tot"].astype(float),
                deltas["opt_delta_b_tot_ci_low"].astype(float),
                deltas["opt_delta_b_tot_ci_high"].astype(float),
                strict=True,
            )
        ]
        above = sum(o == NULL_BEYOND_RATES for o in outcomes)
        text += (
            f" Over the whole grid the permutation-null CI lies above 0 at {above} of "
            f"{len(outcomes)} gains ({group.cite('T01', g=None)}, every g)."
        )
        cells[5] = f"{above} of {len(outcomes)}"
    return Finding("b", result.decision, text, tuple(cells))


def _half_width(low: float, high: float) -> float:
    """Half the width of a CI: the smallest difference the paired design can detect."""
    return (high - low) / 2 if _finite(low, high) else float("nan")


def generalization_finding(group: Group) -> Finding:
    b1, bs = _one(group.t02, g_condition="g1"), _one(group.t02, g_condition="gstar")
    a1, as_ = _one(group.t03, g_condition="g1"), _one(group.t03, g_condition="gstar")

    def pair(row, low, high):
        return (_get(row, low), _get(row, high)) if row is not None else None

    ppl_diff = [_get(bs, f"opt_ppl_diff_vs_g1{s}") for s in ("", "_ci_low", "_ci_high")]
    acc_diff = [_get(as_, f"opt_accuracy_diff_vs_g1{s}") for s in ("", "_ci_low", "_ci_high")]
    result = decide_generalization(
        group.g_star,
        _get(b1, "b_tot"),
        _get(bs, "b_tot"),
        pair(b1, "opt_ppl_ci_low", "opt_ppl_ci_high"),
        pair(bs, "opt_ppl_ci_low", "opt_ppl_ci_high"),
        pair(a1, "accuracy_ci_low", "accuracy_ci_high"),
        pair(as_, "accuracy_ci_low", "accuracy_ci_high"),
        tuple(ppl_diff[1:]),
        tuple(acc_diff[1:]),
    )
    c = {
        "B1": group.cite("T02", g_condition="g1"),
        "Bs": group.cite("T02", g_condition="gstar"),
        "A1": group.cite("T03", g_condition="g1"),
        "As": group.cite("T03", g_condition="gstar"),
    }
    verdict = {
        FIRES: "**fires**",
        DOES_NOT_FIRE: "**does not fire**",
        UNDETERMINED: "is **undetermined**",
    }[result.decision]
    text = f"(c) {verdict}"
    if result.vacuous:
        text += " (g* = 1, so g* and g = 1 are the same measurement and the test is empty)"
    text += "."
    margin = [_get(bs, f"opt_b_nearer_margin_vs_g1{s}") for s in ("", "_ci_low", "_ci_high")]
    nearer_label = _nearer_label(result.b_nearer_at_gstar, margin)
    text += (
        f" On dataset B b_tot is {num(_get(bs, 'b_tot'))}, CI "
        f"{ci(_get(bs, 'opt_b_tot_ci_low'), _get(bs, 'opt_b_tot_ci_high'))} at g* "
        f"({c['Bs']}) against {num(_get(b1, 'b_tot'))}, CI "
        f"{ci(_get(b1, 'opt_b_tot_ci_low'), _get(b1, 'opt_b_tot_ci_high'))} at g = 1 "
        f"({c['B1']})"
    )
    if _finite(margin[1], margin[2]):
        text += (
            f"; on the same windows |b_tot(1) − 1| − |b_tot(g*) − 1| = {signed(margin[0], 3)} "
            f"{ci(margin[1], margin[2])} (paired): "
            + {
                "nearer": "g* is **nearer** 1.",
                "farther": "g* is **farther** from 1.",
                "unresolved": "whether g* is nearer 1 is not resolved.",
            }[nearer_label]
        )
    else:
        nearer = {"nearer": "nearer to", "not nearer": "not nearer to", None: "not comparable with"}
        text += f": {nearer[nearer_label]} 1 at g* (a point comparison)."
    rates = b_rates(group, bs, b1)
    if rates is not None:
        text += " " + rates.sentence
    text += " " + _perplexity_clause(result, bs, b1, ppl_diff, c)
    text += " " + _arc_clause(result, as_, a1, acc_diff, c)
    truncated = _get(a1, "opt_n_prompts_truncated")
    if _finite(truncated) and truncated > 0:
        text += (
            f" {int(truncated)} of those prompts were longer than the model's context and were "
            "left-truncated (their oldest tokens dropped) before scoring."
        )
    decision = "empty (g* = 1)" if result.vacuous else SHORT[result.decision]
    b_cell = f"{num(_get(bs, 'b_tot'), 3)} vs {num(_get(b1, 'b_tot'), 3)}"
    if nearer_label is not None:
        b_cell += f" ({nearer_label})"

    def compared(diff, paired, worse, row_s, row_1, column, digits):
        """The paired difference g* - g1 with its CI; without one, the two values."""
        if paired:
            return _bold(value_ci(*diff), worse)
        values = f"{num(_get(row_s, column), digits)} vs {num(_get(row_1, column), digits)}"
        return _bold(values, worse)

    n_questions = _get(a1, "n_questions")
    arc_cell = compared(acc_diff, result.arc_paired, result.arc_worse, as_, a1, "accuracy", 3)
    if _no_power(a1):
        arc_cell += " (no power)"
    cells = (
        decision,
        b_cell,
        rates.cell if rates is not None else "n/a",
        # bold: the cell that decided a firing side
        compared(ppl_diff, result.ppl_paired, result.ppl_worse, bs, b1, "ppl", 4),
        arc_cell,
        (f"{int(n_questions)}" if _finite(n_questions) else "n/a")
        + (f" ({int(truncated)} cut)" if _finite(truncated) and truncated > 0 else ""),
        f"{row_refs('T02', bs, b1)} {row_refs('T03', as_, a1)}",
    )
    return Finding("c", result.decision, text, cells)


def _nearer_label(point: bool | None, margin: list[float]) -> str | None:
    """Is B's b_tot nearer 1 at g*? From the paired margin's CI when there is one (*nearer*,
    *farther*, *not resolved*), else the point comparison (*nearer*, *not nearer*)."""
    if _finite(margin[1], margin[2]):
        return "nearer" if margin[1] > 0 else "farther" if margin[2] < 0 else "unresolved"
    return {True: "nearer", False: "not nearer", None: None}[point]


@dataclass(frozen=True)
class BRates:
    """Dataset B's mean event rate relative to r* at g* and at g = 1 (B is thresholded with
    A's taus, so its rates are not matched) and whether either drifts beyond ``rel_tol``."""

    at_gstar: float
    at_g1: float
    rel_tol: float
    drifts: bool
    sentence: str
    cell: str


def b_rates(group: Group, bs, b1) -> BRates | None:
    """:class:`BRates` from T02's ``opt_achieved_rate_mean`` (None without it)."""
    if bs is None or b1 is None:
        return None
    at_gstar = _get(bs, "opt_achieved_rate_mean") / group.rate
    at_g1 = _get(b1, "opt_achieved_rate_mean") / group.rate
    if not _finite(at_gstar, at_g1):
        return None
    t01 = group.t01
    rel_tol = float(t01["rate_match_tol"].iloc[0]) if "rate_match_tol" in t01 else 0.05
    drifts = max(abs(at_gstar - 1.0), abs(at_g1 - 1.0)) > rel_tol
    sentence = (
        f"On B (thresholded with A's taus) the mean event rate is {num(at_gstar, 3)} × r* at g* "
        f"and {num(at_g1, 3)} × r* at g = 1"
        + (
            f": **beyond rel_tol = {num(rel_tol, 3)}**, so B's branching is compared at drifted "
            "rates (a difference in b_tot on B can be a rate effect)."
            if drifts
            else f", within rel_tol = {num(rel_tol, 3)}."
        )
    )
    cell = f"{num(at_gstar, 3)} vs {num(at_g1, 3)}" + (" (drift)" if drifts else "")
    return BRates(at_gstar, at_g1, rel_tol, drifts, sentence, cell)


def _bold(text: str, bold: bool | None) -> str:
    return f"**{text}**" if bold else text


def _no_power(a1) -> bool:
    """ARC accuracy at g = 1 not above chance: its CI reaches down to the chance level."""
    chance, low = _get(a1, "opt_chance_accuracy"), _get(a1, "accuracy_ci_low")
    return bool(_finite(chance, low) and low <= chance)


def _perplexity_clause(result, bs, b1, diff, c) -> str:
    values = (
        f"Perplexity on B is {num(_get(bs, 'ppl'))} at g* against {num(_get(b1, 'ppl'))} at "
        f"g = 1 ({c['Bs']}, {c['B1']})"
    )
    if not result.ppl_paired:
        verdict = {
            True: "**worse at g*** (CIs do not overlap; no paired difference in T02)",
            False: "not worse at g* beyond the CIs (no paired difference in T02)",
            None: "not comparable (no CI)",
        }[result.ppl_worse]
        return f"{values}: {verdict}."
    n, worse = _get(bs, "opt_n_windows_paired"), _get(bs, "opt_n_windows_worse")
    windows = f"the same {int(n)} windows" if _finite(n) else "the same windows"
    tally = f", {int(worse)} of {int(n)} worse at g*" if _finite(n, worse) else ""
    verdict = (
        "**worse at g*** (the paired CI lies above 0)"
        if result.ppl_worse
        else "not worse at g* (the paired CI reaches 0 or below)"
    )
    return _paired_sentence(values, windows, diff, tally, verdict, "perplexity", "windows")


def _paired_sentence(values, over, diff, extra, verdict, quantity, units) -> str:
    """ "<values>; paired on <over>, g* − g = 1 = d [CI]<extra>: <verdict>." and the smallest
    difference the design detects (the paired CI's half-width)."""
    return (
        f"{values}; paired on {over}, g* − g = 1 = {signed(diff[0], 4)} {ci(diff[1], diff[2])}"
        f"{extra}: {verdict}. The smallest {quantity} difference these {units} detect is "
        f"±{num(_half_width(diff[1], diff[2]), 3)} (the CI half-width)."
    )


def _arc_clause(result, as_, a1, diff, c) -> str:
    n_questions = _get(a1, "n_questions")
    questions = f"{int(n_questions)} questions" if _finite(n_questions) else "the questions"
    values = (
        f"ARC accuracy is {num(_get(as_, 'accuracy'))} at g* ({c['As']}) against "
        f"{num(_get(a1, 'accuracy'))}, CI {ci(_get(a1, 'accuracy_ci_low'), _get(a1, 'accuracy_ci_high'))} "
        f"at g = 1 ({c['A1']}) over {questions}"
    )
    if result.arc_worse is None:
        text = f"{values}: not comparable (no ARC rows)."
    elif not result.arc_paired:
        worse = (
            "**lower at g*** (CIs do not overlap"
            if result.arc_worse
            else "not lower at g* beyond the CIs ("
        )
        sep = "; " if result.arc_worse else ""
        text = f"{values}: {worse}{sep}no paired difference in T03)."
    else:
        verdict = (
            "**lower at g*** (the paired CI lies below 0)"
            if result.arc_worse
            else "not lower at g* (the paired CI reaches 0 or above)"
        )
        discordant = _get(as_, "opt_n_discordant")
        moved = f", {int(discordant)} questions answered differently" if _finite(discordant) else ""
        text = _paired_sentence(
            values, "the same questions", diff, moved, verdict, "accuracy", "questions"
        )
    chance = _get(a1, "opt_chance_accuracy")
    if _finite(chance):
        text += f" Chance accuracy (a uniform guess) is {num(chance, 3)}"
        text += (
            ": accuracy at g = 1 is **not above chance**, so ARC has **no power** here and its "
            "side of (c) says nothing about g*."
            if _no_power(a1)
            else "; accuracy at g = 1 is above it (its CI excludes chance)."
        )
    return text
