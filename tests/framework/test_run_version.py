"""The run's save version as a read-only dataset (the report's figure links)."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, DatasetError

from avalanche_kedro.framework.run_version import SaveVersionDataset

CONFIG = {"run_save_version": {"type": "avalanche_kedro.framework.run_version.SaveVersionDataset"}}


def test_it_loads_the_save_version_the_catalog_gives_every_versioned_dataset():
    catalog = DataCatalog.from_config(
        {
            **CONFIG,
            "report": {"type": "text.TextDataset", "filepath": "unused.md", "versioned": True},
        },
        save_version="2026-01-01T00.00.00.000Z",
    )
    assert catalog.load("run_save_version") == "2026-01-01T00.00.00.000Z"
    assert catalog.get("report")._version.save == catalog.load("run_save_version")
    assert catalog.exists("run_save_version")
    # without an explicit save version the catalog makes one, shared by every dataset
    shared = DataCatalog.from_config(CONFIG)
    assert shared.load("run_save_version") == shared.load("run_save_version")


def test_it_is_read_only_and_needs_a_version():
    catalog = DataCatalog.from_config(CONFIG, save_version="v")
    with pytest.raises(DatasetError, match="read-only"):
        catalog.save("run_save_version", "other")
    bare = SaveVersionDataset()
    assert not bare.exists()
    with pytest.raises(DatasetError, match="only known inside a Kedro run"):
        bare.load()
    # no file: the Dask runner's shared-storage check has nothing to look for
    assert not hasattr(bare, "_filepath")
