"""The threads benchmark: every load and thread count timed, the ratios consistent with the
medians, hidden states compared across counts, torch's count and the busy processes cleaned up."""

from __future__ import annotations

import time
from statistics import median

import psutil
import pytest
import torch

from avalanche_kedro.tools.benchmark.threads import (
    run_threads,
    start_busy_processes,
    stop_processes,
)


def test_busy_processes_spin_until_stopped():
    processes = start_busy_processes(1)
    try:
        watched = psutil.Process(processes[0].pid)
        watched.cpu_percent(None)
        time.sleep(0.5)
        assert watched.cpu_percent(None) > 30  # a spinning core (shared with the suite)
    finally:
        stop_processes(processes)
    assert processes[0].poll() is not None


def test_each_load_times_every_thread_count(tmp_path):
    before = torch.get_num_threads()
    result = run_threads(
        tmp_path / "tiny-llama-benchmark", counts=[2, 1], busy=1, rounds=2, n_windows=4, seq_len=64
    )
    assert torch.get_num_threads() == before
    assert result["thread_counts"] == [1, 2] and result["tokens_per_pass"] == 4 * 64
    assert result["hidden_states_across_thread_counts"]["identical"] is True
    assert set(result["loads"]) == {"idle", "busy"}
    assert result["loads"]["busy"]["busy_processes"] == 1
    for entry in result["loads"].values():
        one, two = entry["threads"]["1"], entry["threads"]["2"]
        assert len(one["wall_seconds"]) == len(two["cpu_seconds"]) == 2
        assert one["ratio_to_one_thread"] == 1.0
        # from the unrounded medians of the rounds
        median_two, median_one = median(two["wall_seconds"]), median(one["wall_seconds"])
        assert two["median_wall_seconds"] == round(median_two, 4)
        assert two["ratio_to_one_thread"] == round(median_two / median_one, 3)
        assert two["tokens_per_second"] == round(256 / median_two, 1)
    assert result["machine"]["torch_default_threads"] == before


def test_bad_arguments_are_refused_before_any_model_loads(tmp_path):
    with pytest.raises(ValueError, match=">= 1"):
        run_threads(tmp_path / "never-built", counts=[0, 1])
    assert not (tmp_path / "never-built").exists()
