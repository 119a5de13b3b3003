"""The logit lens next to the cascades: F13 (lens and event density vs layer, from T10) and F14
(collapse layer vs cascade depth, from the per-role cross-tabulations and T11).

Both show one spike definition and target rate, chosen as F01 does
(:func:`avalanche_kedro.study.lens.primary_condition`: ``SPIKE_ONE_SIDED_POS`` and the middle
target rate), named in the title; the event thresholds and each role's g* belong to that
condition, while the lens at g = 1 is the same for every condition. Roles are told apart by
colour and marker; the untrained roles (the configured control, or a model recorded at step 0
or with random weights) are grey with hollow markers and dotted lines, and say so in the legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ...measure.gain import MLP_GLOBAL
from ..lens import primary_condition
from .frames import _condition_text, _model_ids_of, _require, _select
from .metadata import _attach
from .roles import (
    match_limits,
    role_handles,
    role_label,  # noqa: F401  (re-exported: F13/F14 tests read it here)
    styled_roles,
)
from .style import (
    CI_NOTE,
    DOUBLE_COLUMN_IN,
    NULL_COLOURS,
    RATE_UNIT,
    REFERENCE_LINE,
    UNTRAINED_COLOUR,
    _grid,
    _outside_legend,
    _styled,
    new_figure,
    not_available,
    role_styles,  # noqa: F401  (re-exported: F13/F14 tests read it here)
)

#: The token-shuffle null of F14: the registry's token-shuffle colour, light (an interval, not
#: a measurement), its mean at full strength.
NULL_COLOUR = NULL_COLOURS["tokshuf"]
NULL_ALPHA = 0.25
G_CONDITIONS = (("g1", "g = 1"), ("gstar", "g = g*"))
LAYER_LABEL = "layer l (residual stream after block l, 0-based)"
#: F13 rows: (T10 column, y label with its unit, what the row shows).
F13_PANELS = (
    ("mean_entropy_nats", "mean entropy (nats)", "entropy of the lens distribution"),
    ("mean_kl_to_final_nats", "mean KL (nats)", "KL(p_final ‖ p_l): divergence to the final layer"),
    (
        "occupancy",
        "fraction of sites",
        "event density: window × token sites with ≥ 1 event",
    ),
    (
        "avalanche_site_fraction",
        "fraction of sites",
        "event density: sites in avalanches of ≥ 2 sites (ADJ_4N)",
    ),
)
#: F14 marker areas (pt²): the largest count of the figure gets MAX_AREA.
MIN_AREA, MAX_AREA = 5.0, 220.0


def _gstar_text(rows: pd.DataFrame, roles: Sequence[str]) -> str:
    star = rows[rows["g_condition"] == "gstar"]
    values = [
        f"{role} {float(star.loc[star['model_role'] == role, 'g'].iloc[0]):g}"
        for role in roles
        if (star["model_role"] == role).any()
    ]
    return ", ".join(values)


def _primary(table: pd.DataFrame, spike_def_id, target_rate) -> tuple[str, float]:
    spike, rate = primary_condition(table)
    return spike_def_id or spike, float(target_rate) if target_rate is not None else rate


def _condition_header(rows: pd.DataFrame, roles: Sequence[str], condition: str) -> str:
    """``at g = 1``, or ``at g* (base 1.2, …)`` with every role's g* (``no g* row`` when none)."""
    if condition == "g1":
        return "at g = 1"
    values = _gstar_text(rows, roles)
    return f"at g* ({values})" if values else "at g* (no g* row)"


