"""F01: the event raster of one window at g*, its avalanches coloured by component."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.analysis.lattice import label_components
from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import raster
from tests.study.figures.tables_builder import (
    RATES,
    N,
    g_star_of,
    make_rasters,
    make_t01,
    provenance,
)


def _expected_component_colours(window_labels: np.ndarray) -> np.ndarray:
    """Independent of figures.component_colours: rank labels by their first site."""
    expected = np.ones((*window_labels.shape, 4))
    rank: dict[int, int] = {}
    for (l_index, t_index), label in np.ndenumerate(window_labels):
        if label == 0:
            continue
        rank.setdefault(int(label), len(rank))
        palette = figures.COMPONENT_PALETTE
        expected[l_index, t_index] = palette[rank[int(label)] % len(palette)]
    return expected


def test_f01_colours_are_the_components_of_label_components():
    t01, rasters = make_t01(), make_rasters()
    figure = raster.f01_raster(t01, rasters, provenance(), seq_index=2)
    # default: base role, one-sided, the middle rate, its g*
    rate = sorted(RATES)[len(RATES) // 2]
    g_star = g_star_of(t01, "base", "SPIKE_ONE_SIDED_POS", rate)
    row = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == rate)
        & (t01.g == g_star)
    ]
    counts = rasters.counts(int(row.opt_cond_id.iloc[0]))
    labels, _ = label_components(counts, "ADJ_4N")
    counts_ax, components_ax = (ax for ax in figure.axes if ax.get_label() != "<colorbar>")
    shown = np.asarray(components_ax.images[0].get_array())
    np.testing.assert_array_equal(shown, _expected_component_colours(labels[2]))
    # sites of one component share a colour; empty sites are white
    for label in np.unique(labels[2][labels[2] > 0]):
        assert len(np.unique(shown[labels[2] == label], axis=0)) == 1
    assert (shown[labels[2] == 0] == 1.0).all()
    np.testing.assert_array_equal(
        np.ma.filled(counts_ax.images[0].get_array(), 0), counts[2].astype(float)
    )
    metadata = figures.figure_metadata(figure)
    assert f"seq_id={int(rasters.seq_id[2])}" in metadata["condition"]
    assert f"g={g_star:g} (g*)" in metadata["condition"]


def test_f01_default_window_is_the_median_total():
    rasters = make_rasters()
    figure = raster.f01_raster(make_t01(), rasters, provenance())
    condition = figures.figure_metadata(figure)["condition"]
    seq_index = int(condition.split("seq_index=")[1].split(";")[0])
    t01 = make_t01()
    rate = sorted(RATES)[len(RATES) // 2]
    row = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == rate)
        & t01.opt_is_gstar
    ]
    totals = rasters.counts(int(row.opt_cond_id.iloc[0])).reshape(N, -1).sum(axis=1)
    assert seq_index == int(np.argsort(totals, kind="stable")[(N - 1) // 2])


def test_component_colours_number_labels_in_scan_order():
    palette = raster.COMPONENT_PALETTE
    labels = np.array([[0, 5, 5], [2, 0, 5]])  # label 5 is met first (layer 0), then label 2
    image = raster.component_colours(labels)
    assert image.shape == (2, 3, 4)
    for site in [(0, 1), (0, 2), (1, 2)]:
        np.testing.assert_array_equal(image[site], palette[0])
    np.testing.assert_array_equal(image[1, 0], palette[1])
    for site in [(0, 0), (1, 1)]:
        np.testing.assert_array_equal(image[site], [1.0, 1.0, 1.0, 1.0])
    blank = raster.component_colours(np.zeros((2, 2), dtype=int))
    assert (blank == 1.0).all()


def test_component_colours_wrap_around_the_palette():
    n = len(raster.COMPONENT_PALETTE) + 1
    labels = np.arange(1, n + 1).reshape(1, n)  # one site per component
    image = raster.component_colours(labels)
    np.testing.assert_array_equal(image[0, n - 1], raster.COMPONENT_PALETTE[0])
    np.testing.assert_array_equal(image[0, n - 2], raster.COMPONENT_PALETTE[-1])


def test_middle_is_the_upper_middle_for_an_even_count():
    assert raster._middle([0.004, 0.001, 0.002]) == 0.002
    assert raster._middle([4.0, 1.0, 3.0, 2.0]) == 3.0


def test_f01_refuses_a_role_or_rate_the_run_did_not_measure():
    t01 = make_t01()
    with pytest.raises(ArtifactError, match="no rows for role 'missing'"):
        raster.f01_raster(t01, make_rasters(), provenance(), role="missing")
    with pytest.raises(ArtifactError, match="no rows for base / SPIKE_ONE_SIDED_POS at target"):
        raster.f01_raster(t01, make_rasters(), provenance(), target_rate=0.5)
    doubled = t01.assign(opt_is_gstar=True)
    with pytest.raises(ArtifactError, match="marks 3 g\\* rows"):
        raster.f01_raster(doubled, make_rasters(), provenance())


def test_f01_without_a_gstar_shows_not_available_panels():
    t01 = make_t01().assign(opt_is_gstar=False)
    figure = raster.f01_raster(t01, make_rasters(), provenance())
    assert len(figure.axes) == 2
    for ax in figure.axes:
        assert not ax.images
        assert "not available" in ax.texts[0].get_text()
        assert "T01 marks no g*" in ax.texts[0].get_text()
    assert "g=none (no g* marked)" in figures.figure_metadata(figure)["condition"]


def test_f01_boxes_the_largest_avalanche_in_black_and_white_and_names_it():
    t01, rasters = make_t01(), make_rasters()
    figure = raster.f01_raster(t01, rasters, provenance(), seq_index=2)
    assert tuple(figure.get_size_inches()) == (7.2, 3.9)
    _, components_ax = (ax for ax in figure.axes if ax.get_label() != "<colorbar>")
    outer, inner = components_ax.patches
    assert (outer.get_edgecolor(), inner.get_edgecolor()) == ((0, 0, 0, 1), (1, 1, 1, 1))
    assert outer.get_linewidth() > inner.get_linewidth() >= 1.0
    assert outer.get_bbox().bounds == inner.get_bbox().bounds
    assert not outer.get_clip_on()  # a box on the panel edge keeps its whole outline
    # the box is the bounding box of the component with the most events
    rate = sorted(RATES)[len(RATES) // 2]
    g_star = g_star_of(t01, "base", "SPIKE_ONE_SIDED_POS", rate)
    row = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == rate)
        & (t01.g == g_star)
    ]
    counts = rasters.counts(int(row.opt_cond_id.iloc[0]))[2]
    labels, _ = label_components(counts[None], "ADJ_4N")
    ids = [i for i in np.unique(labels[0]) if i > 0]
    sizes = [counts[labels[0] == i].sum() for i in ids]
    layers, tokens = np.nonzero(labels[0] == ids[int(np.argmax(sizes))])
    assert outer.get_bbox().bounds == (
        tokens.min() - 0.5,
        layers.min() - 0.5,
        tokens.max() - tokens.min() + 1,
        layers.max() - layers.min() + 1,
    )
    (legend,) = figure.legends
    (label,) = [t.get_text() for t in legend.get_texts()]
    assert label.startswith(f"box: bounding box of the largest avalanche: S = {max(sizes)} events")
