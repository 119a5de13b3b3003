"""Architecture-adapter tests (SPEC §2): where u is read and where the gain acts, per family.

Every case builds a tiny random-init model of the *real* transformers class from a config
(fp32, eval mode, fixed seed) — never a mock — so a transformers upgrade that moves a module
or changes a block's arithmetic fails here. The expectations (which modules hold the blocks,
how u is recomputed, which module's output is the MLP / attention contribution) are written
out independently in this file, not read back from the adapter under test.
"""

from __future__ import annotations

import dataclasses
import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from avalanche_kedro.core.errors import (  # noqa: E402
    ConfigurationError,
    InstrumentationError,
    UnsupportedArchitectureError,
)
from avalanche_kedro.measure.adapters import (  # noqa: E402
    ADAPTERS,
    SUPPORTED_MODEL_TYPES,
    adapter_for,
    instrument,
)
from avalanche_kedro.measure.checkpoints import LoadedModel  # noqa: E402
from avalanche_kedro.measure.forward import validate_instrumentation  # noqa: E402
from avalanche_kedro.measure.gain import band_edges, layer_gains  # noqa: E402

transformers.logging.set_verbosity_error()
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

VOCAB, HIDDEN, D_FF, HEADS = 64, 32, 64, 4
REQUIRED_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gpt_neox", "gpt2")
EXTRA_TYPES = ("olmo", "olmo2", "granite", "gemma3_text", "phi3", "opt")
#: Layout variants of supported types that real checkpoints use (``<type>:<variant>``).
VARIANTS = ("gpt_neox:sequential_residual", "opt:post_norm")
CASES = REQUIRED_TYPES + EXTRA_TYPES + VARIANTS

POST_NORM_TYPES = ("gemma2", "gemma3_text", "olmo2")
GATED_TYPES = ("llama", "mistral", "qwen2", "qwen3", "olmo", "granite") + POST_NORM_TYPES
G = 0.5


# --------------------------------------------------------------------------------------------
# Tiny real models


def _config(case: str, n_layers: int):
    model_type, _, variant = case.partition(":")
    # A larger init than the default 0.02 keeps activations well above the norms' eps, as in
    # trained checkpoints (otherwise RMSNorm(g * y) != RMSNorm(y) only because of eps).
    common = {"vocab_size": VOCAB, "initializer_range": 0.2}
    if model_type == "gpt2":
        return AutoConfig.for_model(
            "gpt2", n_embd=HIDDEN, n_inner=D_FF, n_layer=n_layers, n_head=HEADS,
            n_positions=64, bos_token_id=0, eos_token_id=0, **common,
        )  # fmt: skip
    if model_type == "opt":
        return AutoConfig.for_model(
            "opt", hidden_size=HIDDEN, ffn_dim=D_FF, num_hidden_layers=n_layers,
            num_attention_heads=HEADS, max_position_embeddings=64, word_embed_proj_dim=HIDDEN,
            pad_token_id=1, bos_token_id=2, eos_token_id=2, init_std=0.2,
            do_layer_norm_before=(variant != "post_norm"), **common,
        )  # fmt: skip
    if model_type == "gpt_neox":
        return AutoConfig.for_model(
            "gpt_neox", hidden_size=HIDDEN, intermediate_size=D_FF, num_hidden_layers=n_layers,
            num_attention_heads=HEADS, max_position_embeddings=64, bos_token_id=0,
            eos_token_id=0, use_parallel_residual=(variant != "sequential_residual"), **common,
        )  # fmt: skip
    kwargs = {
        "hidden_size": HIDDEN,
        "intermediate_size": D_FF,
        "num_hidden_layers": n_layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,  # phi3 checks that pad_token_id lies inside the vocabulary
        **common,
    }
    if model_type in ("gemma2", "gemma3_text", "qwen3", "olmo2"):
        kwargs["head_dim"] = HIDDEN // HEADS
    return AutoConfig.for_model(model_type, **kwargs)


@functools.cache
def tiny_model(case: str, n_layers: int = 4) -> torch.nn.Module:
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(_config(case, n_layers), dtype=torch.float32)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def model_type_of(case: str) -> str:
    return case.partition(":")[0]


