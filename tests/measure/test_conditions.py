"""The condition table (SPEC §7): ids, keys, row order, gain lists and the settings to fit.

Expected tables are written out by hand; keys are checked against the canonical text
``dataset|spike_def|repr(rate)|repr(g)|intervention`` of :func:`core.seeds.condition_key`.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure.conditions import (
    CONDITION_COLUMNS,
    check_gain_grid,
    plan_conditions,
    resolve_gains,
    threshold_settings,
)
from avalanche_kedro.measure.sweep import GainSetting

POS, ABS = "SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"


def test_plan_conditions_keys_and_ids():
    table = plan_conditions(
        model_role="base",
        dataset_role="A",
        gain_grid=[0.85, 1, 1.3],
        interventions={"MLP_GLOBAL": "grid", "ATTN_GLOBAL": [0.85]},
        token_shuffle_gains=[1.0],
        spike_defs=["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"],
        target_rates=[1e-5, 8e-5],
    )
    # (3 MLP gains + 1 ATTN gain + 1 shuffle gain) x 2 spike defs x 2 rates
    assert len(table) == 20
    assert table["cond_id"].tolist() == list(range(20))
    assert str(table["cond_id"].dtype) == "int32"
    first = table.iloc[0]
    assert first["condition_key"] == "A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL"
    assert first["null_id"] == "NULL_NONE"
    for row in table.itertuples():
        assert row.condition_key == "|".join(
            [
                "A",
                row.spike_def_id,
                repr(float(row.target_rate)),
                repr(float(row.g)),
                row.intervention_id,
            ]
        )
        assert "base" not in row.condition_key  # model role never enters the key
    shuffle = table[table["null_id"] == "NULL_TOKEN_SHUFFLE_INPUT"]
    assert len(shuffle) == 4 and set(shuffle["g"]) == {1.0}
    assert set(shuffle["condition_key"].str.split("|").str[3]) == {"1.0"}
    settings = threshold_settings(table)
    assert [(s.intervention_id, s.g) for s in settings] == [
        ("MLP_GLOBAL", 0.85),
        ("MLP_GLOBAL", 1.0),
        ("MLP_GLOBAL", 1.3),
        ("ATTN_GLOBAL", 0.85),
    ]


# --------------------------------------------------------------------------------------------
# plan_conditions: row order, columns and refusals


def test_rows_follow_null_intervention_gain_spike_def_rate_order():
    """Interventions in the fixed INTERVENTIONS order whatever the mapping's order; gains in
    the order given; the token-shuffle rows last."""
    table = plan_conditions(
        model_role="instruct",
        dataset_role="B",
        gain_grid=[0.7, 1.0, 1.3],
        interventions={"ATTN_GLOBAL": [0.7], "MLP_GLOBAL": [1.3, 1.0]},
        token_shuffle_gains=1.0,
        spike_defs=[ABS],
        target_rates=[2e-5, 1e-5],
    )
    assert list(table.columns) == CONDITION_COLUMNS
    expected = [
        # (null, intervention, g, rate)
        ("NULL_NONE", "MLP_GLOBAL", 1.3, 2e-5),
        ("NULL_NONE", "MLP_GLOBAL", 1.3, 1e-5),
        ("NULL_NONE", "MLP_GLOBAL", 1.0, 2e-5),
        ("NULL_NONE", "MLP_GLOBAL", 1.0, 1e-5),
        ("NULL_NONE", "ATTN_GLOBAL", 0.7, 2e-5),
        ("NULL_NONE", "ATTN_GLOBAL", 0.7, 1e-5),
        ("NULL_TOKEN_SHUFFLE_INPUT", "MLP_GLOBAL", 1.0, 2e-5),
        ("NULL_TOKEN_SHUFFLE_INPUT", "MLP_GLOBAL", 1.0, 1e-5),
    ]
    got = list(
        zip(
            table["null_id"],
            table["intervention_id"],
            table["g"],
            table["target_rate"],
            strict=True,
        )
    )
    assert got == expected
    assert table["cond_id"].tolist() == list(range(8))
    assert set(table["model_role"]) == {"instruct"} and set(table["dataset_role"]) == {"B"}
    assert set(table["spike_def_id"]) == {ABS}
    assert table["condition_key"].tolist() == [
        "B|SPIKE_TWO_SIDED_ABS|2e-05|1.3|MLP_GLOBAL",
        "B|SPIKE_TWO_SIDED_ABS|1e-05|1.3|MLP_GLOBAL",
        "B|SPIKE_TWO_SIDED_ABS|2e-05|1.0|MLP_GLOBAL",
        "B|SPIKE_TWO_SIDED_ABS|1e-05|1.0|MLP_GLOBAL",
        "B|SPIKE_TWO_SIDED_ABS|2e-05|0.7|ATTN_GLOBAL",
        "B|SPIKE_TWO_SIDED_ABS|1e-05|0.7|ATTN_GLOBAL",
        # the shuffle null shares the key of the real condition it is paired with
        "B|SPIKE_TWO_SIDED_ABS|2e-05|1.0|MLP_GLOBAL",
        "B|SPIKE_TWO_SIDED_ABS|1e-05|1.0|MLP_GLOBAL",
    ]


def test_same_parameters_give_the_same_ids_for_every_model_role():
    kwargs = {
        "dataset_role": "A",
        "gain_grid": [0.85, 1.0, 1.15],
        "interventions": {"MLP_GLOBAL": "grid", "MLP_BAND_LATE": [1.15]},
        "token_shuffle_gains": "grid",
        "spike_defs": [POS, ABS],
        "target_rates": [1e-5],
    }
    base = plan_conditions(model_role="base", **kwargs)
    instruct = plan_conditions(model_role="instruct", **kwargs)
    # (3 MLP gains + 1 band gain + 3 shuffle gains) x 2 spike defs x 1 rate
    assert len(base) == 14
    columns = [c for c in CONDITION_COLUMNS if c != "model_role"]
    pd.testing.assert_frame_equal(base[columns], instruct[columns])
    shuffle = base[base["null_id"] == "NULL_TOKEN_SHUFFLE_INPUT"]
    assert shuffle["g"].tolist() == [0.85, 0.85, 1.0, 1.0, 1.15, 1.15]


def test_ablation_plan_without_mlp_global_and_without_shuffle():
    table = plan_conditions(
        "base", "A", [1.0, 1.3], {"MLP_BAND_MID": [1.3]}, [], [POS], [1e-5],
        require_mlp_global=False,
    )  # fmt: skip
    assert table.to_dict("records") == [
        {
            "cond_id": 0,
            "model_role": "base",
            "dataset_role": "A",
            "spike_def_id": POS,
            "target_rate": 1e-5,
            "g": 1.3,
            "intervention_id": "MLP_BAND_MID",
            "null_id": "NULL_NONE",
            "condition_key": "A|SPIKE_ONE_SIDED_POS|1e-05|1.3|MLP_BAND_MID",
        }
    ]


def test_missing_mlp_global_is_refused_by_default():
    with pytest.raises(ConfigurationError) as info:
        plan_conditions("base", "A", [1.0], {"ATTN_GLOBAL": "grid"}, [], [POS], [1e-5])
    assert (
        info.value.problem
        == "events.interventions has no MLP_GLOBAL entry; the gain sweep needs it."
    )
    assert info.value.fix == "Add `MLP_GLOBAL: grid` under events.interventions."


def test_unknown_intervention_is_refused():
    with pytest.raises(ConfigurationError) as info:
        plan_conditions(
            "base", "A", [1.0], {"MLP_GLOBAL": "grid", "MLP_SOMEWHERE": [1.0]}, [], [POS], [1e-5]
        )
    assert info.value.problem == "Unknown interventions ['MLP_SOMEWHERE'] in events.interventions."
    assert "ATTN_GLOBAL" in info.value.fix and "MLP_BAND_LATE" in info.value.fix


def test_token_shuffle_gains_must_have_mlp_global_thresholds():
    with pytest.raises(ConfigurationError) as info:
        plan_conditions(
            "base", "A", [0.7, 1.0, 1.3], {"MLP_GLOBAL": [1.0]}, [1.3, 0.7, 1.0], [POS], [1e-5]
        )
    assert info.value.problem == "Token-shuffle gains [0.7, 1.3] have no MLP_GLOBAL thresholds."


def test_an_invalid_gain_grid_stops_the_plan():
    with pytest.raises(ConfigurationError, match="contains 1.0"):
        plan_conditions("base", "A", [0.7, 1.3], {"MLP_GLOBAL": "grid"}, [], [POS], [1e-5])


# --------------------------------------------------------------------------------------------
# resolve_gains and check_gain_grid


def test_resolve_gains_grid_scalar_and_list():
    grid = [0.7, 1, 1.3]
    assert resolve_gains("grid", grid, "x") == [0.7, 1.0, 1.3]
    assert all(type(g) is float for g in resolve_gains("grid", grid, "x"))
    assert resolve_gains(1, grid, "x") == [1.0]
    assert resolve_gains(0.85, grid, "x") == [0.85]  # need not be on the grid
    assert resolve_gains([1.3, 0, 1], grid, "x") == [1.3, 0.0, 1.0]  # order kept, 0 allowed
    assert resolve_gains((1.0,), grid, "x") == [1.0]
    assert resolve_gains([], grid, "x") == []


@pytest.mark.parametrize("spec", ["all", None, {"g": 1.0}])
def test_resolve_gains_refuses_what_is_not_grid_or_a_list(spec):
    with pytest.raises(ConfigurationError) as info:
        resolve_gains(spec, [1.0], "events.interventions.MLP_GLOBAL")
    assert info.value.problem == (
        f"events.interventions.MLP_GLOBAL must be 'grid' or a list of gains, got {spec!r}."
    )
    assert info.value.fix.startswith("Write `events.interventions.MLP_GLOBAL: grid`")


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan])
def test_resolve_gains_refuses_negative_or_non_finite(bad):
    with pytest.raises(ConfigurationError) as info:
        resolve_gains([1.0, bad], [1.0], "events.token_shuffle_gains")
    assert info.value.problem.startswith(
        "events.token_shuffle_gains contains a negative or non-finite gain"
    )
    assert info.value.fix == "Use finite gains >= 0."


def test_check_gain_grid():
    assert check_gain_grid([0.7, 1, 1.3]) == [0.7, 1.0, 1.3]
    assert check_gain_grid((1,)) == [1.0]
    for bad in ([], [0.7, 1.3], [1.0, 0.9, 1]):  # empty, no 1.0, 1 and 1.0 twice
        with pytest.raises(ConfigurationError) as info:
            check_gain_grid(bad)
        assert "distinct gains that contains 1.0" in info.value.problem
        assert "parameters_events.yml" in info.value.fix


# --------------------------------------------------------------------------------------------
# threshold_settings


def test_threshold_settings_are_the_distinct_real_pairs_in_table_order():
    conditions = pd.DataFrame(
        {
            "null_id": ["NULL_NONE"] * 4 + ["NULL_TOKEN_SHUFFLE_INPUT"],
            "intervention_id": ["ATTN_GLOBAL", "MLP_GLOBAL", "ATTN_GLOBAL", "MLP_GLOBAL",
                                "MLP_GLOBAL"],
            "g": [0.9, 1.1, 0.9, 1.1, 0.5],
        }
    )  # fmt: skip
    # the shuffle row's g = 0.5 needs no thresholds of its own
    assert threshold_settings(conditions) == [
        GainSetting("ATTN_GLOBAL", 0.9),
        GainSetting("MLP_GLOBAL", 1.1),
    ]
    assert threshold_settings(conditions.iloc[4:]) == []