@_styled
def f13_lens_depth(
    t10: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
    spike_def_id: str | None = None,
    target_rate: float | None = None,
) -> Figure:
    """F13: mean lens entropy, KL to the final layer, occupancy and avalanche-site fraction
    (rows) against the layer at g = 1 and at g* (columns, shared y per row), one line per role
    (T10_LENS). A column without rows (no role has a g* row) is a "not available" panel."""
    _require(t10, ["model_role", "layer", *(c for c, _, _ in F13_PANELS)], "T10_LENS")
    spike, rate = _primary(t10, spike_def_id, target_rate)
    rows = _select(t10, spike_def_id=spike, target_rate=rate)
    roles, untrained, styles = styled_roles(rows, provenance, control_role)
    model_ids = _model_ids_of(t10)
    figure, axes = _grid(len(F13_PANELS), len(G_CONDITIONS), DOUBLE_COLUMN_IN, 7.0)
    for j, (condition, _) in enumerate(G_CONDITIONS):
        at = rows[rows["g_condition"] == condition]
        header = _condition_header(rows, roles, condition)
        for i, (column, ylabel, title) in enumerate(F13_PANELS):
            ax = axes[i, j]
            panel_title = f"{header}\n{title}" if i == 0 else title
            values = at[column].astype(float) if len(at) else at[column]
            if at.empty or not np.isfinite(values.to_numpy(dtype=float)).any():
                why = "no role has a g* row in T10" if at.empty else f"{column} is NaN"
                not_available(ax, f"{why} for {spike}, r* = {rate:g}", title=panel_title)
                continue
            for role in roles:
                part = at[at["model_role"] == role].sort_values("layer")
                ax.plot(part["layer"], part[column].astype(float), **styles[role])
            if column == "mean_kl_to_final_nats":
                ax.axhline(0.0, **REFERENCE_LINE)
            if column in ("occupancy", "avalanche_site_fraction"):
                ax.set_ylim(bottom=0.0)
            ax.set_title(panel_title)
            if j == 0:
                ax.set_ylabel(ylabel)
            if i == len(F13_PANELS) - 1:
                ax.set_xlabel(LAYER_LABEL)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for row in axes:  # g = 1 and g* on one scale per quantity
        match_limits(row, "y")
    match_limits(axes.ravel(), "x")
    _outside_legend(
        figure,
        role_handles(roles, styles, model_ids, untrained),
        title="model role (untrained: grey, hollow, dotted)",
        ncols=min(len(roles), 3),
    )
    figure.suptitle(
        f"F13 logit lens and event density vs layer · dataset A, MLP_GLOBAL · "
        f"events and g* of {spike}, r* = {rate:g} {RATE_UNIT}"
    )
    return _attach(
        figure,
        "F13_LENS_DEPTH",
        _condition_text(rows, "A", f"intervention_id={MLP_GLOBAL}; g_condition=g1,gstar"),
        provenance,
        [("T10_LENS", t10)],
        roles,
        ["T10_LENS"],
    )


def depth_by_collapse(crosstab: pd.DataFrame) -> pd.DataFrame:
    """Per collapse layer: ``n_tokens`` and ``mean_cascade_depth`` = Σ depth·n / Σ n (layers)
    of one (role, g condition, spike def, rate) cross-tabulation."""
    weighted = crosstab.assign(
        depth_n=crosstab["cascade_depth"].astype(float) * crosstab["n_tokens"].astype(float)
    )
    grouped = weighted.groupby("collapse_layer", sort=True)[["n_tokens", "depth_n"]].sum()
    grouped["mean_cascade_depth"] = grouped["depth_n"] / grouped["n_tokens"]
    return grouped[["n_tokens", "mean_cascade_depth"]].reset_index()


def _area(n, largest: float) -> np.ndarray:
    return MIN_AREA + (MAX_AREA - MIN_AREA) * np.asarray(n, dtype=float) / max(largest, 1.0)


def _size_handles(largest: int) -> list[Line2D]:
    counts = sorted({max(1, int(round(largest * f))) for f in (0.05, 0.25, 1.0)})
    return [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=float(np.sqrt(_area(n, largest))),
            markerfacecolor="none",
            markeredgecolor="0.3",
            label=f"{n:,} tokens",
        )
        for n in counts
    ]


