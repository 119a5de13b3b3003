"""Cross-role nodes: inputs of every model role passed positionally and regrouped by role.

The replication and reporting nodes sit in their own namespaces (``replication``,
``reporting.tables`` ...) without prefixing their datasets: one node reads, say,
``base.gstar_A`` and ``instruct.gstar_A``. :func:`role_inputs` lists such inputs in a fixed
order and :func:`regroup` turns the node's positional arguments back into
``{name: {role: value}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def role_inputs(roles: Sequence[str], names: Sequence[str]) -> list[str]:
    """``["<role>.<name>", ...]`` for every role, names in order within each role."""
    return [f"{role}.{name}" for role in roles for name in names]


def regroup(
    values: Sequence[Any], roles: Sequence[str], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Inverse of :func:`role_inputs` applied to the loaded values."""
    if len(values) != len(roles) * len(names):
        raise ValueError(f"expected {len(roles) * len(names)} role inputs, got {len(values)}")
    grouped: dict[str, dict[str, Any]] = {name: {} for name in names}
    iterator = iter(values)
    for role in roles:
        for name in names:
            grouped[name][role] = next(iterator)
    return grouped
