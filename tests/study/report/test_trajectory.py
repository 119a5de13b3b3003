"""The report's "Training trajectory (T09)" section on a synthetic T09."""

from __future__ import annotations

from avalanche_kedro.study.report.trajectory import trajectory_section
from tests.study.trajectory_builder import make_t09


def test_no_series_no_section():
    assert trajectory_section(None) == []


def test_the_section_names_the_steps_and_when_each_statistic_separates():
    text = "\n".join(trajectory_section(make_t09(separate_b_tot_at=14)))
    assert text.startswith("## Training trajectory (T09)")
    assert "`step0` (step 0), `step14` (step 14), `step200` (step 200)" in text
    # b_tot separates at 14 and stays, at g = 1 and at g*; nothing else ever separates
    row = "| SPIKE_ONE_SIDED_POS | 0.001 | step 14 / step 14 | never / never | never / never |"
    assert row in text
    assert text.count("| step 14 / step 14 |") == 4  # every (spike def, rate) group
    assert "- S1: b_tot first separates from step 0 (g = 1) at step 14 in 4 of 4" in text
    assert "- S2: chi first separates from step 0 (g = 1) at never in 4 of 4" in text
    assert "step 0: 4000 [3900, 4100]; step 14: 800 [780, 820]; step 200: 444.4" in text


def test_a_separation_that_does_not_last_is_said_so():
    t09 = make_t09(separate_b_tot_at=14)
    later = (t09["step"] == 200) & (t09["g_condition"] == "g1")
    t09.loc[later, "diff_b_tot_vs_step0_ci_low"] = -1.0  # step 200's CI contains 0 again
    text = "\n".join(trajectory_section(t09))
    assert "step 14 (not at every later step) / step 14 |" in text