def input_ids(seed: int = 0, shape=(2, 12)) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Avoid the special ids 0..2 (pad/bos/eos of the configs above).
    return torch.randint(3, VOCAB, shape, generator=generator)


def logits(model, ids) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=ids, use_cache=False).logits


# --------------------------------------------------------------------------------------------
# Independent expectations (written from the transformers 5.x source, not from the adapter)


def blocks_of(model, model_type: str) -> list[torch.nn.Module]:
    if model_type == "gpt_neox":
        return list(model.gpt_neox.layers)
    if model_type == "gpt2":
        return list(model.transformer.h)
    if model_type == "opt":
        return list(model.model.decoder.layers)
    return list(model.model.layers)


def u_projection(block, model_type: str) -> torch.nn.Module:
    """The MLP's output projection, whose input is u."""
    if model_type == "gpt_neox":
        return block.mlp.dense_4h_to_h
    if model_type == "gpt2":
        return block.mlp.c_proj
    if model_type == "opt":
        return block.fc2
    return block.mlp.down_proj


def mlp_entry(block, model_type: str) -> torch.nn.Module:
    """The first module of the MLP (its input is the MLP's input)."""
    return block.fc1 if model_type == "opt" else block.mlp


def recompute_u(block, model_type: str, x: torch.Tensor) -> torch.Tensor:
    if model_type in GATED_TYPES:
        mlp = block.mlp
        return mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
    if model_type == "phi3":
        gate, up = block.mlp.gate_up_proj(x).split(block.mlp.down_proj.in_features, dim=-1)
        return block.mlp.activation_fn(gate) * up
    if model_type == "gpt_neox":
        return block.mlp.act(block.mlp.dense_h_to_4h(x))
    if model_type == "gpt2":
        return block.mlp.act(block.mlp.c_fc(x))
    if model_type == "opt":
        return block.activation_fn(block.fc1(x))
    raise AssertionError(model_type)


def mlp_contribution(block, model_type: str) -> torch.nn.Module:
    """The module whose output is added (as is) to the residual stream as the MLP update."""
    if model_type in POST_NORM_TYPES:
        return block.post_feedforward_layernorm
    if model_type == "opt":
        return block.fc2
    return block.mlp


def attn_contribution(block, model_type: str) -> torch.nn.Module:
    """The module whose output (first tuple element) is the attention update."""
    if model_type in POST_NORM_TYPES:
        return block.post_attention_layernorm
    if model_type == "gpt_neox":
        return block.attention
    if model_type == "gpt2":
        return block.attn
    return block.self_attn


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def capture_outputs(modules, prepend: bool):
    """Forward hooks storing each module's output (first tuple element), per layer index.

    ``prepend=True`` runs before any hook already installed (sees the module's own output);
    otherwise it runs after them (sees the output as modified by the adapter's hooks).
    """
    store: dict[int, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(
            lambda _m, _a, out, _i=i: store.__setitem__(_i, _first(out).detach().clone()),
            prepend=prepend,
        )
        for i, module in enumerate(modules)
    ]
    return store, handles


def total_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def loaded_model(case: str, model, adapter=None) -> LoadedModel:
    model_type = model_type_of(case)
    return LoadedModel(
        model=model,
        tokenizer=None,
        adapter=adapter or adapter_for(model.config.model_type),
        device=torch.device("cpu"),
        dtype=torch.float32,
        manifest={"model_id": f"tiny-{case}", "model_type": model_type},
    )


# --------------------------------------------------------------------------------------------
# Registry


def test_every_case_builds_the_real_class_and_is_supported():
    assert set(REQUIRED_TYPES + EXTRA_TYPES) <= set(SUPPORTED_MODEL_TYPES)
    assert len(SUPPORTED_MODEL_TYPES) == len(set(SUPPORTED_MODEL_TYPES)), "type in two adapters"
    for case in CASES:
        model = tiny_model(case)
        assert model.config.model_type == model_type_of(case)
        assert type(model).__module__.startswith("transformers.models."), type(model)


