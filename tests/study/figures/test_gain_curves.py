"""The T01 figures over the gain grid: F03 branching, F04 against the permutation null, F05
the g* selection, F09 susceptibility, F10 the three nulls."""

from __future__ import annotations

import numpy as np

from avalanche_kedro.measure.sweep import NULL_TOKEN_SHUFFLE_INPUT
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import gain_curves
from tests.study.figures.tables_builder import RATES, SPIKES, draw, make_t01, provenance


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
    assert ax.get_title() == "SPIKE_ONE_SIDED_POS · target rate 0.001\ng*: base 0.8†, instruct 0.8†"
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


def test_f10_draws_each_null_with_its_own_colour():  # colour = null model (style.NULL_STYLES)
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


def test_t01_figures_are_double_column_with_rates_as_rows_and_spike_defs_as_columns():
    t01 = make_t01()
    for function in (
        gain_curves.f03_branching_vs_gain,
        gain_curves.f04_delta_b_vs_gain,
        gain_curves.f05_gstar_selection,
        gain_curves.f09_susceptibility,
        gain_curves.f10_null_comparison,
    ):
        figure = function(t01, provenance())
        assert tuple(figure.get_size_inches())[0] == 7.2
        assert figure.get_size_inches()[1] <= 9.4
        titles = [ax.get_title().split("\n")[0] for ax in figure.axes]
        assert titles == [
            f"{spike} · target rate {rate:g}" for rate in RATES for spike in SPIKES
        ], function.__name__
        # the panels of one target rate share one y range
        for row in range(len(RATES)):
            left, right = figure.axes[2 * row], figure.axes[2 * row + 1]
            assert left.get_ylim() == right.get_ylim()


def test_f03_tells_roles_apart_by_line_style_and_untrained_roles_are_hollow_and_dotted():
    roles = ("base", "instruct")
    prov = provenance(roles)
    prov["models"]["instruct"]["training_step"] = 0  # recorded at step 0: untrained
    figure = gain_curves.f03_branching_vs_gain(make_t01(roles), prov)
    ax = figure.axes[0]
    curves = [line for line in ax.lines if line.get_marker() in ("o", "s")]
    base = [line for line in curves if line.get_marker() == "o"]
    instruct = [line for line in curves if line.get_marker() == "s"]
    assert [line.get_linestyle() for line in base] == ["-"] * 3
    assert [line.get_linestyle() for line in instruct] == [":"] * 3
    assert {line.get_markerfacecolor() for line in instruct} == {"white"}
    # colour is the metric, for both roles
    assert [line.get_color() for line in instruct] == list(figures.METRIC_COLOURS.values())
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "instruct (tiny-instruct), untrained" in labels


def test_a_panel_without_values_is_not_available():
    t01 = make_t01(("base",))
    gone = (t01.target_rate == RATES[0]) & (t01.spike_def_id == SPIKES[1])
    t01.loc[gone, ["b_time", "b_depth", "b_tot", "chi"]] = np.nan
    for function in (
        gain_curves.f03_branching_vs_gain,
        gain_curves.f05_gstar_selection,
        gain_curves.f09_susceptibility,
    ):
        figure = function(t01, provenance(("base",)))
        empty, full = figure.axes[1], figure.axes[0]
        assert empty.get_title().startswith(f"{SPIKES[1]} · target rate {RATES[0]:g}")
        assert "not available" in empty.texts[0].get_text()
        assert not empty.lines and not empty.collections
        assert full.lines and not full.texts


def test_f10_names_a_null_the_table_did_not_record():
    t01 = make_t01(("base",)).drop(
        columns=[c for c in make_t01(("base",)).columns if c.startswith("opt_delta_b_tot_tokshuf")]
    )
    figure = gain_curves.f10_null_comparison(t01, provenance(("base",)))
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert f"input token shuffle ({NULL_TOKEN_SHUFFLE_INPUT}) - not recorded" in labels
    tokshuf = figures.NULL_COLOURS["tokshuf"]
    assert all(line.get_color() != tokshuf for ax in figure.axes for line in ax.lines)
    # only the permutation null recorded, and not in one panel: that panel is not available
    t01 = t01.drop(columns=[c for c in t01.columns if c.startswith("opt_delta_b_tot_shift")])
    t01.loc[t01.target_rate == RATES[-1], "delta_b_tot"] = np.nan
    figure = gain_curves.f10_null_comparison(t01, provenance(("base",)))
    assert "not available" in figure.axes[-1].texts[0].get_text()
    assert figure.axes[0].lines
