"""The events benchmark: the events sweep against a bare forward pass (see the package doc)."""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import torch

from ...core.seeds import seed_of
from ...measure.accumulators import ThresholdFitter
from ...measure.adapters import adapter_for
from ...measure.checkpoints import LoadedModel, load_model, resolve_checkpoint
from ...measure.corpora import pydoc_topics
from ...measure.gain import MLP_GLOBAL
from ...measure.rasters import RasterWriter
from ...measure.sweep import (
    GainSetting,
    _RasterCounter,
    accumulate_moments,
    count_baseline_exceedances,
    fit_order,
    fit_thresholds,
    record_rasters,
    tau_array,
)
from ...measure.thresholds import SPIKE_DEFS, rate_targets_table
from ...measure.windows import cut_windows, tokenize_stream

PAPER_RATES = (1e-5, 2e-5, 4e-5, 8e-5)
PAPER_D_FF = 18944

PRESETS: dict[str, dict[str, Any]] = {
    # The embedded default exactly as conf/base runs it, on all of its gains.
    "embedded": {
        "model": "embedded",
        "seq_len": 256,
        "n_calibration": 32,
        "n_analysis": 64,
        "gains": [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3],
        "batch_size": 8,
        "repeats": 3,
    },
    # A random-init model shaped like Qwen2.5-0.5B (24 layers, hidden 896, d_ff 4864).
    "qwen2.5-0.5b-shape": {
        "model": "qwen2.5-0.5b-shape",
        "seq_len": 256,
        "n_calibration": 8,
        "n_analysis": 8,
        "gains": [0.9, 1.0, 1.1],
        "batch_size": 4,
        "repeats": 3,
    },
}


