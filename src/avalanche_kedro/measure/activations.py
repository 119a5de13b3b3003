"""Bring your own activations: thresholds and event rasters from MLP activations u.

The public, Kedro-free measurement API. It runs exactly the reductions the pipelines run
(:mod:`.accumulators`: moments with Chan's merge, the tau0 rate profile, the running top-k and
the sparse per-site counting), so activations captured with the project's hooks, with
TransformerLens or with nnsight give the pipeline's thresholds and rasters (docs/api.md).

**Activations.** u is the input of each MLP's output projection (``down_proj`` / ``c_proj`` /
``fc2``): ``act(gate(x)) * up(x)`` for gated MLPs. A *batch* is either

* one array ``[B, T, L, d_ff]`` (windows, tokens, layers, units; ``layer_axis`` moves L, e.g.
  ``layer_axis=0`` for TransformerLens' ``cache.stack_activation("post")`` ``[L, B, T, d_ff]``),
* or the layers one by one: a list (or a ``{layer: tensor}`` dict) of L arrays ``[B, T, d_ff]``.

``activations`` is a batch, an iterable of batches, or a zero-argument callable returning a
fresh iterable (a generator function). Torch tensors stay on their device (the reductions run
there, state O(L d_ff)); numpy arrays are read on the CPU. Only one batch is ever held, so host
memory is bounded by the batch, never by the number of windows. Fitting from scratch reads the
calibration activations three times (moments, rate profile, top-k), so it needs a list or a
callable; a one-shot iterator works when ``moments`` and ``profile`` are given.

**Rasters** come out as ``A [N, L, T]`` uint16 (windows, layers, tokens), the axis order of
every analysis function (:mod:`avalanche_kedro.analysis.lattice`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..core.errors import NonFiniteActivationError
from .accumulators import BaselineCounter, ThresholdFitter
from .activation_sources import (
    ActivationError,
    ActivationSource,
    mlp_activations,
    non_finite,
    stream,
)
from .event_counter import EventCounter
from .moments import DEFAULT_EPS, RunningMoments, UnitMoments
from .thresholds import (
    SPIKE_ONE_SIDED_POS,
    TAU0_BASELINE,
    check_spike_defs,
    rate_targets_table,
    verify_rate_matching,
)

# --------------------------------------------------------------------------------------------
# Calibration


def unit_moments(calibration_activations, *, layer_axis: int = 2) -> UnitMoments:
    """Per-(layer, unit) mu and population sigma of u, fp64 with Chan's merge (SPEC §3).

    One pass. NaN/inf activations raise :class:`NonFiniteActivationError` naming the layer.
    """
    source = ActivationSource(calibration_activations, "calibration_activations", 1, layer_axis)
    moments: RunningMoments | None = None
    start = 0
    for layers in source.batches():
        if moments is None:
            moments = RunningMoments(len(layers), int(layers[0].shape[-1]), layers[0].device)
        stop = start + int(layers[0].shape[0])
        for layer, u in enumerate(layers):
            try:
                moments.update(layer, u.to(moments.mean.device))
            except NonFiniteActivationError:
                raise non_finite(source, layer, start, stop) from None
        start = stop
    return moments.result()


@dataclass(frozen=True)
class RateProfile:
    """SPEC §3: baseline rates ``r_base [S, L]`` at tau0 and targets ``r_star [S, R, L]``."""

    spike_defs: tuple[str, ...]
    target_rates: tuple[float, ...]
    tau0: float
    r_base: np.ndarray
    r_star: np.ndarray


def rate_profile(
    calibration_activations,
    moments: UnitMoments,
    target_rates: Sequence[float],
    spike_defs: Sequence[str] = (SPIKE_ONE_SIDED_POS,),
    *,
    tau0: float = TAU0_BASELINE,
    eps: float = DEFAULT_EPS,
    layer_axis: int = 2,
) -> RateProfile:
    """``r_star[s, r, l] = clip(r_base[s, l] r / mean_l r_base[s], 0, 1)`` (one pass, g = 1)."""
    spike_defs = check_spike_defs(list(spike_defs))
    rates = _checked_rates(target_rates)
    source = ActivationSource(calibration_activations, "calibration_activations", 1, layer_axis)
    counter: list[BaselineCounter] = []

    def start(device, guard):
        standardizer = moments.standardizer(device, eps)
        counter.append(BaselineCounter(standardizer, spike_defs, tau0, moments.n_layers, guard))
        return counter[0].update

    stream(source, moments.n_layers, moments.d_ff, "the moments", start)
    r_base = counter[0].rates()
    baseline = pd.DataFrame(
        {
            "spike_def_id": np.repeat(spike_defs, moments.n_layers),
            "layer": np.tile(np.arange(moments.n_layers), len(spike_defs)),
            "r_base": r_base.reshape(-1),
            "n_values": np.tile(counter[0].n_values, len(spike_defs)),
        }
    )
    targets = rate_targets_table(baseline, spike_defs, rates)  # the pipeline's own profile
    r_star = targets["r_star"].to_numpy().reshape(len(spike_defs), len(rates), moments.n_layers)
    return RateProfile(spike_defs, tuple(rates), float(tau0), r_base, r_star)


def _checked_rates(target_rates) -> list[float]:
    rates = [float(r) for r in np.atleast_1d(np.asarray(target_rates, dtype=np.float64))]
    if not rates or any(not 0.0 < r < 1.0 for r in rates):
        raise ActivationError(
            f"target_rates must be event rates in (0, 1); got {rates}.",
            "Give rates such as [1e-3, 2e-3] (expected events per site = rate x d_ff).",
        )
    return rates


@dataclass(frozen=True)
class EventThresholds:
    """Everything needed to turn u into events: moments, eps and ``tau [S, R, L]``.

    ``spike_defs`` and ``target_rates`` label the first two axes; ``r_star``, ``m_budget``,
    ``n_exceed`` and ``n_values`` record the order-statistic fit (SPEC §4). A unit spikes at
    site (t, l) when ``v > tau[s, r, l]`` with ``z = (u - mu) / (sigma + eps)`` in fp32.
    """

    moments: UnitMoments
    eps: float
    spike_defs: tuple[str, ...]
    target_rates: tuple[float, ...]
    tau: np.ndarray  # [S, R, L] float32
    r_star: np.ndarray  # [S, R, L] float64
    m_budget: np.ndarray  # [S, R, L] int64
    n_exceed: np.ndarray  # [S, R, L] int64
    n_values: np.ndarray  # [L] int64

    @property
    def n_layers(self) -> int:
        return self.moments.n_layers

    @property
    def d_ff(self) -> int:
        return self.moments.d_ff

    @property
    def achieved_rate(self) -> np.ndarray:
        """In-sample ``count(v > tau) / n`` ``[S, R, L]``."""
        return self.n_exceed / self.n_values[None, None, :]

    def table(self) -> pd.DataFrame:
        """The columns of the run's ``threshold_fit`` in its row order: spike definition, then
        layer, then target rate (``tau`` as the fp64 value of the fp32 threshold)."""
        S, R, L = self.tau.shape

        def cells(values: np.ndarray) -> np.ndarray:  # [S, R, L] -> rows (s, l, r)
            return np.asarray(values).transpose(0, 2, 1).reshape(-1)

        return pd.DataFrame(
            {
                "spike_def_id": np.repeat(self.spike_defs, L * R),
                "target_rate": np.tile(np.asarray(self.target_rates, dtype=np.float64), S * L),
                "layer": np.tile(np.repeat(np.arange(L), R), S),
                "r_star": cells(self.r_star),
                "n_values": np.tile(np.repeat(self.n_values, R), S),
                "tau": cells(self.tau).astype(np.float64),
                "m_budget": cells(self.m_budget),
                "n_exceed_calibration": cells(self.n_exceed),
                "achieved_rate_calibration": cells(self.achieved_rate),
            }
        )

    def index(self, spike_def: str | None, target_rate: float | None) -> tuple[int, int]:
        """Positions of one (spike def, target rate); None picks the only one there is."""

        def pick(values, wanted, name):
            if wanted is None:
                if len(values) != 1:
                    raise ActivationError(
                        f"These thresholds hold {len(values)} {name}s {list(values)}; "
                        "events_from_activations returns one raster.",
                        f"Choose one with {name}=..., or use event_counts() for all of them.",
                    )
                return 0
            matches = [i for i, value in enumerate(values) if value == wanted]
            if not matches:
                raise ActivationError(
                    f"{name} {wanted!r} is not among the fitted {list(values)}.",
                    f"Pick one of {list(values)} or refit with it.",
                )
            return matches[0]

        return pick(self.spike_defs, spike_def, "spike_def"), pick(
            self.target_rates, None if target_rate is None else float(target_rate), "target_rate"
        )

    @classmethod
    def from_run_tables(
        cls,
        unit_moments: pd.DataFrame,
        threshold_fit: pd.DataFrame,
        *,
        intervention_id: str = "MLP_GLOBAL",
        g: float = 1.0,
        eps: float = DEFAULT_EPS,
    ) -> EventThresholds:
        """The thresholds of a pipeline run (``<role>.unit_moments`` and ``<role>.threshold_fit``)
        at one (intervention, g), e.g. to measure new activations with a run's thresholds."""
        moments = UnitMoments.from_frame(unit_moments)
        part = threshold_fit[
            (threshold_fit["intervention_id"] == intervention_id) & (threshold_fit["g"] == g)
        ]
        if part.empty:
            pairs = zip(threshold_fit["intervention_id"], threshold_fit["g"], strict=True)
            settings = sorted(set(pairs))
            raise ActivationError(
                f"The threshold table has no rows for ({intervention_id}, g={g}).",
                f"Pick one of the fitted (intervention, g) pairs: {settings[:12]}.",
            )
        spike_defs = tuple(dict.fromkeys(part["spike_def_id"]))
        rates = tuple(float(r) for r in dict.fromkeys(part["target_rate"]))
        shape = (len(spike_defs), len(rates), moments.n_layers)
        ordered = part.assign(
            _s=part["spike_def_id"].map({s: i for i, s in enumerate(spike_defs)}),
            _r=part["target_rate"].map({r: i for i, r in enumerate(rates)}),
        ).sort_values(["_s", "_r", "layer"])
        if len(ordered) != int(np.prod(shape)):
            raise ActivationError(
                f"The threshold table has {len(ordered)} rows for ({intervention_id}, g={g}); "
                f"expected {shape[0]} spike defs x {shape[1]} rates x {shape[2]} layers.",
                "Use the unit_moments and threshold_fit of the same run and model role.",
            )
        n_values = ordered.groupby("layer")["n_values"].first().to_numpy(dtype=np.int64)
        return cls(
            moments=moments,
            eps=float(eps),
            spike_defs=spike_defs,
            target_rates=rates,
            tau=ordered["tau"].to_numpy(dtype=np.float32).reshape(shape),
            r_star=ordered["r_star"].to_numpy(dtype=np.float64).reshape(shape),
            m_budget=ordered["m_budget"].to_numpy(dtype=np.int64).reshape(shape),
            n_exceed=ordered["n_exceed_calibration"].to_numpy(dtype=np.int64).reshape(shape),
            n_values=n_values,
        )


