"""F02: achieved / target event rate per layer (in-sample and held out), every gain and rate.

The quantity is the ratio ``achieved_rate / r*[l]`` (dimensionless) on a log axis, so a layer
whose held-out rate is 3× its target sits as far above the 1× line as one at 1/3 would sit
below, whatever the target rate. Calibration (in-sample, gated: ``|achieved − r*| ≤
max(rel_tol·r*, 1/n)``) and held-out analysis slices are told apart by marker fill; roles by
panel row and colour (:func:`~.style.role_styles`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator

from ...measure.gain import MLP_GLOBAL
from ..lens import untrained_roles
from .frames import _rates, _require, _spikes
from .metadata import _attach, _resolve_provenance
from .roles import role_label
from .style import (
    KEY_COLOUR,
    REFERENCE_COLOUR,
    REFERENCE_LINE,
    _grid,
    _outside_legend,
    _styled,
    figure_size,
    not_available,
    role_styles,
)

#: Half-width of the slot of one layer on the x axis: the target rates of a layer sit at
#: evenly spaced offsets in [-SLOT, +SLOT], smallest rate left.
SLOT = 0.3
#: Y ticks of the ratio axis (×): fine ones when every ratio is within a factor 1.5 of 1,
#: coarse ones (which do not crowd around 1×) otherwise.
FINE_TICKS = (0.8, 0.9, 1.0, 1.1, 1.25, 1.5)
COARSE_TICKS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0)
PANEL_HEIGHT_IN = 1.95
FRAME_HEIGHT_IN = 1.55

TAU_COLUMNS = (
    "g",
    "spike_def_id",
    "target_rate",
    "layer",
    "r_star",
    "achieved_rate_calibration",
    "achieved_rate_analysis",
)


def rate_ratios(taus: pd.DataFrame) -> pd.DataFrame:
    """``taus`` with ``ratio_calibration`` and ``ratio_analysis`` = achieved / r* and ``gate`` =
    ``rate_match_tol / r*`` (the relative width of the calibration gate; NaN where the tau
    table has no ``rate_match_tol``). Rows with r* ≤ 0 get NaN ratios (undefined on a log axis)."""
    r_star = taus["r_star"].astype(float).where(taus["r_star"].astype(float) > 0)
    tol = taus["rate_match_tol"].astype(float) if "rate_match_tol" in taus else np.nan
    return taus.assign(
        ratio_calibration=taus["achieved_rate_calibration"].astype(float) / r_star,
        ratio_analysis=taus["achieved_rate_analysis"].astype(float) / r_star,
        gate=tol / r_star,
    )


def _offsets(n: int) -> np.ndarray:
    return np.linspace(-SLOT, SLOT, n) if n > 1 else np.zeros(1)


def _reference_gain(gains: Sequence[float]) -> float:
    """The gain whose marker is drawn: g = 1 (the unmodified model) when on the grid, else the
    middle gain."""
    return 1.0 if any(np.isclose(gains, 1.0)) else sorted(gains)[len(gains) // 2]


def _panel(ax, part: pd.DataFrame, rates, layers, colour, g_ref) -> tuple[float, str] | None:
    """Draw one (role, spike definition) panel; returns the largest held-out ratio and where."""
    offsets = dict(zip(rates, _offsets(len(rates)), strict=True))
    finite = part[np.isfinite(part["ratio_analysis"]) | np.isfinite(part["ratio_calibration"])]
    if finite.empty:
        return None
    gate = part.groupby("layer")["gate"].max().reindex(layers)
    if np.isfinite(gate.to_numpy(float)).any():
        # the calibration gate ±(max(rel_tol r*, 1/n) / r*) of each layer, behind the points
        for layer, width in gate.items():
            if np.isfinite(width):
                ax.fill_between(
                    [layer - 0.45, layer + 0.45],
                    1.0 - width,
                    1.0 + width,
                    color=REFERENCE_COLOUR,
                    alpha=0.18,
                    linewidth=0,
                    zorder=1,
                )
    slot = {float(r): o for r, o in offsets.items()}
    for slice_name, filled in (("analysis", False), ("calibration", True)):
        column = f"ratio_{slice_name}"
        values = finite[["layer", "target_rate", "g", column]]
        values = values[np.isfinite(values[column]) & (values[column] > 0)]
        if values.empty:
            continue
        x = values["layer"].astype(float) + values["target_rate"].astype(float).map(slot)
        spread = values.assign(x=x).groupby("x", sort=True)[column].agg(["min", "max"])
        # the spread over gains as one bar per (layer, rate), the reference gain as a marker
        ax.vlines(spread.index, spread["min"], spread["max"], colors=colour, lw=0.9, zorder=3)
        at_ref = np.isclose(values["g"].astype(float), g_ref)
        ax.plot(
            x[at_ref].to_numpy(),
            values.loc[at_ref, column].to_numpy(float),
            ls="none",
            marker="o" if filled else "^",
            ms=3.2 if filled else 4.2,
            mfc=colour if filled else "white",
            mec=colour,
            mew=0.8,
            zorder=4,
        )
    ax.axhline(1.0, zorder=5, **{**REFERENCE_LINE, "linewidth": 1.0})
    held_out = finite["ratio_analysis"].to_numpy(float)
    if not np.isfinite(held_out).any():
        return None
    k = int(np.nanargmax(np.abs(np.log(held_out))))
    row = finite.iloc[k]
    where = f"layer {int(row['layer'])}, rate {float(row['target_rate']):g}, g {float(row['g']):g}"
    return float(held_out[k]), where


def _ratio_axis(axes, low: float, high: float) -> None:
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        candidates = FINE_TICKS if high / low < 2.0 else COARSE_TICKS
        ticks = [t for t in candidates if low <= t <= high]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels([f"{t:g}×" for t in ticks])


@_styled
def f02_rate_matching(
    tau_tables: Mapping[str, pd.DataFrame],
    provenance: Mapping[str, Any],
    *,
    control_role: str | None = None,
) -> Figure:
    """F02: achieved / target event rate per layer, ``achieved_rate / r*[l]`` on a log axis.

    One panel per role (rows) and spike definition (columns). Within each layer the target
    rates sit left to right (smallest first); at each (layer, rate) a vertical bar spans the
    ratio over every gain of the grid and a marker gives it at g = 1 (the middle gain when 1
    is not on the grid): filled circles on the calibration slice (in-sample, gated to
    ``max(rel_tol·r*, 1/n)``, the grey band), hollow triangles on the held-out analysis slice
    (reported, not gated). Each panel names its largest held-out departure from 1×."""
    roles = [r for r in (provenance or {}).get("roles", []) if r in tau_tables]
    roles += sorted(r for r in tau_tables if r not in roles)
    frames = []
    for role in roles:
        table = tau_tables[role]
        _require(table, TAU_COLUMNS, f"{role}.tau_table")
        if "intervention_id" in table:
            table = table[table["intervention_id"] == MLP_GLOBAL]
        frames.append(table.assign(model_role=role))
    taus = rate_ratios(pd.concat(frames, ignore_index=True))
    spikes, rates = _spikes(taus), _rates(taus)
    gains = sorted(float(g) for g in taus["g"].unique())
    layers = sorted(int(v) for v in taus["layer"].unique())
    g_ref = _reference_gain(gains)
    info = _resolve_provenance(provenance, [], roles)
    untrained = untrained_roles(roles, provenance, control_role)
    styles = role_styles(roles, untrained)
    width, height = figure_size(2, PANEL_HEIGHT_IN * len(roles) + FRAME_HEIGHT_IN)
    figure, axes = _grid(len(roles), len(spikes), width, height)
    drawn = []
    for i, role in enumerate(roles):
        for j, spike in enumerate(spikes):
            ax = axes[i, j]
            title = f"{role} · {spike}"
            part = taus[(taus["model_role"] == role) & (taus["spike_def_id"] == spike)]
            largest = _panel(ax, part, rates, layers, styles[role]["color"], g_ref)
            if largest is None:
                not_available(ax, f"no finite achieved rate for {role} · {spike}", title=title)
                continue
            ratio, where = largest
            ax.set_title(title)
            ax.text(
                0.02,
                0.97,
                f"held out: largest {ratio:.2f}× ({where})",
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize=7,
                color=KEY_COLOUR,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
                zorder=6,
            )
            ax.set_xticks(layers)
            ax.set_xlim(min(layers) - 0.6, max(layers) + 0.6)
            ax.set_xlabel("layer l (index)")
            ax.grid(False, axis="x")
            drawn.append(ax)
    if drawn:
        values = taus[["ratio_calibration", "ratio_analysis"]].to_numpy(float)
        values = values[np.isfinite(values) & (values > 0)]
        gate = taus["gate"].to_numpy(float)
        gate = float(np.nanmax(gate)) if np.isfinite(gate).any() else 0.0
        low = min(float(values.min()), 1.0 - gate) / 1.08
        high = max(float(values.max()), 1.0 + gate) * 1.25  # room for the panel's note
        _ratio_axis(drawn, low, high)
    figure.supylabel("achieved / target rate r*[l] (×, log scale)")
    handles = [
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            ms=3.2,
            color=KEY_COLOUR,
            label="calibration slice (in-sample, gated)",
        ),
        Line2D(
            [],
            [],
            ls="none",
            marker="^",
            ms=4.2,
            mfc="white",
            color=KEY_COLOUR,
            label="analysis slice (held out, reported)",
        ),
        Line2D(
            [],
            [],
            color=KEY_COLOUR,
            marker="|",
            ls="none",
            ms=8,
            label=f"bar: range over {len(gains)} gains ({gains[0]:g}…{gains[-1]:g}); "
            f"marker: g = {g_ref:g}",
        ),
        Line2D([], [], label="1× (achieved = target)", **REFERENCE_LINE),
        Patch(
            color=REFERENCE_COLOUR,
            alpha=0.18,
            linewidth=0,
            label="calibration gate ± max(rel_tol·r*, 1/n) / r*",
        ),
    ]
    handles += [
        Line2D(
            [],
            [],
            ls="none",
            label=role_label(role, info["model_ids"], untrained),
            **{k: v for k, v in styles[role].items() if k != "linestyle"},
        )
        for role in roles
    ]
    _outside_legend(figure, handles, ncols=2)
    figure.suptitle(
        "F02 rate matching per layer · dataset A · MLP_GLOBAL · within each layer, target rates "
        f"{', '.join(f'{r:g}' for r in rates)} left to right"
    )
    condition = (
        f"dataset_role=A; intervention_id={MLP_GLOBAL}; slices=calibration,analysis; "
        f"spike_def_id={','.join(spikes)}; target_rate={','.join(f'{r:g}' for r in rates)}; "
        f"g={','.join(f'{g:g}' for g in gains)}"
    )
    return _attach(
        figure,
        "F02_RATE_MATCHING",
        condition,
        provenance,
        [],
        roles,
        [f"{role}.tau_table" for role in roles],
    )
