"""The active session's config loader, remembered for the pipeline registry."""

from __future__ import annotations

import shutil

import pytest

from avalanche_kedro.framework import active_config
from avalanche_kedro.framework.active_config import configured_parameters, remember_config_loader
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def no_session(monkeypatch):
    monkeypatch.setitem(active_config._ACTIVE, "config_loader", None)


def test_the_remembered_loader_is_the_one_read(no_session):
    loader = {"parameters": {"model_roles": ["only"], "models": {"only": {}}}}
    remember_config_loader(loader)
    assert configured_parameters() == loader["parameters"]


def test_without_a_session_the_project_conf_of_the_cwd_is_read(no_session, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters.yml").write_text("model_roles: [base]\n")
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")  # found by walking up to the Kedro pyproject
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    assert configured_parameters()["model_roles"] == ["base"]
    monkeypatch.setenv("KEDRO_ENV", "paper")
    assert configured_parameters()["models"]["base"]["checkpoint"] == "Qwen/Qwen2.5-7B"