def fit_thresholds(
    calibration_activations,
    target_rates: Sequence[float],
    spike_defs: Sequence[str] = (SPIKE_ONE_SIDED_POS,),
    *,
    moments: UnitMoments | None = None,
    profile: RateProfile | None = None,
    tau0: float = TAU0_BASELINE,
    eps: float = DEFAULT_EPS,
    layer_axis: int = 2,
    verify: bool = True,
) -> EventThresholds:
    """Rate-matched thresholds from calibration activations (SPEC §3-4), as the pipeline fits them.

    Per layer l, spike definition s and target r: ``m = floor(r*[s, r, l] n_l)`` and tau is the
    ``(m+1)``-th largest v (the largest when m = 0), so ``count(v > tau) <= m``. r* follows the
    tau0 = 2.5 baseline profile with layer mean r. ``moments`` (e.g. from g = 1) and ``profile``
    skip their passes: thresholds at another gain use the g = 1 moments and profile, as the
    pipeline does. ``verify`` hard-fails (RateMatchingError) when an in-sample rate misses r* by
    more than ``max(0.05 r*, 1/n)``.
    """
    spike_defs = check_spike_defs(list(spike_defs))
    rates = _checked_rates(target_rates)
    passes = 1 + (moments is None) + (profile is None)
    source = ActivationSource(
        calibration_activations, "calibration_activations", passes, layer_axis
    )
    if moments is None:
        moments = unit_moments(source.opener, layer_axis=layer_axis)
    if profile is None:
        profile = rate_profile(
            source.opener, moments, rates, spike_defs, tau0=tau0, eps=eps, layer_axis=layer_axis
        )
    if tuple(profile.spike_defs) != spike_defs or tuple(profile.target_rates) != tuple(rates):
        raise ActivationError(
            f"The rate profile is for {list(profile.spike_defs)} x {list(profile.target_rates)}, "
            f"not {list(spike_defs)} x {rates}.",
            "Build the profile with the same spike_defs and target_rates.",
        )
    n_values = [int(count) * moments.d_ff for count in moments.counts]
    fitter: list[ThresholdFitter] = []

    def start(device, guard):
        standardizer = moments.standardizer(device, eps)
        fitter.append(ThresholdFitter(standardizer, spike_defs, profile.r_star, n_values, guard))
        return fitter[0].update

    stream(source, moments.n_layers, moments.d_ff, "the moments", start)
    shape = profile.r_star.shape
    tau = np.empty(shape, dtype=np.float32)
    m_budget = np.empty(shape, dtype=np.int64)
    n_exceed = np.empty(shape, dtype=np.int64)
    for fit in fitter[0].fits():
        at = (fit["spike_index"], fit["rate_index"], fit["layer"])
        tau[at], m_budget[at] = fit["tau"], fit["m_budget"]
        n_exceed[at] = fit["n_exceed_calibration"]
    thresholds = EventThresholds(
        moments=moments,
        eps=float(eps),
        spike_defs=spike_defs,
        target_rates=tuple(rates),
        tau=tau,
        r_star=profile.r_star,
        m_budget=m_budget,
        n_exceed=n_exceed,
        n_values=np.asarray(n_values, dtype=np.int64),
    )
    if verify:
        verify_rate_matching(thresholds.table().assign(intervention_id="user", g=float("nan")))
    return thresholds


