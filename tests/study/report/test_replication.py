"""Report section "Replication" (T07): paired differences between model roles."""

from __future__ import annotations

import pandas as pd

from avalanche_kedro.study.report import replication
from avalanche_kedro.study.report.page import build_report
from tests.study.report.tables_builder import SPIKE, Scenario, cells_of, make_tables, provenance


def test_two_roles_report_the_paired_differences_with_their_t07_row():
    frames = make_tables({"base": Scenario(), "instruct": Scenario(g_star=1.0)})
    text = build_report(provenance(("base", "instruct")), frames)
    (row,) = cells_of(text, "## Replication (T07)", "instruct − base")
    assert row == ["instruct − base", SPIKE, "0.0001", "1.0 vs 0.9", "0.03 [0.01, 0.05]"] + [
        "differs",
        "1 [-2, 4]",
        "no detectable difference",
        "T07:0",
    ]
    assert "delta_b_tot differs between roles in 1 of 1 rows" in " ".join(text.split())
    # instruct has g* = 1: generalization and ablations are empty, and the report says so
    verdict = cells_of(text, "## Summary", "instruct")[0]
    assert verdict[3] == "1.0" and verdict[9] == "empty (g* = 1)"
    assert cells_of(text, "## Ablations (T06): MLP gain or attention?", "instruct")[0][5:8] == [
        "none (g* = 1)",
        "undetermined",
        "",
    ]


def test_replication_findings_sorted_by_compared_role_with_both_differences():
    t07 = pd.DataFrame(
        {
            "compared_role": ["zeta", "alpha"],
            "reference_role": ["base", "base"],
            "spike_def_id": [SPIKE, SPIKE],
            "target_rate": [1e-4, 1e-4],
            "g_star_compared": [1.1, 1.0],
            "g_star_reference": [0.9, 0.9],
            "diff_delta_b_tot": [0.01, 0.03],
            "diff_delta_b_tot_ci_low": [-0.01, 0.01],
            "diff_delta_b_tot_ci_high": [0.03, 0.05],
            "diff_chi": [-3.0, 1.0],
            "diff_chi_ci_low": [-5.0, -2.0],
            "diff_chi_ci_high": [-1.0, 4.0],
        }
    )
    alpha, zeta = replication.replication_findings(t07)
    assert (alpha.key, alpha.decision) == ("T07", "differs")
    assert alpha.sentence == (
        f"alpha − base, {SPIKE}, r = 0.0001 (g* 1.0 vs 0.9): diff delta_b_tot = 0.03, "
        "CI [0.01, 0.05] (**differs**); diff chi = 1, CI [-2, 4] (**no detectable difference**) "
        f"(`T07[alpha vs base, {SPIKE}, r=0.0001]`)."
    )
    assert zeta.decision == "no detectable difference"
    assert "diff chi = -3, CI [-5, -1] (**differs**)" in zeta.sentence
    assert replication.replication_findings(t07.iloc[:0]) == []
