"""Robustness of the signatures: F08 spike definitions (two-sided vs one-sided events), F11
ablations (MLP_GLOBAL vs ATTN_GLOBAL vs MLP layer bands).

Colour is the model role only (:func:`style.role_styles`); target rates are panel rows, so the
agreement statistics of F08 are computed within one target rate, never across rates (pooling
rates correlates the rates' different levels, not the two definitions).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...measure.gain import ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_LATE, MLP_BAND_MID, MLP_GLOBAL
from .frames import _column, _condition_text, _model_ids_of, _rates, _require, _select, _spikes
from .gain_curves import _per_g
from .generalization import _series_offsets
from .metadata import _attach, _attach_t01
from .roles import role_handles, styled_roles
from .style import (
    ABLATION_ORDER,
    B_UNIT,
    DOUBLE_COLUMN_IN,
    MAX_HEIGHT_IN,
    REFERENCE_LINE,
    _grid,
    _outside_legend,
    _styled,
    not_available,
)

#: F08 and F11 metrics: (column, CI prefix, name).
METRICS = (("b_tot", "opt_b_tot", "b_tot"), ("delta_b_tot", "opt_delta_b_tot", "Δb_tot"))
#: Short tick labels of the F11 interventions (the legend spells them out); others keep their id.
ABBREVIATIONS = {
    MLP_GLOBAL: "MLP",
    ATTN_GLOBAL: "ATTN",
    MLP_BAND_EARLY: "EARLY",
    MLP_BAND_MID: "MID",
    MLP_BAND_LATE: "LATE",
}
ABBREVIATION_NOTE = (
    f"MLP = {MLP_GLOBAL}, ATTN = {ATTN_GLOBAL} (attention scaled), EARLY / MID / LATE = "
    "MLP_BAND_* (the MLP of one third of the layers scaled); · 1: at g = 1, · g*: at the "
    "role's g* (rate-matched separately)"
)
#: Characters per line of a 7-pt note under a double-column figure.
NOTE_WIDTH = 115
#: Height (in) of one panel row and of the title + legend band.
ROW_IN, FRAME_IN = 1.85, 1.5


def _height(n_rows: int) -> float:
    return float(min(MAX_HEIGHT_IN, FRAME_IN + ROW_IN * max(n_rows, 1)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN with fewer than 3 points or a constant side."""
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:  # ptp: std of equal floats can be 1e-18
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def agreement(x, y, groups=None) -> dict[str, float]:
    """Agreement of two spike definitions over paired points (finite pairs only): ``n``,
    Pearson ``r``, Spearman ``rho`` (Pearson r of the average ranks), ``mean_diff`` = mean(y − x),
    ``max_abs_diff`` = max |y − x| and, with ``groups`` (the role of each point),
    ``r_within`` = Pearson r of x and y after subtracting each group's mean from both (the
    agreement on how a value moves with g inside one role, without the spread between roles).
    Correlations are NaN with fewer than 3 points or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = {"n": float(x.size), "r": np.nan, "rho": np.nan, "r_within": np.nan}
    out.update(mean_diff=np.nan, max_abs_diff=np.nan)
    if x.size == 0:
        return out
    out["mean_diff"] = float(np.mean(y - x))
    out["max_abs_diff"] = float(np.max(np.abs(y - x)))
    out["r"] = _pearson(x, y)
    out["rho"] = _pearson(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())
    if groups is not None:
        labels = np.asarray(groups)[keep]
        frame = pd.DataFrame({"g": labels, "x": x, "y": y})
        centred = frame[["x", "y"]] - frame.groupby("g")[["x", "y"]].transform("mean")
        out["r_within"] = _pearson(centred["x"].to_numpy(), centred["y"].to_numpy())
    return out


def _agreement_title(rate: float, stats: Mapping[str, float]) -> str:
    def value(v: float, spec: str) -> str:
        return "undefined" if not np.isfinite(v) else format(v, spec)

    return (
        f"r* = {rate:g} · n = {int(stats['n'])} · mean(y − x) = "
        f"{value(stats['mean_diff'], '+.3g')}\nr = {value(stats['r'], '.3f')} · "
        f"ρ = {value(stats['rho'], '.3f')} · within roles: r = {value(stats['r_within'], '.2f')}"
    )


@_styled
def f08_spike_def_robustness(
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F08: the second spike definition (y) against the first (x), b_tot and Δb_tot (columns)
    at every measured g, one panel row per target rate; each point is one (role, g) with its
    95 % bootstrap CIs under both definitions, and each panel's title gives the agreement
    within that rate (:func:`agreement`). One spike definition: "not available" panels."""
    _require(t01, ["b_tot", "delta_b_tot", "g"], "T01_SUMMARY")
    roles, untrained, styles = styled_roles(t01, provenance, control_role)
    spikes, rates, model_ids = _spikes(t01), _rates(t01), _model_ids_of(t01)
    if len(spikes) < 2:
        figure, axes = _grid(1, len(METRICS), DOUBLE_COLUMN_IN, 3.0)
        for ax, (_, _, name) in zip(axes[0], METRICS, strict=True):
            not_available(
                ax,
                f"only one spike definition ({spikes[0]}) in this run: nothing to compare",
                title=f"{name}: spike-definition robustness",
            )
        figure.suptitle("F08 spike-definition robustness · dataset A · MLP_GLOBAL")
        return _attach_t01(figure, "F08_SPIKE_DEF_ROBUSTNESS", t01, provenance, roles)
    x_spike, y_spike = spikes[0], spikes[1]
    figure, axes = _grid(len(rates), len(METRICS), DOUBLE_COLUMN_IN, _height(len(rates)))
    for i, rate in enumerate(rates):
        for j, (column, ci, name) in enumerate(METRICS):
            ax = axes[i, j]
            xs, ys, owners = [], [], []
            for role in roles:
                a = _per_g(t01, role, x_spike, rate)
                b = _per_g(t01, role, y_spike, rate)
                merged = a.merge(b, on="g", suffixes=("_x", "_y"))
                x, y = _column(merged, f"{column}_x"), _column(merged, f"{column}_y")
                if not (np.isfinite(x) & np.isfinite(y)).any():
                    continue
                xerr = np.vstack(
                    [x - _column(merged, f"{ci}_ci_low_x"), _column(merged, f"{ci}_ci_high_x") - x]
                )
                yerr = np.vstack(
                    [y - _column(merged, f"{ci}_ci_low_y"), _column(merged, f"{ci}_ci_high_y") - y]
                )
                style = {**styles[role], "linewidth": 0.6}  # thin lines join a role's gains
                bars = ax.errorbar(
                    x,
                    y,
                    xerr=np.nan_to_num(xerr),
                    yerr=np.nan_to_num(yerr),
                    elinewidth=0.5,
                    **style,
                )
                for collection in bars[2]:
                    collection.set_alpha(0.45)
                xs.append(x)
                ys.append(y)
                owners += [role] * len(x)
            if not xs:
                not_available(
                    ax,
                    f"no {name} under both spike definitions at r* = {rate:g}",
                    title=f"r* = {rate:g}",
                )
                continue
            x_all, y_all = np.concatenate(xs), np.concatenate(ys)
            finite = np.concatenate([x_all, y_all])
            finite = finite[np.isfinite(finite)]
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.08 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], **REFERENCE_LINE)
            ax.set_title(_agreement_title(rate, agreement(x_all, y_all, owners)))
            ax.set_ylabel(f"y: {y_spike}\n{name}")
            if i == len(rates) - 1:
                ax.set_xlabel(f"x: {x_spike}\n{name} ({B_UNIT})")
    handles = role_handles(roles, styles, model_ids, untrained)
    handles.append(Line2D([], [], label="identity: the definitions agree", **REFERENCE_LINE))
    _outside_legend(
        figure,
        handles,
        title=(
            "a point: one (role, g), lines join a role's gains; bars: 95 % bootstrap CI over "
            "windows\nr: Pearson, ρ: Spearman, over the n points of one target rate; within "
            "roles: r after subtracting each role's mean"
        ),
        ncols=2,
    )
    figure.suptitle(
        f"F08 spike-definition robustness · dataset A · MLP_GLOBAL · {y_spike} vs {x_spike}"
    )
    return _attach_t01(figure, "F08_SPIKE_DEF_ROBUSTNESS", t01, provenance, roles)


