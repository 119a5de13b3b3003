"""Roles and shared axes of the figures F06-F08 and F11-F14: which roles are untrained, how each
role is drawn (:func:`style.role_styles`), its legend entry, and one axis range for a row of
panels that may hold a "not available" panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..lens import untrained_roles
from .frames import _roles
from .style import role_styles


def styled_roles(
    table: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    control_role: str | None = None,
) -> tuple[list[str], list[str], dict[str, dict[str, Any]]]:
    """(roles in run order, the untrained ones, :func:`style.role_styles` of each): the one way
    these figures colour a role (untrained: the configured control, or a model the provenance
    records at step 0 or with random weights)."""
    roles = _roles(table, provenance)
    untrained = untrained_roles(roles, provenance, control_role)
    return roles, untrained, role_styles(roles, untrained)


def role_label(role: str, model_ids: Mapping[str, str], untrained: Sequence[str]) -> str:
    """``role (model id)``, with ``, untrained`` when the name does not already say so."""
    label = f"{role} ({model_ids.get(role, '?')})"
    return f"{label}, untrained" if role in untrained and "untrained" not in role else label


def role_handles(
    roles: Sequence[str],
    styles: Mapping[str, Mapping[str, Any]],
    model_ids: Mapping[str, str],
    untrained: Sequence[str],
) -> list[Line2D]:
    """Legend entries of the roles: colour, marker, line style and fill as drawn."""
    return [
        Line2D([], [], label=role_label(role, model_ids, untrained), **styles[role])
        for role in roles
    ]


def match_limits(axes: Sequence, which: str = "y") -> None:
    """Give every axes that shows data the union of their ``which`` limits (a shared axis that a
    "not available" panel, which has no ticks, cannot take part in)."""
    drawn = [ax for ax in axes if ax.get_xticks().size or ax.get_yticks().size]
    if len(drawn) < 2:
        return
    limits = np.array([getattr(ax, f"get_{which}lim")() for ax in drawn])
    low, high = float(limits.min()), float(limits.max())
    for ax in drawn:
        getattr(ax, f"set_{which}lim")(low, high)


def plain_log_y(ax) -> None:
    """A log y axis whose labels read 400, 1000, 4000 rather than 4×10²."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
