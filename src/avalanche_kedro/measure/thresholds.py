"""Spike definitions, per-layer target rates and exact order-statistic thresholds (SPEC §3-4).

Vocabulary: ``v`` is the spike statistic (``z`` for one-sided, ``|z|`` for two-sided spikes); a
unit spikes when ``v > tau`` (strict). For a layer with ``n`` calibration values and target rate
``r*``, the exceedance budget is ``m = floor(r* n)`` and the threshold is the ``(m+1)``-th largest
value (the largest when ``m = 0``), so that ``count(v > tau) <= m`` and equals ``m`` unless the
value at the threshold is tied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..core.errors import ConfigurationError, RateMatchingError

SPIKE_ONE_SIDED_POS = "SPIKE_ONE_SIDED_POS"
SPIKE_TWO_SIDED_ABS = "SPIKE_TWO_SIDED_ABS"
SPIKE_DEFS = (SPIKE_ONE_SIDED_POS, SPIKE_TWO_SIDED_ABS)

#: SPEC §3 baseline threshold for the per-layer rate profile.
TAU0_BASELINE = 2.5
#: SPEC §4 relative tolerance of the rate-matching verification.
RATE_MATCH_REL_TOL = 0.05


def check_spike_defs(spike_defs: Sequence[str]) -> tuple[str, ...]:
    """Validate spike definition ids; returns them as a tuple in the given order."""
    unknown = [s for s in spike_defs if s not in SPIKE_DEFS]
    if unknown or not spike_defs:
        raise ConfigurationError(
            f"Unknown or missing spike definitions {unknown or list(spike_defs)}.",
            f"Use a non-empty subset of {list(SPIKE_DEFS)} in calibration.spike_defs.",
        )
    return tuple(spike_defs)


def spike_values(z, spike_def: str):
    """The statistic compared with tau: ``v = z`` (one-sided) or ``v = |z|`` (two-sided), for
    a tensor or a numpy array."""
    if spike_def == SPIKE_ONE_SIDED_POS:
        return z
    if spike_def == SPIKE_TWO_SIDED_ABS:
        return abs(z)
    raise ConfigurationError(
        f"Unknown spike definition '{spike_def}'.", f"Use one of {list(SPIKE_DEFS)}."
    )


def target_profile(r_base: np.ndarray, target_rate: float) -> np.ndarray:
    """Per-layer target rates ``r*[l] = clip(r_base[l] * r / mean_l(r_base), 0, 1)`` (SPEC §3).

    The profile keeps the baseline's shape across layers and its layer mean equals ``r`` (unless
    clipping at 1 bites, which needs absurd rates).
    """
    r_base = np.asarray(r_base, dtype=np.float64)
    mean_base = float(r_base.mean())
    if not mean_base > 0.0:
        raise ConfigurationError(
            "No calibration value exceeds the baseline threshold tau0 in any layer "
            "(mean baseline rate is 0), so no per-layer rate profile can be formed.",
            "Lower calibration.tau0, use more calibration windows, or check that the model's "
            "MLP activations are not constant.",
        )
    return np.clip(r_base * (float(target_rate) / mean_base), 0.0, 1.0)


def rate_targets_table(
    baseline_rates: pd.DataFrame, spike_defs: Sequence[str], target_rates: Sequence[float]
) -> pd.DataFrame:
    """Long table of r*[l] per (spike definition, target rate, layer) from baseline rates.

    ``baseline_rates`` has one row per (spike_def_id, layer) with ``r_base`` and ``n_values``
    (and optionally ``model_role``, which is carried over).
    """
    target_rates = [float(r) for r in target_rates]
    if not target_rates or any(not 0 < r < 1 for r in target_rates):
        raise ConfigurationError(
            f"calibration.target_rates must be rates in (0, 1); got {target_rates}.",
            "List the target event rates, e.g. [1.0e-5, 2.0e-5, 4.0e-5, 8.0e-5].",
        )
    rows = []
    for spike_def in check_spike_defs(spike_defs):
        base = baseline_rates[baseline_rates["spike_def_id"] == spike_def].sort_values("layer")
        extra = {"model_role": base["model_role"].iloc[0]} if "model_role" in base else {}
        for rate in target_rates:
            profile = target_profile(base["r_base"].to_numpy(), rate)
            for layer, r_base, r_star, n_values in zip(
                base["layer"], base["r_base"], profile, base["n_values"], strict=True
            ):
                rows.append(
                    {
                        **extra,
                        "spike_def_id": spike_def,
                        "target_rate": rate,
                        "layer": int(layer),
                        "r_base": float(r_base),
                        "r_star": float(r_star),
                        "n_values": int(n_values),
                    }
                )
    return pd.DataFrame(rows)


def exceedance_budget(r_star: float, n_values: int) -> int:
    """``m = floor(r* n)``: the most values allowed above tau."""
    return int(math.floor(float(r_star) * int(n_values)))


def topk_capacity(max_r_star: float, n_values: int) -> int:
    """Values to keep per layer: ``k = floor(max_r r*[l] n) + 1``, at most ``n`` (SPEC §4)."""
    return int(min(n_values, exceedance_budget(max_r_star, n_values) + 1))


def order_statistic_threshold(top_desc: np.ndarray, m: int) -> float:
    """tau from the largest values sorted in descending order: the ``(m+1)``-th largest.

    ``m = 0`` gives the maximum; ``top_desc`` must hold at least ``m + 1`` values.
    """
    if top_desc.size < m + 1:
        raise ValueError(f"need the {m + 1} largest values, got {top_desc.size}")
    return float(top_desc[m]) if m > 0 else float(top_desc[0])


def rate_tolerance(r_star: float | np.ndarray, n_values, rel_tol: float = RATE_MATCH_REL_TOL):
    """Allowed ``|achieved - r*|``: ``max(rel_tol * r*, 1 / n)`` (SPEC §4)."""
    return np.maximum(rel_tol * np.asarray(r_star, dtype=np.float64), 1.0 / np.asarray(n_values))


def _largest_k(values, k: int):
    """The ``k`` largest entries of a 1-D numpy array or tensor, unordered.

    numpy's introselect (``np.partition``) is an order of magnitude faster than ``torch.topk``
    for large ``k`` on the CPU; on accelerators ``torch.topk`` keeps the data on the device.
    """
    if isinstance(values, np.ndarray):
        return np.partition(values, values.size - k)[values.size - k :].copy()
    return torch.topk(values, k, largest=True, sorted=False).values


def kth_largest(values, k: int) -> float:
    """The ``k``-th largest entry of a 1-D numpy array or tensor (``k <= len``)."""
    if isinstance(values, np.ndarray):
        return float(np.partition(values, values.size - k)[values.size - k])
    return float(torch.kthvalue(values.reshape(-1), values.numel() - k + 1).values)


class StreamingTopK:
    """Running multiset of the ``k`` largest values seen, kept on the values' device.

    Candidates are appended to a pool and the pool is cut back to its ``k`` largest values
    (one unsorted ``topk``) only when it holds ``slack * k`` values. After each cut the pool's
    minimum is an *entry threshold*: a later value that does not exceed it cannot change the
    multiset of the ``k`` largest values (ties at the threshold leave the values unchanged), so
    it is dropped with one comparison. The exact top ``k`` is sorted once, in :meth:`result`.
    Values are pooled as given: numpy arrays (the CPU) or tensors (kept on their device).

    A ``seed`` is an entry threshold guessed before any value is seen (e.g. from a neighbouring
    gain's thresholds, see :func:`seed_floors`): values ``<= seed`` are dropped from the start,
    so the first batches are not pooled and cut whole. The result is exact when at least
    ``min(k, n_seen)`` values exceeded the seed, which :meth:`complete` checks; otherwise the
    values must be fed again without the seed.
    """

    def __init__(self, k: int, slack: float = 2.0, seed: float | None = None):
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = int(k)
        self.capacity = max(self.k + 1, int(slack * self.k))
        self.parts: list = []
        self.n_pooled = 0
        #: the entry threshold, a scalar of the pool's kind (numpy scalar or 0-d tensor)
        self.floor = None
        self.seed = None if seed is None else float(np.float32(seed))
        if self.seed is not None and not math.isfinite(self.seed):
            raise ValueError(f"a seed must be finite, got {seed}")
        #: the entry threshold on the host (no device sync to read it)
        self.floor_value: float | None = self.seed
        self.n_seen = 0

    def seed_with(self, seed: float) -> None:
        """Set the seed later, before any entry threshold exists (values already pooled are
        kept; :meth:`complete` then checks the seed as if it had been given at creation)."""
        if self.floor_value is not None:
            raise ValueError("the buffer already has an entry threshold")
        seed = float(np.float32(seed))
        if not math.isfinite(seed):
            raise ValueError(f"a seed must be finite, got {seed}")
        self.seed = self.floor_value = seed

    def entry_threshold(self) -> float | None:
        """A value must exceed this to matter (None until ``k`` values were kept or seeded)."""
        return self.floor_value

    def update(self, batch, n_values: int | None = None) -> None:
        """Offer the values of ``batch`` (a tensor or numpy array). ``n_values``: how many values
        the batch stands for, when the caller already dropped the others for not exceeding
        :meth:`entry_threshold` (they count towards ``n_seen``, which :meth:`complete` needs)."""
        flat = batch.reshape(-1)
        self.n_seen += len(flat) if n_values is None else int(n_values)
        if self.floor is None and self.seed is not None:
            if isinstance(flat, np.ndarray):
                self.floor = flat.dtype.type(self.seed)
            else:
                self.floor = torch.tensor(self.seed, dtype=flat.dtype, device=flat.device)
        if self.floor is not None:
            flat = flat[flat > self.floor]
        if len(flat) == 0:
            return
        self.parts.append(flat)
        self.n_pooled += len(flat)
        if self.n_pooled >= self.capacity or (self.floor is None and self.n_pooled >= self.k):
            self._compact()

    def _compact(self) -> None:
        if not self.parts:
            return
        if len(self.parts) == 1:
            pool = self.parts[0]
        elif isinstance(self.parts[0], np.ndarray):
            pool = np.concatenate(self.parts)
        else:
            pool = torch.cat(self.parts)
        if len(pool) > self.k:
            pool = _largest_k(pool, self.k)
        self.parts = [pool]
        self.n_pooled = len(pool)
        if self.n_pooled >= self.k:
            self.floor = pool.min()
            self.floor_value = float(self.floor)

    def complete(self) -> bool:
        """Whether :meth:`result` is exact: without a seed always; with one, when at least
        ``min(k, n_seen)`` values exceeded it (then the ``k`` largest all did)."""
        self._compact()
        return self.seed is None or self.n_pooled >= min(self.k, self.n_seen)

    def result(self) -> np.ndarray:
        """The kept values (the ``min(k, n_seen)`` largest), descending, as numpy."""
        if not self.complete():
            raise ValueError(
                f"only {self.n_pooled} of the {min(self.k, self.n_seen)} largest values "
                f"exceeded the seed {self.seed}: feed the values again without a seed"
            )
        if not self.parts:
            return np.zeros(0, dtype=np.float32)
        pool = self.parts[0]
        if isinstance(pool, np.ndarray):
            return np.ascontiguousarray(np.sort(pool)[::-1])
        return torch.sort(pool, descending=True).values.cpu().numpy()


#: How far below a neighbouring setting's smallest threshold a seed is placed (relative):
#: that threshold is the neighbour's k-th largest v, so the seed must lie clearly below it for
#: k values of the new setting to exceed it; a low seed only lets more candidates through.
#: This is the most a seed is relaxed: for a neighbour of another intervention, or one 0.4
#: or more away in g (:func:`seed_relaxation`).
SEED_RELAXATION = 0.25
#: Relaxation of a seed from the same intervention at the same gain, and its growth per unit
#: of gain between the two settings. In the default run (three roles, five interventions,
#: 2026-12-01) a layer's smallest tau moved between two settings of one intervention by at most
#: 1.5 % 0.05 apart in g, 3.1 % 0.1 apart, 7.4 % at 0.25, 11.6 % at 0.4 and 16.4 % at 0.6, and
#: by 14.8 % between interventions: the relaxation stays 1.5-5x wider than that.
SEED_RELAXATION_SAME_GAIN = 0.05
SEED_RELAXATION_PER_GAIN = 0.5


def seed_relaxation(gain_gap: float | None) -> float:
    """Relaxation of a seed taken ``gain_gap`` away in g on the same intervention (None:
    another intervention): ``min(0.25, 0.05 + 0.5 |gap|)``, so 0.075 at the paper grid's
    0.05 steps and the full 0.25 from 0.4 apart. A seed that proves too high costs a repeated
    pass, never a wrong threshold."""
    if gain_gap is None:
        return SEED_RELAXATION
    relaxation = SEED_RELAXATION_SAME_GAIN + SEED_RELAXATION_PER_GAIN * abs(float(gain_gap))
    return min(SEED_RELAXATION, relaxation)


def seed_floors(taus: np.ndarray, relaxation: float = SEED_RELAXATION) -> np.ndarray:
    """Top-k seeds ``[S, L]`` from a neighbouring setting's thresholds ``taus [S, R, L]``:
    ``(1 - relaxation) * min_r tau`` where that is positive, NaN (no seed) elsewhere."""
    smallest = np.asarray(taus, dtype=np.float64).min(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(smallest > 0, (1.0 - relaxation) * smallest, np.nan)


def baseline_seeds(
    baseline: pd.DataFrame, spike_defs: Sequence[str], profile: np.ndarray, n_values: int
) -> np.ndarray:
    """Top-k seeds ``[S, L]`` for g = 1 from the baseline counts of the same calibration slice.

    ``baseline`` is the SPEC §3 table (:func:`.sweep.count_baseline_exceedances`: ``tau0``,
    ``n_exceed = count(v > tau0)`` and ``n_values`` per spike definition and layer). Where at
    least ``k = floor(max_r r*[l] n) + 1`` values exceeded tau0, every value of the top k does,
    so tau0 (one fp32 step lower, against rounding) is an exact seed for the unmodified model:
    no value at or below it can be among the k largest. NaN (no seed) where fewer exceeded it
    or the baseline counted another number of values than ``n_values``.
    """
    n_layers = profile.shape[2]
    seeds = np.full((len(spike_defs), n_layers), np.nan)
    by_key = baseline.set_index(["spike_def_id", "layer"])
    for si, spike_def in enumerate(spike_defs):
        for layer in range(n_layers):
            if (spike_def, layer) not in by_key.index:
                continue
            row = by_key.loc[(spike_def, layer)]
            k = topk_capacity(float(np.max(profile[si, :, layer])), n_values)
            if int(row["n_values"]) == n_values and int(row["n_exceed"]) >= k:
                below = np.nextafter(np.float32(row["tau0"]), np.float32(-np.inf))
                seeds[si, layer] = float(below)
    return seeds


def fit_layer_thresholds(
    top_desc: np.ndarray, n_values: int, r_stars: Sequence[float]
) -> list[dict[str, float]]:
    """Thresholds for several target rates of one layer from its top-k values.

    Returns, per target, ``tau``, the budget ``m``, the in-sample exceedance count and rate.
    Every value above tau is among the kept values because ``k >= m + 1``.
    """
    fits = []
    for r_star in r_stars:
        m = exceedance_budget(r_star, n_values)
        tau = order_statistic_threshold(top_desc, m)
        n_exceed = int(np.count_nonzero(top_desc > np.float32(tau)))
        fits.append(
            {
                "tau": tau,
                "m_budget": m,
                "n_exceed_calibration": n_exceed,
                "achieved_rate_calibration": n_exceed / n_values,
            }
        )
    return fits


def verify_rate_matching(
    tau_table: pd.DataFrame, rel_tol: float = RATE_MATCH_REL_TOL, model_role: str = ""
) -> None:
    """Hard-fail when any ``|achieved - r*| > max(rel_tol r*, 1/n)`` in-sample (SPEC §4).

    The message lists the worst rows with everything needed to diagnose them.
    """
    error = (tau_table["achieved_rate_calibration"] - tau_table["r_star"]).abs()
    allowed = rate_tolerance(tau_table["r_star"], tau_table["n_values"], rel_tol)
    bad = tau_table[(error > allowed) | error.isna()]
    if bad.empty:
        return
    columns = [
        "intervention_id",
        "g",
        "spike_def_id",
        "target_rate",
        "layer",
        "r_star",
        "achieved_rate_calibration",
        "n_values",
        "tau",
    ]
    worst = bad.assign(_err=(error / allowed)[bad.index]).sort_values("_err", ascending=False)
    listing = worst[columns].head(8).to_string(index=False)
    who = f" for model role '{model_role}'" if model_role else ""
    raise RateMatchingError(
        f"Rate matching failed{who} in {len(bad)} of {len(tau_table)} "
        f"(intervention, g, spike def, target, layer) cells: the achieved calibration rate "
        f"differs from r* by more than max({rel_tol} r*, 1/n). Worst cells:\n{listing}\n"
        "This happens when many values share the value at the threshold (ties, see tau): "
        "typically in half precision at very low rates, or at tau = 0 when many units are "
        "constant (z = 0 exactly; degenerate_units_total in calibration_summary).",
        "Run the model in float32 (runtime.dtype: float32), raise very low target rates (or "
        "lower rates whose tie is at tau = 0), or add calibration windows "
        "(windows.n_calibration) so each layer has more values.",
    )
