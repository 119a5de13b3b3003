"""Shared styling (SPEC §11): every axis of every figure labelled and titled, units in the axis
labels, and the style helpers (canvas, fixed rcParams, role line styles, rate colours)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import style
from tests.study.figures.tables_builder import CONFIG_HASH, RUN_ID, draw


@pytest.mark.parametrize("roles", [("base", "instruct"), ("base",)], ids=["two_roles", "one_role"])
@pytest.mark.parametrize("figure_id", list(figures.FIGURE_FUNCTIONS))
def test_every_axis_is_labelled_and_titled(figure_id, roles):
    figure = draw(figure_id, roles)
    assert figure.get_suptitle()
    assert figure.axes
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel(), f"{figure_id}: colorbar without a label"
            continue
        assert ax.get_xlabel(), f"{figure_id}: axes '{ax.get_title()}' has no x label"
        assert ax.get_ylabel(), f"{figure_id}: axes '{ax.get_title()}' has no y label"
        assert ax.get_title(), f"{figure_id}: an axes has no title"
        assert ax.has_data(), f"{figure_id}: axes '{ax.get_title()}' is empty"
    metadata = figures.figure_metadata(figure)
    assert metadata["figure_id"] == figure_id
    assert metadata["run_id"] == RUN_ID
    assert metadata["config_hash"] == CONFIG_HASH
    assert metadata["condition"]
    if figure_id == "F12_TRAINING_TRAJECTORY":  # drawn for its own series of roles
        assert "step200:tiny@step200" in metadata["model_ids"]
        return
    assert "tiny-base" in metadata["model_ids"]
    assert ("tiny-instruct" in metadata["model_ids"]) == (
        len(roles) == 2 and figure_id != "F01_RASTER"
    )


def test_units_in_axis_labels():
    figure = draw("F03_BRANCHING_VS_GAIN")
    ax = figure.axes[0]
    assert "×" in ax.get_xlabel() and "per occupied site" in ax.get_ylabel()
    assert "events per unit per token" in draw("F02_RATE_MATCHING").axes[0].get_ylabel()
    assert "dimensionless" in draw("F05_GSTAR_SELECTION").axes[0].get_ylabel()


def test_new_figure_is_an_agg_canvas_with_constrained_layout():
    figure = style.new_figure(4.0, 3.0)
    assert isinstance(figure, Figure)
    assert isinstance(figure.canvas, FigureCanvasAgg)
    assert isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine)
    assert tuple(figure.get_size_inches()) == (4.0, 3.0)
    assert figure.axes == []


def test_grid_always_gives_a_2d_array_of_axes():
    figure, axes = style._grid(0, 3, 6.0, 2.0)
    assert axes.shape == (1, 3)  # an empty row count still gives one row
    assert len(figure.axes) == 3
    _, axes = style._grid(2, 1, 6.0, 2.0)
    assert axes.shape == (2, 1)


def test_role_style_cycles_line_styles_and_markers():
    roles = ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    assert style._role_style(roles, "r0") == {"linestyle": "-", "marker": "o"}
    assert style._role_style(roles, "r1") == {"linestyle": "--", "marker": "s"}
    # four line styles, six markers: role 4 reuses the first line style with the fifth marker
    assert style._role_style(roles, "r4") == {"linestyle": "-", "marker": "v"}
    assert style._role_style(roles, "r6") == {"linestyle": ":", "marker": "o"}
    with pytest.raises(ValueError):
        style._role_style(roles, "unknown")


def test_role_handles_name_each_role_and_its_model():
    handles = style._role_handles(["base", "instruct"], {"base": "tiny-base"})
    assert [h.get_label() for h in handles] == ["base (tiny-base)", "instruct (?)"]
    assert [h.get_linestyle() for h in handles] == ["-", "--"]
    assert [h.get_marker() for h in handles] == ["o", "s"]


def test_rate_colours_run_along_viridis_from_0_to_0_85():
    viridis = mpl.colormaps["viridis"]
    colours = style._rate_colours([0.001, 0.002, 0.004])
    assert list(colours) == [0.001, 0.002, 0.004]
    np.testing.assert_allclose(colours[0.001], viridis(0.0))
    np.testing.assert_allclose(colours[0.002], viridis(0.425))
    np.testing.assert_allclose(colours[0.004], viridis(0.85))
    np.testing.assert_allclose(style._rate_colours([0.5])[0.5], viridis(0.0))


def test_styled_applies_the_fixed_style_and_restores_rcparams():
    seen = {}

    @style._styled
    def build():
        seen.update({k: mpl.rcParams[k] for k in ("font.size", "axes.grid", "savefig.dpi")})
        return style.new_figure(1.0, 1.0)

    with mpl.rc_context({"font.size": 20, "axes.grid": False}):
        assert isinstance(build(), Figure)
        assert seen == {"font.size": 9, "axes.grid": True, "savefig.dpi": 150}
        assert mpl.rcParams["font.size"] == 20 and mpl.rcParams["axes.grid"] is False
    assert build.__name__ == "build"


def test_band_is_drawn_only_where_the_interval_is_finite():
    figure, axes = style._grid(1, 1, 2.0, 2.0)
    ax = axes[0, 0]
    nan = np.full(3, np.nan)
    style._band(ax, [0.0, 1.0, 2.0], nan, nan, "red")
    assert len(ax.collections) == 0
    style._band(ax, [0.0, 1.0, 2.0], np.array([0.0, np.nan, 1.0]), np.array([1.0, 2.0, 3.0]), "red")
    assert len(ax.collections) == 1
    assert ax.collections[0].get_alpha() == pytest.approx(0.15)


def test_component_palette_has_no_greys():
    palette = style.COMPONENT_PALETTE
    assert palette.shape == (18, 4)  # tab20 without its two greys
    assert not any(np.allclose(c[0], c[1]) and np.allclose(c[1], c[2]) for c in palette)
    assert len({tuple(c) for c in palette}) == 18
    np.testing.assert_array_equal(style.EMPTY_SITE_RGBA, [1.0, 1.0, 1.0, 1.0])


def test_wrap_breaks_long_captions_at_the_width():
    text = " ".join(["word"] * 40)
    wrapped = style._wrap(text, width=30)
    assert all(len(line) <= 30 for line in wrapped.splitlines())
    assert wrapped.replace("\n", " ") == text
    assert style._wrap("short") == "short"


def test_a_long_title_is_wrapped_inside_the_figure():
    from avalanche_kedro.study.figures.style import TITLE_CHARS_PER_INCH, _styled, new_figure

    long = "F03 branching · " + ", ".join(f"role{i} = tiny-llama-stdlib@step-{i}" for i in range(6))

    @_styled
    def draw():
        figure = new_figure(6.0, 3.0)
        figure.add_subplot().plot([0, 1])
        figure.suptitle(long)
        return figure

    figure = draw()
    text = figure._suptitle.get_text()
    assert text.replace("\n", " ") == long
    assert max(len(line) for line in text.split("\n")) <= 6 * TITLE_CHARS_PER_INCH
    figure.canvas.draw()
    box = figure._suptitle.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= figure.bbox.x1  # nothing cut at the edges
