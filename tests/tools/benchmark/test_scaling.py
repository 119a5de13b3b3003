"""The scaling benchmark's project copy and table digests (the timed runs themselves take
minutes and are measured by hand: docs/scaling.md)."""

from __future__ import annotations

import hashlib

import pandas as pd

from avalanche_kedro.tools.benchmark.scaling import fresh_project_copy, table_digests
from tests.conftest import PROJECT_ROOT


def test_fresh_project_copy_has_conf_raw_data_and_quiet_progress(tmp_path):
    project = fresh_project_copy(PROJECT_ROOT, tmp_path)
    assert project == tmp_path / "project"
    assert (project / "pyproject.toml").read_text() == (PROJECT_ROOT / "pyproject.toml").read_text()
    assert (project / "conf" / "base" / "parameters.yml").exists()
    assert (project / "conf" / "local" / "parameters.yml").read_text() == (
        "runtime:\n  progress: false\n"
    )
    assert (project / "data" / "01_raw" / "arc_embedded.jsonl").exists()
    assert (project / "src").is_dir() and not any((project / "src").iterdir())


def test_table_digests_hash_every_saved_parquet_table(tmp_path):
    tables = tmp_path / "data" / "08_reporting" / "tables"
    files = {}
    for name, version in (("T01_SUMMARY", "2026-01-01T00.00.00.000Z"), ("T02_X", "v1")):
        path = tables / f"{name}.parquet" / version / f"{name}.parquet"
        path.parent.mkdir(parents=True)
        pd.DataFrame({"a": [1, 2], "name": [name, name]}).to_parquet(path)
        files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tables / "notes.csv").write_text("not a parquet table\n")
    assert table_digests(tmp_path) == files
