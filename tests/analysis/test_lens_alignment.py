"""The logit lens aligned with activation cascades (issue 14): hand-computed expectations.

Arrays are ``[N, L, T]`` (window, layer, token) or ``[N, T]``. Every expected number is written
out by hand on tiny arrays, or computed by an independent brute force (Python loops over
windows and tokens, ``scipy.stats.spearmanr`` on explicitly concatenated token lists), never by
calling the code under test twice.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from avalanche_kedro.analysis.bootstrap import bootstrap_indices
from avalanche_kedro.analysis.lattice import ADJ_4N, ADJ_8N, RasterError
from avalanche_kedro.analysis.lens_alignment import (
    ALIGNMENT_KEYS,
    CROSSTAB_COLUMNS,
    LAYER_LENS_COLUMNS,
    LAYER_SITE_COLUMNS,
    NULL_SEED_LABEL,
    LensArrayError,
    cascade_depth,
    collapse_cascade_alignment,
    collapse_crosstab,
    collapse_layers,
    layer_lens_summary,
    layer_site_fractions,
)
from avalanche_kedro.core.errors import AvalancheError
from avalanche_kedro.core.seeds import seed_of
from tests.analysis.hand import hand_percentile

KEY = "A|SPIKE_ONE_SIDED_POS|0.00099|1.0|MLP_GLOBAL"
T_, F_ = True, False


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    """No numpy divide / empty-slice warning may escape any function of the module."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def scipy_rho(x, y) -> float:
    """Spearman of two token lists, NaN when one is constant (scipy warns there)."""
    x, y = np.asarray(x).ravel(), np.asarray(y).ravel()
    if np.unique(x).size < 2 or np.unique(y).size < 2:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def brute_alignment(collapse, depth, key, replicates, permutations) -> dict:
    """CI and null by explicit loops: concatenate the drawn windows / permute each window."""
    N, T = collapse.shape
    boot = []
    for row in bootstrap_indices(N, replicates, key):
        xs = [int(collapse[n, t]) for n in row for t in range(T)]
        ys = [int(depth[n, t]) for n in row for t in range(T)]
        boot.append(scipy_rho(xs, ys))
    boot = [b for b in boot if not math.isnan(b)]
    null = []
    for p in range(permutations):
        rng = np.random.default_rng(seed_of("lens_token_shuffle", key, p))
        shuffled = np.empty_like(depth)
        for n in range(N):
            order = rng.permutation(T)
            for t in range(T):
                shuffled[n, t] = depth[n, order[t]]
        null.append(scipy_rho(collapse, shuffled))
    rho = scipy_rho(collapse, depth)
    mean = sum(null) / len(null)
    extreme = sum(1 for r in null if abs(r - mean) >= abs(rho - mean) - 1e-12)
    return {
        "spearman_rho": rho,
        "rho_ci_low": hand_percentile(boot, 2.5),
        "rho_ci_high": hand_percentile(boot, 97.5),
        "null_rho_mean": mean,
        "null_rho_low": hand_percentile(null, 2.5),
        "null_rho_high": hand_percentile(null, 97.5),
        "delta_rho_vs_null": rho - mean,
        "p_value_vs_null": (1 + extreme) / (1 + permutations),
    }


# --------------------------------------------------------------------------------------------
# collapse layers


def test_collapse_layer_is_where_agreement_becomes_permanent():
    # [N=2, L=3, T=4]; agree[n][l][t]
    agree = np.array(
        [
            [[T_, F_, T_, F_], [T_, T_, F_, F_], [T_, T_, T_, T_]],
            [[T_, F_, T_, F_], [F_, T_, T_, F_], [F_, F_, T_, T_]],
        ]
    )
    # window 0: t0 agrees everywhere -> 0; t1 from layer 1 -> 1; t2 flickers (T, F, T) -> 2;
    # t3 only the last layer -> 2. window 1: t0 (T, F, F) and t1 (F, T, F) end in
    # disagreement -> L = 3; t2 agrees everywhere -> 0; t3 (F, F, T) -> 2.
    expected = [[0, 1, 2, 2], [3, 3, 0, 2]]
    got = collapse_layers(agree)
    assert got.dtype == np.int64 and got.shape == (2, 4)
    assert got.tolist() == expected
    assert collapse_layers(agree.astype(np.uint8)).tolist() == expected


