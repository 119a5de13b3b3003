"""Tiny real models of every supported family, shared by the adapter, gain and forward tests.

Every case builds a tiny random-init model of the *real* transformers class from a config
(fp32, eval mode, fixed seed) — never a mock — so a transformers upgrade that moves a module
or changes a block's arithmetic fails the tests. The expectations (which modules hold the
blocks, how u is recomputed, which module's output is the MLP / attention contribution) are
written out independently here, not read back from the adapter under test.

Models are cached per (case, depth) for the whole session, so ``test_adapters``, ``test_gain``
and ``test_forward`` share one model of each case.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from avalanche_kedro.measure.adapters import adapter_for  # noqa: E402
from avalanche_kedro.measure.checkpoints import LoadedModel  # noqa: E402

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


def first_output(output):
    return output[0] if isinstance(output, tuple) else output


def capture_outputs(modules, prepend: bool):
    """Forward hooks storing each module's output (first tuple element), per layer index.

    ``prepend=True`` runs before any hook already installed (sees the module's own output);
    otherwise it runs after them (sees the output as modified by the adapter's hooks).
    """
    store: dict[int, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(
            lambda _m, _a, out, _i=i: store.__setitem__(_i, first_output(out).detach().clone()),
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
