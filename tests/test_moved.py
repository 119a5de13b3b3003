"""Old flat import paths (before the package was grouped, issue 11) keep working and say where
the module lives now."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from avalanche_kedro import _moved
from avalanche_kedro._moved import MOVED_MODULES, new_module_name
from tests.conftest import PROJECT_ROOT


def _fresh_import(name: str, monkeypatch):
    """Import ``name`` as if for the first time (the one-warning-per-module memory cleared)."""
    monkeypatch.setattr(_moved, "_WARNED", set())
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, key)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    return module, [w for w in caught if issubclass(w.category, FutureWarning)]


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_every_old_path_is_the_new_module_and_warns_with_its_new_path(old, monkeypatch):
    new = f"avalanche_kedro.{MOVED_MODULES[old]}"
    module, caught = _fresh_import(f"avalanche_kedro.{old}", monkeypatch)
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new  # its identity is kept
    assert len(caught) == 1
    assert f"avalanche_kedro.{old} moved to {new}" in str(caught[0].message)


def test_names_import_from_old_paths_as_notebooks_wrote_them(monkeypatch):
    _fresh_import("avalanche_kedro.lattice", monkeypatch)
    from avalanche_kedro.lattice import avalanches  # noqa: F401 - the old spelling

    from avalanche_kedro.analysis import lattice

    assert avalanches is lattice.avalanches


def test_submodules_of_a_moved_package_resolve_too(monkeypatch):
    _fresh_import("avalanche_kedro.runners", monkeypatch)
    old = importlib.import_module("avalanche_kedro.runners.dask_runner")
    new = importlib.import_module("avalanche_kedro.framework.runners.dask_runner")
    assert old is new
    assert new_module_name("avalanche_kedro.runners.dask_runner") == new.__name__


def test_paths_that_never_existed_are_not_claimed():
    assert new_module_name("avalanche_kedro.pipelines.capture") is None
    assert new_module_name("avalanche_kedro.no_such_module") is None
    assert new_module_name("numpy.lattice") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("avalanche_kedro.no_such_module")


def test_a_moved_path_whose_target_is_gone_names_the_move(monkeypatch):
    monkeypatch.setitem(MOVED_MODULES, "old_thing", "analysis.vanished")
    with pytest.raises(
        ImportError,
        match=r"avalanche_kedro.old_thing moved to "
        r"avalanche_kedro.analysis.vanished, which does not exist",
    ):
        importlib.import_module("avalanche_kedro.old_thing")


def test_python_dash_m_on_an_old_path_runs_the_new_module():
    result = subprocess.run(
        [sys.executable, "-m", "avalanche_kedro.benchmark", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "{events,scaling,components,lens,threads,whole-run}" in result.stdout
    assert "avalanche_kedro.benchmark moved to avalanche_kedro.tools.benchmark" in result.stderr


def test_an_old_catalog_type_still_loads(tmp_path, monkeypatch):
    from kedro.io import DataCatalog

    monkeypatch.setattr(_moved, "_WARNED", set())
    monkeypatch.delitem(sys.modules, "avalanche_kedro.datasets", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        catalog = DataCatalog.from_config(
            {
                "corpus": {
                    "type": "avalanche_kedro.datasets.PythonTextCorpus",
                    "source": "pydoc_topics",
                }
            }
        )
        records = list(catalog.load("corpus"))
    from avalanche_kedro.measure.corpora import pydoc_topics

    assert records == pydoc_topics()
    assert any("avalanche_kedro.framework.datasets" in str(w.message) for w in caught)
