"""Nodes of the cascades pipeline: avalanches, branching, susceptibility, scaling (SPEC §6).

Every condition of the raster set is analysed (real conditions and the token-shuffle null);
the science is in :mod:`avalanche_kedro.analysis.lattice`, :mod:`avalanche_kedro.analysis.scaling` and
:mod:`avalanche_kedro.analysis.bootstrap`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from ...analysis.bootstrap import bootstrap_indices
from ...analysis.lattice import (
    ADJ_4N,
    avalanches,
    pooled_branching,
    susceptibility_of_totals,
)
from ...analysis.scaling import TAIL_COLUMNS, crackling_fit_arrays, tail_fit
from ...core.threads import single_threaded_blas
from ...evaluation.comparison import window_counts
from ...measure.raster_checks import check_rasters_match
from ...measure.rasters import EventRasters
from ...measure.sweep import NULL_NONE
from ...study.params import CascadesParams

logger = logging.getLogger(__name__)


def _adjacencies(cascades: CascadesParams) -> list[str]:
    chosen = list(CascadesParams.coerce(cascades).adjacencies)
    if ADJ_4N not in chosen:
        chosen.insert(0, ADJ_4N)  # the primary adjacency is always computed
    return chosen


def find_avalanches(
    event_rasters_A: EventRasters, conditions_A: pd.DataFrame, cascades: CascadesParams
) -> pd.DataFrame:
    """Avalanche table of every condition and adjacency (one vectorized labelling each)."""
    check_rasters_match(
        event_rasters_A, conditions_A, raster_name="event_rasters_A", conditions_name="conditions_A"
    )
    parts = []
    for row in conditions_A.itertuples():
        counts = np.asarray(event_rasters_A.counts(row.cond_id))
        for adjacency in _adjacencies(cascades):
            table = avalanches(
                counts, adjacency, seq_ids=event_rasters_A.seq_id, n_layers=event_rasters_A.n_layers
            )
            table.insert(0, "adjacency", adjacency)
            table.insert(0, "cond_id", np.int32(row.cond_id))
            parts.append(table)
    result = pd.concat(parts, ignore_index=True)
    return result.astype({"seq_index": "int32", "seq_id": "int32"})


def measure_branching(event_rasters_A: EventRasters, conditions_A: pd.DataFrame) -> pd.DataFrame:
    """Per-window branching counts and event totals of every condition."""
    check_rasters_match(
        event_rasters_A, conditions_A, raster_name="event_rasters_A", conditions_name="conditions_A"
    )
    return window_counts(event_rasters_A, conditions_A)


def _avalanche_stats(avalanches_A: pd.DataFrame) -> pd.DataFrame:
    """Avalanche count, mean and median size, mean spans per (cond_id, adjacency)."""
    grouped = avalanches_A.groupby(["cond_id", "adjacency"])
    return grouped.agg(
        n_avalanches=("size", "size"),
        avalanche_size_mean=("size", "mean"),
        avalanche_size_median=("size", "median"),
        avalanche_span_tokens_mean=("span_tokens", "mean"),
        avalanche_span_layers_mean=("span_layers", "mean"),
    )


def summarize_cascades(
    conditions_A: pd.DataFrame,
    branching_per_window_A: pd.DataFrame,
    avalanches_A: pd.DataFrame,
) -> pd.DataFrame:
    """One row per condition: pooled branching, chi and avalanche statistics per adjacency.

    ``branching_empty`` flags conditions without any event (their b values are NaN). Avalanche
    statistics of the primary adjacency (4N) have plain names; other adjacencies get a suffix
    (``_8n``). A condition without avalanches has count 0 and NaN means.
    """
    rows = []
    for cond_id, windows in branching_per_window_A.groupby("cond_id"):
        pooled = pooled_branching(windows["n_time"], windows["n_depth"], windows["den"])
        rows.append(
            {
                "cond_id": cond_id,
                "n_sequences": int(len(windows)),
                "b_time": pooled["b_time"],
                "b_depth": pooled["b_depth"],
                "b_tot": pooled["b_tot"],
                "branching_empty": bool(pooled["empty"]),
                "chi": susceptibility_of_totals(windows["events"]),
                "events_total": int(windows["events"].sum()),
            }
        )
    summary = conditions_A.merge(pd.DataFrame(rows), on="cond_id", validate="1:1")
    stats = _avalanche_stats(avalanches_A)
    for adjacency in sorted(avalanches_A["adjacency"].unique()):
        suffix = "" if adjacency == ADJ_4N else "_" + adjacency.split("_")[1].lower()
        part = stats.xs(adjacency, level="adjacency").add_suffix(suffix)
        summary = summary.merge(part, left_on="cond_id", right_index=True, how="left")
        count = f"n_avalanches{suffix}"
        summary[count] = summary[count].fillna(0).astype("int64")
    empty = summary[summary["branching_empty"]]
    if len(empty):
        logger.warning("%d conditions have no events at all (b = NaN)", len(empty))
    return summary


@single_threaded_blas
def fit_crackling(
    avalanches_A: pd.DataFrame,
    conditions_A: pd.DataFrame,
    branching_per_window_A: pd.DataFrame,
    cascades: CascadesParams,
) -> pd.DataFrame:
    """Crackling exponent per condition and adjacency, window-bootstrap CI and quality gate.

    The bootstrap resamples the condition's windows with the paired index matrix of SPEC §7.
    """
    options = CascadesParams.coerce(cascades).crackling
    replicates = options.bootstrap_replicates
    positions = avalanches_A.groupby(["cond_id", "adjacency"], sort=False).indices
    columns = {c: avalanches_A[c].to_numpy() for c in ("seq_index", "span_tokens", "size")}
    none = np.zeros(0, dtype=np.int64)
    windows = branching_per_window_A.groupby("cond_id").size()
    rows = []
    for condition in conditions_A.itertuples():
        n_windows = int(windows[condition.cond_id])
        indices = bootstrap_indices(n_windows, replicates, condition.condition_key)
        for adjacency in _adjacencies(cascades):
            at = positions.get((condition.cond_id, adjacency), none)
            fit = crackling_fit_arrays(
                columns["seq_index"][at],
                columns["span_tokens"][at],
                columns["size"][at],
                n_windows,
                indices,
                d_min=options.d_min,
                d_max=options.d_max,
                min_points=options.min_points,
                max_ci_width=options.max_ci_width,
            )
            rows.append({"cond_id": condition.cond_id, "adjacency": adjacency, **fit})
    fits = pd.DataFrame(rows)
    fits["s3_available"] = fits["pass"]
    return fits


def fit_tails(
    avalanches_A: pd.DataFrame, conditions_A: pd.DataFrame, cascades: CascadesParams
) -> pd.DataFrame:
    """Tail fits of avalanche sizes (primary adjacency) for every real condition.

    The fits are independent and dominated by ``powerlaw``'s numerical optimisation, so they
    run in ``cascades.tail_fits.workers`` processes (0 = one per CPU); results do not depend on
    the number of workers.
    """
    options = CascadesParams.coerce(cascades).tail_fits
    min_tail = options.min_tail_samples
    workers = options.workers or os.cpu_count() or 1
    if multiprocessing.current_process().daemon:
        # a Dask worker (or any daemonic process) may not start children: fit in-process; the
        # scheduler already spreads this node's siblings over the workers
        workers = 1
    positions = avalanches_A.groupby(["cond_id", "adjacency"], sort=False).indices
    sizes = avalanches_A["size"].to_numpy()
    none = np.zeros(0, dtype=np.int64)
    real = conditions_A[conditions_A["null_id"] == NULL_NONE]
    samples = [sizes[positions.get((cond_id, ADJ_4N), none)] for cond_id in real["cond_id"]]
    if workers > 1 and len(samples) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(samples))) as pool:
            fits = list(pool.map(tail_fit, samples, [min_tail] * len(samples)))
    else:
        fits = [tail_fit(values, min_tail) for values in samples]
    rows = [
        {"cond_id": cond_id, "adjacency": ADJ_4N, **fit}
        for cond_id, fit in zip(real["cond_id"], fits, strict=True)
    ]
    return pd.DataFrame(rows, columns=["cond_id", "adjacency", *TAIL_COLUMNS])
