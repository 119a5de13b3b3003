"""The pipeline registry: seven pipelines, one namespaced copy per role, and __default__."""

from __future__ import annotations

import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.pipeline_registry import PIPELINE_ORDER, register_pipelines


def _namespaces(pipeline) -> set[str]:
    return {n.namespace.split(".")[0] for n in pipeline.nodes if n.namespace}


def test_every_pipeline_is_registered_with_one_copy_per_role(use_params):
    use_params()
    pipelines = register_pipelines()
    assert list(pipelines) == [*PIPELINE_ORDER, "__default__"]
    for name in ("capture", "events", "cascades", "controls", "calibration"):
        assert _namespaces(pipelines[name]) == {"base", "instruct", "untrained"}, name
    # training, replication and reporting read every role but belong to none; replication
    # and reporting are namespaces of their own (collapsible groups in Kedro-Viz)
    assert [n.name for n in pipelines["training"].nodes] == ["train_embedded_models"]
    # ... each run after the roles' hand-over nodes (pipelines/handover.py), which sit in the
    # role namespaces: one dataset <role>.results per role into the cross-role steps
    roles = ["base", "instruct", "untrained"]
    hand_over = {f"{role}.hand_over_results" for role in roles}
    for name in ("replication", "reporting"):
        by_namespace = {n.name for n in pipelines[name].nodes if n.namespace in roles}
        assert by_namespace == hand_over, name
    cross = {
        name: [n for n in pipelines[name].nodes if n.name not in hand_over]
        for name in ("replication", "reporting")
    }
    assert {n.namespace for n in cross["replication"]} == {"replication"}
    assert {n.namespace for n in cross["reporting"]} == {
        "reporting.tables",
        "reporting.figures",
        "reporting.report",
    }
    # the untrained control is compared with the trained roles (T08)
    assert "trained_vs_untrained_A" in pipelines["replication"].all_outputs()
    default = {n.name for n in pipelines["__default__"].nodes}
    assert default == {n.name for name in PIPELINE_ORDER for n in pipelines[name].nodes}


def test_the_roles_come_from_the_active_parameters(use_params):
    use_params({"model_roles": ["base"]})
    pipelines = register_pipelines()
    assert _namespaces(pipelines["capture"]) == {"base"}
    outputs = pipelines["__default__"].all_outputs()
    assert not any("instruct" in name or "untrained" in name for name in outputs)
    assert "T08_TRAINED_VS_UNTRAINED" not in outputs  # no control role, no T08


def test_gain_blocks_split_the_event_rasters(use_params):
    use_params({"events": {"gain_blocks": 2}})
    outputs = register_pipelines()["events"].all_outputs()
    blocks = sorted(
        o for o in outputs if o.startswith("base.event_rasters_A_block") and "_stats" not in o
    )
    assert blocks == ["base.event_rasters_A_block0", "base.event_rasters_A_block1"]
    assert "base.event_rasters_A" in outputs  # merged after the blocks


def test_a_bad_role_list_stops_registration(use_params):
    use_params({"model_roles": ["base", "base"]})
    with pytest.raises(ConfigurationError, match="distinct identifiers"):
        register_pipelines()
