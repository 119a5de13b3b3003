"""The token x layer lattice (SPEC §6): avalanches, branching, susceptibility, bad input.

Every expectation is computed by hand or by an independent brute force written with plain
Python loops (flood fill, pair counting), never by calling the code under test twice.
Rasters are ``[N, L, T]``: ``A[n, l, t]`` is window n, layer l, token t.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avalanche_kedro.analysis.lattice import (
    ADJ_4N,
    ADJ_8N,
    AVALANCHE_COLUMNS,
    MAX_COMPONENTS_PER_WINDOW,
    ComponentExplosionError,
    RasterError,
    avalanches,
    branching,
    branching_counts,
    check_raster,
    label_components,
    pooled_branching,
    susceptibility,
    susceptibility_of_totals,
    window_totals,
)
from avalanche_kedro.core.errors import AvalancheError

# --------------------------------------------------------------------------------------------
# independent brute force


def _neighbours(adjacency: str) -> list[tuple[int, int]]:
    """(dl, dt) offsets of a site's neighbours."""
    if adjacency == ADJ_4N:
        return [(-1, 0), (1, 0), (0, -1), (0, 1)]
    return [(dl, dt) for dl in (-1, 0, 1) for dt in (-1, 0, 1) if (dl, dt) != (0, 0)]


def brute_components(A: np.ndarray, adjacency: str) -> list[tuple[int, list[tuple[int, int]]]]:
    """Flood fill per window: ``[(n, sorted [(l, t), ...]), ...]`` in scan order of first site."""
    N, L, T = A.shape
    out = []
    for n in range(N):
        seen = set()
        for layer in range(L):
            for t in range(T):
                if A[n, layer, t] == 0 or (layer, t) in seen:
                    continue
                stack, comp = [(layer, t)], []
                seen.add((layer, t))
                while stack:
                    cl, ct = stack.pop()
                    comp.append((cl, ct))
                    for dl, dt in _neighbours(adjacency):
                        nl, nt = cl + dl, ct + dt
                        if (
                            0 <= nl < L
                            and 0 <= nt < T
                            and A[n, nl, nt] > 0
                            and (nl, nt) not in seen
                        ):
                            seen.add((nl, nt))
                            stack.append((nl, nt))
                out.append((n, sorted(comp)))
    return out


def brute_table(A: np.ndarray, adjacency: str) -> list[dict]:
    rows = []
    for n, comp in brute_components(A, adjacency):
        ls = [layer for layer, _ in comp]
        ts = [t for _, t in comp]
        rows.append(
            {
                "seq_index": n,
                "size": int(sum(int(A[n, layer, t]) for layer, t in comp)),
                "span_tokens": max(ts) - min(ts) + 1,
                "span_layers": max(ls) - min(ls) + 1,
                "n_sites": len(comp),
                "t_min": min(ts),
                "t_max": max(ts),
                "l_min": min(ls),
                "l_max": max(ls),
            }
        )
    return rows


def brute_branching_counts(X: np.ndarray) -> list[tuple[int, int, int]]:
    """(n_time, n_depth, den) per window with explicit loops over (n, l, t)."""
    N, L, T = X.shape
    out = []
    for n in range(N):
        n_time = n_depth = den = 0
        for layer in range(L):
            for t in range(T):
                x = 1 if X[n, layer, t] > 0 else 0
                den += x
                if t + 1 < T:
                    n_time += x * (1 if X[n, layer, t + 1] > 0 else 0)
                if layer + 1 < L:
                    n_depth += x * (1 if X[n, layer + 1, t] > 0 else 0)
        out.append((n_time, n_depth, den))
    return out


def raster(N: int, L: int, T: int, sites, dtype=np.uint16) -> np.ndarray:
    """``sites`` is an iterable of (n, l, t) or (n, l, t, count)."""
    A = np.zeros((N, L, T), dtype=dtype)
    for site in sites:
        n, layer, t, *count = site
        A[n, layer, t] = count[0] if count else 1
    return A


