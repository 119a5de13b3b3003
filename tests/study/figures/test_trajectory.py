"""F12: the training trajectory against the step, drawn from a synthetic T09."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import trajectory as f12
from tests.study.trajectory_builder import RUN_ID, make_t09, provenance


def test_step_zero_sits_one_decade_left_of_the_first_step_behind_a_divider():
    positions, divider = f12.step_positions([200, 0, 14, 14])
    assert positions[14] == pytest.approx(np.log10(14))
    assert positions[200] == pytest.approx(np.log10(200))
    assert positions[0] == pytest.approx(np.log10(14) - f12.STEP0_GAP_DECADES)
    assert positions[0] < divider < positions[14]
    without_zero, none = f12.step_positions([1, 10])
    assert none is None and without_zero == {1: 0.0, 10: 1.0}


def test_f12_draws_every_panel_at_gain_one_with_the_run_provenance():
    t09 = make_t09()
    figure = f12.f12_training_trajectory(t09, provenance())
    axes = figure.get_axes()
    assert len(axes) == 9
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("b_tot") and "ARC accuracy" in titles[-1]
    # one error-bar series per (spike def, rate) in the b_tot panel, plotted at the step axis
    b_panel = axes[0]
    lines = [container.lines[0] for container in b_panel.containers]
    assert len(lines) == 4 and all(len(line.get_xdata()) == 3 for line in lines)
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
    metadata = figures.figure_metadata(figure)
    assert metadata["figure_id"] == "F12_TRAINING_TRAJECTORY"
    assert metadata["run_id"] == RUN_ID
    assert "step200:tiny@step200" in metadata["model_ids"]
    assert "g_condition=g1" in metadata["condition"]


def test_f12_refuses_a_table_without_its_columns():
    with pytest.raises(ArtifactError, match="ppl_B"):
        f12.f12_training_trajectory(make_t09().drop(columns=["ppl_B"]), provenance())
