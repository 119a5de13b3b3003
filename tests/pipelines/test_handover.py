"""Each role hands its results to the cross-role steps as one dataset (pipelines/handover.py).

Hand-made pipelines with real Kedro nodes run by the SequentialRunner check that a rewired node
gets exactly the arguments it got before; the registered pipelines check that no cross-role node
reads a per-role dataset other than ``<role>.results`` and the large ones read directly.
"""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from avalanche_kedro.pipeline_registry import CROSS_ROLE, PER_ROLE, register_pipelines
from avalanche_kedro.pipelines.handover import (
    READ_DIRECTLY,
    collect_results,
    hand_over,
    handed_over,
    results_name,
)

ROLES = ["base", "instruct"]


def _per_role() -> Pipeline:
    """Per role: a -> summary (read across roles), a -> notes (a final output), a -> rasters
    (large, read directly), a -> private (read by the role itself only)."""
    nodes = []
    for role in ROLES:
        nodes += [
            node(lambda a: a + 1, f"{role}.a", f"{role}.summary", name="summary", namespace=role),
            node(lambda a: f"n{a}", f"{role}.a", f"{role}.notes", name="notes", namespace=role),
            node(lambda a: [a] * 3, f"{role}.a", f"{role}.event_rasters_A", namespace=role),
            node(lambda a: -a, f"{role}.a", f"{role}.private", name="private", namespace=role),
            node(lambda p: p, f"{role}.private", f"{role}.kept", name="kept", namespace=role),
        ]
    return Pipeline(nodes)


def _compare(x, base_summary, base_rasters, instruct_summary, base_summary_again):
    """A cross-role node with a repeated input and one read-directly dataset."""
    return (x, base_summary, len(base_rasters), instruct_summary, base_summary_again)


def _cross_role() -> Pipeline:
    return Pipeline(
        [
            node(
                _compare,
                ["x", "base.summary", "base.event_rasters_A", "instruct.summary", "base.summary"],
                "compared",
                name="compare",
                namespace="reporting.tables",
            )
        ]
    )


def _run(pipeline: Pipeline, outputs: list[str]) -> dict:
    catalog = DataCatalog(
        {
            "x": MemoryDataset(7),
            **{f"{r}.a": MemoryDataset(10 * (k + 1)) for k, r in enumerate(ROLES)},
        }
    )
    for name in outputs:
        catalog[name] = MemoryDataset()
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in outputs}


def test_a_role_hands_over_what_crosses_and_its_final_outputs_but_not_the_large_data():
    per_role, cross = _per_role(), _cross_role()
    # summary is read across roles; notes and kept are final outputs; private stays inside
    assert handed_over("base", per_role, cross) == ["kept", "notes", "summary"]
    assert handed_over("instruct", per_role, cross) == ["kept", "notes", "summary"]
    assert "event_rasters_A" in READ_DIRECTLY


def test_a_rewired_node_gets_the_same_arguments_and_keeps_its_name():
    per_role, cross = _per_role(), _cross_role()
    handover, rewire = hand_over(ROLES, per_role, cross)
    rewired = rewire(cross)
    (compare,) = rewired.nodes
    assert compare.name == "reporting.tables.compare"
    assert compare.namespace == "reporting.tables"
    assert compare.inputs == ["x", "base.results", "base.event_rasters_A", "instruct.results"]
    assert compare.outputs == ["compared"]
    assert sorted(n.name for n in handover.nodes) == [
        "base.hand_over_results",
        "instruct.hand_over_results",
    ]
    before = _run(per_role + cross, ["compared"])["compared"]
    after = _run(per_role + handover + rewired, ["compared"])["compared"]
    # base.a = 10: summary 11, rasters of length 3; instruct.a = 20: summary 21
    assert before == after == (7, 11, 3, 21, 11)
    handed = _run(per_role + handover, ["base.results"])["base.results"]
    assert handed == {"kept": -10, "notes": "n10", "summary": 11}


def test_collect_results_refuses_a_mismatch():
    assert collect_results(1, 2, names=["a", "b"]) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="expected 2 role datasets, got 1"):
        collect_results(1, names=["a", "b"])


def test_registered_cross_role_nodes_read_each_role_through_its_results(use_params):
    use_params()
    pipelines = register_pipelines()
    roles = ["base", "instruct", "untrained"]
    default = pipelines["__default__"]
    per_role = sum((pipelines[name] for name in PER_ROLE), Pipeline([]))
    cross = [n for name in CROSS_ROLE for n in pipelines[name].nodes]
    for cross_node in cross:
        if cross_node.namespace in roles:  # the hand-over node itself
            role = cross_node.namespace
            assert cross_node.outputs == [results_name(role)]
            assert all(name.startswith(f"{role}.") for name in cross_node.inputs)
            continue
        for name in cross_node.inputs:
            role, _, rest = name.partition(".")
            if role in roles:
                assert rest == "results" or rest in READ_DIRECTLY, (cross_node.name, name)
    # nothing a role writes is left unread: every final output of a role is handed over
    for role in roles:
        assert not {o for o in default.outputs() if o.startswith(f"{role}.")}, role
        assert results_name(role) in default.all_outputs() - per_role.all_outputs()


def test_one_role_still_runs_alone_and_writes_its_hand_over(use_params):
    """`kedro run --namespaces base`: the role's nodes, its hand-over among them, need nothing
    but the shared inputs and parameters."""
    use_params()
    alone = register_pipelines()["__default__"].only_nodes_with_namespaces(["base"])
    assert "base.hand_over_results" in {n.name for n in alone.nodes}
    assert "base.results" in alone.outputs()
    needed = {name for name in alone.inputs() if not name.startswith("params:")}
    assert needed <= {"corpus_A", "corpus_B", "arc_questions", "embedded_models"}, needed
