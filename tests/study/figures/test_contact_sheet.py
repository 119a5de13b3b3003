"""The contact sheet: one tile per figure with its id under it, 7.2 in wide, from thumbnails
that leave the figures they were taken from untouched."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pytest
from PIL import Image

from avalanche_kedro.framework.datasets import render_figure
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import contact_sheet
from tests.study.figures.tables_builder import (
    RUN_ID,
    assert_print_ready,
    draw,
    make_rasters,
    make_t01,
    provenance,
)


def _tiny_figure(value: float):
    figure = figures.new_figure(3.5, 2.0)
    figure.add_subplot().plot([0.0, 1.0], [0.0, value])
    return figure


def test_a_thumbnail_is_a_png_at_the_thumbnail_resolution():
    png = contact_sheet.thumbnail(_tiny_figure(1.0))
    image = mpimg.imread(io.BytesIO(png), format="png")
    # 3.5 x 2.0 in at 40 dpi
    assert image.shape[:2] == (80, 140)
    assert contact_sheet.thumbnail(_tiny_figure(1.0)) == png  # deterministic


def test_taking_a_thumbnail_does_not_change_the_saved_figure():
    """The thumbnail is drawn from a copy: F01 (a colour bar in constrained layout) saves the
    same bytes whether or not a thumbnail was taken first."""
    untouched = render_figure(draw("F01_RASTER"), "png", {"dpi": 60})
    figure = draw("F01_RASTER")
    contact_sheet.thumbnail(figure)
    assert render_figure(figure, "png", {"dpi": 60}) == untouched


@pytest.mark.parametrize("n_tiles", [1, 7])
def test_the_sheet_has_one_labelled_tile_per_figure(n_tiles):
    tiles = {f"F{k:02d}_X": _tiny_figure(k) for k in range(1, n_tiles + 1)}
    tiles["F02_X"] = contact_sheet.thumbnail(tiles.get("F02_X", _tiny_figure(2.0)))  # bytes too
    sheet = contact_sheet.make_contact_sheet(tiles, provenance())
    assert sheet.get_size_inches()[0] == 7.2
    assert [ax.get_xlabel() for ax in sheet.axes] == list(tiles)
    assert all(len(ax.images) == 1 for ax in sheet.axes)
    # 5 tiles per row at most; the unused cells of the last row are removed, not left blank
    n_cols = min(len(tiles), contact_sheet.MAX_COLUMNS)
    rows = {ax.get_subplotspec().rowspan.start for ax in sheet.axes}
    assert len(rows) == -(-len(tiles) // n_cols)
    assert_print_ready(sheet)
    metadata = figures.figure_metadata(sheet)
    assert metadata["figure_id"] == "CONTACT_SHEET"
    assert metadata["run_id"] == RUN_ID
    assert metadata["condition"] == "figures=" + ",".join(tiles)
    assert RUN_ID in sheet.get_suptitle()


def test_a_tile_shows_the_thumbnail_it_was_given():
    png = contact_sheet.thumbnail(figures.f01_raster(make_t01(), make_rasters(), provenance()))
    sheet = contact_sheet.make_contact_sheet({"F01_RASTER": png}, provenance())
    shown = np.asarray(sheet.axes[0].images[0].get_array())
    # a 40-dpi thumbnail of a 7.2-in figure is already THUMBNAIL_WIDTH_PX wide: shown as is
    with Image.open(io.BytesIO(png)) as image:
        assert image.width == contact_sheet.THUMBNAIL_WIDTH_PX == 288
        np.testing.assert_array_equal(shown, np.asarray(image.convert("RGBA")))


def test_a_saved_figure_is_shrunk_to_a_thumbnail_before_it_is_laid_out():
    """In the pipeline the tiles are the saved 150-dpi PNGs (FigureDataset.load)."""
    figure = figures.f01_raster(make_t01(), make_rasters(), provenance())
    png = render_figure(figure, "png", {"dpi": 150})
    with Image.open(io.BytesIO(png)) as image:
        assert image.width == 1080
        aspect = image.height / image.width
    sheet = contact_sheet.make_contact_sheet({"F01_RASTER": png}, provenance())
    shown = np.asarray(sheet.axes[0].images[0].get_array())
    assert shown.shape[1] == contact_sheet.THUMBNAIL_WIDTH_PX
    assert shown.shape[0] == round(contact_sheet.THUMBNAIL_WIDTH_PX * aspect)
    assert shown.dtype == np.uint8 and shown[..., :3].min() < 100  # drawn, not blank
