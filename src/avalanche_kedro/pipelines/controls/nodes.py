"""Nodes of the controls pipeline: raster nulls, marginal checks, paired bootstrap (SPEC §7).

For every real condition the two raster nulls are built window by window and layer by layer
with the seed rule, their marginals are checked exactly (the run fails otherwise), and only
their per-window branching counts are kept (a null raster is cheap to rebuild with
:func:`avalanche_kedro.analysis.nulls.null_raster`). The comparison then resamples windows once per
condition and uses the same replicates for the real raster, both nulls, the token-shuffled
input and chi, so every delta has a paired CI. The logic is :mod:`avalanche_kedro.evaluation.comparison`.
"""

from __future__ import annotations

import pandas as pd

from ...evaluation import comparison
from ...measure.raster_checks import check_rasters_match
from ...measure.rasters import EventRasters
from ...study.params import ControlsParams


def measure_null_branching(
    event_rasters_A: EventRasters, conditions_A: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-window branching counts of both raster nulls of every real condition, and the
    exact marginal checks (a violation stops the run)."""
    check_rasters_match(
        event_rasters_A, conditions_A, raster_name="event_rasters_A", conditions_name="conditions_A"
    )
    return comparison.null_window_counts(event_rasters_A, conditions_A)


def compare_with_nulls(
    conditions_A: pd.DataFrame,
    branching_per_window_A: pd.DataFrame,
    null_branching_per_window_A: pd.DataFrame,
    marginal_checks_A: pd.DataFrame,
    controls: ControlsParams,
) -> pd.DataFrame:
    """Real vs permutation, shift and token-shuffle nulls with paired window-bootstrap CIs."""
    return comparison.compare_with_nulls(
        conditions_A,
        branching_per_window_A,
        null_branching_per_window_A,
        marginal_checks_A,
        ControlsParams.coerce(controls).bootstrap_replicates,
    )
