"""Report section "Falsifiers": (a) rate matching and held-out drift, (b) the nulls, (c)
generalization to dataset B and ARC, each sentence citing its rows."""

from __future__ import annotations

from avalanche_kedro.study.report.page import build_report
from tests.study.report.tables_builder import (
    GRID,
    Scenario,
    cells_of,
    make_tables,
    provenance,
    render,
    row,
    said,
)


def test_rate_matching_sentence_and_held_out_drift():
    quiet = said(key="a")
    assert "(a) **does not fire**" in quiet and "Held-out drift exceeds" not in quiet
    assert row(0.8) in quiet
    fired = said(Scenario(rate_err=1e-5), "a")
    assert "(a) **fires**" in fired and row(0.8) in fired
    drift = Scenario(
        held_out_mean=dict(zip(GRID, [3e-4, 2.5e-4, 2e-4, 1.5e-4, 1.2e-4], strict=True))
    )
    drifting = said(drift, "a")
    assert "**Held-out drift exceeds the 5 % tolerance**" in drifting
    assert (
        row(1.2) in drifting
        and row(0.8) in drifting
        and "off the target by up to 200 %" in drifting
    )
    text = render(drift)
    assert "**held-out rates drift** in 1 of 1" in text
    # the section's row: held-out mean 2.5e-4 at g* = 0.9 against 1e-4, i.e. 150 % off there,
    # 200 % at worst (g = 0.8), and (3e-4 - 1.2e-4) / 1e-4 = 180 % across the grid; rows: the
    # worst in-sample gain 0.8 (T01:0), g* (T01:1), the lowest (1.2, T01:4) and highest (0.8)
    # held-out means
    (cells,) = cells_of(text, "## Falsifier (a): rate matching")
    assert cells[3:] == ["no", "1e-07 / 5e-06 at g = 0.8", "0.00025", "200 %", "180 %"] + [
        "**drifts**",
        "T01:0,1,4",
    ]
    assert cells_of(text, "## Summary")[0][7] == "no, drift"  # the verdict table's (a)


def test_without_held_out_rates_the_drift_is_not_reported():
    frames = make_tables({"base": Scenario()})
    frames["T01"] = frames["T01"].drop(columns="opt_achieved_rate_analysis_mean")
    text = build_report(provenance(), frames)
    assert "Held out" not in said(key="a", frames=frames)
    (cells,) = cells_of(text, "## Falsifier (a): rate matching")
    assert cells[5:] == ["n/a", "n/a", "n/a", "not in T01", "T01:0"]


def test_null_sentence_fires_when_the_ci_contains_zero():
    quiet = said(key="b")
    assert "(b) **does not fire** at g* = 0.9" in quiet and row(0.9) in quiet
    # every null lies above 0; the least favourable (smallest CI low) is the shift null
    assert "least favourable being the shift null (shift delta_b_tot = 0.04" in quiet
    assert "CI lies above 0 at 5 of 5 gains" in quiet
    assert "permutation delta_b_tot = 0.05, CI [0.03, 0.07] (CI excludes 0: real > null)" in quiet
    assert "token-shuffle delta_b_tot = 0.06, CI [0.04, 0.08]" in quiet
    assert "preserved every (window, layer) event multiset" in quiet
    fired = said(Scenario(delta_b_tot=(0.01, -0.01, 0.03)), "b")
    assert "(b) **fires** at g* = 0.9, decided by the permutation null" in fired
    assert "explained by the rates" in fired
    assert row(0.9) in fired and "at 0 of 5 gains" in fired
    below = said(Scenario(delta_b_tot=(-0.05, -0.07, -0.03)), "b")
    assert "(b) **fires**" in below and "less connected" in below
    broken = said(Scenario(marginals_preserved=False), "b")
    assert "**Marginals were NOT preserved**" in broken


