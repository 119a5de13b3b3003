"""Report section "Ablations": does the effect of g* track the MLP gain or attention?"""

from __future__ import annotations

from avalanche_kedro.study.report import ablations
from avalanche_kedro.study.report.grouping import groups
from tests.study.report.tables_builder import Scenario, make_tables, row, said


def test_ablation_sentence_names_what_the_effect_tracks():
    text = said(key="T06")
    assert "tracks **the MLP gain**" in text and "MLP_BAND_EARLY moves it most" in text
    assert row(g_condition="g1", table="T06", intervention="MLP_GLOBAL") in text
    assert row(g_condition="gstar", table="T06", intervention="ATTN_GLOBAL") in text
    attention = Scenario(
        ablation_b_tot={"MLP_GLOBAL": 1.0, "ATTN_GLOBAL": 0.7, "MLP_BAND_EARLY": 0.9}
    )
    assert "tracks **attention**" in said(attention, "T06")


def test_ablation_without_attention_cannot_be_attributed():
    frames = make_tables(
        {"base": Scenario(ablation_b_tot={"MLP_GLOBAL": 0.8, "MLP_BAND_EARLY": 0.85})}
    )
    (group,) = groups(frames)
    finding = ablations.ablation_finding(group)
    assert (finding.key, finding.decision) == ("T06", "undetermined")
    assert finding.sentence.startswith(
        f"From b_tot = 0.9 at g = 1 ({row(g_condition='g1', table='T06', intervention='MLP_GLOBAL')})"
    )
    assert "MLP_GLOBAL 0.8 (-0.1; delta_b_tot 0.05 beyond rates;" in finding.sentence
    assert finding.sentence.endswith(
        " MLP_GLOBAL or ATTN_GLOBAL is missing, so the effect cannot be attributed."
    )
    group.t06 = group.t06.iloc[:0]
    assert ablations.ablation_finding(group) is None


def test_tracking_is_decided_on_the_paired_margin_when_t06_has_it():
    """The issue's case: shifts of 0.0003-0.027 with CIs wider than that are not resolved."""
    unresolved = said(Scenario(tracks_margin=(0.05, -0.01, 0.11)), "T06")
    assert "Whether the effect tracks the MLP gain or attention is **not resolved**" in unresolved
    assert "|shift(MLP)| − |shift(ATTN)| = +0.05 [-0.01, 0.11]" in unresolved
    assert "MLP_GLOBAL 1 (+0.1 [0.08, 0.12]; delta_b_tot" in unresolved  # the paired shift CI
    resolved = said(Scenario(tracks_margin=(0.05, 0.02, 0.08)), "T06")
    assert "The effect tracks **the MLP gain**" in resolved and "that excludes 0" in resolved
    attention = said(Scenario(tracks_margin=(-0.05, -0.08, -0.02)), "T06")
    assert "The effect tracks **attention**" in attention
    # without the paired columns: the point comparison, said to be one
    assert "a point comparison, T06 has no paired CI" in said(key="T06")
    (group,) = groups(make_tables({"base": Scenario(tracks_margin=(0.05, -0.01, 0.11))}))
    finding = ablations.ablation_finding(group)
    assert finding.decision == "not resolved"
    assert finding.cells[2] == "not resolved [-0.01, 0.11]"
