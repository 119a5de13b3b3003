"""Kedro datasets of the project: offline Python corpora, Hub datasets, and event rasters.

* :class:`PythonTextCorpus` - text that ships with every CPython installation (the embedded
  default's corpora A and B, so ``kedro run`` needs no download).
* :class:`HubDataset` - ``kedro_datasets.huggingface.HFDataset`` (``datasets.load_dataset``)
  with a description that never contacts the Hub, because Kedro describes a dataset on every
  load and the upstream description queries the Hub API.
* :class:`EventRasterDataset` - versioned raster directories (:mod:`avalanche_kedro.measure.rasters`).
* :class:`FigureDataset` - ``kedro_datasets.matplotlib.MatplotlibDataset`` writing each figure
  as PNG and PDF with its provenance (run id, models, condition, config hash) in the files'
  metadata (:mod:`avalanche_kedro.study.figures`).
* :class:`TableDataset` - a versioned Parquet table that also writes its CSV copy, one catalog
  entry per table (:mod:`.table_dataset`).
* :class:`ParquetDataset`, :class:`JSONDataset`, :class:`PickleDataset`, :class:`TextDataset` -
  kedro-datasets' classes whose saves publish a version only once it is complete
  (:mod:`.atomic`); every save of the project's datasets does.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io.core import (
    AbstractDataset,
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
)
from kedro_datasets.matplotlib import MatplotlibDataset
from matplotlib.figure import Figure

from ..core.errors import ArtifactError, ConfigurationError
from ..measure.corpora import (
    SPLITS,
    builtin_qa_pairs,
    pydoc_topics,
    stdlib_docstrings,
    stdlib_training_text,
)
from ..measure.rasters import (
    A_FILE,
    COND_FILE,
    META_FILE,
    SEQ_FILE,
    X_FILE,
    EventRasters,
    is_scratch,
    raster_metadata,
    remove_scratch,
)
from ..measure.text_files import TEXT_BUILDERS, check_text_file
from .atomic import AtomicSaveMixin, JSONDataset, ParquetDataset, PickleDataset, TextDataset
from .table_dataset import TableDataset

__all__ = [
    "EventRasterDataset",
    "FigureDataset",
    "HubDataset",
    "JSONDataset",
    "ParquetDataset",
    "PickleDataset",
    "PythonTextCorpus",
    "TableDataset",
    "TextDataset",
    "figure_file_metadata",
    "render_figure",
    "source_detail",
]


class _Records:
    """A re-iterable, lazily produced sequence of text records."""

    def __init__(self, factory):
        self._factory = factory

    def __iter__(self) -> Iterator[str]:
        return iter(self._factory())


class PythonTextCorpus(AbstractDataset[None, Any]):
    """Offline text corpus from the running Python installation (read-only).

    ``source``: ``pydoc_topics`` (reference-manual text of ``pydoc_data.topics``, 79 records),
    ``stdlib_docstrings`` (docstrings of the standard library, read lazily; ``split:
    measured`` or ``training`` keeps one half of the files), and the training texts of the
    embedded models: ``stdlib_training_text`` (docstrings and comments of the ``training``
    half) and ``builtin_qa`` (question/answer records from built-in C modules' docstrings).
    """

    SOURCES = {
        "pydoc_topics": pydoc_topics,
        "stdlib_docstrings": stdlib_docstrings,
        "stdlib_training_text": stdlib_training_text,
        "builtin_qa": builtin_qa_pairs,
    }

    def __init__(
        self, *, source: str, split: str | None = None, metadata: dict[str, Any] | None = None
    ):
        if source not in self.SOURCES:
            raise ConfigurationError(
                f"Unknown Python corpus source '{source}'.",
                f"Use one of {sorted(self.SOURCES)}.",
            )
        if split is not None and (source != "stdlib_docstrings" or split not in SPLITS):
            raise ConfigurationError(
                f"split '{split}' is not available for the Python corpus source '{source}'.",
                f"Use split with source stdlib_docstrings only, one of {list(SPLITS)}.",
            )
        self.source = source
        self.split = split
        self.metadata = metadata

    def load(self) -> _Records:
        if self.split is not None:
            return _Records(partial(self.SOURCES[self.source], split=self.split))
        return _Records(self.SOURCES[self.source])

    def save(self, data: Any) -> None:
        raise DatasetError(f"PythonTextCorpus '{self.source}' is read-only.")

    def _describe(self) -> dict[str, Any]:
        return {"source": self.source, "split": self.split}


class HubDataset(AbstractDataset[None, Any]):
    """``datasets.load_dataset(dataset_name, **dataset_kwargs)`` with an offline description.

    Works for Hub datasets (``Salesforce/wikitext``, ``allenai/c4`` streamed) and for the
    packaged builders on local files (``json``, ``text``, ``parquet``). For a local file give
    ``filepath``: Kedro makes it absolute against the project root and it is passed on as
    ``data_files``, so the entry works from any working directory (notebooks included).

    The same contract as kedro-datasets' ``HFDataset`` (which it replaces as the base class):
    importing ``kedro_datasets.huggingface`` imports transformers' pipeline and image
    processing modules, 6-9 s at the start of every ``kedro run`` for a class whose whole job
    is one ``load_dataset`` call, so ``datasets`` is imported only when a dataset is loaded.
    """

    def __init__(
        self,
        *,
        dataset_name: str,
        filepath: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        kwargs = dict(dataset_kwargs or {})
        self._local_file = None if filepath is None else str(filepath)
        if filepath is not None:
            kwargs["data_files"] = str(filepath)
        self.dataset_name = dataset_name
        self._dataset_kwargs = kwargs
        self.metadata = metadata

    def load(self) -> Any:
        local = self._local_file
        if (
            local
            and "://" not in local
            and not any(c in local for c in "*?[")
            and not (Path(local).exists())
        ):
            raise DatasetError(
                f"The {self.dataset_name!r} file {local} does not exist.\n"
                "  How to fix: point the catalog entry's `filepath` (or the runtime parameter "
                "that sets it, e.g. --params corpus_a=/path/to/a.txt in the local_model "
                "environment) at an existing file."
            )
        for path in self.local_files():
            # a directory, a binary or a Latin-1 file: named here, not as datasets' generic
            # "An error occurred while generating the dataset" (the preflight checks it too)
            check_text_file(
                path,
                entry=f"this {self.dataset_name!r} catalog entry",
                how_to_point="Point the catalog entry's `filepath` (or the runtime parameter "
                "that sets it, e.g. --params corpus_a=/path/to/a.txt in the local_model "
                "environment)",
            )
        if _blank_local_files(self._dataset_kwargs.get("data_files")):
            # `datasets` cannot build a split from empty files (a bare StopIteration or
            # DatasetGenerationError); an empty file is a corpus with no records, which the
            # node reading it reports as such, naming its catalog entry and the fix.
            from datasets import Dataset

            loaded = Dataset.from_list([])
        else:
            from datasets import load_dataset

            loaded = load_dataset(self.dataset_name, **self._dataset_kwargs)  # nosec
        # Errors about the content (too short, wrong schema) name the file it came from.
        files = self._dataset_kwargs.get("data_files")
        try:
            loaded.source_description = f"file {files}" if files else self.dataset_name
        except AttributeError:  # an object that takes no attributes: errors name the entry only
            pass
        return loaded

    def local_files(self) -> list[Path]:
        """The local UTF-8 files this entry reads (``text``, ``json``, ``csv`` builders with a
        plain ``filepath``); empty for Hub datasets, binary formats and glob patterns."""
        local = self._local_file
        if (
            not local
            or self.dataset_name not in TEXT_BUILDERS
            or "://" in local
            or any(c in local for c in "*?[")
        ):
            return []
        return [Path(local)]

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"{self.dataset_name!r} is an input: HubDataset only loads.\n"
            "  How to fix: write results to another catalog entry."
        )

    def _describe(self) -> dict[str, Any]:
        return {"dataset_name": self.dataset_name, "dataset_kwargs": self._dataset_kwargs}


def _blank_local_files(data_files: Any, max_bytes: int = 1 << 20) -> bool:
    """True when ``data_files`` names existing local files that hold only whitespace."""
    if isinstance(data_files, str | os.PathLike):
        files = [data_files]
    elif isinstance(data_files, dict):
        files = [f for v in data_files.values() for f in (v if isinstance(v, list) else [v])]
    elif isinstance(data_files, list | tuple):
        files = list(data_files)
    else:
        return False
    paths = [Path(f) for f in files if isinstance(f, str | os.PathLike)]
    if not paths or len(paths) != len(files) or not all(p.is_file() for p in paths):
        return False
    return all(
        p.stat().st_size == 0 or (p.stat().st_size <= max_bytes and not p.read_bytes().strip())
        for p in paths
    )


def source_detail(loaded: Any) -> str | None:
    """Where a loaded dataset's data came from (e.g. ``file /data/a.txt``), when it recorded it."""
    return getattr(loaded, "source_description", None)


class EventRasterDataset(AbstractVersionedDataset[EventRasters, EventRasters]):
    """A versioned raster directory on the local filesystem.

    Saving moves the node's scratch directory into a temporary sibling of the version folder
    and renames it into place, so a failed save leaves no half-written version behind and no
    existing version is ever touched. Rasters whose directory is not this process's scratch
    (loaded from a saved version) are copied, never moved.
    """

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        # Kedro's defaults for the exists/glob functions work on the local filesystem.
        super().__init__(filepath=PurePosixPath(Path(filepath).as_posix()), version=version)
        self.metadata = metadata

    def load(self) -> EventRasters:
        path = Path(str(self._get_load_path()))
        if not path.exists():
            raise ArtifactError(
                f"No event rasters at '{path}'.",
                "Run the events pipeline first: kedro run --pipelines events.",
            )
        return EventRasters.open(path)

    def save(self, data: EventRasters) -> None:
        target = Path(str(self._get_save_path()))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            if data.directory is not None:
                transfer = shutil.move if is_scratch(data.directory) else shutil.copyfile
                for name in (A_FILE, X_FILE, COND_FILE, SEQ_FILE, META_FILE):
                    transfer(str(data.directory / name), staging / name)
            else:
                _write_in_memory(data, staging)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if is_scratch(data.directory):
            remove_scratch(data.directory)

    def _exists(self) -> bool:
        try:
            path = Path(str(self._get_load_path()))
        except DatasetError:
            return False
        return path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def _write_in_memory(data: EventRasters, directory: Path) -> None:
    import json

    np.save(directory / A_FILE, np.ascontiguousarray(data.A))
    np.save(directory / X_FILE, np.ascontiguousarray(data.X))
    np.save(directory / COND_FILE, data.cond_id)
    np.save(directory / SEQ_FILE, data.seq_id)
    (directory / META_FILE).write_text(
        json.dumps(raster_metadata(data.A.shape, data.d_ff), indent=2)
    )


# ---- figures ------------------------------------------------------------------------------------

FIGURE_FORMATS = ("png", "pdf")


def figure_file_metadata(metadata: Mapping[str, str], fmt: str) -> dict[str, Any]:
    """The ``savefig(metadata=...)`` argument for one format.

    PNG: every key becomes a text chunk (``Title``, ``Subject``, ``Keywords``, ``Creator`` and
    the custom ``run_id``, ``model_ids``, ``condition``, ``config_hash``, ...). PDF: the same
    keys in the document information dictionary (custom keys are allowed there by the PDF
    specification); ``CreationDate`` and ``ModDate`` are left out so the file is reproducible.
    """
    info: dict[str, Any] = {str(k): str(v) for k, v in metadata.items()}
    if fmt == "pdf":
        info["CreationDate"] = None
        info["ModDate"] = None
    return info


def render_figure(
    figure: Figure,
    fmt: str,
    save_args: Mapping[str, Any] | None = None,
    require_provenance: bool = True,
) -> bytes:
    """The bytes of ``figure`` as ``fmt`` with the provenance the figure function attached."""
    from ..study.figures import REQUIRED_METADATA, figure_metadata

    metadata = figure_metadata(figure) or {}
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if require_provenance and missing:
        raise DatasetError(
            f"The figure carries no provenance for {missing}; figures are saved only with "
            "their run id, models, condition and config hash in the file metadata. Attach it "
            "with avalanche_kedro.study.figures.attach_metadata(figure, {...}) (the figure functions "
            "of avalanche_kedro.study.figures do), or set require_provenance: false."
        )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # matplotlib warns about PDF info keys outside the standard set, which is the point
        warnings.filterwarnings("ignore", message="Unknown infodict keyword")
        figure.savefig(
            buffer, format=fmt, metadata=figure_file_metadata(metadata, fmt), **(save_args or {})
        )
    return buffer.getvalue()


class FigureDataset(AtomicSaveMixin, MatplotlibDataset):
    """Saves a Matplotlib figure as PNG and PDF (``formats``) with provenance metadata.

    ``filepath`` names a directory; with ``versioned: true`` a save writes
    ``<filepath>/<version>/<name>/<name>.png`` and ``.pdf`` (``<name>`` = the last part of
    ``filepath``). The data is a Figure, or a dict ``{name: Figure}`` (a name with a suffix
    is saved in that format only). Every format of every figure is rendered in memory first,
    so a figure that cannot be drawn or has no provenance leaves nothing on disk; the files
    are written into a hidden staged folder renamed to ``<name>`` once all are written
    (:mod:`.atomic`), so a failed write leaves no version. The metadata comes from the figure itself
    (:func:`avalanche_kedro.study.figures.figure_metadata`), so it is specific to each run.
    Figures are closed after saving. Loading returns the PNG bytes of the figure (of the load
    version; the latest by default): a Figure cannot be read back, its picture can, and the
    contact sheet is laid out from the saved pictures (so it shows exactly what was written).
    """

    DEFAULT_SAVE_ARGS: dict[str, Any] = {"dpi": 150}

    def __init__(
        self,
        *,
        filepath: str,
        formats: list[str] | tuple[str, ...] | None = None,
        require_provenance: bool = True,
        fs_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        reserved = sorted({"format", "metadata"} & set(save_args or {}))
        if reserved:
            raise ConfigurationError(
                f"FigureDataset '{filepath}' sets {reserved} in save_args.",
                "List the file types under 'formats' (png, pdf); the metadata comes from the "
                "figure's provenance.",
            )
        self._formats = tuple(formats or FIGURE_FORMATS)
        unknown = [f for f in self._formats if f not in FIGURE_FORMATS]
        if unknown:
            raise ConfigurationError(
                f"FigureDataset '{filepath}' asks for formats {unknown}.",
                f"Use any of {list(FIGURE_FORMATS)}: both carry the provenance metadata.",
            )
        self._require_provenance = require_provenance
        super().__init__(
            filepath=filepath,
            fs_args=fs_args,
            credentials=credentials,
            save_args=save_args,
            version=version,
            overwrite=False,
            metadata=metadata,
        )

    def _files(self, data: Any, stem: str) -> dict[str, tuple[Figure, str]]:
        """``{file name: (figure, format)}`` for a Figure or a ``{name: Figure}`` dict."""
        if isinstance(data, Figure):
            data = {stem: data}
        if not isinstance(data, Mapping) or not all(isinstance(f, Figure) for f in data.values()):
            raise DatasetError(
                f"FigureDataset saves a matplotlib Figure or a dict of them, got {type(data)}."
            )
        files: dict[str, tuple[Figure, str]] = {}
        for name, figure in data.items():
            suffix = PurePosixPath(name).suffix.lstrip(".")
            if suffix in FIGURE_FORMATS:
                files[name] = (figure, suffix)
            else:
                files.update({f"{name}.{fmt}": (figure, fmt) for fmt in self._formats})
        return files

    def save(self, data: Figure | dict[str, Figure]) -> None:
        save_path = self._get_save_path()
        files = self._files(data, save_path.name)
        rendered = {
            name: render_figure(figure, fmt, self._save_args, self._require_provenance)
            for name, (figure, fmt) in files.items()
        }
        with self.staging(save_path) as staged:
            for name, payload in rendered.items():
                path = get_filepath_str(staged / name, self._protocol)
                with self._fs.open(path, **self._fs_open_args_save) as handle:
                    handle.write(payload)
        import matplotlib.pyplot as plt

        for figure, _ in files.values():
            plt.close(figure)  # only these figures (no-op for figures pyplot does not manage)
        self._invalidate_cache()

    def _png_path(self) -> str:
        load_path = self._get_load_path()
        return get_filepath_str(load_path / f"{load_path.name}.png", self._protocol)

    def load(self) -> bytes:
        """The PNG bytes of ``<filepath>/<version>/<name>/<name>.png`` (with its metadata)."""
        if "png" not in self._formats:
            raise DatasetError(
                f"FigureDataset '{self._filepath}' writes {list(self._formats)} only; loading "
                "reads the PNG. Add png to its 'formats' in the catalog."
            )
        with self._fs.open(self._png_path(), mode="rb") as handle:
            return handle.read()

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "formats": list(self._formats)}

    def preview(self):
        """The PNG of the latest version as a base64 image (Kedro-Viz)."""
        import base64

        from kedro_datasets._typing import ImagePreview

        with self._fs.open(self._png_path(), mode="rb") as handle:
            return ImagePreview(base64.b64encode(handle.read()).decode("utf-8"))
