"""Architecture adapters: where u is read and where the gain acts, per model family (SPEC §2).

u[t, l, i] is the input of the MLP's output projection (read with a forward pre-hook), which
for gated MLPs equals ``act(gate(h)) * up(h)``. The gain multiplies the MLP's contribution to
the residual stream with a forward hook, never by editing weights: the output of ``mlp`` for
pre-norm families, the output of ``post_feedforward_layernorm`` for post-norm families
(scaling ``mlp`` there would be undone by that norm). ``ATTN_GLOBAL`` scales the attention
output the same way (after the post-attention norm in post-norm families).

Adding a family: write one :class:`ArchitectureAdapter` entry (module paths plus a function
recomputing u from the MLP input) in :data:`ADAPTERS` and add it to the adapter tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import InstrumentationError, UnsupportedArchitectureError
from .gain import LayerGains

UObserver = Callable[[int, torch.Tensor], None]


# Each function recomputes u of one block from the MLP's input x with the block's own modules.


def _gated(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    mlp = block.mlp
    return mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)


def _fused_gated(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    gate, up = block.mlp.gate_up_proj(x).chunk(2, dim=-1)
    return up * block.mlp.activation_fn(gate)


def _neox(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return block.mlp.act(block.mlp.dense_h_to_4h(x))


def _gpt2(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return block.mlp.act(block.mlp.c_fc(x))


def _opt(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return block.activation_fn(block.fc1(x))


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Module paths of one model family. Paths inside a block are dotted attribute names.

    * ``layers_path``: from the ``*ForCausalLM`` object to the ``ModuleList`` of blocks.
    * ``u_module``: the module whose *input* is u (the MLP's output projection).
    * ``mlp_module``: the module whose *input* is the MLP's input; ``recompute_u`` maps
      (block, that input) to u with the block's own modules.
    * ``mlp_gain_module`` / ``attn_gain_module``: modules whose *output* is the MLP / attention
      contribution to the residual (first element when the module returns a tuple).
    * ``final_norm_path`` (from the ``*ForCausalLM`` object): the norm applied to the last
      block's output before the unembedding, used by the logit lens
      (:mod:`avalanche_kedro.measure.lens`); an attribute that is ``None`` in a given checkpoint
      (OPT without a final norm) means no norm. ``output_projection_path``: an optional
      projection between that norm and the unembedding (OPT's ``project_out``).
    """

    family: str
    model_types: tuple[str, ...]
    layers_path: str
    u_module: str
    mlp_module: str
    mlp_gain_module: str
    attn_gain_module: str
    recompute_u: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    gated: bool
    final_norm_path: str = ""
    output_projection_path: str | None = None

    def submodule(self, root: nn.Module, path: str, role: str) -> nn.Module:
        """``root.get_submodule(path)``; a path the model lacks is an InstrumentationError."""
        try:
            return root.get_submodule(path)
        except AttributeError as error:
            raise InstrumentationError(
                f"{type(root).__name__} has no submodule '{path}' ({role}) that the "
                f"'{self.family}' adapter expects: {error}.",
                "The adapter's module paths in avalanche_kedro/measure/adapters.py do not match this "
                "model's implementation (wrong family, or a transformers upgrade moved "
                "modules); fix the adapter entry for this model type and run the adapter, gain and "
                "forward tests (pytest tests/measure).",
            ) from error

    def layers(self, model: nn.Module) -> list[nn.Module]:
        blocks = self.submodule(model, self.layers_path, "the list of blocks")
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            raise InstrumentationError(
                f"'{self.layers_path}' of {type(model).__name__} is a "
                f"{type(blocks).__name__}, not a non-empty ModuleList of blocks.",
                "Point layers_path of the adapter entry in avalanche_kedro/measure/adapters.py at the "
                "model's ModuleList of decoder blocks.",
            )
        return list(blocks)

    def n_layers(self, model: nn.Module) -> int:
        return len(self.layers(model))

    def d_ff(self, model: nn.Module) -> int:
        projection = self.submodule(
            self.layers(model)[0], self.u_module, "the MLP's output projection"
        )
        if isinstance(projection, nn.Linear):
            return int(projection.in_features)
        weight = getattr(projection, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            # transformers' Conv1D (gpt2) stores weight as [in_features, out_features].
            return int(weight.shape[0])
        raise InstrumentationError(
            f"u_module '{self.u_module}' is a {type(projection).__name__}, not the MLP's "
            "output projection (a Linear or Conv1D layer), so d_ff cannot be read from it.",
            "Point u_module of the adapter entry in avalanche_kedro/measure/adapters.py at the "
            "projection whose input is act(gate(x)) * up(x).",
        )


ADAPTERS: tuple[ArchitectureAdapter, ...] = (
    ArchitectureAdapter(
        family="llama-style gated MLP (pre-norm)",
        model_types=("llama", "mistral", "qwen2", "qwen3", "olmo", "granite"),
        layers_path="model.layers",
        u_module="mlp.down_proj",
        mlp_module="mlp",
        mlp_gain_module="mlp",
        attn_gain_module="self_attn",
        recompute_u=_gated,
        gated=True,
        final_norm_path="model.norm",
    ),
    ArchitectureAdapter(
        family="gemma/olmo2 gated MLP (post-norm)",
        model_types=("gemma2", "gemma3_text", "olmo2"),
        layers_path="model.layers",
        u_module="mlp.down_proj",
        mlp_module="mlp",
        mlp_gain_module="post_feedforward_layernorm",
        attn_gain_module="post_attention_layernorm",
        recompute_u=_gated,
        gated=True,
        final_norm_path="model.norm",
    ),
    ArchitectureAdapter(
        family="phi3 fused gate_up MLP",
        model_types=("phi3",),
        layers_path="model.layers",
        u_module="mlp.down_proj",
        mlp_module="mlp",
        mlp_gain_module="mlp",
        attn_gain_module="self_attn",
        recompute_u=_fused_gated,
        gated=True,
        final_norm_path="model.norm",
    ),
    ArchitectureAdapter(
        family="gpt_neox / pythia",
        model_types=("gpt_neox",),
        layers_path="gpt_neox.layers",
        u_module="mlp.dense_4h_to_h",
        mlp_module="mlp",
        mlp_gain_module="mlp",
        attn_gain_module="attention",
        recompute_u=_neox,
        gated=False,
        final_norm_path="gpt_neox.final_layer_norm",
    ),
    ArchitectureAdapter(
        family="gpt2",
        model_types=("gpt2",),
        layers_path="transformer.h",
        u_module="mlp.c_proj",
        mlp_module="mlp",
        mlp_gain_module="mlp",
        attn_gain_module="attn",
        recompute_u=_gpt2,
        gated=False,
        final_norm_path="transformer.ln_f",
    ),
    ArchitectureAdapter(
        family="opt",
        model_types=("opt",),
        layers_path="model.decoder.layers",
        u_module="fc2",
        mlp_module="fc1",
        mlp_gain_module="fc2",
        attn_gain_module="self_attn",
        recompute_u=_opt,
        gated=False,
        final_norm_path="model.decoder.final_layer_norm",
        output_projection_path="model.decoder.project_out",
    ),
)

SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(t for a in ADAPTERS for t in a.model_types)


def adapter_for(model_type: str) -> ArchitectureAdapter:
    """The adapter of a ``config.model_type``; a clear error for any other architecture."""
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedArchitectureError(
        f"Model type '{model_type}' has no adapter. Supported model types: "
        f"{', '.join(SUPPORTED_MODEL_TYPES)}.",
        "Use a checkpoint of a supported family, or add an ArchitectureAdapter entry to "
        "avalanche_kedro/measure/adapters.py (module paths of the blocks, of the MLP's output "
        "projection and of the modules whose outputs are the MLP and attention contributions) "
        "and add a case for it in tests/measure/model_cases.py (pytest tests/measure).",
    )


def _scale_output(factor: float):
    def hook(_module: nn.Module, _args, output):
        if isinstance(output, tuple):
            return (output[0] * factor, *output[1:])
        return output * factor

    return hook


@contextmanager
def instrument(
    model: nn.Module,
    adapter: ArchitectureAdapter,
    *,
    gains: LayerGains | None = None,
    on_u: UObserver | None = None,
    on_mlp_input: UObserver | None = None,
    on_residual: UObserver | None = None,
) -> Iterator[None]:
    """Install the gain and observation hooks for the duration of a ``with`` block.

    ``on_u(layer, u)`` receives u (the input of the output projection) of every layer;
    ``on_mlp_input(layer, x)`` the MLP's input (used to recompute u in the validate step);
    ``on_residual(layer, h)`` the block's output, i.e. the residual stream after block ``layer``
    with the gains applied (``[B, T, d]``; read by the logit lens).
    A gain hook is installed only where the factor differs from 1, so ``g = 1`` runs exactly
    the plain model's arithmetic. u and x keep the model's own leading shape: ``[B, T, .]``,
    except OPT, which flattens tokens before ``fc1`` (``[B*T, .]``, same row-major order).
    A module path the model lacks raises :class:`InstrumentationError`; no hook is left behind.
    """
    blocks = adapter.layers(model)
    if gains is not None and not (len(gains.mlp) == len(gains.attn) == len(blocks)):
        raise InstrumentationError(
            f"The gains cover {len(gains.mlp)} MLP and {len(gains.attn)} attention layers but "
            f"the model has {len(blocks)} blocks.",
            "Build the gains with layer_gains(intervention, g, n_layers) for this model.",
        )
    handles = []
    try:
        for index, block in enumerate(blocks):
            if on_u is not None:
                module = adapter.submodule(block, adapter.u_module, "u_module")
                handles.append(
                    module.register_forward_pre_hook(lambda _m, args, _i=index: on_u(_i, args[0]))
                )
            if on_mlp_input is not None:
                module = adapter.submodule(block, adapter.mlp_module, "mlp_module")
                handles.append(
                    module.register_forward_pre_hook(
                        lambda _m, args, _i=index: on_mlp_input(_i, args[0])
                    )
                )
            if on_residual is not None:
                handles.append(
                    block.register_forward_hook(
                        lambda _m, _args, output, _i=index: on_residual(
                            _i, output[0] if isinstance(output, tuple) else output
                        )
                    )
                )
            if gains is not None and gains.mlp[index] != 1.0:
                module = adapter.submodule(block, adapter.mlp_gain_module, "mlp_gain_module")
                handles.append(module.register_forward_hook(_scale_output(gains.mlp[index])))
            if gains is not None and gains.attn[index] != 1.0:
                module = adapter.submodule(block, adapter.attn_gain_module, "attn_gain_module")
                handles.append(module.register_forward_hook(_scale_output(gains.attn[index])))
        yield
    finally:
        for handle in handles:
            handle.remove()