class PeakRSS:
    """Samples this process's resident set size in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


class HookClock:
    """Seconds (process CPU and wall) spent inside the reductions the hooks run, per phase.

    Wraps, while active, the entry points of the rate-matching pass (``ThresholdFitter``'s
    per-layer ``update`` and its per-batch ``flush`` to the top-k buffers) and of the raster
    pass (the sweep's raster counter: counting and the per-batch flush), so a pass's hook
    share is ``hook seconds / pass seconds``.
    """

    TARGETS = (
        (ThresholdFitter, "update", "thresholds"),
        (ThresholdFitter, "flush", "thresholds"),
        (_RasterCounter, "on_u", "rasters"),
        (_RasterCounter, "on_batch_end", "rasters"),
    )

    def __init__(self):
        self.cpu = {"thresholds": 0.0, "rasters": 0.0}
        self.wall = {"thresholds": 0.0, "rasters": 0.0}
        self._saved: list[tuple[type, str, Callable]] = []

    def _timed(self, method: Callable, phase: str) -> Callable:
        def timed(*args, **kwargs):
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.cpu[phase] += time.process_time() - cpu
                self.wall[phase] += time.perf_counter() - wall

        return timed

    def __enter__(self) -> HookClock:
        for owner, name, phase in self.TARGETS:
            method = getattr(owner, name)
            self._saved.append((owner, name, method))
            setattr(owner, name, self._timed(method, phase))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, method in reversed(self._saved):
            setattr(owner, name, method)
        self._saved.clear()


def _clocked(function: Callable, *args, **kwargs) -> tuple[Any, float, float]:
    """``(result, wall seconds, process CPU seconds)`` of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def qwen05b_shaped_model(vocab_size: int = 151936) -> LoadedModel:
    """A random-init Qwen2ForCausalLM with Qwen2.5-0.5B's shape, fp32 on the CPU."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        rms_norm_eps=1e-6,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_of("benchmark_model", "qwen2.5-0.5b-shape"))
        model = Qwen2ForCausalLM(config).eval()
    model.requires_grad_(False)
    return LoadedModel(
        model=model,
        tokenizer=None,
        adapter=adapter_for("qwen2"),
        device=torch.device("cpu"),
        dtype=torch.float32,
        manifest={"model_id": "qwen2.5-0.5b-shape (random init)", "model_type": "qwen2"},
    )


#: The embedded default's shape (conf/base embedded_checkpoints.tiny-llama-stdlib) at its
#: initialisation: timing does not depend on what the weights learned.
EMBEDDED_SHAPE = {
    "seed_name": "tiny-llama-benchmark",
    "hidden_size": 96,
    "intermediate_size": 384,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def embedded_model(checkpoint: Path) -> LoadedModel:
    """A model of the embedded default's shape (built on first use, as an untrained recipe)."""
    manifest = resolve_checkpoint(
        "benchmark", {"checkpoint": str(checkpoint), "embedded": EMBEDDED_SHAPE}, pydoc_topics()
    )
    return load_model(manifest, {"device": "cpu", "dtype": "float32"})


def corpus_windows(n_windows: int, seq_len: int, checkpoint: Path) -> np.ndarray:
    """Windows of corpus A tokenized with the embedded tokenizer (ids < 4096: valid for both)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    stream = tokenize_stream(pydoc_topics(), tokenizer, max_tokens=n_windows * seq_len)
    windows = cut_windows(stream.ids, seq_len)
    if len(windows) < n_windows:
        raise SystemExit(f"corpus A yields only {len(windows)} windows of {seq_len} tokens")
    return windows[:n_windows]


def bare_forward(loaded: LoadedModel, windows: np.ndarray, repeats: int, batch_size: int) -> float:
    """Wall time of ``repeats`` hook-free passes of the backbone over ``windows``."""
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(repeats):
            for start in range(0, len(windows), batch_size):
                batch = torch.as_tensor(windows[start : start + batch_size], dtype=torch.long)
                loaded.backbone(input_ids=batch.to(loaded.device), use_cache=False)
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def run(preset: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    seq_len, batch_size = preset["seq_len"], preset["batch_size"]
    n_cal, n_ana = preset["n_calibration"], preset["n_analysis"]
    gains = [float(g) for g in preset["gains"]]
    if preset["model"] == "embedded":
        loaded = embedded_model(checkpoint)
    else:
        embedded_model(checkpoint)  # only for its tokenizer
        loaded = qwen05b_shaped_model()
    windows = corpus_windows(n_cal + n_ana, seq_len, checkpoint)
    calibration, analysis = windows[:n_cal], windows[n_cal:]
    # The paper's expected events per site (r * d_ff) at this model's width.
    rates = [r * PAPER_D_FF / loaded.d_ff for r in PAPER_RATES]

    # Setup, not timed: moments and baseline profile at g = 1, as the capture pipeline does.
    moments, _ = accumulate_moments(loaded, calibration, batch_size)
    standardizer = moments.standardizer(loaded.device)
    baseline, _ = count_baseline_exceedances(
        loaded, calibration, standardizer, SPIKE_DEFS, 2.5, batch_size
    )
    targets = rate_targets_table(baseline, SPIKE_DEFS, rates)
    bare_forward(loaded, windows[:batch_size], 1, batch_size)  # warm-up

    # Peak memory of plain inference on these windows (one pass over both slices).
    with PeakRSS() as bare_rss:
        bare_forward(loaded, windows, 1, batch_size)

    # Timings interleave bare and instrumented passes gain by gain, so drifts of the machine
    # (frequency, noisy neighbours) hit both sides alike; the whole sweep is repeated and
    # per-repeat ratios are reported as medians. Gains are fitted as the events pipeline fits
    # them in one call: from g = 1 (seeded from the baseline counts) outwards, each seeded from
    # the nearest gain fitted before it.
    repeats = int(preset.get("repeats", 1))
    records = []
    with PeakRSS() as sweep_rss:
        for _ in range(repeats):
            records.append(
                _sweep_once(
                    loaded,
                    calibration,
                    analysis,
                    standardizer,
                    targets,
                    gains,
                    rates,
                    batch_size,
                    baseline,
                )
            )

    def median(key: str) -> float:
        return float(np.median([record[key] for record in records]))

    for record in records:
        record["ratio_wall"] = record["sweep_wall"] / record["bare_wall"]
        record["ratio_cpu"] = record["sweep_cpu"] / record["bare_cpu"]
        for phase in ("thresholds", "rasters"):
            record[f"hook_share_{phase}_cpu"] = record[f"hook_{phase}_cpu"] / record[f"{phase}_cpu"]
            record[f"hook_share_{phase}_wall"] = (
                record[f"hook_{phase}_wall"] / record[f"{phase}_wall"]
            )
        hooks = record["hook_thresholds_cpu"] + record["hook_rasters_cpu"]
        record["hook_share_sweep_cpu"] = hooks / record["sweep_cpu"]
    bare_seconds, sweep_seconds = median("bare_wall"), median("sweep_wall")
    tokens = len(gains) * (n_cal + n_ana) * seq_len
    return {
        "preset": preset,
        "model": loaded.manifest.get("model_id"),
        "n_layers": loaded.n_layers,
        "d_ff": loaded.d_ff,
        "n_parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        "target_rates": rates,
        "spike_defs": list(SPIKE_DEFS),
        "forward_passes_per_phase": len(gains) * (n_cal + n_ana),
        "tokens_per_phase": tokens,
        "repeats": repeats,
        "bare_forward_seconds": bare_seconds,
        "events_sweep_seconds": sweep_seconds,
        "events_sweep_seconds_thresholds": median("thresholds_wall"),
        "events_sweep_seconds_rasters": median("rasters_wall"),
        "ratio_sweep_over_bare": median("ratio_wall"),
        "bare_tokens_per_second": tokens / bare_seconds,
        "sweep_tokens_per_second": tokens / sweep_seconds,
        "cpu_seconds": {
            "bare_forward": median("bare_cpu"),
            "events_sweep": median("sweep_cpu"),
            "thresholds": median("thresholds_cpu"),
            "rasters": median("rasters_cpu"),
            "hooks_thresholds": median("hook_thresholds_cpu"),
            "hooks_rasters": median("hook_rasters_cpu"),
        },
        "ratio_sweep_over_bare_cpu": median("ratio_cpu"),
        "hook_share_thresholds_cpu": median("hook_share_thresholds_cpu"),
        "hook_share_rasters_cpu": median("hook_share_rasters_cpu"),
        "hook_share_sweep_cpu": median("hook_share_sweep_cpu"),
        "hook_share_thresholds_wall": median("hook_share_thresholds_wall"),
        "hook_share_rasters_wall": median("hook_share_rasters_wall"),
        "refitted_settings": int(sum(record["refits"] for record in records)),
        "per_repeat": records,
        "peak_rss_bytes_bare_forward": bare_rss.peak,
        "peak_rss_bytes_sweep_phase": sweep_rss.peak,
        "peak_rss_bytes_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "timing": "medians over repeats of interleaved bare/instrumented passes; *_cpu is "
        "process CPU time (all threads), hook shares are seconds inside the reductions / "
        "seconds of their pass",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).replace("torch.", ""),
        },
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "numpy": np.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def _sweep_once(
    loaded: LoadedModel,
    calibration: np.ndarray,
    analysis: np.ndarray,
    standardizer,
    targets,
    gains: list[float],
    rates: list[float],
    batch_size: int,
    baseline: pd.DataFrame,
) -> dict[str, float]:
    """One interleaved sweep over every gain: seconds (wall and process CPU) of the bare
    passes, of the rate-matching and raster passes, and of the hooks inside them."""
    record = dict.fromkeys(
        [
            f"{phase}_{clock}"
            for phase in ("bare", "thresholds", "rasters")
            for clock in ("wall", "cpu")
        ],
        0.0,
    )
    record["refits"] = 0
    n_s, n_r = len(SPIKE_DEFS), len(rates)
    previous = None
    with tempfile.TemporaryDirectory() as scratch, HookClock() as hooks:
        writer = RasterWriter(
            Path(scratch) / "rasters",
            np.arange(len(gains) * n_s * n_r),
            np.arange(len(analysis)),
            loaded.n_layers,
            analysis.shape[1],
            loaded.d_ff,
        )
        settings = [GainSetting(MLP_GLOBAL, g) for g in gains]
        for index in fit_order(settings):
            setting = settings[index]
            for windows, phase in ((calibration, "thresholds"), (analysis, "rasters")):
                _, wall, cpu = _clocked(bare_forward, loaded, windows, 1, batch_size)
                record["bare_wall"] += wall
                record["bare_cpu"] += cpu
                if phase == "thresholds":
                    (fit, stats), wall, cpu = _clocked(
                        fit_thresholds,
                        loaded,
                        calibration,
                        standardizer,
                        targets,
                        [setting],
                        SPIKE_DEFS,
                        rates,
                        batch_size,
                        seed_fits=previous,
                        baseline=baseline,
                    )
                    record["refits"] += int(stats.windows > len(calibration))
                    previous = fit if previous is None else pd.concat([previous, fit])
                else:
                    taus = tau_array(fit, setting, SPIKE_DEFS, rates, loaded.n_layers)
                    cond_rows = index * n_s * n_r + np.arange(n_s * n_r).reshape(n_s, n_r)
                    _, wall, cpu = _clocked(
                        record_rasters,
                        loaded,
                        analysis,
                        standardizer,
                        taus,
                        cond_rows,
                        SPIKE_DEFS,
                        setting,
                        writer,
                        batch_size,
                    )
                record[f"{phase}_wall"] += wall
                record[f"{phase}_cpu"] += cpu
        writer.finalize()
    for phase in ("thresholds", "rasters"):
        record[f"hook_{phase}_cpu"] = hooks.cpu[phase]
        record[f"hook_{phase}_wall"] = hooks.wall[phase]
    record["sweep_wall"] = record["thresholds_wall"] + record["rasters_wall"]
    record["sweep_cpu"] = record["thresholds_cpu"] + record["rasters_cpu"]
    return record
