"""Kedro datasets of :mod:`avalanche_kedro.framework.datasets` (the ARC HubDataset on the project's
file is tested in tests/integration/test_arc_embedded_file.py).

FigureDataset: PNG and PDF written with the figure's provenance in their metadata, byte-identical
output, nothing written when a figure has no provenance or one format fails to render.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from kedro.io.core import DatasetError, Version
from matplotlib.artist import Artist
from PIL import Image

from avalanche_kedro.framework.datasets import FigureDataset, render_figure
from avalanche_kedro.study import figures
from tests.conftest import PROJECT_ROOT
from tests.study.figures.tables_builder import (  # noqa: F401 (no_pyplot_figures: a fixture)
    CONFIG_HASH,
    RUN_ID,
    draw,
    no_pyplot_figures,
    saved_files,
)

# ---- FigureDataset ------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_pyplot_figures")
def test_output_is_deterministic():
    for fmt in ("png", "pdf"):
        first = render_figure(draw("F05_GSTAR_SELECTION"), fmt, {"dpi": 50})
        second = render_figure(draw("F05_GSTAR_SELECTION"), fmt, {"dpi": 50})
        assert first == second, fmt


@pytest.mark.usefixtures("no_pyplot_figures")
def test_dataset_writes_png_and_pdf_with_provenance(tmp_path):
    dataset = FigureDataset(
        filepath=str(tmp_path / "figures" / "F09"),
        save_args={"dpi": 40},
        version=Version(None, "v1"),
    )
    figure = draw("F09_SUSCEPTIBILITY")
    dataset.save(figure)
    folder = tmp_path / "figures" / "F09" / "v1" / "F09"
    assert [p.name for p in saved_files(tmp_path)] == ["F09.pdf", "F09.png"]
    assert dataset.exists()

    text = Image.open(folder / "F09.png").text
    for key in ("Title", "Subject", "Keywords", "Creator", *figures.REQUIRED_METADATA):
        assert text.get(key), key
    assert text["run_id"] == RUN_ID and text["config_hash"] == CONFIG_HASH
    assert "base:tiny-base" in text["model_ids"] and "dataset_role=A" in text["condition"]

    pdf = (folder / "F09.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    for key in ("Title", "Subject", "Keywords", "Creator", "figure_id", "model_ids", "condition"):
        assert f"/{key} (".encode() in pdf, key
    assert f"/run_id ({RUN_ID})".encode() in pdf
    assert f"/config_hash ({CONFIG_HASH})".encode() in pdf
    assert b"/CreationDate" not in pdf  # reproducible

    # a second version of the same figure is byte-identical
    FigureDataset(
        filepath=str(tmp_path / "figures" / "F09"),
        save_args={"dpi": 40},
        version=Version(None, "v2"),
    ).save(draw("F09_SUSCEPTIBILITY"))
    for name in ("F09.png", "F09.pdf"):
        again = tmp_path / "figures" / "F09" / "v2" / "F09" / name
        assert again.read_bytes() == (folder / name).read_bytes()


@pytest.mark.usefixtures("no_pyplot_figures")
def test_dataset_refuses_a_figure_without_provenance(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([1, 2])
    dataset = FigureDataset(filepath=str(tmp_path / "plain"), version=Version(None, "v1"))
    with pytest.raises(DatasetError, match="provenance"):
        dataset.save(figure)
    assert saved_files(tmp_path) == []
    with pytest.raises(DatasetError):  # nothing was written, so there is nothing to load
        dataset.load()


@pytest.mark.usefixtures("no_pyplot_figures")
def test_loading_a_figure_gives_its_saved_png(tmp_path):
    """The contact sheet is laid out from what was written: load = the PNG file's bytes."""
    dataset = FigureDataset(
        filepath=str(tmp_path / "F05"), save_args={"dpi": 30}, version=Version(None, "v1")
    )
    dataset.save(draw("F05_GSTAR_SELECTION"))
    png = dataset.load()
    assert png == (tmp_path / "F05" / "v1" / "F05" / "F05.png").read_bytes()
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).text["figure_id"]
    pdf_only = FigureDataset(
        filepath=str(tmp_path / "F05"), formats=["pdf"], version=Version("v1", None)
    )
    with pytest.raises(DatasetError, match="Add png to its 'formats'"):
        pdf_only.load()


class _FailsInPdf(Artist):
    """Draws nothing in PNG and raises in PDF: the PNG is rendered before the failure."""

    def draw(self, renderer):
        from matplotlib.backends.backend_agg import RendererAgg

        if not isinstance(renderer, RendererAgg):  # the PDF backend's (mixed-mode) renderer
            raise RuntimeError("cannot draw this in PDF")


@pytest.mark.usefixtures("no_pyplot_figures")
def test_nothing_is_written_when_one_format_fails(tmp_path):
    figure = draw("F07_ARC_ACCURACY")
    figure.add_artist(_FailsInPdf())
    dataset = FigureDataset(filepath=str(tmp_path / "F07"), version=Version(None, "v1"))
    with pytest.raises(Exception, match="cannot draw this in PDF"):
        dataset.save(figure)
    assert saved_files(tmp_path) == []


# ---- PythonTextCorpus -----------------------------------------------------------------------


def test_python_corpus_is_re_iterable_and_read_only():
    from avalanche_kedro.core.errors import ConfigurationError
    from avalanche_kedro.framework.datasets import PythonTextCorpus
    from avalanche_kedro.measure.corpora import pydoc_topics

    corpus = PythonTextCorpus(source="pydoc_topics")
    records = corpus.load()
    assert list(records) == pydoc_topics() and list(records) == pydoc_topics()  # twice
    with pytest.raises(DatasetError, match="read-only"):
        corpus.save(["x"])
    with pytest.raises(ConfigurationError, match="Unknown Python corpus source 'pydoc'"):
        PythonTextCorpus(source="pydoc")


