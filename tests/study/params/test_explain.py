"""Messages for invalid parameters: the dotted key, the file it came from, the allowed values."""

from __future__ import annotations

from avalanche_kedro.study.params import (
    BLOCKS,
    CalibrationParams,
    GainGrid,
    ModelParams,
    parameter_problems,
    parameter_sources,
)


def _conf(tmp_path):
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "paper").mkdir()
    (tmp_path / "conf" / "base" / "parameters_capture.yml").write_text(
        "calibration:\n  spike_defs: [SPIKE_ONE_SIDED_POS]\n  target_rates: auto\n"
    )
    (tmp_path / "conf" / "paper" / "parameters_capture.yml").write_text(
        "calibration:\n  target_rates: [0.0, 2.0e-5]\n"
    )
    return tmp_path / "conf"


def test_a_bad_value_names_the_key_the_file_and_the_allowed_values(tmp_path):
    sources = parameter_sources(_conf(tmp_path), ["base", "paper"])
    params = {"calibration": {"spike_defs": ["SPIKE_ONE_SIDED_POS"], "target_rates": [0.0, 2e-5]}}
    [line] = parameter_problems(params, {"calibration": CalibrationParams}, sources)
    assert line.startswith(
        "calibration.target_rates.0 = 0.0 (from conf/paper/parameters_capture.yml)"
    )
    assert "greater than 0" in line and "auto" in line and "(0, 1)" in line


def test_an_unknown_key_lists_the_keys_allowed_there(tmp_path):
    sources = parameter_sources(_conf(tmp_path), ["base", "paper"], {"calibration": {"tau": 1}})
    params = {"calibration": {"spike_defs": ["SPIKE_ONE_SIDED_POS"], "tau": 1}}
    [line] = parameter_problems(params, {"calibration": CalibrationParams}, sources)
    assert "calibration.tau = 1 (from --params): unknown key" in line
    assert "eps, expected_events_per_site, spike_defs, target_rates, tau0" in line


def test_namespaced_model_keys_and_whole_blocks(tmp_path):
    params = {"models": {"base": {"checkpoint": "x", "step": -1}}, "gain_grid": []}
    lines = parameter_problems(params, {"models.base": ModelParams, "gain_grid": GainGrid})
    assert lines[0].startswith("models.base.step = -1: ")
    assert "final or a training step >= 0" in lines[0]
    assert lines[1].startswith("gain_grid = []: ") and "includes 1.0" in lines[1]


def test_every_block_of_conf_base_is_valid():
    from kedro.config import OmegaConfigLoader

    from avalanche_kedro.settings import CONFIG_LOADER_ARGS
    from tests.conftest import PROJECT_ROOT

    params = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), **CONFIG_LOADER_ARGS)["parameters"]
    requirements = {**BLOCKS, **{f"models.{r}": ModelParams for r in params["model_roles"]}}
    assert parameter_problems(params, requirements) == []