def records(table: pd.DataFrame) -> list[dict]:
    return [{k: int(v) for k, v in row.items()} for row in table.to_dict("records")]


# --------------------------------------------------------------------------------------------
# SPEC toy raster


def test_spec_toy_raster_one_component_with_every_column():
    # T=4, L=3, occupied (t=1,l=1), (t=2,l=1), (t=2,l=2); counts > 1 so size != n_sites
    A = raster(1, 3, 4, [(0, 1, 1, 2), (0, 1, 2, 3), (0, 2, 2, 1)])
    for adjacency in (ADJ_4N, ADJ_8N):
        table = avalanches(A, adjacency=adjacency, seq_ids=[42])
        assert list(table.columns) == [
            "seq_index",
            "seq_id",
            "size",
            "span_tokens",
            "span_layers",
            "n_sites",
            "t_min",
            "t_max",
            "l_min",
            "l_max",
        ]
        assert records(table) == [
            {
                "seq_index": 0,
                "seq_id": 42,
                "size": 6,
                "span_tokens": 2,
                "span_layers": 2,
                "n_sites": 3,
                "t_min": 1,
                "t_max": 2,
                "l_min": 1,
                "l_max": 2,
            }
        ]


def test_spec_toy_raster_branching_is_one_third():
    A = raster(1, 3, 4, [(0, 1, 1, 2), (0, 1, 2, 3), (0, 2, 2, 1)])
    counts = branching_counts(A > 0)
    assert counts.to_dict("records") == [{"n_time": 1, "n_depth": 1, "den": 3}]
    b = branching(A > 0)
    assert b["b_time"] == pytest.approx(1 / 3, abs=1e-15)
    assert b["b_depth"] == pytest.approx(1 / 3, abs=1e-15)
    assert b["b_tot"] == pytest.approx(2 / 3, abs=1e-15)
    assert b["empty"] is False
    # branching is on occupancy: counts > 1 change nothing
    assert branching(A) == b


def test_avalanches_without_seq_ids_has_documented_columns():
    A = raster(2, 2, 3, [(1, 0, 0, 5)])
    table = avalanches(A)
    assert list(table.columns) == AVALANCHE_COLUMNS
    assert records(table) == [
        dict(
            seq_index=1,
            size=5,
            span_tokens=1,
            span_layers=1,
            n_sites=1,
            t_min=0,
            t_max=0,
            l_min=0,
            l_max=0,
        )
    ]


def test_seq_id_maps_window_rows():
    A = raster(3, 1, 2, [(0, 0, 0), (2, 0, 1), (2, 0, 0)])
    table = avalanches(A, seq_ids=[10, 11, 12])
    assert table["seq_index"].tolist() == [0, 2]
    assert table["seq_id"].tolist() == [10, 12]


# --------------------------------------------------------------------------------------------
# 4N vs 8N, boundaries, windows, scan order


def test_diagonal_neighbours_join_in_8n_only():
    for sites in ([(0, 0, 0), (0, 1, 1)], [(0, 0, 1), (0, 1, 0)]):  # main and anti-diagonal
        A = raster(1, 2, 2, sites)
        four = avalanches(A, ADJ_4N)
        eight = avalanches(A, ADJ_8N)
        assert len(four) == 2
        assert four["n_sites"].tolist() == [1, 1]
        assert len(eight) == 1
        assert records(eight)[0] == dict(
            seq_index=0,
            size=2,
            span_tokens=2,
            span_layers=2,
            n_sites=2,
            t_min=0,
            t_max=1,
            l_min=0,
            l_max=1,
        )


