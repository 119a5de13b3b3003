"""The T01 figures over the gain grid: F03 branching, F04 against the permutation null, F05
the g* selection, F09 susceptibility, F10 the three nulls."""

from __future__ import annotations

import numpy as np

from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import gain_curves
from tests.study.figures.tables_builder import draw, make_t01, provenance


def test_f04_says_the_null_preserves_the_marginals():
    figure = draw("F04_DELTA_B_VS_GAIN")
    text = " ".join(legend.get_title().get_text() for legend in figure.legends)
    assert "preserved exactly" in text.replace("\n", " ")
    assert "(window, layer)" in text
    assert (
        "preserves every (window, layer) marginal exactly"
        in figures.figure_metadata(figure)["condition"]
    )


def test_distance_interval_is_the_image_of_the_ci_under_abs_b_minus_1():
    low, high = gain_curves._distance_interval(
        np.array([0.8, 1.1, 0.5, 1.0]), np.array([1.2, 1.3, 0.9, 1.0])
    )
    np.testing.assert_allclose(low, [0.0, 0.1, 0.1, 0.0])  # CI containing 1 starts at 0
    np.testing.assert_allclose(high, [0.2, 0.3, 0.5, 0.0])


def test_f03_plots_the_three_branching_ratios_of_each_role():
    t01 = make_t01(("base",))
    figure = gain_curves.f03_branching_vs_gain(t01, provenance(("base",)))
    ax = figure.axes[0]  # first target rate (row), first spike definition (column)
    assert ax.get_title() == "SPIKE_ONE_SIDED_POS · target rate 0.001"
    rows = t01[(t01.spike_def_id == "SPIKE_ONE_SIDED_POS") & (t01.target_rate == 0.001)]
    curves = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(curves) == 3  # b_time, b_depth, b_tot
    for line, metric in zip(curves, ("b_time", "b_depth", "b_tot"), strict=True):
        np.testing.assert_allclose(line.get_xdata(), rows.g)
        np.testing.assert_allclose(line.get_ydata(), rows[metric])
    assert len(ax.collections) == 3  # one CI band per metric


def test_f05_stars_the_gstar_of_each_role_and_flags_a_grid_edge():
    t01 = make_t01()
    figure = gain_curves.f05_gstar_selection(t01, provenance())
    ax = figure.axes[0]
    # at rate 0.001 both roles pick g* = 0.8, the smallest gain of the grid
    assert ax.get_title() == (
        "SPIKE_ONE_SIDED_POS · target rate 0.001\ng*: base 0.8 (grid edge), instruct 0.8 (grid edge)"
    )
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(stars) == 2
    for star, role in zip(stars, ("base", "instruct"), strict=True):
        row = t01[
            (t01.model_role == role)
            & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
            & (t01.target_rate == 0.001)
            & t01.opt_is_gstar
        ]
        assert list(star.get_xdata()) == [0.8]
        np.testing.assert_allclose(star.get_ydata(), abs(row.b_tot.iloc[0] - 1.0))
    assert ax.get_ylim()[0] == 0


def test_f10_draws_each_null_with_its_own_colour():
    figure = gain_curves.f10_null_comparison(make_t01(("base",)), provenance(("base",)))
    ax = figure.axes[0]
    colours = [line.get_color() for line in ax.lines if line.get_linestyle() == "-"]
    perm, shift, tokshuf = (style[3] for style in figures.NULL_STYLES.values())
    assert colours == [perm, shift]  # the raster nulls, recorded at every gain: lines
    # the token-shuffle null is recorded at g = 1 and g* only (here g* = 0.8): two points with
    # their CI bars, no line through the gap at g = 1.25
    points = [line for line in ax.lines if line.get_color() == tokshuf and line.get_marker() == "o"]
    assert len(points) == 1 and points[0].get_linestyle() == "None"
    assert list(points[0].get_xdata()) == [0.8, 1.0]
    caps = [line for line in ax.lines if line.get_color() == tokshuf and line.get_marker() == "_"]
    assert len(caps) == 2  # the lower and upper CI caps