def test_collapse_layers_match_a_loop_on_random_flicker():
    rng = np.random.default_rng(0)
    agree = rng.random((3, 6, 7)) < 0.6
    got = collapse_layers(agree)
    for n in range(3):
        for t in range(7):
            first = 6
            for layer in range(5, -1, -1):
                if not agree[n, layer, t]:
                    break
                first = layer
            assert got[n, t] == first


@pytest.mark.parametrize(
    "bad",
    [
        np.ones((2, 3), dtype=bool),  # 2-D
        np.ones((2, 3, 4), dtype=np.float32),  # float
        np.full((2, 3, 4), 2, dtype=np.int64),  # integers other than 0/1
        np.ones((2, 0, 4), dtype=bool),  # no layer
    ],
)
def test_collapse_layers_reject_bad_input_with_a_value_error(bad):
    with pytest.raises(ValueError, match="agrees_final") as info:
        collapse_layers(bad)
    assert isinstance(info.value, AvalancheError)  # the project's problem + fix message
    assert "How to fix" in str(info.value)


# --------------------------------------------------------------------------------------------
# cascade depth


def test_cascade_depth_counts_the_layers_spanned_gaps_included():
    A = np.zeros((2, 3, 4), dtype=np.uint16)
    A[0, 0, 0] = 2  # t0: layer 0 only -> 1
    A[0, 0, 1] = A[0, 2, 1] = 1  # t1: layers 0 and 2, gap at 1 -> 3
    A[0, 1, 3] = A[0, 2, 3] = 5  # t3: layers 1, 2 -> 2
    A[1, :, 0] = 1  # t0: every layer -> 3
    A[1, 2, 1] = 1  # t1: layer 2 -> 1
    A[1, 1, 3] = 7  # t3: layer 1 -> 1
    expected = [[1, 3, 0, 2], [3, 1, 0, 1]]
    got = cascade_depth(A)
    assert got.dtype == np.int64
    assert got.tolist() == expected
    assert cascade_depth(A > 0).tolist() == expected


def test_cascade_depth_rejects_a_bad_raster():
    with pytest.raises(RasterError):
        cascade_depth(np.ones((3, 4), dtype=np.uint16))
    with pytest.raises(RasterError):
        cascade_depth(np.ones((1, 3, 4), dtype=np.float32))


# --------------------------------------------------------------------------------------------
# per-layer event fractions


def _site_raster() -> np.ndarray:
    A = np.zeros((2, 3, 4), dtype=np.uint16)
    A[0, 0, 0] = 2  # isolated under both adjacencies
    A[0, 2, 2], A[0, 2, 3] = 1, 3  # a 2-site component along tokens in layer 2
    A[1, 0, 2], A[1, 1, 3] = 1, 2  # touch only diagonally: 2 isolated events under ADJ_4N
    A[1, 1, 0], A[1, 2, 0] = 1, 4  # a 2-site component along depth at token 0
    return A


def test_layer_site_fractions_by_hand_under_adj_4n():
    table = layer_site_fractions(_site_raster(), d_ff=10)
    assert list(table.columns) == LAYER_SITE_COLUMNS
    assert table["layer"].tolist() == [0, 1, 2]
    assert table["n_sites"].tolist() == [8, 8, 8]  # N * T
    # layer 0: 2 + 1; layer 1: 2 + 1; layer 2: 1 + 3 + 4
    assert table["events"].tolist() == [3, 3, 8]
    assert table["event_rate"].tolist() == pytest.approx([3 / 80, 3 / 80, 8 / 80])
    assert table["occupancy"].tolist() == pytest.approx([2 / 8, 2 / 8, 3 / 8])
    # layer 0: the isolated event and the diagonal one -> 0; layer 1: only the lower site of
    # the vertical pair (the diagonal one is alone) -> 1/8; layer 2: the horizontal pair and
    # the upper site of the vertical pair -> 3/8
    assert table["avalanche_site_fraction"].tolist() == pytest.approx([0, 1 / 8, 3 / 8])
    for column in ("layer", "n_sites", "events"):
        assert table[column].dtype == np.int64


