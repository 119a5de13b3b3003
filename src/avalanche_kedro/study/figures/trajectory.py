"""F12: the statistics of a training series (T09) against the training step.

Every panel has the training step on a log axis; step 0 (the initialisation, which a log axis
cannot show) is drawn one decade to the left of the first later step, behind a dotted divider.
Colour is the target rate and line style / marker the spike definition, as in the other
figures; bars are the 95 % percentile bootstrap CIs of T09. Perplexity on dataset B and ARC
accuracy at g = 1 do not depend on the spike definition or the rate, so they are one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ...measure.gain import MLP_GLOBAL
from .frames import _column, _condition_text, _models_title, _rates, _require, _spikes
from .metadata import _attach
from .style import B_UNIT, CI_NOTE, _grid, _outside_legend, _rate_colours, _styled

#: Line style and marker of each spike definition (first, second, ...).
SPIKE_STYLES = (("-", "o"), ("--", "s"), (":", "^"))
#: Where step 0 sits: this many decades left of the first positive step.
STEP0_GAP_DECADES = 1.0
#: Horizontal offsets (in decades) that keep the CI bars of different series apart.
OFFSET_SPREAD = 0.12
#: Chance accuracy of a four-option multiple-choice question.
FOUR_OPTION_CHANCE = 0.25

PANELS = (
    # (column, CI prefix or None, y label, title, log y)
    ("b_tot", "b_tot", f"b_tot ({B_UNIT})", "b_tot = b_time + b_depth", False),
    (
        "delta_b_tot_perm",
        "delta_b_tot_perm",
        f"Δb_tot ({B_UNIT})",
        "Δb_tot vs within-layer permutation null",
        False,
    ),
    (
        "delta_b_tot_shift",
        "delta_b_tot_shift",
        f"Δb_tot ({B_UNIT})",
        "Δb_tot vs within-layer circular-shift null",
        False,
    ),
    ("chi", "chi", "chi (events per window, dimensionless)", "susceptibility chi", True),
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
        "held-out rate / r* (dimensionless)",
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
        ax.axvline(divider, color="0.5", linestyle=":", linewidth=0.8)
    ax.set_xlabel("training step (log; step 0 = initialisation, left of the divider)")


def _plain_log_y(ax) -> None:
    """A log y axis whose labels read 400, 1000, 4000 rather than 4×10²."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _errorbar(ax, x, y, low, high, **style) -> None:
    finite = np.isfinite(low) & np.isfinite(high) & np.isfinite(y)
    yerr = np.vstack([np.where(finite, y - low, 0.0), np.where(finite, high - y, 0.0)])
    ax.errorbar(x, y, yerr=yerr, capsize=2, elinewidth=0.8, **style)


