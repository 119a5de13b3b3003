"""Report section "Time vs depth": what the permutation and token-shuffle nulls remove along
tokens and along layers, and whether the connectivity is context-driven (hand-made tables)."""

from __future__ import annotations

from avalanche_kedro.study.report import time_depth
from avalanche_kedro.study.report.page import build_report
from tests.study.report.tables_builder import Scenario, cells_of, make_tables, provenance, said

NAN = (float("nan"),) * 3
TITLE = "## Time vs depth: what the nulls remove along tokens and along layers"


def test_the_verdict_rule():
    above, around = (0.05, 0.02, 0.08), (0.01, -0.02, 0.04)
    decide = time_depth.decide_time_depth
    assert decide(around, around, above) == time_depth.CONTEXT_DRIVEN
    assert decide(above, above, around) == time_depth.NOT_CONTEXT
    assert decide(around, above, around) == time_depth.DEPTH_ONLY
    assert decide(around, around, around) == time_depth.NONE_BEYOND_RATES
    assert decide(above, above, NAN) == time_depth.NOT_TESTED
    # a CI bound at exactly 0 does not lie above 0
    assert decide(around, (0.03, 0.0, 0.06), around) == time_depth.NONE_BEYOND_RATES


def test_the_issue_case_depth_alignment_only():
    """b_depth 0.206 real vs 0.098 permuted, b_time 0.157 vs 0.124 with a CI reaching 0, the
    token-shuffle null indistinguishable from the real data: depth alignment only."""
    split = {
        "time": (0.033, -0.004, 0.07),
        "depth": (0.108, 0.08, 0.13),
        "time_tokshuf": (0.001, -0.01, 0.012),
        "depth_tokshuf": (0.002, -0.01, 0.015),
    }
    scenario = Scenario(split=split, tokshuf_delta=(0.003, -0.015, 0.02))
    text = said(scenario, "td")
    assert "delta_b_time = 0.033 [-0.004, 0.07] along tokens" in text
    assert "delta_b_depth = 0.108 [0.08, 0.13] along layers" in text
    assert text.endswith("**depth alignment only**.")
    report = build_report(provenance(), make_tables({"base": scenario}))
    (row,) = cells_of(report, TITLE)
    assert row[-6:] == [
        "0.033 [-0.004, 0.07]",
        "0.11 [0.08, 0.13]",
        "0.001 [-0.01, 0.012]",
        "0.002 [-0.01, 0.015]",
        "depth alignment only",
        "T01:1",
    ]
    assert "(context-driven) in 0, base 0 of 1" in report


def test_context_driven_when_the_token_shuffle_ci_lies_above_zero():
    split = {
        "time": (0.08, 0.06, 0.1),
        "depth": (0.3, 0.28, 0.32),
        "time_tokshuf": (0.05, 0.02, 0.07),
        "depth_tokshuf": (0.01, -0.004, 0.03),
    }
    scenario = Scenario(split=split, tokshuf_delta=(0.06, 0.03, 0.09))
    assert said(scenario, "td").endswith("**context-driven**.")
    report = build_report(provenance(), make_tables({"base": scenario}))
    assert cells_of(report, TITLE)[0][-2] == "**context-driven**"
    assert "(context-driven) in 1, base 1 of 1" in report