@pytest.mark.parametrize("case", CASES)
def test_adapter_paths_resolve_to_the_expected_modules(case):
    model_type = model_type_of(case)
    model = tiny_model(case)
    adapter = adapter_for(model_type)
    blocks = blocks_of(model, model_type)
    assert adapter.n_layers(model) == len(blocks) == 4
    for ours, theirs in zip(adapter.layers(model), blocks, strict=True):
        assert ours is theirs
        assert theirs.get_submodule(adapter.u_module) is u_projection(theirs, model_type)
        assert theirs.get_submodule(adapter.mlp_module) is mlp_entry(theirs, model_type)
        assert theirs.get_submodule(adapter.mlp_gain_module) is mlp_contribution(theirs, model_type)
        assert theirs.get_submodule(adapter.attn_gain_module) is attn_contribution(
            theirs, model_type
        )
    assert adapter.d_ff(model) == D_FF


# --------------------------------------------------------------------------------------------
# 1. u


@pytest.mark.parametrize("case", CASES)
def test_hooked_u_equals_independent_recomputation(case):
    model_type = model_type_of(case)
    model = tiny_model(case)
    adapter = adapter_for(model_type)
    blocks = blocks_of(model, model_type)
    ids = input_ids(1)
    hooked_u, hooked_x, own_u, own_x = {}, {}, {}, {}
    own = [
        u_projection(b, model_type).register_forward_pre_hook(
            lambda _m, a, _i=i: own_u.__setitem__(_i, a[0].detach().clone())
        )
        for i, b in enumerate(blocks)
    ] + [
        mlp_entry(b, model_type).register_forward_pre_hook(
            lambda _m, a, _i=i: own_x.__setitem__(_i, a[0].detach().clone())
        )
        for i, b in enumerate(blocks)
    ]
    try:
        with (
            torch.inference_mode(),
            instrument(
                model,
                adapter,
                on_u=lambda i, u: hooked_u.__setitem__(i, u.detach().clone()),
                on_mlp_input=lambda i, x: hooked_x.__setitem__(i, x.detach().clone()),
            ),
        ):
            model(input_ids=ids, use_cache=False)
            assert sorted(hooked_u) == sorted(hooked_x) == list(range(len(blocks)))
            for i, block in enumerate(blocks):
                u, x = hooked_u[i], hooked_x[i]
                assert u.dtype == torch.float32
                assert u.shape[-1] == adapter.d_ff(model) == D_FF
                assert x.shape[-1] == HIDDEN
                # OPT flattens tokens before fc1: u is [B*T, d_ff] there (same row-major
                # order, which is all the observers rely on); elsewhere [B, T, d_ff].
                lead = (ids.numel(),) if model_type == "opt" else tuple(ids.shape)
                assert u.shape == (*lead, D_FF) and x.shape == (*lead, HIDDEN)
                assert torch.equal(u, own_u[i]) and torch.equal(x, own_x[i])
                expected = recompute_u(block, model_type, x)
                torch.testing.assert_close(u, expected, rtol=0, atol=1e-5)
                assert u.abs().max() > 1e-3  # not a trivially zero tensor
    finally:
        for handle in own:
            handle.remove()


# --------------------------------------------------------------------------------------------
# 2./3. g = 1 is exact, g != 1 changes the logits; hooks are always removed


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


def test_hooks_are_removed_when_the_block_raises():
    model = tiny_model("llama")
    adapter = adapter_for("llama")
    before = total_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with instrument(
            model,
            adapter,
            gains=layer_gains("MLP_GLOBAL", G, 4),
            on_u=lambda *_: None,
            on_mlp_input=lambda *_: None,
        ):
            assert total_hooks(model) > before
            raise RuntimeError("boom")
    assert total_hooks(model) == before


# --------------------------------------------------------------------------------------------
# 4. Post-norm families: the gain acts after post_feedforward_layernorm


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
                lambda _m, _a, out, _i=i: outputs.__setitem__(_i, _first(out).detach().clone())
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
# 5. Which contributions each intervention scales, layer by layer


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


# --------------------------------------------------------------------------------------------
# 6. The validate step


