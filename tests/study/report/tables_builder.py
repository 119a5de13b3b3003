"""Small hand-made paper tables for the report tests: one :class:`Scenario` per
(role, spike def, rate) group, turned into T01-T08 frames that carry the columns of
:mod:`avalanche_kedro.study.tables` (T08: :mod:`avalanche_kedro.study.control`) and pass the
catalog's pandera schemas.

Shared by the tests of every report module and of the report node
(``tests/pipelines/test_reporting.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from avalanche_kedro.study import control as control_module
from avalanche_kedro.study import report, schemas, tables

SPIKE = "SPIKE_ONE_SIDED_POS"
RATE = 1e-4
GRID = [0.8, 0.9, 1.0, 1.1, 1.2]
RUN_ID = "run-0123456789abcdef"
CONFIG_HASH = "c" * 64


def _split_columns(split: dict | None) -> dict:
    """T01's delta_b_time / delta_b_depth (+ CI) per null from a Scenario's ``split``."""
    out = {}
    for name, (value, low, high) in (split or {}).items():
        metric, _, null = name.partition("_")
        stem = f"delta_b_{metric}{'_' + null if null else ''}"
        out.update(
            {
                (stem if not null else f"opt_{stem}"): value,
                f"opt_{stem}_ci_low": low,
                f"opt_{stem}_ci_high": high,
            }
        )
    return out


def _paired(stat: str, diff: tuple | None, condition: str) -> dict:
    """``opt_<stat>_diff_vs_g1`` (+ CI) on the g* row, NaN on the g = 1 row, as the pipeline."""
    if diff is None:
        return {}
    values = diff if condition == "gstar" else (math.nan,) * 3
    names = [f"opt_{stat}_diff_vs_g1{suffix}" for suffix in ("", "_ci_low", "_ci_high")]
    return dict(zip(names, values, strict=True))


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
    shift_delta: tuple = (0.04, 0.02, 0.06)  # circular-shift null, same form
    tokshuf_delta: tuple = (0.06, 0.04, 0.08)  # token-shuffle null, same form
    tokshuf_gains: tuple | None = None  # gains where the token-shuffle null is recorded (None: all)
    marginals_preserved: bool = True
    b_tot_b: tuple = (0.85, 0.97)  # dataset B at g1, g*
    ppl: tuple = ((20.0, 19.0, 21.0), (20.5, 19.5, 21.5))  # (value, low, high) at g1, g*
    acc: tuple = ((0.5, 0.4, 0.6), (0.5, 0.4, 0.6))
    # paired g* - g = 1 differences (value, low, high) on the same windows / questions, as the
    # pipeline writes them; None: a table without them (older runs: the marginal-CI rule)
    ppl_diff: tuple | None = None
    acc_diff: tuple | None = None
    chance: float | None = None  # ARC chance accuracy (opt_chance_accuracy)
    n_windows_worse: int = 6  # of 8 B windows, with ppl_diff
    # g* identification (T01 opt_gstar_*): None = a table without it; the margin of the
    # runner-up g = 1.0 over g* as (value, low, high)
    identified: bool | None = None
    # delta_b_time / delta_b_depth with CIs against the permutation and token-shuffle nulls:
    # {"time": (v, lo, hi), "depth": ..., "time_tokshuf": ..., "depth_tokshuf": ...}
    split: dict | None = None
    b_rate_ratio: tuple = (1.0, 1.0)  # dataset B's mean event rate / r* at g1, g*
    # T06's paired |shift(MLP)| - |shift(ATTN)| (value, low, high); None: no paired columns
    tracks_margin: tuple | None = None
    # B's paired |b_tot(1) - 1| - |b_tot(g*) - 1| (value, low, high); None: no paired columns
    b_nearer: tuple | None = None
    margin: tuple = (0.02, 0.01, 0.03)
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


@dataclass
class Paired:
    """One T08 row: (diff, CI low, CI high) of each statistic at g* (and, shifted, at g = 1).
    The defaults separate b_tot and chi from the control and leave crackling gamma inside 0."""

    b_tot: tuple = (0.2, 0.1, 0.3)
    delta_b_tot: tuple = (0.04, 0.01, 0.07)
    chi: tuple = (3.0, 1.0, 5.0)
    crackling_gamma: tuple = (0.1, -0.1, 0.3)
    crackling_reason: str = ""  # non-empty: the crackling diff is not available (NaN)
    # paired dataset B perplexity difference role - control at g = 1 (T08 opt_ppl_B_g1_diff);
    # None: a T08 without it (an older run)
    ppl_g1: tuple | None = None


#: the control's point values of each statistic (T08 ``<stat>_control``)
CONTROL_VALUES = {"b_tot": 0.8, "delta_b_tot": 0.02, "chi": 6.0, "crackling_gamma": 1.4}


def t08_frame(scenarios: dict[str, Scenario], control: str, paired: dict) -> pd.DataFrame:
    """T08 rows of every role but ``control`` (``paired[role]``: a :class:`Paired`)."""
    rows = []
    for role in scenarios:
        if role == control:
            continue
        pair = paired.get(role, Paired())
        record = {
            **_provenance(role, "A", "T08_TRAINED_VS_UNTRAINED"),
            "compared_role": role,
            "control_role": control,
            "compared_model_id": f"model-{role}",
            "control_model_id": f"model-{control}",
            "spike_def_id": SPIKE,
            "target_rate": RATE,
            "g_star_compared": scenarios[role].g_star,
            "g_star_control": scenarios[control].g_star,
            "n_sequences": 16,
            "bootstrap_replicates": 200,
            **(
                dict(
                    zip(
                        [f"opt_ppl_B_g1_diff{x}" for x in ("", "_ci_low", "_ci_high")],
                        pair.ppl_g1,
                        strict=True,
                    )
                )
                if pair.ppl_g1 is not None
                else {}
            ),
        }
        for suffix, shift in (("", 0.0), ("_g1", 0.5)):  # g = 1 differences: shifted by 0.5
            for stat in control_module.STATS:
                diff, low, high = (v + shift for v in getattr(pair, stat))
                control_value = CONTROL_VALUES[stat]
                compared = control_value + diff
                if stat == "crackling_gamma" and pair.crackling_reason:
                    diff = low = high = float("nan")
                else:
                    diff = compared - control_value  # exactly what the schema recomputes
                record[f"diff_{stat}{suffix}"] = diff
                record[f"diff_{stat}_ci_low{suffix}"] = low
                record[f"diff_{stat}_ci_high{suffix}"] = high
                record[f"{stat}_compared{suffix}"] = compared
                record[f"{stat}_control{suffix}"] = control_value
            record[f"opt_crackling_reason{suffix}"] = pair.crackling_reason
        rows.append(record)
    return _ordered(rows, control_module.T08_COLUMNS)


def make_tables(
    scenarios: dict[str, Scenario], control: str | None = None, paired: dict | None = None
) -> dict[str, pd.DataFrame | None]:
    """T01-T07 of ``scenarios`` and, when ``control`` is one of them, T08 (else None)."""
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
                    **(
                        {
                            "opt_gstar_identified": sc.identified,
                            "opt_gstar_runner_up_g": 1.0,
                            "opt_gstar_margin": sc.margin[0],
                            "opt_gstar_margin_ci_low": sc.margin[1],
                            "opt_gstar_margin_ci_high": sc.margin[2],
                        }
                        if sc.identified is not None
                        else {}
                    ),
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
                    "opt_delta_b_tot_shift": sc.shift_delta[0],
                    "opt_delta_b_tot_shift_ci_low": sc.shift_delta[1],
                    "opt_delta_b_tot_shift_ci_high": sc.shift_delta[2],
                    **dict(
                        zip(
                            [
                                "opt_delta_b_tot_tokshuf",
                                "opt_delta_b_tot_tokshuf_ci_low",
                                "opt_delta_b_tot_tokshuf_ci_high",
                            ],
                            sc.tokshuf_delta
                            if sc.tokshuf_gains is None or g in sc.tokshuf_gains
                            else (float("nan"),) * 3,
                            strict=True,
                        )
                    ),
                    "opt_marginals_preserved_perm": sc.marginals_preserved,
                    "opt_marginals_preserved_shift": True,
                    **_split_columns(sc.split),
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
                    "opt_achieved_rate_mean": RATE * sc.b_rate_ratio[i],
                    **_paired("ppl", sc.ppl_diff, condition),
                    **(
                        dict(
                            zip(
                                [
                                    f"opt_b_nearer_margin_vs_g1{x}"
                                    for x in ("", "_ci_low", "_ci_high")
                                ],
                                sc.b_nearer if condition == "gstar" else (math.nan,) * 3,
                                strict=True,
                            )
                        )
                        if sc.b_nearer is not None
                        else {}
                    ),
                    **(
                        {"opt_n_windows_worse": sc.n_windows_worse, "opt_n_windows_paired": 8}
                        if sc.ppl_diff is not None and condition == "gstar"
                        else {}
                    ),
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
                    **_paired("accuracy", sc.acc_diff, condition),
                    **({"opt_chance_accuracy": sc.chance} if sc.chance is not None else {}),
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
                    **(
                        {
                            "opt_shift_vs_g1": b - sc.b_tot[1.0],
                            "opt_shift_vs_g1_ci_low": b - sc.b_tot[1.0] - 0.02,
                            "opt_shift_vs_g1_ci_high": b - sc.b_tot[1.0] + 0.02,
                        }
                        if sc.tracks_margin is not None and condition == "gstar"
                        else {}
                    ),
                    **(
                        dict(
                            zip(
                                ["opt_tracks_margin", "opt_tracks_margin_ci_low"],
                                sc.tracks_margin[:2],
                                strict=True,
                            ),
                            opt_tracks_margin_ci_high=sc.tracks_margin[2],
                        )
                        if sc.tracks_margin is not None
                        and condition == "gstar"
                        and name == "MLP_GLOBAL"
                        else {}
                    ),
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
    out["T08"] = t08_frame(scenarios, control, paired or {}) if control in scenarios else None
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


def said(scenario: Scenario | None = None, key: str = "S1", frames: dict | None = None) -> str:
    """The sentence of finding ``key`` (``S1`` ... ``c``, ``T06``) for the ``base`` group of
    ``scenario`` (or of ``frames``): what a notebook reads from :func:`report.decide_all`."""
    decided = report.decide_all(frames or make_tables({"base": scenario or Scenario()}))
    return decided[("base", SPIKE, RATE)][key].sentence


def cells_of(text: str, title: str, first: str = "base") -> list[list[str]]:
    """The rows (lists of cells) of the first table after the heading ``title`` whose first
    cell is ``first``."""
    lines = text.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines if line.startswith("|")]
    return [r for r in rows if r and r[0] == first]
