"""F12: the statistics of a training series (T09) against the training step.

Every panel has the training step on a log axis; step 0 (the initialisation, which a log axis
cannot show) is drawn one decade to the left of the first later step, behind a dotted divider.
F12 has no colour category: the step is the x axis, every series is black, the target rate is
the marker shape and the spike definition the line style (series dodged in x); reference lines
(b = 1, Δb = 0, ratio 1, chance) are the registry's dotted grey. Bars are the 95 % percentile
bootstrap CIs of T09. Perplexity on dataset B and ARC accuracy at g = 1 do not depend on the
spike definition or the rate, so they are one line. A panel whose column is all NaN (ARC not
scored, no held-out slice) is a "not available" panel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...measure.gain import MLP_GLOBAL
from .frames import _column, _condition_text, _models_title, _rates, _require, _spikes
from .generalization import chance_level
from .metadata import _attach
from .roles import plain_log_y
from .style import (
    B_UNIT,
    CI_NOTE,
    DOUBLE_COLUMN_IN,
    REFERENCE_LINE,
    ROLE_MARKERS,
    _grid,
    _outside_legend,
    _styled,
    not_available,
)

#: The one colour of F12's series (the panel title names the quantity).
SERIES_COLOUR = "#000000"
#: Line style of each spike definition (first, second, ...).
SPIKE_LINESTYLES = ("-", "--", ":", "-.")
#: Where step 0 sits: this many decades left of the first positive step.
STEP0_GAP_DECADES = 1.0
#: Horizontal offsets (in decades) that keep the CI bars of different series apart.
OFFSET_SPREAD = 0.12
#: T09 column of the ARC chance accuracy (mean over questions of 1 / options), when recorded.
CHANCE_COLUMN = "arc_chance_accuracy"

PANELS = (
    # (column, CI prefix or None, y label, title, log y)
    ("b_tot", "b_tot", f"b_tot\n({B_UNIT})", "b_tot = b_time + b_depth", False),
    (
        "delta_b_tot_perm",
        "delta_b_tot_perm",
        f"Δb_tot\n({B_UNIT})",
        "Δb_tot vs permutation null",
        False,
    ),
    (
        "delta_b_tot_shift",
        "delta_b_tot_shift",
        f"Δb_tot\n({B_UNIT})",
        "Δb_tot vs circular-shift null",
        False,
    ),
    ("chi", "chi", "chi (events per window,\ndimensionless; log axis)", "susceptibility chi", True),
    (
        "crackling_gamma",
        "crackling",
        "gamma (dimensionless)",
        "crackling gamma (hollow: gate failed)",
        False,
    ),
    (
        "heldout_rate_ratio",
        None,
        "held-out rate / r*\n(dimensionless)",
        "held-out (analysis-slice) rate / r*",
        False,
    ),
    ("g_star", None, "g* (MLP gain, ×)", "g* chosen on dataset A", False),
)


def step_positions(steps) -> tuple[dict[int, float], float | None]:
    """x position (decades) of every step: log10(step), step 0 one gap left of the smallest
    positive step; also the x of the divider between step 0 and the rest (None without 0)."""
    steps = sorted({int(s) for s in steps})
    positive = [s for s in steps if s > 0]
    first = np.log10(positive[0]) if positive else 0.0
    positions = {s: float(np.log10(s)) for s in positive}
    divider = None
    if 0 in steps:
        positions[0] = float(first - STEP0_GAP_DECADES)
        divider = float(first - STEP0_GAP_DECADES / 2)
    return positions, divider


def _step_axis(ax, positions: Mapping[int, float], divider: float | None) -> None:
    ticks = sorted(positions, key=positions.get)
    ax.set_xticks([positions[s] for s in ticks], [f"{s:,}" for s in ticks])
    low, high = min(positions.values()), max(positions.values())
    pad = 0.25 * max(high - low, 1.0) / 4
    ax.set_xlim(low - pad, high + pad)
    if divider is not None:
        ax.axvline(divider, **REFERENCE_LINE)
    if ax.get_subplotspec().is_last_row():
        ax.set_xlabel("training step (log axis)")


def _errorbar(ax, x, y, low, high, **style) -> None:
    finite = np.isfinite(low) & np.isfinite(high) & np.isfinite(y)
    yerr = np.vstack([np.where(finite, y - low, 0.0), np.where(finite, high - y, 0.0)])
    ax.errorbar(x, y, yerr=yerr, capsize=1.5, elinewidth=0.7, **style)


def series_styles(spikes, rates) -> dict[tuple[str, float], dict[str, Any]]:
    """Style of each (spike def, target rate) series: black, line style by spike definition
    (:data:`SPIKE_LINESTYLES`), marker by target rate (:data:`style.ROLE_MARKERS` order)."""
    return {
        (spike, rate): {
            "color": SERIES_COLOUR,
            "linestyle": SPIKE_LINESTYLES[i % len(SPIKE_LINESTYLES)],
            "marker": ROLE_MARKERS[k % len(ROLE_MARKERS)],
        }
        for i, spike in enumerate(spikes)
        for k, rate in enumerate(rates)
    }


def _condition_panel(ax, at_g1, panel, series, styles, positions, offsets) -> bool:
    """One T09 column against the step, a line per (spike def, rate); False if all NaN."""
    column, ci, _, _, _ = panel
    if not np.isfinite(_column(at_g1, column)).any():
        return False
    for (spike, rate), offset in zip(series, offsets, strict=True):
        rows = at_g1[(at_g1["spike_def_id"] == spike) & (at_g1["target_rate"] == rate)]
        if rows.empty:
            continue
        x = np.array([positions[int(s)] for s in rows["step"]]) + offset
        y = _column(rows, column)
        style = styles[(spike, rate)]
        if ci is None:
            ax.plot(x, y, **style)
        else:
            low, high = _column(rows, f"{ci}_ci_low"), _column(rows, f"{ci}_ci_high")
            _errorbar(ax, x, y, low, high, **style)
        if column == "crackling_gamma" and "crackling_pass" in rows:
            failed = ~rows["crackling_pass"].astype(bool).to_numpy()
            ax.plot(
                x[failed],
                y[failed],
                linestyle="none",
                marker=style["marker"],
                markerfacecolor="white",
                markeredgecolor=SERIES_COLOUR,
                zorder=3,
            )
    return True


@_styled
def f12_training_trajectory(
    t09: pd.DataFrame, provenance: Mapping[str, Any] | None = None
) -> Figure:
    """F12: T09 at g = 1 against the training step, one line per (spike def, target rate)
    (:func:`series_styles`), then perplexity on B and ARC accuracy with its chance level."""
    _require(
        t09,
        ["step", "g_condition", "b_tot", "delta_b_tot_perm", "chi", "ppl_B", "arc_accuracy"],
        "T09_TRAINING_TRAJECTORY",
    )
    at_g1 = t09[t09["g_condition"] == "g1"].sort_values("step", kind="stable")
    roles = list(dict.fromkeys(t09.sort_values("step")["model_role"].astype(str)))
    model_ids = dict(zip(t09["model_role"].astype(str), t09["model_id"].astype(str), strict=False))
    if at_g1.empty:
        figure, axes = _grid(1, 1, DOUBLE_COLUMN_IN, 2.4)
        not_available(axes[0, 0], "T09 has no row at g = 1: no training series to draw")
        figure.suptitle("F12 training trajectory at g = 1")
        return _attach_f12(figure, t09, at_g1, provenance, roles)
    rates, spikes = _rates(at_g1), _spikes(at_g1)
    styles = series_styles(spikes, rates)
    positions, divider = step_positions(at_g1["step"])
    series = [(spike, rate) for spike in spikes for rate in rates]
    offsets = (
        np.linspace(-OFFSET_SPREAD / 2, OFFSET_SPREAD / 2, len(series))
        if len(series) > 1
        else np.zeros(1)
    )
    figure, axes = _grid(3, 3, DOUBLE_COLUMN_IN, 8.0)
    flat = axes.ravel()
    for ax, panel in zip(flat, PANELS, strict=False):
        column, _, ylabel, title, log_y = panel
        if not _condition_panel(ax, at_g1, panel, series, styles, positions, offsets):
            not_available(ax, f"T09's {column} is NaN at every step", title=title)
            continue
        if column.startswith("delta_b_tot"):
            ax.axhline(0.0, **REFERENCE_LINE)
        if column in ("b_tot", "heldout_rate_ratio", "g_star"):
            ax.axhline(1.0, **REFERENCE_LINE)
        if log_y:
            plain_log_y(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        _step_axis(ax, positions, divider)
    # model quality: one line each (g = 1 does not depend on spike definition or rate)
    quality = at_g1.drop_duplicates("step").sort_values("step")
    x = np.array([positions[int(s)] for s in quality["step"]])
    quality_style = {"color": SERIES_COLOUR, "marker": "o"}
    ax = flat[len(PANELS)]
    if np.isfinite(_column(quality, "ppl_B")).any():
        _errorbar(
            ax,
            x,
            _column(quality, "ppl_B"),
            _column(quality, "ppl_B_ci_low"),
            _column(quality, "ppl_B_ci_high"),
            **quality_style,
        )
        plain_log_y(ax)
        ax.set_ylabel("perplexity (exp of mean\nNLL, nats/token; log axis)")
        ax.set_title("perplexity on dataset B at g = 1")
        _step_axis(ax, positions, divider)
    else:
        not_available(ax, "T09's ppl_B is NaN at every step", title="perplexity on dataset B")
    ax = flat[len(PANELS) + 1]
    chance, chance_label = chance_level(quality, CHANCE_COLUMN)
    if np.isfinite(_column(quality, "arc_accuracy")).any():
        _errorbar(
            ax,
            x,
            _column(quality, "arc_accuracy"),
            _column(quality, "arc_accuracy_ci_low"),
            _column(quality, "arc_accuracy_ci_high"),
            **quality_style,
        )
        ax.axhline(chance, **{**REFERENCE_LINE, "linestyle": "--"})
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("accuracy\n(fraction of questions)")
        ax.set_title("ARC accuracy at g = 1")
        _step_axis(ax, positions, divider)
    else:
        not_available(ax, "T09's arc_accuracy is NaN: ARC was not scored", title="ARC accuracy")
    handles = [
        Line2D(
            [],
            [],
            color=SERIES_COLOUR,
            linestyle="none",
            marker=styles[(spikes[0], rate)]["marker"],
            label=f"r* = {rate:g}",
        )
        for rate in rates
    ] + [
        Line2D(
            [],
            [],
            color=SERIES_COLOUR,
            linestyle=styles[(spike, rates[0])]["linestyle"],
            label=spike,
        )
        for spike in spikes
    ]
    handles += [
        Line2D(
            [],
            [],
            label="b = 1, Δb = 0, ratio 1; vertical: step 0 (the initialisation) | later steps",
            **REFERENCE_LINE,
        ),
        Line2D([], [], label=chance_label, **{**REFERENCE_LINE, "linestyle": "--"}),
    ]
    _outside_legend(
        figure,
        handles,
        title=f"target rate (marker) · spike definition (line style) · bars: {CI_NOTE}",
        ncols=3,
    )
    steps_text = ", ".join(
        f"{role} (step {int(step):,})" for role, step in zip(roles, quality["step"], strict=False)
    )
    figure.suptitle(
        f"F12 training trajectory at g = 1 · MLP_GLOBAL, dataset A unless stated · {steps_text} "
        f"· {_models_title(roles[-1:], model_ids)}"
    )
    return _attach_f12(figure, t09, at_g1, provenance, roles)


def _attach_f12(figure: Figure, t09, at_g1, provenance, roles) -> Figure:
    return _attach(
        figure,
        "F12_TRAINING_TRAJECTORY",
        _condition_text(at_g1, "A,B,ARC_MCQ", f"g_condition=g1; intervention_id={MLP_GLOBAL}"),
        provenance,
        [("T09_TRAINING_TRAJECTORY", t09)],
        roles,
        ["T09_TRAINING_TRAJECTORY"],
    )
