"""framework.atomic: a dataset version is published only once its write completed.

Each save here fails half way through a real write (bytes already on disk): a full disk in
the middle of a Parquet file, a value ``json`` or ``pickle`` cannot serialize after part of the
document was written, a figure whose second file cannot be written. The previous version must
still be the latest one that loads, no new version may be listed, and no staged file or empty
version folder may be left behind.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError, Version

from avalanche_kedro.framework.atomic import (
    PARTIAL,
    AtomicSaveMixin,
    JSONDataset,
    ParquetDataset,
    PickleDataset,
    TextDataset,
    publish,
    staged_path,
)
from avalanche_kedro.framework.datasets import EventRasterDataset, TableDataset
from tests.conftest import PROJECT_ROOT
from tests.study.figures.tables_builder import (  # noqa: F401 (no_pyplot_figures: a fixture)
    draw,
    no_pyplot_figures,
)


def _frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": [i * 0.25 for i in range(n)]})


def _all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _full_disk_halfway(monkeypatch) -> None:
    """``DataFrame.to_parquet`` writes half of the real file, then the disk is full."""
    real = pd.DataFrame.to_parquet

    def to_parquet(self, path, *args, **kwargs):
        import io

        buffer = io.BytesIO()
        real(self, buffer, *args, **kwargs)
        path.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)


def test_a_parquet_save_that_fails_half_way_leaves_the_previous_version_latest(
    tmp_path, monkeypatch
):
    path = str(tmp_path / "windows.parquet")
    ParquetDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(_frame())
    before = _all_files(tmp_path)
    _full_disk_halfway(monkeypatch)
    with pytest.raises(DatasetError, match="No space left on device") as raised:
        ParquetDataset(filepath=path, version=Version(None, "2026-02-01T00.00.00.000Z")).save(
            _frame(10)
        )
    assert raised.value.__cause__.errno == errno.ENOSPC  # the write's own error, kept
    monkeypatch.undo()
    latest = ParquetDataset(filepath=path, version=Version(None, None))
    pd.testing.assert_frame_equal(latest.load(), _frame())  # the good version, whole
    assert latest.list_versions(full_path=False) == ["2026-01-01T00.00.00.000Z"]
    assert _all_files(tmp_path) == before  # no staged file, no new version folder
    assert sorted(os.listdir(path)) == ["2026-01-01T00.00.00.000Z"]


def test_a_successful_save_leaves_only_the_published_file(tmp_path):
    path = tmp_path / "t.parquet"
    dataset = ParquetDataset(filepath=str(path), version=Version(None, "v1"))
    dataset.save(_frame())
    assert _all_files(tmp_path) == ["t.parquet/v1/t.parquet"]
    pd.testing.assert_frame_equal(dataset.load(), _frame())


@pytest.mark.parametrize(
    ("dataset_class", "good", "bad"),
    [
        # json.dump writes '{"a": 1, "b": ' before it meets the object it cannot encode
        (JSONDataset, {"a": 1}, {"a": 1, "b": object()}),
        # pickle writes the list's first items before the lambda it cannot pickle
        (PickleDataset, [1, 2, 3], ["x" * 100_000, lambda: None]),
    ],
)
def test_a_serialization_error_mid_write_publishes_nothing(tmp_path, dataset_class, good, bad):
    suffix = "json" if dataset_class is JSONDataset else "pkl"
    path = str(tmp_path / f"d.{suffix}")
    dataset_class(filepath=path, version=Version(None, "v1")).save(good)
    with pytest.raises(DatasetError):
        dataset_class(filepath=path, version=Version(None, "v2")).save(bad)
    assert _all_files(tmp_path) == [f"d.{suffix}/v1/d.{suffix}"]
    assert dataset_class(filepath=path, version=Version(None, None)).load() == good


def test_an_interrupt_during_a_text_write_publishes_nothing(tmp_path, monkeypatch):
    """A KeyboardInterrupt (not an Exception) raised inside the write cleans up too."""
    path = tmp_path / "report.md"
    TextDataset(filepath=str(path), version=Version(None, "v1")).save("# old\n")
    dataset = TextDataset(filepath=str(path), version=Version(None, "v2"))
    real_open = dataset._fs.open

    class HalfWritten:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:3])
            raise KeyboardInterrupt

    def open_half_written(*args, **kwargs):
        handle = real_open(*args, **kwargs)  # text mode opens again in binary: not wrapped
        return HalfWritten(handle) if kwargs.get("mode") == "w" else handle

    monkeypatch.setattr(dataset._fs, "open", open_half_written)
    with pytest.raises(KeyboardInterrupt):
        dataset.save("# new report\n")
    assert _all_files(tmp_path) == ["report.md/v1/report.md"]
    assert TextDataset(filepath=str(path), version=Version(None, None)).load() == "# old\n"


def test_a_staged_file_left_by_a_killed_process_is_never_the_latest(tmp_path):
    """``kill -9`` during a write leaves the staged file: the version listing ignores it."""
    path = tmp_path / "windows.parquet"
    ParquetDataset(filepath=str(path), version=Version(None, "v1")).save(_frame())
    left = path / "v2" / f".windows.parquet{PARTIAL}12345-deadbeef"
    left.parent.mkdir()
    left.write_bytes(b"PAR1 truncated")
    latest = ParquetDataset(filepath=str(path), version=Version(None, None))
    assert latest.list_versions(full_path=False) == ["v1"]
    pd.testing.assert_frame_equal(latest.load(), _frame())


def test_an_unversioned_save_replaces_the_file_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "plain.parquet"
    ParquetDataset(filepath=str(path)).save(_frame())
    _full_disk_halfway(monkeypatch)
    with pytest.raises(DatasetError, match="No space left"):
        ParquetDataset(filepath=str(path)).save(_frame(5))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(ParquetDataset(filepath=str(path)).load(), _frame())
    ParquetDataset(filepath=str(path)).save(_frame(5))
    pd.testing.assert_frame_equal(ParquetDataset(filepath=str(path)).load(), _frame(5))
    assert _all_files(tmp_path) == ["plain.parquet"]


def test_publish_never_replaces_a_saved_version(tmp_path):
    from fsspec.implementations.local import LocalFileSystem

    target = tmp_path / "v1" / "t.json"
    target.parent.mkdir()
    target.write_text('{"kept": true}')
    staged = Path(str(staged_path(target)))
    staged.write_text('{"kept": false}')
    with pytest.raises(DatasetError, match="saved versions are never overwritten"):
        publish(LocalFileSystem(), str(staged), str(target), overwrite=False)
    assert json.loads(target.read_text()) == {"kept": True}
    # a folder neither
    folder, staged_folder = tmp_path / "v2" / "F", tmp_path / "v2" / ".F.partial-1-a"
    folder.mkdir(parents=True)
    staged_folder.mkdir()
    with pytest.raises(DatasetError, match="never overwritten"):
        publish(LocalFileSystem(), str(staged_folder), str(folder), overwrite=False)


def test_a_table_whose_parquet_write_fails_leaves_neither_file(tmp_path, monkeypatch):
    path = str(tmp_path / "T01.parquet")
    TableDataset(filepath=path, version=Version(None, "v1")).save(_frame())
    before = _all_files(tmp_path)
    _full_disk_halfway(monkeypatch)
    with pytest.raises(DatasetError, match="No space left"):
        TableDataset(filepath=path, version=Version(None, "v2")).save(_frame(3))
    monkeypatch.undo()
    assert _all_files(tmp_path) == before
    pd.testing.assert_frame_equal(
        TableDataset(filepath=path, version=Version(None, None)).load(), _frame()
    )


@pytest.mark.usefixtures("no_pyplot_figures")
def test_a_figure_whose_second_file_fails_leaves_no_version(tmp_path, monkeypatch):
    from avalanche_kedro.framework.datasets import FigureDataset

    dataset = FigureDataset(filepath=str(tmp_path / "F07"), version=Version(None, "v1"))
    real_open, opened = dataset._fs.open, []

    def open_then_fail(path, *args, **kwargs):
        opened.append(path)
        if len(opened) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(dataset._fs, "open", open_then_fail)
    with pytest.raises(DatasetError, match="No space left"):
        dataset.save(draw("F07_ARC_ACCURACY"))
    assert PARTIAL in opened[0]  # the first file was written, under the staged folder
    assert _all_files(tmp_path) == [] and not (tmp_path / "F07" / "v1").exists()


def _catalog_entries() -> list[tuple[str, str, dict]]:
    entries = []
    for path in sorted((PROJECT_ROOT / "conf").glob("*/catalog*.yml")):
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if isinstance(entry, dict) and "type" in entry:
                entries.append((f"{path.relative_to(PROJECT_ROOT)}:{name}", entry["type"], entry))
    return entries


def test_every_catalog_entry_that_saves_publishes_whole_versions():
    """Every entry that writes files uses a project class whose save stages then publishes
    (a kedro-datasets class straight in the catalog would write in place)."""
    from kedro.io.core import parse_dataset_definition

    read_only = {"PythonTextCorpus", "HubDataset", "SaveVersionDataset"}
    offenders = []
    for where, type_name, entry in _catalog_entries():
        cls, _ = parse_dataset_definition({k: v for k, v in entry.items() if k != "versioned"})
        if cls.__name__ in read_only:
            continue
        if not (issubclass(cls, AtomicSaveMixin) or issubclass(cls, EventRasterDataset)):
            offenders.append(f"{where} ({type_name})")
    assert offenders == [], "use avalanche_kedro.framework.datasets classes: " + str(offenders)
