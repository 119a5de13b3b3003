"""Generalization of g*: F06 dataset B at g = 1 vs g* (paired), F07 ARC accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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
from .metadata import _attach
from .style import B_UNIT, ROLE_COLOURS, _grid, _rate_colours, _role_style, _styled


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
