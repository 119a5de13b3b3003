"""The training environment (``conf/training``): six saved steps of the embedded model as an
ordered series, and the pipelines the registry builds for it (T09, F12, the series checks)."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.project import settings

from avalanche_kedro.pipelines.training.nodes import recipes_in_use
from avalanche_kedro.study.trajectory import check_series
from tests.conftest import PROJECT_ROOT

ROLES = ["step0", "step1", "step4", "step14", "step53", "step200"]


@pytest.fixture(scope="module")
def parameters():
    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"),
        env="training",
        **{k: v for k, v in settings.CONFIG_LOADER_ARGS.items()},
    )
    return loader["parameters"]


def test_the_roles_are_the_saved_steps_of_the_embedded_training_run(parameters):
    assert parameters["model_roles"] == ROLES
    recipe = parameters["embedded_checkpoints"]["tiny-llama-stdlib"]
    models = parameters["models"]
    assert {models[r]["checkpoint"] for r in ROLES} == {recipe["path"]}
    from avalanche_kedro.measure.training import checkpoint_steps

    saved = checkpoint_steps(recipe["training"]["steps"], recipe["training"]["checkpoints"])
    assert [models[r]["step"] for r in ROLES] == list(saved) == [0, 1, 4, 14, 53, 200]
    assert check_series(ROLES, models) == dict(zip(ROLES, saved, strict=True))
    assert parameters["trajectory"] == {"enabled": True}
    assert parameters["replication"]["control_role"] == "step0"
    # only the base recipe is trained for this series (no fine-tune)
    assert recipes_in_use(parameters["embedded_checkpoints"], models, ROLES) == [
        "tiny-llama-stdlib"
    ]
    # the default study is not a series
    base = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), **{k: v for k, v in settings.CONFIG_LOADER_ARGS.items()}
    )["parameters"]
    assert base["trajectory"] == {"enabled": False}


def test_the_registry_builds_the_series_nodes_for_the_training_env(monkeypatch):
    from avalanche_kedro.framework import active_config
    from avalanche_kedro.pipeline_registry import register_pipelines

    monkeypatch.setenv("KEDRO_ENV", "training")
    monkeypatch.setitem(active_config._ACTIVE, "config_loader", None)
    pipelines = register_pipelines()
    names = {node.name for node in pipelines["__default__"].nodes}
    assert {
        "replication.compare_training_steps",
        "reporting.tables.build_T09_TRAINING_TRAJECTORY",
        "reporting.figures.draw_F12_TRAINING_TRAJECTORY",
        "replication.compare_with_control",
        "step200.resolve_model",
    } <= names
    assert "base.resolve_model" not in names