def test_checkerboard_is_all_singletons_in_4n_and_one_component_in_8n():
    L, T = 3, 4
    A = np.zeros((1, L, T), dtype=np.uint16)
    for layer in range(L):
        for t in range(T):
            if (layer + t) % 2 == 0:
                A[0, layer, t] = 1
    four = avalanches(A, ADJ_4N)
    assert len(four) == 6
    assert (four["size"] == 1).all() and (four["span_tokens"] == 1).all()
    assert (four["span_layers"] == 1).all()
    eight = avalanches(A, ADJ_8N)
    assert records(eight) == [
        dict(
            seq_index=0,
            size=6,
            span_tokens=4,
            span_layers=3,
            n_sites=6,
            t_min=0,
            t_max=3,
            l_min=0,
            l_max=2,
        )
    ]
    _, n4 = label_components(A, ADJ_4N)
    _, n8 = label_components(A, ADJ_8N)
    assert (n4, n8) == (6, 1)


def test_l_shape_is_one_component_in_both():
    # layer 0..2 at token 0, then tokens 1..2 at layer 2
    A = raster(1, 3, 4, [(0, 0, 0), (0, 1, 0), (0, 2, 0, 4), (0, 2, 1), (0, 2, 2)])
    expected = dict(
        seq_index=0,
        size=8,
        span_tokens=3,
        span_layers=3,
        n_sites=5,
        t_min=0,
        t_max=2,
        l_min=0,
        l_max=2,
    )
    assert records(avalanches(A, ADJ_4N)) == [expected]
    assert records(avalanches(A, ADJ_8N)) == [expected]


def test_l_shape_with_diagonal_tail():
    # an L plus one site diagonal to its corner: 2 components in 4N, 1 in 8N
    A = raster(1, 4, 4, [(0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 2, 2)])
    assert avalanches(A, ADJ_4N)["n_sites"].tolist() == [3, 1]
    assert avalanches(A, ADJ_8N)["n_sites"].tolist() == [4]


def test_boundary_sites_and_no_wrap_around():
    L, T = 3, 5
    # tokens 0 and T-1 in the same layer: two components (no wrap along tokens)
    A = raster(1, L, T, [(0, 1, 0), (0, 1, T - 1)])
    for adjacency in (ADJ_4N, ADJ_8N):
        table = avalanches(A, adjacency)
        assert table["t_min"].tolist() == [0, T - 1]
        assert table["t_max"].tolist() == [0, T - 1]
        assert table["span_tokens"].tolist() == [1, 1]
    # layers 0 and L-1 at the same token: two components (no wrap along depth)
    A = raster(1, L, T, [(0, 0, 2), (0, L - 1, 2)])
    for adjacency in (ADJ_4N, ADJ_8N):
        table = avalanches(A, adjacency)
        assert table["l_min"].tolist() == [0, L - 1]
    # opposite corners: not diagonal neighbours in 8N either
    A = raster(1, L, T, [(0, 0, 0), (0, L - 1, T - 1)])
    assert len(avalanches(A, ADJ_8N)) == 2
    # a full boundary ring (every edge site) is one component whose box is the lattice
    A = np.zeros((1, L, T), dtype=np.uint16)
    A[0, 0, :] = A[0, L - 1, :] = A[0, :, 0] = A[0, :, T - 1] = 1
    table = avalanches(A, ADJ_4N)
    assert records(table) == [
        dict(
            seq_index=0,
            size=2 * T + 2 * (L - 2),
            span_tokens=T,
            span_layers=L,
            n_sites=2 * T + 2 * (L - 2),
            t_min=0,
            t_max=T - 1,
            l_min=0,
            l_max=L - 1,
        )
    ]


def test_windows_never_connect():
    # the same pattern in consecutive windows stays separate (4N and 8N)
    pattern = [(1, 1, 2), (1, 2, 2), (2, 1, 3)]  # (l, t, count): one component of size 7
    A = raster(3, 3, 4, [(n, *site) for n in range(3) for site in pattern])
    for adjacency in (ADJ_4N, ADJ_8N):
        table = avalanches(A, adjacency)
        assert table["seq_index"].tolist() == [0, 1, 2]
        assert table["size"].tolist() == [7, 7, 7]
        labels, n = label_components(A, adjacency)
        assert n == 3
        assert [set(np.unique(labels[w])) - {0} for w in range(3)] == [{1}, {2}, {3}]
    # a full raster: one component per window, never one for all
    A = np.ones((4, 2, 3), dtype=np.uint16)
    assert avalanches(A, ADJ_8N)["seq_index"].tolist() == [0, 1, 2, 3]


