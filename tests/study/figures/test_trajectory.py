"""F12: the training trajectory against the step, drawn from a synthetic T09."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import style
from avalanche_kedro.study.figures import trajectory as f12
from tests.study.figures.tables_builder import assert_print_ready, drawn_colours
from tests.study.trajectory_builder import RUN_ID, make_t09, provenance


def _not_available(ax) -> bool:
    return any(t.get_text().startswith("not available") for t in ax.texts)


def test_step_zero_sits_one_decade_left_of_the_first_step_behind_a_divider():
    positions, divider = f12.step_positions([200, 0, 14, 14])
    assert positions[14] == pytest.approx(np.log10(14))
    assert positions[200] == pytest.approx(np.log10(200))
    assert positions[0] == pytest.approx(np.log10(14) - f12.STEP0_GAP_DECADES)
    assert positions[0] < divider < positions[14]
    without_zero, none = f12.step_positions([1, 10])
    assert none is None and without_zero == {1: 0.0, 10: 1.0}


def test_series_styles_tell_spike_by_line_style_and_rate_by_marker_never_by_colour():
    styles = f12.series_styles(["A", "B"], [0.001, 0.004])
    assert {s["color"] for s in styles.values()} == {f12.SERIES_COLOUR}
    assert styles[("A", 0.001)]["linestyle"] == "-" and styles[("B", 0.001)]["linestyle"] == "--"
    assert styles[("A", 0.001)]["marker"] == "o" and styles[("A", 0.004)]["marker"] == "s"


def test_f12_draws_every_panel_at_gain_one_with_the_run_provenance():
    t09 = make_t09()
    figure = f12.f12_training_trajectory(t09, provenance())
    axes = figure.get_axes()
    assert len(axes) == 9
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("b_tot") and titles[-1] == "ARC accuracy at g = 1"
    # one error-bar series per (spike def, rate) in the b_tot panel, plotted at the step axis
    b_panel = axes[0]
    lines = [container.lines[0] for container in b_panel.containers]
    assert len(lines) == 4 and all(len(line.get_xdata()) == 3 for line in lines)
    assert [(line.get_linestyle(), line.get_marker()) for line in lines] == [
        ("-", "o"),
        ("-", "s"),
        ("--", "o"),
        ("--", "s"),
    ]
    # the g = 1 rows are drawn (b_tot of the first step of the lowest rate, one-sided)
    assert min(lines[0].get_ydata()) == pytest.approx(0.5)
    tick_labels = [t.get_text() for t in b_panel.get_xticklabels()]
    assert tick_labels == ["0", "14", "200"]
    assert b_panel.get_yscale() == "linear" and axes[3].get_yscale() == "log"
    # the failed crackling gate at step 0 is drawn hollow
    gamma_panel = axes[4]
    hollow = [
        line
        for line in gamma_panel.get_lines()
        if isinstance(line.get_markerfacecolor(), str) and line.get_markerfacecolor() == "white"
    ]
    assert hollow and all(len(line.get_xdata()) == 1 for line in hollow)
    # ARC at chance: T09 records no option count, so the line is 1/4, said to be assumed
    chance = [line for line in axes[-1].get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in chance] == [[0.25, 0.25]]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "chance = 1/4 (four options assumed: no option count recorded)" in legend
    assert legend[:2] == ["r* = 0.001", "r* = 0.004"]
    metadata = figures.figure_metadata(figure)
    assert metadata["figure_id"] == "F12_TRAINING_TRAJECTORY"
    assert metadata["run_id"] == RUN_ID
    assert "step200:tiny@step200" in metadata["model_ids"]
    assert "g_condition=g1" in metadata["condition"]


def test_f12_is_print_ready_and_black_but_for_the_reference_lines():
    figure = f12.f12_training_trajectory(make_t09(), provenance())
    assert_print_ready(figure)
    assert drawn_colours(figure) <= {f12.SERIES_COLOUR, to_hex(style.REFERENCE_COLOUR)}


def test_f12_says_not_available_for_an_unscored_column_and_a_series_without_g1():
    t09 = make_t09().assign(arc_accuracy=np.nan, arc_accuracy_ci_low=np.nan)
    figure = f12.f12_training_trajectory(t09, provenance())
    assert [i for i, ax in enumerate(figure.axes) if _not_available(ax)] == [8]
    assert "ARC was not scored" in figure.axes[8].texts[0].get_text()
    only_gstar = make_t09()
    only_gstar = only_gstar[only_gstar["g_condition"] == "gstar"]
    empty = f12.f12_training_trajectory(only_gstar, provenance())
    assert len(empty.axes) == 1 and _not_available(empty.axes[0])
    assert "no row at g = 1" in empty.axes[0].texts[0].get_text()
    assert_print_ready(empty)
    assert figures.figure_metadata(empty)["figure_id"] == "F12_TRAINING_TRAJECTORY"


def test_f12_refuses_a_table_without_its_columns():
    with pytest.raises(ArtifactError, match="ppl_B"):
        f12.f12_training_trajectory(make_t09().drop(columns=["ppl_B"]), provenance())
