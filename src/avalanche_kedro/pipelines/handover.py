"""Each model role hands its results to the cross-role steps as one dataset, ``<role>.results``.

The replication and reporting nodes read some twenty datasets of every role (manifests,
summaries, fits, the g* table ...). Kedro-Viz draws every dataset that leaves a top-level
namespace at the top level of the default view, so read one by one they put about 25 datasets
per role side by side there and the view opens at its 10 % floor (docs/design.md, "Lineage
view"). Here each role ends with one node, ``<role>.hand_over_results``, that reads those
datasets and the role's final outputs nothing else reads, and returns them as one mapping
``{name: value}`` (catalog ``{role}.results``, a versioned pickle); the cross-role nodes are
rewired to read the mapping and get exactly the values they read before (same functions,
same argument order, same node names). The large per-window data (:data:`READ_DIRECTLY`: the
event rasters F01 draws, the avalanche table the control comparison resamples) is still read
from its own files, so nothing large is copied.

The per-role datasets stay in the catalog under their own names (notebooks and
``kedro run --namespaces <role>`` are unchanged); ``<role>.results`` is the snapshot of them
that the cross-role steps of the same run read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node
from kedro.pipeline.node import Node

#: Per-role datasets the cross-role nodes keep reading from their own files (large: one row
#: per window and site, or per avalanche).
READ_DIRECTLY = frozenset({"event_rasters_A", "avalanches_A"})
#: Name of the hand-over dataset within a role's namespace.
RESULTS = "results"
#: Name of the hand-over node within a role's namespace.
HAND_OVER_NODE = "hand_over_results"


def results_name(role: str) -> str:
    """``<role>.results``: the dataset a role hands to replication and reporting."""
    return f"{role}.{RESULTS}"


def collect_results(*values: Any, names: Sequence[str]) -> dict[str, Any]:
    """``{name: value}`` for the role's datasets ``names`` (loaded in that order)."""
    if len(values) != len(names):
        raise ValueError(f"expected {len(names)} role datasets, got {len(values)}")
    return dict(zip(names, values, strict=True))


def handed_over(role: str, per_role: Pipeline, cross_role: Pipeline) -> list[str]:
    """The names (without the role prefix) ``role`` hands over, sorted: its datasets the
    cross-role nodes read, and its final outputs (written, read by no node), except
    :data:`READ_DIRECTLY`."""
    prefix = f"{role}."
    read = {name for name in cross_role.inputs() if name.startswith(prefix)}
    final = {name for name in per_role.outputs() if name.startswith(prefix)}
    names = {name[len(prefix) :] for name in read | final}
    return sorted(names - READ_DIRECTLY - {RESULTS})


def _reading_results(
    function: Callable[..., Any], inputs: Sequence[str], loaded_as: Sequence[str], where: dict
) -> Callable[..., Any]:
    """``function`` called with its original ``inputs`` rebuilt from the loaded ``loaded_as``
    (``where[input] = (results dataset, name)`` for the handed-over ones)."""

    def run(*values: Any) -> Any:
        loaded = dict(zip(loaded_as, values, strict=True))
        args = [
            loaded[where[name][0]][where[name][1]] if name in where else loaded[name]
            for name in inputs
        ]
        return function(*args)

    return update_wrapper(run, function)


def _rewired(cross_node: Node, handed: dict[str, set[str]]) -> Node:
    """``cross_node`` reading ``<role>.results`` in place of the datasets it hands over."""
    where = {}
    for name in cross_node.inputs:
        role, _, rest = name.partition(".")
        if rest in handed.get(role, ()):
            where[name] = (results_name(role), rest)
    if not where:
        return cross_node
    if not isinstance(cross_node._inputs, list | str):  # noqa: SLF001 - dict inputs are kwargs
        raise TypeError(f"cross-role node {cross_node.name} must take positional inputs")
    loaded_as = list(dict.fromkeys(where[n][0] if n in where else n for n in cross_node.inputs))
    function = _reading_results(cross_node.func, cross_node.inputs, loaded_as, where)
    # Node._copy keeps the name, namespace, tags and outputs exactly (Kedro's own namespacing
    # uses it); only the function and the inputs change
    return cross_node._copy(func=function, inputs=loaded_as)  # noqa: SLF001


def hand_over(
    roles: Sequence[str], per_role: Pipeline, cross_role: Pipeline
) -> tuple[Pipeline, Callable[[Pipeline], Pipeline]]:
    """The hand-over nodes of every role, and a function that rewires a cross-role pipeline
    (a part of ``cross_role``) to read them.

    ``per_role`` is every per-role pipeline of the run, ``cross_role`` every replication and
    reporting node; both as registered, reading ``<role>.<name>``."""
    handed = {role: handed_over(role, per_role, cross_role) for role in roles}
    nodes = [
        node(
            update_wrapper(partial(collect_results, names=names), collect_results),
            inputs=[f"{role}.{name}" for name in names],
            outputs=results_name(role),
            name=HAND_OVER_NODE,
            namespace=role,
            # tagged like the steps that read it, so `kedro run --tags reporting` refreshes it
            tags=["hand_over", "replication", "reporting"],
        )
        for role, names in handed.items()
        if names
    ]
    handed_sets = {role: set(names) for role, names in handed.items()}

    def rewire(pipeline: Pipeline) -> Pipeline:
        return Pipeline([_rewired(n, handed_sets) for n in pipeline.nodes])

    return Pipeline(nodes), rewire
