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