def test_rows_are_in_scan_order_window_layer_token():
    # scan order is window-major, then layer, then token (of each component's first site)
    A = raster(
        2,
        3,
        6,
        [
            (0, 2, 0),  # component first seen at (l=2, t=0)
            (0, 0, 5),  # component first seen at (l=0, t=5): comes first (layer-major)
            (0, 1, 3),  # (l=1, t=3)
            (1, 0, 0),  # window 1 always after window 0
        ],
    )
    table = avalanches(A, ADJ_4N)
    assert list(zip(table["seq_index"], table["l_min"], table["t_min"], strict=True)) == [
        (0, 0, 5),
        (0, 1, 3),
        (0, 2, 0),
        (1, 0, 0),
    ]
    labels, _ = label_components(A, ADJ_4N)
    assert labels[0, 0, 5] == 1 and labels[0, 1, 3] == 2 and labels[0, 2, 0] == 3
    assert labels[1, 0, 0] == 4
    assert labels.dtype == np.int32


def test_scan_order_after_merging_branches():
    # a "U": (0,0) and (0,4) merge through layer 1; a singleton at (0,2) sits between them
    A = raster(1, 2, 5, [(0, 0, 0), (0, 0, 4), (0, 0, 2)] + [(0, 1, t) for t in range(5)])
    four = avalanches(A, ADJ_4N)
    # in 4N the singleton (0, 2) touches (1, 2): all one component
    assert four["n_sites"].tolist() == [8]
    A[0, 1, 2] = 0
    # removing (1, 2) splits layer 1 into two halves
    four = avalanches(A, ADJ_4N)
    # components: {(0,0),(1,0),(1,1)}, {(0,2)}, {(0,4),(1,3),(1,4)}: first sites (0,0),(0,2),(0,4)
    assert list(zip(four["l_min"], four["t_min"], four["n_sites"], strict=True)) == [
        (0, 0, 3),
        (0, 2, 1),
        (0, 3, 3),
    ]
    eight = avalanches(A, ADJ_8N)
    assert eight["n_sites"].tolist() == [7]


# --------------------------------------------------------------------------------------------
# empty rasters


def test_empty_raster():
    A = np.zeros((3, 2, 5), dtype=np.uint16)
    for seq_ids, columns in ((None, AVALANCHE_COLUMNS), ([4, 5, 6], None)):
        table = avalanches(A, seq_ids=seq_ids)
        assert isinstance(table, pd.DataFrame)
        assert len(table) == 0
        if columns is None:
            columns = ["seq_index", "seq_id"] + AVALANCHE_COLUMNS[1:]
        assert list(table.columns) == columns
        assert all(dtype == np.int64 for dtype in table.dtypes)
    b = branching(A > 0)
    assert np.isnan(b["b_time"]) and np.isnan(b["b_depth"]) and np.isnan(b["b_tot"])
    assert b["empty"] is True
    assert susceptibility(A) == 0.0
    assert window_totals(A).tolist() == [0, 0, 0]
    labels, n = label_components(A)
    assert n == 0 and not labels.any()


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_zero_size_axes_are_empty_not_errors(shape):
    A = np.zeros(shape, dtype=np.uint16)
    table = avalanches(A)
    assert len(table) == 0 and list(table.columns) == AVALANCHE_COLUMNS
    labels, n = label_components(A)
    assert n == 0 and labels.shape == shape
    assert branching(A)["empty"] is True


def test_pooled_branching_nan_when_den_sums_to_zero():
    b = pooled_branching([0, 0], [0, 0], [0, 0])
    assert np.isnan(b["b_time"]) and np.isnan(b["b_depth"]) and np.isnan(b["b_tot"])
    assert b["empty"] is True
    b = pooled_branching([], [], [])
    assert b["empty"] is True and np.isnan(b["b_tot"])


