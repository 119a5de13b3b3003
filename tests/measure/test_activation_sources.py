"""Reading user activations (measure.activation_sources): the accepted forms, the refusals,
and mlp_activations' capture from a model in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.measure.activation_sources import (
    ActivationError,
    ActivationSource,
    mlp_activations,
)


def source(value, passes=1, layer_axis=2):
    return ActivationSource(value, "activations", passes, layer_axis)


def shapes(src: ActivationSource) -> list[list[tuple[int, ...]]]:
    return [[tuple(u.shape) for u in layers] for layers in src.batches()]


def test_every_accepted_form_yields_per_layer_batches():
    u = torch.randn(2, 5, 3, 4)  # [B, T, L, d_ff]
    per_layer = [u[:, :, layer] for layer in range(3)]
    expected = [[(2, 5, 4)] * 3]
    assert shapes(source(u)) == expected
    assert shapes(source(u.numpy())) == expected
    assert shapes(source(per_layer)) == expected  # one batch given layer by layer
    assert shapes(source(dict(enumerate(per_layer)))) == expected
    assert shapes(source([u, u[:1]])) == [[(2, 5, 4)] * 3, [(1, 5, 4)] * 3]  # two batches
    assert shapes(source(lambda: iter([u]))) == expected
    assert shapes(source(u.permute(2, 0, 1, 3), layer_axis=0)) == expected
    layers = next(source(u).batches())
    assert torch.equal(layers[1], u[:, :, 1])  # layer l is u[:, :, l], not a reordering


def test_a_callable_is_reopened_for_every_pass_and_a_one_shot_iterator_is_not():
    u = torch.randn(1, 2, 2, 3)
    calls = []
    reopen = source(lambda: calls.append(1) or iter([u]), passes=3)
    for _ in range(3):
        assert len(shapes(reopen)) == 1
    assert len(calls) == 3
    with pytest.raises(ActivationError, match="one-shot iterator.*3 times"):
        source(iter([u]), passes=3)
    once = source(iter([u]), passes=1)
    shapes(once)
    with pytest.raises(ActivationError, match="already consumed"):
        shapes(once)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("activations.npy", r"is a str, not an array|is a str"),
        ([], "yielded no batch"),
        ({1: torch.zeros(1, 2, 3)}, r"keys \[1\]; expected layer indices 0\.\.L-1"),
        ([[torch.zeros(2, 3)]], r"Layer 0 of activation batch 0 has shape \(2, 3\)"),
        (torch.zeros(2, 3), r"shape \(2, 3\); a batch is \[windows, tokens, layers, d_ff\]"),
        ([torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 3, 3)], "Batch 1 .* 3 layers .* 2 x 3"),
        ([torch.zeros(1, 2, 3), torch.zeros(1, 3, 3)], "disagree in shape"),
        (torch.zeros(1, 2, 2, 3, dtype=torch.bool), "dtype torch.bool"),
    ],
)
def test_malformed_activations_are_refused_with_the_argument_named(value, message):
    with pytest.raises(ActivationError, match=message):
        shapes(source(value))


def test_mlp_activations_captures_u_per_batch_and_leaves_no_hook(small_model, small_windows):
    ids = small_windows[:5]
    batches = mlp_activations(small_model.model, ids, batch_size=2)
    first = next(batches)
    assert len(first) == small_model.n_layers
    assert {tuple(u.shape) for u in first} == {(2, ids.shape[1], small_model.d_ff)}
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) for m in small_model.model.modules()
    )
    assert hooks == 0  # nothing stays installed while the caller holds the generator
    rest = list(batches)
    assert [u[0].shape[0] for u in rest] == [2, 1]  # 5 windows in batches of 2
    # u is the input of down_proj: recompute it for layer 0 of the first batch
    mlp = small_model.model.model.layers[0].mlp
    seen = {}
    handle = mlp.down_proj.register_forward_pre_hook(lambda m, a: seen.setdefault("u", a[0]))
    with torch.inference_mode():
        small_model.model(input_ids=torch.as_tensor(ids[:2]))
    handle.remove()
    assert torch.equal(first[0], seen["u"])


def test_mlp_activations_refuses_bad_ids(small_model):
    with pytest.raises(ActivationError, match=r"expected int \[N, T\]"):
        next(mlp_activations(small_model.model, np.zeros((2, 4), dtype=np.float32)))
    with pytest.raises(ActivationError, match="batch_size >= 1"):
        next(mlp_activations(small_model.model, np.zeros((2, 4), dtype=np.int64), batch_size=0))
