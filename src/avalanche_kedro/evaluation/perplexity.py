"""Language-model quality of windows: summed next-token NLL in fp32 (SPEC §8).

For a window of T tokens the logits at position t predict token t + 1, so positions 1 ... T-1
are scored: ``nll = -sum_{t=1}^{T-1} log p(x_t | x_<t)`` with log-probabilities from fp32
logits (the model may run in bf16; its logits are cast before the log-softmax). The
token-weighted mean over windows is ``nll_mean = sum nll / sum (T - 1)`` and
``ppl = exp(nll_mean)``; its CI resamples windows (a ratio of sums per replicate).
"""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.bootstrap import (
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
)


def window_nll(logits: torch.Tensor, input_ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL (float64) and number of scored tokens of each window of a batch.

    ``logits [B, T, V]`` and ``input_ids [B, T]``; one window at a time so the fp32
    log-softmax never holds more than ``T x V`` values.
    """
    sums = np.empty(logits.shape[0], dtype=np.float64)
    for row in range(logits.shape[0]):
        log_probs = torch.log_softmax(logits[row, :-1].float(), dim=-1)
        picked = log_probs.gather(1, input_ids[row, 1:].unsqueeze(1))
        sums[row] = float(-picked.double().sum())
    return sums, np.full(logits.shape[0], logits.shape[1] - 1, dtype=np.int64)


def perplexity_summary(nll_sum, n_tokens, condition_key: str, replicates: int) -> dict[str, float]:
    """``nll_mean``, ``ppl`` and their window-bootstrap CIs (seeded by the condition key)."""
    nll_sum = np.asarray(nll_sum, dtype=np.float64)
    n_tokens = np.asarray(n_tokens, dtype=np.float64)
    nll_mean = float(nll_sum.sum() / n_tokens.sum())
    weights = resample_weights(
        bootstrap_indices(len(nll_sum), replicates, condition_key), len(nll_sum)
    )
    means = pooled_ratio(weights, nll_sum, n_tokens)
    low, high = percentile_interval(means)
    return {
        "nll_mean": nll_mean,
        "ppl": float(np.exp(nll_mean)),
        "nll_mean_ci_low": low,
        "nll_mean_ci_high": high,
        "ppl_ci_low": float(np.exp(low)),
        "ppl_ci_high": float(np.exp(high)),
    }
