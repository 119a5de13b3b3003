"""Forward passes that resume at a block from the residual stream of a g = 1 pass.

An intervention that leaves blocks ``0 .. s-1`` untouched (``MLP_BAND_MID`` and ``_LATE``, or
any intervention at g = 1) computes exactly the g = 1 residual stream ``h_s`` at the input of
block ``s``. :func:`capture_block_inputs` runs the plain model once up to the deepest block
needed and keeps ``h_s`` of each requested block; :func:`resume_at` then forwards a batch from
block ``s`` only: blocks below it are swapped for a pass-through for the duration of the call,
and block ``s``'s input is replaced by the cached ``h_s``. Embedding, position encodings and
the attention mask are still computed by the model itself (they cost nothing next to a block),
so the arithmetic from block ``s`` on is the model's own.

A cached residual carries a :class:`ResidualKey` (checkpoint, windows, block, gain setting);
:func:`resume_at` refuses one whose key does not match the pass it would feed.
:func:`check_resume_exact` compares a resumed pass with a full one bit for bit on a test batch
so an architecture whose blocks do not simply chain falls back to full passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import ConfigurationError
from .adapters import instrument
from .checkpoints import LoadedModel
from .gain import LayerGains, layer_gains

#: The gain setting whose residual stream a resumed pass reuses.
G1_SETTING = "MLP_GLOBAL g=1"


def first_changed_block(gains: LayerGains) -> int:
    """The first block whose computation differs from the g = 1 model: the smallest l with
    ``m_l != 1`` or ``a_l != 1`` (``L`` when every factor is 1). Blocks below it, their u and
    the residual stream entering it equal those of the g = 1 pass."""
    for layer, (mlp, attn) in enumerate(zip(gains.mlp, gains.attn, strict=True)):
        if mlp != 1.0 or attn != 1.0:
            return layer
    return len(gains.mlp)


def reusable_blocks(intervention_id: str, g: float, n_layers: int) -> int:
    """``first_changed_block`` of an intervention at gain g: 0 for the global interventions
    and ``MLP_BAND_EARLY``, ``c1`` / ``c2`` for ``MLP_BAND_MID`` / ``_LATE``, L at g = 1."""
    return first_changed_block(layer_gains(intervention_id, g, n_layers))


def checkpoint_identity(loaded: LoadedModel) -> str:
    """What names the weights of a loaded model: its content or weights hash when recorded,
    else its model id (test models built in memory)."""
    manifest = loaded.manifest
    for key in ("content_sha256", "weights_sha256", "model_id"):
        if manifest.get(key):
            return f"{key}:{manifest[key]}"
    return f"object:{id(loaded.model)}"


@dataclass(frozen=True)
class ResidualKey:
    """Where a cached residual came from: checkpoint, window rows ``[start, stop)`` of a slice,
    the block whose input it is, and the gain setting of the pass that produced it."""

    checkpoint: str
    slice_name: str
    window_start: int
    window_stop: int
    block: int
    gain_setting: str = G1_SETTING


@dataclass(frozen=True)
class CachedResidual:
    """The residual stream ``h [B, T, d_model]`` entering ``key.block`` (model dtype/device)."""

    key: ResidualKey
    hidden: torch.Tensor


class _StopForward(Exception):
    """Raised by the capture hook once the deepest requested block's input is kept."""


