"""Robustness of the signatures: F08 spike definitions, F11 ablations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from avalanche_kedro.study.figures import robustness
from tests.study.figures.tables_builder import make_t01, make_t06, provenance


def test_f08_compares_the_two_spike_definitions_point_by_point():
    t01 = make_t01()
    figure = robustness.f08_spike_def_robustness(t01, provenance())
    b_ax, delta_ax = figure.axes
    assert b_ax.get_xlabel().startswith("SPIKE_ONE_SIDED_POS:")
    assert b_ax.get_ylabel().startswith("SPIKE_TWO_SIDED_ABS:")
    # one series per (rate, role): 3 rates x 2 roles, each over the 3 gains
    assert len(b_ax.containers) == 6
    first = b_ax.containers[0].lines[0]  # rate 0.001, base
    one = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == 0.001)
    ].sort_values("g")
    np.testing.assert_allclose(first.get_xdata(), one.b_tot)
    # the synthetic two-sided b_tot is the one-sided one + 0.03 everywhere
    np.testing.assert_allclose(first.get_ydata(), one.b_tot + 0.03)
    (b_text,) = b_ax.texts
    assert "max |two-sided − one-sided| = 0.03\n" in b_text.get_text()
    assert "mean (two-sided − one-sided) = +0.03" in b_text.get_text()
    assert b_text.get_text().startswith("Pearson r = 1.000\n")  # a pure shift
    # delta_b_tot is the same under both definitions: no difference at all
    (delta_text,) = delta_ax.texts
    assert "mean (two-sided − one-sided) = +0" in delta_text.get_text()
    assert "max |two-sided − one-sided| = 0\n" in delta_text.get_text()


def test_f08_with_one_spike_definition_says_it_is_not_available():
    t01 = make_t01(("base",))
    one_spike = t01[t01.spike_def_id == "SPIKE_ONE_SIDED_POS"]
    figure = robustness.f08_spike_def_robustness(one_spike, provenance(("base",)))
    for ax in figure.axes:
        assert ax.get_title().endswith("(not available)")
        assert [t.get_text() for t in ax.texts] == ["only one spike definition in this run"]


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
    assert robustness._ablation_categories(t06) == [
        ("g1", "MLP_GLOBAL"),
        ("gstar", "MLP_GLOBAL"),
        ("gstar", "ATTN_GLOBAL"),
        ("gstar", "MLP_BAND_LATE"),
        ("gstar", "AA_OTHER"),
        ("gstar", "ZZ_OTHER"),
    ]


def test_f11_places_each_intervention_in_its_category():
    t06 = make_t06(make_t01(("base",)))
    figure = robustness.f11_ablations(t06, provenance(("base",)))
    b_ax = figure.axes[0]  # SPIKE_ONE_SIDED_POS, b_tot
    ticks = [t.get_text() for t in b_ax.get_xticklabels()]
    assert ticks == [
        "MLP_GLOBAL\ng = 1",
        "MLP_GLOBAL\ng*",
        "ATTN_GLOBAL\ng*",
        "MLP_BAND_\nEARLY\ng*",
        "MLP_BAND_\nMID\ng*",
        "MLP_BAND_\nLATE\ng*",
    ]
    # T06 has no b_tot CI: the title says the values are points
    assert "(point values: T06 stores no CI for b_tot)" in b_ax.get_title()
    first = b_ax.containers[0].lines[0]  # rate 0.001, base; offset -0.25 of the three series
    # the x positions come back as an object array of numpy floats
    np.testing.assert_allclose(np.asarray(first.get_xdata(), float), np.arange(6) - 0.25)
    np.testing.assert_allclose(first.get_ydata(), 0.9 + 0.02 * np.arange(6))
    assert b_ax.containers[0].get_label() == "base, r = 0.001: g* = 0.8"
