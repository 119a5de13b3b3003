"""The T01 figures over the gain grid: F03 branching, F04 delta_b against the permutation null,
F05 the g* selection, F09 susceptibility, F10 the three nulls side by side.

Every one is 7.2 in wide with one panel per target rate (rows) and spike definition (columns);
panels of a row share their y range. Colour follows the registry of :mod:`.style`: the metric
in F03/F04 (b_time blue, b_depth orange, b_tot black), the role in F05/F09
(:func:`~.style.role_styles`), the null model in F10; where colour is taken, roles are told
apart by line style and marker (:func:`~.style.role_marks`; untrained: dotted, hollow). A
panel without any finite value is an explicit "not available" panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...analysis.nulls import NULL_PERM, NULL_SHIFT
from ...measure.gain import MLP_GLOBAL
from ...measure.sweep import NULL_TOKEN_SHUFFLE_INPUT
from ..lens import untrained_roles
from .frames import _column, _model_ids_of, _rates, _require, _roles, _select, _spikes
from .metadata import _attach_t01
from .roles import role_handles, role_label
from .style import (
    B_UNIT,
    CI_NOTE,
    G_LABEL,
    KEY_COLOUR,
    METRIC_COLOURS,
    NULL_STYLES,
    REFERENCE_LINE,
    _band,
    _grid,
    _outside_legend,
    _styled,
    _wrap,
    figure_size,
    not_available,
    role_marks,
    role_styles,
)

#: Height of one target-rate row (inches) and of the title, shared x label and legend.
ROW_HEIGHT_IN = 1.7
FRAME_HEIGHT_IN = 1.9
#: Mark of a g* at either end of the gain grid in F05's panel titles.
GRID_EDGE_MARK = "†"
#: Characters per line of a legend caption at 7 pt across the 7.2-in figure.
CAPTION_CHARS = 125


def _per_g(t01: pd.DataFrame, role: str, spike: str, rate: float) -> pd.DataFrame:
    """The T01 rows of one (role, spike definition, target rate), in gain order."""
    return _select(t01, model_role=role, spike_def_id=spike, target_rate=rate).sort_values("g")


class _Grid:
    """The panels of a T01 figure: target rates (rows) x spike definitions (columns)."""

    def __init__(self, t01: pd.DataFrame, provenance, control_role, extra_height=0.0):
        self.t01 = t01
        self.roles, self.spikes, self.rates = _roles(t01, provenance), _spikes(t01), _rates(t01)
        self.untrained = untrained_roles(self.roles, provenance, control_role)
        self.model_ids = _model_ids_of(t01)
        width, height = figure_size(
            2, ROW_HEIGHT_IN * len(self.rates) + FRAME_HEIGHT_IN + extra_height
        )
        self.figure, self.axes = _grid(len(self.rates), len(self.spikes), width, height)
        self.drawn = np.zeros(self.axes.shape, dtype=bool)

    def panels(self):
        for i, rate in enumerate(self.rates):
            for j, spike in enumerate(self.spikes):
                yield (i, j), self.axes[i, j], spike, rate

    def rows(self, role: str, spike: str, rate: float) -> pd.DataFrame:
        return _per_g(self.t01, role, spike, rate)

    def finish(self, ylabel: str, reason: str) -> None:
        """Titles, the x label under the bottom row, one y label, one x range and a y range per row; panels with nothing
        drawn become "not available" (no axes sharing, so their empty ticks stay theirs)."""
        gains = self.t01["g"].astype(float)
        pad = 0.04 * max(float(gains.max() - gains.min()), 0.1)
        for (i, j), ax, spike, rate in self.panels():
            title = f"{spike} · target rate {rate:g}"
            if not self.drawn[i, j]:
                not_available(ax, reason, title=title)
                continue
            ax.set_title(ax.get_title() or title)
            ax.set_xlim(float(gains.min()) - pad, float(gains.max()) + pad)
        for i in range(len(self.rates)):
            drawn = [ax for ax, ok in zip(self.axes[i], self.drawn[i], strict=True) if ok]
            if len(drawn) > 1:
                lows, highs = zip(*(ax.get_ylim() for ax in drawn), strict=True)
                for ax in drawn:
                    ax.set_ylim(min(lows), max(highs))
        for ax in self.axes[-1]:  # the gain axis is the same in every panel: named once
            ax.set_xlabel(G_LABEL)
        self.figure.supylabel(ylabel)


def _role_keys(grid: _Grid, coloured: bool = True) -> list[Line2D]:
    """Legend keys of the roles: as drawn (:func:`~.style.role_styles`), or by line style and
    marker only in :data:`~.style.KEY_COLOUR` where colour belongs to another quantity."""
    if coloured:
        styles = role_styles(grid.roles, grid.untrained)
        return role_handles(grid.roles, styles, grid.model_ids, grid.untrained)
    marks = role_marks(grid.roles, grid.untrained)
    return [
        Line2D(
            [],
            [],
            color=KEY_COLOUR,
            label=role_label(role, grid.model_ids, grid.untrained),
            **marks[role],
        )
        for role in grid.roles
    ]


def _finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).any())


def _ci_key() -> Patch:
    return Patch(color=KEY_COLOUR, alpha=0.2, linewidth=0, label=f"shaded: {CI_NOTE}")


def _metric_figure(
    t01: pd.DataFrame,
    provenance,
    control_role,
    column: str,
    reference: float,
    extra_height: float = 0.0,
) -> _Grid:
    """Draw ``column.format(metric)`` (value, ``opt_..._ci_low/high``) of the three metrics,
    colour = metric, line style and marker = role."""
    grid = _Grid(t01, provenance, control_role, extra_height)
    marks = role_marks(grid.roles, grid.untrained)
    for (i, j), ax, spike, rate in grid.panels():
        for role in grid.roles:
            rows = grid.rows(role, spike, rate)
            g = rows["g"].to_numpy(float)
            for metric, colour in METRIC_COLOURS.items():
                name = column.format(metric)
                y = _column(rows, name)
                if not _finite(y):
                    continue
                low, high = (
                    _column(rows, f"opt_{name}_ci_low"),
                    _column(rows, f"opt_{name}_ci_high"),
                )
                _band(ax, g, low, high, colour, alpha=0.12)
                ax.plot(g, y, color=colour, **marks[role])
                grid.drawn[i, j] = True
        if grid.drawn[i, j]:
            ax.axhline(reference, **REFERENCE_LINE)
    return grid


@_styled
def f03_branching_vs_gain(
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F03: b_time, b_depth, b_tot (successors per occupied site) vs g, one panel per
    (target rate, spike definition); colour = metric, line style/marker = role."""
    _require(t01, ["b_time", "b_depth", "b_tot", "g"], "T01_SUMMARY")
    grid = _metric_figure(t01, provenance, control_role, "{}", 1.0)
    grid.finish(f"b ({B_UNIT})", "no finite b_time, b_depth or b_tot in T01 for this panel")
    handles = [Line2D([], [], color=c, lw=2, label=m) for m, c in METRIC_COLOURS.items()]
    handles += _role_keys(grid, coloured=False)
    handles += [Line2D([], [], label="b = 1", **REFERENCE_LINE), _ci_key()]
    _outside_legend(grid.figure, handles, ncols=3)
    grid.figure.suptitle("F03 branching ratios vs MLP gain · dataset A (analysis slice)")
    return _attach_t01(grid.figure, "F03_BRANCHING_VS_GAIN", t01, provenance, grid.roles)


