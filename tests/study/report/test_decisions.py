"""The report's decision rules, each a pure function of numbers, tested on its own."""

from __future__ import annotations

import pytest

from avalanche_kedro.study.report import decisions
from tests.study.report.tables_builder import GRID


def test_s1_present_when_the_ci_contains_one_and_absent_with_its_distance():
    assert decisions.decide_s1(0.98, 0.95, 1.01).decision == decisions.PRESENT
    assert decisions.decide_s1(1.0, 1.0, 1.2).decision == decisions.PRESENT  # bound included
    above = decisions.decide_s1(1.3, 1.2, 1.4)
    assert above.decision == decisions.ABSENT and above.distance == pytest.approx(0.2)
    below = decisions.decide_s1(0.8, 0.7, 0.9)
    assert below.decision == decisions.ABSENT and below.distance == pytest.approx(0.1)
    assert decisions.decide_s1(float("nan"), 0.7, 0.9).decision == decisions.UNDETERMINED


def test_s2_present_at_gstar_or_a_neighbour_absent_further_and_edges_flagged():
    chi = [8.0, 10.0, 9.0, 7.0, 6.0]
    assert decisions.decide_s2(GRID, chi, 0.9).decision == decisions.PRESENT
    assert decisions.decide_s2(GRID, chi, 0.9).steps == 0
    assert decisions.decide_s2(GRID, chi, 1.0).decision == decisions.PRESENT  # adjacent
    far = decisions.decide_s2(GRID, chi, 1.1)
    assert far.decision == decisions.ABSENT and far.steps == 2 and far.g_argmax == 0.9
    falling = decisions.decide_s2(GRID, [10.0, 9.0, 8.0, 7.0, 6.0], 0.8)
    assert falling.decision == decisions.PRESENT and falling.at_edge and falling.monotone == "falls"
    # unsorted input and ties: the smaller gain wins
    tie = decisions.decide_s2([1.2, 0.8, 1.0], [5.0, 5.0, 1.0], 1.2)
    assert tie.g_argmax == 0.8 and tie.decision == decisions.ABSENT
    assert decisions.decide_s2(GRID, chi, 0.75).decision == decisions.UNDETERMINED


def test_s3_follows_the_gate_and_explains_a_failure():
    assert decisions.decide_s3(True) == decisions.PRESENT
    assert decisions.decide_s3(False) == decisions.ABSENT
    reason = decisions.crackling_gate_reason(1.5, 5, 0.7)
    assert "5 distinct durations" in reason and "CI width 0.7 > 0.5" in reason
    assert decisions.crackling_gate_reason(1.5, 10, 0.2) == ""
    assert "no finite gamma" in decisions.crackling_gate_reason(float("nan"), 10, float("nan"))


def test_rate_matching_fires_only_when_an_error_exceeds_its_tolerance():
    ok = decisions.decide_rate_matching([0.9, 1.0], [1e-7, 2e-7], [1e-6, 1e-6])
    assert ok.decision == decisions.DOES_NOT_FIRE and ok.worst_g == 1.0
    bad = decisions.decide_rate_matching([0.9, 1.0], [3e-6, 2e-7], [1e-6, 1e-6])
    assert bad.decision == decisions.FIRES and bad.worst_g == 0.9 and bad.worst_error == 3e-6


def test_held_out_drift_level_and_spread_relative_to_the_target():
    steady = decisions.held_out_drift(1e-4, [1.01e-4, 0.99e-4], 0.05)
    assert steady.within_tolerance
    moving = decisions.held_out_drift(1e-4, [2.0e-4, 1.5e-4], 0.05)
    assert moving.level == pytest.approx(1.0) and moving.spread == pytest.approx(0.5)
    assert not moving.within_tolerance


def test_null_outcomes_and_when_the_null_falsifier_fires():
    assert decisions.decide_null(0.05, 0.01, 0.09) == decisions.NULL_BEYOND_RATES
    assert decisions.decide_null(0.01, -0.01, 0.03) == decisions.NULL_EXPLAINED_BY_RATES
    assert decisions.decide_null(-0.05, -0.09, -0.01) == decisions.NULL_BELOW_NULL
    assert decisions.decide_null(float("nan"), 0, 1) == decisions.NULL_NOT_RECORDED
    assert decisions.null_falsifier(decisions.NULL_BEYOND_RATES) == decisions.DOES_NOT_FIRE
    assert decisions.null_falsifier(decisions.NULL_EXPLAINED_BY_RATES) == decisions.FIRES
    assert decisions.null_falsifier(decisions.NULL_BELOW_NULL) == decisions.FIRES
    assert decisions.null_falsifier(decisions.NULL_NOT_RECORDED) == decisions.UNDETERMINED


