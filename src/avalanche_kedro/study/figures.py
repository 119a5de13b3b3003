"""Paper figures F01-F11 (SPEC §11), drawn from saved tables and rasters only.

Every function here takes what the pipelines saved (the paper tables of
:mod:`avalanche_kedro.study.tables`, per-role tau tables, an event raster set) and returns a
:class:`matplotlib.figure.Figure`; nothing runs a model and nothing touches pyplot's global
state (figures are built with the object API on an Agg canvas, inside a fixed style, so the
output does not depend on the user's ``matplotlibrc`` and is byte-identical for the same
inputs).

Each figure carries its provenance as a plain dict in the attribute :data:`METADATA_ATTRIBUTE`
(see :func:`figure_metadata`): run id, model id per role, the condition(s) drawn, the config
hash, the code version and the datasets it was drawn from. :class:`avalanche_kedro.framework.datasets.
FigureDataset` writes it into the PNG text chunks and the PDF info dictionary.

Conventions: dimensionless quantities say so in their axis label; model roles are told apart
by line style and marker (or by facet rows where colour encodes something else); shaded bands
and error bars are the 95 % percentile bootstrap intervals stored in the tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..analysis.lattice import ADJ_4N, label_components
from ..analysis.nulls import NULL_PERM, NULL_SHIFT
from ..core.errors import ArtifactError
from ..measure.gain import ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_LATE, MLP_BAND_MID, MLP_GLOBAL
from ..measure.sweep import NULL_NONE, NULL_TOKEN_SHUFFLE_INPUT
from ..measure.thresholds import SPIKE_ONE_SIDED_POS

#: Figure ids (catalog names) and their one-line descriptions (the files' ``Title``).
FIGURES = {
    "F01_RASTER": "Event raster of one window with its avalanches coloured",
    "F02_RATE_MATCHING": "Achieved vs target event rate per layer across gains",
    "F03_BRANCHING_VS_GAIN": "Branching ratios b_time, b_depth, b_tot vs MLP gain",
    "F04_DELTA_B_VS_GAIN": "Branching above the within-layer permutation null vs MLP gain",
    "F05_GSTAR_SELECTION": "Selection of g*: |b_tot - 1| vs MLP gain",
    "F06_GENERALIZATION_B": "Dataset B at g = 1 vs g* (paired)",
    "F07_ARC_ACCURACY": "ARC multiple-choice accuracy at g = 1 and g*",
    "F08_SPIKE_DEF_ROBUSTNESS": "Spike-definition robustness: two-sided vs one-sided events",
    "F09_SUSCEPTIBILITY": "Susceptibility chi vs MLP gain",
    "F10_NULL_COMPARISON": "Null comparison: permutation vs circular shift vs token shuffle",
    "F11_ABLATIONS": "Ablations: MLP_GLOBAL vs ATTN_GLOBAL vs MLP layer bands",
}

#: Attribute of a Figure holding its provenance metadata (a ``dict[str, str]``).
METADATA_ATTRIBUTE = "avalanche_metadata"
#: Keys every figure's metadata has (checked by the dataset before anything is written).
REQUIRED_METADATA = ("figure_id", "run_id", "model_ids", "condition", "config_hash")

#: Colours of avalanche components in F01: component k of the window (scan order, from 1)
#: gets ``COMPONENT_PALETTE[(k - 1) % len(COMPONENT_PALETTE)]``; empty sites are white.
_TAB20 = mpl.colormaps["tab20"].colors
COMPONENT_PALETTE = np.array(
    [mpl.colors.to_rgba(c) for i, c in enumerate((*_TAB20[::2], *_TAB20[1::2])) if i not in (7, 17)]
)  # tab20 without its two greys, which read as "no component"
EMPTY_SITE_RGBA = np.array([1.0, 1.0, 1.0, 1.0])

ROLE_LINESTYLES = ("-", "--", ":", "-.")
ROLE_MARKERS = ("o", "s", "^", "D", "v", "P")
ROLE_COLOURS = ("#1f4e79", "#c55a11", "#548235", "#7030a0", "#bf9000", "#2f5597")
METRIC_COLOURS = {"b_time": "#1f77b4", "b_depth": "#ff7f0e", "b_tot": "#2ca02c"}
NULL_STYLES = {  # T01 column of delta_b_tot, its CI prefix, label, colour
    "perm": (
        "delta_b_tot",
        "opt_delta_b_tot",
        f"within-layer permutation ({NULL_PERM})",
        "#1f77b4",
    ),
    "shift": (
        "opt_delta_b_tot_shift",
        "opt_delta_b_tot_shift",
        f"within-layer circular shift ({NULL_SHIFT})",
        "#d62728",
    ),
    "tokshuf": (
        "opt_delta_b_tot_tokshuf",
        "opt_delta_b_tot_tokshuf",
        f"input token shuffle ({NULL_TOKEN_SHUFFLE_INPUT})",
        "#9467bd",
    ),
}
ABLATION_ORDER = (MLP_GLOBAL, ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_MID, MLP_BAND_LATE)

G_LABEL = "g (MLP gain, ×)"
B_UNIT = "successors per occupied site"
RATE_UNIT = "events per unit per token"
CI_NOTE = "95 % percentile bootstrap CI over windows"

#: A fixed style: figures look the same whatever the user's matplotlibrc says.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 4,
    "image.interpolation": "nearest",
    "savefig.dpi": 150,
}


# ---- provenance -------------------------------------------------------------------------------


def figure_metadata(figure: Figure) -> dict[str, str] | None:
    """The provenance dict a figure function attached, or None."""
    return getattr(figure, METADATA_ATTRIBUTE, None)


def attach_metadata(figure: Figure, metadata: Mapping[str, Any]) -> Figure:
    """Attach provenance metadata (values turned into ASCII text) to ``figure``."""
    text = {str(k): _ascii(v) for k, v in metadata.items()}
    setattr(figure, METADATA_ATTRIBUTE, text)
    return figure


def _ascii(value: Any) -> str:
    if not isinstance(value, str):
        value = json.dumps(value, sort_keys=True, default=str)
    return value.encode("ascii", "backslashreplace").decode("ascii")


def _unique(table: pd.DataFrame, column: str, name: str) -> str | None:
    if column not in table:
        return None
    values = sorted({str(v) for v in table[column].dropna().unique()})
    if len(values) > 1:
        raise ArtifactError(
            f"{name} mixes several values of '{column}': {values}.",
            "Draw figures from tables of one run (kedro run --pipelines reporting).",
        )
    return values[0] if values else None


def _resolve_provenance(
    provenance: Mapping[str, Any] | None,
    tables: Sequence[tuple[str, pd.DataFrame]],
    roles: Sequence[str],
) -> dict[str, Any]:
    """Run id, config hash, code version and model ids, from run_provenance and the tables.

    The tables carry the provenance columns of the run that built them; when ``provenance``
    (the ``run_provenance`` dataset) is given too, both must describe the same run.
    """
    provenance = dict(provenance or {})
    resolved: dict[str, Any] = {}
    for key in ("run_id", "config_hash", "code_version"):
        value = provenance.get(key)
        for name, table in tables:
            from_table = _unique(table, key, name)
            if from_table is None:
                continue
            if value is not None and str(value) != from_table:
                raise ArtifactError(
                    f"{name} was built with {key} '{from_table}' but run_provenance says "
                    f"'{value}'.",
                    "Rebuild the tables and figures in one run: kedro run --pipelines reporting.",
                )
            value = from_table
        if value is None and key != "code_version":
            raise ArtifactError(
                f"No {key} for the figure: neither run_provenance nor its tables carry one.",
                "Pass the run_provenance dataset (describe_run) to the figure function.",
            )
        resolved[key] = value if value is not None else "unknown"
    models = provenance.get("models") or {}
    model_ids: dict[str, str] = {}
    for role in roles:
        model_id = (models.get(role) or {}).get("model_id")
        for name, table in tables:
            if "model_role" in table and "model_id" in table:
                ids = table.loc[table["model_role"] == role, "model_id"]
                if len(ids):
                    from_table = _unique(ids.to_frame(), "model_id", name)
                    if model_id is not None and model_id != from_table:
                        raise ArtifactError(
                            f"{name} names model '{from_table}' for role '{role}', "
                            f"run_provenance names '{model_id}'.",
                            "Rebuild the tables and figures in one run.",
                        )
                    model_id = from_table
        model_ids[role] = model_id or "unknown"
    resolved["model_ids"] = model_ids
    resolved["models"] = {
        role: {
            k: (models.get(role) or {}).get(k)
            for k in ("model_id", "revision", "content_sha256", "source")
            if (models.get(role) or {}).get(k) is not None
        }
        or {"model_id": model_ids[role]}
        for role in roles
    }
    return resolved


def _attach(
    figure: Figure,
    figure_id: str,
    condition: str,
    provenance: Mapping[str, Any] | None,
    tables: Sequence[tuple[str, pd.DataFrame]],
    roles: Sequence[str],
    sources: Sequence[str],
) -> Figure:
    info = _resolve_provenance(provenance, tables, roles)
    models_text = ", ".join(f"{role}:{mid}" for role, mid in info["model_ids"].items())
    from .. import __version__

    return attach_metadata(
        figure,
        {
            "Title": f"{figure_id}: {FIGURES[figure_id]}",
            "Subject": f"{FIGURES[figure_id]}. Models: {models_text}. Condition: {condition}",
            "Keywords": (
                f"run_id={info['run_id']}; config_hash={info['config_hash']}; "
                f"models={models_text}; condition={condition}"
            ),
            "Creator": f"avalanche_kedro {__version__} (code {info['code_version']})",
            "figure_id": figure_id,
            "run_id": info["run_id"],
            "model_ids": models_text,
            "models": info["models"],
            "condition": condition,
            "config_hash": info["config_hash"],
            "code_version": info["code_version"],
            "source_datasets": ", ".join(sources),
        },
    )


# ---- shared drawing helpers ----------------------------------------------------------------

REAL_MLP_CONDITION = f"intervention_id={MLP_GLOBAL}; null_id={NULL_NONE}"


def _attach_t01(
    figure: Figure,
    figure_id: str,
    t01: pd.DataFrame,
    provenance: Mapping[str, Any] | None,
    roles: Sequence[str],
    condition: str = REAL_MLP_CONDITION,
) -> Figure:
    """:func:`_attach` for a figure drawn from T01 alone (dataset A)."""
    return _attach(
        figure,
        figure_id,
        _condition_text(t01, "A", condition),
        provenance,
        [("T01_SUMMARY", t01)],
        roles,
        ["T01_SUMMARY"],
    )


def _styled(function: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure inside the fixed style (rcParams restored afterwards)."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        with mpl.style.context(["default", STYLE]):
            return function(*args, **kwargs)

    return wrapper


def new_figure(width: float, height: float) -> Figure:
    """A Figure on an Agg canvas with constrained layout (no pyplot involved)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _roles(table: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> list[str]:
    present = list(dict.fromkeys(table["model_role"].astype(str)))
    order = [r for r in (provenance or {}).get("roles", []) if r in present]
    return order + sorted(r for r in present if r not in order)


def _rates(table: pd.DataFrame) -> list[float]:
    return sorted(float(r) for r in table["target_rate"].unique())


def _spikes(table: pd.DataFrame) -> list[str]:
    return sorted(str(s) for s in table["spike_def_id"].unique())


def _rate_colours(rates: Sequence[float]) -> dict[float, Any]:
    colours = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, max(len(rates), 1)))
    return {rate: colours[i] for i, rate in enumerate(rates)}


