"""Cascades pipeline on rasters written by the events pipeline (SequentialRunner): avalanches,
branching, susceptibility, crackling and tail fits against the analysis API."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.lattice import avalanches, branching, branching_counts, susceptibility

from .conftest import N_WINDOWS


def test_avalanche_table_matches_the_lattice_api(outputs):
    rasters, conditions, table = (
        outputs["event_rasters_A"],
        outputs["conditions_A"],
        outputs["avalanches_A"],
    )
    assert set(table["adjacency"]) == {"ADJ_4N", "ADJ_8N"}
    for row in conditions.itertuples():
        counts = np.asarray(rasters.counts(row.cond_id))
        for adjacency in ("ADJ_4N", "ADJ_8N"):
            part = table[(table["cond_id"] == row.cond_id) & (table["adjacency"] == adjacency)]
            expected = avalanches(counts, adjacency, seq_ids=rasters.seq_id)
            assert len(part) == len(expected)
            np.testing.assert_array_equal(part["size"], expected["size"])
            assert part["size"].sum() == counts.sum()
            assert set(part["seq_id"]) <= set(rasters.seq_id.tolist())
        n4 = ((table["cond_id"] == row.cond_id) & (table["adjacency"] == "ADJ_4N")).sum()
        n8 = ((table["cond_id"] == row.cond_id) & (table["adjacency"] == "ADJ_8N")).sum()
        assert n8 <= n4  # diagonals can only merge components


def test_summary_branching_and_chi(outputs):
    rasters, summary = outputs["event_rasters_A"], outputs["cascade_summary_A"]
    assert len(summary) == len(outputs["conditions_A"])
    for row in summary.itertuples():
        counts = np.asarray(rasters.counts(row.cond_id))
        pooled = branching(counts > 0)
        assert row.b_time == pytest.approx(pooled["b_time"], abs=0)
        assert row.b_depth == pytest.approx(pooled["b_depth"], abs=0)
        assert row.b_tot == pytest.approx(pooled["b_time"] + pooled["b_depth"], abs=1e-15)
        assert row.chi == pytest.approx(susceptibility(counts), rel=1e-12)
        assert row.n_sequences == N_WINDOWS
        assert not row.branching_empty


def test_per_window_counts_cover_every_condition(outputs):
    windows = outputs["branching_per_window_A"]
    rasters = outputs["event_rasters_A"]
    assert len(windows) == len(outputs["conditions_A"]) * N_WINDOWS
    first = windows[windows["cond_id"] == 0]
    expected = branching_counts(np.asarray(rasters.counts(0)) > 0)
    np.testing.assert_array_equal(first["n_time"], expected["n_time"])
    np.testing.assert_array_equal(first["events"], np.asarray(rasters.counts(0)).sum(axis=(1, 2)))


def test_crackling_fits_have_a_gate_for_every_condition(outputs):
    fits = outputs["crackling_fits_A"]
    assert len(fits) == len(outputs["conditions_A"]) * 2
    assert fits["pass"].dtype == bool
    gated = fits[fits["pass"]]
    assert (gated["crackling_ci_width"] <= 0.5).all()
    assert (gated["n_duration_points"] >= 8).all()
    failed = fits[~fits["pass"]]
    assert (failed["reason"].str.len() > 0).all()


def test_tail_fits_for_real_conditions(outputs):
    tails = outputs["tail_fits_A"]
    real = outputs["conditions_A"].query("null_id == 'NULL_NONE'")
    assert sorted(tails["cond_id"]) == sorted(real["cond_id"])
    available = tails[tails["available"]]
    assert (available["n_tail"] >= 100).all()
    assert (
        available[["p_powerlaw_vs_lognormal", "p_powerlaw_vs_exponential"]]
        .apply(lambda p: p.between(0, 1))
        .all()
        .all()
    )
    assert (tails.loc[~tails["available"], "reason"].str.len() > 0).all()


def _one_row_rasters():
    from avalanche_kedro.measure.rasters import EventRasters

    A = np.zeros((2, 3, 2, 4), dtype=np.uint16)
    return EventRasters(
        A=A,
        X=(A > 0).astype(np.uint8),
        cond_id=np.array([0, 1], dtype=np.int32),
        seq_id=np.arange(3, dtype=np.int32),
    )


@pytest.mark.parametrize("node", ["find_avalanches", "measure_branching"])
def test_rasters_of_another_condition_table_stop_the_node(node):
    import pandas as pd

    from avalanche_kedro.core.errors import ArtifactError
    from avalanche_kedro.pipelines.cascades import nodes

    conditions = pd.DataFrame({"cond_id": [0, 1, 2]})  # a later run planned one more
    args = (_one_row_rasters(), conditions) + (({},) if node == "find_avalanches" else ())
    with pytest.raises(ArtifactError, match=r"event_rasters_A holds 2 .* conditions_A has 3"):
        getattr(nodes, node)(*args)
