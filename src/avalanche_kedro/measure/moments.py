"""Per-unit activation moments accumulated in fp64 with Chan's parallel merge (SPEC §3).

For each (layer, unit) the calibration pass sees every token of every calibration window once.
Each batch contributes its own count, mean and centered sum of squares ``M2`` (computed in fp64
on the model's device); batches are merged with Chan, Golub & LeVeque's pairwise update

    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * n_b / n
    M2 = M2_a + M2_b + delta**2 * n_a * n_b / n

which stays accurate where the textbook ``E[x^2] - E[x]^2`` loses every digit. The population
standard deviation is ``sqrt(M2 / n)``. The count is the number of (window, token) positions,
once per layer, never divided by the layer count (the reference pack's bug, SPEC §3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from ..core.errors import NonFiniteActivationError

#: SPEC §3: z = (u - mu) / (sigma + eps).
DEFAULT_EPS = 1e-6

MOMENT_COLUMNS = ["layer", "unit", "count", "mu", "sigma", "degenerate"]

#: Relative loosening of :func:`exceedance_bounds`: 16x the 2^-24 rounding of the fp32
#: subtraction in z, and far above the ~2^-51 error of the fp64 bound arithmetic.
BOUND_SLACK = 2.0**-20
#: Bounds are only formed while |mu| + floor * (sigma + eps) stays below this: then an
#: overflowing fp32 subtraction ``u - mu`` can only happen far outside the bounds.
BOUND_RANGE = 2.0**100
_F32_MAX = float(np.finfo(np.float32).max)


def batch_moments(values: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Count, mean and centered sum of squares of ``values [n, units]`` along axis 0, in fp64."""
    x = values.to(torch.float64)
    count = x.shape[0]
    mean = x.mean(dim=0)
    m2 = (x - mean).square().sum(dim=0)
    return count, mean, m2