def _role_style(roles: Sequence[str], role: str) -> dict[str, Any]:
    i = list(roles).index(role)
    return {
        "linestyle": ROLE_LINESTYLES[i % len(ROLE_LINESTYLES)],
        "marker": ROLE_MARKERS[i % len(ROLE_MARKERS)],
    }


def _role_handles(roles: Sequence[str], model_ids: Mapping[str, str], colour="0.3") -> list:
    return [
        Line2D(
            [],
            [],
            color=colour,
            label=f"{role} ({model_ids.get(role, '?')})",
            **_role_style(roles, role),
        )
        for role in roles
    ]


def _model_ids_of(table: pd.DataFrame) -> dict[str, str]:
    if "model_id" not in table:
        return {}
    pairs = table[["model_role", "model_id"]].drop_duplicates()
    return {str(r): str(m) for r, m in zip(pairs["model_role"], pairs["model_id"], strict=True)}


def _models_title(roles: Sequence[str], model_ids: Mapping[str, str]) -> str:
    return ", ".join(f"{role} = {model_ids.get(role, '?')}" for role in roles)


def _select(table: pd.DataFrame, **values) -> pd.DataFrame:
    keep = np.ones(len(table), dtype=bool)
    for column, value in values.items():
        if isinstance(value, float):
            keep &= np.isclose(table[column].astype(float).to_numpy(), value, rtol=1e-12, atol=0)
        else:
            keep &= (table[column] == value).to_numpy()
    return table[keep]


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return frame[column].astype(float).to_numpy()