def test_generalization_fires_on_worse_perplexity_or_lower_accuracy_beyond_the_cis():
    same = ((0.4, 0.6), (0.4, 0.6))
    ok = decisions.decide_generalization(0.9, 0.8, 0.95, (19, 21), (20, 22), *same)
    assert ok.decision == decisions.DOES_NOT_FIRE and ok.b_nearer_at_gstar and not ok.ppl_worse
    ppl = decisions.decide_generalization(0.9, 0.8, 0.95, (19, 21), (21.5, 23), *same)
    assert ppl.decision == decisions.FIRES and ppl.ppl_worse
    arc = decisions.decide_generalization(
        0.9, 0.8, 0.7, (19, 21), (19, 21), (0.5, 0.7), (0.2, 0.45)
    )
    assert arc.decision == decisions.FIRES and arc.arc_worse and not arc.b_nearer_at_gstar
    assert decisions.decide_generalization(1.0, 0.9, 0.9, (1, 2), (1, 2), *same).vacuous


def test_generalization_is_decided_on_the_paired_difference_when_there_is_one():
    """The issue's case: overlapping marginal CIs, paired CI of g* - g1 above 0: fires."""
    acc = ((0.2, 0.3), (0.2, 0.3))
    overlapping = ((10.0, 12.0), (11.0, 13.5))
    paired = decisions.decide_generalization(
        0.7, 0.8, 0.9, *overlapping, *acc, ppl_diff_ci=(0.49, 1.08), acc_diff_ci=(-0.05, 0.04)
    )
    assert paired.decision == decisions.FIRES and paired.ppl_worse and paired.ppl_paired
    assert paired.arc_paired and paired.arc_worse is False
    unpaired = decisions.decide_generalization(0.7, 0.8, 0.9, *overlapping, *acc)
    assert unpaired.decision == decisions.DOES_NOT_FIRE and not unpaired.ppl_paired
    # ARC: a paired difference below 0 fires even with overlapping accuracy CIs
    arc = decisions.decide_generalization(
        0.7, 0.8, 0.9, *overlapping, *acc, ppl_diff_ci=(-0.1, 0.2), acc_diff_ci=(-0.09, -0.01)
    )
    assert arc.decision == decisions.FIRES and arc.arc_worse and not arc.ppl_worse
    # a NaN paired CI falls back to the marginal rule
    nan = (float("nan"), float("nan"))
    fallback = decisions.decide_generalization(
        0.7, 0.8, 0.9, (10, 11), (11.5, 12), *acc, ppl_diff_ci=nan
    )
    assert fallback.ppl_worse and not fallback.ppl_paired
    # g* = 1: the same measurement, never worse
    empty = decisions.decide_generalization(
        1.0, 0.9, 0.9, *overlapping, *acc, ppl_diff_ci=(0.0, 0.0), acc_diff_ci=(0.0, 0.0)
    )
    assert empty.vacuous and empty.decision == decisions.DOES_NOT_FIRE


def test_ablation_tracks_the_global_gain_with_the_larger_shift():
    mlp = decisions.decide_ablation(
        0.9,
        1.0,
        {"MLP_GLOBAL": 0.8, "ATTN_GLOBAL": 1.05, "MLP_BAND_EARLY": 0.9, "MLP_BAND_LATE": 0.99},
    )
    assert mlp.tracks == decisions.TRACKS_MLP and mlp.strongest_band == "MLP_BAND_EARLY"
    assert mlp.shifts["MLP_GLOBAL"] == pytest.approx(-0.2)
    attn = decisions.decide_ablation(0.9, 1.0, {"MLP_GLOBAL": 0.95, "ATTN_GLOBAL": 1.2})
    assert attn.tracks == decisions.TRACKS_ATTENTION
    assert (
        decisions.decide_ablation(1.0, 1.0, {"MLP_GLOBAL": 1.0, "ATTN_GLOBAL": 1.0}).tracks is None
    )


def test_paired_difference_differs_only_when_its_ci_excludes_zero():
    assert decisions.decide_paired_difference(0.03, 0.01, 0.05) == "differs"
    assert decisions.decide_paired_difference(-0.03, -0.05, -0.01) == "differs"
    assert decisions.decide_paired_difference(0.01, -0.01, 0.03) == "no detectable difference"


