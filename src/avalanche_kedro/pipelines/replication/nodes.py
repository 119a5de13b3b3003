"""Nodes of the replication pipeline (cross-role; namespace ``replication``, datasets unprefixed)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ...study.control import control_table, with_paired_perplexity
from ...study.params import CascadesParams, ControlsParams
from ...study.replication import (
    check_comparable_roles,
    check_distinct_weights,
    replication_table,
)
from ...study.trajectory import resolved_steps, trajectory_differences
from ..roles_io import regroup

CHECK_INPUTS = ["model_manifest", "slice_manifest", "instrumentation_report"]
COMPARE_INPUTS = [
    "model_manifest",
    "gstar_A",
    "conditions_A",
    "branching_per_window_A",
    "null_branching_per_window_A",
]
CONTROL_INPUTS = [*COMPARE_INPUTS, "avalanches_A"]
#: read after CONTROL_INPUTS by the T08 node: the per-window LM loss on dataset B (the paired
#: perplexity difference role - control at g = 1)
CONTROL_LM_INPUTS = ["lm_loss_B"]


def check_roles(*values, roles: Sequence[str], series: bool = False) -> dict:
    """Stop unless every role shares the tokenizer, the windows and the layer count; for a
    training series (``series``) also unless the recorded steps increase and every step has
    its own weights. Runs as soon as every role's capture is done, before any measurement."""
    data = regroup(values, roles, CHECK_INPUTS)
    check_comparable_roles(
        data["model_manifest"], data["slice_manifest"], data["instrumentation_report"]
    )
    steps = None
    if series:
        steps = resolved_steps(roles, data["model_manifest"])
        check_distinct_weights(data["model_manifest"])
    reference = roles[0]
    return {
        "roles": list(roles),
        "reference_role": reference,
        "tokenizer_sha256": data["model_manifest"][reference]["tokenizer_sha256"],
        "n_layers": data["instrumentation_report"][reference]["n_layers"],
        "slice_sha256": {
            s["slice"]: s["sha256"] for s in data["slice_manifest"][reference]["slices"]
        },
        "model_ids": {role: data["model_manifest"][role]["model_id"] for role in roles},
        "training_steps": steps,  # {role: step} for a training series, else None
    }


def compare_roles(
    replication_checks: dict, controls: ControlsParams, *values, roles: Sequence[str]
) -> pd.DataFrame:
    """Paired differences of delta_b_tot and chi between each role and the reference."""
    data = regroup(values, roles, COMPARE_INPUTS)
    return replication_table(
        roles,
        {role: manifest["model_id"] for role, manifest in data["model_manifest"].items()},
        data["gstar_A"],
        data["conditions_A"],
        data["branching_per_window_A"],
        data["null_branching_per_window_A"],
        ControlsParams.coerce(controls).bootstrap_replicates,
    )


def _paired_arguments(
    values: Sequence, roles: Sequence[str], controls: ControlsParams, cascades: CascadesParams
) -> tuple[list, dict]:
    """The per-role inputs of T08 / T09 in the order :func:`control_table` and
    :func:`trajectory_differences` take them after their roles, and the crackling settings."""
    data = regroup(values, roles, CONTROL_INPUTS)
    crackling = CascadesParams.coerce(cascades or {}).crackling
    positional = [
        {role: manifest["model_id"] for role, manifest in data["model_manifest"].items()},
        data["gstar_A"],
        data["conditions_A"],
        data["branching_per_window_A"],
        data["null_branching_per_window_A"],
        data["avalanches_A"],
        ControlsParams.coerce(controls).bootstrap_replicates,
    ]
    keywords = {
        "d_min": crackling.d_min,
        "d_max": crackling.d_max,
        "min_points": crackling.min_points,
    }
    return positional, keywords


def compare_with_control(
    replication_checks: dict,
    controls: ControlsParams,
    cascades: CascadesParams,
    *values,
    roles: Sequence[str],
    control_role: str,
) -> pd.DataFrame:
    """Paired differences (trained - control) of b_tot, delta_b_tot, chi and crackling gamma
    at each role's g* and at g = 1, on the same window replicates (T08), and the paired
    dataset B perplexity difference at g = 1 (``opt_ppl_B_g1_diff``, same B windows)."""
    split = len(roles) * len(CONTROL_INPUTS)
    positional, keywords = _paired_arguments(values[:split], roles, controls, cascades)
    table = control_table(roles, control_role, *positional, **keywords)
    losses = regroup(values[split:], roles, CONTROL_LM_INPUTS)["lm_loss_B"]
    replicates = ControlsParams.coerce(controls).bootstrap_replicates
    return with_paired_perplexity(table, losses, control_role, replicates)


def compare_training_steps(
    replication_checks: dict,
    controls: ControlsParams,
    cascades: CascadesParams,
    *values,
    roles: Sequence[str],
) -> pd.DataFrame:
    """The roles as a training series (their recorded steps, checked by :func:`check_roles`):
    the paired differences of every step to step 0 and to the previous step (T09)."""
    positional, keywords = _paired_arguments(values, roles, controls, cascades)
    return trajectory_differences(
        roles, replication_checks["training_steps"], *positional, **keywords
    )