@pytest.mark.parametrize("case", CASES)
def test_validate_instrumentation_passes(case):
    model = tiny_model(case)
    loaded = loaded_model(case, model)
    assert loaded.n_layers == 4 and loaded.d_ff == D_FF
    ids = input_ids(7, shape=(3, 10)).numpy()
    report = validate_instrumentation(loaded, ids, g_test=0.9)
    assert report["u_matches_recomputed"] is True
    assert report["logits_identical_at_g1"] is True
    assert report["logits_change_at_g_test"] is True
    assert len(report["u_max_abs_error_per_layer"]) == 4
    assert max(report["u_max_abs_error_per_layer"]) <= 1e-5
    assert (report["n_windows"], report["seq_len"]) == (3, 10)


# --------------------------------------------------------------------------------------------
# 7. Unsupported architectures and adapters that do not match the model


@pytest.mark.parametrize("model_type", ["bert", "mamba", "t5", ""])
def test_unknown_architecture_is_a_clear_error(model_type):
    with pytest.raises(UnsupportedArchitectureError) as info:
        adapter_for(model_type)
    message = str(info.value)
    assert f"'{model_type}'" in message
    for supported in REQUIRED_TYPES + EXTRA_TYPES:
        assert supported in message
    assert "ArchitectureAdapter" in message and "adapters.py" in message
    assert "How to fix" in message


def test_every_adapter_is_covered_here():
    covered = {model_type_of(c) for c in CASES}
    for adapter in ADAPTERS:
        assert set(adapter.model_types) <= covered, adapter.family


@pytest.mark.parametrize(
    "change",
    [
        # A recompute that forgets the up projection.
        {"recompute_u": lambda block, x: block.mlp.act_fn(block.mlp.gate_proj(x))},
        # The MLP input read before the pre-MLP norm (the raw residual stream).
        {"mlp_module": "post_attention_layernorm"},
        # A recompute with gate and up swapped: act(up(x)) * gate(x).
        {
            "recompute_u": lambda block, x: (
                block.mlp.act_fn(block.mlp.up_proj(x)) * block.mlp.gate_proj(x)
            )
        },
    ],
    ids=["wrong-recompute", "mlp-input-before-norm", "gate-and-up-swapped"],
)
def test_mismatched_adapter_fails_validation(change):
    model = tiny_model("llama")
    wrong = dataclasses.replace(adapter_for("llama"), **change)
    loaded = loaded_model("llama", model, adapter=wrong)
    with pytest.raises(InstrumentationError) as info:
        validate_instrumentation(loaded, input_ids(8).numpy())
    assert "recomputed" in str(info.value)
    assert "How to fix" in str(info.value)
    assert total_hooks(model) == 0


def test_u_module_that_is_not_a_projection_is_an_instrumentation_error():
    model = tiny_model("llama")
    wrong = dataclasses.replace(adapter_for("llama"), u_module="mlp.act_fn")
    with pytest.raises(InstrumentationError, match="mlp.act_fn"):
        loaded_model("llama", model, adapter=wrong)


def test_u_of_the_wrong_width_is_an_instrumentation_error():
    model = tiny_model("llama")
    # up_proj is a Linear, but its input is x (width 32), not u (width 64).
    wrong = dataclasses.replace(adapter_for("llama"), u_module="mlp.up_proj")
    loaded = loaded_model("llama", model, adapter=wrong)
    with pytest.raises(InstrumentationError):
        validate_instrumentation(loaded, input_ids(8).numpy())


def test_module_paths_missing_from_the_model_are_an_instrumentation_error():
    """Module paths that do not exist in the model (e.g. after a transformers upgrade moved a
    module, or the wrong family's adapter) are an InstrumentationError naming the path, not a
    bare AttributeError, and no hook is left behind."""
    model = tiny_model("llama")
    before = total_hooks(model)
    post_norm_adapter = adapter_for("gemma2")
    with pytest.raises(InstrumentationError, match="post_feedforward_layernorm"):
        with instrument(model, post_norm_adapter, gains=layer_gains("MLP_GLOBAL", G, 4)):
            pass
    assert total_hooks(model) == before
    with pytest.raises(InstrumentationError, match="does_not_exist"):
        dataclasses.replace(adapter_for("llama"), layers_path="model.does_not_exist").layers(model)
    with pytest.raises(InstrumentationError, match="transformer.h"):
        loaded_model("llama", model, adapter=adapter_for("gpt2"))