def _forest(ax, rows: pd.DataFrame, roles, styles, untrained) -> None:
    """rho with its CI per (role, g condition), the token-shuffle null's interval as a light bar
    and its mean as a tick (the registry's token-shuffle colour); p or the reason for an
    undefined rho at the right; the untrained roles' rows on a light grey band."""
    labels, y = [], 0.0
    for role in roles:
        for condition, condition_label in G_CONDITIONS:
            found = rows[(rows["model_role"] == role) & (rows["g_condition"] == condition)]
            if found.empty:
                continue
            row = found.iloc[0]
            y -= 1.0
            g = float(row["g"])
            labels.append(
                (y, f"{role} · {condition_label if condition == 'g1' else f'g* = {g:g}'}")
            )
            if role in untrained:
                ax.axhspan(
                    y - 0.5, y + 0.5, color=UNTRAINED_COLOUR, alpha=0.12, zorder=0, linewidth=0
                )
            low, mean, high = (
                float(row[c]) for c in ("null_rho_low", "null_rho_mean", "null_rho_high")
            )
            if np.isfinite(low) and np.isfinite(high):
                ax.barh(
                    y,
                    high - low,
                    left=low,
                    height=0.55,
                    color=NULL_COLOUR,
                    alpha=NULL_ALPHA,
                    linewidth=0,
                    zorder=1,
                )
            if np.isfinite(mean):
                ax.plot(
                    [mean, mean], [y - 0.3, y + 0.3], color=NULL_COLOUR, linewidth=1.4, zorder=2
                )
            rho = float(row["spearman_rho"])
            if bool(row["defined"]) and np.isfinite(rho):
                style = {k: v for k, v in styles[role].items() if k != "linestyle"}
                ci_low, ci_high = float(row["rho_ci_low"]), float(row["rho_ci_high"])
                ax.errorbar(
                    [rho],
                    [y],
                    xerr=[[rho - ci_low], [ci_high - rho]],
                    capsize=3,
                    elinewidth=1.2,
                    markersize=5,
                    zorder=3,
                    **style,
                )
                p_value = float(row["p_value_vs_null"])
                floor = 1.0 / (1.0 + float(row["n_null_permutations"]))
                # at the floor the permutation test can only bound p: no null draw reached rho
                note = f"p ≤ {floor:.2g}" if p_value <= floor * (1 + 1e-9) else f"p = {p_value:.2g}"
            else:
                note = f"undefined: {row['reason']}"
            ax.annotate(
                note,
                (1.0, y),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                annotation_clip=False,
            )
    ax.axvline(0.0, **REFERENCE_LINE)
    ax.set_yticks([p for p, _ in labels], [text for _, text in labels])
    ax.set_ylim(y - 0.6, -0.4)
    # zoom on the data (symmetric about 0, at least ±0.1, at most the whole [-1, 1]): weak
    # correlations are the common case and would be a dot on a [-1, 1] axis
    values = rows[["spearman_rho", "rho_ci_low", "rho_ci_high", "null_rho_low", "null_rho_high"]]
    extent = np.nanmax(np.abs(values.to_numpy(dtype=float))) if values.notna().any().any() else 1
    half = float(min(1.0, max(0.1, 1.15 * extent)))
    ax.set_xlim(-half, half)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel("Spearman ρ of collapse layer vs cascade depth over tokens (dimensionless)")
    ax.set_ylabel("model role · gain condition")
    ax.set_title(
        f"Spearman ρ per token · bars: {CI_NOTE}\nband: token-shuffle null (depths permuted "
        "within windows) · right: two-sided permutation p vs the null"
    )


def _forest_handles() -> list:
    return [
        Line2D([], [], color="0.3", marker="o", linestyle="-", label="ρ with its 95 % CI"),
        Patch(
            color=NULL_COLOUR, alpha=NULL_ALPHA, linewidth=0, label="token-shuffle null, 2.5–97.5 %"
        ),
        Line2D(
            [],
            [],
            color=NULL_COLOUR,
            marker="|",
            linestyle="none",
            markersize=9,
            label="token-shuffle null mean",
        ),
        Patch(color=UNTRAINED_COLOUR, alpha=0.12, linewidth=0, label="untrained role's rows"),
    ]


def _column_legend(figure: Figure, groups: Sequence[tuple[str, list]]) -> None:
    """One figure legend below the panels, a column per group headed by its title."""
    rows = 1 + max(len(handles) for _, handles in groups)
    entries = []
    for title, handles in groups:
        column = [Line2D([], [], linestyle="none", label=title), *handles]
        column += [Line2D([], [], linestyle="none", label=" ")] * (rows - len(column))
        entries += column
    figure.legend(handles=entries, loc="outside lower center", ncols=len(groups), frameon=False)


def _depth_panel(ax, per_panel, roles, styles, largest: float) -> bool:
    """Mean cascade depth per collapse layer of every role (marker area ∝ tokens, roles dodged
    by ±0.12 layer); False when no role has a cross-tabulation here."""
    offsets = np.linspace(-0.12, 0.12, len(roles)) if len(roles) > 1 else np.zeros(1)
    drawn = False
    for role, offset in zip(roles, offsets, strict=True):
        part = per_panel[role]
        if part.empty:
            continue
        drawn = True
        x = part["collapse_layer"].to_numpy(dtype=float) + offset
        y = part["mean_cascade_depth"].to_numpy(dtype=float)
        style = styles[role]
        ax.plot(x, y, color=style["color"], linestyle=style["linestyle"], linewidth=1.0)
        ax.scatter(
            x,
            y,
            s=_area(part["n_tokens"], largest),
            marker=style["marker"],
            facecolors=style["markerfacecolor"],
            edgecolors=style["markeredgecolor"],
            alpha=0.85,
            zorder=3,
        )
    return drawn