def _band(ax, x, low, high, colour, alpha=0.15) -> None:
    finite = np.isfinite(low) & np.isfinite(high)
    if finite.any():
        ax.fill_between(
            x,
            np.where(finite, low, np.nan),
            np.where(finite, high, np.nan),
            color=colour,
            alpha=alpha,
            linewidth=0,
        )


def _grid(n_rows: int, n_cols: int, width: float, height: float, **kwargs):
    figure = new_figure(width, height)
    axes = figure.subplots(max(n_rows, 1), max(n_cols, 1), squeeze=False, **kwargs)
    return figure, axes


def _condition_text(table: pd.DataFrame, dataset_role: str, extra: str = "") -> str:
    parts = [f"dataset_role={dataset_role}"]
    if "spike_def_id" in table:
        parts.append("spike_def_id=" + ",".join(_spikes(table)))
    if "target_rate" in table:
        parts.append("target_rate=" + ",".join(f"{r:g}" for r in _rates(table)))
    if "g" in table:
        parts.append("g=" + ",".join(f"{g:g}" for g in sorted(table["g"].astype(float).unique())))
    if extra:
        parts.append(extra)
    return "; ".join(parts)


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        raise ArtifactError(
            f"{name} lacks the columns {missing} needed for this figure.",
            "Rebuild the table with this version of avalanche_kedro (kedro run --pipelines reporting).",
        )
    if table.empty:
        raise ArtifactError(f"{name} is empty; there is nothing to draw.", "Run the study first.")


