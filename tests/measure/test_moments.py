"""fp64 Chan-merged moments against numpy (SPEC §3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.core.errors import ArtifactError, NonFiniteActivationError
from avalanche_kedro.measure.moments import (
    DEFAULT_EPS,
    MOMENT_COLUMNS,
    RunningMoments,
    Standardizer,
    UnitMoments,
    batch_moments,
    exceedance_bounds,
    merge_moments,
)


def _chunks(n_rows: int, cuts: list[int]) -> list[slice]:
    edges = [0, *cuts, n_rows]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def test_batch_moments_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 5)).astype(np.float32)
    count, mean, m2 = batch_moments(torch.from_numpy(x))
    x64 = x.astype(np.float64)
    assert count == 37
    assert mean.dtype == torch.float64 and m2.dtype == torch.float64
    np.testing.assert_allclose(mean.numpy(), x64.mean(axis=0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m2.numpy(), ((x64 - x64.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-12)


def test_merge_moments_hand_example():
    # a = [1, 3] (mean 2, M2 2), b = [5] (mean 5, M2 0) -> all = [1, 3, 5]: mean 3, M2 8
    one = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    count, mean, m2 = merge_moments(2, one(2.0), one(2.0), 1, one(5.0), one(0.0))
    assert count == 3
    assert mean.item() == pytest.approx(3.0, abs=1e-15)
    assert m2.item() == pytest.approx(8.0, abs=1e-14)
    # empty sides are identities
    c, mu, s = merge_moments(0, one(0.0), one(0.0), 2, one(2.0), one(2.0))
    assert (c, mu.item(), s.item()) == (2, 2.0, 2.0)
    c, mu, s = merge_moments(2, one(2.0), one(2.0), 0, one(0.0), one(0.0))
    assert (c, mu.item(), s.item()) == (2, 2.0, 2.0)


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]])
def test_merge_of_uneven_chunks_in_any_order(order):
    rng = np.random.default_rng(1)
    x = rng.normal(loc=0.3, scale=2.0, size=(101, 6))
    parts = _chunks(101, [1, 18, 60])  # sizes 1, 17, 42, 41
    state = (0, torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64))
    for index in order:
        state = merge_moments(*state, *batch_moments(torch.from_numpy(x[parts[index]])))
    count, mean, m2 = state
    assert count == 101
    np.testing.assert_allclose(mean.numpy(), x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(m2.numpy() / count), x.std(axis=0, ddof=0), rtol=1e-12)


def test_running_moments_per_layer_against_numpy():
    rng = np.random.default_rng(2)
    n_layers, d_ff = 3, 8
    # u of each layer arrives as [batch, T, d_ff] batches of uneven size
    data = [rng.normal(loc=layer, scale=1 + layer, size=(7, 5, d_ff)) for layer in range(n_layers)]
    moments = RunningMoments(n_layers, d_ff)
    for start, stop in [(0, 2), (2, 3), (3, 7)]:
        for layer in reversed(range(n_layers)):  # layer order must not matter
            moments.update(layer, torch.from_numpy(data[layer][start:stop]).float())
    result = moments.result()
    # counts: rows = windows x tokens = 35 per layer, never divided by the layer count
    np.testing.assert_array_equal(result.counts, [35, 35, 35])
    for layer in range(n_layers):
        flat = data[layer].astype(np.float32).astype(np.float64).reshape(-1, d_ff)
        np.testing.assert_allclose(result.mu[layer], flat.mean(axis=0), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(result.sigma[layer], flat.std(axis=0, ddof=0), rtol=1e-12)
    assert result.mu.dtype == np.float64 and result.sigma.dtype == np.float64
    assert result.n_layers == n_layers and result.d_ff == d_ff


def test_running_moments_large_offset_beats_naive_formula():
    rng = np.random.default_rng(3)
    n_rows, d_ff = 4000, 4
    x = 1e6 + rng.normal(scale=1e-2, size=(n_rows, d_ff))  # fp64 input
    true_mean = x.mean(axis=0)
    true_std = x.std(axis=0, ddof=0)  # numpy centers first: accurate
    # the textbook E[x^2] - E[x]^2 in fp64 loses the variance almost entirely
    naive_var = (x**2).mean(axis=0) - x.mean(axis=0) ** 2
    naive_std = np.sqrt(np.abs(naive_var))
    assert np.max(np.abs(naive_std - true_std) / true_std) > 1e-3
    moments = RunningMoments(1, d_ff)
    for part in _chunks(n_rows, [3, 500, 501, 2222, 3999]):
        moments.update(0, torch.from_numpy(x[part]))
    result = moments.result()
    assert result.counts[0] == n_rows
    assert np.max(np.abs(result.mu[0] - true_mean) / true_mean) < 1e-12
    assert np.max(np.abs(result.sigma[0] - true_std) / true_std) < 1e-9


def test_degenerate_units_flagged():
    x = np.zeros((20, 4), dtype=np.float32)
    x[:, 0] = 3.25  # constant
    x[:, 1] = np.linspace(-1, 1, 20)
    x[:, 2] = 7.0  # constant
    x[:, 3] = np.r_[np.zeros(19), 1e-9]  # sigma ~ 2e-10 <= eps
    moments = RunningMoments(1, 4)
    moments.update(0, torch.from_numpy(x[:9]))
    moments.update(0, torch.from_numpy(x[9:]))
    result = moments.result()
    assert result.sigma[0, 0] == 0.0 and result.sigma[0, 2] == 0.0
    assert result.mu[0, 0] == 3.25 and result.mu[0, 2] == 7.0
    np.testing.assert_array_equal(result.degenerate()[0], [True, False, True, True])
    np.testing.assert_array_equal(result.degenerate(eps=1e-12)[0], [True, False, True, False])
    assert DEFAULT_EPS == 1e-6


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(bad):
    moments = RunningMoments(2, 3)
    x = torch.ones(4, 3)
    x[2, 1] = bad
    with pytest.raises(NonFiniteActivationError, match="Layer 1"):
        moments.update(1, x, " in windows 0..3 of the slice")


def test_frame_round_trip_in_any_row_order():
    rng = np.random.default_rng(4)
    mu = rng.normal(size=(3, 5))
    sigma = np.abs(rng.normal(size=(3, 5)))
    sigma[1, 2] = 0.0
    original = UnitMoments(counts=np.array([96, 96, 96], dtype=np.int64), mu=mu, sigma=sigma)
    frame = original.to_frame()
    assert list(frame.columns) == MOMENT_COLUMNS
    assert len(frame) == 15
    row = frame[(frame["layer"] == 1) & (frame["unit"] == 2)].iloc[0]
    assert row["mu"] == mu[1, 2] and row["count"] == 96 and bool(row["degenerate"])
    assert int(frame["degenerate"].sum()) == 1
    shuffled = frame.sample(frac=1.0, random_state=0)
    back = UnitMoments.from_frame(shuffled)
    np.testing.assert_array_equal(back.counts, original.counts)
    np.testing.assert_array_equal(back.mu, mu)
    np.testing.assert_array_equal(back.sigma, sigma)


def test_from_frame_incomplete_raises():
    frame = UnitMoments(
        counts=np.array([4, 4]), mu=np.zeros((2, 3)), sigma=np.ones((2, 3))
    ).to_frame()
    with pytest.raises(ArtifactError):
        UnitMoments.from_frame(frame.drop(index=4))


def test_standardizer_matches_formula():
    rng = np.random.default_rng(5)
    mu = rng.normal(size=(2, 6))
    sigma = np.abs(rng.normal(size=(2, 6))) + 0.1
    sigma[0, 0] = 0.0
    moments = UnitMoments(counts=np.array([10, 10]), mu=mu, sigma=sigma)
    standardize = moments.standardizer("cpu")
    u = torch.from_numpy(rng.normal(size=(3, 4, 6))).to(torch.bfloat16)
    z = standardize(0, u)
    assert z.dtype == torch.float32
    expected = (u.float() - torch.tensor(mu[0], dtype=torch.float32)) / torch.tensor(
        sigma[0] + DEFAULT_EPS, dtype=torch.float32
    )
    torch.testing.assert_close(z, expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# exceedance bounds: compare u, standardize only what lies outside


def _z_per_entry(u: np.ndarray, mu: np.ndarray, den: np.ndarray) -> np.ndarray:
    """z of entry i with unit moments (mu[i], den[i]), exactly as Standardizer computes it:
    one unit per entry (d_ff = n) and a single row of u."""
    standardize = Standardizer(
        mu=torch.from_numpy(mu[None]), denominator=torch.from_numpy(den[None])
    )
    return standardize(0, torch.from_numpy(u[None]))[0].numpy()


def _ulp_neighbourhood(centres: np.ndarray, steps: int) -> np.ndarray:
    """``[2 steps + 1, n]`` fp32 values: each centre and its ``steps`` fp32 neighbours either way."""
    rows = [centres.astype(np.float32)]
    up = down = rows[0]
    with np.errstate(over="ignore"):
        for _ in range(steps):
            up = np.nextafter(up, np.float32(np.inf))
            down = np.nextafter(down, np.float32(-np.inf))
            rows = [down, *rows, up]
    return np.stack(rows)


def test_exceedance_bounds_hand_example():
    """mu = 1, d = 0.5, floor 4: the exact edges are u = 1 +- 2; the bounds sit a relative
    2^-20 of |mu| + t = 3 inside them (rounded outward to fp32), never outside."""
    lo, hi = exceedance_bounds(np.float32([1.0]), np.float32([0.5]), 4.0)
    assert lo.dtype == hi.dtype == np.float32
    assert 3.0 - 3 * 2.0**-19 <= hi[0] < 3.0 and -1.0 < lo[0] <= -1.0 + 3 * 2.0**-19
    # floor 0: z > 0 <=> u > mu, so both bounds collapse onto mu
    lo, hi = exceedance_bounds(np.float32([1.0, -2.5]), np.float32([0.5, 3.0]), 0.0)
    np.testing.assert_array_equal(hi, [1.0, -2.5])
    np.testing.assert_array_equal(lo, [1.0, -2.5])
    # one-sided: nothing finite lies below lo, only -inf
    lo, hi = exceedance_bounds(np.float32([1.0]), np.float32([0.5]), 4.0, two_sided=False)
    assert lo[0] == -np.finfo(np.float32).max and hi[0] < 3.0


def test_exceedance_bounds_take_the_lower_tail_from_lower_floor():
    """mu = 1, d = 0.5: floor 4 puts hi just inside u = 3; lower_floor 6 puts lo just inside
    u = 1 - 3 = -2 (a one-sided statistic's low threshold next to a two-sided one's)."""
    lo, hi = exceedance_bounds(np.float32([1.0]), np.float32([0.5]), 4.0, lower_floor=6.0)
    assert 3.0 - 3 * 2.0**-19 <= hi[0] < 3.0
    assert -2.0 < lo[0] <= -2.0 + 4 * 2.0**-19
    same, _ = exceedance_bounds(np.float32([1.0]), np.float32([0.5]), 4.0, lower_floor=4.0)
    default, _ = exceedance_bounds(np.float32([1.0]), np.float32([0.5]), 4.0)
    assert same[0] == default[0] > lo[0]  # a wider lower tail: fewer entries kept
    # an unusable lower floor refuses the bounds (count densely); one-sided ignores it
    assert exceedance_bounds(np.float32([1.0]), np.float32([0.5]), 4.0, lower_floor=-1.0) is None
    one_sided = exceedance_bounds(
        np.float32([1.0]), np.float32([0.5]), 4.0, two_sided=False, lower_floor=-1.0
    )
    assert one_sided is not None and one_sided[0][0] == -np.finfo(np.float32).max


def test_exceedance_bounds_refuse_unsafe_inputs():
    mu, den = np.float32([0.0, 1.0]), np.float32([1.0, 1.0])
    assert exceedance_bounds(mu, den, -0.5) is None  # negative floor: |z| > floor is everything
    assert exceedance_bounds(mu, den, float("nan")) is None
    assert exceedance_bounds(mu, den, float("inf")) is None
    assert exceedance_bounds(np.float32([0.0, np.nan]), den, 1.0) is None
    assert exceedance_bounds(mu, np.float32([1.0, 0.0]), 1.0) is None  # eps = 0, constant unit
    assert exceedance_bounds(mu, np.float32([1.0, np.inf]), 1.0) is None
    assert exceedance_bounds(np.float32([2.0**101, 0.0]), den, 1.0) is None  # beyond BOUND_RANGE
    assert exceedance_bounds(mu, den, 1.0) is not None


@pytest.mark.parametrize("two_sided", [True, False])
def test_exceedance_bounds_keep_every_exceedance_at_the_ulp_level(two_sided):
    """Around each edge u = mu +- floor d, 300 fp32 neighbours either way: every u whose z
    exceeds the floor lies beyond the bound, for units from subnormal to huge scales."""
    mus = [0.0, 1e-3, -1.0, 0.37, 1e4, -3e4, 2.5e20, 1e-40, -7.25]
    dens = [1.0, 1e-6, 0.73, 1e-3, 50.0, 1e-40, 3e9, 2.0, 1.0000001]
    mu = np.float32([m for m in mus for _ in dens])
    den = np.float32([d for _ in mus for d in dens])
    n_hits = n_misses = 0
    for floor in [0.0, 1e-30, 0.5, 2.3, 2.5, np.float32(4.123), 1000.0]:
        lo, hi = exceedance_bounds(mu, den, float(floor), two_sided)
        assert np.all(lo <= mu) and np.all(mu <= hi)
        exact_hi = mu.astype(np.float64) + floor * den.astype(np.float64)
        exact_lo = mu.astype(np.float64) - floor * den.astype(np.float64)
        # probe [4 n] centres (unit j % n each) and their neighbours, flattened row-major
        u = _ulp_neighbourhood(np.concatenate([exact_hi, exact_lo, hi, lo]), 300).reshape(-1)
        unit = np.arange(u.size) % mu.size
        z = torch.from_numpy(_z_per_entry(u, mu[unit], den[unit]))
        # the comparisons the reductions make: fp32 z against the floor as given
        above, below = (z > floor).numpy(), (z < -floor).numpy()
        assert np.all(u[above] > hi[unit][above])
        if two_sided:
            assert np.all(u[below] < lo[unit][below])
        n_hits += int(above.sum())
        n_misses += int((~above & (u > hi[unit])).sum())  # kept but not exceeding: the slack
    assert n_hits > 1000 and n_misses > 0  # both sides of every edge were probed


def test_standardizer_at_is_bit_identical_to_the_dense_z():
    rng = np.random.default_rng(11)
    moments = UnitMoments(
        counts=np.array([5, 5]),
        mu=rng.normal(size=(2, 7)),
        sigma=np.abs(rng.normal(size=(2, 7))),
    )
    standardize = moments.standardizer("cpu")
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        u = torch.from_numpy(rng.normal(scale=3.0, size=(3, 5, 7))).to(dtype)
        dense = standardize(1, u).reshape(-1)
        index = torch.from_numpy(rng.choice(u.numel(), size=40, replace=False))
        np.testing.assert_array_equal(
            standardize.at(1, u.reshape(-1), index).numpy().view(np.int32),
            dense[index].numpy().view(np.int32),
        )


def test_standardizer_bounds_carry_host_and_device_copies():
    moments = UnitMoments(
        counts=np.array([4]), mu=np.array([[0.0, 1.0]]), sigma=np.array([[1.0, 2.0]])
    )
    standardize = moments.standardizer("cpu")
    bounds = standardize.bounds(0, 2.0)
    np.testing.assert_array_equal(bounds.hi_device.numpy(), bounds.hi)
    np.testing.assert_array_equal(bounds.lo_device.numpy(), bounds.lo)
    assert bounds.hi[0] < 2.0 and bounds.hi[1] < 5.0 and bounds.lo[1] > -3.0
    assert standardize.bounds(0, -1.0) is None
