"""Benchmarks that write their numbers to JSON (docs/performance.md quotes them).

    python -m avalanche_kedro.benchmark events --preset embedded --out docs/benchmarks/embedded-cpu.json
    python -m avalanche_kedro.benchmark events --preset qwen2.5-0.5b-shape --out docs/benchmarks/qwen05b-shape-cpu.json
    python -m avalanche_kedro.benchmark components --out docs/benchmarks/components-cpu.json
    python -m avalanche_kedro.benchmark scaling --out docs/benchmarks/scaling-localcluster-cpu.json

``events``: the events sweep against a bare forward pass of the same model on the same windows.
``scaling``: the whole embedded-default study (``kedro run --env dask``) with Kedro's
SequentialRunner and with the DaskRunner on a LocalCluster, each in a fresh project copy
(embedded models built in both), tables compared byte for byte.
``components``: avalanche extraction of a whole condition in one vectorized call against a
straightforward per-window Python breadth-first search (results compared for equality).

The *events sweep* is what the events pipeline does per gain: one pass over the calibration
windows that streams the top-k of v for every (spike definition, layer) and reads every target
rate's order-statistic threshold from it, then one pass over the analysis windows that counts
events per site for every (spike definition, target rate). The *bare forward* runs the same
backbone on exactly the same windows the same number of times with no hook installed. Moments
and baseline rates (the capture pipeline) are computed once beforehand and not timed.

Bare and instrumented passes are timed alternately, gain by gain. The JSON written holds both
wall times, their ratio (the instrumentation overhead; the goal
is <= 1.3 on CPU for the Qwen2.5-0.5B shape), tokens per second, peak RSS of each phase, and
the machine, library versions and settings, so docs/performance.md can quote it verbatim.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from .adapters import adapter_for
from .checkpoints import LoadedModel, load_model, resolve_checkpoint
from .datasets import pydoc_topics
from .gain import MLP_GLOBAL
from .rasters import RasterWriter
from .seeds import seed_of
from .sweep import (
    GainSetting,
    accumulate_moments,
    count_baseline_exceedances,
    fit_thresholds,
    record_rasters,
    tau_array,
)
from .thresholds import SPIKE_DEFS, rate_targets_table
from .windows import cut_windows, tokenize_stream

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
    },
    # A random-init model shaped like Qwen2.5-0.5B (24 layers, hidden 896, d_ff 4864).
    "qwen2.5-0.5b-shape": {
        "model": "qwen2.5-0.5b-shape",
        "seq_len": 256,
        "n_calibration": 8,
        "n_analysis": 8,
        "gains": [0.9, 1.0, 1.1],
        "batch_size": 4,
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


def embedded_model(checkpoint: Path) -> LoadedModel:
    """The embedded default checkpoint (built on first use, exactly as the pipeline does)."""
    manifest = resolve_checkpoint(
        "benchmark",
        {"checkpoint": str(checkpoint), "embedded": {"seed_name": "tiny-llama-base"}},
        pydoc_topics(),
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
    # (frequency, noisy neighbours) hit both sides alike.
    bare_seconds = fit_seconds = raster_seconds = 0.0
    n_s, n_r = len(SPIKE_DEFS), len(rates)
    with tempfile.TemporaryDirectory() as scratch, PeakRSS() as sweep_rss:
        writer = RasterWriter(
            Path(scratch) / "rasters",
            np.arange(len(gains) * n_s * n_r),
            np.arange(n_ana),
            loaded.n_layers,
            seq_len,
        )
        for index, g in enumerate(gains):
            setting = GainSetting(MLP_GLOBAL, g)
            bare_seconds += bare_forward(loaded, calibration, 1, batch_size)
            started = time.perf_counter()
            fit, _ = fit_thresholds(
                loaded, calibration, standardizer, targets, [setting], SPIKE_DEFS, rates, batch_size
            )
            fit_seconds += time.perf_counter() - started
            taus = tau_array(fit, setting, SPIKE_DEFS, rates, loaded.n_layers)
            cond_rows = index * n_s * n_r + np.arange(n_s * n_r).reshape(n_s, n_r)
            bare_seconds += bare_forward(loaded, analysis, 1, batch_size)
            started = time.perf_counter()
            record_rasters(
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
            raster_seconds += time.perf_counter() - started
        writer.finalize()

    sweep_seconds = fit_seconds + raster_seconds
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
        "bare_forward_seconds": bare_seconds,
        "events_sweep_seconds": sweep_seconds,
        "events_sweep_seconds_thresholds": fit_seconds,
        "events_sweep_seconds_rasters": raster_seconds,
        "ratio_sweep_over_bare": sweep_seconds / bare_seconds,
        "bare_tokens_per_second": tokens / bare_seconds,
        "sweep_tokens_per_second": tokens / sweep_seconds,
        "peak_rss_bytes_bare_forward": bare_rss.peak,
        "peak_rss_bytes_sweep_phase": sweep_rss.peak,
        "peak_rss_bytes_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
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


def _steps(adjacency: str) -> list[tuple[int, int]]:
    steps = [(0, 1), (0, -1), (1, 0), (-1, 0)]
    if adjacency == "ADJ_8N":
        steps += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    return steps


def bfs_avalanches(A: np.ndarray, adjacency: str = "ADJ_4N") -> list[tuple[int, ...]]:
    """Reference: the straightforward per-window breadth-first search a script would use.

    Loops over every site of every window of the numpy raster, floods each unvisited occupied
    site with a deque, and returns ``(seq_index, size, span_tokens, span_layers, n_sites,
    t_min, l_min)`` per avalanche.
    """
    from collections import deque

    steps = _steps(adjacency)
    n_windows, n_layers, seq_len = A.shape
    found = []
    for n in range(n_windows):
        window = A[n]
        visited = np.zeros(window.shape, dtype=bool)
        for l0 in range(n_layers):
            for t0 in range(seq_len):
                if window[l0, t0] == 0 or visited[l0, t0]:
                    continue
                visited[l0, t0] = True
                queue = deque([(l0, t0)])
                size = sites = 0
                t_min, t_max, l_min, l_max = t0, t0, l0, l0
                while queue:
                    layer, t = queue.popleft()
                    size += int(window[layer, t])
                    sites += 1
                    t_min, t_max = min(t_min, t), max(t_max, t)
                    l_min, l_max = min(l_min, layer), max(l_max, layer)
                    for dl, dt in steps:
                        nl, nt = layer + dl, t + dt
                        if 0 <= nl < n_layers and 0 <= nt < seq_len:
                            if window[nl, nt] and not visited[nl, nt]:
                                visited[nl, nt] = True
                                queue.append((nl, nt))
                found.append((n, size, t_max - t_min + 1, l_max - l_min + 1, sites, t_min, l_min))
    return found


def bfs_avalanches_lists(A: np.ndarray, adjacency: str = "ADJ_4N") -> list[tuple[int, ...]]:
    """The same search tuned for CPython: each window converted to nested lists first."""
    from collections import deque

    steps = _steps(adjacency)
    n_windows, n_layers, seq_len = A.shape
    found = []
    for n in range(n_windows):
        window = A[n].tolist()
        seen = [[False] * seq_len for _ in range(n_layers)]
        for l0 in range(n_layers):
            row = window[l0]
            for t0 in range(seq_len):
                if row[t0] == 0 or seen[l0][t0]:
                    continue
                seen[l0][t0] = True
                queue = deque([(l0, t0)])
                size = sites = 0
                t_min, t_max, l_min, l_max = t0, t0, l0, l0
                while queue:
                    layer, t = queue.popleft()
                    size += window[layer][t]
                    sites += 1
                    t_min, t_max = min(t_min, t), max(t_max, t)
                    l_min, l_max = min(l_min, layer), max(l_max, layer)
                    for dl, dt in steps:
                        nl, nt = layer + dl, t + dt
                        if 0 <= nl < n_layers and 0 <= nt < seq_len:
                            if window[nl][nt] and not seen[nl][nt]:
                                seen[nl][nt] = True
                                queue.append((nl, nt))
                found.append((n, size, t_max - t_min + 1, l_max - l_min + 1, sites, t_min, l_min))
    return found


def run_components(
    shape=(128, 28, 256), occupancy: float = 0.02, repeats: int = 3
) -> dict[str, Any]:
    """Vectorized avalanche extraction vs per-window Python BFS on a random raster."""
    from .lattice import ADJACENCIES, avalanches, branching

    rng = np.random.default_rng(seed_of("benchmark_raster", *shape, occupancy))
    occupied = rng.random(shape) < occupancy
    A = (occupied * rng.integers(1, 4, size=shape)).astype(np.uint16)
    result: dict[str, Any] = {
        "shape_N_L_T": list(shape),
        "occupancy": float(occupied.mean()),
        "repeats": repeats,
    }
    for adjacency in ADJACENCIES:
        timings: dict[str, list[float]] = {"vectorized": [], "bfs": [], "bfs_lists": []}
        for _ in range(repeats):
            started = time.perf_counter()
            table = avalanches(A, adjacency)
            timings["vectorized"].append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = bfs_avalanches(A, adjacency)
            timings["bfs"].append(time.perf_counter() - started)
            started = time.perf_counter()
            rows_lists = bfs_avalanches_lists(A, adjacency)
            timings["bfs_lists"].append(time.perf_counter() - started)
        columns = ["seq_index", "size", "span_tokens", "span_layers", "n_sites", "t_min", "l_min"]
        ours = [tuple(int(v) for v in r) for r in table[columns].itertuples(index=False, name=None)]
        # the BFS visits layer by layer; compare as sets of rows ordered identically
        order = lambda r: (r[0], r[6], r[5], r[1], r[4])  # noqa: E731
        if not (
            sorted(ours, key=order) == sorted(rows, key=order) == sorted(rows_lists, key=order)
        ):
            raise SystemExit(f"{adjacency}: vectorized and BFS avalanches differ")
        key = adjacency.lower()
        fastest = {name: min(values) for name, values in timings.items()}
        result[f"{key}_avalanches"] = len(table)
        result[f"{key}_vectorized_seconds"] = fastest["vectorized"]
        result[f"{key}_python_bfs_seconds"] = fastest["bfs"]
        result[f"{key}_python_bfs_lists_seconds"] = fastest["bfs_lists"]
        result[f"{key}_speedup"] = fastest["bfs"] / fastest["vectorized"]
        result[f"{key}_speedup_vs_lists"] = fastest["bfs_lists"] / fastest["vectorized"]
    started = time.perf_counter()
    branching(A > 0)
    result["branching_seconds"] = time.perf_counter() - started
    result["machine"] = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    result["versions"] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "cc3d": __import__("importlib.metadata").metadata.version("connected-components-3d"),
    }
    result["date"] = time.strftime("%Y-%m-%d")
    return result


def run_scaling(project_root: Path, n_workers: int, repeats: int) -> dict[str, Any]:
    """Wall time of ``kedro run --env dask`` sequentially and on a local Dask cluster."""
    import hashlib
    import shutil
    import subprocess
    import tempfile

    def fresh_copy(folder: Path) -> Path:
        project = folder / "project"
        project.mkdir()
        shutil.copy(project_root / "pyproject.toml", project)
        shutil.copytree(
            project_root / "conf", project / "conf", ignore=shutil.ignore_patterns("local")
        )
        (project / "conf" / "local").mkdir()
        (project / "conf" / "local" / "parameters.yml").write_text("runtime:\n  progress: false\n")
        shutil.copytree(project_root / "data" / "01_raw", project / "data" / "01_raw")
        (project / "src").mkdir()
        return project

    def tables(project: Path) -> dict[str, str]:
        return {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted((project / "data/08_reporting/tables").rglob("*.parquet"))
            if path.is_file()
        }

    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1")
    runs: dict[str, list[float]] = {"sequential": [], "dask": []}
    digests: dict[str, dict[str, str]] = {}
    runner = ["--runner", "avalanche_kedro.runners.DaskRunner"]
    runner += ["--runner-params", f"n_workers={n_workers}"]
    for _ in range(repeats):
        for name, extra in (("sequential", []), ("dask", runner)):
            with tempfile.TemporaryDirectory() as folder:
                project = fresh_copy(Path(folder))
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "kedro", "run", "--env", "dask", *extra],
                    cwd=project,
                    env=env,
                    check=True,
                    capture_output=True,
                )
                runs[name].append(round(time.perf_counter() - started, 2))
                digests[name] = tables(project)
    sequential, distributed = min(runs["sequential"]), min(runs["dask"])
    return {
        "benchmark": "kedro run --env dask: SequentialRunner vs DaskRunner on a LocalCluster",
        "n_workers": n_workers,
        "repeats": repeats,
        "sequential_seconds": runs["sequential"],
        "dask_seconds": runs["dask"],
        "speedup_best_of": round(sequential / distributed, 3),
        "tables_identical": digests["sequential"] == digests["dask"],
        "n_tables": len(digests["sequential"]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch_threads_sequential": torch.get_num_threads(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    events = commands.add_parser("events", help="events sweep vs bare forward pass")
    events.add_argument("--preset", choices=sorted(PRESETS), default="embedded")
    events.add_argument("--out", type=Path, required=True, help="JSON file to write")
    events.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("data/06_models/tiny-llama-base"),
        help="embedded checkpoint directory (built on first use)",
    )
    events.add_argument("--gains", type=float, nargs="+", help="override the preset's gains")
    events.add_argument("--n-calibration", type=int, help="override calibration windows")
    events.add_argument("--n-analysis", type=int, help="override analysis windows")
    scaling = commands.add_parser("scaling", help="sequential vs Dask LocalCluster, whole run")
    scaling.add_argument("--out", type=Path, required=True, help="JSON file to write")
    scaling.add_argument("--n-workers", type=int, default=2)
    scaling.add_argument("--repeats", type=int, default=1)
    components = commands.add_parser("components", help="vectorized avalanches vs Python BFS")
    components.add_argument("--out", type=Path, required=True, help="JSON file to write")
    components.add_argument("--occupancy", type=float, default=0.02)
    components.add_argument("--shape", type=int, nargs=3, default=[128, 28, 256])
    args = parser.parse_args(argv)

    if args.command == "scaling":
        result = run_scaling(Path.cwd(), args.n_workers, args.repeats)
        summary = result
    elif args.command == "components":
        result = run_components(tuple(args.shape), args.occupancy)
        summary = {k: v for k, v in result.items() if k.endswith(("speedup", "seconds"))}
    else:
        preset = dict(PRESETS[args.preset])
        if args.gains:
            preset["gains"] = args.gains
        if args.n_calibration:
            preset["n_calibration"] = args.n_calibration
        if args.n_analysis:
            preset["n_analysis"] = args.n_analysis
        result = run(preset, args.checkpoint)
        summary = {
            k: result[k]
            for k in (
                "model",
                "bare_forward_seconds",
                "events_sweep_seconds",
                "ratio_sweep_over_bare",
                "sweep_tokens_per_second",
                "peak_rss_bytes_sweep_phase",
            )
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