@_styled
def f14_collapse_vs_cascade(
    t11: pd.DataFrame,
    crosstabs: Mapping[str, pd.DataFrame] | pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
    spike_def_id: str | None = None,
    target_rate: float | None = None,
) -> Figure:
    """F14: top, the mean cascade depth per collapse layer at g = 1 and at g* (marker area:
    tokens), from each role's ``lens_collapse_crosstab``; bottom, T11's rho with its CI next to
    the token-shuffle null, per role and g condition."""
    _require(
        t11,
        ["model_role", "g_condition", "spearman_rho", "rho_ci_low", "null_rho_mean", "defined"],
        "T11_COLLAPSE_VS_CASCADE",
    )
    crosstab = (
        pd.concat(list(crosstabs.values()), ignore_index=True)
        if isinstance(crosstabs, Mapping)
        else crosstabs
    )
    _require(
        crosstab,
        ["model_role", "g_condition", "collapse_layer", "cascade_depth", "n_tokens"],
        "lens_collapse_crosstab",
    )
    spike, rate = _primary(t11, spike_def_id, target_rate)
    rows = _select(t11, spike_def_id=spike, target_rate=rate)
    cells = _select(crosstab, spike_def_id=spike, target_rate=rate)
    roles, untrained, styles = styled_roles(rows, provenance, control_role)
    model_ids = _model_ids_of(t11)
    figure = new_figure(DOUBLE_COLUMN_IN, 7.2)
    axes = figure.subplot_mosaic([["g1", "gstar"], ["forest", "forest"]], height_ratios=[1.0, 1.1])
    per_panel = {
        (condition, role): depth_by_collapse(
            cells[(cells["g_condition"] == condition) & (cells["model_role"] == role)]
        )
        for condition, _ in G_CONDITIONS
        for role in roles
    }
    largest = max((int(p["n_tokens"].max()) for p in per_panel.values() if len(p)), default=1)
    for condition, _ in G_CONDITIONS:
        ax = axes[condition]
        title = (
            f"mean cascade depth per collapse layer\n{_condition_header(rows, roles, condition)}"
        )
        panel = {role: per_panel[(condition, role)] for role in roles}
        if not _depth_panel(ax, panel, roles, styles, largest):
            not_available(ax, f"no cross-tabulation of any role for {spike}, r* = {rate:g}", title)
            continue
        ax.set_title(title)
        ax.set_xlabel(
            "collapse layer (0-based): first layer from which\n"
            "the lens top-1 stays the final layer's top-1"
        )
        if condition == "g1":
            ax.set_ylabel("mean cascade depth\n(layers spanned by events at the token)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # depths run from 0 to L layers (collapse layers to L - 1): one range for both panels
        top = max(float(cells["cascade_depth"].max()), float(cells["collapse_layer"].max()) + 1)
        ax.set_ylim(0.0, top + 0.5)
    match_limits([axes["g1"], axes["gstar"]], "x")
    if rows.empty:
        not_available(axes["forest"], f"T11 has no row for {spike}, r* = {rate:g}")
    else:
        _forest(axes["forest"], rows, roles, styles, untrained)
    _column_legend(
        figure,
        [
            ("top panels, marker area:", _size_handles(largest)),
            (
                "model role (untrained: grey, hollow, dotted):",
                role_handles(roles, styles, model_ids, untrained),
            ),
            ("bottom panel:", _forest_handles()),
        ],
    )
    figure.suptitle(
        f"F14 where the prediction forms vs where cascades run · dataset A, MLP_GLOBAL · "
        f"{spike}, r* = {rate:g} {RATE_UNIT}"
    )
    return _attach(
        figure,
        "F14_COLLAPSE_VS_CASCADE",
        _condition_text(
            rows,
            "A",
            f"intervention_id={MLP_GLOBAL}; g_condition=g1,gstar; null=token shuffle of cascade "
            "depths within windows",
        ),
        provenance,
        [("T11_COLLAPSE_VS_CASCADE", t11)],
        roles,
        ["T11_COLLAPSE_VS_CASCADE", *(f"{role}.lens_collapse_crosstab" for role in roles)],
    )
