"""The components benchmark: vectorized avalanche extraction against a per-window Python BFS."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import numpy as np

from ...core.seeds import seed_of


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
    from ...analysis.lattice import ADJACENCIES, avalanches, branching

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
