"""The prompt view of the logit lens, as logos-in-layers prints it for "What is the capital of
Germany?": per prompt and layer, the top-k next tokens of the lens at the prompt's last
position with their probabilities, the probability mass outside them and the entropy.

A prompt longer than the model's context is left-truncated (its most recent tokens kept) and
the number of dropped tokens is recorded, as for ARC questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.errors import ConfigurationError
from .checkpoint_checks import context_length
from .checkpoints import LoadedModel
from .forward import run_pass
from .gain import LayerGains
from .lens import LensDecoder, decode_layers

PROMPT_COLUMNS = [
    "prompt_id",
    "prompt",
    "n_prompt_tokens",
    "truncated_tokens",
    "layer",
    "k",
    "token_id",
    "token",
    "prob",
    "rest_mass",
    "entropy_nats",
    "is_final_top1",
    "collapse_layer",
]


def check_prompts(prompts: Any) -> list[str]:
    """``lens.prompts`` as a list of non-empty strings (an empty list is allowed: no view)."""
    if prompts is None:
        return []
    if not isinstance(prompts, Sequence) or isinstance(prompts, str):
        raise ConfigurationError(
            f"lens.prompts must be a list of strings, got {type(prompts).__name__}.",
            'Write lens.prompts as a YAML list, e.g. ["The capital of Germany is"], or [] to '
            "skip the prompt view.",
        )
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise ConfigurationError(
            f"lens.prompts entries {bad} are empty or not strings.",
            "Give every prompt some text, or remove it from lens.prompts.",
        )
    return list(prompts)


@contextmanager
def _cpu_threads(device: torch.device, n_threads: int):
    """Torch's intra-op threads set to ``n_threads`` on a CPU for the ``with`` block.

    One short prompt is the shape where the thread count changes how a CPU matmul splits its
    sums (measured: 1e-7 in probabilities between 1 and 2 threads), so the prompt view runs
    single-threaded and is byte-identical whichever process or Dask worker computes it.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _keep_last_position(store: dict, layer: int, residual: torch.Tensor) -> None:
    store[layer] = residual[:, -1]


def prompt_predictions(
    loaded: LoadedModel,
    prompts: Sequence[str],
    *,
    top_k: int = 5,
    gains: LayerGains | None = None,
    max_logit_elements: int | None = None,
) -> pd.DataFrame:
    """Per prompt and layer, the lens top-``k`` at the last position (columns PROMPT_COLUMNS).

    ``rest_mass = 1 - Σ top-k probabilities``; ``is_final_top1`` marks the row whose token is
    the last layer's top-1; ``collapse_layer`` is the first layer from which the lens top-1
    stays equal to the final top-1 at that position.
    """
    if int(top_k) < 1:
        raise ConfigurationError(
            f"lens.top_k must be a positive integer, got {top_k!r}.",
            "Set lens.top_k to the number of tokens to list per layer, e.g. 5.",
        )
    prompts = check_prompts(prompts)
    if loaded.tokenizer is None:
        raise ConfigurationError(
            "The prompt view needs the model's tokenizer, and this model has none loaded.",
            "Load the model with its tokenizer (a checkpoint folder with tokenizer files).",
        )
    decoder = LensDecoder(loaded.model, loaded.adapter)
    limit = context_length(loaded.model)
    rows: list[dict] = []
    for prompt_id, prompt in enumerate(prompts):
        ids = list(loaded.tokenizer(prompt)["input_ids"])
        if not ids:
            raise ConfigurationError(
                f"lens.prompts[{prompt_id}] ({prompt!r}) encodes to no tokens.",
                "Give the prompt some text the tokenizer can encode.",
            )
        dropped = max(0, len(ids) - limit) if limit else 0
        ids = ids[dropped:]
        residuals: dict[int, torch.Tensor] = {}  # this prompt's last position, per layer
        with _cpu_threads(loaded.device, 1):
            run_pass(
                loaded,
                np.asarray([ids], dtype=np.int64),
                batch_size=1,
                gains=gains,
                on_residual=partial(_keep_last_position, residuals),
            )
            hidden = decoder.hidden(torch.stack([residuals[i] for i in range(loaded.n_layers)]))
            stats = decode_layers(
                decoder,
                hidden,
                torch.zeros(1, dtype=torch.int64, device=hidden.device),
                max_logit_elements,
                top_k=int(top_k),
            )
        top1 = stats.top1[:, 0].cpu().numpy()
        agrees = top1 == top1[-1]
        collapse = int(len(agrees) - np.argmin(agrees[::-1])) if not agrees.all() else 0
        probs = stats.topk_prob[:, 0].cpu().numpy().astype(np.float64)
        token_ids = stats.topk_id[:, 0].cpu().numpy()
        entropy = stats.entropy[:, 0].cpu().numpy()
        for layer in range(loaded.n_layers):
            rest = float(max(0.0, 1.0 - probs[layer].sum()))
            for k, (token_id, prob) in enumerate(
                zip(token_ids[layer], probs[layer], strict=True), start=1
            ):
                rows.append(
                    {
                        "prompt_id": prompt_id,
                        "prompt": prompt,
                        "n_prompt_tokens": len(ids),
                        "truncated_tokens": dropped,
                        "layer": layer,
                        "k": k,
                        "token_id": int(token_id),
                        "token": loaded.tokenizer.decode([int(token_id)]),
                        "prob": float(prob),
                        "rest_mass": rest,
                        "entropy_nats": float(entropy[layer]),
                        "is_final_top1": bool(token_id == top1[-1]),
                        "collapse_layer": collapse,
                    }
                )
    return pd.DataFrame(rows, columns=PROMPT_COLUMNS)
