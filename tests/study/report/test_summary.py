"""The one-page summary: its size, the verdict table, the five numbers, the figure links, what
it says when a run cannot decide something, and the HTML page."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pandas as pd
import pytest

from avalanche_kedro.study import report
from avalanche_kedro.study.report import summary
from avalanche_kedro.study.report.page import build_report
from tests.conftest import PROJECT_ROOT
from tests.study.report.tables_builder import (
    SPIKE,
    Scenario,
    cells_of,
    make_tables,
    provenance,
)

CONTROL = "untrained"
ROLES = ("base", "instruct", CONTROL)
FIGURES = {
    "F03_BRANCHING_VS_GAIN": "../../figures/F03_BRANCHING_VS_GAIN/V/F03_BRANCHING_VS_GAIN/"
    "F03_BRANCHING_VS_GAIN.png",
    "F09_SUSCEPTIBILITY": "../../figures/F09_SUSCEPTIBILITY/V/F09_SUSCEPTIBILITY/"
    "F09_SUSCEPTIBILITY.png",
}


def three_roles(figures=FIGURES) -> str:
    frames = make_tables({r: Scenario() for r in ROLES}, control=CONTROL, paired={})
    return build_report(provenance(ROLES), frames, figures)


def summary_lines(text: str) -> list[str]:
    """From the title to the line before the "Run" section."""
    lines = text.splitlines()
    return lines[: lines.index("## Run")]


def assert_one_page(text: str) -> None:
    assert len(summary_lines(text)) <= report.SUMMARY_MAX_LINES
    longest = max(text.splitlines(), key=len)
    assert len(longest) <= report.MAX_LINE, longest


def test_summary_fits_one_page_and_no_line_is_longer_than_200():
    text = three_roles()
    assert_one_page(text)
    assert text.splitlines()[2] == "## Summary"
    assert "This run measures activation-event cascades in 3 model roles" in text


def test_verdict_table_has_a_row_per_group_with_the_deciding_rows():
    text = three_roles()
    (base,) = [row for row in cells_of(text, "## Summary") if len(row) == 11]
    # S1 and S2 specific (the default T08 row separates b_tot and chi), S3 shown by the
    # control too (diff gamma CI [-0.1, 0.3] contains 0); no falsifier fires; the deciding null
    # is the one with the smallest CI lower bound (shift: 0.02)
    assert base == [
        "base",
        SPIKE,
        "0.0001",
        "0.9",
        "**specific**",
        "**specific**",
        "not specific",
        "no",
        "no (shift)",
        "no",
        "T01:1 T05:1 T02:1 T08:0",
    ]
    control_row = cells_of(text, "## Summary", f"{CONTROL} (control)")[0]
    assert control_row[4:7] == ["present"] * 3 and control_row[-1] == "T01:11 T05:11 T02:5"
    frames = make_tables({r: Scenario() for r in ROLES}, control=CONTROL)
    # what the citations name: the g* rows of base (g = 0.9, second of five gains)
    assert frames["T01"].iloc[1][["model_role", "g"]].tolist() == ["base", 0.9]
    assert frames["T02"].iloc[1][["model_role", "g_condition"]].tolist() == ["base", "gstar"]
    assert frames["T08"].iloc[0]["compared_role"] == "base"


def test_five_numbers_per_role_with_their_cis():
    text = three_roles()
    assert "for the headline group SPIKE_ONE_SIDED_POS at the median target rate (r* = 0.0001)" in (
        " ".join(text.split())
    )
    # the second table of the summary, one row per role
    base, instruct, control = (
        cells_of(text, "## Summary", role)[1]
        for role in ("base", "instruct", f"{CONTROL} (control)")
    )
    # b_tot at g* 1.0 +- 0.05; strictest null: shift 0.04 [0.02, 0.06]; T08 diff b_tot 0.2
    # [0.1, 0.3]; ppl on B 20.5 [19.5, 21.5] at g* vs 20 [19, 21] at g = 1; gamma 1.5 [1.4, 1.6]
    assert base == [
        "base",
        "1 [0.95, 1.05]",
        "0.04 [0.02, 0.06] (shift)",
        "0.2 [0.1, 0.3]",
        "20.5 [19.5, 21.5] vs 20 [19, 21]",
        "1.5 [1.4, 1.6]",
        "T01:1 T08:0 T02:1,0 T05:1",
    ]
    assert instruct[3] == "0.2 [0.1, 0.3]" and control[3] == "—"


def test_headline_group_is_the_first_configured_spike_def_at_the_median_rate():
    t01 = pd.DataFrame({"g": [1.0]})

    def group(rate, spike=SPIKE):
        return report.Group("base", spike, rate, 1.0, t01, *([pd.DataFrame()] * 5))

    groups = [group(r) for r in (1e-4, 2e-4, 4e-4, 8e-4)] + [group(1e-4, "SPIKE_TWO_SIDED_ABS")]
    meta = {"parameters": {"calibration": {"spike_defs": ["SPIKE_TWO_SIDED_ABS", SPIKE]}}}
    assert summary._headline(groups, meta)["base"].spike == "SPIKE_TWO_SIDED_ABS"
    chosen = summary._headline(groups, {})["base"]  # not configured: the first spike def seen
    assert (chosen.spike, chosen.rate) == (SPIKE, 2e-4)  # lower middle of four rates


def test_figures_are_linked_by_reference_to_the_run_version_folder():
    text = three_roles()
    assert "[F03\u00a0b_tot\u00a0vs\u00a0gain][F03_BRANCHING_VS_GAIN]" in text
    assert f"[F03_BRANCHING_VS_GAIN]: {FIGURES['F03_BRANCHING_VS_GAIN']}" in text.splitlines()
    s1 = text.split("## S1:")[1].split("\n## ")[0]
    assert "Figures: [F03\u00a0b_tot\u00a0vs\u00a0gain][F03_BRANCHING_VS_GAIN]." in s1
    assert "F09" in text.split("## S2:")[1].split("\n## ")[0]
    without = three_roles(figures=None)
    assert "- Figures not linked: the run's save version was not given" in without
    assert "[F03_BRANCHING_VS_GAIN]:" not in without


def test_a_single_role_says_there_is_no_control_and_no_replication():
    text = build_report(provenance(), make_tables({"base": Scenario()}))
    assert_one_page(text)
    page = " ".join(summary_lines(text))
    assert "- Specificity not available: this run has no untrained control role (no T08)" in page
    assert "- Replication (T07) not available: this run has one model role (`base`)." in page


def test_a_missing_t07_with_two_roles_is_said_in_words():
    frames = make_tables({"base": Scenario(), "instruct": Scenario()})
    text = build_report(provenance(("base", "instruct")), {**frames, "T07": None})
    assert (
        "- Replication (T07) not available: the table is missing although the run has 2 roles."
        in (" ".join(summary_lines(text)))
    )


def test_a_run_where_no_signature_is_available_says_so():
    frames = make_tables({"base": Scenario()})
    # no g* row anywhere: T01 without opt_is_gstar, T02 without its gstar rows
    frames["T01"] = frames["T01"].drop(columns="opt_is_gstar")
    frames["T02"] = frames["T02"][frames["T02"]["g_condition"] == "g1"]
    text = build_report(provenance(), frames)
    assert_one_page(text)
    page = " ".join(" ".join(summary_lines(text)).split())
    assert "g* is unknown in 1 of 1 groups" in page
    assert "No signature is available in this run: S1, S2 and S3 are undetermined" in page
    verdict = cells_of(text, "## Summary")[0]
    assert verdict[3:7] == ["none", "undetermined", "undetermined", "undetermined"]
    # no events at all: T01 without rows
    empty = {k: (v.iloc[:0] if v is not None else None) for k, v in frames.items()}
    text = build_report(provenance(), empty)
    assert "T01 has no (role, spike definition, rate) group: nothing could be decided." in text


def test_many_groups_aggregate_the_verdict_table_over_rates():
    roles = [f"step{i}" for i in range(7)]
    frames = make_tables({r: Scenario() for r in roles})
    groups = report.groups(frames) * 4  # 28 groups: more than the table shows one by one
    decided = report.decide_all(frames)
    findings = {
        (g.role, g.spike, g.rate + i * 1e-9): decided[(g.role, g.spike, g.rate)]
        for i, g in enumerate(groups)
    }
    for i, g in enumerate(groups):
        groups[i] = report.Group(
            g.role, g.spike, g.rate + i * 1e-9, g.g_star, g.t01, g.t02, g.t03, g.t04, g.t05, g.t06
        )
    header, rows = summary._verdict_rows(groups, findings, None)
    assert len(rows) == 7 and rows[0][:3] == ["step0", SPIKE, "4 groups"]
    assert rows[0][4:10] == ["present 4/4"] * 3 + ["fires 0/4"] * 3


def test_the_latest_saved_run_gives_a_one_page_summary():
    """On this checkout's latest saved tables (skipped without a saved run)."""
    base = PROJECT_ROOT / "data" / "08_reporting"

    def latest(pattern):
        found = sorted(glob.glob(str(base / pattern)))
        return Path(found[-1]) if found else None

    frames = {}
    for short, name in report.TABLE_NAMES.items():
        path = latest(f"tables/{name}.parquet/*/{name}.parquet")
        frames[short] = pd.read_parquet(path) if path else None
    prov_path = latest("run_provenance.json/*/run_provenance.json")
    if prov_path is None or frames["T01"] is None:
        pytest.skip("no saved run in this checkout (run `kedro run` first)")
    prov = json.loads(prov_path.read_text())
    for key, column in (("T07", "compared_role"), ("T08", "compared_role"), ("T09", "model_role")):
        frame = frames.get(key)  # the latest may come from a run with other roles
        if frame is not None and not set(frame[column]) <= set(prov.get("roles", [])):
            frames[key] = None
    assert_one_page(build_report(prov, frames, FIGURES))


def test_report_is_deterministic_with_figures():
    assert three_roles() == three_roles()


def test_summary_marks_unidentified_gstar_and_says_what_it_means():
    frames = make_tables(
        {r: Scenario(identified=r == "base") for r in ROLES}, control=CONTROL, paired={}
    )
    text = build_report(provenance(ROLES), frames, FIGURES)
    assert_one_page(text)
    assert "**g* not identified** (n.i.) in 2 of 3 groups: b_tot is flat within noise" in text
    verdict_rows = [r for r in summary_lines(text) if r.startswith("| ")]
    assert any("| 0.9 (n.i.) |" in r for r in verdict_rows)
    assert any("| 0.9 |" in r for r in verdict_rows)  # base: identified, no mark