# --------------------------------------------------------------------------------------------
# branching


def test_branching_counts_equal_explicit_loops():
    rng = np.random.default_rng(3)
    A = (rng.random((5, 4, 7)) < 0.45).astype(np.uint16) * rng.integers(1, 4, (5, 4, 7)).astype(
        np.uint16
    )
    got = branching_counts(A > 0)
    assert list(
        zip(got["n_time"], got["n_depth"], got["den"], strict=True)
    ) == brute_branching_counts(A)
    assert got.dtypes.tolist() == [np.int64] * 3


def test_pooled_branching_is_ratio_of_sums_not_mean_of_ratios():
    # window 0: two sites adjacent in time -> 1/2 ; window 1: four in a row -> 3/4
    A = raster(2, 2, 5, [(0, 0, 0), (0, 0, 1)] + [(1, 1, t) for t in range(4)])
    counts = branching_counts(A > 0)
    assert counts["n_time"].tolist() == [1, 3]
    assert counts["den"].tolist() == [2, 4]
    b = branching(A > 0)
    assert b["b_time"] == pytest.approx(4 / 6)
    assert b["b_time"] != pytest.approx((1 / 2 + 3 / 4) / 2)  # mean of ratios = 0.625
    assert b["b_depth"] == 0.0
    assert b["b_tot"] == pytest.approx(4 / 6)
    assert pooled_branching([1, 3], [0, 2], [2, 4]) == {
        "b_time": 4 / 6,
        "b_depth": 2 / 6,
        "b_tot": 4 / 6 + 2 / 6,
        "empty": False,
    }


def test_boundary_sites_count_in_den():
    L, T = 3, 4
    # corner and edge sites with no forward neighbours: den counts them, numerators are 0
    A = raster(1, L, T, [(0, L - 1, T - 1), (0, 0, T - 1), (0, L - 1, 0), (0, 1, 0)])
    counts = branching_counts(A > 0).iloc[0].to_dict()
    # only (l=1, t=0) -> (l=2, t=0) is a depth pair
    assert counts == {"n_time": 0, "n_depth": 1, "den": 4}
    b = branching(A > 0)
    assert b["b_time"] == 0.0 and b["b_depth"] == 0.25 and b["empty"] is False
    # t=0 and t=T-1 in one layer are not a time pair (no wrap), nor l=0 / l=L-1
    A = raster(1, L, T, [(0, 0, 0), (0, 0, T - 1), (0, L - 1, 0)])
    assert branching_counts(A).iloc[0].to_dict() == {"n_time": 0, "n_depth": 0, "den": 3}


def test_branching_pairs_do_not_cross_windows():
    # window 0 layer L-1 and window 1 layer 0 would be a "depth pair" if windows were joined
    A = raster(2, 2, 3, [(0, 1, 0), (1, 0, 0)])
    assert branching_counts(A).to_dict("list") == {
        "n_time": [0, 0],
        "n_depth": [0, 0],
        "den": [1, 1],
    }


# --------------------------------------------------------------------------------------------
# susceptibility


def test_susceptibility_hand_example():
    # Y = [2, 4]: var (ddof=0) = 1, mean = 3 -> chi = 1 / (3 + 1e-8)
    A = raster(2, 2, 3, [(0, 0, 0, 2), (1, 0, 1, 3), (1, 1, 2, 1)])
    assert window_totals(A).tolist() == [2, 4]
    assert susceptibility(A) == pytest.approx(1 / (3 + 1e-8), rel=1e-14)
    assert susceptibility(A) == pytest.approx(1 / 3, rel=1e-8)
    assert susceptibility_of_totals([2, 4]) == pytest.approx(1 / 3, rel=1e-8)
    # Y = [1, 1, 4]: mean 2, var (1 + 1 + 4) / 3 = 2 -> chi = 1
    assert susceptibility_of_totals([1, 1, 4]) == pytest.approx(1.0, rel=1e-8)
    assert susceptibility(np.zeros((4, 2, 2), dtype=np.uint16)) == 0.0
    assert np.isnan(susceptibility_of_totals([]))