def test_layer_site_fractions_diagonal_pair_joins_under_adj_8n():
    table = layer_site_fractions(_site_raster(), d_ff=10, adjacency=ADJ_8N)
    assert table["avalanche_site_fraction"].tolist() == pytest.approx([1 / 8, 2 / 8, 3 / 8])
    assert table["events"].tolist() == [3, 3, 8]  # events do not depend on the adjacency


def test_layer_site_fractions_reject_bad_arguments():
    with pytest.raises(ValueError, match="d_ff"):
        layer_site_fractions(_site_raster(), d_ff=0)
    with pytest.raises(RasterError, match="adjacency"):
        layer_site_fractions(_site_raster(), d_ff=10, adjacency="ADJ_6N")
    assert layer_site_fractions(_site_raster(), 10, ADJ_4N).shape == (3, 6)


# --------------------------------------------------------------------------------------------
# per-layer lens summary


def _lens_arrays():
    nan = np.nan
    entropy = np.array(
        [[[1, 2, 3], [0.5, 0.5, 0.5]], [[4, 5, 6], [1.5, 1.5, 1.5]]], dtype=np.float32
    )
    kl = np.array([[[0.1, 0.2, 0.3], [0, 0, 0]], [[0.4, 0.5, 0.6], [0, 0, 0]]], dtype=np.float32)
    p_next = np.array(
        [[[0.1, 0.2, nan], [0.5, 0.7, nan]], [[0.3, 0.4, nan], [0.9, 0.1, nan]]],
        dtype=np.float32,
    )
    rank = np.array([[[5, 1, -1], [1, 1, -1]], [[2, 8, -1], [3, 1, -1]]], dtype=np.int32)
    agree = np.array([[[T_, F_, F_], [T_, T_, T_]], [[T_, T_, F_], [T_, T_, T_]]])
    return entropy, kl, p_next, rank, agree


def test_layer_lens_summary_by_hand():
    table = layer_lens_summary(*_lens_arrays())  # N=2, L=2, T=3
    assert list(table.columns) == LAYER_LENS_COLUMNS
    assert table["layer"].tolist() == [0, 1]
    assert table["n_tokens"].tolist() == [6, 6]
    # layer 0: (1+2+3+4+5+6)/6 = 3.5; layer 1: (3*0.5 + 3*1.5)/6 = 1.0
    assert table["mean_entropy_nats"].tolist() == pytest.approx([3.5, 1.0], rel=1e-6)
    assert table["mean_kl_to_final_nats"].tolist() == pytest.approx([0.35, 0.0], rel=1e-6)
    assert table["top1_agreement"].tolist() == pytest.approx([3 / 6, 1.0])
    # the last position's NaN left out: (0.1+0.2+0.3+0.4)/4 and (0.5+0.7+0.9+0.1)/4
    assert table["mean_p_next"].tolist() == pytest.approx([0.25, 0.55], rel=1e-6)
    # ranks >= 1 only: median(5, 1, 2, 8) = 3.5; median(1, 1, 3, 1) = 1
    assert table["median_rank_next"].tolist() == [3.5, 1.0]
    for column in LAYER_LENS_COLUMNS[2:]:
        assert table[column].dtype == np.float64


def test_layer_lens_summary_without_a_next_token_is_nan_without_warnings():
    entropy, kl, p_next, rank, agree = _lens_arrays()
    table = layer_lens_summary(
        entropy[:, :, 2:], kl[:, :, 2:], p_next[:, :, 2:], rank[:, :, 2:], agree[:, :, 2:]
    )
    assert table["n_tokens"].tolist() == [2, 2]
    assert table["mean_p_next"].isna().all() and table["median_rank_next"].isna().all()


def test_layer_lens_summary_rejects_mismatched_or_mistyped_arrays():
    entropy, kl, p_next, rank, agree = _lens_arrays()
    with pytest.raises(ValueError, match="kl_to_final has shape"):
        layer_lens_summary(entropy, kl[:, :1], p_next, rank, agree)
    with pytest.raises(ValueError, match="rank_next"):
        layer_lens_summary(entropy, kl, p_next, rank.astype(np.float32), agree)
    with pytest.raises(ValueError, match="entropy"):
        layer_lens_summary(entropy[0], kl, p_next, rank, agree)