def _outside_legend(
    figure: Figure, handles: list, title: str | None = None, ncols: int = 4
) -> None:
    figure.legend(
        handles=handles, loc="outside lower center", ncols=ncols, title=title, frameon=False
    )


def _wrap(text: str, width: int = 150) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ---- F01 ----------------------------------------------------------------------------------------


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
    gstar_rows = _select(rows, target_rate=rate)
    gstar_rows = gstar_rows[gstar_rows["opt_is_gstar"].astype(bool)]
    if len(gstar_rows) != 1:
        raise ArtifactError(
            f"T01_SUMMARY marks {len(gstar_rows)} g* rows for {role} / {spike_def_id} / {rate:g}.",
            "Rebuild T01 from a complete calibration run.",
        )
    row = gstar_rows.iloc[0]
    cond_id, g_star = int(row["opt_cond_id"]), float(row["g"])
    counts = np.asarray(rasters.counts(cond_id))
    labels, _ = label_components(counts, adjacency)
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

    model_ids = _model_ids_of(t01)
    figure, axes = _grid(2, 1, 12, 5.6, sharex=True)
    extent = (-0.5, n_tokens - 0.5, -0.5, n_layers - 0.5)
    ax_counts, ax_comp = axes[0, 0], axes[1, 0]
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
    colourbar = figure.colorbar(image, ax=ax_counts, pad=0.01)
    colourbar.set_label("events per site\n(units with v > τ)")
    ax_counts.set_title(
        f"event counts A[l, t] of window seq_id {seq_id} (median total of {len(totals)} analysis "
        f"windows: {int(totals[seq_index])} events, {int((window > 0).sum())} occupied sites)"
    )
    ax_comp.imshow(rgba, origin="lower", aspect="auto", extent=extent)
    colourbar_spacer = figure.colorbar(image, ax=ax_comp, pad=0.01)
    colourbar_spacer.remove()  # keeps both panels' widths equal
    title = f"avalanches = connected components ({adjacency}), one colour each: {ids.size}"
    if ids.size:
        big = ids[int(np.argmax(sizes))]
        ls, ts = np.nonzero(window_labels == big)
        ax_comp.add_patch(
            Rectangle(
                (ts.min() - 0.5, ls.min() - 0.5),
                ts.max() - ts.min() + 1,
                ls.max() - ls.min() + 1,
                fill=False,
                lw=1.2,
                ec="black",
            )
        )
        title += (
            f"; largest (boxed): S = {int(sizes.max())} events, D = {ts.max() - ts.min() + 1}"
            f" tokens, H = {ls.max() - ls.min() + 1} layers"
        )
    ax_comp.set_title(title)
    for ax in (ax_counts, ax_comp):
        ax.set_xlabel("token position t (tokens)")
        ax.set_ylabel("layer l (index)")
        ax.set_yticks(range(n_layers))
        ax.grid(False)
    figure.suptitle(
        f"F01 event raster · dataset A · {role} ({model_ids.get(role, '?')}) · {spike_def_id} · "
        f"target rate {rate:g} {RATE_UNIT} · g* = {g_star:g} (MLP_GLOBAL)"
    )
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