# --------------------------------------------------------------------------------------------
# properties (hypothesis)

rasters = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 12)).flatmap(
    lambda shape: arrays(np.uint16, shape, elements=st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5]))
)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(A=rasters)
def test_property_pooled_branching_equals_double_loop(A):
    N, L, T = A.shape
    num_t = num_d = den = 0
    for n in range(N):
        for layer in range(L):
            for t in range(T):
                x = int(A[n, layer, t] > 0)
                den += x
                if t + 1 < T:
                    num_t += x * int(A[n, layer, t + 1] > 0)
                if layer + 1 < L:
                    num_d += x * int(A[n, layer + 1, t] > 0)
    b = branching(A > 0)
    if den == 0:
        assert b["empty"] is True and np.isnan(b["b_tot"])
    else:
        assert b["empty"] is False
        assert b["b_time"] == pytest.approx(num_t / den, rel=1e-12)
        assert b["b_depth"] == pytest.approx(num_d / den, rel=1e-12)
        assert b["b_tot"] == pytest.approx((num_t + num_d) / den, rel=1e-12)


@PROPERTY
@given(A=rasters)
def test_property_avalanches_match_flood_fill(A):
    n_comp = {}
    for adjacency in (ADJ_4N, ADJ_8N):
        table = avalanches(A, adjacency)
        assert int(table["size"].sum()) == int(A.sum(dtype=np.int64))
        assert int(table["n_sites"].sum()) == int((A > 0).sum())
        assert records(table) == brute_table(A, adjacency)
        n_comp[adjacency] = len(table)
    assert n_comp[ADJ_8N] <= n_comp[ADJ_4N]


@PROPERTY
@given(A=rasters)
def test_property_labels_never_span_two_windows(A):
    for adjacency in (ADJ_4N, ADJ_8N):
        labels, n = label_components(A, adjacency)
        assert ((labels > 0) == (A > 0)).all()
        windows_of = {}
        for w in range(A.shape[0]):
            for k in np.unique(labels[w]):
                if k:
                    assert k not in windows_of, f"label {k} in windows {windows_of[k]} and {w}"
                    windows_of[k] = w
        assert sorted(windows_of) == list(range(1, n + 1))
        # the same sites as the flood fill, numbered in scan order
        expected = brute_components(A, adjacency)
        got = []
        for k in range(1, n + 1):
            w, ls, ts = np.nonzero(labels == k)
            got.append((int(w[0]), sorted(zip(ls.tolist(), ts.tolist(), strict=True))))
        assert got == expected


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("shape", [(3, 4), (2, 1, 3, 4), (5,)])
def test_wrong_rank_is_a_raster_error_naming_shape(shape):
    A = np.zeros(shape, dtype=np.uint16)
    for call in (
        lambda: avalanches(A),
        lambda: label_components(A),
        lambda: branching(A),
        lambda: branching_counts(A),
        lambda: susceptibility(A),
    ):
        with pytest.raises(RasterError) as info:
            call()
        message = str(info.value)
        assert "[N, L, T]" in message
        assert str(shape) in message
        assert "How to fix" in message
    assert issubclass(RasterError, AvalancheError)


def test_float_dtype_is_a_raster_error_naming_dtype():
    A = np.ones((1, 2, 3), dtype=np.float32)
    with pytest.raises(RasterError, match="float32"):
        avalanches(A)
    with pytest.raises(RasterError, match="dtype"):
        branching(A.astype(np.float64))
    with pytest.raises(RasterError, match="float64"):
        check_raster(A.astype(np.float64), "A_null")


def test_negative_counts_are_a_raster_error():
    A = np.zeros((1, 2, 3), dtype=np.int32)
    A[0, 1, 2] = -3
    with pytest.raises(RasterError, match="negative") as info:
        avalanches(A)
    assert "-3" in str(info.value)
    with pytest.raises(RasterError, match="negative"):
        susceptibility(A)


