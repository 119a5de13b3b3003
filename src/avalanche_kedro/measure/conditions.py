"""The condition table: every (model role, dataset, spike def, target, g, intervention, null).

A condition is one raster row. ``cond_id`` numbers the conditions of one table from 0 in a
fixed order (null, intervention, g, spike definition, target rate), so the same parameters
always give the same ids, and ``condition_key`` (:func:`avalanche_kedro.core.seeds.condition_key`)
names a condition without its model role so that nulls and bootstraps are paired across models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ConfigurationError
from ..core.seeds import condition_key
from .gain import INTERVENTIONS, MLP_GLOBAL
from .sweep import NULL_NONE, NULL_TOKEN_SHUFFLE_INPUT, GainSetting

CONDITION_COLUMNS = [
    "cond_id",
    "model_role",
    "dataset_role",
    "spike_def_id",
    "target_rate",
    "g",
    "intervention_id",
    "null_id",
    "condition_key",
]


def resolve_gains(spec: Any, gain_grid: Sequence[float], what: str) -> list[float]:
    """A gain list from a parameter: ``"grid"`` (the whole gain grid) or explicit gains."""
    grid = [float(g) for g in gain_grid]
    if spec == "grid":
        return grid
    if isinstance(spec, (int, float)):
        spec = [spec]
    if not isinstance(spec, Sequence) or isinstance(spec, str):
        raise ConfigurationError(
            f"{what} must be 'grid' or a list of gains, got {spec!r}.",
            f"Write `{what}: grid` or a list such as [0.7, 1.0, 1.3].",
        )
    gains = [float(g) for g in spec]
    if any(not np.isfinite(g) or g < 0 for g in gains):
        raise ConfigurationError(
            f"{what} contains a negative or non-finite gain: {gains}.",
            "Use finite gains >= 0.",
        )
    return gains


def check_gain_grid(gain_grid: Sequence[float]) -> list[float]:
    grid = [float(g) for g in gain_grid]
    if not grid or len(set(grid)) != len(grid) or 1.0 not in grid:
        raise ConfigurationError(
            f"gain_grid must be a non-empty list of distinct gains that contains 1.0; got {grid}.",
            "Fix gain_grid in conf/<env>/parameters_events.yml (the paper grid is "
            "[0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3]).",
        )
    return grid


def plan_conditions(
    model_role: str,
    dataset_role: str,
    gain_grid: Sequence[float],
    interventions: Mapping[str, Any],
    token_shuffle_gains: Any,
    spike_defs: Sequence[str],
    target_rates: Sequence[float],
    require_mlp_global: bool = True,
) -> pd.DataFrame:
    """All real and token-shuffle conditions of one dataset for one model role.

    ``interventions`` maps an intervention id to ``"grid"`` or a list of gains. The token
    shuffle null (SPEC §7) reuses the real ``MLP_GLOBAL`` thresholds of the same gain, so its
    gains must be among the ``MLP_GLOBAL`` gains. ``require_mlp_global=False`` allows a plan of
    ablation interventions alone.
    """
    grid = check_gain_grid(gain_grid)
    unknown = [i for i in interventions if i not in INTERVENTIONS]
    if unknown:
        raise ConfigurationError(
            f"Unknown interventions {unknown} in events.interventions.",
            f"Use ids from {list(INTERVENTIONS)}.",
        )
    if require_mlp_global and MLP_GLOBAL not in interventions:
        raise ConfigurationError(
            "events.interventions has no MLP_GLOBAL entry; the gain sweep needs it.",
            "Add `MLP_GLOBAL: grid` under events.interventions.",
        )
    plan = {
        intervention: resolve_gains(spec, grid, f"events.interventions.{intervention}")
        for intervention, spec in interventions.items()
    }
    shuffle = resolve_gains(token_shuffle_gains, grid, "events.token_shuffle_gains")
    missing = sorted(set(shuffle) - set(plan.get(MLP_GLOBAL, [])))
    if missing:
        raise ConfigurationError(
            f"Token-shuffle gains {missing} have no MLP_GLOBAL thresholds.",
            "Make events.token_shuffle_gains a subset of the MLP_GLOBAL gains.",
        )
    rows = []
    blocks = [(NULL_NONE, i, g) for i in INTERVENTIONS if i in plan for g in plan[i]]
    blocks += [(NULL_TOKEN_SHUFFLE_INPUT, MLP_GLOBAL, g) for g in shuffle]
    for null_id, intervention, g in blocks:
        for spike_def in spike_defs:
            for rate in target_rates:
                rows.append(
                    {
                        "model_role": model_role,
                        "dataset_role": dataset_role,
                        "spike_def_id": spike_def,
                        "target_rate": float(rate),
                        "g": float(g),
                        "intervention_id": intervention,
                        "null_id": null_id,
                        "condition_key": condition_key(
                            dataset_role, spike_def, rate, g, intervention
                        ),
                    }
                )
    table = pd.DataFrame(rows)
    table.insert(0, "cond_id", np.arange(len(table), dtype=np.int32))
    return table[CONDITION_COLUMNS]


def threshold_settings(conditions: pd.DataFrame) -> list[GainSetting]:
    """The (intervention, g) pairs that need thresholds: those of the real conditions."""
    real = conditions[conditions["null_id"] == NULL_NONE]
    pairs = real[["intervention_id", "g"]].drop_duplicates()
    return [GainSetting(row.intervention_id, float(row.g)) for row in pairs.itertuples()]
