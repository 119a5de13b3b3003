"""Generalization of g*: F06 dataset B at g = 1 vs g* (paired), F07 ARC accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import generalization, style
from tests.study.figures.tables_builder import (
    assert_print_ready,
    drawn_colours,
    g_star_of,
    make_t01,
    make_t02,
    make_t03,
    provenance,
    visible_texts,
)

#: Colours F06/F07 may use: the roles (trained, untrained) and the reference lines.
ROLE_PALETTE = {
    *(to_hex(c) for c in style.ROLE_COLOURS),
    to_hex(style.UNTRAINED_COLOUR),
    to_hex(style.REFERENCE_COLOUR),
}


def _not_available(ax) -> bool:
    return any(t.get_text().startswith("not available") for t in ax.texts)


def test_series_offsets_spread_evenly_around_zero():
    np.testing.assert_allclose(generalization._series_offsets(1), [0.0])
    np.testing.assert_allclose(generalization._series_offsets(3), [-0.15, 0.0, 0.15])
    np.testing.assert_allclose(generalization._series_offsets(2, spread=0.5), [-0.25, 0.25])


def test_pair_positions_put_each_role_in_its_slot_of_the_rate_group():
    # three roles: slot w = 0.8 / 3; role 0 centred at 1 − w; g = 1 and g* at ∓ 0.38 w
    w = 0.8 / 3
    assert generalization.pair_positions(1, 0, 3) == pytest.approx(
        (1 - w - 0.38 * w, 1 - w + 0.38 * w)
    )
    assert generalization.pair_positions(2, 1, 3) == pytest.approx((2 - 0.38 * w, 2 + 0.38 * w))
    # one role: the whole group, 0.8 wide
    assert generalization.pair_positions(0, 0, 1) == pytest.approx((-0.304, 0.304))


def test_f06_pairs_g1_and_gstar_of_each_rate_at_the_rate_position():
    t01 = make_t01(("base",))
    t02 = make_t02(t01)
    figure = generalization.f06_generalization_b(t02, provenance(("base",)))
    ax = figure.axes[0]  # row b_tot, column SPIKE_ONE_SIDED_POS
    assert ax.get_title() == "b_tot · SPIKE_ONE_SIDED_POS"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.002", "0.004"]
    assert len(ax.containers) == 3  # one pair per target rate (one role)
    for k, (container, rate) in enumerate(zip(ax.containers, (0.001, 0.002, 0.004), strict=True)):
        g_star = g_star_of(t01, "base", "SPIKE_ONE_SIDED_POS", rate)
        line = container.lines[0]
        np.testing.assert_allclose(line.get_xdata(), generalization.pair_positions(k, 0, 1))
        np.testing.assert_allclose(line.get_ydata(), [0.9 + 0.1 * 1.0, 0.9 + 0.1 * g_star])
        assert to_hex(line.get_color()) == to_hex(style.ROLE_COLOURS[0])
    # perplexity is on a log axis; b_tot has its b = 1 reference line
    assert figure.axes[4].get_yscale() == "log"
    reference = [line for line in ax.get_lines() if line.get_color() == style.REFERENCE_COLOUR]
    assert [list(line.get_ydata()) for line in reference] == [[1.0, 1.0]]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[0] == "base (tiny-base)"


def test_f06_draws_an_untrained_role_grey_hollow_and_dotted():
    t02 = make_t02(make_t01())
    figure = generalization.f06_generalization_b(t02, provenance(), control_role="instruct")
    base, instruct = figure.axes[0].containers[:2]
    assert to_hex(instruct.lines[0].get_color()) == to_hex(style.UNTRAINED_COLOUR)
    assert instruct.lines[0].get_markerfacecolor() == "white"
    assert instruct.lines[0].get_linestyle() == ":"
    assert to_hex(base.lines[0].get_color()) == to_hex(style.ROLE_COLOURS[0])
    assert "instruct (tiny-instruct), untrained" in [
        t.get_text() for t in figure.legends[0].get_texts()
    ]


def test_f06_is_print_ready_and_coloured_by_role_only():
    figure = figures.f06_generalization_b(make_t02(make_t01()), provenance())
    assert_print_ready(figure)
    assert drawn_colours(figure) <= ROLE_PALETTE


def test_f06_skips_a_rate_without_both_conditions():
    t02 = make_t02(make_t01(("base",)))
    unpaired = t02[~((t02.target_rate == 0.002) & (t02.g_condition == "gstar"))]
    figure = generalization.f06_generalization_b(unpaired, provenance(("base",)))
    positions = [c.lines[0].get_xdata()[0] for c in figure.axes[0].containers]
    np.testing.assert_allclose(positions, [-0.304, 2 - 0.304])  # rates 0.001 and 0.004


def test_f06_without_any_gstar_row_shows_not_available_panels():
    t02 = make_t02(make_t01(("base",)))
    figure = generalization.f06_generalization_b(
        t02[t02.g_condition == "g1"], provenance(("base",))
    )
    assert all(_not_available(ax) for ax in figure.axes)
    assert "no role has b_tot at both g = 1 and g*" in figure.axes[0].texts[0].get_text()
    assert_print_ready(figure)


def test_chance_level_is_the_recorded_mean_of_one_over_the_options_or_an_assumed_quarter():
    t03 = make_t03(make_t01(("base",)))
    assert generalization.chance_level(t03) == (
        0.25,
        "chance = 1/4 (four options assumed: no option count recorded)",
    )
    # half the questions with 4 options, half with 3: mean(1/4, 1/3) = 7/24
    value, label = generalization.chance_level(t03.assign(opt_chance_accuracy=7 / 24))
    assert value == pytest.approx(7 / 24)
    assert label == "chance = mean over questions of 1/(options) = 0.292"


def test_f07_accuracy_per_gain_with_the_chance_line_and_gstar_ticks():
    t01 = make_t01()
    t03 = make_t03(t01).assign(opt_chance_accuracy=7 / 24)
    figure = generalization.f07_arc_accuracy(t03, provenance())
    accuracy_ax, margin_ax = figure.axes
    # every gain is the g* of some (spike def, rate); g = 1 is also that of
    # (instruct, two-sided, 0.002)
    assert g_star_of(t01, "instruct", "SPIKE_TWO_SIDED_ABS", 0.002) == 1.0
    ticks = [t.get_text() for t in accuracy_ax.get_xticklabels()]
    assert ticks == ["0.8\ng*", "1\ng*", "1.25\ng*"]
    base, instruct = accuracy_ax.containers
    # two roles are offset by -0.01 and +0.01 in g
    np.testing.assert_allclose(base.lines[0].get_xdata(), [0.79, 0.99, 1.24])
    np.testing.assert_allclose(instruct.lines[0].get_xdata(), [0.81, 1.01, 1.26])
    np.testing.assert_allclose(base.lines[0].get_ydata(), [0.23, 0.25, 0.275])
    assert to_hex(instruct.lines[0].get_color()) == to_hex(style.ROLE_COLOURS[1])
    chance = [line for line in accuracy_ax.get_lines() if line.get_linestyle() == "--"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [7 / 24, 7 / 24]
    assert chance[0].get_color() == style.REFERENCE_COLOUR
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "chance = mean over questions of 1/(options) = 0.292" in legend
    assert "base (tiny-base)" in legend
    np.testing.assert_allclose(margin_ax.lines[0].get_ydata(), [0.008, 0.01, 0.0125])
    assert "{" not in margin_ax.get_title() and "log p(correct)" in margin_ax.get_title()
    assert figure.get_suptitle().endswith("12 questions")
    assert figures.figure_metadata(figure)["source_datasets"] == "T03_ARC"


def test_f07_is_print_ready_and_coloured_by_role_only():
    figure = figures.f07_arc_accuracy(make_t03(make_t01()), provenance())
    assert_print_ready(figure)
    assert drawn_colours(figure) <= ROLE_PALETTE
    assert not any("{" in t.get_text() for t in visible_texts(figure))


def test_f07_with_one_role_draws_it_and_without_questions_says_not_available():
    t03 = make_t03(make_t01(("base",)))
    one = generalization.f07_arc_accuracy(t03, provenance(("base",)))
    assert len(one.axes[0].containers) == 1 and not _not_available(one.axes[0])
    unscored = t03.assign(n_questions=0, accuracy=np.nan, accuracy_ci_low=np.nan)
    unscored = unscored.assign(accuracy_ci_high=np.nan, mean_logprob_correct_minus_incorrect=np.nan)
    figure = generalization.f07_arc_accuracy(unscored, provenance(("base",)))
    assert all(_not_available(ax) for ax in figure.axes)
    assert "T03 has no scored question" in figure.axes[0].texts[0].get_text()
    assert_print_ready(figure)
