"""Marginal-preserving raster nulls (SPEC §7): seed rule, determinism, marginals, bad input.

The seed rule is checked against its literal SPEC formula, row by row, with numpy's generator
called directly here; marginals are checked by comparing sorted rows.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avalanche_kedro.analysis.lattice import RasterError
from avalanche_kedro.analysis.nulls import (
    NULL_PERM,
    NULL_SHIFT,
    MarginalViolationError,
    assert_marginals_preserved,
    null_raster,
    preserved_marginals,
    within_layer_circular_shift,
    within_layer_permutation,
)
from avalanche_kedro.core.errors import AvalancheError
from avalanche_kedro.core.seeds import seed_of

KEY = "A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL"


def random_counts(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 6, size=shape).astype(np.uint16)
    A[rng.random(shape) < 0.5] = 0
    return A


def expected_perm(A, key, seq_ids):
    out = np.empty_like(A)
    N, L, T = A.shape
    for n in range(N):
        for layer in range(L):
            order = np.random.default_rng(seed_of("perm", key, seq_ids[n], layer)).permutation(T)
            out[n, layer] = A[n, layer, order]
    return out


def expected_shift(A, key, seq_ids):
    out = np.empty_like(A)
    N, L, T = A.shape
    for n in range(N):
        for layer in range(L):
            s = np.random.default_rng(seed_of("shift", key, seq_ids[n], layer)).integers(1, T)
            out[n, layer] = np.roll(A[n, layer], s)
    return out


# --------------------------------------------------------------------------------------------
# seed rule


def test_permutation_follows_the_seed_rule_exactly():
    A = random_counts((4, 3, 9), seed=1)
    seq_ids = [17, 3, 250, 8]
    got = within_layer_permutation(A, KEY, seq_ids)
    assert got.dtype == A.dtype and got.shape == A.shape
    np.testing.assert_array_equal(got, expected_perm(A, KEY, seq_ids))
    np.testing.assert_array_equal(null_raster(A, NULL_PERM, KEY, seq_ids), got)


def test_permutation_rule_on_distinct_values_reveals_the_order():
    # rows of distinct values: the null row *is* the permutation applied to arange
    T = 10
    A = np.tile(np.arange(T, dtype=np.uint16), (2, 3, 1))
    got = within_layer_permutation(A, KEY, [5, 6])
    for n, seq_id in enumerate([5, 6]):
        for layer in range(3):
            perm = np.random.default_rng(seed_of("perm", KEY, seq_id, layer)).permutation(T)
            assert got[n, layer].tolist() == perm.tolist()


def test_circular_shift_follows_the_seed_rule_exactly():
    A = random_counts((4, 3, 9), seed=2)
    seq_ids = [17, 3, 250, 8]
    got = within_layer_circular_shift(A, KEY, seq_ids)
    assert got.dtype == A.dtype
    np.testing.assert_array_equal(got, expected_shift(A, KEY, seq_ids))
    np.testing.assert_array_equal(null_raster(A, NULL_SHIFT, KEY, seq_ids), got)


def test_circular_shift_amount_is_in_1_to_T_minus_1():
    # with distinct values, null[0] = A[-s] tells the shift s; it is never 0 (or T)
    for T in (2, 3, 5, 12):
        L, N = 4, 30
        A = np.tile(np.arange(T, dtype=np.uint16), (N, L, 1))
        seq_ids = list(range(100, 100 + N))
        got = within_layer_circular_shift(A, KEY, seq_ids)
        shifts = (-got[:, :, 0].astype(int)) % T  # np.roll(a, s)[0] == a[-s mod T]
        assert shifts.min() >= 1 and shifts.max() <= T - 1
        for n in range(N):
            for layer in range(L):
                s = np.random.default_rng(seed_of("shift", KEY, seq_ids[n], layer)).integers(1, T)
                assert shifts[n, layer] == s
                # a roll keeps the cyclic order of the row
                assert got[n, layer].tolist() == [(t - s) % T for t in range(T)]
        if T == 2:
            assert (shifts == 1).all()


def test_nulls_are_deterministic():
    A = random_counts((3, 4, 11), seed=3)
    for null in (within_layer_permutation, within_layer_circular_shift):
        first = null(A, KEY, [0, 1, 2])
        second = null(A.copy(), KEY, [0, 1, 2])
        np.testing.assert_array_equal(first, second)
        assert first is not A  # the input is not modified in place
    np.testing.assert_array_equal(A, random_counts((3, 4, 11), seed=3))


def test_seed_depends_on_seq_id_not_on_row_position():
    A = random_counts((2, 3, 8), seed=4)
    swapped = A[::-1].copy()
    for null in (within_layer_permutation, within_layer_circular_shift):
        forward = null(A, KEY, [7, 9])
        backward = null(swapped, KEY, [9, 7])
        np.testing.assert_array_equal(forward, backward[::-1])


def test_different_keys_seq_ids_and_layers_give_different_permutations():
    T = 20
    A = np.tile(np.arange(T, dtype=np.uint16), (1, 3, 1))
    base = within_layer_permutation(A, KEY, [1])
    other_key = within_layer_permutation(A, KEY.replace("0.85", "1.0"), [1])
    other_seq = within_layer_permutation(A, KEY, [2])
    assert not np.array_equal(base[0, 0], other_key[0, 0])
    assert not np.array_equal(base[0, 0], other_seq[0, 0])
    assert not np.array_equal(base[0, 0], base[0, 1])  # layers get their own permutation
    # perm and shift draw from different streams ("perm" vs "shift" tags)
    shift = within_layer_circular_shift(A, KEY, [1])
    assert not np.array_equal(base, shift)


def test_model_role_is_not_an_input():
    for function in (null_raster, within_layer_permutation, within_layer_circular_shift):
        parameters = list(inspect.signature(function).parameters)
        assert not any("model" in p or "role" in p or "run" in p for p in parameters), parameters
    signature = inspect.signature(null_raster)
    assert list(signature.parameters) == [
        "A",
        "null_id",
        "condition_key",
        "seq_ids",
        "n_layers",  # the optional axis check, keyword-only
    ]
    assert signature.parameters["n_layers"].kind is inspect.Parameter.KEYWORD_ONLY
    # two "models" with different rasters but one condition get the same index permutation
    T = 9
    ids = np.tile(np.arange(T, dtype=np.uint16), (2, 2, 1))
    A_model_1 = random_counts((2, 2, T), seed=5)
    A_model_2 = random_counts((2, 2, T), seed=6)
    order = within_layer_permutation(ids, KEY, [3, 4]).astype(np.int64)
    for A in (A_model_1, A_model_2):
        np.testing.assert_array_equal(
            within_layer_permutation(A, KEY, [3, 4]), np.take_along_axis(A, order, axis=2)
        )


# --------------------------------------------------------------------------------------------
# marginals


def test_nulls_preserve_marginals_and_the_check_counts_rows():
    A = random_counts((5, 4, 13), seed=7)
    for null_id in (NULL_PERM, NULL_SHIFT):
        null = null_raster(A, null_id, KEY, range(5))
        np.testing.assert_array_equal(np.sort(null, axis=2), np.sort(A, axis=2))
        assert preserved_marginals(A, null).shape == (5, 4)
        assert preserved_marginals(A, null).all()
        assert assert_marginals_preserved(A, null, null_id) == 20


def test_doctored_null_raises_naming_the_bad_row():
    A = random_counts((3, 4, 6), seed=8)
    A[2, 1, 3] = 4
    null = within_layer_permutation(A, KEY, [0, 1, 2])
    null[2, 1, np.argmax(null[2, 1])] += 1  # one count changed in window 2, layer 1
    expected = np.ones((3, 4), dtype=bool)
    expected[2, 1] = False
    np.testing.assert_array_equal(preserved_marginals(A, null), expected)
    with pytest.raises(MarginalViolationError) as info:
        assert_marginals_preserved(A, null, NULL_PERM, where=" of condition X")
    message = str(info.value)
    assert "[[2, 1]]" in message
    assert NULL_PERM in message and " of condition X" in message
    assert "1 (window, layer) rows" in message
    assert issubclass(MarginalViolationError, AvalancheError)


def test_moving_events_across_layers_or_windows_is_a_violation():
    # same totals per window, but an event moved to another layer: the multiset is not kept
    A = np.zeros((2, 2, 4), dtype=np.uint16)
    A[0, 0, 1] = 1
    A[1, 1, 2] = 3
    moved = A.copy()
    moved[0, 0, 1], moved[0, 1, 1] = 0, 1
    with pytest.raises(MarginalViolationError, match=r"\[\[0, 0\], \[0, 1\]\]"):
        assert_marginals_preserved(A, moved, NULL_SHIFT)
    swapped = A[::-1].copy()  # windows swapped
    assert not preserved_marginals(A, swapped).all()


def test_marginal_check_rejects_shape_mismatch():
    A = random_counts((2, 3, 4))
    with pytest.raises(RasterError, match=r"\(2, 3, 5\)"):
        preserved_marginals(A, random_counts((2, 3, 5)))


# --------------------------------------------------------------------------------------------
# property: both nulls preserve every (window, layer) multiset exactly

rasters = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(2, 12)).flatmap(
    lambda shape: arrays(np.uint16, shape, elements=st.sampled_from([0, 0, 0, 1, 2, 3, 4, 5]))
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(A=rasters, key=st.sampled_from([KEY, "B|X|0.001|1.0|NONE"]), offset=st.integers(0, 1000))
def test_property_nulls_preserve_marginals(A, key, offset):
    N, L, T = A.shape
    seq_ids = [offset + 3 * n for n in range(N)]
    for null_id in (NULL_PERM, NULL_SHIFT):
        null = null_raster(A, null_id, key, seq_ids)
        assert null.shape == A.shape and null.dtype == A.dtype
        for n in range(N):
            for layer in range(L):
                assert sorted(null[n, layer].tolist()) == sorted(A[n, layer].tolist())
        assert assert_marginals_preserved(A, null, null_id) == N * L
    np.testing.assert_array_equal(
        null_raster(A, NULL_SHIFT, key, seq_ids), expected_shift(A, key, seq_ids)
    )


# --------------------------------------------------------------------------------------------
# bad input


def test_seq_ids_length_mismatch_names_the_lengths():
    A = random_counts((3, 2, 5))
    with pytest.raises(RasterError) as info:
        within_layer_permutation(A, KEY, [1, 2])
    assert "(2,)" in str(info.value) and "3 windows" in str(info.value)
    with pytest.raises(RasterError, match="3 windows"):
        within_layer_circular_shift(A, KEY, [1, 2, 3, 4])


def test_bad_rasters_and_null_ids():
    with pytest.raises(RasterError, match=r"\[N, L, T\]"):
        within_layer_permutation(np.zeros((3, 5), dtype=np.uint16), KEY, [0, 1, 2])
    with pytest.raises(RasterError, match="float64"):
        within_layer_circular_shift(np.zeros((1, 2, 5)), KEY, [0])
    with pytest.raises(RasterError, match="NULL_TOKEN_SHUFFLE_INPUT"):
        null_raster(random_counts((1, 2, 5)), "NULL_TOKEN_SHUFFLE_INPUT", KEY, [0])
    with pytest.raises(RasterError, match="1"):
        within_layer_circular_shift(np.zeros((1, 2, 1), dtype=np.uint16), KEY, [0])


# --------------------------------------------------------------------------------------------
# axis safety: the optional n_layers check

NULL_FUNCTIONS = {
    "null_raster": lambda A, **kw: null_raster(A, NULL_PERM, KEY, [3, 4], **kw),
    "within_layer_permutation": lambda A, **kw: within_layer_permutation(A, KEY, [3, 4], **kw),
    "within_layer_circular_shift": lambda A, **kw: within_layer_circular_shift(
        A, KEY, [3, 4], **kw
    ),
    "preserved_marginals": lambda A, **kw: preserved_marginals(A, A, **kw),
    "assert_marginals_preserved": lambda A, **kw: assert_marginals_preserved(A, A, NULL_PERM, **kw),
}


@pytest.mark.parametrize("name", list(NULL_FUNCTIONS))
def test_swapped_raster_is_refused_when_n_layers_is_given(name):
    A = random_counts((2, 3, 7), seed=9)
    swapped = A.transpose(0, 2, 1)  # (2, 7, 3)
    with pytest.raises(RasterError) as info:
        NULL_FUNCTIONS[name](swapped, n_layers=3)
    message = str(info.value)
    assert "(2, 7, 3)" in message and "n_layers=3" in message
    assert "[N, T, L]" in message and "A.transpose(0, 2, 1)" in message


@pytest.mark.parametrize("name", list(NULL_FUNCTIONS))
def test_correct_shape_with_n_layers_gives_the_unchecked_result(name):
    A = random_counts((2, 3, 7), seed=9)
    checked, unchecked = NULL_FUNCTIONS[name](A, n_layers=3), NULL_FUNCTIONS[name](A)
    assert np.array_equal(checked, unchecked)


def test_a_swapped_null_is_refused_by_the_marginal_check_with_its_own_name():
    A = random_counts((2, 3, 7), seed=9)
    null = within_layer_permutation(A, KEY, [3, 4], n_layers=3)
    with pytest.raises(RasterError) as info:
        preserved_marginals(A, null.transpose(0, 2, 1), n_layers=3)
    assert str(info.value).startswith("A_null has shape (2, 7, 3)")
    assert "A_null.transpose(0, 2, 1)" in str(info.value)
