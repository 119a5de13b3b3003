"""Small hand-made paper tables for the report tests: one :class:`Scenario` per
(role, spike def, rate) group, turned into T01-T07 frames that carry the columns of
:mod:`avalanche_kedro.study.tables` and pass the catalog's pandera schemas.

Shared by the tests of every report module and of the report node
(``tests/pipelines/test_reporting.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from avalanche_kedro.study import report, schemas, tables

SPIKE = "SPIKE_ONE_SIDED_POS"
RATE = 1e-4
GRID = [0.8, 0.9, 1.0, 1.1, 1.2]
RUN_ID = "run-0123456789abcdef"
CONFIG_HASH = "c" * 64


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
