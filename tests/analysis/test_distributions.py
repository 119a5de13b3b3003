"""The CCDF helper of the notebooks (analysis.distributions): hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.distributions import ccdf


def test_ties_are_merged_into_one_point_per_distinct_size():
    # n = 4: P(S >= 1) = 4/4, P(S >= 2) = 2/4, P(S >= 5) = 1/4
    s, p = ccdf([1, 1, 2, 5])
    np.testing.assert_array_equal(s, [1, 2, 5])
    np.testing.assert_array_equal(p, [1.0, 0.5, 0.25])
    assert s.dtype.kind == "i" and p.dtype == np.float64


def test_order_of_the_samples_does_not_matter():
    # n = 5, sizes 1 x1, 2 x1, 3 x3: P = [5/5, 4/5, 3/5]
    s, p = ccdf(np.array([3, 1, 3, 2, 3], dtype=np.int64))
    np.testing.assert_array_equal(s, [1, 2, 3])
    np.testing.assert_array_equal(p, [1.0, 0.8, 0.6])


def test_float_samples_and_a_single_value():
    s, p = ccdf([0.5, 0.25, 0.5])  # P(S >= 0.25) = 3/3, P(S >= 0.5) = 2/3
    np.testing.assert_array_equal(s, [0.25, 0.5])
    np.testing.assert_array_equal(p, [1.0, 2.0 / 3.0])
    s, p = ccdf([7, 7, 7])
    np.testing.assert_array_equal(s, [7])
    np.testing.assert_array_equal(p, [1.0])


def test_it_matches_the_definition_on_random_sizes():
    sizes = np.random.default_rng(0).zipf(2.0, size=1000)
    s, p = ccdf(sizes)
    assert np.all(np.diff(s) > 0) and np.all(np.diff(p) < 0)
    expected = np.array([(sizes >= value).mean() for value in s])
    np.testing.assert_array_equal(p, expected)  # same integer count / n, same float


def test_no_samples_give_empty_arrays():
    s, p = ccdf(np.array([], dtype=np.int64))
    assert s.size == 0 and p.size == 0 and p.dtype == np.float64


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.ones((2, 2)), "1-D"),
        ([1.0, np.nan], "finite"),
        ([1.0, np.inf], "finite"),
        (["a", "b"], "numbers"),
    ],
)
def test_bad_samples_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        ccdf(values)
