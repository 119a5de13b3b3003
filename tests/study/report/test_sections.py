"""The detailed sections: each rule once, then one table row per group with its evidence and
the rows behind it (hand-made tables, hand-computed cells)."""

from __future__ import annotations

from avalanche_kedro.study.report import sections
from tests.study.report.tables_builder import (
    GRID,
    SPIKE,
    Scenario,
    cells_of,
    make_tables,
    render,
)

KEY = ["base", SPIKE, "0.0001", "0.9"]


def test_each_rule_is_written_once_and_each_group_has_one_row():
    text = render()
    for rule in sections.RULES.values():
        assert " ".join(text.split()).count(" ".join(rule.split())[:80]) <= 1
    for title in ("## S1:", "## S2:", "## S3:", "## Falsifier (b)", "## Falsifier (c)"):
        heading = next(line for line in text.splitlines() if line.startswith(title))
        rows = [r for r in cells_of(text, heading) if r[-1].startswith("T0")]  # not the shape
        assert len(rows) == 1, title


def test_signature_rows_carry_the_evidence_and_the_rows():
    text = render()
    # b_tot 1.0 +- 0.05 at g* = 0.9 (T01:1), 0.9 +- 0.05 at g = 1 (T01:2)
    assert cells_of(text, "## S1: branching near 1 at g*")[0] == [
        *KEY,
        "1 [0.95, 1.05]",
        "present",
        "0.9 [0.85, 0.95]",
        "T01:1,2",
    ]
    # chi 10 +- 1 at g*, which is its own maximum
    assert cells_of(text, "## S2: susceptibility peak near g*")[0] == [
        *KEY,
        "10 [9, 11]",
        "0.9 (0 steps)",
        "present",
        "interior",
        "T01:1",
    ]
    failed = Scenario(
        crackling_pass=False,
        crackling_reason="only 5 distinct durations (< 8)",
        n_duration_points=5,
    )
    assert cells_of(render(failed), "## S3: crackling relation")[0] == [
        *KEY,
        "n/a",
        "n/a",
        "5 / 80",
        "absent",
        "only 5 distinct durations (< 8)",
        "T05:1",
    ]
    # S1 absent: CI [1.25, 1.35] at g* = 1.2 (an end of the grid) lies 0.25 above 1
    far = Scenario(b_tot=dict(zip(GRID, [1.5, 1.4, 1.3, 1.3, 1.3], strict=True)), g_star=1.2)
    row = cells_of(render(far), "## S1: branching near 1 at g*")[0]
    assert row[3:6] == ["1.2 (edge)", "1.3 [1.25, 1.35]", "absent (0.25 above 1)"]


def test_falsifier_rows():
    text = render(Scenario(shift_delta=(0.01, -0.01, 0.03)))
    # (b) fires on the shift null (CI contains 0); the other two lie above 0 (bold)
    assert cells_of(text, "## Falsifier (b): marginal-preserving nulls")[0] == [
        *KEY,
        "**fires**",
        "shift",
        "**0.05 [0.03, 0.07]**",
        "0.01 [-0.01, 0.03]",
        "**0.06 [0.04, 0.08]**",
        "5 of 5",
        "yes",
        "T01:1",
    ]
    worse = render(Scenario(ppl=((20.0, 19.0, 21.0), (25.0, 24.0, 26.0))))
    # (c) fires: without paired columns (an older table) the ppl CI at g* [24, 26] lies above
    # [19, 21] (bold: the values); B's b_tot 0.97 at g* is nearer 1 than 0.85 at g = 1; rows:
    # T02 and T03 at g* (1) and at g = 1 (0)
    assert cells_of(worse, "## Falsifier (c): generalization to dataset B and ARC")[0] == [
        *KEY,
        "**fires**",
        "0.97 vs 0.85 (nearer)",
        "1 vs 1",
        "**25 vs 20**",
        "0.5 vs 0.5",
        "40",
        "T02:1,0 T03:1,0",
    ]
    # with the paired differences the decision and the bold are theirs
    paired = render(
        Scenario(
            ppl=((20.0, 19.0, 21.0), (20.5, 19.5, 21.5)),
            ppl_diff=(0.5, 0.2, 0.8),
            acc_diff=(-0.025, -0.1, 0.05),
            chance=0.25,
        )
    )
    assert cells_of(paired, "## Falsifier (c): generalization to dataset B and ARC")[0] == [
        *KEY,
        "**fires**",
        "0.97 vs 0.85 (nearer)",
        "1 vs 1",
        "**0.5 [0.2, 0.8]**",
        "-0.025 [-0.1, 0.05]",
        "40",
        "T02:1,0 T03:1,0",
    ]


def test_ablation_row_gives_every_shift_and_what_the_effect_tracks():
    text = render()
    # from b_tot 0.9 (MLP_GLOBAL at g = 1) to 1.0, 0.95, 0.93, 0.92, 0.91 at g*
    assert cells_of(text, "## Ablations (T06): MLP gain or attention?")[0] == [
        *KEY,
        "0.9",
        "MLP +0.1, ATTN +0.05, early +0.03, late +0.02, mid +0.01",
        "MLP gain",
        "early",
        "T06:0-5",
    ]
    frames = make_tables({"base": Scenario()})
    assert frames["T06"].iloc[0][["g_condition", "intervention_id"]].tolist() == [
        "g1",
        "MLP_GLOBAL",
    ]
