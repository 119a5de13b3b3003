"""Report section "Signatures": the S1, S2 and S3 sentences, each citing the table row behind
it, on hand-made tables."""

from __future__ import annotations

from dataclasses import replace

from avalanche_kedro.study.report import signatures
from avalanche_kedro.study.report.grouping import groups
from tests.study.report.tables_builder import (
    GRID,
    Scenario,
    make_tables,
    row,
    said,
)


def test_s1_present_and_absent_sentences_cite_the_gstar_row():
    present = said(key="S1")
    assert "S1 is **present**" in present and row(0.9) in present
    assert row(1.0) in present  # the g = 1 value is quoted with its row
    shifted = Scenario(b_tot=dict(zip(GRID, [1.5, 1.4, 1.3, 1.25, 1.2], strict=True)), g_star=1.2)
    absent = said(shifted, "S1")
    assert "S1 is **absent**" in absent and "lies above 1 by 0.15" in absent
    assert row(1.2) in absent and "end of the gain grid" in absent


def test_s2_present_and_absent_sentences_cite_the_chi_argmax_row():
    present = said(key="S2")
    assert "S2 is **present**" in present and "which is g* itself" in present
    assert row(0.9) in present
    far = Scenario(chi=dict(zip(GRID, [1.0, 2.0, 3.0, 4.0, 9.0], strict=True)))
    absent = said(far, "S2")
    assert "S2 is **absent**" in absent and "3 grid steps from g* = 0.9" in absent
    assert row(1.2) in absent and row(0.9) in absent
    assert "not an interior peak" in absent and "rises monotonically" in absent


def test_s3_absent_says_why_and_cites_t05():
    present = said(key="S3")
    assert "S3 is **present**" in present and row(0.9, table="T05") in present
    failed = Scenario(crackling_pass=False, crackling_reason="only 5 distinct durations (< 8)")
    absent = said(failed, "S3")
    assert "S3 is **absent**" in absent and "only 5 distinct durations (< 8)" in absent
    assert row(0.9, table="T05") in absent
    # no recorded reason: the gate is re-derived from the row
    silent = said(replace(failed, crackling_reason="", n_duration_points=4), "S3")
    assert "only 4 distinct durations" in silent


def test_findings_are_undetermined_without_the_rows_they_need():
    frames = make_tables({"base": Scenario()})
    frames["T05"] = frames["T05"].iloc[:0]
    (group,) = groups(frames)
    s3 = signatures.s3_finding(group)
    assert (s3.key, s3.decision) == ("S3", "undetermined")
    assert s3.sentence.startswith("S3 is **undetermined**: no T05 row")
    group.t01 = group.t01.assign(chi=float("nan"), opt_b_tot_ci_low=float("nan"))
    s1, s2 = signatures.s1_finding(group), signatures.s2_finding(group)
    assert (s1.decision, s2.decision) == ("undetermined", "undetermined")
    assert "no finite b_tot or CI at g* = 0.9" in s1.sentence
    assert row(0.9) in s2.sentence


def test_s1_says_whether_gstar_is_identified_with_the_runner_up_margin():
    flat = said(Scenario(identified=False, margin=(0.004, -0.01, 0.02)), "S1")
    assert "**g* not identified** — b_tot is flat within noise across the grid" in flat
    assert "the runner-up g = 1.0 is farther from b_tot = 1 by 0.004, CI [-0.01, 0.02]" in flat
    assert 'every comparison "at g*" is at one gain of a flat curve' in flat
    sharp = said(Scenario(identified=True, margin=(0.05, 0.03, 0.07)), "S1")
    assert "g* is **identified**" in sharp and "by 0.05, CI [0.03, 0.07]" in sharp
    assert "identified" not in said(key="S1")  # a T01 without the columns says nothing
    (group,) = groups(make_tables({"base": Scenario(identified=False)}))
    assert signatures.g_star_cell(group) == "0.9 (n.i.)"
    assert signatures.gstar_identified(group) is False
    (edge,) = groups(make_tables({"base": Scenario(g_star=1.2, identified=False)}))
    assert signatures.g_star_cell(edge) == "1.2 (edge, n.i.)"


def test_the_identification_section_gives_the_runner_up_margin_behind_every_n_i():
    from avalanche_kedro.study.report.page import build_report
    from tests.study.report.tables_builder import cells_of, provenance

    report = build_report(
        provenance(), make_tables({"base": Scenario(identified=False, margin=(0.004, -0.01, 0.02))})
    )
    assert cells_of(report, "## Is g* identified?")[0][3:] == [
        "0.9",
        "not identified",
        "1.0",
        "0.004 [-0.01, 0.02]",
        "n/a",
        "T01:1",
    ]
    # tables without the identification columns (older runs): no section
    assert "## Is g* identified?" not in build_report(
        provenance(), make_tables({"base": Scenario()})
    )
