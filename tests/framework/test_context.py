"""The project context turns Kedro's parameter validation error into the project's style."""

from __future__ import annotations

import shutil

import pytest
from kedro.config import OmegaConfigLoader
from kedro.validation.exceptions import ParameterValidationError

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.framework.context import ParameterError, explain_parameters
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
