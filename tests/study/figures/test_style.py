"""Shared styling (SPEC §11): every axis of every figure labelled and titled, units in the axis
labels, and the style helpers (canvas, fixed rcParams, the colour registry, role marks, print
sizes)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import style
from tests.study.figures.tables_builder import (
    CONFIG_HASH,
    RUN_ID,
    assert_print_ready,
    draw,
    drawn_colours,
)


def _is_not_available(ax) -> bool:
    return any("not available" in text.get_text() for text in ax.texts)


@pytest.mark.parametrize("roles", [("base", "instruct"), ("base",)], ids=["two_roles", "one_role"])
@pytest.mark.parametrize("figure_id", list(figures.FIGURE_FUNCTIONS))
def test_every_axis_is_labelled_and_titled(figure_id, roles):
    """Every top-row panel has a title (lower rows may leave it to column headers); x and y
    labels may be left to the bottom row and the first column (or the figure's supxlabel and
    supylabel) of a grid whose panels share the quantity."""
    figure = draw(figure_id, roles)
    assert figure.get_suptitle()
    assert figure.axes
    shared_x = figure._supxlabel is not None and figure._supxlabel.get_text()
    shared_y = figure._supylabel is not None and figure._supylabel.get_text()
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel(), f"{figure_id}: colorbar without a label"
            continue
        spec = ax.get_subplotspec()
        assert ax.get_title() or not spec.is_first_row(), f"{figure_id}: a top panel has no title"
        if _is_not_available(ax):
            continue
        assert ax.get_xlabel() or shared_x or not spec.is_last_row(), (
            f"{figure_id}: axes '{ax.get_title()}' in the bottom row has no x label"
        )
        assert ax.get_ylabel() or shared_y or not spec.is_first_col(), (
            f"{figure_id}: axes '{ax.get_title()}' in the first column has no y label"
        )
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
    assert "×" in figure.axes[-1].get_xlabel()
    assert "per occupied site" in figure._supylabel.get_text()
    assert "×, log scale" in draw("F02_RATE_MATCHING")._supylabel.get_text()
    assert "dimensionless" in draw("F05_GSTAR_SELECTION")._supylabel.get_text()


#: The figures of F01-F05, F09, F10 and the colour categories each may draw with (F01's
#: component colours are its own image colour map; its only lines are the box's black/white).
REGISTRY = {
    "F02_RATE_MATCHING": ("trained role", "untrained role", "reference line"),
    "F03_BRANCHING_VS_GAIN": ("metric", "reference line"),
    "F04_DELTA_B_VS_GAIN": ("metric", "reference line"),
    "F05_GSTAR_SELECTION": ("trained role", "untrained role", "reference line"),
    "F09_SUSCEPTIBILITY": ("trained role", "untrained role", "reference line"),
    "F10_NULL_COMPARISON": ("null model", "reference line"),
}


@pytest.mark.parametrize("roles", [("base", "instruct"), ("base",)], ids=["two_roles", "one_role"])
@pytest.mark.parametrize("figure_id", ["F01_RASTER", *REGISTRY])
def test_figures_are_print_ready(figure_id, roles):
    """3.5 or 7.2 in wide, at most 9.4 in tall, no visible text under 7 pt."""
    assert_print_ready(draw(figure_id, roles))


@pytest.mark.parametrize("figure_id", list(REGISTRY))
def test_figures_draw_only_their_registry_colours(figure_id):
    allowed = {
        mpl.colors.to_hex(colour)
        for category in REGISTRY[figure_id]
        for colour in style.COLOUR_CATEGORIES[category].values()
    }
    used = drawn_colours(draw(figure_id))
    assert used, figure_id
    assert used <= allowed, (
        f"{figure_id} draws {sorted(used - allowed)} outside {REGISTRY[figure_id]}"
    )


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


def test_role_marks_keep_colour_free_and_mark_the_untrained_roles():
    roles = ["base", "untrained", "instruct", "r3", "r4", "r5", "r6"]
    marks = style.role_marks(roles, untrained=["untrained"])
    assert all("color" not in mark for mark in marks.values())
    # trained roles: line styles in order, filled markers (no face colour of their own)
    assert marks["base"] == {"marker": "o", "linestyle": "-"}
    assert marks["instruct"] == {"marker": "^", "linestyle": "--"}
    assert marks["r3"] == {"marker": "D", "linestyle": "-."}
    # the fifth trained role wraps around to the first line style; markers follow the position
    assert marks["r5"] == {"marker": "P", "linestyle": "-"}
    assert marks["r6"] == {"marker": "o", "linestyle": "--"}
    # untrained: dotted and hollow, whatever its position (as in role_styles)
    assert marks["untrained"] == {"marker": "s", "linestyle": ":", "markerfacecolor": "white"}
    styles = style.role_styles(roles, untrained=["untrained"])
    assert {r: styles[r]["marker"] for r in roles} == {r: marks[r]["marker"] for r in roles}
    assert ":" not in [marks[r]["linestyle"] for r in roles if r != "untrained"]


def test_role_styles_colour_trained_roles_in_order_and_grey_the_untrained():
    styles = style.role_styles(["base", "untrained", "instruct"], untrained=["untrained"])
    assert styles["base"]["color"] == style.ROLE_COLOURS[0]
    assert styles["instruct"]["color"] == style.ROLE_COLOURS[1]  # second *trained* role
    assert styles["untrained"] == {
        "color": style.UNTRAINED_COLOUR,
        "marker": "s",
        "linestyle": ":",
        "markerfacecolor": "white",
        "markeredgecolor": style.UNTRAINED_COLOUR,
    }


def test_no_colour_has_two_meanings():
    """One meaning per colour: no hex value appears in two COLOUR_CATEGORIES entries, nor twice
    within one (two roles, two nulls or two metrics never share a colour)."""
    seen: dict[str, str] = {}
    for category, colours in style.COLOUR_CATEGORIES.items():
        for key, colour in colours.items():
            hex_colour = mpl.colors.to_hex(colour)
            assert hex_colour not in seen, (
                f"{hex_colour} means {seen.get(hex_colour)} and {category} {key}"
            )
            seen[hex_colour] = f"{category} {key}"
    assert style.KEY_COLOUR.lower() not in seen  # legend keys carry no colour meaning
    assert set(style.COLOUR_CATEGORIES) == {
        "metric",
        "trained role",
        "untrained role",
        "reference line",
        "null model",
    }


def test_figure_size_is_one_or_two_columns_and_capped():
    assert style.figure_size(1, 3.0) == (3.5, 3.0)
    assert style.figure_size(2, 12.0) == (7.2, 9.4)
    with pytest.raises(ValueError, match="1 or 2 columns"):
        style.figure_size(3, 3.0)


def test_not_available_panel_says_why_without_ticks():
    figure, axes = style._grid(1, 1, 3.5, 2.0)
    style.not_available(axes[0, 0], "T07 needs two roles", title="replication")
    ax = axes[0, 0]
    assert ax.get_title() == "replication"
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []
    (text,) = ax.texts
    assert text.get_text() == "not available\nT07 needs two roles"
    assert text.get_fontsize() >= style.MIN_FONT_PT


def test_styled_applies_the_fixed_style_and_restores_rcparams():
    seen = {}

    @style._styled
    def build():
        seen.update({k: mpl.rcParams[k] for k in ("font.size", "axes.grid", "savefig.dpi")})
        return style.new_figure(1.0, 1.0)

    with mpl.rc_context({"font.size": 20, "axes.grid": False}):
        assert isinstance(build(), Figure)
        assert seen == {"font.size": 7.5, "axes.grid": True, "savefig.dpi": 150}
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
