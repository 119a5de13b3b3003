"""Instrumented forward passes: batching, hooks, progress, and the SPEC §2 validate step.

Every window is forwarded once per pass, in batches of ``batch_size`` windows of identical
length (no padding, no attention mask needed). When logits are not needed the LM head is
skipped by calling the backbone only. Observers receive u layer by layer inside the hooks, on
the model's device, so nothing shaped [N, T, L, d_ff] is ever assembled anywhere.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.errors import InstrumentationError, NonFiniteActivationError
from .adapters import instrument
from .checkpoint_checks import check_token_ids
from .checkpoints import LoadedModel
from .gain import LayerGains, layer_gains

BatchCallback = Callable[[int, int], None]

#: Tokens forwarded by this process (every pass, every model); read by the provenance hook.
_TOKENS_FORWARDED = [0]


def tokens_forwarded() -> int:
    """Total tokens forwarded through any model by this process so far."""
    return _TOKENS_FORWARDED[0]


def count_tokens(n_tokens: int) -> None:
    _TOKENS_FORWARDED[0] += int(n_tokens)


@dataclass
class PassStats:
    """Work done by one or more passes: windows, tokens and wall time."""

    windows: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, other: PassStats) -> None:
        self.windows += other.windows
        self.tokens += other.tokens
        self.seconds += other.seconds


def token_progress(total_tokens: int, description: str, enabled: bool = True) -> tqdm:
    """A progress bar in tokens (with tokens/s) spanning several passes of one node."""
    return tqdm(
        total=int(total_tokens),
        unit="tok",
        unit_scale=True,
        desc=description,
        disable=not enabled,
        file=sys.stderr,
        mininterval=1.0,
    )


def run_pass(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    *,
    batch_size: int,
    gains: LayerGains | None = None,
    on_u: Callable[[int, torch.Tensor], None] | None = None,
    on_batch: BatchCallback | None = None,
    on_batch_end: BatchCallback | None = None,
    on_logits: Callable[[int, int, torch.Tensor], None] | None = None,
    on_residual: Callable[[int, torch.Tensor], None] | None = None,
    progress: bool | tqdm = False,
    description: str = "forward",
) -> PassStats:
    """Forward every window of ``input_ids [N, T]`` once, in batches, with hooks installed.

    ``on_batch(start, stop)`` runs before and ``on_batch_end(start, stop)`` after each batch of
    rows ``[start, stop)``; ``on_logits(start, stop, logits)`` receives the batch's logits
    (only then is the LM head run); ``on_residual(layer, h)`` the residual stream after each
    block. Hooks are installed once for the whole pass.
    ``progress`` is a flag (one bar for this pass) or a bar shared by several passes.
    """
    if batch_size < 1:
        from ..core.errors import ConfigurationError

        raise ConfigurationError(
            f"runtime.batch_size must be at least 1, got {batch_size}.",
            "Set runtime.batch_size to a positive number of windows per forward pass.",
        )
    check_windows_fit(loaded, input_ids)
    n_windows, seq_len = input_ids.shape
    module = loaded.model if on_logits is not None else loaded.backbone
    stats = PassStats()
    started = time.perf_counter()
    owns_bar = not isinstance(progress, tqdm)
    if owns_bar:
        bar = token_progress(n_windows * seq_len, description, enabled=bool(progress))
    else:
        bar = progress
        bar.set_postfix_str(description, refresh=False)
    with (
        instrument(loaded.model, loaded.adapter, gains=gains, on_u=on_u, on_residual=on_residual),
        torch.inference_mode(),
    ):
        for start in range(0, n_windows, batch_size):
            stop = min(n_windows, start + batch_size)
            batch = torch.as_tensor(input_ids[start:stop], dtype=torch.long, device=loaded.device)
            if on_batch is not None:
                on_batch(start, stop)
            output = module(input_ids=batch, use_cache=False)
            count_tokens(batch.numel())
            if on_logits is not None:
                on_logits(start, stop, output.logits)
            if on_batch_end is not None:
                on_batch_end(start, stop)
            bar.update((stop - start) * seq_len)
    if owns_bar:
        bar.close()
    if loaded.device.type == "cuda":
        torch.cuda.synchronize(loaded.device)
    stats.windows = n_windows
    stats.tokens = n_windows * seq_len
    stats.seconds = time.perf_counter() - started
    return stats


def check_windows_fit(loaded: LoadedModel, input_ids: np.ndarray) -> None:
    """Every token id of the windows has a row in the model's input embedding (host-side max
    over [N, T] ids: windows cut with another tokenizer stop here, not as an IndexError deep
    inside the embedding)."""
    rows = loaded.model.get_input_embeddings().num_embeddings
    check_token_ids(np.asarray(input_ids), rows, loaded.manifest.get("checkpoint", "the model"))


def validate_instrumentation(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    g_test: float = 0.9,
    u_tolerance: float = 1e-5,
) -> dict[str, Any]:
    """The SPEC §2 checks that must pass before any experiment; raises when one fails.

    1. The hooked u equals u recomputed from the MLP input with the block's own modules
       (``act(gate(x)) * up(x)`` for gated MLPs) within ``u_tolerance`` (compared in fp32).
    2. With every gain hook set to g = 1 the logits equal the plain model's bit for bit.
    3. With ``MLP_GLOBAL`` at ``g_test`` the logits differ.
    """
    check_windows_fit(loaded, input_ids)
    model, adapter = loaded.model, loaded.adapter
    batch = torch.as_tensor(input_ids, dtype=torch.long, device=loaded.device)
    blocks = adapter.layers(model)
    captured_u: dict[int, torch.Tensor] = {}
    captured_x: dict[int, torch.Tensor] = {}

    with torch.inference_mode():
        plain = model(input_ids=batch, use_cache=False).logits.float()
        identity = layer_gains("MLP_GLOBAL", 1.0, loaded.n_layers)
        with instrument(
            model,
            adapter,
            gains=identity,
            on_u=lambda layer, u: captured_u.__setitem__(layer, u.detach().clone()),
            on_mlp_input=lambda layer, x: captured_x.__setitem__(layer, x.detach().clone()),
        ):
            hooked = model(input_ids=batch, use_cache=False).logits.float()
        errors = []
        for layer, block in enumerate(blocks):
            hooked_u, mlp_input = captured_u.get(layer), captured_x.get(layer)
            try:
                recomputed = None if mlp_input is None else adapter.recompute_u(block, mlp_input)
            except (RuntimeError, AttributeError):
                recomputed = None
            if (
                hooked_u is None
                or recomputed is None
                or recomputed.shape != hooked_u.shape
                or hooked_u.shape[-1] != loaded.d_ff
            ):
                errors.append(float("inf"))  # a hook did not fire, or u has the wrong shape
                continue
            errors.append(float((hooked_u.float() - recomputed.float()).abs().max().item()))
        with instrument(model, adapter, gains=layer_gains("MLP_GLOBAL", g_test, loaded.n_layers)):
            scaled = model(input_ids=batch, use_cache=False).logits.float()

    # NaN never equals NaN: without this check a broken checkpoint would be reported as
    # hooks that do not reproduce the model, blaming the adapter instead of the weights.
    nonfinite = [
        layer for layer in sorted(captured_u) if not bool(torch.isfinite(captured_u[layer]).all())
    ]
    if nonfinite or not bool(torch.isfinite(plain).all()):
        where = (
            f"Layer {nonfinite[0]} produced NaN or inf MLP activations (layers affected: "
            f"{nonfinite})"
            if nonfinite
            else "The logits contain NaN or inf (every MLP activation is finite)"
        )
        raise NonFiniteActivationError(
            f"{where} in the validate step of model '{loaded.manifest.get('model_id')}' "
            f"({loaded.dtype}, test batch of {int(batch.shape[0])} windows).",
            "Run the model in float32 (runtime.dtype: float32) or check the checkpoint's "
            "weights for NaN/inf; half precision can overflow in large models.",
        )
    report = {
        "n_windows": int(batch.shape[0]),
        "seq_len": int(batch.shape[1]),
        "u_max_abs_error_per_layer": errors,
        "u_tolerance": u_tolerance,
        "u_matches_recomputed": bool(max(errors) <= u_tolerance),
        "logits_identical_at_g1": bool(torch.equal(plain, hooked)),
        "g_test": g_test,
        "logits_max_abs_change_at_g_test": float((scaled - plain).abs().max().item()),
    }
    report["logits_change_at_g_test"] = report["logits_max_abs_change_at_g_test"] > 0.0
    failures = []
    if not report["u_matches_recomputed"]:
        worst = int(np.argmax(errors))
        failures.append(
            f"hooked u differs from the recomputed MLP activation by {max(errors):.3g} "
            f"(layer {worst}; tolerance {u_tolerance})"
        )
    if not report["logits_identical_at_g1"]:
        failures.append("with g = 1 the hooked model's logits differ from the plain model's")
    if not report["logits_change_at_g_test"]:
        failures.append(f"with g = {g_test} the logits are unchanged, so the gain has no effect")
    if failures:
        raise InstrumentationError(
            f"The hooks do not reproduce model '{loaded.manifest.get('model_id')}' "
            f"({loaded.manifest.get('model_type')}): " + "; ".join(failures) + ".",
            "The adapter's module paths in avalanche_kedro/measure/adapters.py do not match this "
            "model's implementation (a transformers upgrade can move modules); fix the adapter "
            "entry for this model type and run the adapter, gain and forward tests "
            "(pytest tests/measure).",
        )
    return report
