"""Cross-role node inputs: listed per role in a fixed order, regrouped by name and role."""

from __future__ import annotations

import pytest

from avalanche_kedro.pipelines.roles_io import regroup, role_inputs


def test_role_inputs_list_every_name_of_every_role_in_order():
    assert role_inputs(["base", "instruct"], ["gstar_A", "windows"]) == [
        "base.gstar_A",
        "base.windows",
        "instruct.gstar_A",
        "instruct.windows",
    ]


def test_regroup_inverts_role_inputs():
    roles, names = ["base", "instruct", "untrained"], ["a", "b"]
    values = [f"value of {name}" for name in role_inputs(roles, names)]
    assert regroup(values, roles, names) == {
        "a": {r: f"value of {r}.a" for r in roles},
        "b": {r: f"value of {r}.b" for r in roles},
    }


def test_regroup_refuses_a_wrong_number_of_values():
    with pytest.raises(ValueError, match="expected 4 role inputs, got 3"):
        regroup([1, 2, 3], ["base", "instruct"], ["a", "b"])
