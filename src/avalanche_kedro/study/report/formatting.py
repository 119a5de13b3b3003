"""Numbers and citations in the report's sentences.

A citation names the table row behind a sentence: ``T01[base, SPIKE_ONE_SIDED_POS, r=0.00037,
g=0.7]`` (T02/T03: ``g_condition`` instead of ``g``; T06: ``g_condition`` and the intervention;
T07: ``compared vs reference`` role).
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Any

_LIST_ITEM = re.compile(r"^((?:[-*]|\d+\.) )")


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


#: No line of the report is longer than this (characters); prose is wrapped to it.
MAX_LINE = 200


def ref(table: str, row: Any) -> str:
    """The compact citation of one table row, for table cells: ``T01:12`` is ``T01.iloc[12]``.

    ``row`` is a row of a table whose index is its position (the report resets every table's
    index, :func:`.grouping._normalize_tables`), or None (``n/a``: no such row)."""
    if row is None:
        return "n/a"
    return f"{table}:{int(row.name)}"


def row_refs(table: str, *rows: Any) -> str:
    """Compact citation of the given rows of one table (None skipped, each row once, in the
    order given): ``T02:3,2``; ``n/a`` if none."""
    found = list(dict.fromkeys(int(r.name) for r in rows if r is not None))
    return f"{table}:{','.join(str(p) for p in found)}" if found else "n/a"


def refs(table: str, rows: Any) -> str:
    """Compact citation of several rows of one table: ``T06:10-14`` for consecutive positions,
    ``T06:3,7`` otherwise; ``n/a`` without rows."""
    positions = sorted(int(p) for p in getattr(rows, "index", []))
    if not positions:
        return "n/a"
    if positions == list(range(positions[0], positions[-1] + 1)) and len(positions) > 2:
        return f"{table}:{positions[0]}-{positions[-1]}"
    return f"{table}:{','.join(str(p) for p in positions)}"


def value_ci(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    """``0.981 [0.95, 1.01]``: a value and its CI for a table cell; ``n/a`` without a value."""
    if not _finite(value):
        return "n/a"
    if not _finite(low, high):
        return num(value, digits)
    return f"{num(value, digits)} [{num(low, digits)}, {num(high, digits)}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table (pipes in cells are escaped)."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *[line(r) for r in rows]]


def wrap(lines: list[str], width: int = MAX_LINE) -> list[str]:
    """Prose lines longer than ``width`` broken at spaces (a list item's continuation lines are
    indented two spaces, a quote's start with ``> ``); table rows and headings are left as they
    are (their cells are kept short where they are written)."""
    out: list[str] = []
    for line in lines:
        if len(line) <= width or line.startswith(("|", "#")):
            out.append(line)
            continue
        item = _LIST_ITEM.match(line)
        indent = "> " if line.startswith("> ") else " " * len(item.group(1)) if item else ""
        out += textwrap.wrap(
            line,
            width=width,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    return out