# --------------------------------------------------------------------------------------------
# collapse vs cascade depth


def test_alignment_by_hand_on_one_window():
    # collapse (0, 1, 2, 2) -> ranks (1, 2, 3.5, 3.5); depth (0, 1, 1, 3) -> (1, 2.5, 2.5, 4).
    # Centred on 2.5: x = (-1.5, -0.5, 1, 1), y = (-1.5, 0, 0, 1.5);
    # sum xy = 2.25 + 1.5 = 3.75, sum x^2 = 4.5, sum y^2 = 4.5 -> rho = 3.75 / 4.5 = 5/6.
    collapse = np.array([[0, 1, 2, 2]])
    depth = np.array([[0, 1, 1, 3]])
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=20, null_permutations=30)
    assert list(out) == ALIGNMENT_KEYS
    assert out["n_windows"] == 1 and out["n_tokens"] == 4
    assert out["mean_collapse_layer"] == 1.25
    assert out["mean_cascade_depth"] == 1.25
    assert out["frac_tokens_with_events"] == 0.75
    assert out["spearman_rho"] == pytest.approx(5 / 6, abs=1e-12)
    # one window: every bootstrap replicate is the window itself
    assert out["rho_ci_low"] == pytest.approx(5 / 6, abs=1e-12)
    assert out["rho_ci_high"] == pytest.approx(5 / 6, abs=1e-12)
    assert out["n_replicates"] == 20 and out["n_null_permutations"] == 30
    assert out["defined"] is True and out["reason"] == ""
    brute = brute_alignment(collapse, depth, KEY, 20, 30)
    for key in ("null_rho_mean", "null_rho_low", "null_rho_high", "p_value_vs_null"):
        assert out[key] == pytest.approx(brute[key], abs=1e-12), key


def test_alignment_matches_scipy_and_loops_on_random_data_with_ties():
    rng = np.random.default_rng(7)
    depth = np.where(rng.random((6, 20)) < 0.5, 0, rng.integers(1, 4, size=(6, 20)))
    collapse = np.clip(depth + rng.integers(-1, 3, size=(6, 20)), 0, 4)
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=40, null_permutations=40)
    brute = brute_alignment(collapse, depth, KEY, 40, 40)
    assert out["spearman_rho"] == pytest.approx(
        stats.spearmanr(collapse.ravel(), depth.ravel()).statistic, abs=1e-12
    )
    for key, value in brute.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    assert out["rho_ci_low"] < out["spearman_rho"] < out["rho_ci_high"]


def test_alignment_is_deterministic_and_seeded_by_the_condition():
    rng = np.random.default_rng(3)
    depth = rng.integers(0, 4, size=(5, 12))
    collapse = rng.integers(0, 6, size=(5, 12))
    first = collapse_cascade_alignment(collapse, depth, KEY, 30, 30)
    assert collapse_cascade_alignment(collapse.copy(), depth.copy(), KEY, 30, 30) == first
    other = collapse_cascade_alignment(collapse, depth, KEY + "x", 30, 30)
    assert other["spearman_rho"] == first["spearman_rho"]
    assert other["null_rho_mean"] != first["null_rho_mean"]
    assert (
        other["rho_ci_low"] != first["rho_ci_low"] or other["rho_ci_high"] != first["rho_ci_high"]
    )
    assert NULL_SEED_LABEL == "lens_token_shuffle"


def test_perfectly_aligned_tokens_give_rho_one_and_the_smallest_p_value():
    rng = np.random.default_rng(11)
    depth = rng.integers(0, 5, size=(4, 16))
    collapse = depth + 2  # a strictly increasing function of the depth at every token
    P = 49
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=25, null_permutations=P)
    assert out["spearman_rho"] == pytest.approx(1.0, abs=1e-12)
    assert out["rho_ci_low"] == pytest.approx(1.0, abs=1e-12)
    assert out["rho_ci_high"] == pytest.approx(1.0, abs=1e-12)
    assert out["p_value_vs_null"] == 1 / (1 + P)  # no shuffle is as extreme
    assert out["null_rho_high"] < 0.6
    assert out["delta_rho_vs_null"] > 0.4


