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
from avalanche_kedro.measure.accumulators import (
    BaselineCounter,
    EventCounter,
    FiniteGuard,
    ThresholdFitter,
    flat_nonzero,
    window_note,
)
from avalanche_kedro.measure.moments import Standardizer

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


def test_event_counter_counts_units_above_tau_per_site_for_every_target():
    """taus [S=2, R=2, L=1]; one window, 2 tokens, d_ff = 4."""
    taus = np.array([[[1.0], [2.0]], [[1.0], [2.0]]], dtype=np.float32)
    counter = EventCounter(identity(1, 4), [ONE, TWO], taus)
    u = torch.tensor([[[1.5, 2.5, -3.0, 0.0], [2.0, -1.5, 0.5, 5.0]]])  # [B=1, T=2, d=4]
    counts = counter.count_layer(0, u)  # [S*R, sites]
    # one-sided tau 1: token0 {1.5, 2.5} = 2, token1 {2.0, 5.0} = 2; tau 2: {2.5} = 1, {5.0} = 1
    # two-sided tau 1: {1.5, 2.5, 3} = 3, {2, 1.5, 5} = 3; tau 2: {2.5, 3} = 2, {5} = 1 (2 is not > 2)
    assert counts.tolist() == [[2, 2], [1, 1], [3, 3], [2, 1]]


def test_event_counter_with_a_negative_threshold_counts_densely():
    """A tau below 0 (an absurd rate) disables the |z| > floor shortcut; counts stay exact."""
    taus = np.array([[[-0.5]]], dtype=np.float32)
    counter = EventCounter(identity(1, 3), [ONE], taus)
    assert counter.floors == [None]
    counts = counter.count_layer(0, torch.tensor([[[-1.0, -0.4, 0.0], [-2.0, -0.6, 3.0]]]))
    assert counts.tolist() == [[2, 1]]