# ---- EventRasterDataset ---------------------------------------------------------------------


def _rasters():
    import numpy as np

    from avalanche_kedro.measure.rasters import EventRasters

    A = np.arange(2 * 3 * 2 * 4, dtype=np.uint16).reshape(2, 3, 2, 4) % 3
    return EventRasters(
        A,
        (A > 0).astype(np.uint8),
        np.array([5, 7], dtype=np.int32),
        np.array([0, 1, 2], dtype=np.int32),
    )


def test_raster_versions_are_written_whole_and_never_replaced(tmp_path):
    import numpy as np

    from avalanche_kedro.framework.datasets import EventRasterDataset

    first = EventRasterDataset(filepath=str(tmp_path / "rasters"), version=Version(None, "v1"))
    first.save(_rasters())
    loaded = EventRasterDataset(filepath=str(tmp_path / "rasters"), version=Version(None, None))
    back = loaded.load()
    np.testing.assert_array_equal(back.A, _rasters().A)
    np.testing.assert_array_equal(back.cond_id, [5, 7])
    np.testing.assert_array_equal(back.counts(7), _rasters().A[1])
    # an in-memory raster set is saved with the same axis metadata as RasterWriter's
    assert (back.axes, back.n_layers, back.n_tokens) == (
        ("condition", "window", "layer", "token"),
        2,
        4,
    )
    meta = json.loads(next((tmp_path / "rasters").glob("*/*/raster.json")).read_text())
    assert meta == {"shape": [2, 3, 2, 4], "axes": list(back.axes), "n_layers": 2, "n_tokens": 4}
    assert not any(p.name.startswith(".") for p in (tmp_path / "rasters").iterdir())  # no staging
    with pytest.raises(DatasetError, match="must not exist if versioning is enabled"):
        first.save(_rasters())
    np.testing.assert_array_equal(loaded.load().A, _rasters().A)


def test_missing_rasters_name_the_pipeline_to_run(tmp_path):
    from avalanche_kedro.framework.datasets import EventRasterDataset

    dataset = EventRasterDataset(filepath=str(tmp_path / "none"), version=Version("v0", None))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="kedro run --pipelines events"):
        dataset.load()


# ---- data layers of every catalog entry (Kedro-Viz bands) ---------------------------------------

#: the Kedro data-engineering layers (docs/design.md, "Lineage view"), in the order Kedro-Viz
#: draws the bands for this project: the models come before the windows measured with them
BAND_ORDER = ["raw", "models", "intermediate", "primary", "feature", "model_output", "reporting"]
LAYERS = {*BAND_ORDER, "model_input"}
ENVIRONMENTS = sorted(p.name for p in (PROJECT_ROOT / "conf").iterdir() if p.is_dir())


def _env_loader(env: str):
    from kedro.config import OmegaConfigLoader

    from avalanche_kedro.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)


def _layer(metadata) -> str | None:
    return ((metadata or {}).get("kedro-viz") or {}).get("layer")


def _concrete(pattern: str) -> str:
    """A dataset name a factory pattern matches: ``{role}.windows`` -> ``x.windows``."""
    return re.sub(r"\{[^}]*\}", "x", pattern)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_catalog_entry_carries_a_data_layer(env):
    from kedro.io import DataCatalog

    config = _env_loader(env)["catalog"]
    assert config, env
    catalog = DataCatalog.from_config(config)
    names = [_concrete(name) if "{" in name else name for name in config]
    missing = {}
    for name in names:
        dataset = catalog.get(name)  # built by Kedro from the resolved entry (or its pattern)
        layer = _layer(getattr(dataset, "metadata", None))
        if layer not in LAYERS:
            missing[name] = layer
    assert not missing, f"{env}: entries without a Kedro data layer: {missing}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_layers_follow_the_lineage_so_kedro_viz_draws_the_bands(env, monkeypatch):
    """Kedro-Viz drops every band when one layer is upstream of another and also downstream
    of it; here no node reads a later band than it writes, so the bands are ordered."""
    from graphlib import TopologicalSorter

    from kedro.io import DataCatalog

    from avalanche_kedro.framework import active_config
    from avalanche_kedro.pipeline_registry import register_pipelines

    loader = _env_loader(env)
    monkeypatch.setitem(active_config._ACTIVE, "config_loader", loader)
    default = register_pipelines()["__default__"]
    catalog = DataCatalog.from_config(loader["catalog"])

    def layer(name: str) -> str | None:
        if name == "parameters" or name.startswith("params:") or name not in catalog:
            return None  # parameters, and outputs that live in memory only
        return _layer(catalog.get(name).metadata)

    upstream: dict[str, set[str]] = {}  # the nearest layers above each dataset
    parents: dict[str, set[str]] = {}  # layer -> the layers directly above it
    for node in default.nodes:  # topologically sorted
        above = set()
        for name in node.inputs:
            above |= {layer(name)} if layer(name) else upstream.get(name, set())
        for name in node.outputs:
            own = layer(name)
            upstream[name] = {own} if own else above
            if own:
                parents.setdefault(own, set()).update(above - {own})
    order = list(TopologicalSorter(parents).static_order())  # raises CycleError on a cycle
    assert [band for band in BAND_ORDER if band in order] == order
