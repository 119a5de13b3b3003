"""Roles and shared axes of F06-F08 and F11-F14 (``study/figures/roles.py``)."""

from __future__ import annotations

import pandas as pd
import pytest

from avalanche_kedro.study.figures import roles, style


def test_styled_roles_follow_the_run_order_and_find_the_untrained_ones():
    table = pd.DataFrame({"model_role": ["step0", "base", "extra", "base"]})
    provenance = {
        "roles": ["base", "step0"],
        "models": {"base": {"training_step": 200}, "step0": {"training_step": 0}},
    }
    order, untrained, styles = roles.styled_roles(table, provenance)
    assert order == ["base", "step0", "extra"]  # the provenance's order, then the rest sorted
    assert untrained == ["step0"]
    assert styles["base"]["color"] == style.ROLE_COLOURS[0]
    assert styles["extra"]["color"] == style.ROLE_COLOURS[1]  # the second trained role
    assert styles["step0"]["color"] == style.UNTRAINED_COLOUR
    assert styles["step0"]["markerfacecolor"] == "white"
    # the configured control is untrained whatever its step
    _, untrained, _ = roles.styled_roles(table, provenance, control_role="extra")
    assert untrained == ["step0", "extra"]


def test_role_labels_and_handles_say_which_roles_are_untrained():
    ids = {"base": "m", "step0": "m@0"}
    assert roles.role_label("step0", ids, ["step0"]) == "step0 (m@0), untrained"
    assert roles.role_label("untrained", {}, ["untrained"]) == "untrained (?)"
    assert roles.role_label("base", ids, ["step0"]) == "base (m)"
    styles = style.role_styles(["base", "step0"], ["step0"])
    base, step0 = roles.role_handles(["base", "step0"], styles, ids, ["step0"])
    assert base.get_label() == "base (m)" and base.get_color() == style.ROLE_COLOURS[0]
    assert step0.get_linestyle() == ":" and step0.get_markerfacecolor() == "white"


def test_match_limits_unites_the_drawn_panels_and_skips_a_not_available_one():
    figure = style.new_figure(style.DOUBLE_COLUMN_IN, 2.0)
    first, second, missing = figure.subplots(1, 3)
    first.plot([0, 1], [0.0, 2.0])
    second.plot([0, 1], [1.0, 5.0])
    style.not_available(missing, "nothing here")
    first.set_ylim(0.0, 2.0)
    second.set_ylim(1.0, 5.0)
    roles.match_limits([first, second, missing], "y")
    assert first.get_ylim() == second.get_ylim() == (0.0, 5.0)
    assert missing.get_yticks().size == 0  # the "not available" panel keeps no ticks


def test_plain_log_y_labels_read_as_plain_numbers():
    figure = style.new_figure(style.SINGLE_COLUMN_IN, 2.0)
    ax = figure.subplots()
    ax.plot([0, 1], [400.0, 4000.0])
    roles.plain_log_y(ax)
    figure.draw_without_rendering()
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "1000" in labels and "2000" in labels and "3000" in labels
    assert not any("10^" in label or "times" in label for label in labels)
    assert ax.yaxis.get_major_formatter()(500.0, 0) == "500"


@pytest.mark.parametrize("which", ["x", "y"])
def test_match_limits_with_one_drawn_panel_changes_nothing(which):
    figure = style.new_figure(style.SINGLE_COLUMN_IN, 2.0)
    ax = figure.subplots()
    ax.plot([0, 3], [0, 3])
    before = getattr(ax, f"get_{which}lim")()
    roles.match_limits([ax], which)
    assert getattr(ax, f"get_{which}lim")() == before
