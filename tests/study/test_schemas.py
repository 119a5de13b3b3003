"""The table schemas reject what SPEC §10 forbids: missing columns, NaN where a value is
required, wrong row coverage, unexpected columns."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from avalanche_kedro.study import schemas, tables

PROVENANCE = {
    "run_id": "run-0123456789abcdef",
    "stage_id": "T",
    "model_id": "m",
    "dataset_role": "B",
    "config_hash": "a" * 64,
    "code_version": "no_git_metadata",
}


def t02(roles=("base", "instruct")) -> pd.DataFrame:
    rows = []
    for role, spike, rate, condition in itertools.product(
        roles, ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"], [1e-5, 2e-5], ["g1", "gstar"]
    ):
        rows.append(
            {
                **PROVENANCE,
                "model_role": role,
                "spike_def_id": spike,
                "target_rate": rate,
                "g_condition": condition,
                "g": 1.0 if condition == "g1" else 0.9,
                "b_time": 0.4,
                "b_depth": 0.5,
                "b_tot": 0.9,
                "delta_b_tot": 0.1,
                "chi": 3.0,
                "n_sequences": 8,
                "ppl": 12.0,
                "nll_mean": np.log(12.0),
                "opt_ppl_ci_low": 11.0,
            }
        )
    return pd.DataFrame(rows)[[*tables.PROVENANCE_COLUMNS, *tables.T02_COLUMNS, "opt_ppl_ci_low"]]


def test_a_complete_table_validates():
    schemas.T02_SCHEMA.validate(t02())


def test_a_missing_required_column_fails():
    with pytest.raises(pandera.errors.SchemaError, match="ppl"):
        schemas.T02_SCHEMA.validate(t02().drop(columns="ppl"))


def test_an_unexpected_column_fails_but_opt_columns_pass():
    with pytest.raises((pandera.errors.SchemaError, pandera.errors.SchemaErrors), match="extra"):
        schemas.T02_SCHEMA.validate(t02().assign(extra=1.0))
    schemas.T02_SCHEMA.validate(t02().assign(opt_anything="x"))


def test_nan_where_a_value_is_required_fails():
    table = t02()
    table.loc[3, "chi"] = np.nan
    with pytest.raises(pandera.errors.SchemaError, match="chi"):
        schemas.T02_SCHEMA.validate(table)


def test_a_missing_row_fails_the_coverage_check():
    with pytest.raises(pandera.errors.SchemaError, match="one row per"):
        schemas.T02_SCHEMA.validate(t02().drop(index=5))
    with pytest.raises(pandera.errors.SchemaError, match="one row per"):
        schemas.T02_SCHEMA.validate(pd.concat([t02(), t02().iloc[:1]], ignore_index=True))


def test_out_of_range_values_fail():
    with pytest.raises(pandera.errors.SchemaError):
        schemas.T02_SCHEMA.validate(t02().assign(ppl=0.5))
    with pytest.raises(pandera.errors.SchemaError):
        schemas.T02_SCHEMA.validate(t02().assign(g_condition="g2"))


def t06() -> pd.DataFrame:
    rows = []
    plan = [("g1", 1.0, "MLP_GLOBAL"), ("gstar", 0.9, "MLP_GLOBAL"), ("gstar", 0.9, "ATTN_GLOBAL")]
    for role, rate in itertools.product(["base"], [1e-5, 2e-5]):
        for condition, g, intervention in plan:
            rows.append(
                {
                    **PROVENANCE,
                    "model_role": role,
                    "spike_def_id": "SPIKE_ONE_SIDED_POS",
                    "target_rate": rate,
                    "g_condition": condition,
                    "g": g,
                    "intervention_id": intervention,
                    "gain_target": "ATTN" if intervention == "ATTN_GLOBAL" else "MLP",
                    "b_tot": 0.9,
                    "delta_b_tot": 0.1,
                    "chi": 2.0,
                    "achieved_rate_max_abs_err": 1e-6,
                    "n_sequences": 8,
                }
            )
    return pd.DataFrame(rows)[[*tables.PROVENANCE_COLUMNS, *tables.T06_COLUMNS]]


def test_ablation_plan_must_be_the_same_for_every_condition():
    schemas.T06_SCHEMA.validate(t06())
    with pytest.raises(pandera.errors.SchemaError, match="same"):
        schemas.T06_SCHEMA.validate(t06().drop(index=5))


def test_t01_nan_branching_only_when_flagged_empty():
    check = schemas.nan_only_where(["b_tot"], "opt_branching_empty", "T01")
    frame = pd.DataFrame({"b_tot": [0.5, np.nan], "opt_branching_empty": [False, True]})
    assert check(frame).check_passed
    frame.loc[1, "opt_branching_empty"] = False
    assert not check(frame).check_passed


def t08() -> pd.DataFrame:
    from tests.study.report.tables_builder import Paired, Scenario, make_tables

    scenarios = {"base": Scenario(), "instruct": Scenario(), "untrained": Scenario()}
    paired = {"instruct": Paired(crackling_reason="control untrained: 5 distinct durations")}
    return make_tables(scenarios, control="untrained", paired=paired)["T08"]


def test_t08_validates_with_a_crackling_difference_missing_for_a_reason():
    table = t08()
    schemas.T08_SCHEMA.validate(table)
    assert table["diff_crackling_gamma"].isna().tolist() == [False, True]


def test_t08_missing_column_and_bad_ranges_fail():
    with pytest.raises(pandera.errors.SchemaError, match="diff_chi_ci_high_g1"):
        schemas.T08_SCHEMA.validate(t08().drop(columns="diff_chi_ci_high_g1"))
    with pytest.raises(pandera.errors.SchemaError, match="b_tot_control"):
        schemas.T08_SCHEMA.validate(t08().assign(b_tot_control=-0.1, b_tot_compared=0.1))
    with pytest.raises(pandera.errors.SchemaError, match="target_rate"):
        schemas.T08_SCHEMA.validate(t08().assign(target_rate=1.5))
    with pytest.raises(pandera.errors.SchemaError, match="bootstrap_replicates"):
        schemas.T08_SCHEMA.validate(t08().assign(bootstrap_replicates=0))
    table = t08()
    table.loc[0, "diff_chi"] = np.nan
    with pytest.raises(pandera.errors.SchemaError, match="diff_chi"):
        schemas.T08_SCHEMA.validate(table)


def test_t08_consistency_checks():
    with pytest.raises(pandera.errors.SchemaError, match="never compared with itself"):
        schemas.T08_SCHEMA.validate(t08().assign(control_role="base"))
    table = t08()
    table.loc[0, "diff_b_tot"] += 0.01  # no longer compared - control
    with pytest.raises(pandera.errors.SchemaError, match="diff = compared - control"):
        schemas.T08_SCHEMA.validate(table)
    table = t08()
    table.loc[0, ["diff_chi_ci_low_g1", "diff_chi_ci_high_g1"]] = [5.0, 1.0]  # unordered CI
    with pytest.raises(pandera.errors.SchemaError, match="ordered CIs"):
        schemas.T08_SCHEMA.validate(table)
    table = t08()
    table.loc[1, "opt_crackling_reason"] = ""  # a NaN crackling difference without a reason
    with pytest.raises(pandera.errors.SchemaError, match="crackling NaN only with a reason"):
        schemas.T08_SCHEMA.validate(table)
    table = t08()
    table.loc[0, "opt_crackling_reason_g1"] = "a reason but a finite difference"
    with pytest.raises(pandera.errors.SchemaError, match="crackling NaN only with a reason"):
        schemas.T08_SCHEMA.validate(table)
    with pytest.raises(pandera.errors.SchemaError, match="one row per"):
        schemas.T08_SCHEMA.validate(pd.concat([t08(), t08().iloc[:1]], ignore_index=True))
