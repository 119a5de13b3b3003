"""Project settings: hook order, the soft parameter merge and the per-site-rates resolver."""

from __future__ import annotations

import json
import shutil

import pytest
from kedro.config import OmegaConfigLoader

from avalanche_kedro.framework.hooks import ActiveConfigHooks, InputCheckHooks, ProvenanceHooks
from avalanche_kedro.settings import CONFIG_LOADER_ARGS, HOOKS
from tests.conftest import PROJECT_ROOT


def _loader(tmp_path, runtime_params=None, env=None) -> OmegaConfigLoader:
    return OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), env=env, runtime_params=runtime_params, **CONFIG_LOADER_ARGS
    )


def test_active_config_hook_runs_first():
    # Kedro calls hooks last-in-first-out: the config hook must be last in the tuple
    assert [type(h) for h in HOOKS] == [InputCheckHooks, ProvenanceHooks, ActiveConfigHooks]


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


@pytest.mark.parametrize(("d_ff", "events", "rates"), [(512, [0.5, 1.0], [0.5 / 512, 1.0 / 512])])
def test_per_site_rates_resolver_divides_by_the_checkpoints_d_ff(tmp_path, d_ff, events, rates):
    checkpoint = tmp_path / "model"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"intermediate_size": d_ff}))
    resolver = CONFIG_LOADER_ARGS["custom_resolvers"]["per_site_rates"]
    assert resolver(str(checkpoint), events) == pytest.approx(rates, rel=0, abs=0)