def test_a_window_level_effect_survives_the_token_shuffle():
    """The point of the within-window null: a correlation carried only by differences between
    windows (e.g. windows of one kind of text have both more events and later collapse) is not
    an alignment of single tokens. Shuffling depths among the tokens of a window keeps every
    window's collapse layers and depth multiset, so such a rho stays in the null
    (delta = 0, p = 1); only token-level alignment gives delta > 0."""
    T = 6
    # depth and collapse constant within each window, both increasing across windows: rho = 1
    depth = np.repeat(np.array([[0], [1], [2], [3]]), T, axis=1)
    collapse = np.repeat(np.array([[1], [2], [4], [6]]), T, axis=1)
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=20, null_permutations=25)
    assert out["spearman_rho"] == pytest.approx(1.0, abs=1e-12)
    assert out["null_rho_mean"] == pytest.approx(out["spearman_rho"], abs=1e-12)
    assert out["null_rho_low"] == pytest.approx(out["spearman_rho"], abs=1e-12)
    assert out["null_rho_high"] == pytest.approx(out["spearman_rho"], abs=1e-12)
    assert out["delta_rho_vs_null"] == pytest.approx(0.0, abs=1e-12)
    assert out["p_value_vs_null"] == 1.0
    # collapse constant within windows, depths varying within windows around a window mean
    # that grows with the collapse layer: rho > 0 but the shuffle keeps it exactly
    depth = np.array([[0, 1, 0, 0, 2, 0], [1, 0, 2, 1, 0, 1], [2, 3, 1, 2, 3, 2]])
    collapse = np.repeat(np.array([[1], [3], [5]]), T, axis=1)
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=20, null_permutations=25)
    assert out["spearman_rho"] > 0.5
    assert out["spearman_rho"] == pytest.approx(scipy_rho(collapse, depth), abs=1e-12)
    assert out["delta_rho_vs_null"] == pytest.approx(0.0, abs=1e-12)
    assert out["p_value_vs_null"] == 1.0


def test_undefined_bootstrap_replicates_are_left_out_of_the_ci():
    # window 0 alone has a constant collapse, window 1 alone constant collapse and depth:
    # replicates (0, 0) and (1, 1) have no rho; every mixed one is collapse (0, 0, 2, 2) with
    # depth (0, 1, 1, 1): x = (-1, -1, 1, 1), y = (-1.5, .5, .5, .5), sum xy = 2,
    # sum x^2 = 4, sum y^2 = 3 -> rho = 2 / sqrt(12) = 1 / sqrt(3)
    collapse = np.array([[0, 0], [2, 2]])
    depth = np.array([[0, 1], [1, 1]])
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=30, null_permutations=10)
    assert out["spearman_rho"] == pytest.approx(1 / math.sqrt(3), abs=1e-12)
    assert out["rho_ci_low"] == pytest.approx(1 / math.sqrt(3), abs=1e-12)
    assert out["rho_ci_high"] == pytest.approx(1 / math.sqrt(3), abs=1e-12)


@pytest.mark.parametrize(
    ("collapse", "depth", "reason"),
    [
        ([[0, 1, 2], [1, 2, 0]], [[0, 0, 0], [0, 0, 0]], "no token has an event"),
        ([[0, 1, 2], [1, 2, 0]], [[2, 2, 2], [2, 2, 2]], "cascade depth constant"),
        ([[3, 3, 3], [3, 3, 3]], [[0, 1, 2], [0, 0, 1]], "collapse layer constant"),
    ],
)
def test_undefined_cases_are_nan_with_a_reason(collapse, depth, reason):
    out = collapse_cascade_alignment(np.array(collapse), np.array(depth), KEY, 10, 10)
    assert list(out) == ALIGNMENT_KEYS
    assert out["defined"] is False
    assert reason in out["reason"]
    for key in ALIGNMENT_KEYS[5:13]:
        assert math.isnan(out[key]), key
    assert out["n_windows"] == 2 and out["n_tokens"] == 6
    assert out["mean_cascade_depth"] == pytest.approx(np.mean(depth))
    assert out["mean_collapse_layer"] == pytest.approx(np.mean(collapse))


def test_both_reasons_are_given_when_both_variables_are_constant():
    out = collapse_cascade_alignment(np.full((2, 3), 4), np.zeros((2, 3), int), KEY, 5, 5)
    assert out["reason"] == (
        "no token has an event; collapse layer constant (layer 4 at every token)"
    )
    assert out["frac_tokens_with_events"] == 0.0