def _marginal_caption(t01: pd.DataFrame) -> str:
    flags = (
        t01["opt_marginals_preserved_perm"].astype(bool)
        if "opt_marginals_preserved_perm" in t01
        else None
    )
    checked = (
        f"checked on every run: {int(flags.sum())}/{len(flags)} conditions"
        if flags is not None
        else "checked on every run"
    )
    replicates = (
        f"{int(t01['opt_bootstrap_replicates'].iloc[0])} replicates"
        if "opt_bootstrap_replicates" in t01
        else "paired replicates"
    )
    return (
        f"Null: {NULL_PERM} - the tokens of every (window, layer) row of the count raster are "
        f"permuted, so every (window, layer) marginal (the multiset of counts) is preserved exactly "
        f"({checked}). Δb = b(real) - b(null), both pooled over windows; shaded: paired 95 % bootstrap "
        f"CI over windows ({replicates}, same resampled windows for real and null)."
    )


@_styled
def f04_delta_b_vs_gain(
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F04: delta_b_time/depth/tot (real - permutation null) vs g with paired CIs."""
    _require(t01, ["delta_b_time", "delta_b_depth", "delta_b_tot"], "T01_SUMMARY")
    grid = _metric_figure(t01, provenance, control_role, "delta_{}", 0.0, extra_height=0.35)
    grid.finish(
        f"Δb = b(real) − b(perm. null) ({B_UNIT})",
        "no finite Δb against the permutation null in T01 for this panel",
    )
    handles = [Line2D([], [], color=c, lw=2, label=f"Δ{m}") for m, c in METRIC_COLOURS.items()]
    handles += _role_keys(grid, coloured=False)
    handles += [Line2D([], [], label="Δb = 0 (no structure beyond the null)", **REFERENCE_LINE)]
    _outside_legend(
        grid.figure, handles, title=_wrap(_marginal_caption(t01), CAPTION_CHARS), ncols=3
    )
    grid.figure.suptitle("F04 branching above the marginal-preserving permutation null · dataset A")
    return _attach_t01(
        grid.figure,
        "F04_DELTA_B_VS_GAIN",
        t01,
        provenance,
        grid.roles,
        f"intervention_id={MLP_GLOBAL}; real vs null_id={NULL_PERM} (preserves every (window, layer) marginal exactly)",
    )


def _distance_interval(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image of the interval [low, high] under b -> |b - 1|."""
    a, b = np.abs(low - 1.0), np.abs(high - 1.0)
    inside = (low <= 1.0) & (high >= 1.0)
    return np.where(inside, 0.0, np.minimum(a, b)), np.maximum(a, b)


def _gstar_title(chosen: Sequence[str]) -> str:
    return "g*: " + (", ".join(chosen) if chosen else "none marked")


@_styled
def f05_gstar_selection(
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F05: |b_tot - 1| (dimensionless) vs g per (target rate, spike def); g* (T01
    ``opt_is_gstar``) starred; colour, marker = role. A g* at either end of the gain grid is
    flagged with :data:`GRID_EDGE_MARK` in the panel title: the minimum may lie outside."""
    _require(t01, ["b_tot", "g", "opt_is_gstar"], "T01_SUMMARY")
    grid = _Grid(t01, provenance, control_role)
    styles = role_styles(grid.roles, grid.untrained)
    for (i, j), ax, spike, rate in grid.panels():
        chosen = []
        for role in grid.roles:
            style = styles[role]
            rows = grid.rows(role, spike, rate)
            g = rows["g"].to_numpy(float)
            distance = np.abs(_column(rows, "b_tot") - 1.0)
            if not _finite(distance):
                continue
            low, high = _distance_interval(
                _column(rows, "opt_b_tot_ci_low"), _column(rows, "opt_b_tot_ci_high")
            )
            _band(ax, g, low, high, style["color"], alpha=0.12)
            ax.plot(g, distance, **style)
            grid.drawn[i, j] = True
            star = rows["opt_is_gstar"].astype(bool).to_numpy()
            if star.any():
                gs, ds = g[star][0], distance[star][0]
                ax.plot(
                    [gs],
                    [ds],
                    marker="*",
                    ms=10,
                    color=style["color"],
                    mec=style["color"],
                    mfc=style["markerfacecolor"],
                    mew=0.8,
                    ls="none",
                    zorder=5,
                )
                edge = GRID_EDGE_MARK if gs in (g.min(), g.max()) else ""
                chosen.append(f"{role} {gs:g}{edge}")
        if grid.drawn[i, j]:
            ax.set_ylim(bottom=0)
            ax.set_title(f"{spike} · target rate {rate:g}\n{_gstar_title(chosen)}")
    grid.finish("|b_tot − 1| (dimensionless)", "no finite b_tot in T01 for this panel")
    for (i, j), ax, _, _ in grid.panels():
        if grid.drawn[i, j]:
            ax.set_ylim(bottom=0)
    handles = _role_keys(grid)
    handles += [
        Line2D(
            [],
            [],
            ls="none",
            marker="*",
            ms=9,
            color=KEY_COLOUR,
            label="g* = argmin |b_tot − 1| (ties: closest to 1, then smaller)\n"
            f"{GRID_EDGE_MARK}: g* at an end of the gain grid (the minimum may lie outside)",
        ),
        Patch(
            color=KEY_COLOUR,
            alpha=0.2,
            linewidth=0,
            label="shaded: |b − 1| over the 95 % bootstrap CI of b_tot",
        ),
    ]
    _outside_legend(grid.figure, handles, ncols=2)
    grid.figure.suptitle("F05 g* selection on dataset A (branching only, no task metric)")
    return _attach_t01(grid.figure, "F05_GSTAR_SELECTION", t01, provenance, grid.roles)


@_styled
def f09_susceptibility(
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F09: χ = var(Y)/mean(Y) (Y = events in a window) vs g with CIs, one panel per (target
    rate, spike definition); colour, marker = role, one thin CI band per role."""
    _require(t01, ["chi", "g"], "T01_SUMMARY")
    grid = _Grid(t01, provenance, control_role)
    styles = role_styles(grid.roles, grid.untrained)
    for (i, j), ax, spike, rate in grid.panels():
        for role in grid.roles:
            rows = grid.rows(role, spike, rate)
            g, chi = rows["g"].to_numpy(float), _column(rows, "chi")
            if not _finite(chi):
                continue
            _band(
                ax,
                g,
                _column(rows, "opt_chi_ci_low"),
                _column(rows, "opt_chi_ci_high"),
                styles[role]["color"],
                alpha=0.12,
            )
            ax.plot(g, chi, **styles[role])
            grid.drawn[i, j] = True
    grid.finish(
        "χ = var(Y) / mean(Y) (events; Y = events in a window)",
        "no finite susceptibility χ in T01 for this panel",
    )
    handles = _role_keys(grid) + [_ci_key()]
    _outside_legend(grid.figure, handles, ncols=2)
    grid.figure.suptitle("F09 susceptibility vs MLP gain · dataset A")
    return _attach_t01(grid.figure, "F09_SUSCEPTIBILITY", t01, provenance, grid.roles)


def _null_points(ax, g, y, low, high, colour, mark) -> None:
    """A null recorded at a few gains only (the token shuffle: g = 1 and each g*): points with
    CI bars, not a line through the gaps."""
    kept = np.isfinite(y)
    yerr = np.vstack([y[kept] - low[kept], high[kept] - y[kept]])
    ax.errorbar(
        g[kept],
        y[kept],
        yerr=np.where(np.isfinite(yerr), yerr, 0.0),
        color=colour,
        capsize=2,
        elinewidth=0.8,
        linestyle="none",
        marker=mark["marker"],
        mfc=mark.get("markerfacecolor", colour),
    )


@_styled
def f10_null_comparison(
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F10: Δb_tot = b_tot(real) - b_tot(null) vs g against the permutation, circular-shift and
    token-shuffle nulls; colour = null model, line style and marker = role. A null whose
    column T01 lacks is named "not recorded" in the legend."""
    _require(t01, ["delta_b_tot", "g"], "T01_SUMMARY")
    grid = _Grid(t01, provenance, control_role, extra_height=0.35)
    marks = role_marks(grid.roles, grid.untrained)
    recorded = {name: style[0] in t01 for name, style in NULL_STYLES.items()}
    for (i, j), ax, spike, rate in grid.panels():
        for role in grid.roles:
            rows = grid.rows(role, spike, rate)
            g = rows["g"].to_numpy(float)
            for name, (value, ci, _, colour) in NULL_STYLES.items():
                y = _column(rows, value)
                if not recorded[name] or not _finite(y):
                    continue
                low, high = _column(rows, f"{ci}_ci_low"), _column(rows, f"{ci}_ci_high")
                grid.drawn[i, j] = True
                if np.isnan(y).any():
                    _null_points(ax, g, y, low, high, colour, marks[role])
                    continue
                _band(ax, g, low, high, colour, alpha=0.1)
                ax.plot(g, y, color=colour, **marks[role])
        if grid.drawn[i, j]:
            ax.axhline(0.0, **REFERENCE_LINE)
    grid.finish(
        f"Δb_tot = b_tot(real) − b_tot(null) ({B_UNIT})",
        "no null comparison recorded in T01 for this panel",
    )
    handles = [
        Line2D(
            [], [], color=colour, lw=2, label=label + ("" if recorded[name] else " - not recorded")
        )
        for name, (_, _, label, colour) in NULL_STYLES.items()
    ]
    # two columns: the nulls and the reference line, then the roles
    handles += [Line2D([], [], label="Δb_tot = 0", **REFERENCE_LINE)]
    handles += _role_keys(grid, coloured=False)
    caption = (
        "Raster nulls (permutation, circular shift) reorder each (window, layer) row of the count raster "
        "and preserve every (window, layer) marginal exactly (checked on every run); the token-shuffle null "
        "permutes input positions 1..T-2, re-runs the model and thresholds with the real τ (no marginal "
        f"guarantee; points: recorded at g = 1 and g* only). Shaded and bars: {CI_NOTE}, paired with the real raster."
    )
    _outside_legend(grid.figure, handles, title=_wrap(caption, CAPTION_CHARS), ncols=2)
    grid.figure.suptitle("F10 null comparison · dataset A")
    return _attach_t01(
        grid.figure,
        "F10_NULL_COMPARISON",
        t01,
        provenance,
        grid.roles,
        f"intervention_id={MLP_GLOBAL}; nulls={NULL_PERM},{NULL_SHIFT},{NULL_TOKEN_SHUFFLE_INPUT}",
    )
