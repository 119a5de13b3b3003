"""Generalization of g*: F06 dataset B at g = 1 vs g* (paired), F07 ARC accuracy.

Colour is the model role only (:func:`style.role_styles`: trained roles in the registry's role
colours, untrained roles grey, dotted and hollow); target rates are x positions (F06) and the
gain is the x axis (F07), so no colour means "rate" here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...measure.gain import MLP_GLOBAL
from .frames import _column, _condition_text, _model_ids_of, _rates, _require, _select, _spikes
from .metadata import _attach
from .roles import match_limits, plain_log_y, role_handles, styled_roles
from .style import (
    B_UNIT,
    DOUBLE_COLUMN_IN,
    RATE_UNIT,
    REFERENCE_LINE,
    _grid,
    _outside_legend,
    _styled,
    not_available,
)

#: Width (in x units, one unit per target rate) of the group of role pairs at one rate.
GROUP_WIDTH = 0.8
#: Half the distance between the g = 1 and the g* point of a pair, as a fraction of a role's slot.
PAIR_HALF_GAP = 0.38
#: T03 column of the chance accuracy: the mean over questions of 1 / (number of options), which
#: the ARC summary records as ``chance_accuracy`` (T03 prefixes extras with ``opt_``).
CHANCE_COLUMN = "opt_chance_accuracy"
#: Chance accuracy of a four-option question (every question of the embedded ARC file and
#: nearly all of AI2 ARC): the fallback, labelled as assumed, when the table has no option count.
FOUR_OPTION_CHANCE = 0.25
#: F06 rows: (T02 column, CI prefix, y label, panel title, log y).
F06_METRICS = (
    ("b_tot", "opt_b_tot", f"b_tot\n({B_UNIT})", "b_tot", False),
    (
        "delta_b_tot",
        "opt_delta_b_tot",
        f"Δb_tot = real − permutation null\n({B_UNIT})",
        "Δb_tot vs permutation null",
        False,
    ),
    ("ppl", "opt_ppl", "perplexity (exp of mean NLL\nin nats/token; log axis)", "perplexity", True),
)


def _series_offsets(n: int, spread: float = 0.3) -> np.ndarray:
    return np.linspace(-spread / 2, spread / 2, n) if n > 1 else np.zeros(1)


def pair_positions(rate_index: int, role_index: int, n_roles: int) -> tuple[float, float]:
    """x of the (g = 1, g*) pair of one role at one target rate in F06: the rate's group of
    width :data:`GROUP_WIDTH` around ``rate_index`` holds one slot of width
    ``w = GROUP_WIDTH / n_roles`` per role (centre ``rate_index + (role_index − (n_roles − 1)/2)·w``);
    g = 1 sits :data:`PAIR_HALF_GAP`·w left of the centre, g* as far right."""
    slot = GROUP_WIDTH / max(n_roles, 1)
    centre = rate_index + (role_index - (n_roles - 1) / 2) * slot
    return centre - PAIR_HALF_GAP * slot, centre + PAIR_HALF_GAP * slot


def chance_level(table: pd.DataFrame, column: str = CHANCE_COLUMN) -> tuple[float, str]:
    """(chance accuracy, its legend label): the table's recorded mean over questions of
    1 / (number of options) when it has one, else 1/4 said to be assumed."""
    values = _column(table, column)
    values = values[np.isfinite(values)]
    if values.size:
        value = float(values.mean())
        return value, f"chance = mean over questions of 1/(options) = {value:.3g}"
    return FOUR_OPTION_CHANCE, "chance = 1/4 (four options assumed: no option count recorded)"


def _pair(rows: pd.DataFrame) -> list[pd.DataFrame] | None:
    pair = [rows[rows["g_condition"] == c] for c in ("g1", "gstar")]
    return None if any(p.empty for p in pair) else pair


@_styled
def f06_generalization_b(
    t02: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F06: dataset B at g = 1 and at g* (chosen on dataset A), b_tot, Δb_tot and perplexity
    (rows) per spike definition (columns); x is the target rate, and at each rate every role
    draws a pair g = 1 (left) → g* (right) with its 95 % bootstrap CI over B windows. A panel
    where no role has both conditions (or the metric is all NaN) is "not available"."""
    _require(t02, ["g_condition", "g", "b_tot", "delta_b_tot", "ppl"], "T02_GENERALIZATION")
    roles, untrained, styles = styled_roles(t02, provenance, control_role)
    spikes, rates, model_ids = _spikes(t02), _rates(t02), _model_ids_of(t02)
    figure, axes = _grid(len(F06_METRICS), len(spikes), DOUBLE_COLUMN_IN, 7.2)
    for j, spike in enumerate(spikes):
        for i, (column, ci, ylabel, title) in enumerate(m[:4] for m in F06_METRICS):
            ax = axes[i, j]
            drawn = 0
            for k, rate in enumerate(rates):
                for r, role in enumerate(roles):
                    rows = _select(t02, model_role=role, spike_def_id=spike, target_rate=rate)
                    pair = _pair(rows)
                    if pair is None:
                        continue
                    y = np.array([float(p[column].iloc[0]) for p in pair])
                    if not np.isfinite(y).any():
                        continue
                    low = np.array([_column(p, f"{ci}_ci_low")[0] for p in pair])
                    high = np.array([_column(p, f"{ci}_ci_high")[0] for p in pair])
                    finite = np.isfinite(low) & np.isfinite(high)
                    yerr = np.vstack(
                        [np.where(finite, y - low, 0.0), np.where(finite, high - y, 0.0)]
                    )
                    ax.errorbar(
                        np.array(pair_positions(k, r, len(roles))),
                        y,
                        yerr=yerr,
                        capsize=1.5,
                        elinewidth=0.7,
                        label=role,
                        **styles[role],
                    )
                    drawn += 1
            panel_title = f"{title} · {spike}"
            if not drawn:
                not_available(
                    ax,
                    f"no role has {column} at both g = 1 and g* for {spike} in T02",
                    title=panel_title,
                )
                continue
            if column == "b_tot":
                ax.axhline(1.0, **REFERENCE_LINE)
            if column == "delta_b_tot":
                ax.axhline(0.0, **REFERENCE_LINE)
            if F06_METRICS[i][4]:
                plain_log_y(ax)
            ax.set_title(panel_title)
            if j == 0:
                ax.set_ylabel(ylabel)
            ax.set_xticks(range(len(rates)), [f"{rate:g}" for rate in rates])
            ax.set_xlim(-0.5, len(rates) - 0.5)
            if i == len(F06_METRICS) - 1:
                ax.set_xlabel(
                    f"target rate r* ({RATE_UNIT})\nper role a pair: g = 1 (left), g* (right)"
                )
    for row in axes:  # the spike definitions on one scale per quantity
        match_limits(row, "y")
    handles = role_handles(roles, styles, model_ids, untrained)
    handles.append(Line2D([], [], label="reference: b_tot = 1, Δb_tot = 0", **REFERENCE_LINE))
    _outside_legend(
        figure, handles, title="model role · bars: 95 % bootstrap CI over B windows", ncols=2
    )
    figure.suptitle(
        "F06 dataset B (generalization) at g = 1 and at g* (MLP_GLOBAL, chosen on dataset A)"
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


def _gain_ticks(t03: pd.DataFrame, gains: list[float]) -> list[str]:
    """Tick label of each gain: its value, with ``g*`` under it when it is the g* of some
    (spike def, rate) of T03."""
    stars = t03.loc[t03["g_condition"].astype(str) == "gstar", "g"].astype(float).to_numpy()
    return [f"{g:g}\ng*" if np.isclose(stars, g).any() else f"{g:g}" for g in gains]


@_styled
def f07_arc_accuracy(
    t03: pd.DataFrame,
    provenance: Mapping[str, Any] | None = None,
    *,
    control_role: str | None = None,
) -> Figure:
    """F07: ARC accuracy (95 % bootstrap CI over questions) with the chance level
    (:func:`chance_level`), and the mean answer margin log p(correct label) − mean log p(other
    labels) in nats, at each measured gain; one line per role, roles offset by ±0.01 per role
    in g. A panel whose values are all NaN (no question scored) is "not available"."""
    _require(
        t03, ["g", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "n_questions"], "T03_ARC"
    )
    roles, untrained, styles = styled_roles(t03, provenance, control_role)
    model_ids = _model_ids_of(t03)
    gains = sorted(float(g) for g in t03["g"].unique())
    figure, axes = _grid(1, 2, DOUBLE_COLUMN_IN, 3.6)
    accuracy_ax, margin_ax = axes[0]
    offsets = _series_offsets(len(roles), spread=0.02 * max(1, len(roles) - 1))
    scored = t03["n_questions"].astype(float).gt(0) & t03["accuracy"].astype(float).notna()
    n_drawn = {"accuracy": 0, "margin": 0}
    for k, role in enumerate(roles):
        rows = t03[(t03["model_role"] == role) & scored].drop_duplicates("g").sort_values("g")
        if rows.empty:
            continue
        g = rows["g"].to_numpy(float) + offsets[k]
        acc = rows["accuracy"].to_numpy(float)
        yerr = np.vstack(
            [
                acc - rows["accuracy_ci_low"].to_numpy(float),
                rows["accuracy_ci_high"].to_numpy(float) - acc,
            ]
        )
        accuracy_ax.errorbar(g, acc, yerr=yerr, capsize=2, elinewidth=0.8, **styles[role])
        n_drawn["accuracy"] += 1
        margin = _column(rows, "mean_logprob_correct_minus_incorrect")
        if np.isfinite(margin).any():
            margin_ax.plot(g, margin, **styles[role])
            n_drawn["margin"] += 1
    n_questions = sorted({int(n) for n in t03.loc[scored, "n_questions"]})
    chance, chance_label = chance_level(t03)
    panels = (
        (accuracy_ax, "accuracy", "ARC_MCQ accuracy · bars: 95 % bootstrap CI over questions"),
        (
            margin_ax,
            "margin",
            "answer margin: log p(correct) − mean log p(others)\n"
            "(a label scored as the continuation ' A', ' B', …)",
        ),
    )
    for ax, name, title in panels:
        if not n_drawn[name]:
            reason = "T03 has no scored question" if name == "accuracy" else "no margin in T03"
            not_available(ax, reason, title=title)
            continue
        ax.set_title(title)
        ax.set_xticks(gains, _gain_ticks(t03, gains))
        ax.axvline(1.0, **REFERENCE_LINE)
        ax.set_xlabel(
            "g (MLP gain, ×) at which ARC was scored\n(g*: the g* of a spike definition and rate)"
        )
    if n_drawn["accuracy"]:
        accuracy_ax.axhline(chance, **{**REFERENCE_LINE, "linestyle": "--"})
        accuracy_ax.set_ylabel("accuracy (fraction of questions correct)")
        accuracy_ax.set_ylim(bottom=0.0)
    if n_drawn["margin"]:
        margin_ax.axhline(0.0, **REFERENCE_LINE)
        margin_ax.set_ylabel("mean over questions (nats)")
    handles = role_handles(roles, styles, model_ids, untrained)
    handles += [
        Line2D([], [], label=chance_label, **{**REFERENCE_LINE, "linestyle": "--"}),
        Line2D([], [], label="g = 1 (vertical); margin 0 (horizontal)", **REFERENCE_LINE),
    ]
    _outside_legend(figure, handles, ncols=2)
    questions = ", ".join(str(n) for n in n_questions) or "no"
    figure.suptitle(f"F07 ARC multiple choice at g = 1 and every g* · {questions} questions")
    return _attach(
        figure,
        "F07_ARC_ACCURACY",
        _condition_text(t03, "ARC_MCQ", f"g_condition=g1,gstar; intervention_id={MLP_GLOBAL}"),
        provenance,
        [("T03_ARC", t03)],
        roles,
        ["T03_ARC"],
    )
