"""Gain interventions (SPEC §2): which layers' MLP or attention contribution is scaled by g.

``band_edges`` / ``layer_gains`` are checked by hand; their effect is checked on a tiny real
model of every supported family (see :mod:`tests.measure.model_cases`): g = 1 is bit-identical,
every scaled contribution is exactly g times what the module computed, the other contributions
and the layers before a band are untouched, and in post-norm families the gain acts after
``post_feedforward_layernorm``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from avalanche_kedro.core.errors import ConfigurationError, InstrumentationError  # noqa: E402
from avalanche_kedro.measure.adapters import adapter_for, instrument  # noqa: E402
from avalanche_kedro.measure.gain import band_edges, layer_gains  # noqa: E402

from .model_cases import (  # noqa: E402
    CASES,
    POST_NORM_TYPES,
    G,
    attn_contribution,
    blocks_of,
    capture_outputs,
    first_output,
    input_ids,
    logits,
    mlp_contribution,
    model_type_of,
    tiny_model,
    total_hooks,
)

# --------------------------------------------------------------------------------------------
# g = 1 is exact, g != 1 changes the logits; gains must match the model's depth


@pytest.mark.parametrize("case", CASES)
def test_identity_gain_is_bit_identical_and_other_gains_change_logits(case):
    model_type = model_type_of(case)
    model = tiny_model(case)
    adapter = adapter_for(model_type)
    n_layers = adapter.n_layers(model)
    ids = input_ids(2)
    baseline_hooks = total_hooks(model)
    plain = logits(model, ids)
    for intervention in ("MLP_GLOBAL", "ATTN_GLOBAL", "MLP_BAND_EARLY"):
        with instrument(
            model,
            adapter,
            gains=layer_gains(intervention, 1.0, n_layers),
            on_u=lambda *_: None,
            on_mlp_input=lambda *_: None,
        ):
            identical = logits(model, ids)
        assert torch.equal(identical, plain), intervention
    for intervention in ("MLP_GLOBAL", "ATTN_GLOBAL", "MLP_BAND_EARLY", "MLP_BAND_MID",
                         "MLP_BAND_LATE"):  # fmt: skip
        with instrument(model, adapter, gains=layer_gains(intervention, G, n_layers)):
            scaled = logits(model, ids)
        assert not torch.equal(scaled, plain), intervention
        assert (scaled - plain).abs().max() > 1e-4, intervention
    assert total_hooks(model) == baseline_hooks
    assert torch.equal(logits(model, ids), plain), "a hook leaked out of the with block"


def test_gains_for_another_depth_are_refused():
    model = tiny_model("llama")
    with pytest.raises(InstrumentationError, match="4 blocks"):
        with instrument(model, adapter_for("llama"), gains=layer_gains("MLP_GLOBAL", G, 6)):
            pass
    assert total_hooks(model) == 0


# --------------------------------------------------------------------------------------------
# Post-norm families: the gain acts after post_feedforward_layernorm


def _block_residual_updates(model, blocks, ids, extra_hooks=()):
    """Per layer: block output minus block input (the block's total residual update)."""
    inputs, outputs = {}, {}
    handles = []
    for i, block in enumerate(blocks):
        handles.append(
            block.register_forward_pre_hook(
                lambda _m, args, kwargs, _i=i: inputs.__setitem__(
                    _i, (args[0] if args else kwargs["hidden_states"]).detach().clone()
                ),
                with_kwargs=True,
            )
        )
        handles.append(
            block.register_forward_hook(
                lambda _m, _a, out, _i=i: outputs.__setitem__(
                    _i, first_output(out).detach().clone()
                )
            )
        )
    handles.extend(extra_hooks)
    try:
        logits(model, ids)
    finally:
        for handle in handles:
            handle.remove()
    return {i: outputs[i] - inputs[i] for i in outputs}, inputs


@pytest.mark.parametrize("model_type", POST_NORM_TYPES)
def test_post_norm_gain_acts_after_post_feedforward_layernorm(model_type):
    model = tiny_model(model_type)
    adapter = adapter_for(model_type)
    assert adapter.mlp_gain_module == "post_feedforward_layernorm"
    blocks = blocks_of(model, model_type)
    ids = input_ids(3)
    norms = [b.post_feedforward_layernorm for b in blocks]

    plain_norm_out, handles = capture_outputs(norms, prepend=False)
    plain_update, plain_in = _block_residual_updates(model, blocks, ids, handles)

    # (a) Scaling the mlp module's output instead is undone by post_feedforward_layernorm:
    # layer 0 (same input) gets the same residual update, up to the norm's eps.
    scale_mlp = blocks[0].mlp.register_forward_hook(lambda _m, _a, out: out * G)
    naive_norm_out, handles = capture_outputs(norms, prepend=False)
    naive_update, naive_in = _block_residual_updates(model, blocks, ids, [scale_mlp, *handles])
    assert torch.equal(naive_in[0], plain_in[0])
    naive_change = (naive_update[0] - plain_update[0]).abs().max()
    gain_change = ((G - 1) * plain_norm_out[0]).abs().max()
    # Only the norm's eps keeps RMSNorm(g * y) from being exactly RMSNorm(y).
    assert naive_change < 0.01 * gain_change, (naive_change, gain_change)
    torch.testing.assert_close(naive_norm_out[0], plain_norm_out[0], rtol=1e-2, atol=1e-3)

    # (b) The adapter's MLP gain multiplies the norm's output by exactly g in every layer, and
    # layer 0's residual update changes by exactly (g - 1) x that output.
    with instrument(model, adapter, gains=layer_gains("MLP_GLOBAL", G, len(blocks))):
        own_out, before = capture_outputs(norms, prepend=True)
        seen_out, after = capture_outputs(norms, prepend=False)
        gained_update, gained_in = _block_residual_updates(model, blocks, ids, [*before, *after])
    assert torch.equal(gained_in[0], plain_in[0])
    assert torch.equal(own_out[0], plain_norm_out[0])
    for i in range(len(blocks)):
        assert torch.equal(seen_out[i], own_out[i] * G), f"layer {i}"
    torch.testing.assert_close(
        gained_update[0] - plain_update[0], (G - 1) * plain_norm_out[0], rtol=1e-5, atol=1e-5
    )
    assert (gained_update[0] - plain_update[0]).abs().max() > 0.1


# --------------------------------------------------------------------------------------------
# Which contributions each intervention scales, layer by layer


def _contribution_factors(model, model_type, adapter, gains, ids):
    """Run with ``gains``; per layer, check the MLP / attention contributions as the residual
    stream receives them are exactly ``factor x`` what the module itself computed."""
    blocks = blocks_of(model, model_type)
    mlp_modules = [mlp_contribution(b, model_type) for b in blocks]
    attn_modules = [attn_contribution(b, model_type) for b in blocks]
    with instrument(model, adapter, gains=gains):
        mlp_own, h1 = capture_outputs(mlp_modules, prepend=True)
        attn_own, h2 = capture_outputs(attn_modules, prepend=True)
        mlp_seen, h3 = capture_outputs(mlp_modules, prepend=False)
        attn_seen, h4 = capture_outputs(attn_modules, prepend=False)
        try:
            logits(model, ids)
        finally:
            for handle in (*h1, *h2, *h3, *h4):
                handle.remove()
    return mlp_own, mlp_seen, attn_own, attn_seen


def _assert_scaled(own, seen, factors, what):
    for layer, factor in enumerate(factors):
        expected = own[layer] if factor == 1.0 else own[layer] * factor
        assert torch.equal(seen[layer], expected), f"{what} layer {layer}: factor {factor}"
        if factor != 1.0:
            assert not torch.equal(seen[layer], own[layer]), f"{what} layer {layer} unscaled"


@pytest.mark.parametrize("case", CASES)
def test_attn_global_scales_only_attention(case):
    model_type = model_type_of(case)
    model = tiny_model(case)
    adapter = adapter_for(model_type)
    n_layers = adapter.n_layers(model)
    gains = layer_gains("ATTN_GLOBAL", G, n_layers)
    mlp_own, mlp_seen, attn_own, attn_seen = _contribution_factors(
        model, model_type, adapter, gains, input_ids(4)
    )
    _assert_scaled(attn_own, attn_seen, [G] * n_layers, "attention")
    _assert_scaled(mlp_own, mlp_seen, [1.0] * n_layers, "mlp")
    # No MLP-gain hook is installed at all.
    with instrument(model, adapter, gains=gains):
        blocks = blocks_of(model, model_type)
        hooks_on_mlp = sum(len(mlp_contribution(b, model_type)._forward_hooks) for b in blocks)
    assert hooks_on_mlp == 0


def test_band_edges_by_hand():
    assert band_edges(3) == (1, 2)
    assert band_edges(4) == (1, 2)
    assert band_edges(5) == (1, 3)
    assert band_edges(6) == (2, 4)
    assert band_edges(28) == (9, 18)
    assert layer_gains("MLP_BAND_EARLY", G, 6).mlp == (G, G, 1, 1, 1, 1)
    assert layer_gains("MLP_BAND_MID", G, 6).mlp == (1, 1, G, G, 1, 1)
    assert layer_gains("MLP_BAND_LATE", G, 6).mlp == (1, 1, 1, 1, G, G)
    assert layer_gains("MLP_BAND_MID", G, 4).mlp == (1, G, 1, 1)
    assert layer_gains("MLP_BAND_LATE", G, 3).mlp == (1, 1, G)
    late28 = layer_gains("MLP_BAND_LATE", G, 28).mlp
    assert late28 == (1.0,) * 18 + (G,) * 10
    for band in ("MLP_BAND_EARLY", "MLP_BAND_MID", "MLP_BAND_LATE"):
        assert layer_gains(band, G, 6).attn == (1.0,) * 6
    assert layer_gains("MLP_GLOBAL", G, 6).attn == (1.0,) * 6
    assert layer_gains("ATTN_GLOBAL", G, 6).mlp == (1.0,) * 6
    with pytest.raises(ConfigurationError):
        layer_gains("MLP_BAND_MID", G, 2)
    with pytest.raises(ConfigurationError):
        layer_gains("MLP_SOMEWHERE", G, 6)


#: Hand-computed for L = 6 (c1 = 2, c2 = 4).
BANDS_L6 = {
    "MLP_BAND_EARLY": (0, 1),
    "MLP_BAND_MID": (2, 3),
    "MLP_BAND_LATE": (4, 5),
    "MLP_GLOBAL": (0, 1, 2, 3, 4, 5),
}


@pytest.mark.parametrize("case", CASES)
def test_mlp_bands_scale_exactly_their_layers(case):
    model_type = model_type_of(case)
    model = tiny_model(case, n_layers=6)
    adapter = adapter_for(model_type)
    assert adapter.n_layers(model) == 6
    ids = input_ids(5)
    for intervention, layers in BANDS_L6.items():
        factors = [G if layer in layers else 1.0 for layer in range(6)]
        mlp_own, mlp_seen, attn_own, attn_seen = _contribution_factors(
            model, model_type, adapter, layer_gains(intervention, G, 6), ids
        )
        _assert_scaled(mlp_own, mlp_seen, factors, f"{intervention} mlp")
        _assert_scaled(attn_own, attn_seen, [1.0] * 6, f"{intervention} attention")


@pytest.mark.parametrize("case", ["llama", "gpt2", "gemma2"])
def test_band_leaves_earlier_layers_untouched(case):
    """Residual updates of layers before the band are bit-identical to the plain model's; the
    first band layer's MLP update is g times the plain one (same input)."""
    model_type = model_type_of(case)
    model = tiny_model(case, n_layers=6)
    adapter = adapter_for(model_type)
    blocks = blocks_of(model, model_type)
    ids = input_ids(6)
    mlp_modules = [mlp_contribution(b, model_type) for b in blocks]
    plain_mlp, handles = capture_outputs(mlp_modules, prepend=False)
    plain_update, _ = _block_residual_updates(model, blocks, ids, handles)
    with instrument(model, adapter, gains=layer_gains("MLP_BAND_LATE", G, 6)):
        late_mlp, handles = capture_outputs(mlp_modules, prepend=False)
        late_update, late_in = _block_residual_updates(model, blocks, ids, handles)
    for layer in range(4):
        assert torch.equal(late_update[layer], plain_update[layer]), layer
    assert torch.equal(late_mlp[4], plain_mlp[4] * G)
    assert not torch.equal(late_update[4], plain_update[4])
