"""Real rasters against their nulls: per-window counts and paired bootstrap comparisons (SPEC §7).

Kedro-free: the controls pipeline (dataset A), the generalization to dataset B and the
ablations all compare conditions the same way.

* :func:`window_counts` - per-window ``n_time, n_depth, den`` and event totals of every
  condition of a raster set.
* :func:`null_window_counts` - the same for both raster nulls of every real condition, with an
  exact check of every (condition, window, layer) multiset (a violation raises).
* :func:`compare_with_nulls` - per real condition: pooled b and chi with window-bootstrap CIs,
  and for each null ``delta_b = b(real) - b(null)`` with paired CIs (one index matrix per
  condition shared by the real raster, the nulls and chi).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.bootstrap import (
    DEFAULT_REPLICATES,
    bootstrap_indices,
    percentile_interval,
    pooled_ratio,
    resample_weights,
    susceptibility_replicates,
)
from ..analysis.lattice import branching_counts, pooled_branching, susceptibility_of_totals
from ..analysis.nulls import RASTER_NULLS, assert_marginals_preserved, null_raster
from ..core.errors import ArtifactError
from ..core.threads import single_threaded_blas
from ..measure.rasters import EventRasters
from ..measure.sweep import NULL_NONE, NULL_TOKEN_SHUFFLE_INPUT

#: Column suffix of each comparison null (the permutation null is the primary one).
NULL_SUFFIX = {
    "NULL_RASTER_WITHIN_LAYER_TIME_PERM": "perm",
    "NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT": "shift",
    NULL_TOKEN_SHUFFLE_INPUT: "tokshuf",
}
B_METRICS = ("b_time", "b_depth", "b_tot")


def null_window_counts(
    rasters: EventRasters, conditions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-window branching counts of both raster nulls of every real condition.

    Every (condition, window, layer) multiset of counts is checked against the real raster;
    a violation stops the run. Returns the counts and the table of checks.
    """
    counts_parts, checks = [], []
    for row in conditions[conditions["null_id"] == NULL_NONE].itertuples():
        real = np.asarray(rasters.counts(row.cond_id))
        for null_id in RASTER_NULLS:
            null = null_raster(
                real, null_id, row.condition_key, rasters.seq_id, n_layers=rasters.n_layers
            )
            checked = assert_marginals_preserved(
                real,
                null,
                null_id,
                where=f" of condition {row.cond_id} ({row.condition_key})",
                n_layers=rasters.n_layers,
            )
            checks.append(
                {
                    "cond_id": row.cond_id,
                    "null_id": null_id,
                    "rows_checked": checked,
                    "marginals_preserved": True,
                }
            )
            table = branching_counts(null, n_layers=rasters.n_layers)
            table.insert(0, "seq_id", rasters.seq_id)
            table.insert(0, "null_id", null_id)
            table.insert(0, "cond_id", np.int32(row.cond_id))
            counts_parts.append(table)
    return pd.concat(counts_parts, ignore_index=True), pd.DataFrame(checks)


