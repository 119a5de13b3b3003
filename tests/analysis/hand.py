"""Hand computations shared by the analysis tests (independent of the code under test)."""

from __future__ import annotations

import math


def hand_percentile(values, q: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (rank - lo) * (ordered[hi] - ordered[lo])
