"""Report section "Trained vs untrained" (T08) and the specificity of S1-S3 against the
untrained control, on hand-made tables: each verdict flips exactly where its rule says."""

from __future__ import annotations

from avalanche_kedro.study.report import control
from avalanche_kedro.study.report.page import build_report, decide_all
from tests.study.report.tables_builder import (
    GRID,
    RATE,
    SPIKE,
    Paired,
    Scenario,
    cells_of,
    make_tables,
    provenance,
)

CONTROL = "untrained"
T08_ROW = f"`T08[base vs {CONTROL}, {SPIKE}, r=0.0001]`"


class Run(str):
    """The report of a run, with the decisions behind it (``decided``)."""

    decided: dict


def run(base=None, untrained=None, pair=None, roles=("base", CONTROL)) -> Run:
    scenarios = {"base": base or Scenario(), CONTROL: untrained or Scenario()}
    frames = make_tables(scenarios, control=CONTROL, paired={"base": pair or Paired()})
    text = Run(build_report(provenance(roles), frames))
    text.decided = decide_all(frames)
    return text


def spec(text: Run, signature: str, role: str = "base") -> str:
    """The role's signature sentence followed by its specificity sentence."""
    decided = text.decided[(role, SPIKE, RATE)]
    return f"{decided[signature].sentence} {decided[f'{signature}_spec'].sentence}"


def summary_row(text: str, role: str) -> list[str]:
    """The role's row of the summary's verdict table."""
    return cells_of(text, "## Summary", role)[0]


def section_row(text: str, signature: str, role: str = "base") -> list[str]:
    title = next(line for line in text.splitlines() if line.startswith(f"## {signature}:"))
    return cells_of(text, title, role)[0]


def test_default_pair_s1_s2_specific_s3_shown_by_the_control_too():
    text = run()
    s1 = spec(text, "S1")
    assert "Against the untrained control `untrained`: **specific** (diff b_tot = 0.2" in s1
    assert "CI [0.1, 0.3] excludes 0" in s1 and T08_ROW in s1
    assert "**specific** (diff chi = 3, CI [1, 5] excludes 0" in spec(text, "S2")
    s3 = spec(text, "S3")
    assert "**present but not specific** (the untrained control shows it too: diff " in s3
    assert "crackling gamma = 0.1, CI [-0.1, 0.3]" in s3
    # verdict table: S1, S2 specific, S3 shown by the control too; the control row is marked
    assert summary_row(text, "base")[4:7] == ["**specific**", "**specific**", "not specific"]
    assert summary_row(text, "base")[-1] == "T01:1 T05:1 T02:1 T08:0"
    assert summary_row(text, f"{CONTROL} (control)")[4:7] == ["present"] * 3
    assert "This role is the untrained control of T08." in spec(text, "S1", CONTROL)
    assert "over 1 trained groups: S1 in 1, S2 in 1, S3 in 0" in text
    # the S1 section: diff b_tot with its CI, the verdict and the T08 row next to the T01 rows
    assert section_row(text, "S1")[-3:] == ["0.2 [0.1, 0.3]", "**specific**", "T01:1,2 T08:0"]
    assert section_row(text, "S3")[-3:] == [
        "0.1 [-0.1, 0.3]",
        "not specific (control shows it)",
        "T05:1 T08:0",
    ]


def test_s1_and_s2_specificity_flip_exactly_where_the_ci_touches_zero():
    touching = run(pair=Paired(b_tot=(0.1, 0.0, 0.2), chi=(-1.0, -2.0, 0.0)))
    assert "**present but not specific** (the untrained control shows it too: diff b_tot" in (
        spec(touching, "S1")
    )
    assert "**present but not specific**" in spec(touching, "S2")
    assert summary_row(touching, "base")[4:6] == ["not specific", "not specific"]
    just_off = run(pair=Paired(b_tot=(0.1, 1e-9, 0.2), chi=(-1.0, -2.0, -1e-9)))
    assert "**specific**" in spec(just_off, "S1") and "**specific**" in spec(just_off, "S2")


def test_not_separated_when_the_control_lacks_the_signature_but_the_ci_contains_zero():
    far = Scenario(b_tot=dict(zip(GRID, [1.5, 1.45, 1.4, 1.35, 1.3], strict=True)), g_star=1.2)
    text = run(untrained=far, pair=Paired(b_tot=(0.05, -0.05, 0.15)))
    assert "S1 is **absent**" in spec(text, "S1", CONTROL)
    assert "(not separated from the untrained control: diff b_tot = 0.05, CI [-0.05, 0.15]" in (
        spec(text, "S1")
    )


