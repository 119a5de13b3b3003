"""The threads benchmark: one forward pass of the embedded shape at each torch thread count,
on an idle machine and with busy-loop processes competing for the cores.

Why ``runtime.torch_threads`` exists: torch starts one intra-op thread per physical core, and
its parallel regions wait for all of them at every operation. When another process holds a
core, each of the model's many small operations waits for a thread that is not scheduled, so
two threads can be much slower than one. The command measures exactly that, for
docs/performance.md ("Torch threads"):

* the model is the embedded default's shape (:func:`~.events.embedded_model`), windows of
  corpus A, hook-free backbone passes (:func:`~.events.bare_forward`), fp32 on the CPU;
* per load (``idle``: nothing started; ``busy``: ``--busy`` processes spinning in a Python
  loop, started before and stopped after that load's rounds) every round times one pass at
  every thread count, the order reversed each round, so drift hits every count alike;
* reported per load and count: median wall and CPU seconds, tokens per second, and the ratio of
  each count's median wall time to that of one thread (with the median of the per-round
  ratios), plus the machine's load average before each load;
* whether the hidden states are bit-identical at every count (they decide the events: a count
  that changed them would change the results, not just the speed).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ...core.threads import available_cores
from .events import bare_forward, corpus_windows, embedded_model

BUSY_LOOP = "while True:\n    pass\n"


def start_busy_processes(count: int) -> list[subprocess.Popen]:
    """``count`` Python processes spinning at 100 % of a core each until stopped."""
    return [
        subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()


def timed_pass(loaded, windows, batch_size: int, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) of one pass at ``threads`` threads."""
    torch.set_num_threads(threads)
    cpu = time.process_time()
    wall = bare_forward(loaded, windows, 1, batch_size)
    return wall, time.process_time() - cpu


def hidden_states_identical(loaded, windows, batch_size: int, counts: list[int]) -> dict:
    """Whether the backbone's last hidden states are bit-identical at every thread count."""
    outputs = []
    batch = torch.as_tensor(windows[:batch_size], dtype=torch.long)
    for threads in counts:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            outputs.append(loaded.backbone(input_ids=batch, use_cache=False).last_hidden_state)
    deviation = max(float((o - outputs[0]).abs().max()) for o in outputs)
    return {
        "identical": all(torch.equal(o, outputs[0]) for o in outputs),
        "max_abs_difference": deviation,
    }


def _summary(rounds: list[dict[int, tuple[float, float]]], counts: list[int], tokens: int):
    out: dict[str, Any] = {}
    walls = {t: [r[t][0] for r in rounds] for t in counts}
    for threads in counts:
        wall = statistics.median(walls[threads])
        out[str(threads)] = {
            "wall_seconds": walls[threads],
            "cpu_seconds": [r[threads][1] for r in rounds],
            "median_wall_seconds": round(wall, 4),
            "median_cpu_seconds": round(statistics.median(r[threads][1] for r in rounds), 4),
            "tokens_per_second": round(tokens / wall, 1),
            "ratio_to_one_thread": round(wall / statistics.median(walls[counts[0]]), 3),
            "median_paired_ratio_to_one_thread": round(
                statistics.median(
                    r[threads][0] / r[counts[0]][0] for r in rounds if r[counts[0]][0] > 0
                ),
                3,
            ),
        }
    return out


def run_threads(
    checkpoint: Path,
    counts: list[int] | None = None,
    busy: int = 1,
    rounds: int = 7,
    n_windows: int = 32,
    seq_len: int = 256,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Forward-pass wall time per torch thread count, idle and with ``busy`` spinning
    processes (module doc). ``counts`` default to 1 .. the cores this process may use."""
    counts = sorted(set(counts or range(1, available_cores() + 1)))
    if counts[0] < 1 or busy < 0 or rounds < 1:
        raise ValueError(
            f"thread counts {counts} and rounds {rounds} must be >= 1, busy {busy} >= 0"
        )
    before = torch.get_num_threads()
    loaded = embedded_model(checkpoint)
    windows = corpus_windows(n_windows, seq_len, checkpoint)
    tokens = n_windows * seq_len
    loads: dict[str, Any] = {}
    try:
        identity = hidden_states_identical(loaded, windows, batch_size, counts)
        for load, spinning in (("idle", 0), ("busy", busy)):
            if load == "busy" and not busy:
                continue
            load_average = os.getloadavg() if hasattr(os, "getloadavg") else None
            processes = start_busy_processes(spinning)
            try:
                time.sleep(0.5 if spinning else 0.0)  # let the spinning processes start
                for threads in counts:  # warm-up: thread pools, allocator, caches
                    timed_pass(loaded, windows[:batch_size], batch_size, threads)
                measured = []
                for index in range(rounds):
                    order = counts if index % 2 == 0 else counts[::-1]
                    measured.append({t: timed_pass(loaded, windows, batch_size, t) for t in order})
            finally:
                stop_processes(processes)
            loads[load] = {
                "busy_processes": spinning,
                "load_average_before": load_average,
                "threads": _summary(measured, counts, tokens),
            }
    finally:
        torch.set_num_threads(before)
    return {
        "benchmark": "bare forward pass of the embedded shape per torch thread count, "
        "idle and with busy-loop processes",
        "model": loaded.manifest.get("model_id"),
        "n_layers": loaded.n_layers,
        "d_ff": loaded.d_ff,
        "windows": n_windows,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "tokens_per_pass": tokens,
        "rounds": rounds,
        "thread_counts": counts,
        "hidden_states_across_thread_counts": identity,
        "loads": loads,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "available_cores": available_cores(),
            "torch_default_threads": before,
        },
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%d"),
    }
