"""Replication pipeline after every pipeline ran for two roles: the roles are comparable and the
replication table's differences are paired window by window."""

from __future__ import annotations

import pytest

from avalanche_kedro.analysis.bootstrap import (
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
)
from avalanche_kedro.analysis.lattice import pooled_branching


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
