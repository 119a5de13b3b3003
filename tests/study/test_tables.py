"""Paper tables T01-T07 built from small hand-made per-role frames: provenance columns first,
then the SPEC columns, then sorted ``opt_`` extras; rows sorted by their keys; only the real
MLP_GLOBAL conditions of dataset A in T01/T04/T05."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.analysis.lattice import ADJ_4N, ADJ_8N
from avalanche_kedro.measure.gain import ATTN_GLOBAL, MLP_GLOBAL
from avalanche_kedro.measure.sweep import NULL_NONE
from avalanche_kedro.study import tables
from avalanche_kedro.study.schemas import SCHEMAS

PROVENANCE = {"run_id": "run-0123456789abcdef", "config_hash": "c" * 64, "code_version": "v1"}
MANIFESTS = {"base": {"model_id": "m-base"}, "instruct": {"model_id": "m-instruct"}}
SPIKE = "SPIKE_ONE_SIDED_POS"
RATE = 0.002


def _layout(table: pd.DataFrame, required: list[str]) -> None:
    """Provenance columns, then ``required`` in order, then the opt_ columns sorted."""
    n = len(tables.PROVENANCE_COLUMNS) + len(required)
    assert list(table.columns[:n]) == [*tables.PROVENANCE_COLUMNS, *required]
    rest = list(table.columns[n:])
    assert rest == sorted(rest) and all(c.startswith("opt_") for c in rest)
    assert list(table.index) == list(range(len(table)))
    assert (table["run_id"] == PROVENANCE["run_id"]).all()
    assert (table["config_hash"] == PROVENANCE["config_hash"]).all()
    assert (table["code_version"] == "v1").all()


# ---- T01 ----------------------------------------------------------------------------------------

METRICS = ("b_time", "b_depth", "b_tot")


def _control_values(cond_id: int) -> dict:
    """Every branching/chi column of one controls_summary row, each a distinct number."""
    names = ["chi", "chi_ci_low", "chi_ci_high"]
    for m in METRICS:
        names += [m, f"{m}_perm", f"delta_{m}", f"{m}_ci_low", f"{m}_ci_high"]
        names += [f"delta_{m}_ci_low", f"delta_{m}_ci_high", f"{m}_shift", f"delta_{m}_shift"]
        names += [f"{m}_tokshuf", f"delta_{m}_tokshuf"]
        for null in ("shift", "tokshuf"):
            names += [f"delta_{m}_{null}_ci_low", f"delta_{m}_{null}_ci_high"]
    return {name: cond_id + 0.001 * (k + 1) for k, name in enumerate(names)}


def _controls() -> pd.DataFrame:
    plan = [  # cond_id, g, null_id, intervention_id, dataset_role
        (0, 1.25, NULL_NONE, MLP_GLOBAL, "A"),
        (1, 0.8, NULL_NONE, MLP_GLOBAL, "A"),
        (2, 0.8, "NULL_PERM_WITHIN_LAYER", MLP_GLOBAL, "A"),  # a null: not a T01 row
        (3, 1.25, NULL_NONE, ATTN_GLOBAL, "A"),  # an ablation: not a T01 row
        (4, 0.8, NULL_NONE, MLP_GLOBAL, "B"),  # dataset B: not a T01 row
    ]
    rows = []
    for cond_id, g, null_id, intervention, dataset_role in plan:
        rows.append(
            {
                "cond_id": cond_id,
                "spike_def_id": SPIKE,
                "target_rate": RATE,
                "g": g,
                "null_id": null_id,
                "intervention_id": intervention,
                "dataset_role": dataset_role,
                "condition_key": f"key-{cond_id}",
                "n_sequences": 16,
                "branching_empty": False,
                "bootstrap_replicates": 200,
                "marginals_preserved_perm": True,
                "marginals_preserved_shift": cond_id != 1,
                **_control_values(cond_id),
            }
        )
    return pd.DataFrame(rows)


def _cascades() -> pd.DataFrame:
    columns = [
        "n_avalanches",
        "avalanche_size_mean",
        "avalanche_size_median",
        "avalanche_span_tokens_mean",
        "avalanche_span_layers_mean",
    ]
    rows = []
    for cond_id in range(5):
        record = {"cond_id": cond_id}
        record.update({c: 10 * (cond_id + 1) + k for k, c in enumerate(columns)})
        record.update({f"{c}_8n": 10 * (cond_id + 1) + k + 0.5 for k, c in enumerate(columns)})
        rows.append(record)
    return pd.DataFrame(rows)


def _crackling() -> pd.DataFrame:
    rows = []
    for cond_id in range(5):
        for adjacency, gamma, passed in ((ADJ_4N, 1.5 + cond_id, True), (ADJ_8N, 2.5, False)):
            rows.append(
                {
                    "cond_id": cond_id,
                    "adjacency": adjacency,
                    "crackling_gamma": gamma,
                    "crackling_ci_low": gamma - 0.1,
                    "crackling_ci_high": gamma + 0.1,
                    "crackling_ci_width": 0.2,
                    "n_duration_points": 9,
                    "n_avalanches_used": 30,
                    "r2": 0.95,
                    "pass": passed,
                    "reason": "" if passed else "too few durations",
                    "s3_available": passed,
                }
            )
    return pd.DataFrame(rows)


def _tau_table() -> pd.DataFrame:
    rows = []
    per_g = {  # g -> per layer (r*, calibration, analysis, tolerance)
        0.8: [(0.001, 0.0011, 0.0012, 1e-4), (0.003, 0.0028, 0.0035, 2e-4)],
        1.25: [(0.001, 0.001, 0.0009, 1e-4), (0.003, 0.003, 0.0033, 2e-4)],
    }
    for g, layers in per_g.items():
        for layer, (r_star, cal, ana, tol) in enumerate(layers):
            for intervention in (MLP_GLOBAL, ATTN_GLOBAL):
                wild = intervention == ATTN_GLOBAL  # must not enter the MLP rate matching
                rows.append(
                    {
                        "intervention_id": intervention,
                        "spike_def_id": SPIKE,
                        "target_rate": RATE,
                        "g": g,
                        "layer": layer,
                        "r_star": r_star,
                        "achieved_rate_calibration": 1.0 if wild else cal,
                        "achieved_rate_analysis": 1.0 if wild else ana,
                        "rate_match_tol": 1.0 if wild else tol,
                    }
                )
    return pd.DataFrame(rows)


def _build_t01(**overrides) -> pd.DataFrame:
    inputs = {
        "provenance": PROVENANCE,
        "calibration": {"tau0": 2.5},
        "rate_matching": {},
        "model_manifests": {"base": MANIFESTS["base"]},
        "controls_summary": {"base": _controls()},
        "cascade_summary": {"base": _cascades()},
        "crackling_fits": {"base": _crackling()},
        "tau_tables": {"base": _tau_table()},
        "gstar": {
            "base": pd.DataFrame({"spike_def_id": [SPIKE], "target_rate": [RATE], "g_star": [0.8]})
        },
    }
    return tables.build_t01(**{**inputs, **overrides})


def test_t01_keeps_the_real_mlp_rows_of_dataset_a_sorted_by_gain():
    t01 = _build_t01()
    _layout(t01, tables.T01_COLUMNS)
    assert t01["g"].tolist() == [0.8, 1.25]
    assert t01["opt_cond_id"].tolist() == [1, 0]
    assert t01["opt_condition_key"].tolist() == ["key-1", "key-0"]
    assert t01["opt_is_gstar"].tolist() == [True, False]
    assert t01["opt_marginals_preserved_shift"].tolist() == [False, True]
    assert (t01["stage_id"] == "T01_SUMMARY").all() and (t01["model_id"] == "m-base").all()
    assert (t01["model_role"] == "base").all() and (t01["dataset_role"] == "A").all()
    assert t01["tau0_baseline"].tolist() == [2.5, 2.5]
    assert t01["rate_match_tol"].tolist() == [0.05, 0.05]  # the default rel_tol
    assert _build_t01(rate_matching={"rel_tol": 0.1})["rate_match_tol"].tolist() == [0.1, 0.1]
    SCHEMAS["T01"].validate(t01)  # the catalog's schema accepts it


def test_t01_names_the_controls_columns_and_moves_the_extras_to_opt():
    t01 = _build_t01()
    controls = _controls().set_index("cond_id")
    renamed = {"chi": "chi", "opt_chi_ci_low": "chi_ci_low", "opt_chi_ci_high": "chi_ci_high"}
    for m in METRICS:
        for column in (m, f"{m}_perm", f"delta_{m}"):
            renamed[column] = column
        for column in (f"{m}_shift", f"delta_{m}_shift", f"{m}_tokshuf", f"delta_{m}_tokshuf"):
            renamed[f"opt_{column}"] = column
        for bound in ("ci_low", "ci_high"):
            renamed[f"opt_{m}_{bound}"] = f"{m}_{bound}"
            renamed[f"opt_delta_{m}_{bound}"] = f"delta_{m}_{bound}"
            renamed[f"opt_delta_{m}_shift_{bound}"] = f"delta_{m}_shift_{bound}"
            renamed[f"opt_delta_{m}_tokshuf_{bound}"] = f"delta_{m}_tokshuf_{bound}"
    assert len(renamed) == 3 + 3 * 15
    for t01_column, controls_column in renamed.items():
        expected = controls.loc[[1, 0], controls_column].tolist()
        assert t01[t01_column].tolist() == expected, t01_column


def test_t01_takes_the_gstar_rows_with_the_token_shuffle_null_recorded_there():
    """controls_summary_gstar_A rows (the g* conditions with the token-shuffle null recorded
    at g*) replace those of controls_summary_A; other gains keep their (NaN) token shuffle."""
    controls = _controls()
    for column in [c for c in controls.columns if "tokshuf" in c]:
        controls[column] = np.nan  # recorded at no gain by the events pipeline
    at_gstar = _controls()
    at_gstar = at_gstar[at_gstar["cond_id"] == 1]  # g* = 0.8, token shuffle recorded
    t01 = _build_t01(controls_summary={"base": controls}, controls_summary_gstar={"base": at_gstar})
    star, other = t01.iloc[0], t01.iloc[1]
    assert star["opt_is_gstar"] and star["opt_cond_id"] == 1
    assert star["opt_delta_b_tot_tokshuf"] == at_gstar["delta_b_tot_tokshuf"].item()
    assert star["opt_delta_b_tot_tokshuf_ci_low"] == at_gstar["delta_b_tot_tokshuf_ci_low"].item()
    assert np.isnan(other["opt_delta_b_tot_tokshuf"]) and other["opt_cond_id"] == 0
    # the permutation and shift columns are those of controls_summary_A (same numbers)
    assert star["delta_b_tot"] == controls.set_index("cond_id").loc[1, "delta_b_tot"]
    assert t01.drop(columns=[c for c in t01 if "tokshuf" in c]).equals(
        _build_t01(controls_summary={"base": controls}).drop(
            columns=[c for c in t01 if "tokshuf" in c]
        )
    )
    SCHEMAS["T01"].validate(t01)
    # a row that has its own token-shuffle null (g = 1) keeps it, even if g* = 1 there
    own = _controls()
    without = at_gstar.assign(delta_b_tot_tokshuf=np.nan)
    kept = _build_t01(controls_summary={"base": own}, controls_summary_gstar={"base": without})
    assert kept.equals(_build_t01(controls_summary={"base": own}))


def test_t01_rates_cascades_and_crackling_per_condition():
    t01 = _build_t01()
    slow, fast = t01.iloc[0], t01.iloc[1]  # g = 0.8, g = 1.25
    # calibration slice: mean over layers and the largest |achieved - r*|
    assert slow["achieved_rate_mean"] == pytest.approx(0.00195)
    assert slow["achieved_rate_max_abs_err"] == pytest.approx(2e-4)
    assert fast["achieved_rate_mean"] == pytest.approx(0.002)
    assert fast["achieved_rate_max_abs_err"] == pytest.approx(0.0)
    # analysis slice (held out) and the largest per-layer tolerance
    assert slow["opt_achieved_rate_analysis_mean"] == pytest.approx(0.00235)
    assert slow["opt_achieved_rate_analysis_max_abs_err"] == pytest.approx(5e-4)
    assert fast["opt_achieved_rate_analysis_mean"] == pytest.approx(0.0021)
    assert fast["opt_achieved_rate_analysis_max_abs_err"] == pytest.approx(3e-4)
    assert t01["opt_rate_match_tol_abs_max"].tolist() == [2e-4, 2e-4]
    # cascades of cond 1 and 0, 4-neighbour and 8-neighbour
    assert t01["n_avalanches"].tolist() == [20, 10]
    assert t01["avalanche_span_layers_mean"].tolist() == [24, 14]
    assert t01["opt_n_avalanches_8n"].tolist() == [20, 10]
    assert t01["opt_n_avalanches_8n"].dtype == np.int64
    assert t01["opt_avalanche_size_mean_8n"].tolist() == [21.5, 11.5]
    # crackling: the 4-neighbour fit in the SPEC columns, the 8-neighbour one in opt_
    assert t01["crackling_gamma"].tolist() == [2.5, 1.5]
    assert t01["crackling_ci_low"].tolist() == pytest.approx([2.4, 1.4])
    assert t01["opt_crackling_pass"].tolist() == [True, True]
    assert t01["opt_crackling_gamma_8n"].tolist() == [2.5, 2.5]
    assert t01["opt_crackling_pass_8n"].tolist() == [False, False]


# ---- T02, T03, T06: per-role frames stacked -----------------------------------------------------


def _generalization(role_shift: float) -> pd.DataFrame:
    rows = []
    for rate, condition, g in ((0.004, "gstar", 0.8), (0.001, "gstar", 1.25), (0.004, "g1", 1.0)):
        rows.append(
            {
                "spike_def_id": SPIKE,
                "target_rate": rate,
                "g_condition": condition,
                "g": g,
                "b_time": 0.4,
                "b_depth": 0.5,
                "b_tot": 0.9 + role_shift,
                "delta_b_tot": 0.05,
                "chi": 3.0,
                "n_sequences": 8,
                "ppl": 20.0 + g,
                "nll_mean": np.log(20.0 + g),
                "b_tot_ci_low": 0.8,  # not a SPEC column: becomes opt_b_tot_ci_low
                "opt_achieved_rate_mean": rate,  # already opt_: kept as it is
            }
        )
    return pd.DataFrame(rows)


def test_t02_stacks_the_roles_sorted_by_key_with_opt_extras():
    t02 = tables.build_t02(
        PROVENANCE, MANIFESTS, {"instruct": _generalization(0.1), "base": _generalization(0.0)}
    )
    _layout(t02, tables.T02_COLUMNS)
    assert list(t02.columns[-2:]) == ["opt_achieved_rate_mean", "opt_b_tot_ci_low"]
    keys = list(zip(t02.model_role, t02.target_rate, t02.g_condition, strict=True))
    assert keys == [
        ("base", 0.001, "gstar"),
        ("base", 0.004, "g1"),
        ("base", 0.004, "gstar"),
        ("instruct", 0.001, "gstar"),
        ("instruct", 0.004, "g1"),
        ("instruct", 0.004, "gstar"),
    ]
    assert t02["model_id"].tolist() == ["m-base"] * 3 + ["m-instruct"] * 3
    assert t02["b_tot"].tolist() == pytest.approx([0.9] * 3 + [1.0] * 3)
    assert (t02["dataset_role"] == "B").all() and (t02["stage_id"] == "T02_GENERALIZATION").all()
    assert t02["opt_b_tot_ci_low"].tolist() == [0.8] * 6
    assert t02["ppl"].tolist()[:3] == [21.25, 21.0, 20.8]


def test_t03_carries_each_roles_prompt_hash():
    arc = pd.DataFrame(
        {
            "spike_def_id": [SPIKE, SPIKE],
            "target_rate": [RATE, RATE],
            "g_condition": ["gstar", "g1"],
            "g": [0.8, 1.0],
            "n_questions": [40, 40],
            "accuracy": [0.3, 0.35],
            "accuracy_ci_low": [0.2, 0.25],
            "accuracy_ci_high": [0.4, 0.45],
            "mean_logprob_correct_minus_incorrect": [0.1, 0.2],
            "n_prompts_truncated": [2, 2],
        }
    )
    t03 = tables.build_t03(
        PROVENANCE,
        MANIFESTS,
        {"base": arc, "instruct": arc},
        {"base": {"prompt_sha256": "aaa"}, "instruct": {"prompt_sha256": "bbb"}},
    )
    _layout(t03, tables.T03_COLUMNS)
    assert list(t03.columns[-2:]) == ["opt_n_prompts_truncated", "opt_prompt_sha256"]
    assert t03["opt_prompt_sha256"].tolist() == ["aaa", "aaa", "bbb", "bbb"]
    assert t03["g_condition"].tolist() == ["g1", "gstar", "g1", "gstar"]
    assert t03["accuracy"].tolist() == [0.35, 0.3, 0.35, 0.3]
    assert (t03["dataset_role"] == "ARC_MCQ").all() and (t03["stage_id"] == "T03_ARC").all()


def test_t06_rows_sorted_by_condition_then_intervention():
    ablations = pd.DataFrame(
        {
            "spike_def_id": SPIKE,
            "target_rate": RATE,
            "g_condition": ["gstar", "gstar", "g1"],
            "g": [0.8, 0.8, 1.0],
            "intervention_id": [MLP_GLOBAL, ATTN_GLOBAL, MLP_GLOBAL],
            "gain_target": ["MLP", "ATTN", "MLP"],
            "b_tot": [0.95, 0.9, 1.0],
            "delta_b_tot": [0.05, 0.04, 0.06],
            "chi": [2.0, 2.0, 2.0],
            "achieved_rate_max_abs_err": [1e-6, 1e-6, 1e-6],
            "n_sequences": [16, 16, 16],
            "delta_b_tot_ci_low": [0.01, 0.0, 0.02],
        }
    )
    t06 = tables.build_t06(PROVENANCE, {"base": MANIFESTS["base"]}, {"base": ablations})
    _layout(t06, tables.T06_COLUMNS)
    assert list(zip(t06.g_condition, t06.intervention_id, strict=True)) == [
        ("g1", MLP_GLOBAL),
        ("gstar", ATTN_GLOBAL),
        ("gstar", MLP_GLOBAL),
    ]
    assert t06["b_tot"].tolist() == [1.0, 0.9, 0.95]
    assert t06["opt_delta_b_tot_ci_low"].tolist() == [0.02, 0.0, 0.01]
    assert (t06["stage_id"] == "T06_ABLATIONS").all() and (t06["dataset_role"] == "A").all()


def test_opt_extras_rename_only_columns_outside_the_spec_and_provenance():
    frame = pd.DataFrame(columns=["spike_def_id", "run_id", "model_role", "opt_x", "extra", "n"])
    assert tables._opt_extras(frame, ["spike_def_id", "n"]) == {"extra": "opt_extra"}


# ---- T04, T05: one row per T01 row --------------------------------------------------------------


def test_t04_joins_the_tail_fits_of_the_primary_adjacency_to_the_t01_keys():
    fits = []
    for cond_id in range(5):
        for adjacency in (ADJ_4N, ADJ_8N):
            fits.append(
                {
                    "cond_id": cond_id,
                    "adjacency": adjacency,
                    "xmin": 2.0,
                    "n_tail": 100.0 + cond_id,
                    "alpha_powerlaw": 2.0 if adjacency == ADJ_4N else 9.0,
                    "lambda_exponential": 0.3,
                    "lognorm_mu": 0.5,
                    "lognorm_sigma": 1.0,
                    "ll_powerlaw": -300.0,
                    "ll_exponential": -320.0,
                    "ll_lognormal": -301.0,
                    "llr_powerlaw_vs_lognormal": 0.4,
                    "llr_powerlaw_vs_exponential": 3.0,
                    "available": 1,
                    "reason": "",
                    "p_powerlaw_vs_lognormal": 0.7,
                    "p_powerlaw_vs_exponential": 0.01,
                }
            )
    t04 = tables.build_t04(
        PROVENANCE, {"base": MANIFESTS["base"]}, {"base": _controls()}, {"base": pd.DataFrame(fits)}
    )
    _layout(t04, tables.T04_COLUMNS)
    assert list(t04.columns[len(tables.PROVENANCE_COLUMNS) + len(tables.T04_COLUMNS) :]) == [
        "opt_available",
        "opt_cond_id",
        "opt_p_powerlaw_vs_exponential",
        "opt_p_powerlaw_vs_lognormal",
        "opt_reason",
    ]
    assert t04["opt_cond_id"].tolist() == [1, 0]  # sorted by g; nulls, ablations, B left out
    assert t04["n_tail"].tolist() == [101, 100] and t04["n_tail"].dtype == np.int64
    assert t04["opt_available"].dtype == bool and t04["opt_available"].all()
    assert t04["alpha_powerlaw"].tolist() == [2.0, 2.0]  # the 4-neighbour fit
    assert (t04["stage_id"] == "T04_TAIL_FITS").all() and (t04["model_id"] == "m-base").all()


def test_t05_has_the_crackling_gate_of_each_t01_row():
    t05 = tables.build_t05(
        PROVENANCE, {"base": MANIFESTS["base"]}, {"base": _controls()}, {"base": _crackling()}
    )
    _layout(t05, tables.T05_COLUMNS)
    assert list(t05.columns[-3:]) == ["opt_cond_id", "opt_reason", "opt_s3_available"]
    assert t05["g"].tolist() == [0.8, 1.25]
    assert t05["crackling_gamma"].tolist() == [2.5, 1.5]
    assert t05["pass"].tolist() == [True, True]
    assert t05["opt_s3_available"].tolist() == [True, True]
    assert (t05["stage_id"] == "T05_CRACKLING_DIAGNOSTICS").all()
    SCHEMAS["T05"].validate(t05)


# ---- T07 and CSV --------------------------------------------------------------------------------


def test_t07_rows_belong_to_the_compared_role():
    replication = pd.DataFrame(
        {
            "spike_def_id": SPIKE,
            "target_rate": RATE,
            "reference_role": "base",
            "compared_role": ["zeta", "instruct"],
            "reference_model_id": "m-base",
            "compared_model_id": ["m-zeta", "m-instruct"],
            "g_star_reference": 0.8,
            "g_star_compared": [1.0, 1.25],
            "delta_b_tot_reference": 0.05,
            "delta_b_tot_compared": [0.07, 0.02],
            "diff_delta_b_tot": [0.02, -0.03],
            "diff_delta_b_tot_ci_low": [0.01, -0.05],
            "diff_delta_b_tot_ci_high": [0.03, -0.01],
            "chi_reference": 10.0,
            "chi_compared": [11.0, 9.0],
            "diff_chi": [1.0, -1.0],
            "diff_chi_ci_low": [-1.0, -3.0],
            "diff_chi_ci_high": [3.0, 1.0],
            "n_sequences": 16,
            "bootstrap_replicates": 200,
        }
    )
    t07 = tables.build_t07(PROVENANCE, replication)
    _layout(t07, tables.T07_COLUMNS)
    assert list(t07.columns[-2:]) == ["opt_bootstrap_replicates", "opt_n_sequences"]
    assert t07["compared_role"].tolist() == ["instruct", "zeta"]
    assert t07["model_role"].tolist() == ["instruct", "zeta"]
    assert t07["model_id"].tolist() == ["m-instruct", "m-zeta"]
    assert t07["diff_chi"].tolist() == [-1.0, 1.0]
    assert (t07["dataset_role"] == "A").all()
    assert (t07["stage_id"] == "T07_REPLICATION_SUMMARY").all()


def test_csv_frame_writes_list_cells_as_full_precision_text():
    table = pd.DataFrame(
        {
            "name": ["a", "b"],
            "value": [0.5, 1 / 3],
            "edges": [[0.1, 1 / 3], np.array([1, 2])],
        }
    )
    frame = tables.to_csv_frame(table)
    assert frame["edges"].tolist() == ["[0.1, 0.3333333333333333]", "[1.0, 2.0]"]
    assert frame["value"].tolist() == [0.5, 1 / 3] and frame["name"].tolist() == ["a", "b"]
    assert table["edges"].iloc[0] == [0.1, 1 / 3]  # the input is not changed
