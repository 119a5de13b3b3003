"""Reading the paper tables for a figure: role order, float row selection, the condition text,
and the column check that names what a stale table lacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import frames
from tests.study.figures.tables_builder import make_t01, provenance


def test_missing_columns_are_named():
    with pytest.raises(ArtifactError, match="delta_b_tot"):
        figures.f10_null_comparison(make_t01().drop(columns="delta_b_tot"), provenance())


def test_require_names_every_missing_column_and_the_table():
    table = pd.DataFrame({"g": [1.0], "chi": [2.0]})
    frames._require(table, ["g", "chi"], "T01_SUMMARY")  # complete: no error
    with pytest.raises(ArtifactError) as error:
        frames._require(table, ["b_tot", "g", "delta_b_tot"], "T01_SUMMARY")
    assert error.value.problem == (
        "T01_SUMMARY lacks the columns ['b_tot', 'delta_b_tot'] needed for this figure."
    )
    with pytest.raises(ArtifactError, match="T03_ARC is empty"):
        frames._require(table.iloc[:0], ["g"], "T03_ARC")


def test_select_matches_floats_to_1e_12_and_other_values_exactly():
    table = pd.DataFrame(
        {
            "model_role": ["base", "base", "instruct", "base"],
            "target_rate": [0.1 + 0.2, 0.3000001, 0.3, 0.3],
            "layer": [0, 1, 0, 2],
        }
    )
    picked = frames._select(table, model_role="base", target_rate=0.3)
    assert list(picked.index) == [0, 3]  # 0.30000000000000004 matches, 0.3000001 does not
    assert list(frames._select(table, layer=0).index) == [0, 2]
    assert list(frames._select(table).index) == [0, 1, 2, 3]
    assert frames._select(table, model_role="other").empty


def test_condition_text_lists_sorted_values_of_each_key():
    table = pd.DataFrame(
        {
            "spike_def_id": ["SPIKE_B", "SPIKE_A", "SPIKE_B"],
            "target_rate": [0.002, 0.001, 0.002],
            "g": [1.25, 0.8, 1.0],
        }
    )
    assert frames._condition_text(table, "A", "intervention_id=MLP_GLOBAL") == (
        "dataset_role=A; spike_def_id=SPIKE_A,SPIKE_B; target_rate=0.001,0.002; "
        "g=0.8,1,1.25; intervention_id=MLP_GLOBAL"
    )
    assert frames._condition_text(pd.DataFrame({"x": [1]}), "B") == "dataset_role=B"


def test_roles_follow_the_provenance_order_then_the_rest_sorted():
    table = pd.DataFrame({"model_role": ["zeta", "instruct", "base", "alpha", "instruct"]})
    assert frames._roles(table) == ["alpha", "base", "instruct", "zeta"]
    prov = {"roles": ["instruct", "missing", "base"]}
    assert frames._roles(table, prov) == ["instruct", "base", "alpha", "zeta"]


def test_rates_spikes_and_model_ids_of_a_table():
    table = pd.DataFrame(
        {
            "model_role": ["base", "base", "instruct"],
            "model_id": ["m-base", "m-base", "m-instruct"],
            "spike_def_id": ["SPIKE_TWO", "SPIKE_ONE", "SPIKE_TWO"],
            "target_rate": [0.004, 0.001, 0.004],
        }
    )
    assert frames._rates(table) == [0.001, 0.004]
    assert frames._spikes(table) == ["SPIKE_ONE", "SPIKE_TWO"]
    assert frames._model_ids_of(table) == {"base": "m-base", "instruct": "m-instruct"}
    assert frames._model_ids_of(table.drop(columns="model_id")) == {}
    assert frames._models_title(["base", "other"], {"base": "m-base"}) == "base = m-base, other = ?"


def test_column_is_float_or_nan_when_absent():
    frame = pd.DataFrame({"chi": [1, 2, 3]})
    values = frames._column(frame, "chi")
    assert values.dtype == float and values.tolist() == [1.0, 2.0, 3.0]
    missing = frames._column(frame, "opt_chi_ci_low")
    assert missing.shape == (3,) and np.isnan(missing).all()
