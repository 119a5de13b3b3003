"""Report section "Time vs depth": what each null removes along tokens and along layers at g*.

b_tot = b_time + b_depth (pairs of occupied sites along tokens, along layers, per occupied
site), so every null's delta_b_tot splits into delta_b_time and delta_b_depth (T01 columns
``delta_b_time`` / ``opt_delta_b_time_ci_*`` for the within-layer permutation and
``opt_delta_b_time_tokshuf*`` for the token-shuffle null, the same for depth). The permutation
null keeps each layer's event counts and scatters them over tokens, so it removes both kinds of
alignment; the token-shuffle null runs the same model on the same tokens in shuffled order, so
what survives it is driven by the context (the order of the input). The verdict:

- **context-driven**: the delta_b_tot CI against the token-shuffle null lies above 0;
- **depth alignment only**: not context-driven, and against the permutation null only the
  b_depth CI lies above 0 (events line up across layers at one token, not along tokens);
- **not context-driven**: the permutation null's b_time CI lies above 0 but the token-shuffle
  CI does not (structure along tokens beyond the rates that shuffled text produces as well);
- **none beyond rates**: no permutation CI above 0;
- **context not tested**: the token-shuffle null is not recorded at g*.
"""

from __future__ import annotations

from .formatting import _finite, ci, key_number, num, row_refs, value_ci
from .grouping import Finding, Group, _get, _one

CONTEXT_DRIVEN = "context-driven"
DEPTH_ONLY = "depth alignment only"
NOT_CONTEXT = "not context-driven"
NONE_BEYOND_RATES = "none beyond rates"
NOT_TESTED = "context not tested"

#: (label, T01 column stem) of the two nulls the section splits
SPLIT_NULLS = (("perm", ""), ("tokens", "_tokshuf"))


def _delta(row, metric: str, suffix: str) -> tuple[float, float, float]:
    """(value, CI low, CI high) of ``delta_<metric>`` against one null at a T01 row."""
    if row is None:
        return (float("nan"),) * 3
    value = f"delta_{metric}" if not suffix else f"opt_delta_{metric}{suffix}"
    return (
        _get(row, value),
        _get(row, f"opt_delta_{metric}{suffix}_ci_low"),
        _get(row, f"opt_delta_{metric}{suffix}_ci_high"),
    )


def _above_zero(values: tuple[float, float, float]) -> bool:
    return bool(_finite(values[1]) and values[1] > 0)


def decide_time_depth(
    perm_time: tuple[float, float, float],
    perm_depth: tuple[float, float, float],
    tokens_tot: tuple[float, float, float],
) -> str:
    """The verdict of the module docstring from three (value, low, high) triples."""
    if not _finite(tokens_tot[1], tokens_tot[2]):
        return NOT_TESTED
    if _above_zero(tokens_tot):
        return CONTEXT_DRIVEN
    if _above_zero(perm_time):
        return NOT_CONTEXT
    if _above_zero(perm_depth):
        return DEPTH_ONLY
    return NONE_BEYOND_RATES


def time_depth_finding(group: Group) -> Finding:
    star = _one(group.t01, g=group.g_star)
    split = {
        (label, metric): _delta(star, metric, suffix)
        for label, suffix in SPLIT_NULLS
        for metric in ("b_time", "b_depth", "b_tot")
    }
    decision = decide_time_depth(
        split[("perm", "b_time")], split[("perm", "b_depth")], split[("tokens", "b_tot")]
    )
    where = group.cite("T01", g=group.g_star)

    def said(label: str, metric: str) -> str:
        value, low, high = split[(label, metric)]
        return f"{num(value)} {ci(low, high)}"

    text = (
        f"At g* = {key_number(group.g_star)} the permutation null removes "
        f"delta_b_time = {said('perm', 'b_time')} along tokens and delta_b_depth = "
        f"{said('perm', 'b_depth')} along layers; against the token-shuffle null "
        f"delta_b_time = {said('tokens', 'b_time')}, delta_b_depth = "
        f"{said('tokens', 'b_depth')} and delta_b_tot = {said('tokens', 'b_tot')} ({where}): "
        f"**{decision}**."
    )
    cells = (
        *(
            value_ci(*split[(label, metric)], digits=2)
            for label, _ in SPLIT_NULLS
            for metric in ("b_time", "b_depth")
        ),
        f"**{decision}**" if decision == CONTEXT_DRIVEN else decision,
        row_refs("T01", star),
    )
    return Finding("td", decision, text, cells)
