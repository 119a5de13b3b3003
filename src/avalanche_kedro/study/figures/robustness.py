"""Robustness of the signatures: F08 spike definitions (two-sided vs one-sided events), F11
ablations (MLP_GLOBAL vs ATTN_GLOBAL vs MLP layer bands).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...measure.gain import MLP_GLOBAL
from .frames import (
    _column,
    _condition_text,
    _model_ids_of,
    _models_title,
    _rates,
    _require,
    _roles,
    _select,
    _spikes,
)
from .gain_curves import _per_g
from .generalization import _series_offsets
from .metadata import _attach, _attach_t01
from .style import (
    ABLATION_ORDER,
    B_UNIT,
    _grid,
    _outside_legend,
    _rate_colours,
    _role_handles,
    _role_style,
    _styled,
)


@_styled
def f08_spike_def_robustness(
    t01: pd.DataFrame, provenance: Mapping[str, Any] | None = None
) -> Figure:
    """F08: two-sided vs one-sided spike definition, b_tot and Δb_tot per (rate, g, role)."""
    _require(t01, ["b_tot", "delta_b_tot", "g"], "T01_SUMMARY")
    roles, spikes, rates = _roles(t01, provenance), _spikes(t01), _rates(t01)
    model_ids = _model_ids_of(t01)
    colours = _rate_colours(rates)
    figure, axes = _grid(1, 2, 12, 5.4)
    metrics = (
        ("b_tot", "opt_b_tot", f"b_tot ({B_UNIT})"),
        ("delta_b_tot", "opt_delta_b_tot", f"Δb_tot vs perm. null ({B_UNIT})"),
    )
    for j, (column, ci, unit) in enumerate(metrics):
        ax = axes[0, j]
        if len(spikes) < 2:
            ax.text(
                0.5,
                0.5,
                "only one spike definition in this run",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_xlabel(f"{spikes[0]}: {unit}")
            ax.set_ylabel(f"(second spike definition): {unit}")
            ax.set_title(f"{column}: spike-definition robustness (not available)")
            continue
        x_spike, y_spike = spikes[0], spikes[1]
        xs, ys = [], []
        for rate in rates:
            for role in roles:
                a = _per_g(t01, role, x_spike, rate)
                b = _per_g(t01, role, y_spike, rate)
                merged = a.merge(b, on="g", suffixes=("_x", "_y"))
                if merged.empty:
                    continue
                x, y = merged[f"{column}_x"].to_numpy(float), merged[f"{column}_y"].to_numpy(float)
                xerr = np.vstack(
                    [x - _column(merged, f"{ci}_ci_low_x"), _column(merged, f"{ci}_ci_high_x") - x]
                )
                yerr = np.vstack(
                    [y - _column(merged, f"{ci}_ci_low_y"), _column(merged, f"{ci}_ci_high_y") - y]
                )
                style = _role_style(roles, role)
                bars = ax.errorbar(
                    x,
                    y,
                    xerr=np.nan_to_num(xerr),
                    yerr=np.nan_to_num(yerr),
                    color=colours[rate],
                    elinewidth=0.4,
                    lw=0.8,
                    ls=style["linestyle"],
                    marker=style["marker"],
                    ms=3.5,
                )
                for collection in bars[2]:
                    collection.set_alpha(0.35)
                xs.append(x)
                ys.append(y)
        if xs:
            x_all, y_all = np.concatenate(xs), np.concatenate(ys)
            lo = float(np.nanmin([x_all.min(), y_all.min()]))
            hi = float(np.nanmax([x_all.max(), y_all.max()]))
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.3", lw=0.8, ls="--")
            varies = len(x_all) > 1 and np.std(x_all) > 0 and np.std(y_all) > 0
            r = np.corrcoef(x_all, y_all)[0, 1] if varies else np.nan
            ax.text(
                0.02,
                0.98,
                f"Pearson r = {r:.3f}\nmax |two-sided − one-sided| = {np.max(np.abs(y_all - x_all)):.3g}\n"
                f"mean (two-sided − one-sided) = {np.mean(y_all - x_all):+.3g}",
                transform=ax.transAxes,
                va="top",
                ha="left",
                fontsize=8,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
            )
        name = "Δb_tot" if column == "delta_b_tot" else column
        ax.set_xlabel(f"{x_spike}:\n{unit}")
        ax.set_ylabel(f"{y_spike}:\n{unit}")
        ax.set_title(f"{name}: one point per (target rate, g, role); lines join the gains")
    handles = [Line2D([], [], color=colours[r], lw=2, label=f"target rate {r:g}") for r in rates]
    handles += _role_handles(roles, model_ids)
    handles += [Line2D([], [], color="0.3", lw=0.8, ls="--", label="identity (definitions agree)")]
    _outside_legend(
        figure,
        handles,
        title="bars: 95 % bootstrap CI over windows (each spike definition)",
        ncols=4,
    )
    figure.suptitle(
        f"F08 spike-definition robustness · dataset A · MLP_GLOBAL · {_models_title(roles, model_ids)}"
    )
    return _attach_t01(figure, "F08_SPIKE_DEF_ROBUSTNESS", t01, provenance, roles)


def _ablation_categories(t06: pd.DataFrame) -> list[tuple[str, str]]:
    present = {
        (str(c), str(i)) for c, i in zip(t06["g_condition"], t06["intervention_id"], strict=True)
    }
    order = [("g1", MLP_GLOBAL)] + [("gstar", i) for i in ABLATION_ORDER]
    categories = [c for c in order if c in present]
    return categories + sorted(present - set(categories))


@_styled
def f11_ablations(t06: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F11: MLP_GLOBAL at g = 1 and g* vs ATTN_GLOBAL and the MLP bands at g*."""
    _require(t06, ["g_condition", "g", "intervention_id", "b_tot", "delta_b_tot"], "T06_ABLATIONS")
    roles, spikes, rates = _roles(t06, provenance), _spikes(t06), _rates(t06)
    model_ids = _model_ids_of(t06)
    colours = _rate_colours(rates)
    categories = _ablation_categories(t06)
    labels = [
        i.replace("BAND_", "BAND_\n") + ("\ng = 1" if c == "g1" else "\ng*") for c, i in categories
    ]
    figure, axes = _grid(len(spikes), 2, 14, 3.9 * len(spikes) + 0.8)
    series = [(rate, role) for rate in rates for role in roles]
    offsets = _series_offsets(len(series), spread=0.5)
    b_ci = "opt_b_tot_ci_low" in t06
    metrics = (
        (
            "b_tot",
            "opt_b_tot",
            f"b_tot ({B_UNIT})",
            "b_tot" + ("" if b_ci else " (point values: T06 stores no CI for b_tot)"),
        ),
        (
            "delta_b_tot",
            "opt_delta_b_tot",
            f"Δb_tot vs permutation null\n({B_UNIT})",
            "Δb_tot; bars: paired 95 % bootstrap CI over windows",
        ),
    )
    for i, spike in enumerate(spikes):
        for j, (column, ci, ylabel, title) in enumerate(metrics):
            ax = axes[i, j]
            for (rate, role), offset in zip(series, offsets, strict=True):
                rows = _select(t06, model_role=role, spike_def_id=spike, target_rate=rate)
                xs, ys, lows, highs = [], [], [], []
                for x, (condition, intervention) in enumerate(categories):
                    cell = rows[
                        (rows["g_condition"] == condition)
                        & (rows["intervention_id"] == intervention)
                    ]
                    if cell.empty:
                        continue
                    xs.append(x + offset)
                    ys.append(float(cell[column].iloc[0]))
                    lows.append(_column(cell, f"{ci}_ci_low")[0])
                    highs.append(_column(cell, f"{ci}_ci_high")[0])
                if not xs:
                    continue
                y, low, high = np.array(ys), np.array(lows), np.array(highs)
                yerr = (
                    np.vstack([y - low, high - y])
                    if np.isfinite(low).all() and np.isfinite(high).all()
                    else None
                )
                g_star = rows.loc[rows["g_condition"] == "gstar", "g"]
                label = (
                    f"{role}, r = {rate:g}: g* = {float(g_star.iloc[0]):g}"
                    if len(g_star)
                    else f"{role}, r = {rate:g}"
                )
                ax.errorbar(
                    xs,
                    y,
                    yerr=yerr,
                    color=colours[rate],
                    capsize=2,
                    elinewidth=0.8,
                    lw=0.6,
                    alpha=0.9,
                    label=label,
                    **_role_style(roles, role),
                )
            if column == "delta_b_tot":
                ax.axhline(0.0, color="0.2", lw=0.8, ls=":")
            ax.set_xticks(range(len(categories)), labels)
            ax.set_xlim(-0.6, len(categories) - 0.4)
            ax.set_xlabel("intervention at g = 1 or at g* (each rate-matched separately)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title} · {spike}")
        axes[i, -1].legend(
            loc="upper left", bbox_to_anchor=(1.02, 1.0), title=f"{spike}\nrole, target rate: g*"
        )
    figure.suptitle(
        "F11 ablations · dataset A · ATTN_GLOBAL scales attention by g*, MLP_BAND_* scale the MLP of one "
        f"third of the layers by g* · {_models_title(roles, model_ids)}"
    )
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
