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
    line_of,
    make_tables,
    provenance,
)

CONTROL = "untrained"
T08_ROW = f"`T08[base vs {CONTROL}, {SPIKE}, r=0.0001]`"


def run(base=None, untrained=None, pair=None, roles=("base", CONTROL)) -> str:
    scenarios = {"base": base or Scenario(), CONTROL: untrained or Scenario()}
    frames = make_tables(scenarios, control=CONTROL, paired={"base": pair or Paired()})
    return build_report(provenance(roles), frames)


def spec(text: str, signature: str) -> str:
    """The base role's signature line (which ends with its specificity sentence)."""
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(f"- **base, {SPIKE}") and f"{signature} is " in line
    ]
    assert len(lines) == 1, lines
    return lines[0]


def summary_row(text: str, role: str) -> list[str]:
    return [cell.strip() for cell in line_of(text, f"| {role} |").split("|")[1:-1]]


def test_default_pair_s1_s2_specific_s3_shown_by_the_control_too():
    text = run()
    s1 = spec(text, "S1")
    assert "Against the untrained control `untrained`: **specific** (diff b_tot = 0.2" in s1
    assert "CI [0.1, 0.3] excludes 0" in s1 and T08_ROW in s1
    assert "**specific** (diff chi = 3, CI [1, 5] excludes 0" in spec(text, "S2")
    s3 = spec(text, "S3")
    assert "**present but not specific** (the untrained control shows it too: diff " in s3
    assert "crackling gamma = 0.1, CI [-0.1, 0.3]" in s3
    assert summary_row(text, "base")[7] == "S1, S2"
    assert summary_row(text, CONTROL)[7] == "control"
    assert "This role is the untrained control of T08." in line_of(
        text, f"- **{CONTROL}, {SPIKE}, r = 0.0001.** S1 is "
    )
    assert "S1 specific in 1, S2 specific in 1, S3 specific in 0" in text


def test_s1_and_s2_specificity_flip_exactly_where_the_ci_touches_zero():
    touching = run(pair=Paired(b_tot=(0.1, 0.0, 0.2), chi=(-1.0, -2.0, 0.0)))
    assert "**present but not specific** (the untrained control shows it too: diff b_tot" in (
        spec(touching, "S1")
    )
    assert "**present but not specific**" in spec(touching, "S2")
    assert summary_row(touching, "base")[7] == "none"
    just_off = run(pair=Paired(b_tot=(0.1, 1e-9, 0.2), chi=(-1.0, -2.0, -1e-9)))
    assert "**specific**" in spec(just_off, "S1") and "**specific**" in spec(just_off, "S2")


def test_not_separated_when_the_control_lacks_the_signature_but_the_ci_contains_zero():
    far = Scenario(b_tot=dict(zip(GRID, [1.5, 1.45, 1.4, 1.35, 1.3], strict=True)), g_star=1.2)
    text = run(untrained=far, pair=Paired(b_tot=(0.05, -0.05, 0.15)))
    assert "S1 is **absent**" in line_of(text, f"- **{CONTROL}, {SPIKE}, r = 0.0001.** S1 is ")
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
    assert summary_row(text, "base")[7] == "S1, S2, S3"
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
    assert "no untrained control in this run — signatures cannot be called specific" in text
    assert summary_row(text, "base")[7] == "n/a"
    assert "Against the untrained control" not in text
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
    line = line_of(text, "`base` vs `untrained`:")
    assert "perplexity on dataset B at g = 1 is 20, CI [19, 21], against 4000, CI [3900, 4100]" in (
        line
    )
    assert "ratio control/base = 200" in line
    assert f"`T02[base, {SPIKE}, r=0.0001, g1]`" in line
    assert f"`T02[untrained, {SPIKE}, r=0.0001, g1]`" in line
    assert "0 % for `base`" in line and "200 % for `untrained`" in line
    assert f"`T01[untrained, {SPIKE}, r=0.0001, g=1.0]`" in line


def test_section_gives_every_paired_difference_at_gstar_and_at_g1():
    reason = "compared base: 4 distinct durations in [3, 64] (< 8)"
    text = run(pair=Paired(crackling_reason=reason))
    line = line_of(text, f"- base − {CONTROL}, {SPIKE}")
    assert "(g* 0.9 vs 0.9)" in line and T08_ROW in line
    at_gstar, at_g1 = line.split("; at g = 1, ")
    assert "diff b_tot = 0.2, CI [0.1, 0.3] (**differs**)" in at_gstar
    assert "diff delta_b_tot = 0.04, CI [0.01, 0.07] (**differs**)" in at_gstar
    assert "diff chi = 3, CI [1, 5] (**differs**)" in at_gstar
    assert f"diff crackling gamma not available ({reason})" in at_gstar
    # the builder shifts every g = 1 difference by 0.5
    assert "diff b_tot = 0.7, CI [0.6, 0.8] (**differs**)" in at_g1
    assert "diff chi = 3.5, CI [1.5, 5.5] (**differs**)" in at_g1


def test_report_with_a_control_is_deterministic():
    assert run() == run()
