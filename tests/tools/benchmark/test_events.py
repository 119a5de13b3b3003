"""The events benchmark's pieces on the session's small checkpoint (a real LlamaForCausalLM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil

from avalanche_kedro.measure.corpora import pydoc_topics
from avalanche_kedro.measure.windows import cut_windows, tokenize_stream
from avalanche_kedro.tools.benchmark.events import (
    PAPER_D_FF,
    PAPER_RATES,
    PRESETS,
    PeakRSS,
    bare_forward,
    corpus_windows,
)


def test_corpus_windows_are_the_first_windows_of_corpus_a(small_checkpoint, small_model):
    directory = Path(small_checkpoint["checkpoint"])
    windows = corpus_windows(3, 16, directory)
    stream = tokenize_stream(pydoc_topics(), small_model.tokenizer, max_tokens=3 * 16)
    np.testing.assert_array_equal(windows, cut_windows(stream.ids, 16)[:3])
    assert windows.shape == (3, 16)


def test_bare_forward_times_every_batch(small_model, small_windows):
    seconds = bare_forward(small_model, small_windows[:4], repeats=2, batch_size=3)
    assert 0.0 < seconds < 60.0


def test_peak_rss_sees_an_allocation_inside_the_block():
    before = psutil.Process().memory_info().rss
    with PeakRSS(interval=0.001) as peak:
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, touched
        block.sum()
    assert peak.peak >= before + 48 * 1024 * 1024
    del block


def test_presets_keep_the_papers_events_per_site():
    assert set(PRESETS) == {"embedded", "qwen2.5-0.5b-shape"}
    assert PRESETS["embedded"]["gains"][5] == 1.0 and len(PRESETS["embedded"]["gains"]) == 11
    # e = r * d_ff of the paper: 0.19 ... 1.52 events per site
    assert [round(r * PAPER_D_FF, 2) for r in PAPER_RATES] == [0.19, 0.38, 0.76, 1.52]


def test_hook_clock_times_the_reductions_and_restores_them():
    import torch

    from avalanche_kedro.measure.accumulators import ThresholdFitter
    from avalanche_kedro.measure.moments import Standardizer
    from avalanche_kedro.measure.sweep import _RasterCounter
    from avalanche_kedro.tools.benchmark.events import HookClock

    originals = (ThresholdFitter.update, _RasterCounter.on_u, _RasterCounter.on_batch_end)
    standardizer = Standardizer(mu=torch.zeros(1, 64), denominator=torch.ones(1, 64))
    fitter = ThresholdFitter(
        standardizer, ["SPIKE_ONE_SIDED_POS"], np.full((1, 1, 1), 0.01), [640000]
    )
    with HookClock() as clock:
        assert ThresholdFitter.update is not originals[0]
        for _ in range(10):
            fitter.update(0, torch.randn(10, 100, 64))
    assert (ThresholdFitter.update, _RasterCounter.on_u, _RasterCounter.on_batch_end) == originals
    assert clock.wall["thresholds"] > 0.0 and clock.wall["rasters"] == 0.0
    assert fitter.fits()[0]["n_values"] == 640000  # the wrapped method did its work


def test_one_interleaved_sweep_reports_passes_and_hooks(small_model, small_windows):
    from avalanche_kedro.measure.sweep import accumulate_moments, count_baseline_exceedances
    from avalanche_kedro.measure.thresholds import SPIKE_DEFS, rate_targets_table
    from avalanche_kedro.tools.benchmark.events import _sweep_once

    calibration, analysis = small_windows[:6], small_windows[6:10]
    moments, _ = accumulate_moments(small_model, calibration, 3)
    standardizer = moments.standardizer("cpu")
    baseline, _ = count_baseline_exceedances(
        small_model, calibration, standardizer, SPIKE_DEFS, 2.5, 3
    )
    rates = [0.005, 0.01]
    targets = rate_targets_table(baseline, SPIKE_DEFS, rates)
    record = _sweep_once(
        small_model, calibration, analysis, standardizer, targets, [0.9, 1.0], rates, 3, baseline
    )
    assert record["refits"] == 0  # 1.0 from the baseline, then 0.9 from 1.0: one pass each
    for key in ("bare", "thresholds", "rasters", "sweep"):
        assert record[f"{key}_wall"] > 0.0 and record[f"{key}_cpu"] >= 0.0
    assert 0.0 < record["hook_thresholds_wall"] < record["thresholds_wall"]
    assert 0.0 < record["hook_rasters_wall"] < record["rasters_wall"]
