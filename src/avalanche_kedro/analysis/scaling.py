"""Scaling of avalanches: the crackling relation (signature S3) and tail fits (SPEC §6).

Crackling: for avalanches with ``3 <= D <= 64`` tokens, take the mean size per distinct D and
fit ``log <S>(D) = gamma log D + c`` by ordinary least squares. Its CI comes from the window
bootstrap (avalanches of one window are correlated, so windows, not avalanches, are resampled):
each replicate recomputes the mean size per D from per-window sums and counts. The quality
gate ``pass = finite gamma and >= 8 distinct D and CI width <= 0.5`` decides whether S3 is
available for a condition; a failed gate is a result, not an error.

Tail fits are descriptive only: the ``powerlaw`` package (Clauset, Shalizi & Newman) fits the
avalanche sizes as discrete data with xmin chosen by the KS distance, and compares the power
law with a lognormal and an exponential (both truncated at the same xmin) by normalized
log-likelihood ratios with p-values. Fewer than 100 tail samples makes the fit "not available",
so the KS search for xmin only considers candidates that leave at least 100 samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.threads import single_threaded_blas
from .bootstrap import percentile_interval, resample_weights

CRACKLING_D_MIN = 3
CRACKLING_D_MAX = 64
CRACKLING_MIN_POINTS = 8
CRACKLING_MAX_CI_WIDTH = 0.5
TAIL_MIN_SAMPLES = 100


def _masked_ols(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and r^2 of y on x per row, using only the entries where ``mask`` is True."""
    m = mask.astype(np.float64)
    y = np.where(mask, y, 0.0)
    n = m.sum(axis=1)
    sx, sy = m @ x, (m * y).sum(axis=1)
    sxx, sxy = m @ (x * x), (m * y * x).sum(axis=1)
    syy = (m * y * y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        vxx = sxx - sx * sx / n
        vxy = sxy - sx * sy / n
        vyy = syy - sy * sy / n
        slope = vxy / vxx
        r2 = np.where(vyy > 0, vxy * vxy / (vxx * vyy), np.nan)
    return slope, r2


def crackling_fit(
    avalanche_table: pd.DataFrame,
    n_windows: int,
    indices: np.ndarray | None = None,
    d_min: int = CRACKLING_D_MIN,
    d_max: int = CRACKLING_D_MAX,
    min_points: int = CRACKLING_MIN_POINTS,
    max_ci_width: float = CRACKLING_MAX_CI_WIDTH,
) -> dict[str, float | int | bool | str]:
    """The crackling exponent gamma of one condition with its window-bootstrap CI.

    ``avalanche_table`` is the output of :func:`avalanche_kedro.analysis.lattice.avalanches` (needs
    ``seq_index``, ``size``, ``span_tokens``); ``indices`` is the ``[replicates, n_windows]``
    bootstrap index matrix (:func:`avalanche_kedro.analysis.bootstrap.bootstrap_indices`) or None for no
    CI. Returns gamma, its CI, r^2 of the point fit, the number of distinct D used, the number of
    avalanches used, ``pass`` and, when the gate fails, the ``reason``.
    """
    return crackling_fit_arrays(
        avalanche_table["seq_index"].to_numpy(),
        avalanche_table["span_tokens"].to_numpy(),
        avalanche_table["size"].to_numpy(),
        n_windows,
        indices,
        d_min=d_min,
        d_max=d_max,
        min_points=min_points,
        max_ci_width=max_ci_width,
    )


@dataclass(frozen=True)
class CracklingSlopes:
    """The crackling slope of one condition, point fit and (optionally) per bootstrap replicate.

    ``replicates[b]`` is the OLS slope of log <S> on log D over the windows of replicate ``b``
    (window ``n`` weighted by how often it is drawn), NaN when that replicate keeps fewer than
    ``min(min_points, n_duration_points)`` distinct durations; None without indices.
    """

    gamma: float
    r2: float
    n_duration_points: int
    n_avalanches_used: int
    replicates: np.ndarray | None


@single_threaded_blas
def crackling_slopes(
    seq_index: np.ndarray,
    span_tokens: np.ndarray,
    size: np.ndarray,
    n_windows: int,
    indices: np.ndarray | None = None,
    d_min: int = CRACKLING_D_MIN,
    d_max: int = CRACKLING_D_MAX,
    min_points: int = CRACKLING_MIN_POINTS,
) -> CracklingSlopes:
    """gamma = OLS slope of ``log <S>(D)`` on ``log D`` over the distinct D in [d_min, d_max].

    ``<S>(D) = sum of S / number of avalanches with span D``; for a replicate both sums are
    weighted by ``W[b, n]`` (:func:`avalanche_kedro.analysis.bootstrap.resample_weights`), so the
    replicate equals the fit on the concatenated resampled windows. Fewer than two distinct D
    give a NaN slope (and all-NaN replicates).
    """
    keep = (span_tokens >= d_min) & (span_tokens <= d_max)
    window, duration, sizes = seq_index[keep], span_tokens[keep], size[keep]
    durations = np.unique(duration)
    n_used = int(keep.sum())
    if durations.size < 2:
        replicates = None if indices is None else np.full(indices.shape[0], np.nan)
        return CracklingSlopes(np.nan, np.nan, int(durations.size), n_used, replicates)
    # per-window sums and counts of sizes per distinct duration: [n_windows, n_durations]
    cell = window.astype(np.int64) * durations.size + np.searchsorted(durations, duration)
    shape = (n_windows, durations.size)
    sums = np.bincount(cell, weights=sizes.astype(np.float64), minlength=np.prod(shape))
    counts = np.bincount(cell, minlength=np.prod(shape)).astype(np.float64)
    sums, counts = sums.reshape(shape), counts.reshape(shape)
    x = np.log(durations.astype(np.float64))

    def fit(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        total = weights @ sums
        number = weights @ counts
        present = number > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.log(np.where(present, total / np.where(present, number, 1.0), 1.0))
        slope, r2 = _masked_ols(x, y, present)
        return slope, r2, present.sum(axis=1)

    slope, r2, _ = fit(np.ones((1, n_windows)))
    replicates = None
    if indices is not None:
        slopes, _, points = fit(resample_weights(indices, n_windows).astype(np.float64))
        # a replicate that lost too many durations has no meaningful slope
        replicates = np.where(points >= min(min_points, durations.size), slopes, np.nan)
    return CracklingSlopes(float(slope[0]), float(r2[0]), int(durations.size), n_used, replicates)


def crackling_fit_arrays(
    seq_index: np.ndarray,
    span_tokens: np.ndarray,
    size: np.ndarray,
    n_windows: int,
    indices: np.ndarray | None = None,
    d_min: int = CRACKLING_D_MIN,
    d_max: int = CRACKLING_D_MAX,
    min_points: int = CRACKLING_MIN_POINTS,
    max_ci_width: float = CRACKLING_MAX_CI_WIDTH,
) -> dict[str, float | int | bool | str]:
    """:func:`crackling_fit` on the avalanche columns as arrays (one entry per avalanche)."""
    slopes = crackling_slopes(
        seq_index, span_tokens, size, n_windows, indices, d_min, d_max, min_points
    )
    result: dict = {
        "crackling_gamma": np.nan,
        "crackling_ci_low": np.nan,
        "crackling_ci_high": np.nan,
        "crackling_ci_width": np.nan,
        "r2": np.nan,
        "n_duration_points": slopes.n_duration_points,
        "n_avalanches_used": slopes.n_avalanches_used,
        "pass": False,
        "reason": "",
    }
    if slopes.n_duration_points < 2:
        result["reason"] = (
            f"only {slopes.n_duration_points} distinct durations in [{d_min}, {d_max}]"
        )
        return result
    result["crackling_gamma"] = slopes.gamma
    result["r2"] = slopes.r2
    if slopes.replicates is not None:
        low, high = percentile_interval(slopes.replicates)
        result.update(crackling_ci_low=low, crackling_ci_high=high, crackling_ci_width=high - low)
    reasons = []
    if not np.isfinite(result["crackling_gamma"]):
        reasons.append("gamma is not finite")
    if slopes.n_duration_points < min_points:
        reasons.append(f"{slopes.n_duration_points} < {min_points} distinct durations")
    width = result["crackling_ci_width"]
    if not np.isfinite(width) or width > max_ci_width:
        reasons.append(f"CI width {width:.3g} > {max_ci_width}" if np.isfinite(width) else "no CI")
    result["pass"] = not reasons
    result["reason"] = "; ".join(reasons)
    return result


TAIL_COLUMNS = [
    "available",
    "reason",
    "xmin",
    "n_tail",
    "alpha_powerlaw",
    "lambda_exponential",
    "lognorm_mu",
    "lognorm_sigma",
    "ll_powerlaw",
    "ll_exponential",
    "ll_lognormal",
    "llr_powerlaw_vs_lognormal",
    "p_powerlaw_vs_lognormal",
    "llr_powerlaw_vs_exponential",
    "p_powerlaw_vs_exponential",
]


def tail_fit(sizes, min_tail: int = TAIL_MIN_SAMPLES) -> dict[str, float | int | bool | str]:
    """Discrete power-law / lognormal / exponential tail fits of avalanche sizes (descriptive)."""
    import powerlaw

    data = np.asarray(sizes, dtype=np.float64)
    data = data[data > 0]
    result: dict = dict.fromkeys(TAIL_COLUMNS, np.nan)
    result.update(available=False, reason="", n_tail=0)
    if data.size < min_tail:
        result["reason"] = f"{data.size} avalanches (need {min_tail} tail samples)"
        return result
    if np.unique(data).size < 2:
        result["reason"] = f"{data.size} avalanches, all of size {data[0]:g}: nothing to fit"
        return result
    # Only an xmin that leaves at least `min_tail` samples can give an available fit, so the KS
    # search is restricted to those candidates (same answer whenever one exists, much faster).
    largest_admissible = float(np.sort(data)[::-1][min_tail - 1])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(
            data, discrete=True, verbose=False, xmin=(float(data.min()), largest_admissible)
        )
        tail = np.asarray(fit.data, dtype=np.float64)
        result["xmin"] = float(fit.xmin)
        result["n_tail"] = int(tail.size)
        if tail.size < min_tail:
            result["reason"] = f"{tail.size} samples above xmin = {fit.xmin:g} (need {min_tail})"
            return result
        r_ln, p_ln = fit.distribution_compare("power_law", "lognormal", normalized_ratio=True)
        r_ex, p_ex = fit.distribution_compare("power_law", "exponential", normalized_ratio=True)
        result.update(
            available=True,
            alpha_powerlaw=float(fit.power_law.alpha),
            lambda_exponential=float(fit.exponential.Lambda),
            lognorm_mu=float(fit.lognormal.mu),
            lognorm_sigma=float(fit.lognormal.sigma),
            ll_powerlaw=float(np.sum(fit.power_law.loglikelihoods(tail))),
            ll_exponential=float(np.sum(fit.exponential.loglikelihoods(tail))),
            ll_lognormal=float(np.sum(fit.lognormal.loglikelihoods(tail))),
            llr_powerlaw_vs_lognormal=float(r_ln),
            p_powerlaw_vs_lognormal=float(p_ln),
            llr_powerlaw_vs_exponential=float(r_ex),
            p_powerlaw_vs_exponential=float(p_ex),
        )
    return result
