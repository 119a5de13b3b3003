"""Summed next-token NLL of windows and the perplexity summary (SPEC §8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avalanche_kedro.analysis.bootstrap import bootstrap_indices, percentile_interval
from avalanche_kedro.evaluation.perplexity import (
    paired_perplexity_difference,
    perplexity_difference_vs_gain,
    perplexity_summary,
    window_nll,
)


@pytest.fixture(scope="module")
def batch(small_model, small_windows):
    ids = torch.as_tensor(np.asarray(small_windows[:6]), dtype=torch.long)
    with torch.inference_mode():
        logits = small_model.model(input_ids=ids, use_cache=False).logits
    return logits, ids


def test_window_nll_equals_torch_cross_entropy(batch):
    logits, ids = batch
    B, T, V = logits.shape
    nll, n_tokens = window_nll(logits, ids)
    per_token = F.cross_entropy(
        logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1), reduction="none"
    )
    expected = per_token.reshape(B, T - 1).double().sum(dim=1).numpy()
    assert nll.dtype == np.float64 and nll.shape == (B,)
    np.testing.assert_allclose(nll, expected, rtol=1e-9, atol=0)
    np.testing.assert_array_equal(n_tokens, np.full(B, T - 1))
    assert (nll > 0).all()


def test_window_nll_equals_a_float64_log_softmax(batch):
    logits, ids = batch
    x = logits.double().numpy()[:, :-1]  # position t predicts token t + 1
    shifted = x - x.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    targets = ids.numpy()[:, 1:]
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    expected = -picked.sum(axis=1)
    nll, _ = window_nll(logits, ids)
    np.testing.assert_allclose(nll, expected, rtol=1e-5)


def test_window_nll_scores_positions_1_to_T_minus_1_only(batch):
    """Changing the first token's target or the last position's logits changes nothing."""
    logits, ids = batch
    nll, _ = window_nll(logits, ids)
    changed_logits = logits.clone()
    changed_logits[:, -1] = torch.randn_like(changed_logits[:, -1])  # predicts beyond the window
    changed_ids = ids.clone()
    changed_ids[:, 0] = (ids[:, 0] + 1) % logits.shape[-1]  # token 0 is never a target
    np.testing.assert_array_equal(window_nll(changed_logits, changed_ids)[0], nll)


def test_window_nll_casts_half_precision_logits_to_fp32(batch):
    logits, ids = batch
    low = logits.to(torch.bfloat16)
    nll, _ = window_nll(low, ids)
    np.testing.assert_array_equal(nll, window_nll(low.float(), ids)[0])


def test_perplexity_summary_hand_example():
    summary = perplexity_summary([10.0, 20.0], [5, 5], "B|LM", replicates=200)
    assert summary["nll_mean"] == 3.0
    assert summary["ppl"] == pytest.approx(math.exp(3.0), rel=1e-15)
    # Each replicate's ratio is 10/5, 30/10 or 20/5.
    assert 2.0 <= summary["nll_mean_ci_low"] <= summary["nll_mean_ci_high"] <= 4.0
    assert summary["ppl_ci_low"] == pytest.approx(math.exp(summary["nll_mean_ci_low"]))
    assert summary["ppl_ci_high"] == pytest.approx(math.exp(summary["nll_mean_ci_high"]))
    indices = bootstrap_indices(2, 200, "B|LM")
    sums, tokens = np.array([10.0, 20.0]), np.array([5.0, 5.0])
    ratios = sums[indices].sum(axis=1) / tokens[indices].sum(axis=1)
    low, high = percentile_interval(ratios)
    assert summary["nll_mean_ci_low"] == pytest.approx(low, rel=1e-12)
    assert summary["nll_mean_ci_high"] == pytest.approx(high, rel=1e-12)


def test_nll_mean_is_token_weighted():
    summary = perplexity_summary([10.0, 10.0], [10, 30], "B|LM", replicates=50)
    assert summary["nll_mean"] == pytest.approx(20.0 / 40.0)  # mean of ratios would be 2/3


def test_perplexity_ci_is_deterministic_per_key():
    rng = np.random.default_rng(0)
    sums, tokens = rng.uniform(50, 150, size=20), np.full(20, 31)
    first = perplexity_summary(sums, tokens, "B|LM", replicates=300)
    again = perplexity_summary(sums, tokens, "B|LM", replicates=300)
    other = perplexity_summary(sums, tokens, "B|other", replicates=300)
    assert first == again
    assert first["nll_mean"] == other["nll_mean"]
    assert (first["nll_mean_ci_low"], first["nll_mean_ci_high"]) != (
        other["nll_mean_ci_low"],
        other["nll_mean_ci_high"],
    )
    assert first["nll_mean_ci_low"] <= first["nll_mean"] <= first["nll_mean_ci_high"]


def test_paired_perplexity_difference_hand_example():
    """Two windows, g* worse on both: every replicate's difference is positive, and each
    replicate is exp(ratio at g*) - exp(ratio at g = 1) on the same resampled windows."""
    ref_sums, sums, tokens = np.array([10.0, 20.0]), np.array([12.0, 21.0]), np.array([5.0, 5.0])
    paired = paired_perplexity_difference(ref_sums, tokens, sums, tokens, "B|LM", replicates=200)
    assert paired["ppl_diff"] == pytest.approx(math.exp(33 / 10) - math.exp(30 / 10), rel=1e-12)
    assert paired["n_windows_worse"] == 2 and paired["n_windows_paired"] == 2
    indices = bootstrap_indices(2, 200, "B|LM")
    ratio = lambda s: s[indices].sum(axis=1) / tokens[indices].sum(axis=1)  # noqa: E731
    low, high = percentile_interval(np.exp(ratio(sums)) - np.exp(ratio(ref_sums)))
    assert (paired["ppl_diff_ci_low"], paired["ppl_diff_ci_high"]) == pytest.approx((low, high))
    assert paired["ppl_diff_ci_low"] > 0  # the windows agree: worse at g*


def test_pairing_detects_a_shift_the_marginal_cis_cannot():
    """Windows vary a lot between themselves, g* adds the same small NLL to each: the two
    marginal CIs overlap, the paired CI excludes 0 (the issue's 12-window case)."""
    rng = np.random.default_rng(1)
    tokens = np.full(12, 63.0)
    reference = rng.uniform(100, 250, size=12)
    shifted = reference + 6.0
    g1 = perplexity_summary(reference, tokens, "B|LM", 500)
    gstar = perplexity_summary(shifted, tokens, "B|LM", 500)
    assert gstar["ppl_ci_low"] < g1["ppl_ci_high"]  # the marginal CIs overlap
    paired = paired_perplexity_difference(reference, tokens, shifted, tokens, "B|LM", 500)
    assert paired["ppl_diff_ci_low"] > 0 and paired["n_windows_worse"] == 12


def test_perplexity_difference_vs_gain_matches_windows_by_seq_id():
    import pandas as pd

    losses = pd.DataFrame(
        {
            "g": [1.0, 1.0, 1.2, 1.2],
            "seq_id": [7, 3, 3, 7],  # stored in another order at each gain
            "nll_sum": [20.0, 10.0, 12.0, 21.0],
            "n_tokens": [5, 5, 5, 5],
        }
    )
    paired = perplexity_difference_vs_gain(losses, 1.2, 1.0, "B|LM", 100)
    assert paired["ppl_diff"] == pytest.approx(math.exp(33 / 10) - math.exp(30 / 10))
    itself = perplexity_difference_vs_gain(losses, 1.0, 1.0, "B|LM", 100)
    assert (itself["ppl_diff"], itself["ppl_diff_ci_low"], itself["ppl_diff_ci_high"]) == (0, 0, 0)
    with pytest.raises(ValueError, match="not measured on the same windows"):
        perplexity_difference_vs_gain(losses.iloc[:3], 1.2, 1.0, "B|LM", 100)
