"""F02: achieved vs target event rate per layer across gains (in-sample and held out)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...measure.gain import MLP_GLOBAL
from .frames import _models_title, _rates, _require, _select, _spikes
from .metadata import _attach, _resolve_provenance
from .style import G_LABEL, RATE_UNIT, _grid, _outside_legend, _styled


@_styled
def f02_rate_matching(
    tau_tables: Mapping[str, pd.DataFrame], provenance: Mapping[str, Any]
) -> Figure:
    """F02: achieved event rate per layer vs the per-layer target r*[l], every gain.

    One panel per (role, spike definition) row and target rate column. Black bars are the
    targets r*[l]; filled circles the achieved rate on the calibration slice (in-sample, where
    rate matching is gated to max(rel_tol r*, 1/n)), open triangles the achieved rate on the
    held-out analysis slice (reported, not gated); colour = gain.
    """
    roles = [r for r in (provenance or {}).get("roles", []) if r in tau_tables]
    roles += sorted(r for r in tau_tables if r not in roles)
    frames = []
    for role in roles:
        table = tau_tables[role]
        _require(
            table,
            [
                "g",
                "spike_def_id",
                "target_rate",
                "layer",
                "r_star",
                "achieved_rate_calibration",
                "achieved_rate_analysis",
            ],
            f"{role}.tau_table",
        )
        if "intervention_id" in table:
            table = table[table["intervention_id"] == MLP_GLOBAL]
        frames.append(table.assign(model_role=role))
    taus = pd.concat(frames, ignore_index=True)
    spikes, rates = _spikes(taus), _rates(taus)
    gains = sorted(float(g) for g in taus["g"].unique())
    layers = sorted(int(v) for v in taus["layer"].unique())
    info = _resolve_provenance(provenance, [], roles)
    norm = mpl.colors.Normalize(
        vmin=min(gains), vmax=max(gains) if len(gains) > 1 else min(gains) + 1
    )
    cmap = mpl.colormaps["plasma"]
    panels = [(role, spike) for role in roles for spike in spikes]
    figure, axes = _grid(len(panels), len(rates), 3.9 * len(rates) + 1.0, 2.7 * len(panels) + 1.2)
    width = 0.7
    offsets = np.linspace(-width / 2, width / 2, len(gains)) if len(gains) > 1 else np.zeros(1)
    for i, (role, spike) in enumerate(panels):
        part = taus[(taus["model_role"] == role) & (taus["spike_def_id"] == spike)]
        for j, rate in enumerate(rates):
            ax = axes[i, j]
            per_rate = _select(part, target_rate=rate)
            targets = per_rate.groupby("layer")["r_star"].mean()
            ax.hlines(
                targets.to_numpy(),
                targets.index - width / 2 - 0.1,
                targets.index + width / 2 + 0.1,
                colors="black",
                lw=1.2,
                zorder=3,
            )
            # one scatter per slice and panel (colour per point): fast, same picture
            gain_index = {g: k for k, g in enumerate(gains)}
            k = np.array([gain_index[float(g)] for g in per_rate["g"]], dtype=int)
            x = per_rate["layer"].to_numpy(float) + offsets[k]
            colours = cmap(norm(per_rate["g"].to_numpy(float)))
            ax.scatter(
                x,
                per_rate["achieved_rate_calibration"],
                s=9,
                marker="o",
                c=colours,
                edgecolors="none",
                zorder=4,
            )
            ax.scatter(
                x,
                per_rate["achieved_rate_analysis"],
                s=14,
                marker="^",
                facecolors="none",
                edgecolors=colours,
                linewidths=0.7,
                zorder=4,
            )
            ax.set_yscale("log")
            ax.set_xticks(layers)
            ax.set_xlabel("layer l (index)")
            ax.set_ylabel(f"rate ({RATE_UNIT})")
            ax.set_title(f"{role} · {spike}\ntarget rate {rate:g}")
    mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
    colourbar = figure.colorbar(mappable, ax=axes, shrink=0.6, pad=0.01)
    colourbar.set_label(G_LABEL)
    handles = [
        Line2D(
            [],
            [],
            color="black",
            lw=1.2,
            label="target r*[l] (per layer; mean over layers = target rate)",
        ),
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            color="0.4",
            label="achieved, calibration slice (in-sample, gated)",
        ),
        Line2D(
            [],
            [],
            ls="none",
            marker="^",
            mfc="none",
            color="0.4",
            label="achieved, analysis slice (held out, reported)",
        ),
    ]
    _outside_legend(figure, handles, ncols=len(handles))
    figure.suptitle(
        f"F02 rate matching per layer · dataset A · MLP_GLOBAL · points coloured by gain g, "
        f"jittered within each layer · {_models_title(roles, info['model_ids'])}"
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
