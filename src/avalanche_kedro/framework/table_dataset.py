"""One catalog entry per table: a versioned Parquet file and its CSV copy.

:class:`TableDataset` is ``kedro_datasets.pandas.ParquetDataset`` (load, versioning, Kedro-Viz
preview) that also writes the same table as CSV beside it, in the same version folder name.
A paper table is therefore one dataset, and one node in the Kedro-Viz lineage view, instead
of a Parquet dataset and a ``*_csv`` twin. Re-exported by :mod:`avalanche_kedro.framework.datasets`.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError, Version, get_filepath_str
from kedro_datasets.pandas import ParquetDataset as _UpstreamParquetDataset

from ..study.tables import to_csv_frame
from .atomic import ParquetDataset

#: ``pandas.DataFrame.to_csv`` arguments of the CSV copy (those of ``pandas.CSVDataset``)
CSV_SAVE_ARGS: dict[str, Any] = {"index": False}


def csv_path_for(filepath: str | os.PathLike) -> str:
    """The default CSV path of a Parquet path: the same path with the suffix ``.csv``
    (``tables/T01_SUMMARY.parquet`` -> ``tables/T01_SUMMARY.csv``)."""
    path = PurePosixPath(str(filepath))
    return str(path.with_suffix(".csv"))


class TableDataset(ParquetDataset):
    """A pandas table saved as Parquet and as CSV; loaded from the Parquet file.

    ``filepath`` is the Parquet file; ``csv_filepath`` the CSV copy (default: ``filepath``
    with the suffix ``.csv``). With ``versioned: true`` one save writes
    ``<filepath>/<V>/<name>.parquet`` and ``<csv_filepath>/<V>/<name>.csv`` with the same save
    version ``V`` (the run's), exactly where a ``pandas.ParquetDataset`` plus a
    ``pandas.CSVDataset`` entry wrote them. The CSV is
    ``to_csv_frame(table).to_csv(**csv_save_args)`` (default ``index=False``): list and array
    cells as ``[x, y]`` text with every float in full precision, every other cell as pandas
    writes it, so the bytes are those ``pandas.CSVDataset`` wrote for the same frame.

    The CSV text is rendered before anything is written; both files are written under hidden
    staged names (:mod:`.atomic`), then the CSV and last the Parquet file are renamed into
    place, so a save leaves both files or neither and the version appears (to loads and to
    Kedro's latest-version lookup, which list the Parquet files) only once both are complete.
    A catalog
    ``validator:`` (pandera schema) is applied by Kedro's ``DataCatalog`` to the table on save
    and on load, before this class sees it, as for any dataset.
    """

    def __init__(
        self,
        *,
        filepath: str,
        csv_filepath: str | None = None,
        csv_save_args: dict[str, Any] | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            filepath=filepath,
            load_args=load_args,
            save_args=save_args,
            version=version,
            credentials=credentials,
            fs_args=fs_args,
            metadata=metadata,
        )
        csv = csv_path_for(self._filepath) if csv_filepath is None else csv_filepath
        # the same protocol rules as the Parquet path (a bare path is a local file)
        self._csv_filepath = PurePosixPath(str(csv).split("://", 1)[-1])
        if self._csv_filepath == self._filepath:
            raise DatasetError(
                f"TableDataset '{filepath}': csv_filepath must differ from filepath.\n"
                "  How to fix: leave csv_filepath out (the .csv beside the .parquet) or give "
                "another path."
            )
        self._csv_save_args = {**CSV_SAVE_ARGS, **(csv_save_args or {})}

    def csv_save_path(self) -> PurePosixPath:
        """Where the CSV copy of the current save goes (versioned: the run's save version)."""
        if self._version is None:
            return self._csv_filepath
        return self._csv_filepath / self.resolve_save_version() / self._csv_filepath.name

    def csv_load_path(self) -> PurePosixPath:
        """The CSV copy of the version ``load`` reads (versioned: the latest, or the pinned
        load version)."""
        if self._version is None:
            return self._csv_filepath
        return self._csv_filepath / self.resolve_load_version() / self._csv_filepath.name

    def save(self, data: pd.DataFrame) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DatasetError(f"TableDataset saves a pandas DataFrame, got {type(data)}.")
        csv_path = self.csv_save_path()
        csv_target = get_filepath_str(csv_path, self._protocol)
        if self._version is not None and self._fs.exists(csv_target):
            # versions are never overwritten (the Parquet side checks its own path)
            raise DatasetError(f"Save path '{csv_target}' for {self!s} must not exist.")
        text = to_csv_frame(data).to_csv(**self._csv_save_args)
        target = self._get_save_path()  # versioned: refuses a version that exists
        raw_save = _UpstreamParquetDataset.save.__wrapped__  # Kedro's wrapper runs once
        csv_published = False
        try:
            with self.staging(target) as staged:  # published last: the file loads read
                self._staged = staged
                try:
                    raw_save(self, data)
                finally:
                    self._staged = None
                with self.staging(csv_path) as csv_staged:
                    # text mode, as pandas.CSVDataset writes: the same bytes for the same frame
                    staged_csv = get_filepath_str(csv_staged, self._protocol)
                    with self._fs.open(staged_csv, mode="w") as handle:
                        handle.write(text)
                csv_published = True
        except BaseException:
            if csv_published:  # the Parquet file could not be published: no CSV without it
                self._remove_partial_save(csv_target)
            raise
        self._invalidate_cache()
        self._fs.invalidate_cache(get_filepath_str(self._csv_filepath, self._protocol))

    def _remove_partial_save(self, *paths: str) -> None:
        """Remove the files of a failed save and, when versioned, their emptied version folders."""
        for path in paths:
            if self._fs.exists(path):
                self._fs.rm(path)
            folder = path.rsplit("/", 1)[0]
            if self._version is not None and self._fs.isdir(folder) and not self._fs.ls(folder):
                self._fs.rmdir(folder)

    def _describe(self) -> dict[str, Any]:
        return {
            **super()._describe(),
            "csv_filepath": str(self._csv_filepath),
            "csv_save_args": self._csv_save_args,
        }
