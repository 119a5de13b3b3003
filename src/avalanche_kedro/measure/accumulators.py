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
v is ``z`` (one-sided) or ``|z|`` (two-sided).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..core.errors import NonFiniteActivationError, RateMatchingError
from .moments import Standardizer
from .thresholds import StreamingTopK, fit_layer_thresholds, spike_values, topk_capacity


def window_note(start: int, stop: int) -> str:
    """``" in windows a..b of the slice"``: where a non-finite activation was seen."""
    return f" in windows {start}..{stop - 1} of the slice"


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the True entries of a 1-D mask (numpy's flatnonzero on the CPU: several
    times faster than ``torch.nonzero`` for the sparse masks of the event passes)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask).squeeze(1)


class FiniteGuard:
    """Detects NaN/inf activations without a host sync per layer.

    Each layer's max |z| is stored on the device (NaN propagates through max); the check runs
    once per batch and names the first offending layer and the batch's windows.
    """

    def __init__(self, n_layers: int, device: torch.device | str):
        self.peaks = torch.zeros(n_layers, dtype=torch.float32, device=device)
        self.where = ""

    def on_batch(self, start: int, stop: int) -> None:
        self.where = window_note(start, stop)

    def observe(self, layer: int, magnitude: torch.Tensor) -> None:
        self.peaks[layer] = magnitude.amax()

    def bad_layer(self) -> int | None:
        """The first layer whose activations held NaN/inf in this batch (one host sync)."""
        finite = torch.isfinite(self.peaks)
        return None if bool(finite.all()) else int(torch.nonzero(~finite)[0, 0])

    def on_batch_end(self, start: int, stop: int) -> None:
        bad = self.bad_layer()
        if bad is not None:
            raise NonFiniteActivationError.in_layer(bad, self.where)


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

    def update(self, layer: int, u: torch.Tensor) -> None:
        z = self.standardizer(layer, u)
        if self.guard is not None:
            self.guard.observe(layer, z.abs())
        for index, spike_def in enumerate(self.spike_defs):
            self.counts[index, layer] += (spike_values(z, spike_def) > self.tau0).sum()
        self.n_values[layer] += z.numel()

    def exceedances(self) -> np.ndarray:
        """``[S, L]`` int64 counts of ``v > tau0``."""
        return self.counts.cpu().numpy()

    def rates(self) -> np.ndarray:
        """``r_base [S, L]`` float64."""
        return self.exceedances() / self.n_values[None, :]


def _candidate_floor(buffers: Sequence[StreamingTopK]) -> torch.Tensor | None:
    """Smallest entry threshold among full buffers (None while any buffer is still filling)."""
    floors = [buffer.entry_threshold() for buffer in buffers]
    if any(floor is None for floor in floors):
        return None
    floor = floors[0]
    for other in floors[1:]:
        floor = torch.minimum(floor, other)
    # Both statistics (z and |z|) exceed their floor only where |z| exceeds it, provided the
    # floor is not negative; a negative floor (rates above 50 %) disables the shortcut.
    return floor if bool(floor >= 0) else None


class ThresholdFitter:
    """Exact order-statistic thresholds of one (intervention, g) from a running top-k (SPEC §4).

    ``profile [S, R, L]`` holds the per-layer target rates r*; ``n_values [L]`` the number of
    (token, unit) values each layer will see, which sizes each top-k buffer at
    ``k = floor(max_r r* n) + 1``. :meth:`fits` checks that exactly ``n_values`` were seen.
    """

    def __init__(
        self,
        standardizer: Standardizer,
        spike_defs: Sequence[str],
        profile: np.ndarray,
        n_values: Sequence[int],
        guard: FiniteGuard | None = None,
    ):
        self.standardizer = standardizer
        self.spike_defs = tuple(spike_defs)
        self.profile = np.asarray(profile, dtype=np.float64)
        self.n_values = [int(n) for n in n_values]
        n_layers = self.profile.shape[2]
        self.buffers = [
            [
                StreamingTopK(topk_capacity(self.profile[si, :, layer].max(), self.n_values[layer]))
                for layer in range(n_layers)
            ]
            for si in range(len(self.spike_defs))
        ]
        self.guard = guard
        #: (token, unit) values of each layer fed so far, to check them against n_values
        self.seen = [0] * n_layers

    def update(self, layer: int, u: torch.Tensor) -> None:
        z = self.standardizer(layer, u).reshape(-1)
        magnitude = z.abs()
        self.seen[layer] += magnitude.numel()
        if self.guard is not None:
            self.guard.observe(layer, magnitude)
        # Only values above every buffer's current k-th largest can enter a buffer; one
        # comparison on |z| finds the candidates of both spike definitions at once.
        buffers = [self.buffers[si][layer] for si in range(len(self.spike_defs))]
        floor = _candidate_floor(buffers)
        if floor is not None:
            z = z[flat_nonzero(magnitude > floor)]
        for buffer, spike_def in zip(buffers, self.spike_defs, strict=True):
            buffer.update(spike_values(z, spike_def))

    def fits(self) -> list[dict]:
        """One row per (spike def, layer, target): tau, m, in-sample count and rate, top-k size."""
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


class EventCounter:
    """Per-site event counts for every (spike definition, target) of one layer at once.

    Per layer: standardize, take |z|, keep the (few) entries above the smallest threshold of
    any (spike def, target), and count, for each (spike def, target), the kept entries above
    its threshold per site with one ``index_add_``. Exact: every entry above any threshold is
    kept, because ``v > tau >= floor`` implies ``|z| > floor`` for both statistics.
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
        self.taus = torch.as_tensor(np.asarray(taus), dtype=torch.float32, device=device)
        floors = np.asarray(taus, dtype=np.float32).reshape(-1, n_layers).min(axis=0)
        # A negative floor would make |z| > floor keep everything; count densely then.
        self.floors = [float(f) if f >= 0 else None for f in floors]
        self.d_ff = int(standardizer.mu.shape[1])
        self.guard = guard

    def count_layer(self, layer: int, u: torch.Tensor) -> torch.Tensor:
        """``counts [S*R, sites]`` int32 of ``u [..., d_ff]``, sites in u's row-major order."""
        z = self.standardizer(layer, u).reshape(-1)
        magnitude = z.abs()
        if self.guard is not None:
            self.guard.observe(layer, magnitude)
        n_sites = z.numel() // self.d_ff
        if self.floors[layer] is not None:
            kept = flat_nonzero(magnitude > self.floors[layer])
            values = z[kept]
            sites = torch.div(kept, self.d_ff, rounding_mode="floor")
        else:
            values = z
            sites = torch.arange(n_sites, device=z.device).repeat_interleave(self.d_ff)
        hits = torch.cat(
            [
                spike_values(values, spike_def)[:, None] > self.taus[si, :, layer][None, :]
                for si, spike_def in enumerate(self.spike_defs)
            ],
            dim=1,
        ).to(torch.int32)  # [K, S*R]
        counts = torch.zeros(n_sites, self.n_s * self.n_r, dtype=torch.int32, device=z.device)
        counts.index_add_(0, sites, hits)
        return counts.T
