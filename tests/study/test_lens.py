"""T10_LENS and T11_COLLAPSE_VS_CASCADE built from hand-made per-role lens tables: provenance
columns first, then the contract's columns; rows in role order then by their keys; the schemas
refuse what the contract forbids; the helpers that pick the figures' condition, the untrained
roles and the layer of the steepest entropy drop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import lens, tables
from tests.study import lens_builder as b

ROLES = ["untrained", "base"]  # not alphabetical: rows follow the role order
SCHEMA_ERRORS = (pandera.errors.SchemaError, pandera.errors.SchemaErrors)


@pytest.fixture(scope="module")
def t10() -> pd.DataFrame:
    return lens.build_t10(b.provenance(ROLES), b.model_manifests(ROLES), b.per_role(b.lens_layers))


@pytest.fixture(scope="module")
def t11() -> pd.DataFrame:
    return lens.build_t11(
        b.provenance(ROLES), b.model_manifests(ROLES), b.per_role(b.lens_alignment)
    )


# ---- T10 ----------------------------------------------------------------------------------------


def test_t10_has_the_provenance_then_the_contract_columns(t10):
    assert list(t10.columns) == [*tables.PROVENANCE_COLUMNS, *lens.T10_COLUMNS]
    assert set(t10["stage_id"]) == {"T10_LENS"} and set(t10["dataset_role"]) == {"A"}
    assert set(t10["run_id"]) == {b.RUN_ID} and set(t10["config_hash"]) == {b.CONFIG_HASH}
    assert dict(zip(t10["model_role"], t10["model_id"], strict=True)) == {
        "untrained": "tiny-untrained",
        "base": "tiny-base",
    }
    # 2 roles x 2 g conditions x 2 spike defs x 3 rates x 4 layers
    assert len(t10) == 2 * 2 * 2 * 3 * 4
    assert t10["layer"].dtype == "int64" and t10["n_tokens"].dtype == "int64"


def test_t10_rows_follow_the_role_order_then_condition_spike_rate_layer(t10):
    assert list(t10["model_role"].iloc[[0, 47, 48, -1]]) == [
        "untrained",
        "untrained",
        "base",
        "base",
    ]
    first = t10.iloc[:5]
    assert list(first["g_condition"]) == ["g1"] * 5
    assert list(first["target_rate"]) == [0.001] * 4 + [0.002]
    assert list(first["layer"]) == [0, 1, 2, 3, 0]
    assert t10.iloc[24]["g_condition"] == "gstar" and t10.iloc[24]["g"] == b.GSTAR["untrained"]
    keys = ["g_condition", "spike_def_id", "target_rate", "layer"]
    for role in ROLES:
        part = t10[t10["model_role"] == role]
        assert part.equals(part.sort_values(keys, kind="stable"))


def test_t10_keeps_every_value_of_the_role_tables(t10):
    base = t10[(t10["model_role"] == "base") & (t10["g_condition"] == "gstar")]
    one = base[(base["spike_def_id"] == b.SPIKES[1]) & (base["target_rate"] == 0.004)]
    # 0.2 nats above the g = 1 entropy at g*, by construction
    np.testing.assert_allclose(one["mean_entropy_nats"], [6.2, 5.7, 3.2, 2.7])
    np.testing.assert_allclose(one["avalanche_site_fraction"], [0.15, 0.2, 0.25, 0.3])
    assert (one["event_rate"] == 0.004).all() and (one["n_tokens"] == 48).all()


def test_t10_validates_and_survives_parquet(t10, tmp_path):
    lens.T10_SCHEMA.validate(t10)
    path = tmp_path / "t10.parquet"
    t10.to_parquet(path)
    lens.T10_SCHEMA.validate(pd.read_parquet(path))
    lens.T10_SCHEMA.validate(t10.assign(opt_note="x"))  # opt_ extras pass


def test_a_role_table_that_names_another_role_is_refused():
    layers = b.per_role(b.lens_layers)
    layers["base"] = layers["instruct"]
    with pytest.raises(
        ArtifactError, match=r"base.lens_layers holds rows of the roles \['instruct'\]"
    ):
        lens.build_t10(b.provenance(ROLES), b.model_manifests(ROLES), layers)


def _broken(frame: pd.DataFrame, index, column, value) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[index, column] = value
    return frame


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="occupancy"), "occupancy"),
        (lambda f: f.assign(extra=1.0), "extra"),
        (lambda f: _broken(f, 3, "mean_entropy_nats", np.nan), "mean_entropy_nats"),
        (lambda f: _broken(f, 3, "top1_agreement", 1.5), "top1_agreement"),
        (lambda f: _broken(f, 2, "mean_entropy_nats", -0.5), "mean_entropy_nats"),
        (lambda f: f.drop(index=5), "one row per"),  # a layer missing
        (lambda f: _broken(f, 2, "layer", 7), "one row per"),  # layers not 0..L-1
        (lambda f: f[~((f["model_role"] == "base") & (f["target_rate"] == 0.004))], "one row per"),
        (lambda f: _broken(f, 0, "g", 1.1), "g = 1 at g1"),  # a g1 row off g = 1
        (lambda f: _broken(f, 1, "avalanche_site_fraction", 0.9), "avalanche sites"),
        (lambda f: _broken(f, 3, "mean_kl_to_final_nats", 0.1), "KL 0"),  # last layer
        (lambda f: _broken(f, 3, "top1_agreement", 0.9), "top-1 agreement 1"),
        (lambda f: _broken(f, 3, "mean_p_next", np.nan), "p\\(next\\)"),  # one token, not all
        (lambda f: _broken(f, 3, "n_tokens", 47), "n_tokens"),
    ],
)
def test_t10_schema_refuses_what_the_contract_forbids(t10, change, message):
    with pytest.raises(SCHEMA_ERRORS, match=message):
        lens.T10_SCHEMA.validate(change(t10.copy()), lazy=False)


def test_p_next_may_be_nan_for_a_whole_role_without_next_tokens(t10):
    untrained = t10["model_role"] == "untrained"
    frame = t10.copy()
    frame.loc[untrained, ["mean_p_next", "median_rank_next"]] = np.nan
    lens.T10_SCHEMA.validate(frame)


# ---- T11 ----------------------------------------------------------------------------------------


def test_t11_has_the_contract_columns_and_one_row_per_condition(t11):
    assert list(t11.columns) == [*tables.PROVENANCE_COLUMNS, *lens.T11_COLUMNS]
    assert len(t11) == 2 * 2 * 2 * 3
    assert list(t11["model_role"].iloc[[0, 11, 12, 23]]) == ["untrained"] * 2 + ["base"] * 2
    assert t11["defined"].dtype == bool
    lens.T11_SCHEMA.validate(t11)


def test_t11_keeps_the_undefined_rows_with_their_reason(t11):
    undefined = t11[~t11["defined"]]
    assert set(undefined["model_role"]) == {"untrained"}
    assert set(undefined["g_condition"]) == {"g1"} and len(undefined) == 6
    assert set(undefined["reason"]) == {"collapse layer constant"}
    assert undefined[lens.RHO_COLUMNS].isna().all().all()
    assert set(t11.loc[t11["defined"], "reason"]) == {""}
    base = t11[(t11["model_role"] == "base") & (t11["g_condition"] == "g1")].iloc[0]
    # hand: collapse (0·8 + 1·8 + 2·12 + 3·20) / 48, depth (0·6 + 1·7 + 2·11 + 3·14 + 4·10) / 48
    assert base["mean_collapse_layer"] == pytest.approx(92 / 48)
    assert base["mean_cascade_depth"] == pytest.approx(111 / 48)
    assert base["frac_tokens_with_events"] == pytest.approx(42 / 48)
    assert base["delta_rho_vs_null"] == pytest.approx(0.45 - 0.02)


def _first_defined(frame: pd.DataFrame) -> int:
    return int(frame.index[frame["defined"]][0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="reason"), "reason"),
        (lambda f: f.drop(index=f.index[0]), "one row per"),
        (lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True), "one row per"),
        (lambda f: _broken(f, _first_defined(f), "spearman_rho", np.nan), "NaN exactly"),
        (lambda f: _broken(f, _first_defined(f), "rho_ci_low", np.nan), "NaN exactly"),
        (lambda f: _broken(f, 0, "reason", ""), "with a reason"),  # undefined, no reason
        (lambda f: _broken(f, _first_defined(f), "reason", "x"), "with a reason"),
        (lambda f: _broken(f, _first_defined(f), "rho_ci_high", -0.5), "ordered"),
        (lambda f: _broken(f, _first_defined(f), "delta_rho_vs_null", 0.9), "delta"),
        (lambda f: _broken(f, _first_defined(f), "p_value_vs_null", 1e-4), "p >= 1/\\(1\\+P\\)"),
        (lambda f: _broken(f, _first_defined(f), "spearman_rho", 1.5), "spearman_rho"),
        (lambda f: _broken(f, 0, "g", 1.2), "g = 1 at g1"),
        (lambda f: _broken(f, 0, "frac_tokens_with_events", 1.2), "frac_tokens_with_events"),
    ],
)
def test_t11_schema_refuses_what_the_contract_forbids(t11, change, message):
    with pytest.raises(SCHEMA_ERRORS, match=message):
        lens.T11_SCHEMA.validate(change(t11.copy()), lazy=False)


# ---- helpers for the figures and the report -----------------------------------------------------


def test_the_primary_condition_is_the_one_sided_definition_at_the_middle_rate(t11):
    assert lens.primary_condition(t11) == ("SPIKE_ONE_SIDED_POS", 0.002)
    two = t11[t11["target_rate"] != 0.001]  # an even count: the upper middle
    assert lens.primary_condition(two) == ("SPIKE_ONE_SIDED_POS", 0.004)
    other = t11[t11["spike_def_id"] == "SPIKE_TWO_SIDED_ABS"]
    assert lens.primary_condition(other) == ("SPIKE_TWO_SIDED_ABS", 0.002)


def test_untrained_roles_are_the_control_step_zero_or_random_weights():
    roles = ["base", "step0", "random", "later", "last"]
    provenance = {
        "models": {
            "base": {"source": "hub", "training_step": None},
            "step0": {"source": "embedded", "training_step": 0},
            "random": {"source": "embedded"},
            "later": {"source": "embedded", "training_step": 250},
            "last": {"source": "hub", "training_step": "final"},
        }
    }
    assert lens.untrained_roles(roles, provenance) == ["step0", "random"]
    assert lens.untrained_roles(roles, provenance, "base") == ["base", "step0", "random"]
    assert lens.untrained_roles(["a", "b"], None, "b") == ["b"]
    assert lens.untrained_roles(["a", "b"]) == []


def test_the_steepest_entropy_drop_is_the_largest_fall_from_the_layer_before():
    rows = pd.DataFrame({"layer": [3, 0, 2, 1], "mean_entropy_nats": [2.5, 6.0, 3.0, 5.5]})
    layer, drop = lens.steepest_entropy_drop(rows)  # falls 0.5, 2.5, 0.5: layer 2 by 2.5
    assert layer == 2 and drop == pytest.approx(2.5)
    tie = pd.DataFrame({"layer": [0, 1, 2], "mean_entropy_nats": [3.0, 2.0, 1.0]})
    assert lens.steepest_entropy_drop(tie) == (1, pytest.approx(1.0))  # first on ties
    layer, drop = lens.steepest_entropy_drop(tie.iloc[:1])
    assert layer is None and np.isnan(drop)
