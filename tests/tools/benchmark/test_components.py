"""The components benchmark: its Python BFS references agree with the vectorized avalanches."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.lattice import ADJACENCIES, avalanches
from avalanche_kedro.tools.benchmark.components import (
    bfs_avalanches,
    bfs_avalanches_lists,
    run_components,
)

COLUMNS = ["seq_index", "size", "span_tokens", "span_layers", "n_sites", "t_min", "l_min"]


def _rows(table) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in row) for row in table[COLUMNS].itertuples(index=False)}


def test_bfs_by_hand_on_a_two_window_raster():
    A = np.zeros((2, 3, 5), dtype=np.uint16)
    A[0, 0, 0] = 2  # window 0: an L-shape 4-connected: (0,0)-(0,1)-(1,1)
    A[0, 0, 1] = 1
    A[0, 1, 1] = 3
    A[0, 2, 4] = 1  # an isolated site
    A[1, 1, 2] = 1  # window 1: two diagonal sites, joined only under 8-adjacency
    A[1, 2, 3] = 1
    four = sorted(bfs_avalanches(A, "ADJ_4N"))
    assert four == [
        (0, 1, 1, 1, 1, 4, 2),
        (0, 6, 2, 2, 3, 0, 0),
        (1, 1, 1, 1, 1, 2, 1),
        (1, 1, 1, 1, 1, 3, 2),
    ]
    eight = sorted(bfs_avalanches(A, "ADJ_8N"))
    assert (1, 2, 2, 2, 2, 2, 1) in eight and len(eight) == 3
    assert sorted(bfs_avalanches_lists(A, "ADJ_8N")) == eight


@pytest.mark.parametrize("adjacency", ADJACENCIES)
def test_bfs_references_equal_the_vectorized_avalanches(adjacency):
    rng = np.random.default_rng(7)
    A = ((rng.random((6, 5, 40)) < 0.15) * rng.integers(1, 4, (6, 5, 40))).astype(np.uint16)
    ours = _rows(avalanches(A, adjacency))
    assert set(bfs_avalanches(A, adjacency)) == ours
    assert set(bfs_avalanches_lists(A, adjacency)) == ours
    assert len(ours) > 20  # the raster is not trivial


def test_run_components_reports_counts_and_speedups():
    result = run_components(shape=(4, 3, 32), occupancy=0.1, repeats=1)
    assert result["shape_N_L_T"] == [4, 3, 32]
    for key in ("adj_4n", "adj_8n"):
        assert result[f"{key}_avalanches"] > 0
        assert result[f"{key}_speedup"] == pytest.approx(
            result[f"{key}_python_bfs_seconds"] / result[f"{key}_vectorized_seconds"]
        )
    # 8-neighbour components merge 4-neighbour ones: never more of them
    assert result["adj_8n_avalanches"] <= result["adj_4n_avalanches"]