def test_non_contiguous_views_match_flood_fill():
    rng = np.random.default_rng(5)
    base = rng.integers(0, 3, size=(9, 4, 3)).astype(np.uint16)  # [T, L, N]
    A = np.transpose(base, (2, 1, 0))  # a non-contiguous [N, L, T] view
    assert not A.flags.c_contiguous
    for adjacency in (ADJ_4N, ADJ_8N):
        assert records(avalanches(A, adjacency)) == brute_table(np.ascontiguousarray(A), adjacency)
    counts = branching_counts(A)
    assert list(
        zip(counts["n_time"], counts["n_depth"], counts["den"], strict=True)
    ) == brute_branching_counts(A)


def test_valid_dtypes_are_accepted():
    base = raster(1, 2, 3, [(0, 0, 0, 2), (0, 0, 1, 1)])
    for dtype in (np.bool_, np.uint8, np.uint16, np.int32, np.int64):
        A = base.astype(dtype)
        assert check_raster(A) is not None
        assert len(avalanches(A)) == 1
    # the error names the array that was passed
    with pytest.raises(RasterError, match="Raster X"):
        branching_counts(np.zeros((2, 2)))


def test_seq_ids_length_mismatch_names_the_lengths():
    A = raster(3, 2, 2, [(0, 0, 0)])
    with pytest.raises(RasterError) as info:
        avalanches(A, seq_ids=[1, 2])
    assert "2 entries" in str(info.value) and "3 windows" in str(info.value)


def test_unknown_adjacency():
    A = raster(1, 2, 2, [(0, 0, 0)])
    with pytest.raises(RasterError, match="ADJ_6N"):
        avalanches(A, adjacency="ADJ_6N")
    with pytest.raises(RasterError, match="ADJ_4N"):
        label_components(A, adjacency="4N")


def test_component_explosion():
    T = 40001
    A = np.zeros((2, 2, T), dtype=np.uint16)
    A[1, 0, 0::2] = 1  # window 1: a checkerboard of isolated sites
    A[1, 1, 1::2] = 1
    start = time.perf_counter()
    with pytest.raises(ComponentExplosionError) as info:
        avalanches(A, ADJ_4N)
    message = str(info.value)
    assert "Window 1" in message
    assert str(20001 + 20000) in message
    assert "20000" in message
    assert MAX_COMPONENTS_PER_WINDOW == 20000
    # in 8N the checkerboard is one component: no explosion
    table = avalanches(A, ADJ_8N)
    assert records(table) == [
        dict(
            seq_index=1,
            size=T,
            span_tokens=T,
            span_layers=2,
            n_sites=T,
            t_min=0,
            t_max=T - 1,
            l_min=0,
            l_max=1,
        )
    ]
    assert time.perf_counter() - start < 10


def test_component_limit_is_strictly_more_than_20000():
    A = np.zeros((1, 1, 2 * MAX_COMPONENTS_PER_WINDOW - 1), dtype=np.uint16)
    A[0, 0, 0::2] = 1  # exactly 20000 isolated sites: allowed
    table = avalanches(A)
    assert len(table) == MAX_COMPONENTS_PER_WINDOW
    A = np.zeros((1, 1, 2 * MAX_COMPONENTS_PER_WINDOW + 1), dtype=np.uint16)
    A[0, 0, 0::2] = 1  # 20001: a hard failure
    with pytest.raises(ComponentExplosionError, match="20001"):
        avalanches(A)


# --------------------------------------------------------------------------------------------
# axis safety: the optional n_layers check

#: window 0 of [N=2, L=3, T=5]: layer 0 occupied at tokens 0, 1, 2 and layer 1 at token 2, so
#: n_time = 2 (0,0)-(0,1), (0,1)-(0,2); n_depth = 1 (0,2)-(1,2); den = 4. Window 1 is empty.
AXIS_SITES = [(0, 0, 0, 2), (0, 0, 1), (0, 0, 2, 3), (0, 1, 2)]