def test_null_falsifier_fires_on_the_strictest_null_and_names_it():
    # the permutation null alone lies above 0, the shift null contains 0: (b) fires on the shift
    shift = said(Scenario(shift_delta=(0.01, -0.01, 0.03)), "b")
    assert "(b) **fires** at g* = 0.9, decided by the shift null" in shift
    assert "shift delta_b_tot = 0.01, CI [-0.01, 0.03] (CI includes 0: no difference)" in shift
    assert "permutation delta_b_tot = 0.05, CI [0.03, 0.07] (CI excludes 0" in shift
    # the token-shuffle null lies below 0: it decides, the sentence says "less connected"
    token = said(Scenario(tokshuf_delta=(-0.02, -0.03, -0.01)), "b")
    assert "decided by the token-shuffle null" in token and "less connected" in token
    # exactly at the threshold: a CI lower bound of 0 contains 0 and fires, just above does not
    at_zero = said(Scenario(tokshuf_delta=(0.02, 0.0, 0.04)), "b")
    assert "(b) **fires**" in at_zero and "decided by the token-shuffle null" in at_zero
    above = said(Scenario(tokshuf_delta=(0.02, 1e-9, 0.04)), "b")
    assert "(b) **does not fire**" in above
    assert "least favourable being the token-shuffle null" in above


def test_a_null_not_recorded_at_gstar_neither_rescues_nor_fires_the_verdict():
    # token shuffle recorded at g = 1 only (not at g* = 0.9), where its CI would contain 0
    only_g1 = Scenario(tokshuf_delta=(0.0, -0.01, 0.01), tokshuf_gains=(1.0,))
    text = said(only_g1, "b")
    assert "(b) **does not fire**" in text
    assert "token-shuffle null not recorded at this gain" in text
    # the same null recorded at g* fires it
    assert "(b) **fires**" in said(
        Scenario(tokshuf_delta=(0.0, -0.01, 0.01), tokshuf_gains=(0.9,)), "b"
    )
    # nothing recorded at g* (the schema allows a NaN delta only on an empty raster, so the
    # table is edited after validation): undetermined
    frames = make_tables({"base": Scenario()})
    t01 = frames["T01"].copy()
    at_gstar = t01["g"] == 0.9
    for column in (
        "delta_b_tot",
        "opt_delta_b_tot_ci_low",
        "opt_delta_b_tot_ci_high",
        "opt_delta_b_tot_shift",
        "opt_delta_b_tot_shift_ci_low",
        "opt_delta_b_tot_shift_ci_high",
        "opt_delta_b_tot_tokshuf",
        "opt_delta_b_tot_tokshuf_ci_low",
        "opt_delta_b_tot_tokshuf_ci_high",
    ):
        t01.loc[at_gstar, column] = float("nan")
    frames["T01"] = t01
    undetermined = said(key="b", frames=frames)
    assert "(b) is **undetermined** at g* = 0.9: none of the three nulls was recorded" in (
        undetermined
    )
    assert "permutation null not recorded at this gain; shift null not recorded" in undetermined


def test_generalization_sentence_fires_on_perplexity_and_on_arc():
    quiet = said(key="c")
    assert "(c) **does not fire**" in quiet and "nearer to 1 at g*" in quiet
    for cited in (
        row(g_condition="g1", table="T02"),
        row(g_condition="gstar", table="T02"),
        row(g_condition="g1", table="T03"),
        row(g_condition="gstar", table="T03"),
    ):
        assert cited in quiet
    worse_ppl = Scenario(ppl=((20.0, 19.0, 21.0), (25.0, 24.0, 26.0)))
    fired = said(worse_ppl, "c")
    # a table without paired columns (an older run) is decided on the marginal CIs, and says so
    assert "(c) **fires**" in fired
    assert "**worse at g*** (CIs do not overlap; no paired difference in T02)" in fired
    worse_arc = Scenario(acc=((0.6, 0.5, 0.7), (0.3, 0.2, 0.4)))
    fired = said(worse_arc, "c")
    assert "(c) **fires**" in fired and "**lower at g*** (CIs do not overlap; no paired" in fired
    assert "left-truncated" not in quiet  # no prompt was cut: nothing to say


