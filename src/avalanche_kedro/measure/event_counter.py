"""Per-site event counts of one layer's activations for every (spike definition, target) (SPEC §5).

``A[site] = #{i : v_i > tau}`` with v = z (one-sided) or |z| (two-sided) and z the fp32
standardization of :class:`.moments.Standardizer`. The same code serves the pipeline's raster
passes (:mod:`.sweep`, :mod:`.ablation_passes`) and the public API on stored activations
(:mod:`.activations`).

The raster passes call it once per layer and batch from a forward hook, so what it costs
besides the one read of u matters: with the model's forward between two calls, even a
zeroed array, a ``torch.from_numpy`` and an indexed copy into the batch buffer took about
0.1 ms in place, a third of the compiled pass itself (embedded model, 2048 sites, d_ff = 384).
:meth:`EventCounter.count_layer_into` therefore lets the compiled kernel write each layer's
counts straight into the caller's buffer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .accumulators import (
    FiniteGuard,
    _kernels,
    candidate_entries,
    standardized,
)
from .moments import Standardizer
from .thresholds import SPIKE_TWO_SIDED_ABS, spike_values

#: A layer's counts as a caller keeps them: ``[S*R, B, T]`` int32, a numpy array on the CPU
#: or a tensor on the counter's device (any strides, e.g. a layer's slice of ``[S*R, B, L, T]``)
CountsOut = np.ndarray | torch.Tensor


class EventCounter:
    """Per-site event counts for every (spike definition, target) of one layer at once.

    Per layer: keep the (few) entries outside the bounds of ``z > floor or z < -lower``, floor
    the smallest threshold of any (spike def, target) and lower the smallest two-sided one
    (u compared with per-unit bounds, exact z of the kept entries only), and count, for each
    (spike def, target), the kept entries above its threshold per site (one compiled pass for
    an fp32 u on the CPU, :func:`.kernels.count_outside_events`; one ``index_add_`` elsewhere).
    Exact: every entry above any threshold is kept, because ``z > tau >= floor`` (one-sided)
    and ``|z| > tau >= lower >= 0`` (two-sided: ``z > floor`` or ``z < -lower``).
    """

    def __init__(
        self,
        standardizer: Standardizer,
        spike_defs: Sequence[str],
        taus: np.ndarray,  # [S, R, L] float32 values
        guard: FiniteGuard | None = None,
    ):
        self.standardizer = standardizer
        self.spike_defs = tuple(spike_defs)
        self.n_s, self.n_r, n_layers = taus.shape
        device = standardizer.mu.device
        self.host_taus = np.asarray(taus, dtype=np.float32)
        self.taus = torch.as_tensor(self.host_taus, device=device)
        # Every v above its tau has z above the smallest tau of the layer (upper floor) or, for
        # |z|, z below minus the smallest two-sided tau (lower floor). A negative floor would
        # keep everything; count densely then.
        floors = self.host_taus.reshape(-1, n_layers).min(axis=0)
        self.floors = [float(f) if f >= 0 else None for f in floors]
        #: per spike definition, whether its statistic is |z| (also the compiled kernel's flags)
        self.two_sided = np.array([s == SPIKE_TWO_SIDED_ABS for s in self.spike_defs])
        lower = (
            self.host_taus[self.two_sided].reshape(-1, n_layers).min(axis=0)
            if self.two_sided.any()
            else None
        )
        self.bounds = [
            None
            if floor is None
            else standardizer.bounds(
                layer, floor, lower is not None, None if lower is None else float(lower[layer])
            )
            for layer, floor in enumerate(self.floors)
        ]
        self.d_ff = int(standardizer.mu.shape[1])
        self.guard = guard
        #: threads the compiled pass reads u with: torch's intra-op count, as the forward
        self.threads = torch.get_num_threads()
        # per layer, everything the compiled CPU kernel takes besides u and the counts (None
        # where the counts are formed densely, and off the CPU), gathered once: each step a
        # call takes costs it some 10-25 us, since the forward between two calls evicts it
        self._kernel_args = [
            None
            if bounds is None or device.type != "cpu"
            else (
                bounds.host_table,
                np.ascontiguousarray(self.host_taus[:, :, layer]),
                self.two_sided,
            )
            for layer, bounds in enumerate(self.bounds)
        ]
        for spike_def in self.spike_defs:
            spike_values(np.zeros(1, np.float32), spike_def)  # an unknown one fails here

    def _compiled(self, layer: int, u: torch.Tensor) -> tuple | None:
        """The kernel's arguments of ``layer`` when the compiled pass applies to u (an fp32 u,
        on the CPU like the standardizer, a layer with bounds), else None."""
        if u.dtype is torch.float32:
            return self._kernel_args[layer]
        return None

    def _count_compiled(self, layer: int, sites: np.ndarray, args: tuple, out: np.ndarray) -> None:
        """The compiled pass over ``sites [B, T, d_ff]`` into ``out [S*R, B, T]``."""
        peak = _kernels().count_outside_events(sites, *args, out, self.threads)
        if self.guard is not None:
            self.guard.observe_peak(layer, peak)

    def count_layer_into(self, layer: int, u: torch.Tensor, out: CountsOut) -> None:
        """Write the counts of ``u [B, T, d_ff]`` into ``out [S*R, B, T]`` (int32; numpy on
        the CPU or a tensor on the counter's device; any strides), site ``(b, t)`` at
        ``out[:, b, t]``."""
        args = self._compiled(layer, u)
        if args is not None and isinstance(out, np.ndarray):
            self._count_compiled(layer, _kernels().host_sites(u.numpy(), self.d_ff), args, out)
            return
        counts = self.count_layer(layer, u).reshape(out.shape)
        if isinstance(out, np.ndarray):
            out[...] = counts.cpu().numpy()
        else:
            out.copy_(counts)

    def count_layer(self, layer: int, u: torch.Tensor) -> torch.Tensor:
        """``counts [S*R, sites]`` int32 of ``u [..., d_ff]``, sites in u's row-major order."""
        n_sites = u.numel() // self.d_ff
        args = self._compiled(layer, u)
        if args is not None:
            # one compiled pass: bounds, exact z of the kept entries, every threshold's counts
            sites = _kernels().host_sites(u.numpy(), self.d_ff)
            counts = np.empty((self.n_s * self.n_r, *sites.shape[:2]), dtype=np.int32)
            self._count_compiled(layer, sites, args, counts)
            return torch.from_numpy(counts.reshape(self.n_s * self.n_r, n_sites))
        bounds = self.bounds[layer]
        if bounds is not None:
            kept, values = candidate_entries(self.standardizer, layer, u, bounds)
        else:
            kept, values = None, standardized(self.standardizer, layer, u)
        if self.guard is not None:
            self.guard.observe(layer, values)
        if isinstance(values, np.ndarray):
            sites = np.arange(values.size) if kept is None else kept
            sites = sites // self.d_ff
            counts = np.empty((self.n_s * self.n_r, n_sites), dtype=np.int32)
            for si, spike_def in enumerate(self.spike_defs):
                v = spike_values(values, spike_def)
                for ri in range(self.n_r):
                    above = sites[v > self.host_taus[si, ri, layer]]
                    counts[si * self.n_r + ri] = np.bincount(above, minlength=n_sites)
            return torch.from_numpy(counts)
        if kept is None:
            sites = torch.arange(n_sites, device=values.device).repeat_interleave(self.d_ff)
        else:
            sites = torch.div(kept, self.d_ff, rounding_mode="floor")
        hits = torch.cat(
            [
                spike_values(values, spike_def)[:, None] > self.taus[si, :, layer][None, :]
                for si, spike_def in enumerate(self.spike_defs)
            ],
            dim=1,
        ).to(torch.int32)  # [K, S*R]
        counts = torch.zeros(n_sites, self.n_s * self.n_r, dtype=torch.int32, device=values.device)
        counts.index_add_(0, sites, hits)
        return counts.T
