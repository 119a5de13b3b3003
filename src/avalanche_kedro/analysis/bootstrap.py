"""Window bootstrap with paired resampling (SPEC §7).

Windows are resampled with replacement using ``default_rng(seed_of("boot", condition_key))``.
One index matrix per condition serves the real raster, both raster nulls, the token-shuffle
null and chi, so every difference (real - null) is computed replicate by replicate (paired).
Statistics are re-computed from per-window counts only (never from the rasters): a pooled ratio
``sum num / sum den`` for a replicate is ``(W @ num) / (W @ den)`` with ``W[b, n]`` the number
of times window ``n`` is drawn in replicate ``b``.
"""

from __future__ import annotations

import numpy as np

from ..core.seeds import seed_of
from ..core.threads import single_threaded_blas
from .lattice import CHI_EPS, pooled_branching

DEFAULT_REPLICATES = 500
CI_PERCENTILES = (2.5, 97.5)


def bootstrap_indices(n_windows: int, replicates: int, condition_key: str) -> np.ndarray:
    """``[replicates, n_windows]`` window indices drawn with replacement (seeded per condition)."""
    if n_windows < 1 or replicates < 1:
        raise ValueError("need at least one window and one replicate")
    rng = np.random.default_rng(seed_of("boot", condition_key))
    return rng.integers(0, n_windows, size=(replicates, n_windows))


def resample_weights(indices: np.ndarray, n_windows: int) -> np.ndarray:
    """``W[b, n]`` = how often window ``n`` appears in replicate ``b`` (int64)."""
    replicates = indices.shape[0]
    offsets = (np.arange(replicates)[:, None] * n_windows + indices).ravel()
    return np.bincount(offsets, minlength=replicates * n_windows).reshape(replicates, n_windows)


@single_threaded_blas
def pooled_ratio(weights: np.ndarray, numerator, denominator) -> np.ndarray:
    """Per replicate ``sum_w num / sum_w den``; NaN where the denominator is 0."""
    num = weights @ np.asarray(numerator, dtype=np.float64)
    den = weights @ np.asarray(denominator, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def susceptibility_replicates(indices: np.ndarray, totals) -> np.ndarray:
    """chi of each replicate from per-window event totals Y (``var(ddof=0) / (mean + 1e-8)``)."""
    sampled = np.asarray(totals, dtype=np.float64)[indices]
    return sampled.var(axis=1) / (sampled.mean(axis=1) + CHI_EPS)


def percentile_interval(replicates) -> tuple[float, float]:
    """2.5 / 97.5 percentiles of the finite replicate values (NaN, NaN if none is finite)."""
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(values, CI_PERCENTILES)
    return float(low), float(high)


def paired_b_tot(weights: np.ndarray, windows) -> tuple[float, np.ndarray]:
    """b_tot = (sum n_time + sum n_depth) / sum den of per-window branching counts (a frame
    with ``n_time``, ``n_depth``, ``den``): the point value and its replicates under ``weights``
    (:func:`resample_weights`; one weight matrix shared by two frames pairs them)."""
    point = pooled_branching(windows["n_time"], windows["n_depth"], windows["den"])["b_tot"]
    replicates = pooled_ratio(weights, windows["n_time"] + windows["n_depth"], windows["den"])
    return point, replicates
