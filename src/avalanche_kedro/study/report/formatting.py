"""Numbers and citations in the report's sentences.

A citation names the table row behind a sentence: ``T01[base, SPIKE_ONE_SIDED_POS, r=0.00037,
g=0.7]`` (T02/T03: ``g_condition`` instead of ``g``; T06: ``g_condition`` and the intervention;
T07: ``compared vs reference`` role).
"""

from __future__ import annotations

import math
from typing import Any


def key_number(value: float) -> str:
    """Python's shortest repr of a float: ``0.00037``, ``1e-05``, ``0.7``, ``1.0``."""
    return repr(float(value))


def num(value: Any, digits: int = 4) -> str:
    """A value for a sentence: 4 significant digits, whole numbers above 1000, ``n/a`` for NaN."""
    if value is None:
        return "n/a"
    value = float(value)
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def signed(value: float, digits: int = 3) -> str:
    value = float(value)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}g}"


def ci(low: Any, high: Any) -> str:
    return f"[{num(low)}, {num(high)}]"


def cite(
    table: str,
    role: str,
    spike_def: str,
    target_rate: float,
    *,
    g: float | None = None,
    g_condition: str | None = None,
    intervention: str | None = None,
) -> str:
    """The row key of one table row, e.g. ``T01[base, SPIKE_ONE_SIDED_POS, r=0.00037, g=0.7]``."""
    parts = [role, spike_def, f"r={key_number(target_rate)}"]
    if g is not None:
        parts.append(f"g={key_number(g)}")
    if g_condition is not None:
        parts.append(g_condition)
    if intervention is not None:
        parts.append(intervention)
    return f"`{table}[{', '.join(parts)}]`"


def _finite(*values: Any) -> bool:
    try:
        return all(v is not None and math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False
