"""The run report: each decision rule on its own, and the rendered sentences with the table row
behind them, on small hand-made tables that carry the columns of ``avalanche_kedro.study.tables`` and
pass the catalog's pandera schemas."""

from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from avalanche_kedro.pipelines import reporting
from avalanche_kedro.pipelines.reporting import report_nodes
from avalanche_kedro.pipelines.reporting.report_pipeline import create_report_pipeline
from avalanche_kedro.study import report, schemas, tables
from tests.conftest import PROJECT_ROOT

SPIKE = "SPIKE_ONE_SIDED_POS"
RATE = 1e-4
GRID = [0.8, 0.9, 1.0, 1.1, 1.2]
RUN_ID = "run-0123456789abcdef"
CONFIG_HASH = "c" * 64


# --- hand-made tables ---------------------------------------------------------------------------


@dataclass
class Scenario:
    """One (role, spike def, rate) group; the defaults give every signature present and no
    falsifier firing, with g* = 0.9."""

    g_star: float = 0.9
    b_tot: dict = field(
        default_factory=lambda: dict(zip(GRID, [1.1, 1.0, 0.9, 0.8, 0.7], strict=True))
    )
    b_half_width: float = 0.05
    chi: dict = field(
        default_factory=lambda: dict(zip(GRID, [8.0, 10.0, 9.0, 7.0, 6.0], strict=True))
    )
    crackling_pass: bool = True
    crackling_reason: str = ""
    n_duration_points: int = 12
    rate_err: float = 1e-7
    rate_tol: float = 5e-6
    held_out_mean: dict = field(default_factory=lambda: {g: RATE for g in GRID})
    delta_b_tot: tuple = (0.05, 0.03, 0.07)  # value, CI low, CI high at every gain
    marginals_preserved: bool = True
    b_tot_b: tuple = (0.85, 0.97)  # dataset B at g1, g*
    ppl: tuple = ((20.0, 19.0, 21.0), (20.5, 19.5, 21.5))  # (value, low, high) at g1, g*
    acc: tuple = ((0.5, 0.4, 0.6), (0.5, 0.4, 0.6))
    ablation_b_tot: dict = field(
        default_factory=lambda: {
            "MLP_GLOBAL": 1.0,
            "ATTN_GLOBAL": 0.95,
            "MLP_BAND_EARLY": 0.93,
            "MLP_BAND_MID": 0.91,
            "MLP_BAND_LATE": 0.92,
        }
    )


def _provenance(role: str, dataset: str, stage: str) -> dict:
    return {
        "run_id": RUN_ID,
        "stage_id": stage,
        "model_id": f"model-{role}",
        "model_role": role,
        "dataset_role": dataset,
        "config_hash": CONFIG_HASH,
        "code_version": "no_git_metadata",
    }


