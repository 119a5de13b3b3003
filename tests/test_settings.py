"""Project settings: hook order, the soft parameter merge, the context and target rates."""

from __future__ import annotations

import shutil

import pytest
from kedro.config import OmegaConfigLoader

from avalanche_kedro.framework.hooks import (
    ActiveConfigHooks,
    InputCheckHooks,
    ProvenanceHooks,
    RemoteCodeHooks,
)
from avalanche_kedro.framework.interrupts import InterruptHooks
from avalanche_kedro.framework.lineage import LineageHooks
from avalanche_kedro.framework.threads import TorchThreadHooks
from avalanche_kedro.settings import CONFIG_LOADER_ARGS, HOOKS
from tests.conftest import PROJECT_ROOT


def _loader(tmp_path, runtime_params=None, env=None) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), env=env, runtime_params=runtime_params, **CONFIG_LOADER_ARGS
    )


def test_active_config_hook_runs_first():
    # Kedro calls hooks last-in-first-out: the config hook must be last in the tuple, the
    # interrupt hook first (it installs its handlers only after the preflight passed); the
    # lineage checks run after the input check (a missing input is named with its pipeline)
    assert [type(h) for h in HOOKS] == [
        InterruptHooks,
        LineageHooks,
        InputCheckHooks,
        ProvenanceHooks,
        TorchThreadHooks,
        RemoteCodeHooks,
        ActiveConfigHooks,
    ]


def test_runtime_params_change_only_the_keys_they_name(tmp_path):
    base = _loader(tmp_path)["parameters"]
    changed = _loader(tmp_path, {"runtime": {"batch_size": 3}})["parameters"]
    assert changed["runtime"]["batch_size"] == 3
    assert {k: v for k, v in changed["runtime"].items() if k != "batch_size"} == {
        k: v for k, v in base["runtime"].items() if k != "batch_size"
    }
    assert changed["models"] == base["models"]


def test_a_local_override_changes_only_the_keys_it_names(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    (conf / "local" / "parameters.yml").write_text("runtime:\n  progress: false\n")
    base = _loader(tmp_path)["parameters"]
    local = OmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS)["parameters"]
    assert local["runtime"] == {**base["runtime"], "progress": False}
    assert base["runtime"]["progress"] is True


def test_the_project_context_explains_parameter_errors():
    from avalanche_kedro.framework.context import AvalancheContext
    from avalanche_kedro.settings import CONTEXT_CLASS

    assert CONTEXT_CLASS is AvalancheContext


@pytest.mark.parametrize("env", ["local", "local_model", "paper", "pythia", "dask", "training"])
def test_target_rates_follow_d_ff_in_every_environment(tmp_path, env):
    calibration = _loader(tmp_path, env=env)["parameters"]["calibration"]
    assert calibration["target_rates"] == "auto"
    assert calibration["expected_events_per_site"] == [0.18944, 0.37888, 0.75776, 1.51552]
    # the config resolver that did this for conf/local_model alone is gone
    assert "custom_resolvers" not in CONFIG_LOADER_ARGS
