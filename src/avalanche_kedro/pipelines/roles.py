"""Model roles as Kedro namespaces: one template pipeline, instantiated once per role.

Each role (e.g. ``base`` and ``instruct``) gets its own copy of every per-model pipeline under
the namespace ``<role>``: its datasets are named ``<role>.<dataset>`` (matched by the
``{role}.*`` dataset factories of the catalog) and ``kedro run --namespaces <role>`` runs that
model alone. The role's model parameters are ``models.<role>``; every other parameter is
shared by all roles, so all models see the same windows, rates and gains.
"""

from __future__ import annotations

import re

from kedro.pipeline import Pipeline

from ..core.errors import ConfigurationError

#: Inputs shared by every role (not namespaced).
SHARED_INPUTS = {"corpus_A", "corpus_B", "arc_questions", "embedded_models"}
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_roles(roles: object, models: object) -> list[str]:
    """Validate ``model_roles`` against ``models``; returns the role names."""
    if not isinstance(roles, list | tuple) or not roles:
        raise ConfigurationError(
            f"model_roles must be a non-empty list of role names, got {roles!r}.",
            "Set model_roles in conf/<env>/parameters.yml, e.g. [base, instruct].",
        )
    bad = [r for r in roles if not isinstance(r, str) or not _ROLE_NAME.match(r)]
    if bad or len(set(roles)) != len(roles):
        raise ConfigurationError(
            f"Model role names must be distinct identifiers (letters, digits, _); got {roles}.",
            "Rename the roles in model_roles (they become Kedro namespaces).",
        )
    missing = [r for r in roles if not isinstance(models, dict) or r not in models]
    if missing:
        raise ConfigurationError(
            f"Model roles {missing} have no entry under `models`.",
            "Add models.<role>.checkpoint for every role listed in model_roles.",
        )
    return list(roles)


def for_role(template: Pipeline, role: str, tag: str) -> Pipeline:
    """Namespace ``template`` under ``role``: datasets become ``<role>.<name>``, the parameter
    ``params:model`` becomes ``params:models.<role>`` and every other parameter stays shared."""
    free_inputs = template.inputs()
    params = {name for name in free_inputs if name.startswith("params:")}
    mapping = {name: name for name in params if name != "params:model"}
    if "params:model" in params:
        mapping["params:model"] = f"params:models.{role}"
    shared = {name for name in free_inputs if name in SHARED_INPUTS}
    return Pipeline(
        template,
        namespace=role,
        inputs=shared or None,
        parameters=mapping or None,
        tags=[tag],
    )