def _ablation_categories(t06: pd.DataFrame) -> list[tuple[str, str]]:
    present = {
        (str(c), str(i)) for c, i in zip(t06["g_condition"], t06["intervention_id"], strict=True)
    }
    order = [("g1", MLP_GLOBAL)] + [("gstar", i) for i in ABLATION_ORDER]
    categories = [c for c in order if c in present]
    return categories + sorted(present - set(categories))


def category_label(condition: str, intervention: str) -> str:
    """One-line tick label of an F11 category: ``MLP · 1``, ``ATTN · g*``, ..."""
    short = ABBREVIATIONS.get(intervention, intervention)
    return f"{short} · {'1' if condition == 'g1' else 'g*'}"


def _ablation_points(rows: pd.DataFrame, categories, column: str, ci: str):
    """(category index, value, CI low, CI high) of every category with a row."""
    points = []
    for x, (condition, intervention) in enumerate(categories):
        cell = rows[(rows["g_condition"] == condition) & (rows["intervention_id"] == intervention)]
        if not cell.empty:
            low, high = _column(cell, f"{ci}_ci_low")[0], _column(cell, f"{ci}_ci_high")[0]
            points.append((x, float(cell[column].iloc[0]), low, high))
    return points


@_styled
def f11_ablations(
    t06: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F11: b_tot and Δb_tot of MLP_GLOBAL at g = 1 and g* and of ATTN_GLOBAL and the MLP bands
    at g* — a categorical x axis, one marker per role (dodged by ±0.25 category) with its CI and
    no line between categories; panel rows: target rates; columns: metric × spike definition."""
    _require(t06, ["g_condition", "g", "intervention_id", "b_tot", "delta_b_tot"], "T06_ABLATIONS")
    roles, untrained, styles = styled_roles(t06, provenance, control_role)
    spikes, rates, model_ids = _spikes(t06), _rates(t06), _model_ids_of(t06)
    categories = _ablation_categories(t06)
    labels = [category_label(c, i) for c, i in categories]
    panels = [(metric, spike) for metric in METRICS for spike in spikes]
    figure, axes = _grid(len(rates), len(panels), DOUBLE_COLUMN_IN, _height(len(rates)))
    offsets = _series_offsets(len(roles), spread=0.5)
    b_ci = "opt_b_tot_ci_low" in t06
    for i, rate in enumerate(rates):
        for j, ((column, ci, name), spike) in enumerate(panels):
            ax = axes[i, j]
            title = f"{name} · {spike}" if i == 0 else ""
            drawn = False
            for role, offset in zip(roles, offsets, strict=True):
                rows = _select(t06, model_role=role, spike_def_id=spike, target_rate=rate)
                points = _ablation_points(rows, categories, column, ci)
                if not points:
                    continue
                x, y, low, high = (np.array(v, dtype=float) for v in zip(*points, strict=True))
                finite = np.isfinite(low) & np.isfinite(high)
                yerr = np.vstack([np.where(finite, y - low, 0.0), np.where(finite, high - y, 0.0)])
                style = {**styles[role], "linestyle": "none"}  # categories are not a continuum
                ax.errorbar(x + offset, y, yerr=yerr, capsize=1.5, elinewidth=0.7, **style)
                drawn = True
            if not drawn:
                not_available(ax, f"no T06 row for r* = {rate:g}", title=title or None)
                continue
            limits = ax.get_ylim()
            ax.axhline(1.0 if column == "b_tot" else 0.0, **REFERENCE_LINE)
            if column == "b_tot":  # b = 1 only where it falls among the data: no squashed panel
                ax.set_ylim(limits)
            bottom = i == len(rates) - 1
            ax.set_xticks(range(len(categories)), labels if bottom else [])
            if bottom:
                ax.set_xlabel("intervention · gain")
            ax.tick_params(axis="x", labelrotation=90)
            ax.set_xlim(-0.6, len(categories) - 0.4)
            if title:
                ax.set_title(title.replace(" · ", "\n"))
            if j % len(spikes) == 0:
                ax.set_ylabel(f"r* = {rate:g}\n{name}")
    handles = role_handles(roles, styles, model_ids, untrained)
    handles.append(Line2D([], [], label="reference: b_tot = 1, Δb_tot = 0", **REFERENCE_LINE))
    _outside_legend(
        figure,
        handles,
        title=textwrap.fill(
            f"{ABBREVIATION_NOTE}. b_tot, Δb_tot in {B_UNIT}; bars: paired 95 % bootstrap CI "
            "over windows" + ("" if b_ci else " (Δb_tot only: T06 stores no CI for b_tot)"),
            NOTE_WIDTH,
        ),
        ncols=2,
    )
    figure.suptitle("F11 ablations at g* · dataset A · which part of the network carries g*")
    return _attach(
        figure,
        "F11_ABLATIONS",
        _condition_text(
            t06,
            "A",
            "interventions="
            + ",".join(sorted({i for _, i in categories}))
            + "; g_condition=g1 (MLP_GLOBAL), gstar (all)",
        ),
        provenance,
        [("T06_ABLATIONS", t06)],
        roles,
        ["T06_ABLATIONS"],
    )
