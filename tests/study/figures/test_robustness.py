"""Robustness of the signatures: F08 spike definitions, F11 ablations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from avalanche_kedro.study.figures import robustness, style
from tests.study.figures.tables_builder import (
    assert_print_ready,
    drawn_colours,
    make_t01,
    make_t06,
    provenance,
)

ROLE_PALETTE = {
    *(to_hex(c) for c in style.ROLE_COLOURS),
    to_hex(style.UNTRAINED_COLOUR),
    to_hex(style.REFERENCE_COLOUR),
}


def _not_available(ax) -> bool:
    return any(t.get_text().startswith("not available") for t in ax.texts)


def test_agreement_within_roles_removes_the_spread_between_roles():
    # one role: y = 2x exactly; mean(y − x) = mean(0, 1, 2) = 1, max |y − x| = 2
    stats = robustness.agreement([0.0, 1.0, 2.0], [0.0, 2.0, 4.0])
    assert stats["n"] == 3 and stats["r"] == pytest.approx(1.0)
    assert stats["rho"] == pytest.approx(1.0)
    assert stats["mean_diff"] == pytest.approx(1.0) and stats["max_abs_diff"] == pytest.approx(2.0)
    # two roles far apart: pooled r is high, but inside a role the definitions barely agree.
    # Centred: x = (−.5, .5, −.5, .5), y = (−1, 1, .5, −.5): r = 0.5 / sqrt(1 · 2.5)
    x, y, roles = [0.0, 1.0, 10.0, 11.0], [0.0, 2.0, 10.0, 9.0], ["a", "a", "b", "b"]
    stats = robustness.agreement(x, y, roles)
    assert stats["r"] > 0.95
    assert stats["r_within"] == pytest.approx(0.5 / np.sqrt(2.5))
    # fewer than three finite pairs, or a constant side: no correlation
    assert np.isnan(robustness.agreement([1.0, 2.0, np.nan], [1.0, 2.0, 3.0])["r"])
    assert np.isnan(robustness.agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["rho"])


def test_f08_compares_the_two_spike_definitions_within_each_target_rate():
    t01 = make_t01()
    figure = robustness.f08_spike_def_robustness(t01, provenance())
    assert len(figure.axes) == 6  # 3 target rates (rows) x b_tot, Δb_tot
    b_ax, delta_ax = figure.axes[0], figure.axes[1]  # target rate 0.001
    assert b_ax.get_ylabel() == "y: SPIKE_TWO_SIDED_ABS\nb_tot"
    assert figure.axes[4].get_xlabel().startswith("x: SPIKE_ONE_SIDED_POS\nb_tot")
    assert len(b_ax.containers) == 2  # one series per role, over the 3 gains
    first = b_ax.containers[0].lines[0]  # base
    one = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == 0.001)
    ].sort_values("g")
    np.testing.assert_allclose(first.get_xdata(), one.b_tot)
    # the synthetic two-sided b_tot is the one-sided one + 0.03 everywhere: a pure shift
    np.testing.assert_allclose(first.get_ydata(), one.b_tot + 0.03)
    assert b_ax.get_title() == (
        "r* = 0.001 · n = 6 · mean(y − x) = +0.03\nr = 1.000 · ρ = 1.000 · within roles: r = 1.00"
    )
    # Δb_tot is the same constant under both definitions: no correlation can be computed
    assert delta_ax.get_title() == (
        "r* = 0.001 · n = 6 · mean(y − x) = +0\n"
        "r = undefined · ρ = undefined · within roles: r = undefined"
    )
    # no pooled statistic across target rates anywhere
    assert all(ax.get_title().startswith("r* = ") for ax in figure.axes)


def test_f08_is_print_ready_and_coloured_by_role_only():
    figure = robustness.f08_spike_def_robustness(make_t01(), provenance())
    assert_print_ready(figure)
    assert drawn_colours(figure) <= ROLE_PALETTE


def test_f08_with_one_spike_definition_says_it_is_not_available():
    t01 = make_t01(("base",))
    one_spike = t01[t01.spike_def_id == "SPIKE_ONE_SIDED_POS"]
    figure = robustness.f08_spike_def_robustness(one_spike, provenance(("base",)))
    assert len(figure.axes) == 2 and all(_not_available(ax) for ax in figure.axes)
    assert "only one spike definition (SPIKE_ONE_SIDED_POS)" in figure.axes[0].texts[0].get_text()
    assert_print_ready(figure)


def test_ablation_categories_in_spec_order_then_the_rest_sorted():
    t06 = pd.DataFrame(
        {
            "g_condition": ["gstar", "gstar", "g1", "gstar", "gstar", "gstar"],
            "intervention_id": [
                "MLP_BAND_LATE",
                "ZZ_OTHER",
                "MLP_GLOBAL",
                "ATTN_GLOBAL",
                "AA_OTHER",
                "MLP_GLOBAL",
            ],
        }
    )
    categories = robustness._ablation_categories(t06)
    assert categories == [
        ("g1", "MLP_GLOBAL"),
        ("gstar", "MLP_GLOBAL"),
        ("gstar", "ATTN_GLOBAL"),
        ("gstar", "MLP_BAND_LATE"),
        ("gstar", "AA_OTHER"),
        ("gstar", "ZZ_OTHER"),
    ]
    assert [robustness.category_label(*c) for c in categories] == [
        "MLP · 1",
        "MLP · g*",
        "ATTN · g*",
        "LATE · g*",
        "AA_OTHER · g*",
        "ZZ_OTHER · g*",
    ]


def test_f11_is_categorical_markers_with_bars_and_no_connecting_lines():
    t06 = make_t06(make_t01())
    figure = robustness.f11_ablations(t06, provenance())
    assert len(figure.axes) == 3 * 4  # target rates x (b_tot, Δb_tot) x spike definitions
    bottom = figure.axes[-4]  # rate 0.004, b_tot, SPIKE_ONE_SIDED_POS
    ticks = [t.get_text() for t in bottom.get_xticklabels()]
    assert ticks == ["MLP · 1", "MLP · g*", "ATTN · g*", "EARLY · g*", "MID · g*", "LATE · g*"]
    assert not any("\n" in tick for tick in ticks)  # one line each, rotated, never wrapped
    assert all(t.get_rotation() == 90 for t in bottom.get_xticklabels())
    top = figure.axes[0]
    assert top.get_title() == "b_tot\nSPIKE_ONE_SIDED_POS"
    assert not any(t.get_text() for t in top.get_xticklabels())  # labels: bottom row only
    base, instruct = (container.lines[0] for container in top.containers)
    # roles dodged side by side: -0.25 and +0.25 of a category
    np.testing.assert_allclose(np.asarray(base.get_xdata(), float), np.arange(6) - 0.25)
    np.testing.assert_allclose(np.asarray(instruct.get_xdata(), float), np.arange(6) + 0.25)
    np.testing.assert_allclose(base.get_ydata(), 0.9 + 0.02 * np.arange(6))
    # markers only: every line drawn with a line style is a horizontal reference line
    for ax in figure.axes:
        for line in ax.get_lines():
            if line.get_linestyle() not in ("None", "none", ""):
                assert line.get_color() == style.REFERENCE_COLOUR
                assert len(set(np.asarray(line.get_ydata(), float))) == 1
    legend = figure.legends[0]
    assert legend.get_title().get_text().startswith("MLP = MLP_GLOBAL, ATTN = ATTN_GLOBAL")


def test_f11_is_print_ready_and_coloured_by_role_only():
    figure = robustness.f11_ablations(make_t06(make_t01()), provenance())
    assert_print_ready(figure)
    assert drawn_colours(figure) <= ROLE_PALETTE


def test_f11_without_a_rate_for_one_spike_definition_shows_not_available():
    t06 = make_t06(make_t01(("base",)))
    gap = ~((t06.target_rate == 0.002) & (t06.spike_def_id == "SPIKE_TWO_SIDED_ABS"))
    figure = robustness.f11_ablations(t06[gap], provenance(("base",)))
    missing = [i for i, ax in enumerate(figure.axes) if _not_available(ax)]
    assert missing == [5, 7]  # row 0.002: the two-sided b_tot and Δb_tot panels
    assert "no T06 row for r* = 0.002" in figure.axes[5].texts[0].get_text()