# ---- F02 ----------------------------------------------------------------------------------------


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


# ---- T01 figures (F03, F04, F05, F09, F10) ------------------------------------------------------


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
                    _band(
                        ax,
                        g,
                        _column(rows, f"{ci}_ci_low"),
                        _column(rows, f"{ci}_ci_high"),
                        colour,
                        alpha=0.12,
                    )
                    ax.plot(g, _column(rows, value), color=colour, **_role_style(roles, role))
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


# ---- F06 ----------------------------------------------------------------------------------------


def _series_offsets(n: int, spread: float = 0.3) -> np.ndarray:
    return np.linspace(-spread / 2, spread / 2, n) if n > 1 else np.zeros(1)


@_styled
def f06_generalization_b(t02: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F06: dataset B at g = 1 and g*, paired per (role, spike def, rate): b_tot, Δb_tot, ppl."""
    _require(t02, ["g_condition", "g", "b_tot", "delta_b_tot", "ppl"], "T02_GENERALIZATION")
    roles, spikes, rates = _roles(t02, provenance), _spikes(t02), _rates(t02)
    model_ids = _model_ids_of(t02)
    colours = _rate_colours(rates)
    metrics = (
        ("b_tot", "opt_b_tot", f"b_tot ({B_UNIT})", "b_tot"),
        (
            "delta_b_tot",
            "opt_delta_b_tot",
            f"Δb_tot vs permutation null\n({B_UNIT})",
            "Δb_tot (real − permutation null)",
        ),
        (
            "ppl",
            "opt_ppl",
            "perplexity\n(dimensionless; exp of mean NLL in nats/token)",
            "perplexity",
        ),
    )
    figure, axes = _grid(len(spikes), len(metrics), 14, 3.6 * len(spikes) + 0.8)
    series = [(rate, role) for rate in rates for role in roles]
    offsets = _series_offsets(len(series))
    for i, spike in enumerate(spikes):
        for j, (column, ci, ylabel, title) in enumerate(metrics):
            ax = axes[i, j]
            for (rate, role), offset in zip(series, offsets, strict=True):
                rows = _select(t02, model_role=role, spike_def_id=spike, target_rate=rate)
                pair = [rows[rows["g_condition"] == c] for c in ("g1", "gstar")]
                if any(p.empty for p in pair):
                    continue
                x = np.array([0.0, 1.0]) + offset
                y = np.array([float(p[column].iloc[0]) for p in pair])
                low = np.array([_column(p, f"{ci}_ci_low")[0] for p in pair])
                high = np.array([_column(p, f"{ci}_ci_high")[0] for p in pair])
                g_star = float(pair[1]["g"].iloc[0])
                style = _role_style(roles, role)
                yerr = (
                    np.vstack([y - low, high - y])
                    if np.isfinite(low).all() and np.isfinite(high).all()
                    else None
                )
                ax.errorbar(
                    x,
                    y,
                    yerr=yerr,
                    color=colours[rate],
                    capsize=2,
                    elinewidth=0.8,
                    label=f"{role}, r = {rate:g}: g* = {g_star:g}",
                    **style,
                )
            ax.set_xticks([0, 1], ["g = 1", "g = g* (from dataset A)"])
            ax.set_xlim(-0.5, 1.5)
            ax.set_xlabel("gain condition (MLP_GLOBAL)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title} · {spike}")
        axes[i, -1].legend(
            loc="upper left", bbox_to_anchor=(1.02, 1.0), title=f"{spike}\nrole, target rate: g*"
        )
    figure.suptitle(
        f"F06 dataset B (generalization) at g = 1 vs g*, paired lines; bars: 95 % bootstrap CI over B windows · "
        f"{_models_title(roles, model_ids)}"
    )
    return _attach(
        figure,
        "F06_GENERALIZATION_B",
        _condition_text(
            t02, "B", f"g_condition=g1,gstar; intervention_id={MLP_GLOBAL}; A thresholds"
        ),
        provenance,
        [("T02_GENERALIZATION", t02)],
        roles,
        ["T02_GENERALIZATION"],
    )


# ---- F07 ----------------------------------------------------------------------------------------


@_styled
def f07_arc_accuracy(t03: pd.DataFrame, provenance: Mapping[str, Any] | None = None) -> Figure:
    """F07: ARC accuracy (CI over questions) and log-prob margin at each measured gain."""
    _require(
        t03, ["g", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "n_questions"], "T03_ARC"
    )
    roles = _roles(t03, provenance)
    model_ids = _model_ids_of(t03)
    gains = sorted(float(g) for g in t03["g"].unique())
    figure, axes = _grid(1, 2, 12, 4.4)
    offsets = _series_offsets(len(roles), spread=0.02 * max(1, len(roles) - 1))
    for k, role in enumerate(roles):
        rows = t03[t03["model_role"] == role].drop_duplicates("g").sort_values("g")
        g = rows["g"].to_numpy(float) + offsets[k]
        acc = rows["accuracy"].to_numpy(float)
        yerr = np.vstack(
            [
                acc - rows["accuracy_ci_low"].to_numpy(float),
                rows["accuracy_ci_high"].to_numpy(float) - acc,
            ]
        )
        colour = ROLE_COLOURS[k % len(ROLE_COLOURS)]
        n_q = int(rows["n_questions"].iloc[0])
        label = f"{role} ({model_ids.get(role, '?')}), {n_q} questions"
        axes[0, 0].errorbar(
            g, acc, yerr=yerr, color=colour, capsize=3, label=label, **_role_style(roles, role)
        )
        if "mean_logprob_correct_minus_incorrect" in rows:
            axes[0, 1].plot(
                g,
                rows["mean_logprob_correct_minus_incorrect"],
                color=colour,
                label=label,
                **_role_style(roles, role),
            )
    tick_labels = []
    for g in gains:
        conditions = set(t03.loc[np.isclose(t03["g"].astype(float), g), "g_condition"].astype(str))
        names = [n for n, c in (("g = 1", "g1"), ("g*", "gstar")) if c in conditions]
        tick_labels.append(f"{g:g}\n({', '.join(names)})")
    for ax in axes[0]:
        ax.set_xticks(gains, tick_labels)
        ax.axvline(1.0, color="0.4", lw=0.8, ls=":")
        ax.set_xlabel("g (MLP gain, ×) at which ARC was scored")
        ax.legend(loc="best")
    axes[0, 0].set_ylabel("accuracy (fraction of questions correct)")
    axes[0, 0].set_title("ARC_MCQ accuracy; bars: 95 % bootstrap CI over questions")
    axes[0, 1].set_ylabel("mean log-prob(correct) − mean log-prob(incorrect)\n(nats)")
    axes[0, 1].axhline(0.0, color="0.2", lw=0.8, ls=":")
    axes[0, 1].set_title("answer margin (summed log-prob of ' {label}')")
    figure.suptitle(
        f"F07 ARC multiple choice at g = 1 and every g* · {_models_title(roles, model_ids)}"
    )
    return _attach(
        figure,
        "F07_ARC_ACCURACY",
        _condition_text(t03, "ARC_MCQ", f"g_condition=g1,gstar; intervention_id={MLP_GLOBAL}"),
        provenance,
        [("T03_ARC", t03)],
        roles,
        ["T03_ARC"],
    )


# ---- F08 ----------------------------------------------------------------------------------------


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


# ---- F11 ----------------------------------------------------------------------------------------


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


#: Figure id -> function (in SPEC order).
FIGURE_FUNCTIONS = {
    "F01_RASTER": f01_raster,
    "F02_RATE_MATCHING": f02_rate_matching,
    "F03_BRANCHING_VS_GAIN": f03_branching_vs_gain,
    "F04_DELTA_B_VS_GAIN": f04_delta_b_vs_gain,
    "F05_GSTAR_SELECTION": f05_gstar_selection,
    "F06_GENERALIZATION_B": f06_generalization_b,
    "F07_ARC_ACCURACY": f07_arc_accuracy,
    "F08_SPIKE_DEF_ROBUSTNESS": f08_spike_def_robustness,
    "F09_SUSCEPTIBILITY": f09_susceptibility,
    "F10_NULL_COMPARISON": f10_null_comparison,
    "F11_ABLATIONS": f11_ablations,
}
