"""Ablation passes from the first changed block (issue 19 item 1) against whole passes.

The reference is :func:`fit_thresholds` / :func:`record_rasters` run on every layer of every
setting; the reusing versions must give the same table and the same counts bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure.ablation_passes import (
    fit_thresholds_reusing_g1,
    record_rasters_reusing_g1,
    standardizer_from,
)
from avalanche_kedro.measure.gain import (
    MLP_BAND_EARLY,
    MLP_BAND_LATE,
    MLP_BAND_MID,
    MLP_GLOBAL,
    band_edges,
    layer_gains,
)
from avalanche_kedro.measure.rasters import RasterWriter
from avalanche_kedro.measure.resume import check_resume_exact, reusable_blocks
from avalanche_kedro.measure.sweep import GainSetting, fit_thresholds, record_rasters, tau_array

from .test_sweep import BATCH, SPIKE_DEFS, TARGET_RATES, calibrated, data  # noqa: F401

SETTINGS = [
    GainSetting(MLP_BAND_MID, 0.8),
    GainSetting(MLP_BAND_LATE, 0.8),
    GainSetting(MLP_BAND_EARLY, 0.8),
    GainSetting(MLP_BAND_LATE, 1.0),
]
G1 = GainSetting(MLP_GLOBAL, 1.0)


def _starts(loaded) -> list[int]:
    return [reusable_blocks(s.intervention_id, s.g, loaded.n_layers) for s in SETTINGS]


@pytest.fixture(scope="module")
def fitted(small_model, data, calibrated):  # noqa: F811
    """Whole-pass thresholds of g = 1 and of every setting (the reference)."""
    table, _ = fit_thresholds(
        small_model,
        data["calibration"],
        calibrated["standardizer"],
        calibrated["rate_targets"],
        [G1, *SETTINGS],
        SPIKE_DEFS,
        TARGET_RATES,
        batch_size=BATCH,
    )
    return table


def test_the_starts_are_the_band_edges(small_model):
    c1, c2 = band_edges(small_model.n_layers)
    assert _starts(small_model) == [c1, c2, 0, small_model.n_layers]
    check = check_resume_exact(
        small_model,
        torch.as_tensor(np.arange(16, dtype=np.int64).reshape(2, 8)),
        layer_gains(MLP_BAND_MID, 0.8, small_model.n_layers),
        c1,
    )
    assert check["exact"], check


def _fit_reusing(small_model, data, calibrated, g1_fit):  # noqa: F811
    return fit_thresholds_reusing_g1(
        small_model,
        data["calibration"],
        calibrated["moments"],
        1e-6,
        calibrated["rate_targets"],
        SETTINGS,
        SPIKE_DEFS,
        TARGET_RATES,
        BATCH,
        g1_fit,
        _starts(small_model),
        tuple_output=False,
    )


def test_thresholds_reusing_g1_equal_whole_passes(small_model, data, calibrated, fitted):  # noqa: F811
    g1_fit = fitted[(fitted["intervention_id"] == MLP_GLOBAL)].reset_index(drop=True)
    table, stats, work = _fit_reusing(small_model, data, calibrated, g1_fit)
    reference = fitted[fitted["intervention_id"] != MLP_GLOBAL].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    n_windows, n_layers = data["calibration"].shape[0], small_model.n_layers
    c1, c2 = band_edges(n_layers)
    # prefix to c2 once per batch, MID from c1, LATE from c2, EARLY whole, LATE at g = 1 none
    assert work["block_passes"] == n_windows * (c2 + (n_layers - c1) + (n_layers - c2) + n_layers)
    assert work["block_passes_full"] == n_windows * n_layers * len(SETTINGS)
    assert stats.windows == 3 * n_windows  # the g = 1 setting runs no forward


def test_too_high_seeds_are_refitted_unseeded(small_model, data, calibrated, fitted):  # noqa: F811
    """The ablations' top-k are seeded from the g = 1 thresholds. With those 100x too high in
    the layers from c2 up (which no setting here reuses), every setting's seed drops values of
    its top k: all three are fitted again without seeds (twice the windows) and the table still
    equals whole passes."""
    n_layers, n_windows = small_model.n_layers, data["calibration"].shape[0]
    c1, c2 = band_edges(n_layers)
    settings, starts = SETTINGS[:3], _starts(small_model)[:3]
    g1_fit = fitted[(fitted["intervention_id"] == MLP_GLOBAL)].reset_index(drop=True)
    high = g1_fit["layer"] >= c2
    g1_fit.loc[high, "tau"] = g1_fit.loc[high, "tau"] * 100.0
    table, stats, work = fit_thresholds_reusing_g1(
        small_model,
        data["calibration"],
        calibrated["moments"],
        1e-6,
        calibrated["rate_targets"],
        settings,
        SPIKE_DEFS,
        TARGET_RATES,
        BATCH,
        g1_fit,
        starts,
        tuple_output=False,
    )
    reference = fitted[fitted["intervention_id"].isin([s.intervention_id for s in settings])]
    reference = reference[reference["g"] == 0.8].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    assert stats.windows == 2 * 3 * n_windows
    once = n_windows * (c2 + (n_layers - c1) + (n_layers - c2) + n_layers)
    assert work["block_passes"] == 2 * once


def test_missing_g1_rows_are_refused(small_model, data, calibrated, fitted):  # noqa: F811
    g1_fit = fitted[(fitted["intervention_id"] == MLP_GLOBAL) & (fitted["layer"] > 0)]
    with pytest.raises(ConfigurationError, match="g = 1 threshold table has"):
        _fit_reusing(small_model, data, calibrated, g1_fit)


def _rows(n_settings: int) -> list[np.ndarray]:
    per = len(SPIKE_DEFS) * len(TARGET_RATES)
    return [
        np.arange(k * per, (k + 1) * per, dtype=np.int64).reshape(len(SPIKE_DEFS), -1)
        for k in range(n_settings)
    ]


def test_rasters_reusing_g1_equal_whole_passes(small_model, data, calibrated, fitted, tmp_path):  # noqa: F811
    ids, n_layers = data["analysis"], small_model.n_layers
    seq_ids = np.arange(len(ids))
    standardizer = calibrated["standardizer"]

    def whole(settings, directory):
        rows = _rows(len(settings))
        writer = RasterWriter(directory, np.arange(rows[-1].max() + 1), seq_ids, n_layers, 32)
        for setting, setting_rows in zip(settings, rows, strict=True):
            taus = tau_array(fitted, setting, SPIKE_DEFS, TARGET_RATES, n_layers)
            record_rasters(
                small_model,
                ids,
                standardizer,
                taus,
                setting_rows,
                SPIKE_DEFS,
                setting,
                writer,
                BATCH,
            )
        return writer.finalize()

    g1_rasters = whole([G1], tmp_path / "g1")
    reference = whole(SETTINGS, tmp_path / "whole")
    rows = _rows(len(SETTINGS))
    writer = RasterWriter(tmp_path / "reused", reference.cond_id, seq_ids, n_layers, 32)
    g1_taus = tau_array(fitted, G1, SPIKE_DEFS, TARGET_RATES, n_layers)
    stats, work = record_rasters_reusing_g1(
        small_model,
        ids,
        calibrated["moments"],
        1e-6,
        fitted,
        g1_taus,
        list(zip(SETTINGS, rows, strict=True)),
        _starts(small_model),
        SPIKE_DEFS,
        TARGET_RATES,
        writer,
        g1_rasters,
        _rows(1)[0],
        BATCH,
        tuple_output=False,
    )
    reused = writer.finalize()
    np.testing.assert_array_equal(reused.A, reference.A)
    assert reference.A.sum() > 0 and work["block_passes"] < work["block_passes_full"]

    # thresholds of the reused layers that are not the g = 1 ones: refused, nothing computed
    wrong = g1_taus.copy()
    wrong[:, :, 0] += 1.0
    refused = RasterWriter(tmp_path / "refused", reference.cond_id, seq_ids, n_layers, 32)
    with pytest.raises(ConfigurationError, match="differ from the g = 1 ones"):
        record_rasters_reusing_g1(
            small_model,
            ids,
            calibrated["moments"],
            1e-6,
            fitted,
            wrong,
            list(zip(SETTINGS, rows, strict=True)),
            _starts(small_model),
            SPIKE_DEFS,
            TARGET_RATES,
            refused,
            g1_rasters,
            _rows(1)[0],
            BATCH,
            tuple_output=False,
        )
    refused.abort()


def test_a_sliced_standardizer_holds_the_rows_of_the_full_one(small_model, calibrated):  # noqa: F811
    full = calibrated["moments"].standardizer("cpu", 1e-6)
    part = standardizer_from(calibrated["moments"], 2, "cpu", 1e-6)
    assert part.mu.shape[0] == small_model.n_layers - 2
    assert bool((part.mu == full.mu[2:]).all()) and bool(
        (part.denominator == full.denominator[2:]).all()
    )
