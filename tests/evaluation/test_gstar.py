"""g* selection on hand-made b_tot curves (SPEC §8): argmin |b_tot - 1|, ties within 1e-12 go
to the gain closest to 1, then to the smaller gain; NaN values are ignored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.evaluation.gstar import (
    GSTAR_COLUMNS,
    TIE_TOLERANCE,
    gstar_identification,
    gstar_table,
    identification_key,
    select_gstar,
)
from avalanche_kedro.pipelines.calibration import nodes

PAPER_GRID = [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3]


def test_plain_minimum():
    assert select_gstar([0.8, 1.0, 1.2], [0.6, 0.97, 1.2]) == 1.0
    assert select_gstar([0.8, 1.0, 1.2], [0.6, 0.8, 1.01]) == 1.2


def test_result_is_a_grid_value_and_a_python_float():
    g = select_gstar(np.array(PAPER_GRID), np.linspace(0.5, 1.5, len(PAPER_GRID)))
    assert isinstance(g, float) and g in PAPER_GRID


def test_exact_tie_with_gains_equally_close_to_one_picks_the_smaller_gain():
    # |0.9 - 1| and |1.1 - 1| differ in the last bit of a double; both count as 0.1 away.
    assert abs(0.9 - 1.0) != abs(1.1 - 1.0)
    assert select_gstar([0.8, 1.0, 1.2], [0.9, 0.5, 1.1]) == 0.8
    assert select_gstar([1.2, 1.0, 0.8], [1.1, 0.5, 0.9]) == 0.8  # order of the curve is irrelevant
    assert select_gstar([0.8, 1.2], [1.3, 0.7]) == 0.8  # bit-identical distances


def test_tie_between_gains_at_different_distances_from_one_picks_the_closer_gain():
    # b_tot 0.9 at g = 0.9 and 1.1 at g = 1.05: same |b_tot - 1|, 1.05 is closer to 1.
    assert select_gstar([0.7, 0.9, 1.05, 1.3], [0.5, 0.9, 1.1, 1.6]) == 1.05
    assert select_gstar([0.7, 0.95, 1.2, 1.3], [0.5, 1.25, 0.75, 1.6]) == 0.95


def test_085_and_115_tie_and_the_smaller_wins():
    # In binary floating point 1.15 looks closer to 1 than 0.85; in exact arithmetic they tie.
    assert abs(1.15 - 1.0) < abs(0.85 - 1.0)
    b_tot = {0.85: 0.8, 1.15: 1.2}
    curve = [b_tot.get(g, 1.8 if g > 1 else 0.3) for g in PAPER_GRID]
    assert select_gstar(PAPER_GRID, curve) == 0.85
    assert select_gstar(PAPER_GRID[::-1], curve[::-1]) == 0.85
    # The same with bit-identical b_tot distances.
    assert select_gstar([0.85, 1.15], [1.25, 0.75]) == 0.85


def test_a_curve_that_never_reaches_one():
    above = [1.9, 1.7, 1.5, 1.4, 1.3]
    gains = [0.7, 0.8, 0.9, 1.1, 1.3]
    assert select_gstar(gains, above) == 1.3  # nearest to 1 from above
    below = [0.2, 0.3, 0.5, 0.45, 0.4]
    assert select_gstar(gains, below) == 0.9  # nearest to 1 from below
    assert select_gstar([1.0], [7.0]) == 1.0  # a single gain is always the answer


def test_ties_within_the_tolerance_but_not_exactly_equal():
    # |b_tot - 1| = 1e-13 at 0.8 and 5e-13 at 0.95: within 1e-12, so 0.95 (closer to 1) wins.
    assert select_gstar([0.8, 0.95, 1.3], [1.0 + 1e-13, 1.0 - 5e-13, 1.2]) == 0.95
    # 1e-11 apart is not a tie: the strictly smaller distance wins.
    assert select_gstar([0.8, 0.95, 1.3], [1.0 + 1e-13, 1.0 - 1e-11, 1.2]) == 0.8
    # The tolerance is a parameter.
    assert select_gstar([0.8, 0.95], [1.0 + 1e-13, 1.0 - 1e-11], tie_tolerance=1e-10) == 0.95
    assert select_gstar([0.8, 0.95], [1.0 + 1e-13, 1.0 - 5e-13], tie_tolerance=0.0) == 0.8
    assert TIE_TOLERANCE == 1e-12


def test_nan_values_are_ignored():
    # The NaN gain would be nearest to 1 in g but has no b_tot.
    assert select_gstar([0.8, 1.0, 1.2], [0.7, np.nan, 1.4]) == 0.8
    assert select_gstar([0.8, 1.0, 1.2], [np.nan, np.nan, 1.4]) == 1.2


def test_an_all_nan_curve_is_a_clear_error():
    with pytest.raises(ConfigurationError) as info:
        select_gstar([0.8, 1.0, 1.2], [np.nan, np.nan, np.nan])
    message = str(info.value)
    assert "Every gain of this b_tot curve is NaN" in message
    assert "g* is undefined" in message
    assert "How to fix" in message and "target rates" in message


@pytest.mark.parametrize(
    ("gains", "b_tot"), [([0.8, 1.0], [1.0]), ([], []), ([0.8, 1.0, 1.2], [0.9, 1.0])]
)
def test_a_curve_with_a_length_mismatch_is_an_error(gains, b_tot):
    with pytest.raises(ConfigurationError, match="one value per gain"):
        select_gstar(gains, b_tot)


def _curves() -> pd.DataFrame:
    rows = []
    curves = {
        ("SPIKE_ONE_SIDED_POS", 1e-5): {0.85: 0.8, 1.0: 0.5, 1.15: 1.2},  # tie -> 0.85
        ("SPIKE_ONE_SIDED_POS", 8e-5): {0.85: 1.6, 1.0: 1.4, 1.15: 1.3},  # above 1 -> 1.15
        ("SPIKE_TWO_SIDED_ABS", 1e-5): {0.85: 0.2, 1.0: np.nan, 1.15: 0.4},  # NaN -> 1.15
        ("SPIKE_TWO_SIDED_ABS", 8e-5): {0.85: 0.7, 1.0: 1.01, 1.15: 1.3},  # plain -> 1.0
    }
    for (spike_def, rate), curve in curves.items():
        for g, b in reversed(list(curve.items())):  # unsorted on purpose
            rows.append({"spike_def_id": spike_def, "target_rate": rate, "g": g, "b_tot": b})
    return pd.DataFrame(rows)


def test_gstar_table_picks_per_spike_def_and_rate_and_keeps_the_curve():
    table = gstar_table(_curves())
    assert list(table.columns) == GSTAR_COLUMNS
    assert len(table) == 4
    picked = {(r.spike_def_id, r.target_rate): r.g_star for r in table.itertuples()}
    assert picked == {
        ("SPIKE_ONE_SIDED_POS", 1e-5): 0.85,
        ("SPIKE_ONE_SIDED_POS", 8e-5): 1.15,
        ("SPIKE_TWO_SIDED_ABS", 1e-5): 1.15,
        ("SPIKE_TWO_SIDED_ABS", 8e-5): 1.0,
    }
    for row in table.itertuples():
        np.testing.assert_array_equal(row.curve_g, [0.85, 1.0, 1.15])  # sorted by g
        expected = _curves().query(
            "spike_def_id == @row.spike_def_id and target_rate == @row.target_rate"
        )
        expected = expected.sort_values("g")["b_tot"].to_numpy()
        np.testing.assert_array_equal(row.curve_b_tot, expected)
        assert row.b_tot_at_gstar == expected[list(row.curve_g).index(row.g_star)]
        assert row.abs_b_tot_minus_1 == abs(row.b_tot_at_gstar - 1.0)
        assert row.n_gains == 3
    finite = table.set_index(["spike_def_id", "target_rate"])["n_finite"]
    assert finite[("SPIKE_TWO_SIDED_ABS", 1e-5)] == 2
    assert finite[("SPIKE_ONE_SIDED_POS", 1e-5)] == 3


def test_gstar_table_rejects_duplicated_gains():
    curves = _curves()
    duplicated = pd.concat([curves, curves.iloc[[0]]], ignore_index=True)
    spike_def, rate = curves.iloc[0][["spike_def_id", "target_rate"]]
    with pytest.raises(ConfigurationError) as info:
        gstar_table(duplicated)
    assert "duplicated gains" in str(info.value)
    assert str(spike_def) in str(info.value) and str(rate) in str(info.value)


def test_gstar_table_with_an_all_nan_curve_raises():
    curves = _curves()
    curves.loc[curves["spike_def_id"] == "SPIKE_ONE_SIDED_POS", "b_tot"] = np.nan
    with pytest.raises(ConfigurationError, match="NaN"):
        gstar_table(curves)


def test_the_node_reads_only_real_mlp_global_rows_of_dataset_A():
    """Null, ablation and non-A rows must never influence g* (they hold b_tot nearer 1)."""
    real = _curves().assign(
        model_role="base", dataset_role="A", intervention_id="MLP_GLOBAL", null_id="NULL_NONE"
    )
    distractors = [
        real.assign(null_id="NULL_TOKEN_SHUFFLE_INPUT"),
        real.assign(intervention_id="ATTN_GLOBAL"),
        real.assign(dataset_role="B"),
    ]
    for part in distractors:
        part["b_tot"] = np.where(part["g"] == 1.0, 1.0, 5.0)
    summary = pd.concat([real, *distractors], ignore_index=True)
    # every condition as a raster row: two windows whose pooled b_tot is the curve's value
    conditions = summary.drop(columns="b_tot").assign(cond_id=np.arange(len(summary)))
    pairs = np.round(np.nan_to_num(summary["b_tot"].to_numpy()) * 1000).astype(np.int64)
    windows = pd.DataFrame(
        {
            "cond_id": np.repeat(conditions["cond_id"].to_numpy(), 2),
            "seq_id": np.tile([4, 9], len(summary)),
            "n_time": np.repeat(pairs // 2, 2),
            "n_depth": np.repeat(pairs - pairs // 2, 2),
            "den": 1000,
        }
    )
    table = nodes.select_gstar(
        summary, conditions, windows, {"tie_tolerance": 1e-12, "bootstrap_replicates": 50}
    )
    expected = gstar_table(_curves())
    pd.testing.assert_series_equal(table["g_star"], expected["g_star"])
    # both windows agree at every gain: g* beats every other gain, unless a gain ties it
    assert set(table["gstar_identified"]) <= {True, False}
    assert (table["gstar_runner_up_g"] != table["g_star"]).all()
    assert (table["model_role"] == "base").all()
    assert table["selection_rule"].str.contains("closest to 1").all()


def _windows(pairs: list[tuple[int, int]]) -> pd.DataFrame:
    """Per-window counts (n_time + n_depth split evenly, den) for windows 0, 1, ..."""
    return pd.DataFrame(
        {
            "seq_id": range(len(pairs)),
            "n_time": [p // 2 for p, _ in pairs],
            "n_depth": [p - p // 2 for p, _ in pairs],
            "den": [d for _, d in pairs],
        }
    )


def test_gstar_identification_hand_example():
    """Three windows. At g = 1 every window has b_tot = 1; at 0.8 every window 0.5, at 1.2
    every window 2.0: every replicate's margin is exactly 0.5 and 1.0, so g* = 1 is identified
    and 0.8 is the runner-up (margin 0.5, CI [0.5, 0.5])."""
    by_gain = {
        0.8: _windows([(5, 10), (10, 20), (2, 4)]),
        1.0: _windows([(10, 10), (20, 20), (4, 4)]),
        1.2: _windows([(20, 10), (40, 20), (8, 4)]),
    }
    result = gstar_identification(by_gain, 1.0, identification_key("S", 1e-4), 200)
    assert result["gstar_identified"] and not result["gstar_at_grid_edge"]
    assert result["gstar_runner_up_g"] == 0.8
    assert (result["gstar_margin"], result["gstar_margin_ci_low"]) == (0.5, 0.5)
    assert result["gstar_margin_ci_high"] == 0.5 and result["gstar_n_gains_not_excluded"] == 0
    assert result["gstar_identification_key"] == "A|gstar|S|0.0001"


def test_a_flat_curve_is_not_identified():
    """Windows disagree: g = 0.9 is better on one half, 1.0 on the other; pooled, 1.0 wins by a
    hair, but resampling the windows (the same draw at both gains) often reverses it."""
    g1 = _windows([(10, 10), (30, 20), (10, 10), (14, 20)] * 3)
    g09 = _windows([(11, 10), (22, 20), (11, 10), (20, 20)] * 3)
    result = gstar_identification({0.9: g09, 1.0: g1}, 1.0, "A|gstar|flat", 300)
    assert not result["gstar_identified"] and result["gstar_at_grid_edge"]
    assert result["gstar_runner_up_g"] == 0.9 and result["gstar_n_gains_not_excluded"] == 1
    assert result["gstar_margin_ci_low"] < 0 < result["gstar_margin_ci_high"]
    # the pooled margin is |b(0.9) - 1| - |b(1.0) - 1| of the summed counts
    b09, b1 = (11 + 22 + 11 + 20) / 60, (10 + 30 + 10 + 14) / 60
    assert result["gstar_margin"] == pytest.approx(abs(b09 - 1) - abs(b1 - 1))


def test_identification_needs_the_same_windows_at_every_gain():
    with pytest.raises(ValueError, match="not measured on the windows"):
        gstar_identification(
            {1.0: _windows([(1, 1), (2, 2)]), 1.2: _windows([(1, 1)])}, 1.0, "k", 10
        )
    with pytest.raises(ValueError, match="not one of the gains"):
        gstar_identification({1.0: _windows([(1, 1)])}, 0.9, "k", 10)
