"""Empirical distributions of avalanche statistics, for plots (Kedro-free, torch-free).

:func:`ccdf` is the complementary CDF ``P(S >= s)`` with tied values merged: one point per
distinct value. Plotting every sorted sample against ``1 - rank / n`` instead draws a vertical
stack of points at each tied size (avalanche sizes are small integers, so most samples are
ties), which looks like data but is an artifact of the ranking.
"""

from __future__ import annotations

import numpy as np


def ccdf(values) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CCDF of ``values`` at each distinct value: ``(s, P)``, ``s`` ascending.

    For n samples ``x_i`` and distinct values ``s_1 < ... < s_k``::

        P_j = P(S >= s_j) = #{i : x_i >= s_j} / n

    so ``P_1 = 1`` and ``P_k = (count of s_k) / n``; e.g. sizes ``[1, 1, 2, 5]`` give
    ``s = [1, 2, 5]``, ``P = [1.0, 0.5, 0.25]``. Counts are summed as integers and divided once,
    so equal inputs give bit-identical outputs. ``s`` keeps the dtype of ``values``; ``P`` is
    float64. No samples give two empty arrays.

    Raises ``ValueError`` for input that is not one-dimensional or holds NaN / infinity (a
    CCDF of them would silently drop or misplace samples).
    """
    samples = np.asarray(values)
    if samples.ndim != 1:
        raise ValueError(f"ccdf takes a 1-D array of samples, got shape {samples.shape}")
    if samples.dtype.kind not in "iuf":
        raise ValueError(f"ccdf samples must be numbers, got dtype {samples.dtype}")
    if not np.isfinite(samples).all():
        raise ValueError("ccdf samples must be finite (NaN or infinity found)")
    if samples.size == 0:
        return samples.copy(), np.zeros(0, dtype=np.float64)
    distinct, counts = np.unique(samples, return_counts=True)
    below = np.cumsum(counts) - counts  # samples strictly below s_j
    return distinct, (samples.size - below) / samples.size
