"""Model roles as namespaces: the role list is validated and a template is namespaced per role."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline, node

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.pipelines.roles import SHARED_INPUTS, check_roles, for_role

MODELS = {"base": {"checkpoint": "a"}, "instruct": {"checkpoint": "b"}}


def test_a_valid_role_list_is_returned_in_order():
    assert check_roles(("instruct", "base"), MODELS) == ["instruct", "base"]


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ([], "non-empty list"),
        ("base", "non-empty list"),
        (["base", "base"], "distinct identifiers"),
        (["base", "2nd"], "distinct identifiers"),
        (["base", "my-model"], "distinct identifiers"),
        (["base", "chat"], r"\['chat'\] have no entry under `models`"),
    ],
)
def test_bad_role_lists_name_the_problem_and_the_fix(roles, message):
    with pytest.raises(ConfigurationError, match=message) as error:
        check_roles(roles, MODELS)
    assert "model_roles" in str(error.value) or "models.<role>" in str(error.value)


def _template() -> Pipeline:
    return Pipeline(
        [
            node(
                lambda corpus, model, n: corpus,
                ["corpus_A", "params:model", "params:windows"],
                "windows",
                name="select_windows",
            ),
            node(lambda windows: windows, "windows", "summary", name="summarize"),
        ]
    )


def test_for_role_namespaces_datasets_and_the_model_parameters_only():
    pipeline = for_role(_template(), "instruct", "capture")
    assert pipeline.inputs() == {"corpus_A", "params:models.instruct", "params:windows"}
    assert pipeline.outputs() == {"instruct.summary"}
    assert pipeline.all_outputs() == {"instruct.windows", "instruct.summary"}
    assert {n.name for n in pipeline.nodes} == {"instruct.select_windows", "instruct.summarize"}
    assert all(n.tags == {"capture"} for n in pipeline.nodes)
    assert "corpus_A" in SHARED_INPUTS


def test_two_roles_share_the_corpus_but_not_their_outputs():
    both = for_role(_template(), "base", "capture") + for_role(_template(), "instruct", "capture")
    assert both.inputs() == {
        "corpus_A",
        "params:windows",
        "params:models.base",
        "params:models.instruct",
    }
    assert both.outputs() == {"base.summary", "instruct.summary"}
