"""The streaming reductions that turn MLP activations u into thresholds and event counts.

One implementation, two callers: the pipeline's instrumented passes (:mod:`.sweep`, which feed
u from forward hooks) and the public measurement API (:mod:`.activations`, which is fed u by
the user: cached tensors, TransformerLens or nnsight captures). Every reduction consumes one
layer's activations at a time, ``u [..., d_ff]`` in any float dtype on any device, and keeps
its state on that device:

* :class:`FiniteGuard` - NaN/inf detection with one host sync per batch, not per layer;
* :class:`BaselineCounter` - ``count(v > tau0)`` per (spike definition, layer) (SPEC §3);
* :class:`ThresholdFitter` - a running top-k of v per (spike definition, layer) and the exact
  order-statistic tau of every target rate (SPEC §4);
* :class:`EventCounter` - per-site event counts ``A = #{i : v_i > tau}`` for every
  (spike definition, target rate) at once (SPEC §5).

z is always the fp32 standardization ``(u - mu) / (sigma + eps)`` of :class:`.Standardizer`;
v is ``z`` (one-sided) or ``|z|`` (two-sided). Only few entries matter to any reduction (those
above a threshold or a top-k floor), so u is first compared with per-unit bounds on u itself
(:func:`.moments.exceedance_bounds`, a provable superset of ``|z| > floor``) and z is computed
exactly, by the same fp32 operations, on the kept entries only (:func:`candidate_entries`).

On the CPU these reductions run on numpy views of the tensors (zero-copy): the kept entries are
a few percent of u, and for arrays that small torch's intra-op thread pool costs more than the
work (a 20 000-entry gather took 36 ms instead of 0.2 ms with both cores busy). An fp32 u on the
CPU is read once by the compiled kernels of :mod:`.kernels` (bounds, exact z and, for the event
counts, the per-site counts of every threshold in the same pass).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..core.errors import NonFiniteActivationError, RateMatchingError
from .moments import Standardizer, UnitBounds
from .thresholds import (
    SPIKE_TWO_SIDED_ABS,
    StreamingTopK,
    fit_layer_thresholds,
    kth_largest,
    spike_values,
    topk_capacity,
)


def window_note(start: int, stop: int) -> str:
    """``" in windows a..b of the slice"``: where a non-finite activation was seen."""
    return f" in windows {start}..{stop - 1} of the slice"


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the True entries of a 1-D mask (numpy's flatnonzero on the CPU: several
    times faster than ``torch.nonzero`` for the sparse masks of the event passes)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


#: The arrays the reductions work on: numpy views on the CPU, tensors on accelerators.
Values = np.ndarray | torch.Tensor


def _host_view(values: torch.Tensor) -> Values:
    """A numpy view of a CPU tensor (the tensor itself on an accelerator)."""
    return values.numpy() if values.device.type == "cpu" else values


def standardized(standardizer: Standardizer, layer: int, u: torch.Tensor) -> Values:
    """The z of every entry of u, flat (the dense path; numpy for an fp32 u on the CPU, the
    same correctly rounded fp32 operations as the standardizer's)."""
    if u.device.type == "cpu" and u.dtype == torch.float32:
        return standardizer.on_host(layer, u.reshape(-1, standardizer.mu.shape[1]).numpy()).ravel()
    return _host_view(standardizer(layer, u).reshape(-1))


def candidate_entries(
    standardizer: Standardizer, layer: int, u: torch.Tensor, bounds: UnitBounds
) -> tuple[Values, Values]:
    """Flat indices (row-major in u) and exact z of the entries of ``u [..., d_ff]`` that are
    not inside ``[lo, hi]``: every entry with ``z > floor`` or ``z < -lower_floor`` of the
    bounds, plus NaN and inf (a NaN fails both comparisons and is therefore kept, so the guard
    still sees it).

    u is compared by torch against the fp32 bounds, which promotes bf16/fp16 entries to fp32
    exactly, element by element. The passes use it for bf16/fp16 u and on accelerators; an
    fp32 u on the CPU takes the compiled kernels instead (:func:`candidate_values`,
    :meth:`EventCounter.count_layer`). Returns numpy arrays on the CPU, tensors elsewhere.
    """
    d_ff = bounds.hi.shape[0]
    rows = u.reshape(-1, d_ff)
    inside = (rows <= bounds.hi_device) & (rows >= bounds.lo_device)
    index = flat_nonzero(~inside.reshape(-1))
    # on the CPU the reductions continue in numpy
    return _host_view(index), _host_view(standardizer.at(layer, u.reshape(-1), index))


def _kernels():
    """:mod:`.kernels`, imported on first use: importing numba takes about 0.12 s, which every
    Kedro command (``kedro registry``, ``kedro viz``) would otherwise pay when it registers the
    pipelines, and only the CPU passes need it."""
    from . import kernels

    return kernels


def candidate_values(
    standardizer: Standardizer, layer: int, u: torch.Tensor, bounds: UnitBounds, threads: int = 1
) -> tuple[Values, float | None]:
    """The z of :func:`candidate_entries` without their indices, and their peak ``max |z|``
    when the compiled kernel computed it on the way (an fp32 u on the CPU, read by up to
    ``threads`` threads; None elsewhere, where :meth:`FiniteGuard.observe` takes it from z)."""
    if u.device.type == "cpu" and u.dtype == torch.float32:
        kernels = _kernels()
        sites = kernels.host_sites(u.numpy(), bounds.hi.shape[0])
        return kernels.outside_values(sites, bounds.host_table, threads)
    return candidate_entries(standardizer, layer, u, bounds)[1], None


def _observe(guard: FiniteGuard | None, layer: int, values: Values, peak) -> None:
    """Give the guard the kernel's peak, or the values to take it from."""
    if guard is None:
        return
    if peak is None:
        guard.observe(layer, values)
    else:
        guard.observe_peak(layer, peak)


def _two_sided(spike_defs: Sequence[str]) -> bool:
    """Whether any spike definition compares |z| (then both bounds are needed)."""
    return SPIKE_TWO_SIDED_ABS in spike_defs


class FiniteGuard:
    """Detects NaN/inf activations without a host sync per layer.

    Each layer's max |z| is stored on the device (NaN propagates through max); the check runs
    once per batch and names the first offending layer and the batch's windows. The reductions
    observe z of all entries or of the entries :func:`candidate_entries` kept, which include
    every non-finite z (a NaN or inf u, and any |z| that overflowed, lies outside the bounds).
    """

    def __init__(self, n_layers: int, device: torch.device | str):
        if torch.device(device).type == "cpu":
            self.peaks = np.zeros(n_layers, dtype=np.float32)
        else:
            self.peaks = torch.zeros(n_layers, dtype=torch.float32, device=device)
        self.where = ""

    def on_batch(self, start: int, stop: int) -> None:
        self.where = window_note(start, stop)

    def observe_peak(self, layer: int, peak) -> None:
        """Record ``max |z|`` of ``layer`` (NaN when any z was NaN): a float, or a 0-d tensor
        on the device."""
        self.peaks[layer] = peak

    def observe(self, layer: int, values: Values) -> None:
        """Record ``max |values|`` of ``layer`` (0 when nothing was kept in this batch)."""
        if isinstance(values, np.ndarray):
            peak = np.abs(values).max() if values.size else 0.0
        else:
            peak = values.abs().amax() if values.numel() else 0.0
        if isinstance(self.peaks, np.ndarray) and isinstance(peak, torch.Tensor):
            peak = float(peak)
        self.observe_peak(layer, peak)

    def bad_layer(self) -> int | None:
        """The first layer whose activations held NaN/inf in this batch (one host sync)."""
        if isinstance(self.peaks, np.ndarray):
            bad = np.flatnonzero(~np.isfinite(self.peaks))
            return int(bad[0]) if bad.size else None
        finite = torch.isfinite(self.peaks)
        return None if bool(finite.all()) else int(torch.nonzero(~finite)[0, 0])

    def on_batch_end(self, start: int, stop: int) -> None:
        bad = self.bad_layer()
        if bad is not None:
            raise NonFiniteActivationError.in_layer(bad, self.where)


def _count_above(values: Values, tau: float) -> Values | int:
    """``count(values > tau)``: an int from numpy, a 0-d tensor (no sync) on a device."""
    if isinstance(values, np.ndarray):
        return int(np.count_nonzero(values > np.float32(tau)))
    return (values > tau).sum()


class BaselineCounter:
    """``count(v > tau0)`` per (spike definition, layer) at g = 1 (SPEC §3's rate profile).

    ``rates()`` gives ``r_base[s, l] = count / n_l`` with ``n_l`` the (token, unit) values of
    layer l seen so far.
    """

    def __init__(
        self,
        standardizer: Standardizer,
        spike_defs: Sequence[str],
        tau0: float,
        n_layers: int,
        guard: FiniteGuard | None = None,
    ):
        self.standardizer = standardizer
        self.spike_defs = tuple(spike_defs)
        self.tau0 = float(tau0)
        device = standardizer.mu.device
        self.counts = torch.zeros(len(self.spike_defs), n_layers, dtype=torch.int64, device=device)
        self.n_values = np.zeros(n_layers, dtype=np.int64)
        self.guard = guard
        self.threads = torch.get_num_threads()  # the compiled pass may read u with as many
        two_sided = _two_sided(self.spike_defs)
        self.bounds = [standardizer.bounds(layer, tau0, two_sided) for layer in range(n_layers)]

    def update(self, layer: int, u: torch.Tensor) -> None:
        bounds = self.bounds[layer]
        peak = None
        if bounds is None:
            z = standardized(self.standardizer, layer, u)
        else:  # only entries outside the bounds can exceed tau0
            z, peak = candidate_values(self.standardizer, layer, u, bounds, self.threads)
        _observe(self.guard, layer, z, peak)
        for index, spike_def in enumerate(self.spike_defs):
            self.counts[index, layer] += _count_above(spike_values(z, spike_def), self.tau0)
        self.n_values[layer] += u.numel()

    def exceedances(self) -> np.ndarray:
        """``[S, L]`` int64 counts of ``v > tau0``."""
        return self.counts.cpu().numpy()

    def rates(self) -> np.ndarray:
        """``r_base [S, L]`` float64."""
        return self.exceedances() / self.n_values[None, :]


def _candidate_floors(
    buffers: Sequence[StreamingTopK], spike_defs: Sequence[str]
) -> tuple[float, float | None] | None:
    """``(upper, lower)``: the smallest entry threshold among the buffers, and among those of
    two-sided statistics (None when there is none). None while any buffer is still filling,
    or when ``upper`` is negative.

    v of either statistic exceeds its buffer's threshold only where ``z > upper`` (z and
    ``|z| >= z`` both exceed a non-negative floor there) or, for ``|z|``, where ``z < -lower``;
    a negative floor (rates above 50 %) disables the shortcut.
    """
    floors = [buffer.entry_threshold() for buffer in buffers]
    if any(floor is None for floor in floors):
        return None
    upper = min(floors)
    if upper < 0:
        return None
    two_sided = [f for f, s in zip(floors, spike_defs, strict=True) if s == SPIKE_TWO_SIDED_ABS]
    return upper, (min(two_sided) if two_sided else None)


class ThresholdFitter:
    """Exact order-statistic thresholds of one (intervention, g) from a running top-k (SPEC §4).

    ``profile [S, R, L]`` holds the per-layer target rates r*; ``n_values [L]`` the number of
    (token, unit) values each layer will see, which sizes each top-k buffer at
    ``k = floor(max_r r* n) + 1``. :meth:`fits` checks that exactly ``n_values`` were seen.
    ``seeds [S, L]`` (NaN: none) are initial entry thresholds of the buffers (see
    :class:`.StreamingTopK`); when :meth:`incomplete` names a buffer after the pass, a seed
    was too high and the pass must be repeated without seeds.
    """

    def __init__(
        self,
        standardizer: Standardizer,
        spike_defs: Sequence[str],
        profile: np.ndarray,
        n_values: Sequence[int],
        guard: FiniteGuard | None = None,
        seeds: np.ndarray | None = None,
    ):
        self.standardizer = standardizer
        self.spike_defs = tuple(spike_defs)
        self.profile = np.asarray(profile, dtype=np.float64)
        self.n_values = [int(n) for n in n_values]
        n_layers = self.profile.shape[2]
        if seeds is None:
            seeds = np.full((len(self.spike_defs), n_layers), np.nan)
        self.buffers = [
            [
                StreamingTopK(
                    topk_capacity(self.profile[si, :, layer].max(), self.n_values[layer]),
                    seed=None if np.isnan(seeds[si, layer]) else float(seeds[si, layer]),
                )
                for layer in range(n_layers)
            ]
            for si in range(len(self.spike_defs))
        ]
        self.guard = guard
        self.threads = torch.get_num_threads()  # the compiled pass may read u with as many
        #: (token, unit) values of each layer fed so far, to check them against n_values
        self.seen = [0] * n_layers
        #: per layer, the candidate floors the cached bounds were formed for, and the bounds
        self._bounds: list[tuple[tuple, UnitBounds | None] | None] = [None] * n_layers
        #: per layer, its buffers (one per spike definition)
        self._layer_buffers = [
            [self.buffers[si][layer] for si in range(len(self.spike_defs))]
            for layer in range(n_layers)
        ]
        #: per layer, the candidates (z, values they stand for) not yet offered to the buffers
        self._pending: list[list[tuple[Values, int]]] = [[] for _ in range(n_layers)]
        #: per layer, whether a buffer still lacks an entry threshold, and the bounds of the
        #: buffers' current floors (None: standardize densely); both change only when values
        #: are offered or a buffer is seeded
        self._needs_seed = [True] * n_layers
        self._current: list[UnitBounds | None] = [None] * n_layers
        for layer in range(n_layers):
            self._refresh(layer)

    def _layer_bounds(self, layer: int, floors: tuple[float, float | None]) -> UnitBounds | None:
        cached = self._bounds[layer]
        if cached is None or cached[0] != floors:  # floors rise only when a buffer is cut
            upper, lower = floors
            bounds = self.standardizer.bounds(layer, upper, lower is not None, lower)
            cached = (floors, bounds)
            self._bounds[layer] = cached
        return cached[1]

    def _refresh(self, layer: int) -> None:
        """Recompute what :meth:`update` reads of ``layer``'s buffers."""
        buffers = self._layer_buffers[layer]
        self._needs_seed[layer] = any(buffer.entry_threshold() is None for buffer in buffers)
        floors = _candidate_floors(buffers, self.spike_defs)
        self._current[layer] = None if floors is None else self._layer_bounds(layer, floors)

    def update(self, layer: int, u: torch.Tensor) -> None:
        """Take the candidates of ``u [..., d_ff]`` of ``layer``.

        Only values above their buffer's current k-th largest can enter it; one comparison of
        u with the bounds of the buffers' floors finds the candidates of both spike
        definitions at once. The compiled CPU pass's candidates are offered to the buffers at
        :meth:`flush` (the passes call it at each batch end), at the latest before the layer's
        next update, whose bounds need them: each layer sees the same offers in the same order
        either way, so the thresholds do not depend on when :meth:`flush` is called. Deferring
        them is for speed: in a forward hook, between two layers' forwards, every Python step
        of the bookkeeping ran several times slower than it does at the batch end. Other z
        (every entry's, or on an accelerator) are offered at once.
        """
        if self._pending[layer]:
            self._offer(layer)
        self.seen[layer] += u.numel()
        if self._needs_seed[layer]:
            self._seed_from_sample(layer, u, self._layer_buffers[layer])
            self._refresh(layer)
        bounds = self._current[layer]
        peak = None
        if bounds is None:
            z = standardized(self.standardizer, layer, u)
        else:
            z, peak = candidate_values(self.standardizer, layer, u, bounds, self.threads)
        _observe(self.guard, layer, z, peak)
        self._pending[layer].append((z, u.numel()))
        if peak is None:
            # z of every entry, or on an accelerator: offered now, so that no batch holds
            # every layer's z (deferring is for the compiled pass's few candidates)
            self._offer(layer)

    def _offer(self, layer: int) -> None:
        buffers = self._layer_buffers[layer]
        for z, n_values in self._pending[layer]:
            for buffer, spike_def in zip(buffers, self.spike_defs, strict=True):
                buffer.update(spike_values(z, spike_def), n_values=n_values)
        self._pending[layer].clear()
        self._refresh(layer)

    def flush(self) -> None:
        """Offer every layer's pending candidates to its buffers."""
        for layer, pending in enumerate(self._pending):
            if pending:
                self._offer(layer)

    def on_batch_end(self, start: int, stop: int) -> None:
        """A pass's batch-end hook: the guard's check of the batch, then :meth:`flush`."""
        if self.guard is not None:
            self.guard.on_batch_end(start, stop)
        self.flush()

    def _seed_from_sample(self, layer: int, u: torch.Tensor, buffers) -> None:
        """Give buffers without an entry threshold one from every ``stride``-th row of u.

        The k-th largest v of a subset of the batch is at most the batch's k-th largest, so at
        least k values of the batch reach it and no value below it can be among the top k:
        just below it is an exact seed (no repeated pass). A sample of ``sqrt(n k)`` values
        balances its own cost against the ~``sqrt(n k)`` candidates it lets through.
        """
        d_ff = self.standardizer.mu.shape[1]
        n_rows = u.numel() // d_ff
        k = max(buffer.k for buffer in buffers)
        stride = int(n_rows * d_ff / math.sqrt(u.numel() * k))
        if stride < 2:  # the sample would be (nearly) the batch itself
            return
        sample = standardized(self.standardizer, layer, u.reshape(n_rows, d_ff)[::stride])
        for buffer, spike_def in zip(buffers, self.spike_defs, strict=True):
            if buffer.entry_threshold() is None and len(sample) >= buffer.k:
                kth = kth_largest(spike_values(sample, spike_def), buffer.k)
                if math.isfinite(kth):  # a NaN or inf is left to the guard
                    buffer.seed_with(float(np.nextafter(np.float32(kth), np.float32(-np.inf))))

    def incomplete(self) -> list[tuple[str, int]]:
        """(spike def, layer) of the buffers whose seed dropped values of their top k."""
        self.flush()
        return [
            (spike_def, layer)
            for si, spike_def in enumerate(self.spike_defs)
            for layer, buffer in enumerate(self.buffers[si])
            if not buffer.complete()
        ]

    def fits(self) -> list[dict]:
        """One row per (spike def, layer, target): tau, m, in-sample count and rate, top-k size."""
        self.flush()
        rows = []
        for si, spike_def in enumerate(self.spike_defs):
            for layer, buffer in enumerate(self.buffers[si]):
                n_values = self.n_values[layer]
                if self.seen[layer] != n_values:
                    raise RateMatchingError(
                        f"Layer {layer} of the calibration activations held {self.seen[layer]} "
                        f"values, but the thresholds were sized for {n_values} (the tokens x "
                        "units of the moments' slice).",
                        "Fit the thresholds on the same calibration activations the moments "
                        "came from (same windows, every token).",
                    )
                top = buffer.result()
                fits = fit_layer_thresholds(top, n_values, self.profile[si, :, layer])
                for ri, fit in enumerate(fits):
                    rows.append(
                        {
                            "spike_index": si,
                            "rate_index": ri,
                            "spike_def_id": spike_def,
                            "layer": layer,
                            "r_star": float(self.profile[si, ri, layer]),
                            "n_values": n_values,
                            "topk_kept": int(top.size),
                            **fit,
                        }
                    )
        return rows