# --------------------------------------------------------------------------------------------
# Events


def event_counts(activations, thresholds: EventThresholds, *, layer_axis: int = 2) -> np.ndarray:
    """``A [S, R, N, L, T]`` uint16: per window, layer and token, the units with v > tau, for
    every (spike definition, target rate) of ``thresholds`` (one read of the activations)."""
    if thresholds.d_ff > np.iinfo(np.uint16).max:
        raise ActivationError(
            f"d_ff = {thresholds.d_ff} exceeds the uint16 range of event counts.",
            "This model is too wide for uint16 rasters; open an issue to widen the dtype.",
        )
    source = ActivationSource(activations, "activations", 1, layer_axis)
    S, R, L = thresholds.tau.shape
    blocks: list[np.ndarray] = []
    batch: dict = {}

    def start(device, guard):
        standardizer = thresholds.moments.standardizer(device, thresholds.eps)
        counter = EventCounter(standardizer, thresholds.spike_defs, thresholds.tau, guard)

        def update(layer, u):
            if layer == 0:  # a new batch: flush the previous one, start [S, R, B, L, T]
                _flush()
                shape = (S, R, int(u.shape[0]), L, int(u.shape[1]))
                batch["block"] = torch.empty(shape, dtype=torch.int32, device=device)
            block = batch["block"]
            block[:, :, :, layer, :] = counter.count_layer(layer, u).reshape(
                S, R, block.shape[2], block.shape[4]
            )

        return update

    def _flush():
        if "block" in batch:
            blocks.append(batch.pop("block").cpu().numpy().astype(np.uint16))

    stream(source, L, thresholds.d_ff, "the thresholds", start)
    _flush()
    tokens = {block.shape[-1] for block in blocks}
    if len(tokens) > 1:
        raise ActivationError(
            f"The activation batches have different token counts {sorted(tokens)}.",
            "Use windows of one length (the rasters are [N, L, T]).",
        )
    return np.concatenate(blocks, axis=2)


def events_from_activations(
    activations,
    thresholds: EventThresholds,
    *,
    spike_def: str | None = None,
    target_rate: float | None = None,
    layer_axis: int = 2,
) -> np.ndarray:
    """The event raster ``A [N, L, T]`` (uint16; windows, layers, tokens) of one (spike
    definition, target rate): ``A[n, l, t] = #{i : v[n, t, l, i] > tau_l}`` (SPEC §5).

    ``spike_def`` / ``target_rate`` may be omitted when the thresholds hold only one.
    """
    si, ri = thresholds.index(spike_def, target_rate)
    return event_counts(activations, thresholds, layer_axis=layer_axis)[si, ri]


__all__ = [
    "ActivationError",
    "EventThresholds",
    "RateProfile",
    "event_counts",
    "events_from_activations",
    "fit_thresholds",
    "mlp_activations",
    "rate_profile",
    "unit_moments",
]