def test_zero_replicates_or_permutations_skip_that_part():
    collapse, depth = np.array([[0, 1, 2, 2]]), np.array([[0, 1, 1, 3]])
    out = collapse_cascade_alignment(collapse, depth, KEY, replicates=0, null_permutations=0)
    assert out["spearman_rho"] == pytest.approx(5 / 6)
    for key in ALIGNMENT_KEYS[6:13]:
        assert math.isnan(out[key]), key
    assert out["defined"] is True


@pytest.mark.parametrize(
    ("collapse", "depth", "replicates", "match"),
    [
        (np.zeros((2, 3), int), np.zeros((2, 4), int), 5, "shape"),
        (np.zeros((2, 3), float), np.zeros((2, 3), int), 5, "integer"),
        (np.zeros((2, 3, 1), int), np.zeros((2, 3, 1), int), 5, "2 axes"),
        (np.full((2, 3), -1), np.zeros((2, 3), int), 5, "negative"),
        (np.zeros((2, 3), int), np.zeros((2, 3), int), -1, "replicates"),
        (np.zeros((2, 3), int), np.zeros((2, 3), int), True, "replicates"),
        (np.zeros((0, 3), int), np.zeros((0, 3), int), 5, "no token"),
    ],
)
def test_alignment_rejects_bad_input(collapse, depth, replicates, match):
    with pytest.raises(LensArrayError, match=match):
        collapse_cascade_alignment(collapse, depth, KEY, replicates, 5)


# --------------------------------------------------------------------------------------------
# crosstab


def test_collapse_crosstab_by_hand():
    collapse = np.array([[0, 1, 2, 2], [3, 3, 0, 2]])
    depth = np.array([[1, 3, 0, 0], [3, 1, 1, 0]])
    # pairs (0,1) (1,3) (2,0) (2,0) (3,3) (3,1) (0,1) (2,0)
    table = collapse_crosstab(collapse, depth)
    assert list(table.columns) == CROSSTAB_COLUMNS
    assert table.to_dict("records") == [
        {"collapse_layer": 0, "cascade_depth": 1, "n_tokens": 2},
        {"collapse_layer": 1, "cascade_depth": 3, "n_tokens": 1},
        {"collapse_layer": 2, "cascade_depth": 0, "n_tokens": 3},
        {"collapse_layer": 3, "cascade_depth": 1, "n_tokens": 1},
        {"collapse_layer": 3, "cascade_depth": 3, "n_tokens": 1},
    ]
    assert all(table[c].dtype == np.int64 for c in CROSSTAB_COLUMNS)


def test_collapse_crosstab_of_no_token_is_empty():
    table = collapse_crosstab(np.zeros((0, 4), int), np.zeros((0, 4), int))
    assert list(table.columns) == CROSSTAB_COLUMNS and len(table) == 0


def test_the_per_token_quantities_chain_into_the_crosstab():
    agree = np.array([[[F_, T_], [T_, T_], [T_, F_], [T_, T_]]])  # [1, 4, 2]: collapse 1, 3
    A = np.zeros((1, 4, 2), dtype=np.uint16)
    A[0, 1, 0] = A[0, 3, 0] = 1  # token 0 spans layers 1..3 -> 3
    table = collapse_crosstab(collapse_layers(agree), cascade_depth(A))
    assert table.values.tolist() == [[1, 3, 1], [3, 0, 1]]