def test_generalization_is_decided_on_the_paired_difference_with_its_power():
    """Overlapping perplexity CIs, paired difference above 0 on the same windows: fires, and
    the sentence gives the difference, the window tally and the smallest detectable effect."""
    paired = Scenario(
        ppl=((10.87, 9.5, 12.4), (11.5, 10.1, 13.0)),
        ppl_diff=(0.63, 0.49, 1.08),
        acc_diff=(0.0, -0.05, 0.05),
        chance=0.25,
        n_windows_worse=8,
    )
    text = said(paired, "c")
    assert "(c) **fires**" in text
    assert "paired on the same 8 windows, g* − g = 1 = +0.63 [0.49, 1.08], 8 of 8 worse" in text
    assert "**worse at g*** (the paired CI lies above 0)" in text
    assert "smallest perplexity difference these windows detect is ±0.295" in text
    assert "g* − g = 1 = +0 [-0.05, 0.05]" in text and "not lower at g*" in text
    assert "smallest accuracy difference these questions detect is ±0.05" in text
    # accuracy 0.5 with CI [0.4, 0.6] at g = 1 is above chance 0.25
    assert "Chance accuracy (a uniform guess) is 0.25; accuracy at g = 1 is above it" in text
    quiet = said(Scenario(ppl_diff=(0.1, -0.2, 0.4), acc_diff=(0.0, -0.1, 0.1)), "c")
    assert "(c) **does not fire**" in quiet and "not worse at g* (the paired CI reaches 0" in quiet


def test_arc_without_power_is_said_to_have_none():
    """The issue's fixture: accuracy 0.205 against chance 0.25 (CI reaching below chance)."""
    low = Scenario(
        acc=((0.205, 0.12, 0.29), (0.2, 0.12, 0.28)), acc_diff=(-0.005, -0.05, 0.04), chance=0.25
    )
    text = said(low, "c")
    assert "accuracy at g = 1 is **not above chance**, so ARC has **no power** here" in text


def test_generalization_sentence_counts_prompts_cut_to_the_context():
    frames = make_tables({"base": Scenario()})
    frames["T03"] = frames["T03"].assign(opt_n_prompts_truncated=7)
    text = said(key="c", frames=frames)
    assert "7 of those prompts were longer than the model's context" in text


def test_dataset_b_rates_are_shown_relative_to_the_target_and_flagged_when_they_drift():
    """The issue's case: B thresholded with A's taus runs 29-36 % above r*."""
    drifting = said(Scenario(b_rate_ratio=(1.36, 1.29)), "c")
    assert "the mean event rate is 1.29 × r* at g* and 1.36 × r* at g = 1" in drifting
    assert "**beyond rel_tol = 0.05**, so B's branching is compared at drifted rates" in drifting
    matched = said(Scenario(b_rate_ratio=(1.02, 0.97)), "c")
    assert "0.97 × r* at g* and 1.02 × r* at g = 1, within rel_tol = 0.05." in matched


def test_the_null_sentence_gives_the_smallest_detectable_effect_of_the_deciding_null():
    text = said(Scenario(shift_delta=(0.01, -0.01, 0.03)), "b")
    assert "decided by the shift null" in text
    assert "smallest delta_b_tot the shift null's paired CI can detect is ±0.02" in text


def test_whether_b_is_nearer_1_at_gstar_is_decided_on_the_paired_margin():
    text = said(Scenario(b_nearer=(0.12, 0.05, 0.2)), "c")
    assert (
        "|b_tot(1) − 1| − |b_tot(g*) − 1| = +0.12 [0.05, 0.2] (paired): g* is **nearer** 1." in text
    )
    unresolved = said(Scenario(b_nearer=(0.01, -0.03, 0.05)), "c")
    assert "whether g* is nearer 1 is not resolved" in unresolved
    assert "g* is **farther** from 1." in said(Scenario(b_nearer=(-0.1, -0.2, -0.04)), "c")
    # without the paired columns: the point comparison, said to be one
    assert "nearer to 1 at g* (a point comparison)" in said(key="c")