def _interval(prefix: str, replicates: np.ndarray) -> dict[str, float]:
    low, high = percentile_interval(replicates)
    return {f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def _replicate_b(weights: np.ndarray, windows: pd.DataFrame) -> dict[str, np.ndarray]:
    b_time = pooled_ratio(weights, windows["n_time"], windows["den"])
    b_depth = pooled_ratio(weights, windows["n_depth"], windows["den"])
    return {"b_time": b_time, "b_depth": b_depth, "b_tot": b_time + b_depth}


@single_threaded_blas
def compare_with_nulls(
    conditions: pd.DataFrame,
    window_table: pd.DataFrame,
    null_window_table: pd.DataFrame,
    marginal_checks: pd.DataFrame,
    replicates: int = DEFAULT_REPLICATES,
) -> pd.DataFrame:
    """Real vs null branching per real condition with paired window-bootstrap CIs.

    Columns: the real ``b_*`` and ``chi`` with CIs; for each null (``perm``, ``shift``,
    ``tokshuf``) its pooled ``b_*_<null>`` and ``delta_b_*_<null> = b_*(real) - b_*(null)``
    with paired CIs (the permutation null's deltas are also given without suffix, as in T01);
    whether both raster nulls preserved marginals exactly.
    """
    real_windows = dict(tuple(window_table.groupby("cond_id")))
    null_windows = dict(tuple(null_window_table.groupby(["cond_id", "null_id"])))
    preserved = marginal_checks.groupby(["cond_id", "null_id"])["marginals_preserved"].all()
    shuffled_cond = (
        conditions[conditions["null_id"] == NULL_TOKEN_SHUFFLE_INPUT]
        .set_index("condition_key")["cond_id"]
        .to_dict()
    )
    rows = []
    for condition in conditions[conditions["null_id"] == NULL_NONE].itertuples():
        real = real_windows[condition.cond_id].sort_values("seq_id")
        indices = bootstrap_indices(len(real), replicates, condition.condition_key)
        weights = resample_weights(indices, len(real))
        pooled = pooled_branching(real["n_time"], real["n_depth"], real["den"])
        real_reps = _replicate_b(weights, real)
        chi_reps = susceptibility_replicates(indices, real["events"])
        row = {
            "cond_id": condition.cond_id,
            "n_sequences": int(len(real)),
            "bootstrap_replicates": replicates,
            "branching_empty": bool(pooled["empty"]),
        }
        for metric in B_METRICS:
            row[metric] = pooled[metric]
            row.update(_interval(metric, real_reps[metric]))
        row["chi"] = susceptibility_of_totals(real["events"])
        row.update(_interval("chi", chi_reps))

        comparisons = {
            null_id: null_windows[(condition.cond_id, null_id)] for null_id in RASTER_NULLS
        }
        shuffle_id = shuffled_cond.get(condition.condition_key)
        if shuffle_id is not None:
            comparisons[NULL_TOKEN_SHUFFLE_INPUT] = real_windows[shuffle_id]
        for null_id, suffix in NULL_SUFFIX.items():
            if null_id not in comparisons:  # no token-shuffle null recorded at this gain
                for metric in B_METRICS:
                    for column in ("", "delta_"):
                        row[f"{column}{metric}_{suffix}"] = np.nan
                    row[f"delta_{metric}_{suffix}_ci_low"] = np.nan
                    row[f"delta_{metric}_{suffix}_ci_high"] = np.nan
                continue
            null = comparisons[null_id].sort_values("seq_id")
            if not np.array_equal(null["seq_id"].to_numpy(), real["seq_id"].to_numpy()):
                raise ArtifactError(
                    f"The {null_id} counts of condition {condition.cond_id} cover other windows "
                    "than the real raster, so they cannot be compared pairwise.",
                    "Re-run the cascades and controls pipelines on the same event rasters "
                    "(kedro run --pipelines cascades,controls).",
                )
            null_pooled = pooled_branching(null["n_time"], null["n_depth"], null["den"])
            null_reps = _replicate_b(weights, null)
            for metric in B_METRICS:
                row[f"{metric}_{suffix}"] = null_pooled[metric]
                row[f"delta_{metric}_{suffix}"] = pooled[metric] - null_pooled[metric]
                row.update(
                    _interval(f"delta_{metric}_{suffix}", real_reps[metric] - null_reps[metric])
                )
        for null_id in RASTER_NULLS:
            row[f"marginals_preserved_{NULL_SUFFIX[null_id]}"] = bool(
                preserved.get((condition.cond_id, null_id), False)
            )
        for metric in B_METRICS:  # the permutation null is the primary comparison (T01)
            row[f"delta_{metric}"] = row[f"delta_{metric}_perm"]
            row[f"delta_{metric}_ci_low"] = row[f"delta_{metric}_perm_ci_low"]
            row[f"delta_{metric}_ci_high"] = row[f"delta_{metric}_perm_ci_high"]
        rows.append(row)
    summary = pd.DataFrame(rows)
    return conditions[conditions["null_id"] == NULL_NONE].merge(
        summary, on="cond_id", validate="1:1"
    )


def window_counts(rasters: EventRasters, conditions: pd.DataFrame) -> pd.DataFrame:
    """Per-window branching counts and event totals of every condition."""
    parts = []
    for row in conditions.itertuples():
        counts = np.asarray(rasters.counts(row.cond_id))
        table = branching_counts(counts, n_layers=rasters.n_layers)
        table.insert(0, "seq_id", rasters.seq_id)
        table.insert(0, "cond_id", np.int32(row.cond_id))
        table["events"] = counts.sum(axis=(1, 2), dtype=np.int64)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)
