"""The project context turns Kedro's parameter validation error into the project's style."""

from __future__ import annotations

import shutil

import pytest
from kedro.config import OmegaConfigLoader
from kedro.validation.exceptions import ParameterValidationError

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.framework.context import (
    ParameterError,
    explain_parameters,
    registry_parameters,
)
from avalanche_kedro.settings import CONFIG_LOADER_ARGS
from avalanche_kedro.study.params import CalibrationParams, RuntimeParams
from tests.conftest import PROJECT_ROOT


def test_parameter_error_is_both_a_project_and_a_kedro_error():
    error = ParameterError("calibration.tau is unknown", "remove it")
    assert isinstance(error, ConfigurationError) and isinstance(error, ParameterValidationError)
    assert "How to fix: remove it" in str(error)


@pytest.mark.parametrize("runtime", [None, {"runtime": {"batch_size": 0}}])
def test_explain_names_the_environment_file_or_params(tmp_path, runtime):
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "parameters.yml").write_text("runtime:\n  batch_size: 0\n")
    loader = OmegaConfigLoader(str(conf), runtime_params=runtime, **CONFIG_LOADER_ARGS)
    requirements = {"runtime": RuntimeParams, "calibration": CalibrationParams}
    [line] = explain_parameters(loader, None, requirements, runtime)
    where = "--params" if runtime else "conf/local/parameters.yml"
    assert line.startswith(f"runtime.batch_size = 0 (from {where}): ")
    assert "an integer >= 1" in line


def _loader(tmp_path, local_yaml: str, runtime=None):
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "parameters_typo.yml").write_text(local_yaml)
    return OmegaConfigLoader(str(conf), runtime_params=runtime, **CONFIG_LOADER_ARGS)


def test_registry_parameters_pass_every_shipped_environment():
    for env in ("local", "paper", "local_model", "pythia", "dask", "training"):
        loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
        assert "runtime" in registry_parameters(loader), env


def test_a_misspelt_block_is_refused_with_a_suggestion_and_its_file(tmp_path):
    """Kedro validates only the blocks that nodes read: `calibation:` would be ignored."""
    loader = _loader(tmp_path, "calibation:\n  target_rates: [1.0e-3]\n")
    with pytest.raises(ParameterError) as caught:
        registry_parameters(loader)
    message = str(caught.value)
    assert "calibation (from conf/local/parameters_typo.yml): unknown parameter block" in message
    assert "did you mean calibration?" in message and "allowed top-level keys: " in message


def test_a_typo_in_a_block_that_decides_which_nodes_exist_is_refused(tmp_path):
    """`lens: {enabeld: true}` would silently leave the lens pipeline out, unvalidated."""
    loader = _loader(tmp_path, "lens:\n  enabeld: true\n")
    with pytest.raises(ParameterError, match=r"lens\.enabeld .*unknown key; allowed keys here: "):
        registry_parameters(loader)
    loader = _loader(tmp_path / "2", "events:\n  gain_blocks: 0\n")
    with pytest.raises(ParameterError, match=r"events\.gain_blocks = 0 .*an integer >= 1"):
        registry_parameters(loader)


def test_top_level_runtime_params_stay_allowed(tmp_path):
    """conf/local_model reads `--params checkpoint=...` at the top level."""
    loader = _loader(tmp_path, "runtime:\n  batch_size: 4\n", runtime={"checkpoint": "/m"})
    assert registry_parameters(loader)["checkpoint"] == "/m"
