"""The lens benchmark on a tiny shape: it runs, writes JSON, and its dense reference agrees."""

from __future__ import annotations

import json

import pytest

from avalanche_kedro.tools.benchmark import cli
from avalanche_kedro.tools.benchmark.lens import LENS_PRESETS, run_lens

TINY = {
    **LENS_PRESETS["embedded"],
    "vocab_size": 300,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "n_windows": 3,
    "seq_len": 16,
    "batch_size": 2,
    "budgets": [200, 1 << 20],  # a vocabulary streamed in chunks, and one chunk
}


def test_streamed_lens_equals_the_dense_reference_and_every_variant_is_timed():
    result = run_lens(TINY, repeats=2)
    assert result["max_abs_entropy_difference_dense_vs_streamed_nats"] < 2e-6
    assert set(result["median_seconds"]) == {"bare", "dense", "lens[200]", "lens[1048576]"}
    assert all(len(v) == 2 and min(v) > 0 for v in result["seconds"].values())
    assert result["ratio_to_bare_forward"]["bare"] == pytest.approx(1.0)
    assert result["tokens"] == 3 * 16


def test_cli_writes_the_json(tmp_path, monkeypatch):
    monkeypatch.setitem(LENS_PRESETS, "embedded", TINY)
    out = tmp_path / "lens.json"
    cli.main(["lens", "--out", str(out), "--repeats", "1"])
    written = json.loads(out.read_text())
    assert written["preset"]["vocab_size"] == 300 and written["repeats"] == 1
