"""The lens benchmark: the streamed logit lens against a bare forward pass and a dense lens.

On a random-init Llama of a preset shape (weights do not change the arithmetic's cost) it times,
on the same windows, interleaved over ``repeats`` rounds:

* ``bare``: the backbone forward pass alone (what any measurement pays);
* ``lens[budget]``: :func:`avalanche_kedro.measure.lens.layer_predictions` with
  ``max_logit_elements = budget`` (forward pass plus the streamed decode);
* ``dense``: what a short script does - ``output_hidden_states`` and, per batch and layer, a
  full ``log_softmax`` over the vocabulary (the entropy only; it holds ``[B, T, V]`` per layer).

Medians are reported with the ratios to ``bare``; the dense entropy is compared with the
streamed one (max absolute difference, nats) so a fast but wrong lens cannot win.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from ...measure.checkpoints import LoadedModel
from ...measure.forward import run_pass
from ...measure.lens import LensDecoder, as_loaded, layer_predictions

#: Model shapes: the embedded default's, and a Qwen2.5-7B-shaped one for a GPU.
LENS_PRESETS: dict[str, dict[str, Any]] = {
    "embedded": {
        "vocab_size": 4096,
        "hidden_size": 96,
        "intermediate_size": 384,
        "num_hidden_layers": 8,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "n_windows": 16,
        "seq_len": 256,
        "batch_size": 8,
        "budgets": [1 << 18, 1 << 20, 1 << 22, 1 << 24],
    },
    "qwen2.5-7b": {
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "n_windows": 16,
        "seq_len": 256,
        "batch_size": 8,
        "budgets": [1 << 26, 1 << 28],
    },
}


def _model(shape: dict[str, Any], device: torch.device, dtype: torch.dtype):
    from transformers import AutoConfig, AutoModelForCausalLM

    keys = [k for k in LENS_PRESETS["embedded"] if k.endswith(("_size", "_layers", "_heads"))]
    config = AutoConfig.for_model("llama", **{k: shape[k] for k in keys})
    torch.manual_seed(0)
    return as_loaded(AutoModelForCausalLM.from_config(config, dtype=dtype).to(device).eval())


def dense_entropy(loaded: LoadedModel, ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Reference: per batch, every layer's lens entropy from a full log_softmax ``[N, L, T]``."""
    decoder = LensDecoder(loaded.model, loaded.adapter)
    out = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            batch = torch.as_tensor(ids[start : start + batch_size], device=loaded.device)
            hidden = loaded.backbone(input_ids=batch, output_hidden_states=True).hidden_states
            layers = []
            for layer in range(1, len(hidden)):
                # the last entry of hidden_states is already normed (the model's own output)
                h = (
                    hidden[layer].float()
                    if layer == len(hidden) - 1
                    else decoder.hidden(hidden[layer])
                )
                log_p = torch.log_softmax(decoder.logits(h), -1)
                layers.append(-(log_p.exp() * log_p).sum(-1))
            out.append(torch.stack(layers, 1).cpu().numpy())
    return np.concatenate(out)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_lens(preset: dict[str, Any], repeats: int = 3, device: str = "cpu") -> dict[str, Any]:
    """Times and checks (module docstring); returns the JSON-ready result."""
    target = torch.device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    loaded = _model(preset, target, dtype)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, preset["vocab_size"], size=(preset["n_windows"], preset["seq_len"]))
    batch = int(preset["batch_size"])
    timings: dict[str, list[float]] = {"bare": [], "dense": []}
    timings.update({f"lens[{b}]": [] for b in preset["budgets"]})

    def timed(name: str, function) -> Any:
        _sync(target)
        started = time.perf_counter()
        result = function()
        _sync(target)
        timings[name].append(time.perf_counter() - started)
        return result

    streamed = dense = None
    for _ in range(int(repeats)):  # interleaved, so drift hits every variant alike
        timed("bare", lambda: run_pass(loaded, ids, batch_size=batch))
        for budget in preset["budgets"]:
            streamed = timed(
                f"lens[{budget}]",
                lambda b=budget: layer_predictions(
                    loaded, ids, batch_size=batch, max_logit_elements=b
                ),
            )
        dense = timed("dense", lambda: dense_entropy(loaded, ids, batch))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    tokens = int(ids.size)
    return {
        "preset": {k: v for k, v in preset.items()},
        "device": str(target),
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "repeats": int(repeats),
        "tokens": tokens,
        "seconds": timings,
        "median_seconds": medians,
        "ratio_to_bare_forward": {k: v / medians["bare"] for k, v in medians.items()},
        "tokens_per_second": {k: tokens / v for k, v in medians.items()},
        "max_abs_entropy_difference_dense_vs_streamed_nats": float(
            np.abs(dense - streamed.entropy).max()
        ),
    }
