"""Report section "Falsifiers": (a) rate matching and held-out drift, (b) the nulls, (c)
generalization to dataset B and ARC, each sentence citing its rows."""

from __future__ import annotations

from avalanche_kedro.study.report.page import build_report
from tests.study.report.tables_builder import (
    GRID,
    Scenario,
    line_of,
    make_tables,
    provenance,
    render,
    row,
)


def test_rate_matching_sentence_and_held_out_drift():
    quiet = line_of(render(), "In sample, (a)")
    assert "(a) **does not fire**" in quiet and "Held-out drift exceeds" not in quiet
    assert row(0.8) in quiet
    fired = line_of(render(Scenario(rate_err=1e-5)), "In sample, (a)")
    assert "(a) **fires**" in fired and row(0.8) in fired
    drift = Scenario(
        held_out_mean=dict(zip(GRID, [3e-4, 2.5e-4, 2e-4, 1.5e-4, 1.2e-4], strict=True))
    )
    drifting = line_of(render(drift), "In sample, (a)")
    assert "**Held-out drift exceeds the 5 % tolerance**" in drifting
    assert (
        row(1.2) in drifting
        and row(0.8) in drifting
        and "off the target by up to 200 %" in drifting
    )
    assert "**Held-out rates are not matched** in 1 of 1 groups" in render(drift)


def test_without_held_out_rates_the_drift_is_not_reported():
    frames = make_tables({"base": Scenario()})
    frames["T01"] = frames["T01"].drop(columns="opt_achieved_rate_analysis_mean")
    text = build_report(provenance(), frames)
    assert "Held out" not in line_of(text, "In sample, (a)")
    assert "| does not fire | n/a |" in line_of(text, "| base |")


def test_null_sentence_fires_when_the_ci_contains_zero():
    quiet = line_of(render(), ".** (b) ")
    assert "(b) **does not fire** at g* = 0.9" in quiet and row(0.9) in quiet
    assert "CI lies above 0 at 5 of 5 gains" in quiet
    assert "shift delta_b_tot = 0.01, CI [-0.01, 0.03] (CI includes 0" in quiet
    assert "token-shuffle delta_b_tot = 0.04" in quiet
    assert "preserved every (window, layer) event multiset" in quiet
    fired = line_of(render(Scenario(delta_b_tot=(0.01, -0.01, 0.03))), ".** (b) ")
    assert "(b) **fires** at g* = 0.9" in fired and "explained by the rates" in fired
    assert row(0.9) in fired and "at 0 of 5 gains" in fired
    below = line_of(render(Scenario(delta_b_tot=(-0.05, -0.07, -0.03))), ".** (b) ")
    assert "(b) **fires**" in below and "less connected" in below
    broken = line_of(render(Scenario(marginals_preserved=False)), ".** (b) ")
    assert "**Marginals were NOT preserved**" in broken


def test_generalization_sentence_fires_on_perplexity_and_on_arc():
    quiet = line_of(render(), ".** (c) ")
    assert "(c) **does not fire**" in quiet and "nearer to 1 at g*" in quiet
    for cited in (
        row(g_condition="g1", table="T02"),
        row(g_condition="gstar", table="T02"),
        row(g_condition="g1", table="T03"),
        row(g_condition="gstar", table="T03"),
    ):
        assert cited in quiet
    worse_ppl = Scenario(ppl=((20.0, 19.0, 21.0), (25.0, 24.0, 26.0)))
    fired = line_of(render(worse_ppl), ".** (c) ")
    assert "(c) **fires**" in fired and "**worse at g*** (CIs do not overlap)" in fired
    worse_arc = Scenario(acc=((0.6, 0.5, 0.7), (0.3, 0.2, 0.4)))
    fired = line_of(render(worse_arc), ".** (c) ")
    assert "(c) **fires**" in fired and "**lower at g*** (CIs do not overlap)" in fired
    assert "left-truncated" not in quiet  # no prompt was cut: nothing to say


def test_generalization_sentence_counts_prompts_cut_to_the_context():
    frames = make_tables({"base": Scenario()})
    frames["T03"] = frames["T03"].assign(opt_n_prompts_truncated=7)
    text = line_of(build_report(provenance(), frames), ".** (c) ")
    assert "7 of those prompts were longer than the model's context" in text
