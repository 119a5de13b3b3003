"""Relative paths in parameters resolve against the remembered Kedro project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from avalanche_kedro.core import paths
from avalanche_kedro.core.paths import project_path, remember_project_root


@pytest.fixture
def no_root(monkeypatch):
    """A fresh module state with no remembered root (the real one is restored afterwards)."""
    monkeypatch.setattr(paths, "_ROOT", {"project": None})
    return paths._ROOT


def test_absolute_path_stays(no_root, tmp_path):
    no_root["project"] = tmp_path / "project"
    assert project_path("/srv/models/llama") == Path("/srv/models/llama")
    assert project_path(Path("/srv/models/llama")) == Path("/srv/models/llama")


def test_relative_path_resolves_against_the_remembered_root(no_root, tmp_path, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # the shell is elsewhere, as in a notebook
    remember_project_root(root)
    assert no_root["project"] == root.resolve()
    assert project_path("data/06_models/small") == root.resolve() / "data" / "06_models" / "small"
    assert project_path(Path("conf")) == root.resolve() / "conf"
    assert project_path(".") == root.resolve()


def test_remember_project_root_resolves_a_relative_root_once(no_root, tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path)
    remember_project_root("project")
    assert no_root["project"] == (tmp_path / "project").resolve()
    monkeypatch.chdir(tmp_path / "project")  # changing directory later changes nothing
    assert project_path("data") == (tmp_path / "project").resolve() / "data"


def test_home_is_expanded_and_then_absolute(no_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    no_root["project"] = tmp_path / "project"
    assert project_path("~/models/llama") == tmp_path / "home" / "models" / "llama"
    assert project_path("~") == tmp_path / "home"


def test_without_a_remembered_root_the_current_directory_is_used(no_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_path("data/scratch") == Path.cwd() / "data" / "scratch"
    assert project_path("data/scratch").is_absolute()
