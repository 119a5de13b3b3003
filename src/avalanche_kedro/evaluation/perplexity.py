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


def paired_perplexity_difference(
    nll_sum_reference,
    n_tokens_reference,
    nll_sum,
    n_tokens,
    condition_key: str,
    replicates: int,
) -> dict[str, float | int]:
    """``ppl - ppl_reference`` on the same windows, with its paired window-bootstrap CI.

    Both arrays are per window, in the same window order (the caller aligns them by
    ``seq_id``). Each replicate draws one set of windows (``condition_key``: the key
    :func:`perplexity_summary` uses, so its replicates are those of the two marginal CIs) and
    applies it to both sides: ``diff_b = exp(W_b·nll / W_b·n) - exp(W_b·nll_ref / W_b·n_ref)``.
    A CI that excludes 0 is a difference the windows agree on; its half-width is the smallest
    perplexity difference this many windows can detect. ``n_windows_worse`` counts the windows
    whose per-token NLL is higher than the reference's (a sign count, descriptive).
    """
    reference = np.asarray(nll_sum_reference, dtype=np.float64)
    values = np.asarray(nll_sum, dtype=np.float64)
    tokens_reference = np.asarray(n_tokens_reference, dtype=np.float64)
    tokens = np.asarray(n_tokens, dtype=np.float64)
    if reference.shape != values.shape or tokens.shape != tokens_reference.shape:
        raise ValueError(
            f"paired perplexity needs the same windows on both sides, got {reference.shape[0]} "
            f"and {values.shape[0]} windows"
        )
    weights = resample_weights(
        bootstrap_indices(len(values), replicates, condition_key), len(values)
    )
    differences = np.exp(pooled_ratio(weights, values, tokens)) - np.exp(
        pooled_ratio(weights, reference, tokens_reference)
    )
    low, high = percentile_interval(differences)
    point = float(
        np.exp(values.sum() / tokens.sum()) - np.exp(reference.sum() / tokens_reference.sum())
    )
    return {
        "ppl_diff": point,
        "ppl_diff_ci_low": low,
        "ppl_diff_ci_high": high,
        "n_windows_worse": int((values / tokens > reference / tokens_reference).sum()),
        "n_windows_paired": int(len(values)),
    }


def perplexity_difference_vs_gain(
    losses, g: float, reference_g: float, condition_key: str, replicates: int
) -> dict[str, float | int]:
    """:func:`paired_perplexity_difference` of gain ``g`` against ``reference_g`` from a
    per-window loss table (columns ``g``, ``seq_id``, ``nll_sum``, ``n_tokens``), the windows
    matched by ``seq_id``; a gain compared with itself gives 0 with the CI [0, 0]."""
    sides = []
    for gain in (reference_g, g):
        part = losses[np.isclose(losses["g"].to_numpy(dtype=np.float64), gain)]
        sides.append(part.sort_values("seq_id"))
    reference, compared = sides
    if list(reference["seq_id"]) != list(compared["seq_id"]):
        raise ValueError(
            f"gains {reference_g:g} and {g:g} were not measured on the same windows "
            f"({len(reference)} and {len(compared)} windows); the paired difference needs them"
        )
    return paired_perplexity_difference(
        reference["nll_sum"],
        reference["n_tokens"],
        compared["nll_sum"],
        compared["n_tokens"],
        condition_key,
        replicates,
    )