def _hidden_of(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def capture_block_inputs(
    loaded: LoadedModel,
    batch: torch.Tensor,
    blocks: Sequence[int],
    slice_name: str,
    window_start: int,
) -> dict[int, CachedResidual]:
    """One plain (g = 1) forward of ``batch [B, T]`` up to the deepest of ``blocks``, keeping
    the residual entering each of them; the blocks after the deepest are never run."""
    wanted = sorted({int(b) for b in blocks})
    if not wanted or wanted[0] < 1 or wanted[-1] >= loaded.n_layers:
        raise ValueError(f"blocks to capture must lie in [1, {loaded.n_layers}), got {wanted}")
    modules = loaded.adapter.layers(loaded.model)
    kept: dict[int, torch.Tensor] = {}
    identity = checkpoint_identity(loaded)
    stop = window_start + int(batch.shape[0])

    def keeper(block: int):
        def hook(_module, args, kwargs):
            kept[block] = _hidden_of(args, kwargs).clone()
            if block == wanted[-1]:
                raise _StopForward

        return hook

    handles = [modules[b].register_forward_pre_hook(keeper(b), with_kwargs=True) for b in wanted]
    try:
        with torch.inference_mode():
            loaded.backbone(input_ids=batch, use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {
        b: CachedResidual(ResidualKey(identity, slice_name, window_start, stop, b), kept[b])
        for b in wanted
    }


class _PassThrough(nn.Module):
    """Stands in for a skipped block: returns its input residual unchanged, in the block's own
    output format (a tensor, or a tuple whose first element is the residual)."""

    def __init__(self, tuple_output: bool):
        super().__init__()
        self.tuple_output = tuple_output

    def forward(self, hidden_states, *args, **kwargs):
        return (hidden_states,) if self.tuple_output else hidden_states


def block_output_is_tuple(loaded: LoadedModel, batch: torch.Tensor) -> bool:
    """Whether the model's blocks return a tuple (older layouts) or the residual tensor."""
    seen: list[bool] = []
    first = loaded.adapter.layers(loaded.model)[0]
    handle = first.register_forward_hook(
        lambda _m, _a, output: seen.append(isinstance(output, tuple))
    )
    try:
        with torch.inference_mode():
            loaded.backbone(input_ids=batch[:1], use_cache=False)
    finally:
        handle.remove()
    return bool(seen and seen[0])


@contextmanager
def _skipping_blocks(loaded: LoadedModel, start: int, tuple_output: bool) -> Iterator[None]:
    container = loaded.adapter.submodule(loaded.model, loaded.adapter.layers_path, "layers")
    originals = [container[i] for i in range(start)]
    try:
        for i in range(start):
            container[i] = _PassThrough(tuple_output)
        yield
    finally:
        for i, module in enumerate(originals):
            container[i] = module


def resume_at(
    loaded: LoadedModel,
    batch: torch.Tensor,
    residual: CachedResidual,
    expected: ResidualKey,
    tuple_output: bool,
):
    """Forward ``batch`` from block ``expected.block`` on, its input replaced by ``residual``.

    Call inside :func:`~.adapters.instrument` (hooks of the skipped blocks never fire).
    Refuses a residual whose key differs from ``expected`` (another checkpoint, windows, block
    or gain setting) rather than computing from the wrong stream. Returns the backbone output.
    """
    if residual.key != expected:
        raise ConfigurationError(
            f"The cached residual stream is {residual.key}, but this pass needs {expected}; "
            "resuming from it would compute another model's or another gain's activations.",
            "Capture the residual of the same checkpoint, windows, block and g = 1 setting "
            "(capture_block_inputs) right before resuming; never reuse one across runs.",
        )
    start = expected.block
    module = loaded.adapter.layers(loaded.model)[start]

    def substitute(_module, args, kwargs):
        if args:
            return (residual.hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": residual.hidden}

    handle = module.register_forward_pre_hook(substitute, with_kwargs=True)
    try:
        with _skipping_blocks(loaded, start, tuple_output), torch.inference_mode():
            return loaded.backbone(input_ids=batch, use_cache=False)
    finally:
        handle.remove()


def check_resume_exact(
    loaded: LoadedModel, batch: torch.Tensor, gains: LayerGains, start: int
) -> dict:
    """Bit-for-bit test of resuming at ``start`` under ``gains``: u of every block from
    ``start`` and the final hidden state of a resumed pass must equal those of a full pass.

    Returns ``{"exact": bool, "tuple_output": bool, "reason": str}``.
    """
    tuple_output = block_output_is_tuple(loaded, batch)
    full_u: dict[int, torch.Tensor] = {}
    resumed_u: dict[int, torch.Tensor] = {}
    with (
        instrument(
            loaded.model,
            loaded.adapter,
            gains=gains,
            on_u=lambda layer, u: full_u.__setitem__(layer, u.clone()),
        ),
        torch.inference_mode(),
    ):
        full = loaded.backbone(input_ids=batch, use_cache=False).last_hidden_state.clone()
    cached = capture_block_inputs(loaded, batch, [start], "check", 0)[start]
    with instrument(
        loaded.model,
        loaded.adapter,
        gains=gains,
        on_u=lambda layer, u: resumed_u.__setitem__(layer, u.clone()),
    ):
        resumed = resume_at(loaded, batch, cached, cached.key, tuple_output).last_hidden_state
    if sorted(resumed_u) != list(range(start, loaded.n_layers)):
        reason = f"the resumed pass ran blocks {sorted(resumed_u)}"
    elif not all(torch.equal(full_u[layer], resumed_u[layer]) for layer in resumed_u):
        reason = "u of a resumed block differs from the full pass"
    elif not torch.equal(full, resumed):
        reason = "the final hidden state differs from the full pass"
    else:
        reason = ""
    return {"exact": not reason, "tuple_output": tuple_output, "reason": reason}


__all__ = [
    "G1_SETTING",
    "CachedResidual",
    "ResidualKey",
    "block_output_is_tuple",
    "capture_block_inputs",
    "check_resume_exact",
    "checkpoint_identity",
    "first_changed_block",
    "resume_at",
    "reusable_blocks",
]
