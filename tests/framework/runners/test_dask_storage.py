"""The Dask run's storage checks: datasets passed only in memory and paths the workers do not
share are refused before any node runs, naming the datasets or workers and the fix."""

from __future__ import annotations

import os

import pytest

from tests.framework.runners.test_dask_runner import make_cluster

pytestmark = pytest.mark.slow

distributed = pytest.importorskip("distributed")


def _first(frame):
    return frame.head(1)


def test_datasets_only_in_memory_are_refused(tmp_path):
    from kedro.io import DataCatalog, MemoryDataset
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pandas import CSVDataset

    from avalanche_kedro.core.errors import ScaleOutError
    from avalanche_kedro.framework.runners.dask_storage import check_persisted

    pipeline = Pipeline([node(_first, "a", "b", name="n1"), node(_first, "b", "c", name="n2")])
    catalog = DataCatalog(
        datasets={"a": CSVDataset(filepath=str(tmp_path / "a.csv")), "b": MemoryDataset()}
    )
    with pytest.raises(ScaleOutError, match="only in memory cannot cross Dask workers: b, c"):
        check_persisted(pipeline, catalog)


def test_storage_the_workers_cannot_see_is_refused(tmp_path):
    """A path that means something else on the workers (here: relative, with the workers in
    another directory) fails before any node runs, naming the workers and the path."""
    from distributed import Client
    from kedro.io import DataCatalog
    from kedro.pipeline import Pipeline, node
    from kedro_datasets.pandas import CSVDataset

    from avalanche_kedro.core.errors import ScaleOutError
    from avalanche_kedro.framework.runners.dask_storage import check_shared_storage

    client_side, worker_side = tmp_path / "client", tmp_path / "elsewhere"
    client_side.mkdir()
    worker_side.mkdir()
    cluster = make_cluster([{}, {}])
    client = Client(cluster)
    here = os.getcwd()
    try:
        client.run(os.chdir, str(worker_side))
        os.chdir(client_side)
        pipeline = Pipeline([node(_first, "a", "b", name="n1")])
        catalog = DataCatalog(
            datasets={
                "a": CSVDataset(filepath=str(client_side / "a.csv")),
                "b": CSVDataset(filepath="out/b.csv"),
            }
        )
        (client_side / "a.csv").write_text("x\n1\n")
        with pytest.raises(ScaleOutError) as info:
            check_shared_storage(client, pipeline, catalog)
        message = str(info.value)
        assert "Dask workers do not share this run's storage (out)" in message
        assert message.count("cannot read out/.dask-storage-probe/") == 2
        assert "How to fix" in message
        # the same catalog with absolute paths on this machine's disk is shared: no error
        catalog = DataCatalog(
            datasets={
                "a": CSVDataset(filepath=str(client_side / "a.csv")),
                "b": CSVDataset(filepath=str(client_side / "out" / "b.csv")),
            }
        )
        check_shared_storage(client, pipeline, catalog)
        assert not list((client_side / "out" / ".dask-storage-probe").iterdir())
    finally:
        os.chdir(here)
        client.close()
        cluster.close()
