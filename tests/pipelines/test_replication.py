"""Replication pipeline after every pipeline ran for two roles: the roles are comparable, the
replication table's differences are paired window by window, and with a control role (here
`instruct`) the T08 differences are paired on the same windows and agree with T01."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.bootstrap import (
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
    susceptibility_replicates,
)
from avalanche_kedro.analysis.lattice import pooled_branching
from avalanche_kedro.analysis.scaling import crackling_slopes
from avalanche_kedro.pipelines import replication
from avalanche_kedro.pipelines.replication.pipeline import control_role_of
from tests.pipelines.conftest import CONTROL_ROLE


@pytest.fixture(scope="module")
def loaded(two_role_run):
    catalog, root, params = two_role_run
    return catalog, params


def test_roles_saw_the_same_windows_and_tokenizer(loaded):
    catalog, _ = loaded
    checks = catalog.load("replication_checks")
    assert checks["roles"] == ["base", "instruct"]
    base = catalog.load("base.slice_manifest")
    instruct = catalog.load("instruct.slice_manifest")
    assert [s["sha256"] for s in base["slices"]] == [s["sha256"] for s in instruct["slices"]]
    assert (
        catalog.load("base.model_manifest")["content_sha256"]
        != catalog.load("instruct.model_manifest")["content_sha256"]
    )


def test_replication_differences_are_paired_by_window(loaded):
    catalog, params = loaded
    table = catalog.load("replication_A")
    assert len(table) == 2 * 2  # spike defs x target rates, instruct vs base
    row = table.iloc[0]
    per_role = {}
    for role in ("base", "instruct"):
        gstar = catalog.load(f"{role}.gstar_A")
        g = gstar[
            (gstar["spike_def_id"] == row.spike_def_id) & (gstar["target_rate"] == row.target_rate)
        ]["g_star"].item()
        conditions = catalog.load(f"{role}.conditions_A")
        cond = conditions[
            (conditions["null_id"] == "NULL_NONE")
            & (conditions["intervention_id"] == "MLP_GLOBAL")
            & (conditions["spike_def_id"] == row.spike_def_id)
            & (conditions["target_rate"] == row.target_rate)
            & (conditions["g"] == g)
        ]["cond_id"].item()
        windows = catalog.load(f"{role}.branching_per_window_A")
        nulls = catalog.load(f"{role}.null_branching_per_window_A")
        real = windows[windows["cond_id"] == cond].sort_values("seq_id")
        null = nulls[
            (nulls["cond_id"] == cond) & (nulls["null_id"] == "NULL_RASTER_WITHIN_LAYER_TIME_PERM")
        ].sort_values("seq_id")
        per_role[role] = (g, real, null)
    assert (
        row.g_star_reference == per_role["base"][0]
        and row.g_star_compared == per_role["instruct"][0]
    )
    n = len(per_role["base"][1])
    key = f"replication|A|{row.spike_def_id}|{float(row.target_rate)!r}"
    weights = resample_weights(
        bootstrap_indices(n, params["controls"]["bootstrap_replicates"], key), n
    )

    def delta(real, null):
        point = (
            pooled_branching(real.n_time, real.n_depth, real.den)["b_tot"]
            - pooled_branching(null.n_time, null.n_depth, null.den)["b_tot"]
        )
        reps = pooled_ratio(weights, real.n_time + real.n_depth, real.den) - pooled_ratio(
            weights, null.n_time + null.n_depth, null.den
        )
        return point, reps

    base_point, base_reps = delta(*per_role["base"][1:])
    other_point, other_reps = delta(*per_role["instruct"][1:])
    assert row.diff_delta_b_tot == pytest.approx(other_point - base_point, abs=1e-15)
    low, high = percentile_interval(other_reps - base_reps)
    assert (row.diff_delta_b_tot_ci_low, row.diff_delta_b_tot_ci_high) == pytest.approx(
        (low, high), abs=1e-15
    )


# ---- trained vs untrained control (T08) ---------------------------------------------------------


def test_the_control_node_exists_only_when_the_control_is_one_of_two_or_more_roles():
    with_control = replication.create_pipeline(["base", "untrained"], control_role="untrained")
    assert "replication.compare_with_control" in {n.name for n in with_control.nodes}
    assert "trained_vs_untrained_A" in with_control.outputs()
    assert {"base.avalanches_A", "untrained.avalanches_A", "params:cascades"} <= (
        with_control.inputs()
    )
    for roles, control in ((["base", "instruct"], "untrained"), (["base", "instruct"], None)):
        names = {n.name for n in replication.create_pipeline(roles, control_role=control).nodes}
        assert names == {"replication.check_roles_comparable", "replication.compare_roles"}
    assert not replication.create_pipeline(["untrained"], control_role="untrained").nodes
    # without an explicit role the active configuration's replication.control_role is read
    assert control_role_of(["base", "instruct", "untrained"]) == "untrained"
    assert control_role_of(["base", "instruct"]) is None
    assert control_role_of(["untrained"]) is None


@pytest.fixture(scope="module")
def with_control(control_run):
    catalog, root, params = control_run
    return catalog, params


def _condition(catalog, role, spike, rate, g):
    conditions = catalog.load(f"{role}.conditions_A")
    cond = conditions[
        (conditions["null_id"] == "NULL_NONE")
        & (conditions["intervention_id"] == "MLP_GLOBAL")
        & (conditions["spike_def_id"] == spike)
        & (conditions["target_rate"] == rate)
        & (conditions["g"] == g)
    ]["cond_id"].item()
    windows = catalog.load(f"{role}.branching_per_window_A")
    nulls = catalog.load(f"{role}.null_branching_per_window_A")
    avalanches = catalog.load(f"{role}.avalanches_A")
    real = windows[windows["cond_id"] == cond].sort_values("seq_id")
    null = nulls[
        (nulls["cond_id"] == cond) & (nulls["null_id"] == "NULL_RASTER_WITHIN_LAYER_TIME_PERM")
    ].sort_values("seq_id")
    at = avalanches[(avalanches["cond_id"] == cond) & (avalanches["adjacency"] == "ADJ_4N")]
    return real, null, at


def test_control_table_is_paired_and_agrees_with_t01(with_control):
    catalog, params = with_control
    table = catalog.load("trained_vs_untrained_A")
    assert len(table) == 2 * 2  # spike defs x target rates, base vs instruct
    assert set(table["compared_role"]) == {"base"} and set(table["control_role"]) == {CONTROL_ROLE}
    t01 = catalog.load("T01_SUMMARY")
    replicates = params["controls"]["bootstrap_replicates"]
    for row in table.itertuples():
        key = f"trained_vs_untrained|A|{row.spike_def_id}|{float(row.target_rate)!r}"
        for suffix, gains in (
            ("", {"base": row.g_star_compared, CONTROL_ROLE: row.g_star_control}),
            ("_g1", {"base": 1.0, CONTROL_ROLE: 1.0}),
        ):
            sides = {}
            for role, g in gains.items():
                real, null, at = _condition(catalog, role, row.spike_def_id, row.target_rate, g)
                n = len(real)
                indices = bootstrap_indices(n, replicates, key)
                weights = resample_weights(indices, n)
                positions = np.searchsorted(real["seq_id"].to_numpy(), at["seq_id"].to_numpy())
                slopes = crackling_slopes(
                    positions, at["span_tokens"].to_numpy(), at["size"].to_numpy(), n, indices
                )
                b_reps = pooled_ratio(weights, real.n_time + real.n_depth, real.den)
                sides[role] = {
                    "b_tot": b_reps,
                    "delta_b_tot": b_reps
                    - pooled_ratio(weights, null.n_time + null.n_depth, null.den),
                    "chi": susceptibility_replicates(indices, real.events),
                }
                # the point values are T01's (same rasters, same formulas, same 4N fit)
                t01_row = t01[
                    (t01["model_role"] == role)
                    & (t01["spike_def_id"] == row.spike_def_id)
                    & (t01["target_rate"] == row.target_rate)
                    & (t01["g"] == g)
                ].iloc[0]
                side = "compared" if role == "base" else "control"
                values = row._asdict()
                for stat in ("b_tot", "delta_b_tot", "chi", "crackling_gamma"):
                    assert values[f"{stat}_{side}{suffix}"] == pytest.approx(
                        t01_row[stat], rel=1e-12, nan_ok=True
                    ), (stat, side, suffix)
                assert slopes.gamma == pytest.approx(t01_row["crackling_gamma"], nan_ok=True)
            values = row._asdict()
            for stat in ("b_tot", "delta_b_tot", "chi"):
                low, high = percentile_interval(sides["base"][stat] - sides[CONTROL_ROLE][stat])
                assert (
                    values[f"diff_{stat}_ci_low{suffix}"],
                    values[f"diff_{stat}_ci_high{suffix}"],
                ) == pytest.approx((low, high), abs=1e-12)
            if values[f"opt_crackling_reason{suffix}"]:
                assert np.isnan(values[f"diff_crackling_gamma{suffix}"])
            else:
                assert np.isfinite(values[f"diff_crackling_gamma_ci_low{suffix}"])
        # dataset B perplexity at g = 1, role - control, paired on the same B windows
        ppl = {
            role: catalog.load(f"{role}.generalization_B")
            .query("g_condition == 'g1'")["ppl"]
            .iloc[0]
            for role in ("base", CONTROL_ROLE)
        }
        assert row.opt_ppl_B_g1_diff == pytest.approx(ppl["base"] - ppl[CONTROL_ROLE], rel=1e-9)
        assert row.opt_ppl_B_g1_diff_ci_low <= row.opt_ppl_B_g1_diff_ci_high
