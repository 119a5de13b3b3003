"""measure.event_counter: per-site counts by hand, and written into a caller's buffer.

The counts against brute force on random and adversarial u (every dtype, both branches) are
in test_accumulators.py, next to the other reductions they share helpers with.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.measure.event_counter import EventCounter
from avalanche_kedro.measure.moments import Standardizer
from tests.measure.test_accumulators import dense_counts, random_standardizer, random_u

ONE, TWO = "SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"


def identity(n_layers: int, d_ff: int) -> Standardizer:
    """z = (u - 0) / 1 = u."""
    return Standardizer(mu=torch.zeros(n_layers, d_ff), denominator=torch.ones(n_layers, d_ff))


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("as_numpy", [True, False])
def test_counts_written_into_a_layer_slice_of_a_batch_buffer_equal_the_dense_counts(
    dtype, as_numpy
):
    """``count_layer_into`` fills ``buffer[:, :B, layer]`` of a ``[S*R, B_max, L, T]`` buffer
    (numpy view or tensor; the compiled pass for fp32, torch for bf16, and a layer whose
    negative tau makes it dense), whatever the buffer held, and leaves the rest alone."""
    rng = np.random.default_rng(11)
    n_layers, d_ff, n_b, n_t = 3, 24, 2, 7
    standardizer = random_standardizer(rng, n_layers, d_ff)
    taus = np.array([[[2.0, 2.5, -1.0], [3.0, 3.5, 0.5]], [[1.5, 2.0, 2.0], [2.5, 3.0, 3.0]]])
    taus = taus.astype(np.float32)  # [S=2, R=2, L=3]
    counter = EventCounter(standardizer, [ONE, TWO], taus)
    assert counter.bounds[2] is None and counter.bounds[0] is not None
    buffer = torch.full((4, n_b + 1, n_layers, n_t), -3, dtype=torch.int32)
    target = buffer.numpy() if as_numpy else buffer
    for layer in range(n_layers):
        u = random_u(rng, standardizer, layer, (n_b, n_t, d_ff)).to(dtype)
        counter.count_layer_into(layer, u, target[:, :n_b, layer])
        expected = dense_counts(standardizer, [ONE, TWO], taus, layer, u)
        assert buffer[:, :n_b, layer].reshape(4, -1).tolist() == expected.tolist()
        assert counter.count_layer(layer, u).tolist() == expected.tolist()
    assert (buffer[:, n_b:] == -3).all()  # the unused batch row is untouched
