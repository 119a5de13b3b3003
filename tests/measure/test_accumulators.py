"""The streaming reductions of measure.accumulators on hand-computed values.

A standardizer with mu = 0 and sigma + eps = 1 makes z = u, so every count and threshold
below can be read off the arrays by eye. The sweep and API tests check the same classes
against brute force on a real model (test_sweep.py, test_activations.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.core.errors import NonFiniteActivationError, RateMatchingError
from avalanche_kedro.measure import accumulators
from avalanche_kedro.measure.accumulators import (
    BaselineCounter,
    FiniteGuard,
    ThresholdFitter,
    candidate_entries,
    flat_nonzero,
    window_note,
)
from avalanche_kedro.measure.event_counter import EventCounter
from avalanche_kedro.measure.moments import Standardizer
from avalanche_kedro.measure.thresholds import (
    exceedance_budget,
    seed_floors,
    spike_values,
    topk_capacity,
)

ONE, TWO = "SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"


def identity(n_layers: int, d_ff: int) -> Standardizer:
    """z = (u - 0) / 1 = u."""
    return Standardizer(mu=torch.zeros(n_layers, d_ff), denominator=torch.ones(n_layers, d_ff))


def test_window_note_and_flat_nonzero():
    assert window_note(8, 16) == " in windows 8..15 of the slice"
    mask = torch.tensor([False, True, False, True, True])
    assert flat_nonzero(mask).tolist() == [1, 3, 4]


def test_finite_guard_names_the_first_bad_layer_once_per_batch():
    guard = FiniteGuard(3, "cpu")
    guard.on_batch(4, 8)
    guard.observe(0, torch.tensor([1.0, 2.0]))
    guard.observe(2, torch.tensor([float("nan"), 1.0]))
    guard.observe(1, torch.tensor([float("inf")]))
    with pytest.raises(NonFiniteActivationError, match=r"Layer 1 .* in windows 4\.\.7"):
        guard.on_batch_end(4, 8)
    clean = FiniteGuard(2, "cpu")
    clean.observe(0, torch.tensor([3.0]))
    clean.observe(1, torch.tensor([-1.0]))
    clean.on_batch_end(0, 1)  # finite: no error


def test_baseline_counter_counts_strict_exceedances_per_spike_definition():
    counter = BaselineCounter(identity(2, 3), [ONE, TWO], tau0=2.5, n_layers=2)
    # layer 0: values above 2.5: 3.0 (one-sided); |v| > 2.5: 3.0, -4.0 (two-sided); 2.5 is not > 2.5
    counter.update(0, torch.tensor([[[3.0, -4.0, 2.5], [0.0, 1.0, -1.0]]]))  # [B=1, T=2, d=3]
    counter.update(1, torch.tensor([[[0.0, 0.0, 0.0], [2.6, -2.6, 0.0]]]))
    counter.update(0, torch.tensor([[[2.51, 0.0, 0.0]]]))  # a second batch of layer 0: T = 1
    assert counter.exceedances().tolist() == [[2, 1], [3, 2]]
    assert counter.n_values.tolist() == [9, 6]
    np.testing.assert_array_equal(counter.rates(), [[2 / 9, 1 / 6], [3 / 9, 2 / 6]])


def test_threshold_fitter_reads_each_target_from_one_top_k():
    """n = 10 values 0..9 in one layer; r* = 0.2 gives m = 2, tau = the 3rd largest = 7, so
    count(v > 7) = 2; r* = 0.05 gives m = 0, tau = the maximum, count 0."""
    values = torch.arange(10, dtype=torch.float32).reshape(1, 2, 5)  # [B, T, d_ff=5]
    profile = np.array([[[0.2], [0.05]]])  # [S=1, R=2, L=1]
    fitter = ThresholdFitter(identity(1, 5), [ONE], profile, n_values=[10])
    fitter.update(0, values[:, :1])  # two batches: 0..4, then 5..9
    fitter.update(0, values[:, 1:])
    rows = fitter.fits()
    assert [
        (r["rate_index"], r["tau"], r["m_budget"], r["n_exceed_calibration"]) for r in rows
    ] == [
        (0, 7.0, 2, 2),
        (1, 9.0, 0, 0),
    ]
    assert rows[0]["achieved_rate_calibration"] == 0.2
    assert rows[0]["topk_kept"] == 3  # k = floor(0.2 * 10) + 1


def test_threshold_fitter_two_sided_uses_magnitudes():
    u = torch.tensor([[[-9.0, 1.0, 2.0, -3.0, 0.5]]])  # |v|: 9, 1, 2, 3, 0.5
    fitter = ThresholdFitter(identity(1, 5), [TWO], np.array([[[0.2]]]), n_values=[5])
    fitter.update(0, u)
    (row,) = fitter.fits()
    assert (row["m_budget"], row["tau"], row["n_exceed_calibration"]) == (1, 3.0, 1)


def test_threshold_fitter_refuses_a_slice_of_another_size():
    fitter = ThresholdFitter(identity(1, 5), [ONE], np.array([[[0.2]]]), n_values=[10])
    fitter.update(0, torch.zeros(1, 1, 5))
    with pytest.raises(
        RateMatchingError, match="held 5 values, but the thresholds were sized for 10"
    ):
        fitter.fits()


# ---------------------------------------------------------------------------------------------
# the bounds shortcut against the dense reference (z of every entry), bit for bit


def random_standardizer(rng, n_layers: int, d_ff: int) -> Standardizer:
    mu = rng.normal(scale=2.0, size=(n_layers, d_ff)).astype(np.float32)
    den = np.exp(rng.uniform(np.log(1e-3), np.log(3.0), size=(n_layers, d_ff))).astype(np.float32)
    return Standardizer(mu=torch.from_numpy(mu), denominator=torch.from_numpy(den))


def random_u(rng, standardizer: Standardizer, layer: int, shape, decimals=None) -> torch.Tensor:
    """u = mu + d * t(3): heavy tails, so thresholds sit at a few sigma; rounded for ties."""
    z = rng.standard_t(3, size=shape)
    if decimals is not None:
        z = np.round(z, decimals)
    u = standardizer.mu[layer].numpy() + standardizer.denominator[layer].numpy() * z
    return torch.from_numpy(u.astype(np.float32))


def dense_counts(standardizer, spike_defs, taus, layer, u) -> torch.Tensor:
    """``[S*R, sites]``: count of v > tau per site from the z of every entry."""
    z = standardizer(layer, u).reshape(-1, standardizer.mu.shape[1])
    rows = [
        (spike_values(z, spike_def) > taus[si, ri, layer]).sum(dim=1)
        for si, spike_def in enumerate(spike_defs)
        for ri in range(taus.shape[1])
    ]
    return torch.stack(rows).to(torch.int32)


def plant_on_bounds(u: torch.Tensor, bounds, rng) -> torch.Tensor:
    """Put entries exactly on lo and hi and one fp32 step either side of them."""
    flat = u.reshape(-1, bounds.hi.shape[0]).clone()
    inf = np.float32(np.inf)
    for value in (
        bounds.hi,
        bounds.lo,
        np.nextafter(bounds.hi, inf),
        np.nextafter(bounds.hi, -inf),
        np.nextafter(bounds.lo, inf),
        np.nextafter(bounds.lo, -inf),
    ):
        row = int(rng.integers(flat.shape[0]))
        flat[row] = torch.from_numpy(value)
    return flat.reshape(u.shape)


def test_candidate_entries_are_a_superset_with_exact_z_and_keep_nan():
    rng = np.random.default_rng(0)
    standardizer = random_standardizer(rng, 2, 48)
    u = random_u(rng, standardizer, 1, (3, 40, 48))
    u[1, 3, 5] = float("nan")
    u[2, 0, 7] = float("inf")
    u[0, 9, 9] = -float("inf")
    floor = 2.0
    for two_sided in (True, False):
        bounds = standardizer.bounds(1, floor, two_sided)
        index, z = candidate_entries(standardizer, 1, u, bounds)
        assert isinstance(index, np.ndarray) and isinstance(z, np.ndarray)  # CPU: numpy views
        dense = standardizer(1, u).reshape(-1).numpy()
        np.testing.assert_array_equal(z.view(np.int32), dense[index].view(np.int32))
        wanted = (np.abs(dense) > floor) if two_sided else (dense > floor)
        wanted |= ~np.isfinite(dense)
        assert set(np.flatnonzero(wanted).tolist()) <= set(index.tolist())
        assert index.size < u.numel() // 4  # the shortcut prunes
        assert {
            np.ravel_multi_index(at, u.shape) for at in [(1, 3, 5), (2, 0, 7), (0, 9, 9)]
        } <= set(index.tolist())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_event_counter_equals_dense_counts_on_random_and_adversarial_u(dtype):
    rng = np.random.default_rng(1)
    n_layers, d_ff = 3, 64
    standardizer = random_standardizer(rng, n_layers, d_ff)
    u = [random_u(rng, standardizer, layer, (4, 16, d_ff), decimals=1) for layer in range(3)]
    z = [standardizer(layer, u[layer]).reshape(-1) for layer in range(3)]
    # ties: some taus equal the z of an entry exactly; layer 2 holds a negative one (dense)
    taus = np.empty((2, 3, n_layers), dtype=np.float32)
    for layer in range(n_layers):
        ordered = np.sort(z[layer].numpy())[::-1]
        taus[0, :, layer] = ordered[[5, 40, 200]]
        taus[1, :, layer] = np.sort(np.abs(z[layer].numpy()))[::-1][[3, 60, 150]]
    taus[0, 2, 2] = -0.25
    counter = EventCounter(standardizer, [ONE, TWO], taus)
    assert counter.bounds[0] is not None and counter.bounds[2] is None
    # the lower tail is bounded by the smallest two-sided tau, not by the smallest of all
    floor, lower = float(taus[:, :, 0].min()), float(taus[1, :, 0].min())
    assert lower > floor
    asymmetric = standardizer.bounds(0, floor, True, lower)
    np.testing.assert_array_equal(counter.bounds[0].lo, asymmetric.lo)
    assert (counter.bounds[0].lo < standardizer.bounds(0, floor, True).lo).all()
    for layer in range(n_layers):
        values = u[layer]
        if counter.bounds[layer] is not None:
            values = plant_on_bounds(values, counter.bounds[layer], rng)
        values = values.to(dtype)
        got = counter.count_layer(layer, values)
        expected = dense_counts(standardizer, [ONE, TWO], torch.from_numpy(taus), layer, values)
        assert got.dtype == torch.int32 and torch.equal(got, expected), layer
        assert int(got.sum()) > 0
    # a non-contiguous u (a transposed view) is read in its logical row-major order
    view = u[0].transpose(0, 1).contiguous().transpose(0, 1)
    assert not view.is_contiguous()
    expected = dense_counts(standardizer, [ONE, TWO], torch.from_numpy(taus), 0, view)
    assert torch.equal(counter.count_layer(0, view), expected)


def reference_fits(standardizer, spike_defs, profile, layer_batches):
    """tau = (m+1)-th largest v of every value of the layer, m = floor(r* n), from a sort."""
    rows = []
    for si, spike_def in enumerate(spike_defs):
        for layer, batches in enumerate(layer_batches):
            v = torch.cat(
                [spike_values(standardizer(layer, b).reshape(-1), spike_def) for b in batches]
            )
            desc = np.sort(v.numpy())[::-1]
            for ri in range(profile.shape[1]):
                m = exceedance_budget(profile[si, ri, layer], desc.size)
                tau = float(desc[m])
                rows.append((tau, m, int(np.count_nonzero(desc > np.float32(tau)))))
    return rows


def fitted(fitter):
    return [(r["tau"], r["m_budget"], r["n_exceed_calibration"]) for r in fitter.fits()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch_end", ["fitter", "guard only"])
def test_threshold_fitter_equals_a_full_sort_seeded_or_not(dtype, batch_end):
    """Ties (z rounded to 0.1), uneven batches, one layer at rates above 50 % (negative
    floor: dense path); seeds from the reference taus give the same fits, seeds above the
    k-th largest value are reported as incomplete. The candidates are offered to the buffers
    at the fitter's batch end (as the passes call it) or, without it, before the layer's next
    update: the same fits either way."""
    rng = np.random.default_rng(2)
    n_layers, d_ff = 3, 32
    standardizer = random_standardizer(rng, n_layers, d_ff)
    shapes = [(2, 50, d_ff), (3, 50, d_ff), (1, 20, d_ff)]
    batches = [
        [random_u(rng, standardizer, layer, shape, decimals=1).to(dtype) for shape in shapes]
        for layer in range(n_layers)
    ]
    n = sum(int(np.prod(shape)) for shape in shapes)
    profile = np.array(
        [
            [[1e-3, 2e-3, 0.55], [4e-3, 1e-2, 0.6], [2e-2, 3e-2, 0.7]],  # one-sided
            [[1e-3, 5e-3, 0.01], [4e-3, 8e-3, 0.02], [2e-2, 1e-2, 0.03]],  # two-sided
        ]
    )
    expected = reference_fits(standardizer, [ONE, TWO], profile, batches)
    taus = np.array([row[0] for row in expected], dtype=np.float32).reshape(2, n_layers, 3)
    taus = taus.transpose(0, 2, 1)  # [S, R, L]
    assert taus[0, 2, 2] < 0  # r* = 0.7 one-sided: below the median

    def run(seeds=None):
        guard = FiniteGuard(n_layers, "cpu")
        fitter = ThresholdFitter(standardizer, [ONE, TWO], profile, [n] * n_layers, guard, seeds)
        for index in range(len(shapes)):
            guard.on_batch(index, index + 1)
            for layer in range(n_layers):
                fitter.update(layer, batches[layer][index])
            if batch_end == "fitter":
                fitter.on_batch_end(index, index + 1)  # the guard's check, then the offers
                assert not any(fitter._pending)
            else:
                guard.on_batch_end(index, index + 1)
                waiting.append([len(pending) for pending in fitter._pending])
        return fitter

    waiting = []

    plain = run()
    if batch_end == "guard only":
        # only the compiled pass's candidates wait (fp32 on the CPU); every entry's z (layer
        # 2's negative floor) and torch's (bf16) are offered at once
        compiled = int(dtype == torch.float32)
        assert waiting == [[compiled, compiled, 0]] * len(shapes)
    assert plain.incomplete() == [] and fitted(plain) == expected
    seeded = run(seed_floors(taus))
    assert seeded.incomplete() == [] and fitted(seeded) == expected
    assert seeded.buffers[1][0].seed is not None
    high = seed_floors(taus, relaxation=0.0)  # the k-th largest itself: k - 1 values above
    high[1, 2] = np.nan
    too_high = run(high)
    assert set(too_high.incomplete()) == {(ONE, 0), (ONE, 1), (TWO, 0), (TWO, 1)}
    assert (ONE, 2) not in too_high.incomplete()  # negative tau: no seed
    with pytest.raises(ValueError, match="without a seed"):
        too_high.fits()
    above_all = run(np.full((2, n_layers), 1e6))  # no value reaches the seeds at all
    assert len(above_all.incomplete()) == 2 * n_layers
    assert [b.k for b in plain.buffers[0]] == [
        topk_capacity(profile[0, :, layer].max(), n) for layer in range(3)
    ]


def test_baseline_counter_equals_dense_counts():
    rng = np.random.default_rng(3)
    standardizer = random_standardizer(rng, 2, 40)
    counter = BaselineCounter(standardizer, [ONE, TWO], 2.5, n_layers=2)
    expected = np.zeros((2, 2), dtype=np.int64)
    for _ in range(3):
        for layer in range(2):
            u = random_u(rng, standardizer, layer, (2, 30, 40), decimals=1)
            u = plant_on_bounds(u, counter.bounds[layer], rng)
            counter.update(layer, u)
            z = standardizer(layer, u)
            expected[0, layer] += int((z > 2.5).sum())
            expected[1, layer] += int((z.abs() > 2.5).sum())
    np.testing.assert_array_equal(counter.exceedances(), expected)
    assert counter.n_values.tolist() == [3 * 2 * 30 * 40] * 2 and expected.min() > 0


def feed_three_layers(update, guard, bad_layer: int, bad_value: float, rng, standardizer):
    guard.on_batch(8, 12)
    for layer in range(3):
        u = random_u(rng, standardizer, layer, (4, 10, 16))
        if layer == bad_layer:
            u[2, 3, 4] = bad_value
        update(layer, u)
    guard.on_batch_end(8, 12)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("spike_defs", [[ONE, TWO], [ONE]])
def test_a_non_finite_activation_is_reported_with_its_layer(bad_value, spike_defs):
    """NaN fails every comparison with the bounds, so it is kept as a candidate; -inf with
    one-sided spikes only falls below the lowest finite lo."""
    rng = np.random.default_rng(4)
    standardizer = random_standardizer(rng, 3, 16)
    taus = np.full((len(spike_defs), 1, 3), 3.0, dtype=np.float32)
    counters = []
    guard = FiniteGuard(3, "cpu")
    counter = EventCounter(standardizer, spike_defs, taus, guard)
    assert all(b is not None for b in counter.bounds)
    counters.append((counter.count_layer, guard))
    guard = FiniteGuard(3, "cpu")
    fitter = ThresholdFitter(
        standardizer,
        spike_defs,
        np.full((len(spike_defs), 1, 3), 0.01),
        [1280] * 3,
        guard,
        seeds=np.full((len(spike_defs), 3), 2.0),
    )
    counters.append((fitter.update, guard))
    guard = FiniteGuard(3, "cpu")
    counters.append((BaselineCounter(standardizer, spike_defs, 2.5, 3, guard).update, guard))
    for update, guard in counters:
        feed_three_layers(update, guard, 3, 0.0, rng, standardizer)  # all finite: no error
        with pytest.raises(NonFiniteActivationError, match=r"Layer 1 .* in windows 8\.\.11"):
            feed_three_layers(update, guard, 1, bad_value, rng, standardizer)


def test_a_z_that_overflows_is_reported_like_before():
    """A finite u whose z overflows fp32 (tiny sigma + eps) is non-finite z, as in the dense
    computation: it lies far outside the bounds and reaches the guard."""
    standardizer = Standardizer(mu=torch.zeros(1, 4), denominator=torch.full((1, 4), 1e-30))
    guard = FiniteGuard(1, "cpu")
    counter = EventCounter(standardizer, [TWO], np.full((1, 1, 1), 3.0, np.float32), guard)
    assert counter.bounds[0] is not None
    guard.on_batch(0, 1)
    counter.count_layer(0, torch.tensor([[[0.0, 1e-31, -2e-30, 1e10]]]))
    with pytest.raises(NonFiniteActivationError, match="Layer 0"):
        guard.on_batch_end(0, 1)


def test_finite_guard_observing_no_candidates_records_a_finite_peak():
    guard = FiniteGuard(2, "cpu")
    guard.observe(0, torch.tensor([float("nan")]))
    guard.observe(0, torch.zeros(0))  # the next batch kept nothing in layer 0
    guard.observe(1, torch.zeros(0))
    assert guard.bad_layer() is None


def test_the_accelerator_branches_give_the_same_results(monkeypatch):
    """With the numpy views switched off, a bf16 u takes the torch branches an accelerator
    takes (comparisons, gathers, index_add_, a tensor top-k pool): same counts and fits."""
    rng = np.random.default_rng(5)
    standardizer = random_standardizer(rng, 2, 32)
    u = [random_u(rng, standardizer, layer, (3, 40, 32), decimals=1) for layer in range(2)]
    u = [values.to(torch.bfloat16) for values in u]
    taus = np.array([[[2.0, 2.5], [3.0, 1.0]], [[2.0, 3.5], [4.0, 0.5]]], dtype=np.float32)
    profile = np.full((2, 2, 2), 0.01)
    profile[:, 1] = 0.02

    def run():
        counter = EventCounter(standardizer, [ONE, TWO], taus, FiniteGuard(2, "cpu"))
        counts = [counter.count_layer(layer, u[layer]) for layer in range(2)]
        fitter = ThresholdFitter(
            standardizer, [ONE, TWO], profile, [u[0].numel()] * 2, seeds=np.full((2, 2), 1.0)
        )
        for layer in range(2):
            for part in u[layer].split(1):
                fitter.update(layer, part)
        return counts, fitted(fitter), fitter.buffers[0][0].parts[0]

    host_counts, host_fits, host_pool = run()
    monkeypatch.setattr(accumulators, "_host_view", lambda values: values)
    device_counts, device_fits, device_pool = run()
    assert isinstance(host_pool, np.ndarray) and isinstance(device_pool, torch.Tensor)
    for host, device in zip(host_counts, device_counts, strict=True):
        assert torch.equal(host, device) and int(host.sum()) > 0
    assert host_fits == device_fits
    expected = [dense_counts(standardizer, [ONE, TWO], torch.from_numpy(taus), 0, u[0])]
    assert torch.equal(host_counts[0], expected[0])


@pytest.mark.parametrize("decimals", [1, None])
def test_threshold_fitter_seeds_itself_from_a_row_sample_exactly(decimals):
    """Unseeded, the first batch's every stride-th row gives each buffer the k-th largest v
    of the sample as its seed (just below it, so ties at it stay in): no dense pool of the
    first batch, no repeated pass, and the fits equal a full sort, ties (z rounded) or not."""
    rng = np.random.default_rng(6)
    standardizer = random_standardizer(rng, 2, 64)
    batches = [
        [random_u(rng, standardizer, layer, (4, 128, 64), decimals=decimals) for _ in range(3)]
        for layer in range(2)
    ]
    n = 3 * 4 * 128 * 64
    profile = np.array([[[1e-4, 1e-3], [5e-4, 2e-3]], [[2e-4, 1e-3], [1e-3, 4e-3]]])
    fitter = ThresholdFitter(standardizer, [ONE, TWO], profile, [n, n])
    for index in range(3):
        for layer in range(2):
            fitter.update(layer, batches[layer][index])
            if index == 0:  # seeded from the first batch, before its values were offered
                assert all(fitter.buffers[si][layer].seed is not None for si in range(2))
                assert all(fitter.buffers[si][layer].n_pooled < 4 * 128 * 64 // 4 for si in (0, 1))
    assert fitter.incomplete() == []
    assert fitted(fitter) == reference_fits(standardizer, [ONE, TWO], profile, batches)
