"""TableDataset: one catalog entry writes a table as Parquet and as CSV (same version folder).

The CSV bytes are those ``pandas.CSVDataset`` (``index: false``) wrote from the CSV rendering
of the table, the pair is written whole or not at all, versions are never overwritten, and a
catalog ``validator:`` refuses a bad table before either file exists.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError, Version
from kedro_datasets.pandas import CSVDataset

from avalanche_kedro.framework.datasets import TableDataset
from avalanche_kedro.framework.hooks import _saved_paths
from avalanche_kedro.framework.table_dataset import csv_path_for
from avalanche_kedro.study.tables import to_csv_frame

#: a pandera schema the catalog entry of the validator test points at (by import path)
SCHEMA = pa.DataFrameSchema({"a": pa.Column(int, pa.Check.ge(0)), "c": pa.Column(str)})


def _frame() -> pd.DataFrame:
    # a list cell (written as "[x, y]" with full float precision), an int and a text column
    return pd.DataFrame({"a": [1, 2], "b": [[0.1, 1 / 3], [2.0]], "c": ["x", "y"]})


def _files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_one_save_writes_parquet_and_csv_in_the_same_version_folder(tmp_path):
    dataset = TableDataset(
        filepath=str(tmp_path / "tables" / "T01.parquet"), version=Version(None, "v1")
    )
    dataset.save(_frame())
    assert _files(tmp_path) == ["tables/T01.csv/v1/T01.csv", "tables/T01.parquet/v1/T01.parquet"]
    # by hand: the list cell is quoted (it holds a comma); repr(1/3) keeps all 17 digits
    expected = 'a,b,c\n1,"[0.1, 0.3333333333333333]",x\n2,[2.0],y\n'
    assert (tmp_path / "tables/T01.csv/v1/T01.csv").read_text() == expected
    loaded = dataset.load()
    assert loaded["a"].tolist() == [1, 2] and loaded["c"].tolist() == ["x", "y"]
    assert [list(cell) for cell in loaded["b"]] == [[0.1, 1 / 3], [2.0]]
    assert str(dataset.csv_load_path()) == (tmp_path / "tables/T01.csv/v1/T01.csv").as_posix()


def test_csv_bytes_are_those_of_a_pandas_csv_dataset_entry(tmp_path):
    TableDataset(filepath=str(tmp_path / "new" / "T.parquet"), version=Version(None, "v")).save(
        _frame()
    )
    # how the project wrote the CSV twin before: a pandas.CSVDataset with save_args index: false
    CSVDataset(
        filepath=str(tmp_path / "old" / "T.csv"),
        save_args={"index": False},
        version=Version(None, "v"),
    ).save(to_csv_frame(_frame()))
    new = (tmp_path / "new/T.csv/v/T.csv").read_bytes()
    assert new == (tmp_path / "old/T.csv/v/T.csv").read_bytes()


def test_a_version_is_never_overwritten(tmp_path):
    path = str(tmp_path / "T.parquet")
    TableDataset(filepath=path, version=Version(None, "v1")).save(_frame())
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}
    with pytest.raises(DatasetError, match="must not exist"):
        TableDataset(filepath=path, version=Version(None, "v1")).save(_frame().head(1))
    assert {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)} == before
    # a new version goes beside the old one; loading reads the latest
    TableDataset(filepath=path, version=Version(None, "v2")).save(_frame().head(1))
    assert len(TableDataset(filepath=path, version=Version(None, None)).load()) == 1
    assert len(_files(tmp_path)) == 4


def test_a_failed_csv_write_leaves_neither_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the CSV folder would go")
    dataset = TableDataset(
        filepath=str(tmp_path / "T.parquet"),
        csv_filepath=str(blocker / "T.csv"),
        version=Version(None, "v1"),
    )
    with pytest.raises(DatasetError) as raised:  # Kedro's save wrapper wraps the OSError
        dataset.save(_frame())
    assert isinstance(raised.value.__cause__, NotADirectoryError)
    assert _files(tmp_path) == ["blocker"]
    assert not (tmp_path / "T.parquet" / "v1").exists()  # no empty version folder either


def test_unversioned_paths_and_the_default_csv_path(tmp_path):
    assert csv_path_for("data/08_reporting/tables/T01_SUMMARY.parquet") == (
        "data/08_reporting/tables/T01_SUMMARY.csv"
    )
    dataset = TableDataset(filepath=str(tmp_path / "T.parquet"), csv_save_args={"sep": ";"})
    dataset.save(_frame()[["a", "c"]])
    assert (tmp_path / "T.csv").read_text() == "a;c\n1;x\n2;y\n"
    assert dataset._describe()["csv_filepath"] == (tmp_path / "T.csv").as_posix()
    with pytest.raises(DatasetError, match="must differ"):
        TableDataset(filepath=str(tmp_path / "T.csv"))
    with pytest.raises(DatasetError, match="DataFrame"):
        dataset.save({"a": [1]})


def test_the_catalog_validator_refuses_a_bad_table_before_anything_is_written(tmp_path):
    entry = {
        "type": "avalanche_kedro.framework.datasets.TableDataset",
        "filepath": str(tmp_path / "T.parquet"),
        "versioned": True,
        "validator": "tests.framework.test_table_dataset.SCHEMA",
        "metadata": {"kedro-viz": {"layer": "reporting"}},
    }
    catalog = DataCatalog.from_config({"T": entry}, save_version="v1")
    with pytest.raises(Exception, match="Validation failed|ge|greater"):
        catalog.save("T", _frame().assign(a=[1, -1]))
    assert _files(tmp_path) == []
    catalog.save("T", _frame())
    assert _files(tmp_path) == ["T.csv/v1/T.csv", "T.parquet/v1/T.parquet"]
    assert catalog.load("T")["a"].tolist() == [1, 2]  # validated on load too
    # the run manifest records both files of the entry (framework/hooks.py)
    assert [p.relative_to(tmp_path).as_posix() for p in _saved_paths(catalog, "T")] == [
        "T.parquet/v1/T.parquet",
        "T.csv/v1/T.csv",
    ]
