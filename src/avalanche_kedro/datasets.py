"""Kedro datasets of the project: offline Python corpora, Hub datasets, and event rasters.

* :class:`PythonTextCorpus` - text that ships with every CPython installation (the embedded
  default's corpora A and B, so ``kedro run`` needs no download).
* :class:`HubDataset` - ``kedro_datasets.huggingface.HFDataset`` (``datasets.load_dataset``)
  with a description that never contacts the Hub, because Kedro describes a dataset on every
  load and the upstream description queries the Hub API.
* :class:`EventRasterDataset` - versioned raster directories (:mod:`avalanche_kedro.rasters`).
"""

from __future__ import annotations

import ast
import os
import shutil
import sysconfig
import tempfile
import tokenize
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io.core import AbstractDataset, AbstractVersionedDataset, DatasetError, Version
from kedro_datasets.huggingface import HFDataset

from .errors import ArtifactError, ConfigurationError
from .rasters import A_FILE, COND_FILE, META_FILE, SEQ_FILE, X_FILE, EventRasters

# Parts of the standard library that are test data, tools or vendored code rather than the
# library's own documentation; they are skipped so corpus B is ordinary prose docstrings.
_STDLIB_SKIP = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "site-packages",
    "dist-packages",
    "turtledemo",
    "ensurepip",
    "__pycache__",
    "pydoc_data",
}


def pydoc_topics() -> list[str]:
    """The reference-manual topics of ``pydoc_data.topics``, one record per topic, key order."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def stdlib_docstrings(root: Path | None = None) -> Iterator[str]:
    """Docstrings of the standard library's modules, classes and functions.

    Files are visited in sorted path order and each file's docstrings in source order, so the
    stream is identical for a given Python version. Nothing is imported: files are parsed.
    """
    root = Path(root or sysconfig.get_paths()["stdlib"])
    files = sorted(
        path
        for path in root.rglob("*.py")
        if not _STDLIB_SKIP.intersection(path.relative_to(root).parts[:-1])
    )
    for path in files:
        try:
            with tokenize.open(path) as handle:
                tree = ast.parse(handle.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        yield from _docstrings_in_order(tree)


def _docstrings_in_order(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield doc
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _docstrings_in_order(child)


class _Records:
    """A re-iterable, lazily produced sequence of text records."""

    def __init__(self, factory):
        self._factory = factory

    def __iter__(self) -> Iterator[str]:
        return iter(self._factory())


class PythonTextCorpus(AbstractDataset[None, Any]):
    """Offline text corpus from the running Python installation (read-only).

    ``source``: ``pydoc_topics`` (reference-manual text of ``pydoc_data.topics``, 79 records)
    or ``stdlib_docstrings`` (docstrings of the standard library, read lazily).
    """

    SOURCES = {"pydoc_topics": pydoc_topics, "stdlib_docstrings": stdlib_docstrings}

    def __init__(self, *, source: str, metadata: dict[str, Any] | None = None):
        if source not in self.SOURCES:
            raise ConfigurationError(
                f"Unknown Python corpus source '{source}'.",
                f"Use one of {sorted(self.SOURCES)}.",
            )
        self.source = source
        self.metadata = metadata

    def load(self) -> _Records:
        return _Records(self.SOURCES[self.source])

    def save(self, data: Any) -> None:
        raise DatasetError(f"PythonTextCorpus '{self.source}' is read-only.")

    def _describe(self) -> dict[str, Any]:
        return {"source": self.source}


class HubDataset(HFDataset):
    """``datasets.load_dataset(dataset_name, **dataset_kwargs)`` with an offline description.

    Works for Hub datasets (``Salesforce/wikitext``, ``allenai/c4`` streamed) and for the
    packaged builders on local files (``json``, ``text``, ``parquet``). For a local file give
    ``filepath``: Kedro makes it absolute against the project root and it is passed on as
    ``data_files``, so the entry works from any working directory (notebooks included).
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
        if filepath is not None:
            kwargs["data_files"] = str(filepath)
        super().__init__(dataset_name=dataset_name, dataset_kwargs=kwargs, metadata=metadata)

    def load(self) -> Any:
        if _blank_local_files(self._dataset_kwargs.get("data_files")):
            # `datasets` cannot build a split from empty files (a bare StopIteration or
            # DatasetGenerationError); an empty file is a corpus with no records, which the
            # node reading it reports as such, naming its catalog entry and the fix.
            from datasets import Dataset

            return Dataset.from_list([])
        return super().load()

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


class EventRasterDataset(AbstractVersionedDataset[EventRasters, EventRasters]):
    """A versioned raster directory on the local filesystem.

    Saving moves the node's scratch directory into a temporary sibling of the version folder
    and renames it into place, so a failed save leaves no half-written version behind and no
    existing version is ever touched.
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
                for name in (A_FILE, X_FILE, COND_FILE, SEQ_FILE, META_FILE):
                    shutil.move(str(data.directory / name), staging / name)
            else:
                _write_in_memory(data, staging)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if data.directory is not None:
            shutil.rmtree(data.directory, ignore_errors=True)

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
        json.dumps({"shape": list(data.A.shape), "axes": ["C", "N", "L", "T"]}, indent=2)
    )
