"""The decision rules of the report, as pure functions of numbers (each unit-tested on its own).

Signatures are *present* / *absent* (S1 branching near 1 at g*, S2 chi peak near g*, S3
crackling) and, against the untrained control (T08), *specific* / *present but not specific*;
falsifiers *fire* / *do not fire* ((a) rate matching, (b) the strictest of the three nulls, (c)
generalization to dataset B and ARC); ablations say what the effect *tracks*; paired
differences *differ* when their CI excludes 0. The rules are stated in words in
:data:`avalanche_kedro.study.report.page.RULES` and in ``docs/design.md`` ("Report").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .formatting import _finite, num
from .grouping import G_MATCH_ATOL

PRESENT = "present"


ABSENT = "absent"


UNDETERMINED = "undetermined"


FIRES = "fires"


DOES_NOT_FIRE = "does not fire"


NULL_BEYOND_RATES = "beyond rates"


NULL_EXPLAINED_BY_RATES = "explained by rates"


NULL_BELOW_NULL = "below the null"


NULL_NOT_RECORDED = "not recorded"


TRACKS_MLP = "MLP gain"


SPECIFIC = "specific"


NOT_SPECIFIC = "present but not specific"


CONTROL = "control"


NO_CONTROL = "no control"


TRACKS_ATTENTION = "attention"
TRACKS_UNRESOLVED = "not resolved"


def decide_tracking(point_tracks: str | None, margin_ci: tuple[float, float] | None) -> str | None:
    """What the effect of g* tracks, decided on the paired CI of
    ``|shift(MLP_GLOBAL)| - |shift(ATTN_GLOBAL)|`` when there is one: above 0 the MLP gain,
    below 0 attention, containing 0 *not resolved*; without a CI (older tables) the point
    comparison ``point_tracks``."""
    if margin_ci is None or not _finite(*margin_ci) or point_tracks is None:
        return point_tracks
    if margin_ci[0] > 0:
        return TRACKS_MLP
    if margin_ci[1] < 0:
        return TRACKS_ATTENTION
    return TRACKS_UNRESOLVED


@dataclass(frozen=True)
class S1Decision:
    decision: str  # present | absent | undetermined
    distance: float  # 0 when 1 lies inside the CI, else the gap from 1 to the nearer CI bound


def decide_s1(b_tot: float, ci_low: float, ci_high: float) -> S1Decision:
    """S1 is present when 1 lies inside the b_tot CI (bounds included) at g*."""
    if not _finite(b_tot, ci_low, ci_high):
        return S1Decision(UNDETERMINED, float("nan"))
    if ci_low <= 1.0 <= ci_high:
        return S1Decision(PRESENT, 0.0)
    gap = (1.0 - ci_high) if ci_high < 1.0 else (ci_low - 1.0)
    return S1Decision(ABSENT, float(gap))


@dataclass(frozen=True)
class S2Decision:
    decision: str  # present | absent | undetermined
    g_argmax: float
    steps: int  # grid steps between the chi argmax and g*
    at_edge: bool  # the argmax is the smallest or largest grid gain
    monotone: str | None  # "falls" | "rises" when chi is monotone in g over the grid


def decide_s2(gains: Sequence[float], chi: Sequence[float], g_star: float) -> S2Decision:
    """S2 is present when the grid gain of maximal chi is g* or a grid neighbour of g*.

    Ties for the maximum go to the smallest gain; NaN chi values are skipped.
    """
    order = np.argsort(np.asarray(gains, dtype=float), kind="stable")
    gains = np.asarray(gains, dtype=float)[order]
    chi = np.asarray(chi, dtype=float)[order]
    finite = np.isfinite(chi)
    matches = np.flatnonzero(np.isclose(gains, g_star, rtol=0.0, atol=G_MATCH_ATOL))
    if not finite.any() or matches.size == 0:
        return S2Decision(UNDETERMINED, float("nan"), -1, False, None)
    best = int(np.flatnonzero(finite)[np.argmax(chi[finite])])
    steps = abs(best - int(matches[0]))
    monotone = None
    if finite.all() and len(chi) >= 3:
        steps_chi = np.diff(chi)
        if (steps_chi < 0).all():
            monotone = "falls"
        elif (steps_chi > 0).all():
            monotone = "rises"
    return S2Decision(
        PRESENT if steps <= 1 else ABSENT,
        float(gains[best]),
        steps,
        best in (0, len(gains) - 1),
        monotone,
    )


def crackling_gate_reason(
    gamma: float,
    n_duration_points: int,
    ci_width: float,
    min_points: int = 8,
    max_width: float = 0.5,
) -> str:
    """Why SPEC §6's gate failed (empty when it passes): finite gamma, >= 8 durations, width <= 0.5."""
    reasons = []
    if not _finite(gamma):
        reasons.append("no finite gamma")
    if int(n_duration_points) < min_points:
        reasons.append(f"only {int(n_duration_points)} distinct durations (< {min_points})")
    if not _finite(ci_width):
        reasons.append("no bootstrap CI")
    elif float(ci_width) > max_width:
        reasons.append(f"CI width {num(ci_width)} > {max_width}")
    return "; ".join(reasons)


