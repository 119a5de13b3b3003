"""F01: the event raster of one dataset-A window at g*, avalanches coloured by component."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ...analysis.lattice import ADJ_4N, label_components
from ...core.errors import ArtifactError
from ...measure.gain import MLP_GLOBAL
from ...measure.sweep import NULL_NONE
from ...measure.thresholds import SPIKE_ONE_SIDED_POS
from .frames import _model_ids_of, _rates, _require, _roles, _select
from .metadata import _attach
from .style import (
    COMPONENT_PALETTE,
    EMPTY_SITE_RGBA,
    RATE_UNIT,
    _grid,
    _outside_legend,
    _styled,
    figure_size,
    not_available,
)


def component_colours(window_labels: np.ndarray) -> np.ndarray:
    """RGBA image ``[L, T, 4]`` of one window's component labels (0 = empty site).

    Labels are renumbered 1..k in scan order (layer, then token) within the window and
    coloured ``COMPONENT_PALETTE[(k - 1) % len(COMPONENT_PALETTE)]``.
    """
    labels = np.asarray(window_labels)
    image = np.broadcast_to(EMPTY_SITE_RGBA, (*labels.shape, 4)).copy()
    occupied = labels > 0
    if occupied.any():
        flat = labels.ravel()
        ids, first = np.unique(flat[flat > 0], return_index=True)
        order = ids[np.argsort(first, kind="stable")]  # labels in scan order of first site
        lookup = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        lookup[order] = np.arange(1, len(order) + 1)
        local = lookup[labels]
        image[occupied] = COMPONENT_PALETTE[(local[occupied] - 1) % len(COMPONENT_PALETTE)]
    return image


def _middle(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@_styled
def f01_raster(
    t01: pd.DataFrame,
    rasters: Any,
    provenance: Mapping[str, Any] | None = None,
    *,
    role: str | None = None,
    spike_def_id: str = SPIKE_ONE_SIDED_POS,
    target_rate: float | None = None,
    adjacency: str = ADJ_4N,
    seq_index: int | None = None,
) -> Figure:
    """F01: counts and avalanches of one dataset A window at g*.

    Defaults: the ``base`` role (else the first), ``SPIKE_ONE_SIDED_POS``, the middle target
    rate (upper middle for an even count), the g* of that (role, spike def, rate) from T01's
    ``opt_is_gstar``, and the window whose total event count is the median over the analysis
    slice (lowest index on ties). ``rasters`` is the role's ``event_rasters_A``
    (:class:`avalanche_kedro.measure.rasters.EventRasters`); components come from
    :func:`avalanche_kedro.analysis.lattice.label_components` on ``rasters.counts(cond_id)``.
    """
    _require(
        t01,
        ["model_role", "spike_def_id", "target_rate", "g", "opt_is_gstar", "opt_cond_id"],
        "T01_SUMMARY",
    )
    roles = _roles(t01, provenance)
    role = role or ("base" if "base" in roles else roles[0])
    rows = _select(t01, model_role=role, spike_def_id=spike_def_id)
    if rows.empty:
        raise ArtifactError(
            f"T01_SUMMARY has no rows for role '{role}' and {spike_def_id}.",
            "Choose a role and spike definition the run measured.",
        )
    rate = float(target_rate) if target_rate is not None else _middle(_rates(rows))
    at_rate = _select(rows, target_rate=rate)
    if at_rate.empty:
        raise ArtifactError(
            f"T01_SUMMARY has no rows for {role} / {spike_def_id} at target rate {rate:g}.",
            "Choose a target rate the run measured.",
        )
    gstar_rows = at_rate[at_rate["opt_is_gstar"].astype(bool)]
    if len(gstar_rows) > 1:
        raise ArtifactError(
            f"T01_SUMMARY marks {len(gstar_rows)} g* rows for {role} / {spike_def_id} / {rate:g}.",
            "Rebuild T01 from a complete calibration run.",
        )
    model_ids = _model_ids_of(t01)
    width, height = figure_size(2, 3.9)
    figure, axes = _grid(2, 1, width, height)
    ax_counts, ax_comp = axes[0, 0], axes[1, 0]
    heading = (
        f"F01 event raster · dataset A · {role} ({model_ids.get(role, '?')}) · {spike_def_id} · "
        f"target rate {rate:g} {RATE_UNIT}"
    )
    if gstar_rows.empty:
        # g* is undefined (e.g. no finite b_tot at any gain): say so instead of picking a gain
        reason = f"T01 marks no g* for {role} / {spike_def_id} / target rate {rate:g}"
        not_available(ax_counts, reason, title="event counts A[l, t]")
        not_available(ax_comp, reason, title="avalanches = connected components")
        figure.suptitle(heading)
        condition = (
            f"model_role={role}; dataset_role=A; spike_def_id={spike_def_id}; "
            f"target_rate={rate:g}; g=none (no g* marked); intervention_id={MLP_GLOBAL}; "
            f"null_id={NULL_NONE}; adjacency={adjacency}"
        )
        return _attach(
            figure,
            "F01_RASTER",
            condition,
            provenance,
            [("T01_SUMMARY", t01)],
            [role],
            ["T01_SUMMARY"],
        )
    row = gstar_rows.iloc[0]
    cond_id, g_star = int(row["opt_cond_id"]), float(row["g"])
    counts = np.asarray(rasters.counts(cond_id))
    labels, _ = label_components(counts, adjacency, n_layers=rasters.n_layers)
    totals = counts.reshape(counts.shape[0], -1).sum(axis=1)
    if seq_index is None:
        seq_index = int(np.argsort(totals, kind="stable")[(len(totals) - 1) // 2])
    window = counts[seq_index]
    seq_id = int(np.asarray(rasters.seq_id)[seq_index])
    rgba = component_colours(labels[seq_index])
    n_layers, n_tokens = window.shape
    window_labels = labels[seq_index]
    ids = np.unique(window_labels[window_labels > 0])
    sizes = np.array([window[window_labels == i].sum() for i in ids]) if ids.size else np.array([])

    extent = (-0.5, n_tokens - 0.5, -0.5, n_layers - 0.5)
    masked = np.ma.masked_equal(window.astype(float), 0)
    cmap = mpl.colormaps["viridis"].with_extremes(bad="white")
    image = ax_counts.imshow(
        masked,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap=cmap,
        vmin=1,
        vmax=max(1, int(window.max())),
    )
    colourbar = figure.colorbar(image, ax=ax_counts, pad=0.01, aspect=12)
    colourbar.set_label("events per site\n(units with v > τ)")
    ax_counts.set_title(
        f"event counts A[l, t] of window seq_id {seq_id} (the median total of {len(totals)} "
        f"analysis windows: {int(totals[seq_index])} events, {int((window > 0).sum())} occupied sites)"
    )
    ax_comp.imshow(rgba, origin="lower", aspect="auto", extent=extent)
    colourbar_spacer = figure.colorbar(image, ax=ax_comp, pad=0.01, aspect=12)
    colourbar_spacer.remove()  # keeps both panels' widths equal
    ax_comp.set_title(
        f"avalanches = connected components ({adjacency}), one colour each: {ids.size}"
    )
    handles = []
    if ids.size:
        big = ids[int(np.argmax(sizes))]
        ls, ts = np.nonzero(window_labels == big)
        box = (ts.min() - 0.5, ls.min() - 0.5), ts.max() - ts.min() + 1, ls.max() - ls.min() + 1
        # a black outline with a white core: visible on every component colour and on white
        for colour, width_pt in (("black", 2.6), ("white", 1.0)):
            ax_comp.add_patch(
                Rectangle(
                    *box,
                    fill=False,
                    lw=width_pt,
                    ec=colour,
                    zorder=3,
                    joinstyle="miter",
                    clip_on=False,  # a box spanning every layer keeps its full outline
                )
            )
        handles.append(
            Patch(
                facecolor="none",
                edgecolor="black",
                linewidth=1.6,
                label=f"box: bounding box of the largest avalanche: S = {int(sizes.max())} events, "
                f"D = {ts.max() - ts.min() + 1} tokens, H = {ls.max() - ls.min() + 1} layers",
            )
        )
    for ax in (ax_counts, ax_comp):
        ax.set_ylabel("layer l (index)")
        ax.set_yticks(range(n_layers))
        ax.grid(False)
    ax_counts.set_xlabel("token position t (tokens)")
    ax_comp.set_xlabel("token position t (tokens)")
    if handles:
        _outside_legend(figure, handles, ncols=1)
    figure.suptitle(f"{heading} · g* = {g_star:g} (MLP_GLOBAL)")
    condition = (
        f"model_role={role}; dataset_role=A; spike_def_id={spike_def_id}; target_rate={rate:g}; "
        f"g={g_star:g} (g*); intervention_id={MLP_GLOBAL}; null_id={NULL_NONE}; cond_id={cond_id}; "
        f"condition_key={row.get('opt_condition_key', '')}; seq_id={seq_id}; seq_index={seq_index}; "
        f"adjacency={adjacency}"
    )
    return _attach(
        figure,
        "F01_RASTER",
        condition,
        provenance,
        [("T01_SUMMARY", t01)],
        [role],
        ["T01_SUMMARY", f"{role}.event_rasters_A"],
    )