def merge_moments(
    count_a: int,
    mean_a: torch.Tensor,
    m2_a: torch.Tensor,
    count_b: int,
    mean_b: torch.Tensor,
    m2_b: torch.Tensor,
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Chan's pairwise merge of two (count, mean, M2) summaries (see module docstring)."""
    if count_a == 0:
        return count_b, mean_b.clone(), m2_b.clone()
    if count_b == 0:
        return count_a, mean_a, m2_a
    count = count_a + count_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (count_b / count)
    m2 = m2_a + m2_b + delta.square() * (count_a * count_b / count)
    return count, mean, m2


class RunningMoments:
    """Streaming per-(layer, unit) moments: feed ``u`` of one layer at a time.

    State lives on the activations' device in fp64: ``mean [L, d_ff]``, ``m2 [L, d_ff]`` and a
    per-layer count. Memory is O(L * d_ff) whatever the number of windows.
    """

    def __init__(self, n_layers: int, d_ff: int, device: torch.device | str = "cpu"):
        self.n_layers = n_layers
        self.d_ff = d_ff
        self.counts = [0] * n_layers
        self.mean = torch.zeros(n_layers, d_ff, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(n_layers, d_ff, dtype=torch.float64, device=device)

    def update(self, layer: int, u: torch.Tensor, where: str = "") -> None:
        """Merge a batch ``u [..., d_ff]`` (any leading shape) of layer ``layer``."""
        count_b, mean_b, m2_b = batch_moments(u.reshape(-1, self.d_ff))
        if not bool(torch.isfinite(m2_b).all()):
            raise NonFiniteActivationError.in_layer(layer, where)
        count, mean, m2 = merge_moments(
            self.counts[layer], self.mean[layer], self.m2[layer], count_b, mean_b, m2_b
        )
        self.counts[layer] = count
        self.mean[layer] = mean
        self.m2[layer] = m2

    def result(self) -> UnitMoments:
        """Population moments as numpy fp64 arrays."""
        counts = np.asarray(self.counts, dtype=np.int64)
        mean = self.mean.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(self.m2.cpu().numpy() / counts[:, None])
        return UnitMoments(counts=counts, mu=mean, sigma=sigma)


@dataclass(frozen=True)
class UnitMoments:
    """mu and population sigma per (layer, unit), fp64, with the per-layer sample count."""

    counts: np.ndarray  # [L] int64
    mu: np.ndarray  # [L, d_ff] float64
    sigma: np.ndarray  # [L, d_ff] float64

    @property
    def n_layers(self) -> int:
        return int(self.mu.shape[0])

    @property
    def d_ff(self) -> int:
        return int(self.mu.shape[1])

    def degenerate(self, eps: float = DEFAULT_EPS) -> np.ndarray:
        """Units whose sigma <= eps (constant over the calibration slice), ``[L, d_ff]`` bool."""
        return self.sigma <= eps

    def to_frame(self, eps: float = DEFAULT_EPS) -> pd.DataFrame:
        """Long table, one row per (layer, unit)."""
        n_layers, d_ff = self.mu.shape
        return pd.DataFrame(
            {
                "layer": np.repeat(np.arange(n_layers, dtype=np.int32), d_ff),
                "unit": np.tile(np.arange(d_ff, dtype=np.int32), n_layers),
                "count": np.repeat(self.counts, d_ff),
                "mu": self.mu.reshape(-1),
                "sigma": self.sigma.reshape(-1),
                "degenerate": self.degenerate(eps).reshape(-1),
            },
            columns=MOMENT_COLUMNS,
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> UnitMoments:
        """Inverse of :meth:`to_frame`; rows may come in any order."""
        ordered = frame.sort_values(["layer", "unit"])
        n_layers = int(ordered["layer"].max()) + 1
        d_ff = int(ordered["unit"].max()) + 1
        if len(ordered) != n_layers * d_ff:
            from ..core.errors import ArtifactError

            raise ArtifactError(
                f"The unit-moments table has {len(ordered)} rows, expected "
                f"{n_layers} layers x {d_ff} units = {n_layers * d_ff}.",
                "Re-run the capture pipeline (kedro run --pipelines capture).",
            )
        return cls(
            counts=ordered.groupby("layer")["count"].first().to_numpy(dtype=np.int64),
            mu=ordered["mu"].to_numpy(dtype=np.float64).reshape(n_layers, d_ff),
            sigma=ordered["sigma"].to_numpy(dtype=np.float64).reshape(n_layers, d_ff),
        )

    def standardizer(self, device: torch.device | str, eps: float = DEFAULT_EPS) -> Standardizer:
        """fp32 device tensors for ``z = (u - mu) / (sigma + eps)``."""
        return Standardizer(
            mu=torch.tensor(self.mu, dtype=torch.float32, device=device),
            denominator=torch.tensor(self.sigma + eps, dtype=torch.float32, device=device),
        )


def _round_down_f32(x: np.ndarray) -> np.ndarray:
    """The largest fp32 values ``<= x`` (x fp64)."""
    with np.errstate(over="ignore"):
        nearest = x.astype(np.float32)
    return np.where(nearest > x, np.nextafter(nearest, np.float32(-np.inf)), nearest)


def _round_up_f32(x: np.ndarray) -> np.ndarray:
    """The smallest fp32 values ``>= x`` (x fp64)."""
    return -_round_down_f32(-x)


def exceedance_bounds(
    mu: np.ndarray,
    denominator: np.ndarray,
    floor: float,
    two_sided: bool = True,
    lower_floor: float | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-unit fp32 bounds ``(lo, hi)`` on u with ``z > floor => u > hi`` and (two-sided)
    ``z < -lower_floor => u < lo`` (``lower_floor`` defaults to ``floor``), for the fp32
    ``z = fl(fl(u - mu) / d)`` of :class:`Standardizer`.

    Entries with ``lo <= u <= hi`` can therefore never have ``z > floor`` nor ``z <
    -lower_floor`` (one-sided: ``lo`` is the lowest finite fp32, so only ``-inf`` falls below
    it). A separate ``lower_floor`` serves a one-sided statistic (which needs the upper tail
    from its lower threshold) next to a two-sided one (both tails, from its own, higher
    threshold). With ``f`` the largest fp32 ``<= floor`` and ``t = f d`` (exact in fp64):

        z > f  =>  fl(u - mu) / d > f          (rounding is monotone, f is an fp32 value)
               =>  (u - mu)(1 + delta) > t     (|delta| <= 2^-24; exact when subnormal)
               =>  u > mu + t - 2^-24 t
        hi = round_down_fp32(mu + t - s),  lo = round_up_fp32(mu - t' + s'),
        s = BOUND_SLACK (|mu| + t)         (t', s' the same from lower_floor)

    and the fp64 evaluation errs by under 2^-51 (|mu| + t) < s - 2^-24 t. Since t >= 0, a kept
    u is also beyond mu, so ``hi >= mu >= lo`` is enforced. Returns None (compute z densely)
    when the bounds would not be safe: a negative or non-finite floor, non-finite mu or d,
    ``d <= 0``, or ``|mu| + t >= BOUND_RANGE``.
    """
    floors = [float(floor)]
    if two_sided:
        floors.append(floors[0] if lower_floor is None else float(lower_floor))
    if not all(math.isfinite(f) and f >= 0.0 for f in floors):
        return None
    mu = np.asarray(mu, dtype=np.float32)
    den = np.asarray(denominator, dtype=np.float32)
    if not (np.isfinite(mu).all() and np.isfinite(den).all() and (den > 0).all()):
        return None
    mu64 = mu.astype(np.float64)
    den64 = den.astype(np.float64)
    reaches = []
    for f in floors:
        t = _round_down_f32(np.array(f)) * den64
        scale = np.abs(mu64) + t
        if not scale.max(initial=0.0) < BOUND_RANGE:
            return None
        reaches.append((t, scale * BOUND_SLACK))
    t, slack = reaches[0]
    hi = np.maximum(_round_down_f32(mu64 + t - slack), mu)
    if two_sided:
        t, slack = reaches[1]
        lo = np.minimum(_round_up_f32(mu64 - t + slack), mu)
    else:
        lo = np.full_like(mu, -_F32_MAX)
    return lo, hi


#: rows of :attr:`UnitBounds.host_table`: the bounds, then mu and sigma + eps
LO, HI, MU, DEN = range(4)


@dataclass(frozen=True)
class UnitBounds:
    """:func:`exceedance_bounds` of one layer: fp32 ``[d_ff]`` on the host and on the device.

    ``host_table [4, d_ff]`` (rows :data:`LO`, :data:`HI`, :data:`MU`, :data:`DEN`) is what
    the compiled CPU kernels (:mod:`.kernels`) read: one argument instead of four, formed once,
    because they are called per layer and batch."""

    lo: np.ndarray
    hi: np.ndarray
    lo_device: torch.Tensor
    hi_device: torch.Tensor
    host_table: np.ndarray


@dataclass(frozen=True)
class Standardizer:
    """``z = (u - mu) / (sigma + eps)`` per unit, computed in fp32 on the model's device.

    mu and sigma + eps are the fp64 calibration moments rounded once to fp32; u is cast to fp32
    first (SPEC §2: the model may run in bf16, standardization never does).
    """

    mu: torch.Tensor  # [L, d_ff] float32
    denominator: torch.Tensor  # [L, d_ff] float32

    def __call__(self, layer: int, u: torch.Tensor) -> torch.Tensor:
        # Subtract into a fresh fp32 tensor, then divide in place: two passes, one allocation.
        return torch.sub(u.to(torch.float32), self.mu[layer]).div_(self.denominator[layer])

    def at(self, layer: int, flat_u: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """z of the entries ``index`` of ``flat_u = u.reshape(-1)`` (unit ``index % d_ff``):
        the same correctly rounded fp32 subtraction and division as :meth:`__call__`, so
        bit-identical to its entries."""
        units = index % self.mu.shape[1]
        values = flat_u[index].to(torch.float32)
        return torch.sub(values, self.mu[layer][units]).div_(self.denominator[layer][units])

    def on_host(self, layer: int, rows: np.ndarray) -> np.ndarray:
        """z of fp32 numpy ``rows [..., d_ff]`` with the host copies of mu and sigma + eps:
        the same fp32 operations as :meth:`__call__`, bit-identical."""
        mu, den = self._host
        with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN as torch gives them
            return (rows - mu[layer]) / den[layer]

    def host(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """The fp32 host copies ``(mu, sigma + eps)`` of ``layer``, each ``[d_ff]``."""
        mu, den = self._host
        return mu[layer], den[layer]

    @cached_property
    def _host(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mu.cpu().numpy(), self.denominator.cpu().numpy()

    def bounds(
        self, layer: int, floor: float, two_sided: bool = True, lower_floor: float | None = None
    ) -> UnitBounds | None:
        """:func:`exceedance_bounds` of ``layer`` at ``floor`` (and ``lower_floor`` for the lower
        tail; None: standardize densely)."""
        mu, den = self._host
        bounds = exceedance_bounds(mu[layer], den[layer], floor, two_sided, lower_floor)
        if bounds is None:
            return None
        lo, hi = bounds
        device = self.mu.device
        table = np.ascontiguousarray(np.stack([lo, hi, mu[layer], den[layer]]), dtype=np.float32)
        return UnitBounds(
            lo, hi, torch.from_numpy(lo).to(device), torch.from_numpy(hi).to(device), table
        )
