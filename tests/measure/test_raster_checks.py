"""Raster invariants scanned in blocks, and rasters against their condition table (issue 20)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.measure import raster_checks
from avalanche_kedro.measure.raster_checks import check_raster_invariants, check_rasters_match
from avalanche_kedro.measure.rasters import EventRasters


def _rasters(cond_ids=(0, 1, 2), shape=(3, 4, 2, 5)):
    A = np.zeros(shape, dtype=np.uint16)
    A[0, 1, 0, 2] = 3
    A[2, 3, 1, 4] = 7
    return EventRasters(
        A=A,
        X=(A > 0).astype(np.uint8),
        cond_id=np.array(cond_ids, dtype=np.int32),
        seq_id=np.arange(shape[1], dtype=np.int32) + 10,
    )


def _check(rasters, d_ff):
    check_raster_invariants(
        rasters.A, rasters.X, rasters.cond_id, rasters.seq_id, d_ff=d_ff, where="r"
    )


def test_sites_are_found_across_block_boundaries(monkeypatch):
    # blocks of one (condition, window) row (10 sites): the bad site is in block 2 * 4 + 3
    monkeypatch.setattr(raster_checks, "CHUNK_ELEMENTS", 10)
    rasters = _rasters()
    _check(rasters, d_ff=7)
    with pytest.raises(
        ArtifactError,
        match=r"A\[2, 3, 1, 4\] = 7 exceeds d_ff = 6 .*"
        r"\(2, 3, 1, 4\), cond_id 2, seq_id 13",
    ):
        _check(rasters, d_ff=6)
    X = rasters.X.copy()
    X[1, 2, 1, 0] = 1
    with pytest.raises(ArtifactError, match=r"X\[1, 2, 1, 0\] = 1 but A\[1, 2, 1, 0\] = 0"):
        check_raster_invariants(rasters.A, X, rasters.cond_id, rasters.seq_id, d_ff=None, where="r")


@pytest.mark.parametrize("field", ["cond_id", "seq_id"])
def test_repeated_ids_are_refused(field):
    rasters = _rasters()
    ids = {"cond_id": rasters.cond_id.copy(), "seq_id": rasters.seq_id.copy()}
    ids[field][1] = ids[field][0]
    with pytest.raises(ArtifactError, match=rf"{field} repeats \[{int(ids[field][0])}\]"):
        check_raster_invariants(rasters.A, rasters.X, d_ff=None, where="r", **ids)


def test_a_bound_that_is_not_a_positive_integer_is_refused():
    with pytest.raises(ArtifactError, match="positive integer"):
        _check(_rasters(), d_ff=0)


def test_rasters_matching_their_conditions_pass_in_any_row_order():
    conditions = pd.DataFrame({"cond_id": [2, 0, 1], "g": [1.0, 1.0, 2.0]})
    check_rasters_match(
        _rasters(), conditions, raster_name="event_rasters_A", conditions_name="conditions_A"
    )


@pytest.mark.parametrize(
    ("table_ids", "expected"),
    [
        (
            [0, 1, 3],
            r"holds 3 condition rows, conditions_A has 3.*missing from event_rasters_A: "
            r"\[3\].*not in conditions_A: \[2\]",
        ),
        ([0, 1], r"holds 3 condition rows, conditions_A has 2.*missing .*: \[\];.*: \[2\]"),
        ([0, 1, 2, 3], r"conditions_A has 4.*missing from event_rasters_A: \[3\]"),
        ([0, 1, 1], r"conditions_A repeats cond_id \[1\]"),
    ],
)
def test_rasters_of_another_condition_table_are_refused(table_ids, expected):
    conditions = pd.DataFrame({"cond_id": table_ids})
    with pytest.raises(ArtifactError, match=expected) as caught:
        check_rasters_match(
            _rasters(), conditions, raster_name="event_rasters_A", conditions_name="conditions_A"
        )
    assert "come from one run" in str(caught.value)
    assert "kedro run --pipelines events" in str(caught.value)
