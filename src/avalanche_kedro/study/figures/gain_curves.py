"""The T01 figures over the gain grid: F03 branching, F04 delta_b against the permutation null,
F05 the g* selection, F09 susceptibility, F10 the three nulls side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ...analysis.nulls import NULL_PERM, NULL_SHIFT
from ...measure.gain import MLP_GLOBAL
from ...measure.sweep import NULL_TOKEN_SHUFFLE_INPUT
from .frames import (
    _column,
    _model_ids_of,
    _models_title,
    _rates,
    _require,
    _roles,
    _select,
    _spikes,
)
from .metadata import _attach_t01
from .style import (
    B_UNIT,
    CI_NOTE,
    G_LABEL,
    METRIC_COLOURS,
    NULL_STYLES,
    ROLE_COLOURS,
    _band,
    _grid,
    _outside_legend,
    _rate_colours,
    _role_handles,
    _role_style,
    _styled,
    _wrap,
)


def _t01_grid(t01: pd.DataFrame, provenance, height_per_row=2.4, width=11.0):
    roles, spikes, rates = _roles(t01, provenance), _spikes(t01), _rates(t01)
    figure, axes = _grid(
        len(rates), len(spikes), width, height_per_row * len(rates) + 1.6, sharex=True
    )
    return figure, axes, roles, spikes, rates


def _per_g(t01: pd.DataFrame, role: str, spike: str, rate: float) -> pd.DataFrame:
    return _select(t01, model_role=role, spike_def_id=spike, target_rate=rate).sort_values("g")


def _label_panel(ax, spike: str, rate: float, ylabel: str) -> None:
    ax.set_title(f"{spike} · target rate {rate:g}")
    ax.set_xlabel(G_LABEL)
    ax.set_ylabel(ylabel)


@_styled
def f03_branching_vs_gain(t01: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F03: b_time, b_depth, b_tot vs g, one panel per (target rate, spike definition)."""
    _require(t01, ["b_time", "b_depth", "b_tot", "g"], "T01_SUMMARY")
    figure, axes, roles, spikes, rates = _t01_grid(t01, provenance)
    model_ids = _model_ids_of(t01)
    for i, rate in enumerate(rates):
        for j, spike in enumerate(spikes):
            ax = axes[i, j]
            for role in roles:
                rows = _per_g(t01, role, spike, rate)
                g = rows["g"].to_numpy(float)
                for metric, colour in METRIC_COLOURS.items():
                    _band(
                        ax,
                        g,
                        _column(rows, f"opt_{metric}_ci_low"),
                        _column(rows, f"opt_{metric}_ci_high"),
                        colour,
                    )
                    ax.plot(g, rows[metric], color=colour, **_role_style(roles, role))
            ax.axhline(1.0, color="0.2", lw=0.8, ls=":")
            _label_panel(ax, spike, rate, f"b\n({B_UNIT})")
    handles = [Line2D([], [], color=c, lw=2, label=m) for m, c in METRIC_COLOURS.items()]
    handles += _role_handles(roles, model_ids)
    handles += [
        Line2D([], [], color="0.2", lw=0.8, ls=":", label="b = 1"),
        Patch(color="0.5", alpha=0.3, label=f"shaded: {CI_NOTE}"),
    ]
    _outside_legend(figure, handles, ncols=4)
    figure.suptitle(
        f"F03 branching ratios vs MLP gain · dataset A (analysis slice) · {_models_title(roles, model_ids)}"
    )
    return _attach_t01(figure, "F03_BRANCHING_VS_GAIN", t01, provenance, roles)


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
def f04_delta_b_vs_gain(t01: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F04: delta_b_time/depth/tot (real - permutation null) vs g with paired CIs."""
    _require(t01, ["delta_b_time", "delta_b_depth", "delta_b_tot"], "T01_SUMMARY")
    figure, axes, roles, spikes, rates = _t01_grid(t01, provenance)
    model_ids = _model_ids_of(t01)
    for i, rate in enumerate(rates):
        for j, spike in enumerate(spikes):
            ax = axes[i, j]
            for role in roles:
                rows = _per_g(t01, role, spike, rate)
                g = rows["g"].to_numpy(float)
                for metric, colour in METRIC_COLOURS.items():
                    column = f"delta_{metric}"
                    _band(
                        ax,
                        g,
                        _column(rows, f"opt_{column}_ci_low"),
                        _column(rows, f"opt_{column}_ci_high"),
                        colour,
                    )
                    ax.plot(g, rows[column], color=colour, **_role_style(roles, role))
            ax.axhline(0.0, color="0.2", lw=0.8, ls=":")
            _label_panel(ax, spike, rate, f"Δb = b(real) − b(perm. null)\n({B_UNIT})")
    handles = [Line2D([], [], color=c, lw=2, label=f"Δ{m}") for m, c in METRIC_COLOURS.items()]
    handles += _role_handles(roles, model_ids)
    handles += [
        Line2D([], [], color="0.2", lw=0.8, ls=":", label="Δb = 0 (no structure beyond the null)")
    ]
    _outside_legend(figure, handles, title=_wrap(_marginal_caption(t01)), ncols=3)
    figure.suptitle(
        f"F04 branching above the marginal-preserving permutation null · dataset A · {_models_title(roles, model_ids)}"
    )
    return _attach_t01(
        figure,
        "F04_DELTA_B_VS_GAIN",
        t01,
        provenance,
        roles,
        f"intervention_id={MLP_GLOBAL}; real vs null_id={NULL_PERM} (preserves every (window, layer) marginal exactly)",
    )


def _distance_interval(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image of the interval [low, high] under b -> |b - 1|."""
    a, b = np.abs(low - 1.0), np.abs(high - 1.0)
    inside = (low <= 1.0) & (high >= 1.0)
    return np.where(inside, 0.0, np.minimum(a, b)), np.maximum(a, b)


@_styled
def f05_gstar_selection(t01: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F05: |b_tot - 1| vs g per (target rate, spike def), g* (T01 ``opt_is_gstar``) starred."""
    _require(t01, ["b_tot", "g", "opt_is_gstar"], "T01_SUMMARY")
    figure, axes, roles, spikes, rates = _t01_grid(t01, provenance)
    model_ids = _model_ids_of(t01)
    for i, rate in enumerate(rates):
        for j, spike in enumerate(spikes):
            ax = axes[i, j]
            chosen = []
            for k, role in enumerate(roles):
                colour = ROLE_COLOURS[k % len(ROLE_COLOURS)]
                rows = _per_g(t01, role, spike, rate)
                g = rows["g"].to_numpy(float)
                distance = np.abs(rows["b_tot"].to_numpy(float) - 1.0)
                low, high = _distance_interval(
                    _column(rows, "opt_b_tot_ci_low"), _column(rows, "opt_b_tot_ci_high")
                )
                _band(ax, g, low, high, colour, alpha=0.12)
                ax.plot(g, distance, color=colour, **_role_style(roles, role))
                star = rows["opt_is_gstar"].astype(bool).to_numpy()
                if star.any():
                    gs, ds = g[star][0], distance[star][0]
                    ax.plot(
                        [gs],
                        [ds],
                        marker="*",
                        ms=14,
                        color=colour,
                        mec="black",
                        mew=0.6,
                        ls="none",
                        zorder=5,
                    )
                    edge = " (grid edge)" if gs in (g.min(), g.max()) else ""
                    chosen.append(f"{role} {gs:g}{edge}")
            ax.set_ylim(bottom=0)
            _label_panel(ax, spike, rate, "|b_tot − 1| (dimensionless)")
            ax.set_title(f"{spike} · target rate {rate:g}\ng*: {', '.join(chosen) or 'none'}")
    handles = [
        Line2D(
            [],
            [],
            color=ROLE_COLOURS[k % len(ROLE_COLOURS)],
            label=f"{role} ({model_ids.get(role, '?')})",
            **_role_style(roles, role),
        )
        for k, role in enumerate(roles)
    ]
    handles += [
        Line2D(
            [],
            [],
            ls="none",
            marker="*",
            ms=12,
            color="0.5",
            mec="black",
            label="g* = argmin |b_tot − 1| (ties: closest to 1, then smaller)",
        ),
        Patch(color="0.5", alpha=0.3, label="|b − 1| over the 95 % bootstrap CI of b_tot"),
    ]
    _outside_legend(figure, handles, ncols=2)
    figure.suptitle(
        f"F05 g* selection on dataset A (branching only, no task metric) · {_models_title(roles, model_ids)}"
    )
    return _attach_t01(figure, "F05_GSTAR_SELECTION", t01, provenance, roles)


@_styled
def f09_susceptibility(t01: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F09: chi vs g with CIs; one panel per spike definition, colour = target rate."""
    _require(t01, ["chi", "g"], "T01_SUMMARY")
    roles, spikes, rates = _roles(t01, provenance), _spikes(t01), _rates(t01)
    model_ids = _model_ids_of(t01)
    colours = _rate_colours(rates)
    figure, axes = _grid(1, len(spikes), 5.5 * len(spikes), 4.6, sharey=True)
    for j, spike in enumerate(spikes):
        ax = axes[0, j]
        for rate in rates:
            for role in roles:
                rows = _per_g(t01, role, spike, rate)
                g = rows["g"].to_numpy(float)
                _band(
                    ax,
                    g,
                    _column(rows, "opt_chi_ci_low"),
                    _column(rows, "opt_chi_ci_high"),
                    colours[rate],
                    alpha=0.1,
                )
                ax.plot(g, rows["chi"], color=colours[rate], **_role_style(roles, role))
        ax.set_title(f"{spike} · dataset A")
        ax.set_xlabel(G_LABEL)
        ax.set_ylabel("χ = var(Y) / mean(Y)\n(events per window; Y = events in a window)")
    handles = [Line2D([], [], color=colours[r], lw=2, label=f"target rate {r:g}") for r in rates]
    handles += _role_handles(roles, model_ids)
    handles += [Patch(color="0.5", alpha=0.3, label=f"shaded: {CI_NOTE}")]
    _outside_legend(figure, handles, ncols=4)
    figure.suptitle(f"F09 susceptibility vs MLP gain · {_models_title(roles, model_ids)}")
    return _attach_t01(figure, "F09_SUSCEPTIBILITY", t01, provenance, roles)


@_styled
def f10_null_comparison(t01: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F10: delta_b_tot vs g against the permutation, circular-shift and token-shuffle nulls."""
    _require(
        t01, ["delta_b_tot", "opt_delta_b_tot_shift", "opt_delta_b_tot_tokshuf"], "T01_SUMMARY"
    )
    figure, axes, roles, spikes, rates = _t01_grid(t01, provenance)
    model_ids = _model_ids_of(t01)
    for i, rate in enumerate(rates):
        for j, spike in enumerate(spikes):
            ax = axes[i, j]
            for role in roles:
                rows = _per_g(t01, role, spike, rate)
                g = rows["g"].to_numpy(float)
                for value, ci, _, colour in NULL_STYLES.values():
                    y = _column(rows, value)
                    low, high = _column(rows, f"{ci}_ci_low"), _column(rows, f"{ci}_ci_high")
                    if np.isnan(y).any():
                        # recorded at a few gains only (the token-shuffle null: g = 1 and each
                        # g*): points with CI bars, not a line through the gaps
                        kept = np.isfinite(y)
                        ax.errorbar(
                            g[kept],
                            y[kept],
                            yerr=np.vstack([y[kept] - low[kept], high[kept] - y[kept]]),
                            color=colour,
                            capsize=2,
                            linestyle="none",
                            marker=_role_style(roles, role)["marker"],
                        )
                        continue
                    _band(ax, g, low, high, colour, alpha=0.12)
                    ax.plot(g, y, color=colour, **_role_style(roles, role))
            ax.axhline(0.0, color="0.2", lw=0.8, ls=":")
            _label_panel(ax, spike, rate, f"Δb_tot = b_tot(real) − b_tot(null)\n({B_UNIT})")
    handles = [
        Line2D([], [], color=colour, lw=2, label=label)
        for _, _, label, colour in NULL_STYLES.values()
    ]
    handles += _role_handles(roles, model_ids)
    caption = (
        "Raster nulls (permutation, circular shift) reorder each (window, layer) row of the count raster "
        "and preserve every (window, layer) marginal exactly (checked on every run); the token-shuffle null "
        "permutes input positions 1..T-2, re-runs the model and thresholds with the real τ (no marginal "
        f"guarantee; missing where it was not recorded for a gain). Shaded: {CI_NOTE}, paired with the real raster."
    )
    _outside_legend(figure, handles, title=_wrap(caption), ncols=3)
    figure.suptitle(f"F10 null comparison · dataset A · {_models_title(roles, model_ids)}")
    return _attach_t01(
        figure,
        "F10_NULL_COMPARISON",
        t01,
        provenance,
        roles,
        f"intervention_id={MLP_GLOBAL}; nulls={NULL_PERM},{NULL_SHIFT},{NULL_TOKEN_SHUFFLE_INPUT}",
    )