@_styled
def f12_training_trajectory(
    t09: pd.DataFrame, provenance: Mapping[str, Any] | None = None
) -> Figure:
    """F12: T09 at g = 1 against the training step, one line per (spike def, target rate)."""
    _require(
        t09,
        ["step", "g_condition", "b_tot", "delta_b_tot_perm", "chi", "ppl_B", "arc_accuracy"],
        "T09_TRAINING_TRAJECTORY",
    )
    at_g1 = t09[t09["g_condition"] == "g1"].sort_values("step", kind="stable")
    rates, spikes = _rates(at_g1), _spikes(at_g1)
    colours = _rate_colours(rates)
    spike_styles = {spike: SPIKE_STYLES[i % len(SPIKE_STYLES)] for i, spike in enumerate(spikes)}
    positions, divider = step_positions(at_g1["step"])
    series = [(spike, rate) for spike in spikes for rate in rates]
    offsets = (
        np.linspace(-OFFSET_SPREAD / 2, OFFSET_SPREAD / 2, len(series))
        if len(series) > 1
        else np.zeros(1)
    )
    figure, axes = _grid(3, 3, 13.5, 11.0)
    flat = axes.ravel()
    for ax, (column, ci, ylabel, title, log_y) in zip(flat, PANELS, strict=False):
        for (spike, rate), offset in zip(series, offsets, strict=True):
            rows = at_g1[(at_g1["spike_def_id"] == spike) & (at_g1["target_rate"] == rate)]
            if rows.empty:
                continue
            x = np.array([positions[int(s)] for s in rows["step"]]) + offset
            y = _column(rows, column)
            linestyle, marker = spike_styles[spike]
            style = {"color": colours[rate], "linestyle": linestyle, "marker": marker}
            if ci is None:
                ax.plot(x, y, **style)
            else:
                _errorbar(
                    ax,
                    x,
                    y,
                    _column(rows, f"{ci}_ci_low"),
                    _column(rows, f"{ci}_ci_high"),
                    **style,
                )
            if column == "crackling_gamma" and "crackling_pass" in rows:
                failed = ~rows["crackling_pass"].astype(bool).to_numpy()
                ax.plot(
                    x[failed],
                    y[failed],
                    linestyle="none",
                    marker=marker,
                    markerfacecolor="white",
                    markeredgecolor=colours[rate],
                    zorder=3,
                )
        if column.startswith("delta_b_tot"):
            ax.axhline(0.0, color="0.3", linewidth=0.8)
        if column in ("b_tot", "heldout_rate_ratio", "g_star"):
            ax.axhline(1.0, color="0.3", linewidth=0.8, linestyle="--")
        if log_y:
            _plain_log_y(ax)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        _step_axis(ax, positions, divider)
    # model quality: one line each (g = 1 does not depend on spike definition or rate)
    quality = at_g1.drop_duplicates("step").sort_values("step")
    x = np.array([positions[int(s)] for s in quality["step"]])
    ax = flat[len(PANELS)]
    _errorbar(
        ax,
        x,
        _column(quality, "ppl_B"),
        _column(quality, "ppl_B_ci_low"),
        _column(quality, "ppl_B_ci_high"),
        color="black",
        marker="o",
    )
    _plain_log_y(ax)
    ax.set_ylabel("perplexity (exp of mean NLL, nats/token)")
    ax.set_title("perplexity on dataset B at g = 1 (CI over B windows)")
    _step_axis(ax, positions, divider)
    ax = flat[len(PANELS) + 1]
    _errorbar(
        ax,
        x,
        _column(quality, "arc_accuracy"),
        _column(quality, "arc_accuracy_ci_low"),
        _column(quality, "arc_accuracy_ci_high"),
        color="black",
        marker="o",
    )
    ax.axhline(FOUR_OPTION_CHANCE, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("accuracy (fraction of questions)")
    ax.set_title("ARC accuracy at g = 1 (CI over questions;\ndashed: chance with four options)")
    _step_axis(ax, positions, divider)
    handles = [
        Line2D([], [], color=colours[rate], linewidth=3, label=f"r* = {rate:g}") for rate in rates
    ] + [
        Line2D(
            [],
            [],
            color="0.3",
            linestyle=spike_styles[spike][0],
            marker=spike_styles[spike][1],
            label=spike,
        )
        for spike in spikes
    ]
    _outside_legend(
        figure,
        handles,
        title=f"target rate (colour) · spike definition (style) · bars: {CI_NOTE}",
        ncols=len(handles),
    )
    roles = list(dict.fromkeys(at_g1.sort_values("step")["model_role"].astype(str)))
    model_ids = dict(
        zip(at_g1["model_role"].astype(str), at_g1["model_id"].astype(str), strict=False)
    )
    steps_text = ", ".join(
        f"{role} (step {int(step):,})" for role, step in zip(roles, quality["step"], strict=False)
    )
    figure.suptitle(
        "F12 training trajectory at g = 1 (the checkpoints as trained; MLP_GLOBAL, dataset A "
        f"unless stated) · {steps_text} · {_models_title(roles[-1:], model_ids)}"
    )
    return _attach(
        figure,
        "F12_TRAINING_TRAJECTORY",
        _condition_text(at_g1, "A,B,ARC_MCQ", f"g_condition=g1; intervention_id={MLP_GLOBAL}"),
        provenance,
        [("T09_TRAINING_TRAJECTORY", t09)],
        roles,
        ["T09_TRAINING_TRAJECTORY"],
    )