LATTICE_FUNCTIONS = {
    "check_raster": lambda A, **kw: check_raster(A, **kw),
    "label_components": lambda A, **kw: label_components(A, **kw),
    "avalanches": lambda A, **kw: avalanches(A, ADJ_4N, seq_ids=[7, 8], **kw),
    "branching_counts": lambda A, **kw: branching_counts(A, **kw),
    "branching": lambda A, **kw: branching(A, **kw),
    "window_totals": lambda A, **kw: window_totals(A, **kw),
    "susceptibility": lambda A, **kw: susceptibility(A, **kw),
}


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("name", list(LATTICE_FUNCTIONS))
def test_swapped_raster_is_refused_when_n_layers_is_given(name):
    A = raster(2, 3, 5, AXIS_SITES)
    swapped = A.transpose(0, 2, 1)  # [N, T, L] = (2, 5, 3)
    with pytest.raises(RasterError) as info:
        LATTICE_FUNCTIONS[name](swapped, n_layers=3)
    message = str(info.value)
    assert "(2, 5, 3)" in message  # the shape that was passed
    assert "n_layers=3" in message  # the expected layer count
    assert "[N, T, L]" in message
    assert "transpose(0, 2, 1)" in message and "np.swapaxes" in message
    expected_name = "X" if name.startswith("branching") else "A"
    assert message.startswith(f"{expected_name} has shape")


@pytest.mark.parametrize("name", list(LATTICE_FUNCTIONS))
def test_correct_shape_with_n_layers_gives_the_unchecked_result(name):
    A = raster(2, 3, 5, AXIS_SITES)
    assert _same(LATTICE_FUNCTIONS[name](A, n_layers=3), LATTICE_FUNCTIONS[name](A))


@pytest.mark.parametrize("name", list(LATTICE_FUNCTIONS))
def test_layer_count_matching_no_axis_is_refused_without_a_transpose_hint(name):
    A = raster(2, 3, 5, AXIS_SITES)
    with pytest.raises(RasterError) as info:
        LATTICE_FUNCTIONS[name](A, n_layers=4)
    message = str(info.value)
    assert "(2, 3, 5)" in message and "n_layers=4" in message
    assert "transpose" not in message and "[N, T, L]" not in message


def test_without_n_layers_a_swapped_raster_still_exchanges_b_time_and_b_depth():
    """The old behaviour is kept when n_layers is not given; the hand values show why the
    check matters."""
    A = raster(2, 3, 5, AXIS_SITES)
    right = branching(A)
    assert (right["b_time"], right["b_depth"]) == (2 / 4, 1 / 4)
    wrong = branching(A.transpose(0, 2, 1))  # accepted silently, axes exchanged
    assert (wrong["b_time"], wrong["b_depth"]) == (1 / 4, 2 / 4)
    assert branching(A, n_layers=None) == right


@pytest.mark.parametrize("bad", [-1, 2.0, True, "3"])
def test_n_layers_must_be_a_non_negative_integer(bad):
    with pytest.raises(RasterError, match="n_layers must be a non-negative integer"):
        branching(raster(2, 3, 5, AXIS_SITES), n_layers=bad)
    # numpy integers are accepted
    assert branching(raster(2, 3, 5, AXIS_SITES), n_layers=np.int64(3))["b_tot"] == 0.75


def test_float_counts_are_refused_naming_the_argument_and_the_fix():
    A = raster(2, 3, 5, AXIS_SITES).astype(np.float64)
    with pytest.raises(RasterError) as info:
        avalanches(A, n_layers=3)
    message = str(info.value)
    assert "Raster A must hold integer event counts" in message and "float64" in message
    assert "A.astype(numpy.uint16)" in message
    with pytest.raises(RasterError, match=r"Raster X .*float32(.|\n)*X\.astype\(numpy\.uint16\)"):
        branching(A.astype(np.float32))