def test_s3_is_specific_when_the_control_has_no_s3_even_without_a_crackling_difference():
    failed = Scenario(crackling_pass=False, crackling_reason="only 5 distinct durations (< 8)")
    reason = "control untrained: 5 distinct durations in [3, 64] (< 8)"
    text = run(untrained=failed, pair=Paired(crackling_reason=reason))
    s3 = spec(text, "S3")
    assert "**specific** (the control's S3 is absent; diff crackling gamma not available" in s3
    assert reason in s3
    assert summary_row(text, "base")[4:7] == ["**specific**"] * 3
    assert section_row(text, "S3")[-3:] == [
        "n/a (see T08)",
        "**specific** (control lacks it)",
        "T05:1 T08:0",
    ]
    # with the control's S3 present, a separated gamma makes it specific
    separated = run(pair=Paired(crackling_gamma=(0.3, 0.1, 0.5)))
    assert "**specific** (diff crackling gamma = 0.3, CI [0.1, 0.5] excludes 0" in spec(
        separated, "S3"
    )


def test_an_absent_signature_is_absent_not_specific():
    failed = Scenario(crackling_pass=False, crackling_reason="CI width 0.7 > 0.5")
    text = run(base=failed, pair=Paired(crackling_gamma=(0.3, 0.1, 0.5)))
    assert "Against the untrained control `untrained`: absent, so nothing to separate" in spec(
        text, "S3"
    )
    decided = decide_all(make_tables({"base": failed, CONTROL: Scenario()}, control=CONTROL))
    assert decided[("base", SPIKE, RATE)]["S3_spec"].decision == "absent"


def test_without_a_control_nothing_is_called_specific():
    text = build_report(provenance(), make_tables({"base": Scenario()}))
    assert f"Specificity: {control.NO_CONTROL_TEXT}." in text
    assert "- Specificity not available: this run has no untrained control role (no T08)" in text
    assert summary_row(text, "base")[4:7] == ["present"] * 3
    assert "vs control" not in text and "**specific**" not in text
    # a control role named in model_roles but without T08 rows is the same: no T08, no verdict
    two = make_tables({"base": Scenario(), "instruct": Scenario()})
    assert two["T08"] is None
    assert "## Trained vs untrained (T08)" in build_report(provenance(("base", "instruct")), two)


def test_section_reports_perplexity_ratio_and_held_out_drift_at_g1():
    untrained = Scenario(
        ppl=((4000.0, 3900.0, 4100.0), (4100.0, 4000.0, 4200.0)),
        held_out_mean={g: 3e-4 for g in GRID},
    )
    text = run(untrained=untrained)
    (row,) = cells_of(text, "## Trained vs untrained (T08)", f"base vs {CONTROL}")
    # ppl 4000 / 20 = 200; drift |3e-4 / 1e-4 - 1| = 200 % for the control, 0 for base; rows:
    # the T02 g1 rows of base (0) and the control (2), the T01 g = 1 rows (2 and 5 + 2)
    assert row == [
        f"base vs {CONTROL}",
        "20 [19, 21]",
        "4000 [3900, 4100]",
        "200",
        "n/a",  # no paired difference in this T08 (an older run)
        "0 %",
        "200 %",
        "T02:0,2 T01:2 T01:7",
    ]
    # with T08's paired difference on the same B windows: shown, bold when its CI excludes 0
    text = run(untrained=untrained, pair=Paired(ppl_g1=(-3980.0, -4085.0, -3880.0)))
    (row,) = cells_of(text, "## Trained vs untrained (T08)", f"base vs {CONTROL}")
    assert row[4] == "**-3980 [-4085, -3880]**" and row[-1] == "T02:0,2 T08:0 T01:2 T01:7"
    frames = make_tables({"base": Scenario(), CONTROL: untrained}, control=CONTROL)
    assert frames["T02"].iloc[2]["model_role"] == CONTROL  # what `T02:2` names
    assert frames["T01"].iloc[7][["model_role", "g"]].tolist() == [CONTROL, 1.0]


def test_section_gives_every_paired_difference_at_gstar_and_at_g1():
    reason = "compared base: 4 distinct durations in [3, 64] (< 8)"
    text = run(pair=Paired(crackling_reason=reason))
    at_gstar, at_g1 = cells_of(text, "## Trained vs untrained (T08)", f"base − {CONTROL}")
    # bold: the CI excludes 0; the builder shifts every g = 1 difference by 0.5
    assert at_gstar == [f"base − {CONTROL}", SPIKE, "0.0001", "0.9 vs 0.9"] + [
        "**0.2 [0.1, 0.3]**",
        "**0.04 [0.01, 0.07]**",
        "**3 [1, 5]**",
        "n/a¹",
        "T08:0",
    ]
    assert at_g1 == [f"base − {CONTROL}", SPIKE, "0.0001"] + [
        "**0.7 [0.6, 0.8]**",
        "**0.54 [0.51, 0.57]**",
        "**3.5 [1.5, 5.5]**",
        "n/a¹",
        "T08:0",
    ]
    assert f"- ¹ crackling gamma difference not available ({reason}): T08:0 at g*, T08:0 at " in (
        text
    )
    # a CI that contains 0 is not bold
    text = run(pair=Paired(chi=(1.0, -1.0, 3.0)))
    assert cells_of(text, "## Trained vs untrained (T08)", f"base − {CONTROL}")[0][6] == (
        "1 [-1, 3]"
    )


def test_report_with_a_control_is_deterministic():
    assert run() == run()
