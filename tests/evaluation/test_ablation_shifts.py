"""Paired shifts of b_tot under each ablation against MLP_GLOBAL at g = 1 (T06), by hand."""

from __future__ import annotations

import pytest

from avalanche_kedro.evaluation.ablation_shifts import paired_shifts, shift_key
from tests.evaluation.test_gstar import _windows  # per-window counts of hand-made windows


def test_paired_ablation_shifts_hand_example():
    """Reference b_tot 1.0 in every window; MLP_GLOBAL at g* 0.5 everywhere, ATTN_GLOBAL 0.9
    everywhere: every replicate gives shifts -0.5 and -0.1, so the tracking margin
    |-0.5| - |-0.1| = 0.4 has the CI [0.4, 0.4] (the MLP gain)."""
    reference = _windows([(10, 10), (20, 20), (4, 4)])
    shifts = paired_shifts(
        reference,
        {
            "MLP_GLOBAL": _windows([(5, 10), (10, 20), (2, 4)]),
            "ATTN_GLOBAL": _windows([(9, 10), (18, 20), (36, 40)]),
        },
        shift_key("S", 1e-4),
        100,
    )
    assert shifts["MLP_GLOBAL"]["shift_vs_g1"] == pytest.approx(-0.5)
    assert shifts["MLP_GLOBAL"]["shift_vs_g1_ci_low"] == pytest.approx(-0.5)
    assert shifts["ATTN_GLOBAL"]["shift_vs_g1"] == pytest.approx(-0.1)
    assert shifts["MLP_GLOBAL"]["tracks_margin"] == pytest.approx(0.4)
    margin_ci = (
        shifts["MLP_GLOBAL"]["tracks_margin_ci_low"],
        shifts["MLP_GLOBAL"]["tracks_margin_ci_high"],
    )
    assert margin_ci == pytest.approx((0.4, 0.4))
    assert "tracks_margin" not in shifts["ATTN_GLOBAL"]
    with pytest.raises(ValueError, match="not measured on the windows"):
        paired_shifts(reference, {"ATTN_GLOBAL": _windows([(1, 1)])}, "k", 10)
