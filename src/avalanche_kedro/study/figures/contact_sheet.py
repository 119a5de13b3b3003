"""The contact sheet: every figure of a run as a thumbnail with its id under it, on one page.

:func:`make_contact_sheet` lays the figures out in a grid 7.2 in wide, so a reviewer sees every
figure of the run (and any "not available" panel) at a glance. In the pipeline the tiles are the
saved PNGs (FigureDataset loads a figure as its PNG bytes), shrunk to :data:`THUMBNAIL_WIDTH_PX`:
the sheet shows what was written, not a second drawing from the tables. A Figure given directly
is rendered small first (:func:`thumbnail`: PNG bytes at :data:`THUMBNAIL_DPI`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from copy import deepcopy
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from .metadata import CONTACT_SHEET, _attach
from .style import DOUBLE_COLUMN_IN, _grid, _styled, figure_size

#: Resolution of a thumbnail (dots per inch): a 7.2-in figure becomes 288 px wide, a little
#: more than a tile of the sheet at 150 dpi (≈ 216 px), so tiles are downsampled, never
#: enlarged.
THUMBNAIL_DPI = 40
#: Width (pixels) a saved figure is shrunk to before it is laid out: the width of a 7.2-in
#: figure's thumbnail, so a tile of a 150-dpi PNG looks the same as one of a thumbnail.
THUMBNAIL_WIDTH_PX = round(DOUBLE_COLUMN_IN * THUMBNAIL_DPI)
#: Tiles per row of the sheet.
MAX_COLUMNS = 5
#: Height (inches) under each tile for its id, and above the grid for the title.
LABEL_HEIGHT_IN = 0.22
TITLE_HEIGHT_IN = 0.45


def thumbnail(figure: Figure, dpi: float = THUMBNAIL_DPI) -> bytes:
    """PNG bytes of ``figure`` at ``dpi`` (no file metadata, so the bytes depend on the
    drawing only).

    A copy is drawn, never ``figure`` itself: constrained layout is not idempotent for every
    figure (a figure with a colour bar lands a fraction of a pixel elsewhere on its second
    draw), so drawing the original would make the saved PNG/PDF depend on whether a thumbnail
    was taken first."""
    copy = deepcopy(figure)  # drops the canvas like a pickle; functions (formatters) are shared
    buffer = io.BytesIO()
    copy.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _image(tile: Figure | bytes | np.ndarray) -> np.ndarray:
    """An RGB(A) array of a tile given as a Figure, PNG bytes or an image array; PNGs wider
    than :data:`THUMBNAIL_WIDTH_PX` are shrunk to it first (Lanczos), which keeps the sheet's
    memory small (a 150-dpi figure decodes to ~1080 px) and its tiles sharp."""
    if isinstance(tile, Figure):
        tile = thumbnail(tile)
    if isinstance(tile, bytes | bytearray):
        with Image.open(io.BytesIO(tile)) as image:
            image = image.convert("RGBA")
            if image.width > THUMBNAIL_WIDTH_PX:
                height = max(1, round(image.height * THUMBNAIL_WIDTH_PX / image.width))
                image = image.resize((THUMBNAIL_WIDTH_PX, height), Image.Resampling.LANCZOS)
            return np.asarray(image)
    return np.asarray(tile)


def sheet_columns(n_tiles: int) -> int:
    """Tiles per row: all of them up to :data:`MAX_COLUMNS`."""
    return max(1, min(n_tiles, MAX_COLUMNS))


@_styled
def make_contact_sheet(
    tiles: Mapping[str, Figure | bytes | np.ndarray],
    provenance: Mapping[str, Any],
) -> Figure:
    """One page, 7.2 in wide, with one tile per entry of ``tiles`` (figure id -> Figure, PNG
    bytes or image array) in the given order, :func:`sheet_columns` per row, the id under
    each tile. The sheet carries the run's provenance (``provenance`` = ``run_provenance``)."""
    labels = list(tiles)
    images = [_image(tiles[label]) for label in labels]
    n_cols = sheet_columns(len(images))
    n_rows = max(1, math.ceil(len(images) / n_cols))
    tile_width = DOUBLE_COLUMN_IN / n_cols
    tallest = max((im.shape[0] / im.shape[1] for im in images), default=1.0)
    width, height = figure_size(
        2, n_rows * (tile_width * tallest + LABEL_HEIGHT_IN) + TITLE_HEIGHT_IN
    )
    figure, axes = _grid(n_rows, n_cols, width, height)
    for k, ax in enumerate(axes.flat):
        if k >= len(images):
            ax.remove()  # the unused cells of the last row
            continue
        # antialiased: the thumbnails are downsampled to the tile (the style's "nearest"
        # would drop whole lines of text and axes)
        ax.imshow(images[k], interpolation="antialiased")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_edgecolor("0.8")
        ax.set_xlabel(labels[k], labelpad=2)
    roles = list((provenance or {}).get("roles", []))
    run_id = (provenance or {}).get("run_id", "?")
    figure.suptitle(f"Contact sheet · the {len(images)} figures of run {run_id}")
    return _attach(
        figure,
        CONTACT_SHEET,
        "figures=" + ",".join(labels),
        provenance,
        [],
        roles,
        labels,
    )
