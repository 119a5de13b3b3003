"""Reading MLP activations handed to the measurement API (:mod:`.activations`).

A *batch* is one array ``[B, T, L, d_ff]`` (``layer_axis`` says where L is) or the layers one
by one (a list, or a ``{layer: tensor}`` dict, of ``[B, T, d_ff]``); ``activations`` is a batch,
an iterable of batches or a zero-argument callable returning one. :class:`ActivationSource`
turns any of these into per-layer torch tensors, one batch at a time, and checks that every
batch has the same layers and width; :func:`mlp_activations` captures u from a model in memory
with the project's own hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from ..core.errors import AvalancheError, NonFiniteActivationError
from .accumulators import FiniteGuard
from .adapters import ArchitectureAdapter
from .gain import LayerGains


class ActivationError(AvalancheError, ValueError):
    """Activations handed to the measurement API are malformed or inconsistent."""


# --------------------------------------------------------------------------------------------
# Reading activations


def _as_tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, np.ndarray):
        tensor = torch.from_numpy(value)
    else:
        raise ActivationError(
            f"{what} is a {type(value).__name__}, not an array.",
            "Pass torch tensors or numpy arrays of MLP activations.",
        )
    if not (tensor.is_floating_point()):
        raise ActivationError(
            f"{what} has dtype {tensor.dtype}; MLP activations are floating point.",
            "Pass the activations u themselves (float32, bfloat16, ...), not token ids or "
            "event counts.",
        )
    return tensor


def _layers_of(batch, index: int, layer_axis: int) -> list[torch.Tensor]:
    """One batch as per-layer tensors ``[B, T, d_ff]`` (views where possible)."""
    where = f"activation batch {index}"
    if isinstance(batch, Mapping):
        keys = sorted(batch)
        if keys != list(range(len(keys))):
            raise ActivationError(
                f"{where} is a dict with keys {keys[:8]}; expected layer indices 0..L-1.",
                "Key per-layer activations by their layer index, e.g. {0: u0, 1: u1, ...}.",
            )
        batch = [batch[key] for key in keys]
    if isinstance(batch, (list, tuple)):
        if not batch:
            raise ActivationError(f"{where} is an empty list of layers.", "Give every layer.")
        layers = [_as_tensor(u, f"layer {layer} of {where}") for layer, u in enumerate(batch)]
        for layer, u in enumerate(layers):
            if u.ndim != 3:
                raise ActivationError(
                    f"Layer {layer} of {where} has shape {tuple(u.shape)}; per-layer "
                    "activations are [windows, tokens, d_ff].",
                    "Reshape each layer's u to [B, T, d_ff] (a flattened [B*T, d_ff] needs "
                    "u.reshape(B, T, -1)).",
                )
        return layers
    tensor = _as_tensor(batch, where)
    if tensor.ndim != 4:
        hint = (
            " It looks like one batch given layer by layer: wrap it as a list of batches."
            if tensor.ndim == 3
            else ""
        )
        raise ActivationError(
            f"{where} has shape {tuple(tensor.shape)}; a batch is [windows, tokens, layers, "
            f"d_ff] (or a list of per-layer [windows, tokens, d_ff] arrays).{hint}",
            "Stack the layers on one axis (and set layer_axis), or pass a list per layer.",
        )
    tensor = torch.movedim(tensor, layer_axis, 2)
    return [tensor[:, :, layer, :] for layer in range(tensor.shape[2])]


def _is_one_batch(activations) -> bool:
    return isinstance(activations, (torch.Tensor, np.ndarray, Mapping)) or (
        isinstance(activations, (list, tuple))
        and bool(activations)
        and all(isinstance(u, (torch.Tensor, np.ndarray)) and u.ndim == 3 for u in activations)
    )


class ActivationSource:
    """The batches of ``activations``, readable ``passes`` times, checked for consistency."""

    def __init__(self, activations, what: str, passes: int, layer_axis: int):
        self.what = what
        self.layer_axis = layer_axis
        self.shape: tuple[int, int] | None = None  # (L, d_ff) of the first batch
        if callable(activations):
            self.opener = activations
        elif _is_one_batch(activations):
            self.opener = lambda: [activations]
        elif isinstance(activations, Iterator):
            if passes > 1:
                raise ActivationError(
                    f"{what} is a one-shot iterator, but fitting thresholds from scratch reads "
                    f"the calibration activations {passes} times (moments, rate profile, top-k).",
                    "Pass a list of batches or a function returning a fresh iterator (e.g. "
                    "lambda: mlp_activations(model, ids)), or give moments= and profile=.",
                )
            consumed = [False]

            def open_once():
                if consumed[0]:
                    raise ActivationError(f"{what} was already consumed.", "Pass a list.")
                consumed[0] = True
                return activations

            self.opener = open_once
        elif isinstance(activations, Iterable):
            self.opener = lambda: activations
        else:
            raise ActivationError(
                f"{what} is a {type(activations).__name__}.",
                "Pass an array [B, T, L, d_ff], a list of batches, or a function returning an "
                "iterator of batches.",
            )

    def batches(self) -> Iterator[list[torch.Tensor]]:
        """Per-layer tensors of each batch; raises on an empty source or changing shapes."""
        empty = True
        for index, batch in enumerate(self.opener()):
            layers = _layers_of(batch, index, self.layer_axis)
            shape = (len(layers), int(layers[0].shape[-1]))
            leading = {tuple(u.shape[:2]) for u in layers}
            if len(leading) > 1 or any(int(u.shape[-1]) != shape[1] for u in layers):
                raise ActivationError(
                    f"The layers of batch {index} of {self.what} disagree in shape: "
                    f"{sorted({tuple(u.shape) for u in layers})}.",
                    "Every layer of a batch must be [B, T, d_ff] with the same B, T and d_ff.",
                )
            if self.shape is None:
                self.shape = shape
            elif shape != self.shape:
                raise ActivationError(
                    f"Batch {index} of {self.what} has {shape[0]} layers x d_ff {shape[1]}; "
                    f"earlier batches had {self.shape[0]} x {self.shape[1]}.",
                    "Capture every batch from the same model and the same hook points.",
                )
            empty = False
            yield layers
        if empty:
            raise ActivationError(
                f"{self.what} yielded no batch (an empty list, or an iterator that was already "
                "consumed).",
                "Pass at least one batch of activations; a generator can be read only once, so "
                "pass the function that creates it instead.",
            )


def expect_shape(source: ActivationSource, n_layers: int, d_ff: int, against: str) -> None:
    if source.shape is not None and source.shape != (n_layers, d_ff):
        layers, width = source.shape
        raise ActivationError(
            f"{source.what} have {layers} layers x d_ff {width}, but {against} were computed "
            f"for {n_layers} layers x d_ff {d_ff}.",
            "Use activations of the same model and hook points as the calibration (a swapped "
            "axis shows up here too: set layer_axis to the axis that holds the layers).",
        )


def stream(
    source: ActivationSource, n_layers: int, d_ff: int, against: str, start: Callable
) -> None:
    """Feed every layer of every batch to ``start(device, guard)``'s update function.

    The reductions live on the device of the first batch's activations; a NaN/inf raises
    :class:`NonFiniteActivationError` at the end of its batch, naming the layer and windows.
    """
    update = guard = None
    first = 0
    for layers in source.batches():
        expect_shape(source, n_layers, d_ff, against)
        if update is None:
            device = layers[0].device
            guard = FiniteGuard(n_layers, device)
            update = start(device, guard)
        stop = first + int(layers[0].shape[0])
        guard.on_batch(first, stop)
        for layer, u in enumerate(layers):
            update(layer, u.to(device))
        bad = guard.bad_layer()
        if bad is not None:
            raise non_finite(source, bad, first, stop)
        first = stop


def non_finite(source: ActivationSource, layer: int, first: int, stop: int) -> Exception:
    """The error for NaN/inf values in layer ``layer`` of windows ``first..stop-1``."""
    return NonFiniteActivationError(
        f"Layer {layer} of {source.what} holds NaN or inf values (windows {first}..{stop - 1}).",
        "Check how the activations were captured: a model run in half precision can overflow "
        "(capture in float32), and NaN weights spread to every later layer.",
    )


def mlp_activations(
    model,
    input_ids,
    *,
    batch_size: int = 8,
    gains: LayerGains | None = None,
    adapter: ArchitectureAdapter | None = None,
) -> Iterator[list[torch.Tensor]]:
    """u of every layer, batch by batch, from a model already in memory, with the project's
    hooks (:func:`.adapters.instrument`, the pipeline's own capture).

    ``model`` is a supported ``*ForCausalLM`` (or a :class:`.LoadedModel`); ``input_ids`` an
    int array ``[N, T]`` of windows. Yields per batch a list of L tensors ``[B, T, d_ff]`` on
    the model's device (one batch at a time). ``gains`` (:func:`.gain.layer_gains`) scales the
    MLP/attention residual contributions, as in the gain sweep. Since this is a generator,
    pass ``lambda: mlp_activations(model, ids)`` to :func:`fit_thresholds`.
    """
    from .adapters import instrument
    from .lens import as_loaded

    loaded = as_loaded(model, adapter)
    ids = np.asarray(input_ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ActivationError(
            f"input_ids has dtype {ids.dtype} and shape {ids.shape}; expected int [N, T].",
            "Pass token ids as an integer array of windows [N, T].",
        )
    if batch_size < 1:
        raise ActivationError(f"batch_size is {batch_size}.", "Use batch_size >= 1.")
    captured: list[torch.Tensor | None] = [None] * loaded.n_layers

    def keep(layer: int, u: torch.Tensor) -> None:
        captured[layer] = u.detach().clone()

    for start in range(0, ids.shape[0], batch_size):
        batch = torch.as_tensor(ids[start : start + batch_size], device=loaded.device).long()
        # hooks only while this batch runs: nothing stays installed while the caller holds
        # the generator between batches
        with (
            instrument(loaded.model, loaded.adapter, gains=gains, on_u=keep),
            torch.inference_mode(),
        ):
            loaded.backbone(input_ids=batch, use_cache=False)
        layers = [u.reshape(batch.shape[0], batch.shape[1], -1) for u in captured]
        captured[:] = [None] * loaded.n_layers
        yield layers