def decide_s3(passed: bool) -> str:
    """S3 is present (available) exactly when the T05 crackling gate passed at g*."""
    return PRESENT if bool(passed) else ABSENT


@dataclass(frozen=True)
class RateDecision:
    decision: str  # fires | does not fire
    worst_error: float
    worst_tolerance: float
    worst_g: float


def decide_rate_matching(
    gains: Sequence[float], errors: Sequence[float], tolerances: Sequence[float]
) -> RateDecision:
    """Falsifier (a) fires when any in-sample max |achieved - r*| exceeds its tolerance; the
    row reported is the one whose error is the largest fraction of its tolerance."""
    errors = np.asarray(errors, dtype=float)
    tolerances = np.asarray(tolerances, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = errors / tolerances
    worst = int(np.nanargmax(ratio)) if np.isfinite(ratio).any() else 0
    fires = bool((errors > tolerances).any()) or not np.isfinite(errors).all()
    return RateDecision(
        FIRES if fires else DOES_NOT_FIRE,
        float(errors[worst]),
        float(tolerances[worst]),
        float(np.asarray(gains, dtype=float)[worst]),
    )


@dataclass(frozen=True)
class HeldOutDrift:
    level: float  # max over g of |held-out mean rate - target| / target
    spread: float  # (max - min over g of the held-out mean rate) / target
    within_tolerance: bool | None  # both within rel_tol; None when no held-out rate is in T01


def held_out_drift(
    target_rate: float, held_out_means: Sequence[float], rel_tol: float
) -> HeldOutDrift:
    """How far the analysis-slice (held-out) mean rate sits from the target, and how much it
    moves across the gain grid, both relative to the target rate."""
    means = np.asarray(held_out_means, dtype=float)
    if not np.isfinite(means).any():
        return HeldOutDrift(float("nan"), float("nan"), None)
    level = float(np.nanmax(np.abs(means - target_rate)) / target_rate)
    spread = float((np.nanmax(means) - np.nanmin(means)) / target_rate)
    return HeldOutDrift(level, spread, level <= rel_tol and spread <= rel_tol)


def decide_null(delta: float, ci_low: float, ci_high: float) -> str:
    """Compare real with a null: CI above 0 -> connectivity beyond rates; CI containing 0 ->
    explained by rates; CI below 0 -> below the null; NaN -> not recorded."""
    if not _finite(delta, ci_low, ci_high):
        return NULL_NOT_RECORDED
    if ci_low > 0:
        return NULL_BEYOND_RATES
    if ci_high < 0:
        return NULL_BELOW_NULL
    return NULL_EXPLAINED_BY_RATES


def null_falsifier(null_outcome: str) -> str:
    """Falsifier (b) against one null: fires unless its delta_b_tot CI lies above 0."""
    if null_outcome == NULL_NOT_RECORDED:
        return UNDETERMINED
    return DOES_NOT_FIRE if null_outcome == NULL_BEYOND_RATES else FIRES


@dataclass(frozen=True)
class NullFalsifierDecision:
    decision: str  # fires | does not fire | undetermined
    deciding: str | None  # the recorded null with the smallest CI lower bound; None if none
    outcomes: dict[str, str] = field(default_factory=dict)  # every null's decide_null outcome


def decide_null_falsifier(
    nulls: Mapping[str, tuple[float, float, float]],
) -> NullFalsifierDecision:
    """Falsifier (b) against the strictest recorded null.

    ``nulls`` maps a null's name to ``(delta_b_tot, ci_low, ci_high)``. A null with a NaN value
    is *not recorded* and counts for nothing. Among the recorded ones the deciding null is the
    one whose CI lower bound is smallest (the least favourable; ties: the first listed), and
    (b) fires exactly when that bound is <= 0, i.e. when ANY recorded null's CI contains 0 or
    lies below 0; it does not fire when every recorded CI lies above 0, and is undetermined
    when no null is recorded.
    """
    outcomes = {name: decide_null(*values) for name, values in nulls.items()}
    recorded = [name for name, outcome in outcomes.items() if outcome != NULL_NOT_RECORDED]
    if not recorded:
        return NullFalsifierDecision(UNDETERMINED, None, outcomes)
    deciding = min(recorded, key=lambda name: float(nulls[name][1]))
    return NullFalsifierDecision(null_falsifier(outcomes[deciding]), deciding, outcomes)


@dataclass(frozen=True)
class GeneralizationDecision:
    decision: str  # fires | does not fire | undetermined
    b_nearer_at_gstar: bool | None  # |b_tot - 1| on B smaller at g* than at g = 1
    ppl_worse: bool | None  # B perplexity higher at g* (paired CI above 0, else CIs apart)
    arc_worse: bool | None  # ARC accuracy lower at g* (paired CI below 0, else CIs apart)
    vacuous: bool  # g* == 1: both sides are the same measurement
    ppl_paired: bool = False  # ppl_worse decided by the paired difference g* - g1
    arc_paired: bool = False  # arc_worse decided by the paired difference g* - g1


def _paired_or_apart(diff_ci, ci_g1, ci_gstar, worse_above: bool) -> tuple[bool | None, bool]:
    """(worse?, paired?): from the paired CI of ``g* - g1`` when it is finite (worse when it
    excludes 0 on the worse side), else from the two marginal CIs (worse when they are apart,
    the rule of tables without paired columns)."""
    if diff_ci is not None and _finite(*diff_ci):
        return (diff_ci[0] > 0 if worse_above else diff_ci[1] < 0), True
    if ci_g1 is None or ci_gstar is None or not _finite(*ci_g1, *ci_gstar):
        return None, False
    return (ci_gstar[0] > ci_g1[1] if worse_above else ci_gstar[1] < ci_g1[0]), False


def decide_generalization(
    g_star: float,
    b_tot_g1: float,
    b_tot_gstar: float,
    ppl_ci_g1: tuple[float, float] | None,
    ppl_ci_gstar: tuple[float, float] | None,
    acc_ci_g1: tuple[float, float] | None,
    acc_ci_gstar: tuple[float, float] | None,
    ppl_diff_ci: tuple[float, float] | None = None,
    acc_diff_ci: tuple[float, float] | None = None,
) -> GeneralizationDecision:
    """Falsifier (c) fires when g* makes B perplexity worse or ARC accuracy worse than g = 1.

    The design is paired (the same B windows and ARC questions at both gains), so "worse" is
    decided by the paired bootstrap CI of the difference g* - g1: perplexity worse when its
    ``ppl_diff_ci`` lies above 0, accuracy worse when ``acc_diff_ci`` lies below 0. Without a
    paired CI (tables of older runs) the marginal CIs must not overlap."""
    vacuous = abs(float(g_star) - 1.0) <= G_MATCH_ATOL
    nearer = (
        abs(b_tot_gstar - 1.0) < abs(b_tot_g1 - 1.0) if _finite(b_tot_g1, b_tot_gstar) else None
    )
    ppl_worse, ppl_paired = _paired_or_apart(ppl_diff_ci, ppl_ci_g1, ppl_ci_gstar, True)
    arc_worse, arc_paired = _paired_or_apart(acc_diff_ci, acc_ci_g1, acc_ci_gstar, False)
    if vacuous:  # one measurement on both sides: nothing can be worse
        ppl_worse = False if ppl_worse is not None else None
        arc_worse = False if arc_worse is not None else None
    if ppl_worse or arc_worse:
        decision = FIRES
    elif ppl_worse is None and arc_worse is None:
        decision = UNDETERMINED
    else:
        decision = DOES_NOT_FIRE
    return GeneralizationDecision(
        decision, nearer, ppl_worse, arc_worse, vacuous, ppl_paired, arc_paired
    )


@dataclass(frozen=True)
class AblationDecision:
    tracks: str | None  # "MLP gain" | "attention" | None (g* = 1 or a missing intervention)
    shifts: dict[str, float] = field(default_factory=dict)  # b_tot(int, g*) - b_tot(MLP, g1)
    strongest_band: str | None = None


def decide_ablation(
    g_star: float, b_tot_g1: float, b_tot_gstar: Mapping[str, float]
) -> AblationDecision:
    """Which gain moves b_tot more from its g = 1 value: the MLP (MLP_GLOBAL) or attention
    (ATTN_GLOBAL), both at g*; ties go to the MLP. Among the MLP bands, the one with the largest
    |shift|. Undecided (None) when g* = 1 or either global intervention is missing."""
    shifts = {k: float(v) - float(b_tot_g1) for k, v in b_tot_gstar.items()}
    bands = {k: v for k, v in shifts.items() if k.startswith("MLP_BAND_") and math.isfinite(v)}
    strongest = max(bands, key=lambda k: abs(bands[k])) if bands else None
    mlp, attn = shifts.get("MLP_GLOBAL"), shifts.get("ATTN_GLOBAL")
    if abs(float(g_star) - 1.0) <= G_MATCH_ATOL or not _finite(mlp, attn):
        return AblationDecision(None, shifts, strongest)
    return AblationDecision(
        TRACKS_MLP if abs(mlp) >= abs(attn) else TRACKS_ATTENTION, shifts, strongest
    )


def decide_paired_difference(diff: float, ci_low: float, ci_high: float) -> str:
    """A paired difference between roles: 'differs' when its CI excludes 0."""
    if not _finite(diff, ci_low, ci_high):
        return UNDETERMINED
    return "differs" if (ci_low > 0 or ci_high < 0) else "no detectable difference"


@dataclass(frozen=True)
class SpecificityDecision:
    decision: str  # specific | present but not specific | absent | undetermined
    separated: bool | None  # the paired CI of compared - control excludes 0 (None: no CI)
    control_shows_it: bool | None  # the control's own decision is present (None: unknown)


def decide_specificity(
    decision: str,
    ci_low: float,
    ci_high: float,
    control_decision: str | None = None,
    control_absence_suffices: bool = False,
) -> SpecificityDecision:
    """A signature is *specific* to the trained role when it is present for the role and
    separates from the untrained control: the paired T08 CI of ``diff = compared - control``
    excludes 0 (bounds included count as containing 0), or, with ``control_absence_suffices``
    (S3), the control's own signature is absent. A present signature that does not separate
    is *present but not specific*; an absent or undetermined one keeps that decision."""
    control_shows = (
        None if control_decision in (None, UNDETERMINED) else control_decision == PRESENT
    )
    if decision != PRESENT:
        return SpecificityDecision(decision, None, control_shows)
    separated = (ci_low > 0 or ci_high < 0) if _finite(ci_low, ci_high) else None
    if separated or (control_absence_suffices and control_decision == ABSENT):
        return SpecificityDecision(SPECIFIC, separated, control_shows)
    return SpecificityDecision(NOT_SPECIFIC, separated, control_shows)