def test_kept_replicates_share_one_bootstrap_across_models_for_a_paired_difference():
    """Two models on the same windows with the same bootstrap key resample the same windows:
    the replicate differences are a paired bootstrap of rho_a - rho_b."""
    rng = np.random.default_rng(7)
    collapse = rng.integers(0, 4, size=(6, 10))
    depth_a = np.clip(collapse + rng.integers(-1, 2, size=(6, 10)), 0, None)
    depth_b = rng.integers(0, 4, size=(6, 10))
    a = collapse_cascade_alignment(
        collapse, depth_a, "A|x|1.0", 50, 0, bootstrap_key="shared", keep_replicates=True
    )
    b = collapse_cascade_alignment(
        collapse, depth_b, "A|y|1.2", 50, 0, bootstrap_key="shared", keep_replicates=True
    )
    assert a["rho_replicates"].shape == (50,)
    # replicate 0 of each is rho on the same resampled windows, recomputed here with scipy
    windows = bootstrap_indices(6, 50, "shared")[0]
    for result, depth in ((a, depth_a), (b, depth_b)):
        expected = stats.spearmanr(collapse[windows].ravel(), depth[windows].ravel()).statistic
        assert result["rho_replicates"][0] == pytest.approx(expected, abs=1e-12)
    # without the key the condition key seeds the bootstrap: different windows
    c = collapse_cascade_alignment(collapse, depth_a, "A|x|1.0", 50, 0, keep_replicates=True)
    assert not np.allclose(c["rho_replicates"], a["rho_replicates"])
    assert a["spearman_rho"] == c["spearman_rho"]
    undefined = collapse_cascade_alignment(
        collapse, np.zeros((6, 10), int), "k", 5, 0, keep_replicates=True
    )
    assert np.isnan(undefined["rho_replicates"]).all() and undefined["rho_replicates"].shape == (5,)


# --------------------------------------------------------------------------------------------
# axis safety: the optional n_layers check

RASTER_FUNCTIONS = {
    "cascade_depth": lambda A, **kw: cascade_depth(A, **kw),
    "layer_site_fractions": lambda A, **kw: layer_site_fractions(A, 10, **kw),
}


@pytest.mark.parametrize("name", list(RASTER_FUNCTIONS))
def test_swapped_raster_is_refused_when_n_layers_is_given(name):
    swapped = _site_raster().transpose(0, 2, 1)  # [N, T, L] = (2, 4, 3)
    with pytest.raises(RasterError) as info:
        RASTER_FUNCTIONS[name](swapped, n_layers=3)
    message = str(info.value)
    assert message.startswith("A has shape (2, 4, 3) but n_layers=3")
    assert "[N, T, L]" in message and "A.transpose(0, 2, 1)" in message


@pytest.mark.parametrize("name", list(RASTER_FUNCTIONS))
def test_correct_raster_with_n_layers_gives_the_unchecked_result(name):
    checked = RASTER_FUNCTIONS[name](_site_raster(), n_layers=3)
    unchecked = RASTER_FUNCTIONS[name](_site_raster())
    if isinstance(checked, np.ndarray):
        assert checked.tolist() == unchecked.tolist() == [[1, 0, 1, 1], [2, 0, 1, 1]]
    else:
        assert checked.equals(unchecked)


def test_without_n_layers_a_swapped_raster_gives_a_different_depth():
    """The old behaviour: accepted silently, tokens read as layers ([N, L] instead of [N, T])."""
    depth = cascade_depth(_site_raster().transpose(0, 2, 1))
    assert depth.shape == (2, 3)  # [N, L]: the tokens were taken for layers
    # the token span of each layer's events: window 0 layer 2 has tokens 2 and 3 -> 2; window
    # 1 layer 1 has tokens 0 and 3 -> 4 (against true depths of at most 2)
    assert depth.tolist() == [[1, 0, 2], [1, 4, 1]]


def test_swapped_lens_arrays_are_refused_when_n_layers_is_given():
    entropy, kl, p_next, rank, agree = _lens_arrays()  # [N=2, L=2, T=3]
    swap = [a.transpose(0, 2, 1) for a in (entropy, kl, p_next, rank, agree)]
    with pytest.raises(LensArrayError) as info:
        layer_lens_summary(*swap, n_layers=2)
    assert str(info.value).startswith("entropy has shape (2, 3, 2) but n_layers=2")
    assert "entropy.transpose(0, 2, 1)" in str(info.value)
    with pytest.raises(LensArrayError, match=r"agrees_final\.transpose\(0, 2, 1\)"):
        collapse_layers(agree.transpose(0, 2, 1), n_layers=2)
    # the right axis order passes and gives the unchecked result
    assert layer_lens_summary(entropy, kl, p_next, rank, agree, n_layers=2).equals(
        layer_lens_summary(entropy, kl, p_next, rank, agree)
    )
    assert collapse_layers(agree, n_layers=2).tolist() == [[0, 1, 1], [0, 0, 1]]
