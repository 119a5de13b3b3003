"""Shared styling of every figure: colours, markers, line styles, units and the fixed rcParams.

One place for what a colour or a line style means, so a figure family cannot give it another
meaning. Figures are built inside :data:`STYLE` (see :func:`_styled`) on an Agg canvas with the
object API, so the output does not depend on the user's ``matplotlibrc``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import Any

import matplotlib as mpl
import matplotlib.style  # noqa: F401  (a submodule: mpl.style exists only once imported)
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...analysis.nulls import NULL_PERM, NULL_SHIFT
from ...measure.gain import ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_LATE, MLP_BAND_MID, MLP_GLOBAL
from ...measure.sweep import NULL_TOKEN_SHUFFLE_INPUT

#: Colours of avalanche components in F01: component k of the window (scan order, from 1)
#: gets ``COMPONENT_PALETTE[(k - 1) % len(COMPONENT_PALETTE)]``; empty sites are white.
_TAB20 = mpl.colormaps["tab20"].colors


COMPONENT_PALETTE = np.array(
    [mpl.colors.to_rgba(c) for i, c in enumerate((*_TAB20[::2], *_TAB20[1::2])) if i not in (7, 17)]
)  # tab20 without its two greys, which read as "no component"


EMPTY_SITE_RGBA = np.array([1.0, 1.0, 1.0, 1.0])


ROLE_LINESTYLES = ("-", "--", ":", "-.")


ROLE_MARKERS = ("o", "s", "^", "D", "v", "P")


ROLE_COLOURS = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2f5597")


METRIC_COLOURS = {"b_time": "#1f77b4", "b_depth": "#ff7f0e", "b_tot": "#2ca02c"}


NULL_STYLES = {  # T01 column of delta_b_tot, its CI prefix, label, colour
    "perm": (
        "delta_b_tot",
        "opt_delta_b_tot",
        f"within-layer permutation ({NULL_PERM})",
        "#1f77b4",
    ),
    "shift": (
        "opt_delta_b_tot_shift",
        "opt_delta_b_tot_shift",
        f"within-layer circular shift ({NULL_SHIFT})",
        "#d62728",
    ),
    "tokshuf": (
        "opt_delta_b_tot_tokshuf",
        "opt_delta_b_tot_tokshuf",
        f"input token shuffle ({NULL_TOKEN_SHUFFLE_INPUT})",
        "#9467bd",
    ),
}


ABLATION_ORDER = (MLP_GLOBAL, ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_MID, MLP_BAND_LATE)


G_LABEL = "g (MLP gain, ×)"


B_UNIT = "successors per occupied site"


RATE_UNIT = "events per unit per token"


CI_NOTE = "95 % percentile bootstrap CI over windows"


#: A fixed style: figures look the same whatever the user's matplotlibrc says.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "image.interpolation": "nearest",
    "savefig.dpi": 150,
}


def _styled(function: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure inside the fixed style (rcParams restored afterwards)."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        with mpl.style.context(["default", STYLE]):
            figure = function(*args, **kwargs)
            _fit_suptitle(figure)
            return figure

    return wrapper


#: Characters of the 11-pt title per inch of figure width (a conservative average glyph width).
TITLE_CHARS_PER_INCH = 10


def _fit_suptitle(figure: Figure) -> None:
    """Wrap a title longer than the figure is wide (three roles' model ids add up)."""
    title = getattr(figure, "_suptitle", None)
    if title is None:
        return
    limit = int(figure.get_figwidth() * TITLE_CHARS_PER_INCH)
    lines = title.get_text().split("\n")
    if max(len(line) for line in lines) > limit:
        import textwrap

        title.set_text(
            "\n".join(textwrap.fill(line, limit, break_on_hyphens=False) for line in lines)
        )


def new_figure(width: float, height: float) -> Figure:
    """A Figure on an Agg canvas with constrained layout (no pyplot involved)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _rate_colours(rates: Sequence[float]) -> dict[float, Any]:
    colours = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(rates), 1)))
    return {rate: colours[i] for i, rate in enumerate(rates)}


def _role_style(roles: Sequence[str], role: str) -> dict[str, Any]:
    i = list(roles).index(role)
    return {
        "linestyle": ROLE_LINESTYLES[i % len(ROLE_LINESTYLES)],
        "marker": ROLE_MARKERS[i % len(ROLE_MARKERS)],
    }


def _role_handles(roles: Sequence[str], model_ids: Mapping[str, str], colour="0.3") -> list:
    return [
        Line2D(
            [],
            [],
            color=colour,
            label=f"{role} ({model_ids.get(role, '?')})",
            **_role_style(roles, role),
        )
        for role in roles
    ]


def _band(ax, x, low, high, colour, alpha=0.15) -> None:
    finite = np.isfinite(low) & np.isfinite(high)
    if finite.any():
        ax.fill_between(
            x,
            np.where(finite, low, np.nan),
            np.where(finite, high, np.nan),
            color=colour,
            alpha=alpha,
            linewidth=0,
        )


def _grid(n_rows: int, n_cols: int, width: float, height: float, **kwargs):
    figure = new_figure(width, height)
    axes = figure.subplots(max(n_rows, 1), max(n_cols, 1), squeeze=False, **kwargs)
    return figure, axes


def _outside_legend(
    figure: Figure, handles: list, title: str | None = None, ncols: int = 4
) -> None:
    figure.legend(
        handles=handles, loc="outside lower center", ncols=ncols, title=title, frameon=False
    )


def _wrap(text: str, width: int = 150) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