def test_null_falsifier_takes_the_strictest_recorded_null():
    nan = float("nan")
    above = {
        "permutation": (0.05, 0.03, 0.07),
        "shift": (0.04, 0.02, 0.06),
        "token": (0.1, 0.05, 0.2),
    }
    quiet = decisions.decide_null_falsifier(above)
    assert (quiet.decision, quiet.deciding) == (decisions.DOES_NOT_FIRE, "shift")
    assert set(quiet.outcomes.values()) == {decisions.NULL_BEYOND_RATES}
    # a lower bound of exactly 0 contains 0: fires; the smallest positive bound does not
    assert decisions.decide_null_falsifier({**above, "token": (0.1, 0.0, 0.2)}).decision == (
        decisions.FIRES
    )
    tiny = decisions.decide_null_falsifier({**above, "token": (0.1, 1e-12, 0.2)})
    assert (tiny.decision, tiny.deciding) == (decisions.DOES_NOT_FIRE, "token")
    below = decisions.decide_null_falsifier({**above, "permutation": (-0.05, -0.07, -0.03)})
    assert (below.decision, below.deciding) == (decisions.FIRES, "permutation")
    assert below.outcomes["permutation"] == decisions.NULL_BELOW_NULL
    # a null not recorded cannot fire ...
    rescued = decisions.decide_null_falsifier({**above, "token": (nan, nan, nan)})
    assert rescued.decision == decisions.DOES_NOT_FIRE
    assert rescued.outcomes["token"] == decisions.NULL_NOT_RECORDED
    # ... nor rescue: the recorded ones decide
    fired = decisions.decide_null_falsifier(
        {"permutation": (0.0, -0.01, 0.01), "shift": (nan, nan, nan), "token": (nan, nan, nan)}
    )
    assert (fired.decision, fired.deciding) == (decisions.FIRES, "permutation")
    none = decisions.decide_null_falsifier({"permutation": (nan, nan, nan), "shift": (nan, 0, 1)})
    assert (none.decision, none.deciding) == (decisions.UNDETERMINED, None)
    # ties in the lower bound: the first listed decides
    tie = decisions.decide_null_falsifier({"a": (0.1, 0.02, 0.2), "b": (0.1, 0.02, 0.3)})
    assert tie.deciding == "a"


def test_specificity_needs_a_present_signature_that_separates_from_the_control():
    specific = decisions.decide_specificity(decisions.PRESENT, 0.01, 0.3, decisions.PRESENT)
    assert specific == decisions.SpecificityDecision(decisions.SPECIFIC, True, True)
    below = decisions.decide_specificity(decisions.PRESENT, -0.3, -0.01, decisions.ABSENT)
    assert below.decision == decisions.SPECIFIC and below.control_shows_it is False
    # a CI that touches 0 does not exclude it: present but not specific, control shows it too
    touching = decisions.decide_specificity(decisions.PRESENT, 0.0, 0.3, decisions.PRESENT)
    assert touching == decisions.SpecificityDecision(decisions.NOT_SPECIFIC, False, True)
    assert (
        decisions.decide_specificity(decisions.PRESENT, -0.3, 0.0, decisions.ABSENT).decision
        == decisions.NOT_SPECIFIC
    )
    # no CI: cannot separate
    no_ci = decisions.decide_specificity(decisions.PRESENT, float("nan"), float("nan"))
    assert no_ci == decisions.SpecificityDecision(decisions.NOT_SPECIFIC, None, None)
    # absent / undetermined signatures keep their decision
    for decision in (decisions.ABSENT, decisions.UNDETERMINED):
        assert decisions.decide_specificity(decision, 0.1, 0.3).decision == decision


def test_s3_is_specific_also_when_the_control_has_no_s3():
    overlapping = (decisions.PRESENT, -0.1, 0.3)
    assert (
        decisions.decide_specificity(*overlapping, decisions.ABSENT, True).decision
        == decisions.SPECIFIC
    )
    assert (
        decisions.decide_specificity(*overlapping, decisions.PRESENT, True).decision
        == decisions.NOT_SPECIFIC
    )
    # the control's absence only counts for S3
    assert (
        decisions.decide_specificity(*overlapping, decisions.ABSENT, False).decision
        == decisions.NOT_SPECIFIC
    )
    # an undetermined control S3 does not suffice either
    assert (
        decisions.decide_specificity(*overlapping, decisions.UNDETERMINED, True).decision
        == decisions.NOT_SPECIFIC
    )
