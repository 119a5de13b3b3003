"""Generalization of g*: F06 dataset B at g = 1 vs g* (paired), F07 ARC accuracy."""

from __future__ import annotations

import numpy as np

from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import generalization
from tests.study.figures.tables_builder import g_star_of, make_t01, make_t02, make_t03, provenance


def test_series_offsets_spread_evenly_around_zero():
    np.testing.assert_allclose(generalization._series_offsets(1), [0.0])
    np.testing.assert_allclose(generalization._series_offsets(3), [-0.15, 0.0, 0.15])
    np.testing.assert_allclose(generalization._series_offsets(2, spread=0.5), [-0.25, 0.25])


def test_f06_pairs_g1_and_gstar_of_each_rate_and_role():
    t01 = make_t01(("base",))
    t02 = make_t02(t01)
    figure = generalization.f06_generalization_b(t02, provenance(("base",)))
    ax = figure.axes[0]  # SPIKE_ONE_SIDED_POS, b_tot
    assert ax.get_title() == "b_tot · SPIKE_ONE_SIDED_POS"
    assert len(ax.containers) == 3  # one paired line per target rate (one role)
    offsets = generalization._series_offsets(3)
    for container, rate, offset in zip(ax.containers, (0.001, 0.002, 0.004), offsets, strict=True):
        g_star = g_star_of(t01, "base", "SPIKE_ONE_SIDED_POS", rate)
        line = container.lines[0]
        np.testing.assert_allclose(line.get_xdata(), [offset, 1.0 + offset])
        np.testing.assert_allclose(line.get_ydata(), [0.9 + 0.1 * 1.0, 0.9 + 0.1 * g_star])
        assert container.get_label() == f"base, r = {rate:g}: g* = {g_star:g}"
    legend = figure.axes[2].get_legend()
    assert legend is not None and "role, target rate: g*" in legend.get_title().get_text()


def test_f06_skips_a_rate_without_both_conditions():
    t02 = make_t02(make_t01(("base",)))
    unpaired = t02[~((t02.target_rate == 0.002) & (t02.g_condition == "gstar"))]
    figure = generalization.f06_generalization_b(unpaired, provenance(("base",)))
    labels = [c.get_label() for c in figure.axes[0].containers]
    assert len(labels) == 2 and not any("r = 0.002" in label for label in labels)


def test_f07_accuracy_per_gain_with_its_condition_in_the_tick_labels():
    t01 = make_t01()
    t03 = make_t03(t01)
    figure = generalization.f07_arc_accuracy(t03, provenance())
    accuracy_ax, margin_ax = figure.axes
    # g = 1 is the baseline of every group and the g* of one (instruct, two-sided, 0.002)
    assert g_star_of(t01, "instruct", "SPIKE_TWO_SIDED_ABS", 0.002) == 1.0
    ticks = [t.get_text() for t in accuracy_ax.get_xticklabels()]
    assert ticks == ["0.8\n(g*)", "1\n(g = 1, g*)", "1.25\n(g*)"]
    base, instruct = accuracy_ax.containers
    # two roles are offset by -0.01 and +0.01 in g
    np.testing.assert_allclose(base.lines[0].get_xdata(), [0.79, 0.99, 1.24])
    np.testing.assert_allclose(instruct.lines[0].get_xdata(), [0.81, 1.01, 1.26])
    np.testing.assert_allclose(base.lines[0].get_ydata(), [0.23, 0.25, 0.275])
    assert base.get_label() == "base (tiny-base), 12 questions"
    np.testing.assert_allclose(margin_ax.lines[0].get_ydata(), [0.008, 0.01, 0.0125])
    assert figures.figure_metadata(figure)["source_datasets"] == "T03_ARC"
