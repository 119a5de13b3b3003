"""Shared styling of every figure: colours, markers, line styles, units and the fixed rcParams.

One place for what a colour or a line style means, so a figure family cannot give it another
meaning. Figures are built inside :data:`STYLE` (see :func:`_styled`) on an Agg canvas with the
object API, so the output does not depend on the user's ``matplotlibrc``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import matplotlib as mpl
import matplotlib.style  # noqa: F401  (a submodule: mpl.style exists only once imported)
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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


#: Print widths (inches) of a journal page: every figure is one of these two widths, so its
#: text is printed at the size it was set (no scaling) and the ≥ 7-pt rule below holds on paper.
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.2
#: The tallest figure that still fits a page with its caption (inches).
MAX_HEIGHT_IN = 9.4
#: Smallest text size of any figure (points at print size).
MIN_FONT_PT = 7.0


# One colour meaning per quantity, across every figure. Only the categories below carry colour;
# anything else (target rate, dataset, calibration vs held-out slice, gain) is told apart by
# panel, x position, marker fill or line style, never by colour. No hex value appears in two
# categories (tests/study/figures/test_style.py checks it), so a reader who learnt "orange is
# b_depth" in F03 is never told otherwise by another figure.

#: Branching-ratio components (Okabe-Ito blue and orange; b_tot, the quantity the study is
#: about, in black).
METRIC_COLOURS = {"b_time": "#0072B2", "b_depth": "#E69F00", "b_tot": "#000000"}

#: Trained model roles, in the order the run lists them (first trained role first).
ROLE_COLOURS = ("#009E73", "#CC79A7", "#882255", "#999933", "#44AA99", "#DDCC77")

#: Every untrained role (the configured control, a step-0 or random-weight model): light grey,
#: with hollow markers and dotted lines (:func:`role_styles`).
UNTRAINED_COLOUR = "#A0A0A0"

#: Reference lines (b = 1, Δb = 0, target rate, chance level, g = 1): dark grey, thin, dotted.
REFERENCE_COLOUR = "#505050"
REFERENCE_LINE = {"color": REFERENCE_COLOUR, "linewidth": 0.8, "linestyle": ":"}

ROLE_MARKERS = ("o", "s", "^", "D", "v", "P")


NULL_STYLES = {  # T01 column of delta_b_tot, its CI prefix, label, colour
    "perm": (
        "delta_b_tot",
        "opt_delta_b_tot",
        f"within-layer permutation ({NULL_PERM})",
        "#D55E00",
    ),
    "shift": (
        "opt_delta_b_tot_shift",
        "opt_delta_b_tot_shift",
        f"within-layer circular shift ({NULL_SHIFT})",
        "#56B4E9",
    ),
    "tokshuf": (
        "opt_delta_b_tot_tokshuf",
        "opt_delta_b_tot_tokshuf",
        f"input token shuffle ({NULL_TOKEN_SHUFFLE_INPUT})",
        "#332288",
    ),
}

#: Null models by short name -> colour (the same colours as :data:`NULL_STYLES`).
NULL_COLOURS = {name: style[3] for name, style in NULL_STYLES.items()}

#: Every colour category: quantity -> {value: colour}; the test of one meaning per colour
#: reads this.
COLOUR_CATEGORIES = {
    "metric": METRIC_COLOURS,
    "trained role": dict(enumerate(ROLE_COLOURS)),
    "untrained role": {"untrained": UNTRAINED_COLOUR},
    "reference line": {"reference": REFERENCE_COLOUR},
    "null model": NULL_COLOURS,
}


def role_styles(roles: Sequence[str], untrained: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Colour, marker, line style and marker face of each role: trained roles take
    :data:`ROLE_COLOURS` in order (solid lines, filled markers); untrained roles are
    :data:`UNTRAINED_COLOUR`, dotted and hollow. Markers follow the role's position in ``roles``
    so a role keeps its marker when colour is taken by another quantity."""
    styles = {}
    trained = [role for role in roles if role not in untrained]
    for i, role in enumerate(roles):
        cold = role in untrained
        colour = UNTRAINED_COLOUR if cold else ROLE_COLOURS[trained.index(role) % len(ROLE_COLOURS)]
        styles[role] = {
            "color": colour,
            "marker": ROLE_MARKERS[i % len(ROLE_MARKERS)],
            "linestyle": ":" if cold else "-",
            "markerfacecolor": "white" if cold else colour,
            "markeredgecolor": colour,
        }
    return styles


#: Line styles of the trained roles where colour belongs to another quantity (F03, F04, F10:
#: metric or null model); untrained roles are dotted there too.
TRAINED_LINESTYLES = ("-", "--", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)))

#: Colour of legend keys that stand for a line style or marker only (a role in F03, a slice in
#: F02): dark grey, so the key carries no colour meaning of its own.
KEY_COLOUR = "#303030"


def role_marks(roles: Sequence[str], untrained: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Line style, marker and marker fill of each role where colour encodes something else.

    Trained roles take :data:`TRAINED_LINESTYLES` in order with filled markers; untrained
    roles are dotted with white-filled (hollow) markers, as in :func:`role_styles`. Markers
    follow the role's position in ``roles`` (the same marker as :func:`role_styles` gives)."""
    marks = {}
    trained = [role for role in roles if role not in untrained]
    for i, role in enumerate(roles):
        cold = role in untrained
        mark: dict[str, Any] = {
            "marker": ROLE_MARKERS[i % len(ROLE_MARKERS)],
            "linestyle": ":"
            if cold
            else TRAINED_LINESTYLES[trained.index(role) % len(TRAINED_LINESTYLES)],
        }
        if cold:
            mark["markerfacecolor"] = "white"
        marks[role] = mark
    return marks


def not_available(ax, reason: str, title: str | None = None) -> None:
    """Turn ``ax`` into an explicit "not available" panel: no ticks, no grid, a grey frame
    and the reason in words, so a missing input never looks like an empty result."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_edgecolor("0.75")
        spine.set_linestyle("--")
    if title is not None:
        ax.set_title(title)
    import textwrap

    ax.text(
        0.5,
        0.5,
        "not available\n" + textwrap.fill(reason, 48),
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.3",
        fontsize=MIN_FONT_PT + 0.5,
    )


def figure_size(columns: int, height: float) -> tuple[float, float]:
    """(width, height) in inches of a figure one (3.5 in) or two (7.2 in) columns wide; the
    height is capped at :data:`MAX_HEIGHT_IN`."""
    if columns not in (1, 2):
        raise ValueError(f"a figure is 1 or 2 columns wide, not {columns}")
    width = SINGLE_COLUMN_IN if columns == 1 else DOUBLE_COLUMN_IN
    return width, float(min(height, MAX_HEIGHT_IN))


ABLATION_ORDER = (MLP_GLOBAL, ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_MID, MLP_BAND_LATE)


G_LABEL = "g (MLP gain, ×)"


B_UNIT = "successors per occupied site"


RATE_UNIT = "events per unit per token"


CI_NOTE = "95 % percentile bootstrap CI over windows"


#: A fixed style: figures look the same whatever the user's matplotlibrc says.
STYLE = {  # sizes in points at print size (figures are drawn at their print width)
    "font.size": 7.5,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7.5,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.titlesize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "patch.linewidth": 0.6,
    "figure.constrained_layout.h_pad": 0.03,
    "figure.constrained_layout.w_pad": 0.03,
    "pdf.fonttype": 42,
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


#: Characters of the 8.5-pt title per inch of figure width (a conservative average glyph width).
TITLE_CHARS_PER_INCH = 13


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