def _ordered(rows: list[dict], required: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    optional = sorted(c for c in frame.columns if c.startswith("opt_"))
    return frame[[*tables.PROVENANCE_COLUMNS, *required, *optional]]


def make_tables(scenarios: dict[str, Scenario]) -> dict[str, pd.DataFrame | None]:
    t01, t02, t03, t04, t05, t06 = [], [], [], [], [], []
    for role, sc in scenarios.items():
        key = {"spike_def_id": SPIKE, "target_rate": RATE}
        delta, d_low, d_high = sc.delta_b_tot
        for g in GRID:
            b = sc.b_tot[g]
            t01.append(
                {
                    **_provenance(role, "A", "T01_SUMMARY"),
                    **key,
                    "g": g,
                    "tau0_baseline": 2.5,
                    "rate_match_tol": 0.05,
                    "achieved_rate_mean": RATE,
                    "achieved_rate_max_abs_err": sc.rate_err,
                    "b_time": b / 2,
                    "b_depth": b / 2,
                    "b_tot": b,
                    "b_time_perm": (b - delta) / 2,
                    "b_depth_perm": (b - delta) / 2,
                    "b_tot_perm": b - delta,
                    "delta_b_time": delta / 2,
                    "delta_b_depth": delta / 2,
                    "delta_b_tot": delta,
                    "chi": sc.chi[g],
                    "crackling_gamma": 1.5,
                    "crackling_ci_low": 1.4,
                    "crackling_ci_high": 1.6,
                    "n_sequences": 16,
                    "n_avalanches": 100,
                    "avalanche_size_mean": 3.0,
                    "avalanche_size_median": 2.0,
                    "avalanche_span_tokens_mean": 1.5,
                    "avalanche_span_layers_mean": 1.5,
                    "opt_is_gstar": g == sc.g_star,
                    "opt_branching_empty": False,
                    "opt_b_tot_ci_low": b - sc.b_half_width,
                    "opt_b_tot_ci_high": b + sc.b_half_width,
                    "opt_chi_ci_low": sc.chi[g] - 1,
                    "opt_chi_ci_high": sc.chi[g] + 1,
                    "opt_rate_match_tol_abs_max": sc.rate_tol,
                    "opt_achieved_rate_analysis_mean": sc.held_out_mean[g],
                    "opt_achieved_rate_analysis_max_abs_err": abs(sc.held_out_mean[g] - RATE),
                    "opt_delta_b_tot_ci_low": d_low,
                    "opt_delta_b_tot_ci_high": d_high,
                    "opt_delta_b_tot_shift": 0.01,
                    "opt_delta_b_tot_shift_ci_low": -0.01,
                    "opt_delta_b_tot_shift_ci_high": 0.03,
                    "opt_delta_b_tot_tokshuf": 0.04,
                    "opt_delta_b_tot_tokshuf_ci_low": 0.02,
                    "opt_delta_b_tot_tokshuf_ci_high": 0.06,
                    "opt_marginals_preserved_perm": sc.marginals_preserved,
                    "opt_marginals_preserved_shift": True,
                }
            )
            passed = sc.crackling_pass or g != sc.g_star
            t05.append(
                {
                    **_provenance(role, "A", "T05_CRACKLING_DIAGNOSTICS"),
                    **key,
                    "g": g,
                    "crackling_gamma": 1.5 if passed else float("nan"),
                    "crackling_ci_low": 1.4 if passed else float("nan"),
                    "crackling_ci_high": 1.6 if passed else float("nan"),
                    "crackling_ci_width": 0.2 if passed else float("nan"),
                    "n_duration_points": 12 if passed else sc.n_duration_points,
                    "n_avalanches_used": 80,
                    "r2": 0.9 if passed else float("nan"),
                    "pass": passed,
                    "opt_reason": "" if passed else sc.crackling_reason,
                    "opt_s3_available": passed,
                }
            )
            t04.append(
                {
                    **_provenance(role, "A", "T04_TAIL_FITS"),
                    **key,
                    "g": g,
                    "xmin": 2.0,
                    "n_tail": 150,
                    "alpha_powerlaw": 2.1,
                    "lambda_exponential": 0.3,
                    "lognorm_mu": 0.5,
                    "lognorm_sigma": 1.0,
                    "ll_powerlaw": -300.0,
                    "ll_exponential": -320.0,
                    "ll_lognormal": -301.0,
                    "llr_powerlaw_vs_lognormal": 0.4,
                    "llr_powerlaw_vs_exponential": 3.0,
                    "opt_available": True,
                    "opt_p_powerlaw_vs_lognormal": 0.7,
                    "opt_p_powerlaw_vs_exponential": 0.003,
                }
            )
        for i, (condition, g) in enumerate((("g1", 1.0), ("gstar", sc.g_star))):
            ppl, ppl_low, ppl_high = sc.ppl[i]
            acc, acc_low, acc_high = sc.acc[i]
            b = sc.b_tot_b[i]
            t02.append(
                {
                    **_provenance(role, "B", "T02_GENERALIZATION"),
                    **key,
                    "g_condition": condition,
                    "g": g,
                    "b_time": b / 2,
                    "b_depth": b / 2,
                    "b_tot": b,
                    "delta_b_tot": 0.05,
                    "chi": 5.0,
                    "n_sequences": 8,
                    "ppl": ppl,
                    "nll_mean": math.log(ppl),
                    "opt_b_tot_ci_low": b - 0.05,
                    "opt_b_tot_ci_high": b + 0.05,
                    "opt_ppl_ci_low": ppl_low,
                    "opt_ppl_ci_high": ppl_high,
                    "opt_achieved_rate_mean": RATE,
                }
            )
            t03.append(
                {
                    **_provenance(role, "ARC_MCQ", "T03_ARC"),
                    **key,
                    "g_condition": condition,
                    "g": g,
                    "n_questions": 40,
                    "accuracy": acc,
                    "accuracy_ci_low": acc_low,
                    "accuracy_ci_high": acc_high,
                    "mean_logprob_correct_minus_incorrect": 0.1,
                }
            )
        plan = [("g1", 1.0, "MLP_GLOBAL", sc.b_tot[1.0])] + [
            ("gstar", sc.g_star, name, b) for name, b in sc.ablation_b_tot.items()
        ]
        for condition, g, name, b in plan:
            t06.append(
                {
                    **_provenance(role, "A", "T06_ABLATIONS"),
                    **key,
                    "g_condition": condition,
                    "g": g,
                    "intervention_id": name,
                    "gain_target": "ATTN" if name == "ATTN_GLOBAL" else "MLP",
                    "b_tot": b,
                    "delta_b_tot": 0.05,
                    "chi": 5.0,
                    "achieved_rate_max_abs_err": 1e-6,
                    "n_sequences": 16,
                    "opt_delta_b_tot_ci_low": 0.03,
                    "opt_delta_b_tot_ci_high": 0.07,
                }
            )
    out = {
        "T01": _ordered(t01, tables.T01_COLUMNS),
        "T02": _ordered(t02, tables.T02_COLUMNS),
        "T03": _ordered(t03, tables.T03_COLUMNS),
        "T04": _ordered(t04, tables.T04_COLUMNS),
        "T05": _ordered(t05, tables.T05_COLUMNS),
        "T06": _ordered(t06, tables.T06_COLUMNS),
        "T07": None,
    }
    roles = list(scenarios)
    if len(roles) >= 2:
        reference = roles[0]
        out["T07"] = _ordered(
            [
                {
                    **_provenance(role, "A", "T07_REPLICATION_SUMMARY"),
                    "spike_def_id": SPIKE,
                    "target_rate": RATE,
                    "reference_role": reference,
                    "compared_role": role,
                    "reference_model_id": f"model-{reference}",
                    "compared_model_id": f"model-{role}",
                    "g_star_reference": scenarios[reference].g_star,
                    "g_star_compared": scenarios[role].g_star,
                    "delta_b_tot_reference": 0.05,
                    "delta_b_tot_compared": 0.08,
                    "diff_delta_b_tot": 0.03,
                    "diff_delta_b_tot_ci_low": 0.01,
                    "diff_delta_b_tot_ci_high": 0.05,
                    "chi_reference": 10.0,
                    "chi_compared": 11.0,
                    "diff_chi": 1.0,
                    "diff_chi_ci_low": -2.0,
                    "diff_chi_ci_high": 4.0,
                }
                for role in roles[1:]
            ],
            tables.T07_COLUMNS,
        )
    for short, frame in out.items():
        if frame is not None:
            schemas.SCHEMAS[short].validate(frame)
    return out


def provenance(roles=("base",), source="embedded") -> dict:
    return {
        "run_id": RUN_ID,
        "config_hash": CONFIG_HASH,
        "code_version": "no_git_metadata",
        "roles": list(roles),
        "models": {
            role: {"model_id": f"model-{role}", "source": source, "model_type": "llama"}
            for role in roles
        },
        "devices": {role: {"n_layers": 4, "d_ff": 64, "device": "cpu"} for role in roles},
        "parameters": {
            "gain_grid": GRID,
            "calibration": {"target_rates": [RATE], "spike_defs": [SPIKE]},
            "windows": {"seq_len": 32, "n_calibration": 8, "n_raster": 16, "n_eval_b": 8},
        },
    }


def render(scenario: Scenario | None = None, **kwargs) -> str:
    return report.build_report(provenance(), make_tables({"base": scenario or Scenario(**kwargs)}))


def line_of(text: str, needle: str) -> str:
    """The one report line that contains ``needle``."""
    lines = [line for line in text.splitlines() if needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def row(g=None, table="T01", **kwargs) -> str:
    return report.cite(table, "base", SPIKE, RATE, g=g, **kwargs)


# --- decision rules -----------------------------------------------------------------------------


def test_s1_present_when_the_ci_contains_one_and_absent_with_its_distance():
    assert report.decide_s1(0.98, 0.95, 1.01).decision == report.PRESENT
    assert report.decide_s1(1.0, 1.0, 1.2).decision == report.PRESENT  # bound included
    above = report.decide_s1(1.3, 1.2, 1.4)
    assert above.decision == report.ABSENT and above.distance == pytest.approx(0.2)
    below = report.decide_s1(0.8, 0.7, 0.9)
    assert below.decision == report.ABSENT and below.distance == pytest.approx(0.1)
    assert report.decide_s1(float("nan"), 0.7, 0.9).decision == report.UNDETERMINED


def test_s2_present_at_gstar_or_a_neighbour_absent_further_and_edges_flagged():
    chi = [8.0, 10.0, 9.0, 7.0, 6.0]
    assert report.decide_s2(GRID, chi, 0.9).decision == report.PRESENT
    assert report.decide_s2(GRID, chi, 0.9).steps == 0
    assert report.decide_s2(GRID, chi, 1.0).decision == report.PRESENT  # adjacent
    far = report.decide_s2(GRID, chi, 1.1)
    assert far.decision == report.ABSENT and far.steps == 2 and far.g_argmax == 0.9
    falling = report.decide_s2(GRID, [10.0, 9.0, 8.0, 7.0, 6.0], 0.8)
    assert falling.decision == report.PRESENT and falling.at_edge and falling.monotone == "falls"
    # unsorted input and ties: the smaller gain wins
    tie = report.decide_s2([1.2, 0.8, 1.0], [5.0, 5.0, 1.0], 1.2)
    assert tie.g_argmax == 0.8 and tie.decision == report.ABSENT
    assert report.decide_s2(GRID, chi, 0.75).decision == report.UNDETERMINED


def test_s3_follows_the_gate_and_explains_a_failure():
    assert report.decide_s3(True) == report.PRESENT
    assert report.decide_s3(False) == report.ABSENT
    reason = report.crackling_gate_reason(1.5, 5, 0.7)
    assert "5 distinct durations" in reason and "CI width 0.7 > 0.5" in reason
    assert report.crackling_gate_reason(1.5, 10, 0.2) == ""
    assert "no finite gamma" in report.crackling_gate_reason(float("nan"), 10, float("nan"))


def test_rate_matching_fires_only_when_an_error_exceeds_its_tolerance():
    ok = report.decide_rate_matching([0.9, 1.0], [1e-7, 2e-7], [1e-6, 1e-6])
    assert ok.decision == report.DOES_NOT_FIRE and ok.worst_g == 1.0
    bad = report.decide_rate_matching([0.9, 1.0], [3e-6, 2e-7], [1e-6, 1e-6])
    assert bad.decision == report.FIRES and bad.worst_g == 0.9 and bad.worst_error == 3e-6


def test_held_out_drift_level_and_spread_relative_to_the_target():
    steady = report.held_out_drift(1e-4, [1.01e-4, 0.99e-4], 0.05)
    assert steady.within_tolerance
    moving = report.held_out_drift(1e-4, [2.0e-4, 1.5e-4], 0.05)
    assert moving.level == pytest.approx(1.0) and moving.spread == pytest.approx(0.5)
    assert not moving.within_tolerance


def test_null_outcomes_and_when_the_null_falsifier_fires():
    assert report.decide_null(0.05, 0.01, 0.09) == report.NULL_BEYOND_RATES
    assert report.decide_null(0.01, -0.01, 0.03) == report.NULL_EXPLAINED_BY_RATES
    assert report.decide_null(-0.05, -0.09, -0.01) == report.NULL_BELOW_NULL
    assert report.decide_null(float("nan"), 0, 1) == report.NULL_NOT_RECORDED
    assert report.null_falsifier(report.NULL_BEYOND_RATES) == report.DOES_NOT_FIRE
    assert report.null_falsifier(report.NULL_EXPLAINED_BY_RATES) == report.FIRES
    assert report.null_falsifier(report.NULL_BELOW_NULL) == report.FIRES
    assert report.null_falsifier(report.NULL_NOT_RECORDED) == report.UNDETERMINED


def test_generalization_fires_on_worse_perplexity_or_lower_accuracy_beyond_the_cis():
    same = ((0.4, 0.6), (0.4, 0.6))
    ok = report.decide_generalization(0.9, 0.8, 0.95, (19, 21), (20, 22), *same)
    assert ok.decision == report.DOES_NOT_FIRE and ok.b_nearer_at_gstar and not ok.ppl_worse
    ppl = report.decide_generalization(0.9, 0.8, 0.95, (19, 21), (21.5, 23), *same)
    assert ppl.decision == report.FIRES and ppl.ppl_worse
    arc = report.decide_generalization(0.9, 0.8, 0.7, (19, 21), (19, 21), (0.5, 0.7), (0.2, 0.45))
    assert arc.decision == report.FIRES and arc.arc_worse and not arc.b_nearer_at_gstar
    assert report.decide_generalization(1.0, 0.9, 0.9, (1, 2), (1, 2), *same).vacuous


def test_ablation_tracks_the_global_gain_with_the_larger_shift():
    mlp = report.decide_ablation(
        0.9,
        1.0,
        {"MLP_GLOBAL": 0.8, "ATTN_GLOBAL": 1.05, "MLP_BAND_EARLY": 0.9, "MLP_BAND_LATE": 0.99},
    )
    assert mlp.tracks == report.TRACKS_MLP and mlp.strongest_band == "MLP_BAND_EARLY"
    assert mlp.shifts["MLP_GLOBAL"] == pytest.approx(-0.2)
    attn = report.decide_ablation(0.9, 1.0, {"MLP_GLOBAL": 0.95, "ATTN_GLOBAL": 1.2})
    assert attn.tracks == report.TRACKS_ATTENTION
    assert report.decide_ablation(1.0, 1.0, {"MLP_GLOBAL": 1.0, "ATTN_GLOBAL": 1.0}).tracks is None


def test_paired_difference_differs_only_when_its_ci_excludes_zero():
    assert report.decide_paired_difference(0.03, 0.01, 0.05) == "differs"
    assert report.decide_paired_difference(-0.03, -0.05, -0.01) == "differs"
    assert report.decide_paired_difference(0.01, -0.01, 0.03) == "no detectable difference"


# --- rendered sentences cite their rows ---------------------------------------------------------


def test_header_names_the_run_and_the_embedded_caveat():
    text = render()
    assert f"Run `{RUN_ID}`, config hash `{CONFIG_HASH}`" in text.splitlines()[2]
    assert "**Embedded default.**" in text and "*random* weights" in text
    hub = report.build_report(provenance(source="hub"), make_tables({"base": Scenario()}))
    assert "Embedded default" not in hub


def test_s1_present_and_absent_sentences_cite_the_gstar_row():
    present = line_of(render(), "S1 is ")
    assert "S1 is **present**" in present and row(0.9) in present
    assert row(1.0) in present  # the g = 1 value is quoted with its row
    shifted = Scenario(b_tot=dict(zip(GRID, [1.5, 1.4, 1.3, 1.25, 1.2], strict=True)), g_star=1.2)
    absent = line_of(render(shifted), "S1 is ")
    assert "S1 is **absent**" in absent and "lies above 1 by 0.15" in absent
    assert row(1.2) in absent and "end of the gain grid" in absent


def test_s2_present_and_absent_sentences_cite_the_chi_argmax_row():
    present = line_of(render(), "S2 is ")
    assert "S2 is **present**" in present and "which is g* itself" in present
    assert row(0.9) in present
    far = Scenario(chi=dict(zip(GRID, [1.0, 2.0, 3.0, 4.0, 9.0], strict=True)))
    absent = line_of(render(far), "S2 is ")
    assert "S2 is **absent**" in absent and "3 grid steps from g* = 0.9" in absent
    assert row(1.2) in absent and row(0.9) in absent
    assert "not an interior peak" in absent and "rises monotonically" in absent


def test_s3_absent_says_why_and_cites_t05():
    present = line_of(render(), "S3 is ")
    assert "S3 is **present**" in present and row(0.9, table="T05") in present
    failed = Scenario(crackling_pass=False, crackling_reason="only 5 distinct durations (< 8)")
    absent = line_of(render(failed), "S3 is ")
    assert "S3 is **absent**" in absent and "only 5 distinct durations (< 8)" in absent
    assert row(0.9, table="T05") in absent
    # no recorded reason: the gate is re-derived from the row
    silent = line_of(render(replace(failed, crackling_reason="", n_duration_points=4)), "S3 is ")
    assert "only 4 distinct durations" in silent


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
    text = report.build_report(provenance(), frames)
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
    text = line_of(report.build_report(provenance(), frames), ".** (c) ")
    assert "7 of those prompts were longer than the model's context" in text


def test_ablation_sentence_names_what_the_effect_tracks():
    text = line_of(render(), "From b_tot = ")
    assert "tracks **the MLP gain**" in text and "MLP_BAND_EARLY moves it most" in text
    assert row(g_condition="g1", table="T06", intervention="MLP_GLOBAL") in text
    assert row(g_condition="gstar", table="T06", intervention="ATTN_GLOBAL") in text
    attention = Scenario(
        ablation_b_tot={"MLP_GLOBAL": 1.0, "ATTN_GLOBAL": 0.7, "MLP_BAND_EARLY": 0.9}
    )
    assert "tracks **attention**" in line_of(render(attention), "From b_tot = ")


def test_single_role_says_replication_was_not_run():
    text = render()
    assert "Replication was not run: this run has 1 model role (base)" in text
    assert report.build_report(provenance(), {**make_tables({"base": Scenario()}), "T07": None})


def test_two_roles_report_the_paired_differences_with_their_t07_row():
    frames = make_tables({"base": Scenario(), "instruct": Scenario(g_star=1.0)})
    text = report.build_report(provenance(("base", "instruct")), frames)
    line = line_of(text, "`T07[")
    assert f"`T07[instruct vs base, {SPIKE}, r=0.0001]`" in line
    assert "(**differs**)" in line and "(**no detectable difference**)" in line
    # instruct has g* = 1: generalization and ablations are empty, and the report says so
    assert "g* = 1, so g* and g = 1 are the same measurement" in text
    assert "g* = 1, so every ablation runs at gain 1" in text
    summary = [ln for ln in text.splitlines() if ln.startswith("| instruct |")]
    assert len(summary) == 1 and "| 1.0 |" in summary[0]


def test_full_table_names_are_accepted_and_missing_tables_are_an_error():
    frames = make_tables({"base": Scenario()})
    by_name = {report.TABLE_NAMES[k]: v for k, v in frames.items()}
    assert report.build_report(provenance(), by_name) == render()
    with pytest.raises(ValueError, match="T06_ABLATIONS"):
        report.build_report(provenance(), {k: v for k, v in frames.items() if k != "T06"})


def test_the_report_is_deterministic():
    assert render() == render()


# --- the node, the pipeline and the catalog entry -----------------------------------------------


def test_node_reads_six_tables_for_one_role_and_seven_for_two():
    frames = make_tables({"base": Scenario()})
    single = report_nodes.build_run_report(
        provenance(), *[frames[t] for t in report.TABLE_NAMES if t != "T07"]
    )
    assert "Replication was not run" in single
    both = make_tables({"base": Scenario(), "instruct": Scenario()})
    text = report_nodes.build_run_report(
        provenance(("base", "instruct")), *[both[t] for t in report.TABLE_NAMES]
    )
    assert "`T07[instruct vs base" in text
    with pytest.raises(ValueError, match="expected"):
        report_nodes.build_run_report(provenance(), frames["T01"])


@pytest.mark.filterwarnings("ignore:One or more dataset names contain")
def test_pipeline_inputs_follow_the_roles_and_the_reporting_pipeline_includes_it():
    single = create_report_pipeline(["base"])
    assert single.outputs() == {"run_report"}
    assert "T07_REPLICATION_SUMMARY" not in single.inputs()
    assert {"run_provenance", "T01_SUMMARY", "T06_ABLATIONS"} <= single.inputs()
    assert "T07_REPLICATION_SUMMARY" in create_report_pipeline(["base", "instruct"]).inputs()
    assert "run_report" in reporting.create_pipeline(["base"]).all_outputs()


def test_catalog_entry_is_a_versioned_markdown_text_dataset():
    from kedro.config import OmegaConfigLoader

    raw = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_report.yml").read_text())
    assert raw["run_report"]["filepath"] == "${globals:data_root}/08_reporting/report.md"
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base"
    )
    entry = loader["catalog"]["run_report"]
    assert entry["type"] == "text.TextDataset"
    assert entry["filepath"] == "data/08_reporting/report.md"  # data_root defaults to data
    assert entry["versioned"] is True


# --- the latest saved run, when this checkout has one --------------------------------------------


def _latest(pattern: str) -> Path | None:
    versions = sorted(glob.glob(str(PROJECT_ROOT / pattern)))
    return Path(versions[-1]) if versions else None


def test_report_from_the_latest_saved_tables_renders():
    base = "data/08_reporting"
    found = {
        short: _latest(f"{base}/tables/{name}.parquet/*/{name}.parquet")
        for short, name in report.TABLE_NAMES.items()
    }
    prov_path = _latest(f"{base}/run_provenance.json/*/run_provenance.json")
    if prov_path is None or any(found[t] is None for t in report.REQUIRED_TABLES):
        pytest.skip("no saved run in this checkout (run `kedro run` first)")
    frames = {t: pd.read_parquet(p) if p is not None else None for t, p in found.items()}
    prov = json.loads(prov_path.read_text())
    if len(prov.get("roles", [])) < 2:
        frames["T07"] = None
    text = report.build_report(prov, frames)
    n_groups = len(frames["T01"][report.GROUP_KEYS].drop_duplicates())
    for prefix in ("S1 is ", "S2 is ", "S3 is ", "In sample, (a)", ".** (c) "):
        assert sum(prefix in line for line in text.splitlines()) == n_groups, prefix
    assert "## Replication (T07)" in text and "`T01[" in text
