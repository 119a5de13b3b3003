"""The measurement passes of the study, each one forward pass per window (SPEC §3-5, §7).

* :func:`accumulate_moments` - per-unit mu/sigma at g = 1 on the calibration slice.
* :func:`count_baseline_exceedances` - per-layer rates of ``v > tau0`` (the rate profile).
* :func:`fit_thresholds` - for each (intervention, g): a running top-k of v per layer and
  spike definition, from which every target rate's order-statistic tau is read.
* :func:`record_rasters` - for each (input, intervention, g): event counts per site for every
  (spike definition, target rate) at once, written straight to the raster file.

All reductions run on the model's device inside the hooks; the host only ever receives
per-site counts ``[S, R, batch, L, T]`` or per-layer summaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.errors import ConfigurationError
from .accumulators import (
    BaselineCounter,
    FiniteGuard,
    ThresholdFitter,
    window_note,
)
from .checkpoints import LoadedModel
from .event_counter import EventCounter
from .forward import PassStats, run_pass, token_progress
from .gain import MLP_GLOBAL, layer_gains
from .moments import RunningMoments, Standardizer, UnitMoments
from .rasters import RasterWriter
from .thresholds import baseline_seeds, seed_floors, seed_relaxation

NULL_NONE = "NULL_NONE"
NULL_TOKEN_SHUFFLE_INPUT = "NULL_TOKEN_SHUFFLE_INPUT"


# --------------------------------------------------------------------------------------------
# Calibration at g = 1


def accumulate_moments(
    loaded: LoadedModel, input_ids: np.ndarray, batch_size: int, progress: bool = False
) -> tuple[UnitMoments, PassStats]:
    """Per-(layer, unit) moments of u over all tokens of ``input_ids`` (one pass, g = 1)."""
    moments = RunningMoments(loaded.n_layers, loaded.d_ff, device=loaded.device)
    where = {"text": ""}

    def on_batch(start: int, stop: int) -> None:
        where["text"] = window_note(start, stop)

    stats = run_pass(
        loaded,
        input_ids,
        batch_size=batch_size,
        on_u=lambda layer, u: moments.update(layer, u, where["text"]),
        on_batch=on_batch,
        progress=progress,
        description="moments",
    )
    return moments.result(), stats


def count_baseline_exceedances(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    standardizer: Standardizer,
    spike_defs: Sequence[str],
    tau0: float,
    batch_size: int,
    progress: bool = False,
) -> tuple[pd.DataFrame, PassStats]:
    """``r_base[l] = count(v > tau0) / n_l`` per spike definition and layer (one pass, g = 1)."""
    guard = FiniteGuard(loaded.n_layers, loaded.device)
    counter = BaselineCounter(standardizer, spike_defs, tau0, loaded.n_layers, guard=guard)

    stats = run_pass(
        loaded,
        input_ids,
        batch_size=batch_size,
        on_u=counter.update,
        on_batch=guard.on_batch,
        on_batch_end=guard.on_batch_end,
        progress=progress,
        description="baseline rates",
    )
    host, rates = counter.exceedances(), counter.rates()
    rows = [
        {
            "spike_def_id": spike_def,
            "layer": layer,
            "tau0": float(tau0),
            "n_exceed": int(host[index, layer]),
            "n_values": int(counter.n_values[layer]),
            "r_base": rates[index, layer],
        }
        for index, spike_def in enumerate(spike_defs)
        for layer in range(loaded.n_layers)
    ]
    return pd.DataFrame(rows), stats


# --------------------------------------------------------------------------------------------
# Rate matching


@dataclass(frozen=True)
class GainSetting:
    """One (intervention, g) at which thresholds are fitted and rasters recorded."""

    intervention_id: str
    g: float


def _profile_array(
    rate_targets: pd.DataFrame, spike_defs: Sequence[str], target_rates: Sequence[float], n_layers
) -> np.ndarray:
    """``r*[s, r, l]`` from the long rate-targets table."""
    profile = np.full((len(spike_defs), len(target_rates), n_layers), np.nan)
    index = rate_targets.set_index(["spike_def_id", "target_rate", "layer"])["r_star"]
    for si, spike_def in enumerate(spike_defs):
        for ri, rate in enumerate(target_rates):
            for layer in range(n_layers):
                key = (spike_def, float(rate), layer)
                if key not in index.index:
                    raise ConfigurationError(
                        f"No r* for {key} in the rate-targets table.",
                        "Re-run the capture pipeline with the same calibration parameters "
                        "(kedro run --pipelines capture).",
                    )
                profile[si, ri, layer] = index[key]
    return profile


def fit_thresholds(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    standardizer: Standardizer,
    rate_targets: pd.DataFrame,
    settings: Sequence[GainSetting],
    spike_defs: Sequence[str],
    target_rates: Sequence[float],
    batch_size: int,
    progress: bool = False,
    seed_fits: pd.DataFrame | None = None,
    baseline: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, PassStats]:
    """Order-statistic thresholds for every setting x spike def x target rate x layer.

    One pass per setting over the calibration windows keeps, per (spike def, layer), the
    ``k = floor(max_r r* n) + 1`` largest v; each target's tau is then the ``(m+1)``-th of
    them with ``m = floor(r* n)``. Returns the threshold-fit table (in-sample rates included),
    rows in the order of ``settings``.

    Settings are fitted per intervention from g = 1 outwards (``|g - 1|``, then g), each top-k
    seeded from the thresholds of the nearest setting fitted before it (same intervention
    first; ``seed_fits`` adds rows of settings fitted elsewhere), see
    :func:`.thresholds.seed_floors`. The first one, with no such neighbour, is seeded from
    ``baseline`` (the g = 1 baseline counts of these calibration windows,
    :func:`.thresholds.baseline_seeds`): exactly for the unmodified model, relaxed by
    :func:`.thresholds.seed_relaxation` of ``|g - 1|`` otherwise. A seed that proves too high
    (fewer than k values above it) is detected and that setting's pass repeated without seeds,
    so the table is exact either way; seeds only decide how many values the hooks keep.
    """
    n_layers = loaded.n_layers
    n_values = int(input_ids.shape[0] * input_ids.shape[1] * loaded.d_ff)
    profile = _profile_array(rate_targets, spike_defs, target_rates, n_layers)
    fitted: dict[GainSetting, np.ndarray] = {}
    if seed_fits is not None:
        for key in seed_fits[["intervention_id", "g"]].drop_duplicates().itertuples():
            done = GainSetting(key.intervention_id, float(key.g))
            fitted[done] = tau_array(seed_fits, done, spike_defs, target_rates, n_layers)
    rows: dict[int, list[dict]] = {}
    total = PassStats()
    bar = token_progress(
        len(settings) * input_ids.size, "rate matching (calibration slice)", bool(progress)
    )

    def one_pass(setting: GainSetting, seeds: np.ndarray | None) -> ThresholdFitter:
        guard = FiniteGuard(n_layers, loaded.device)
        fitter = ThresholdFitter(
            standardizer, spike_defs, profile, [n_values] * n_layers, guard=guard, seeds=seeds
        )
        stats = run_pass(
            loaded,
            input_ids,
            batch_size=batch_size,
            gains=layer_gains(setting.intervention_id, setting.g, n_layers),
            on_u=fitter.update,
            on_batch=guard.on_batch,
            on_batch_end=fitter.on_batch_end,
            progress=bar,
            description=f"{setting.intervention_id} g={setting.g}",
        )
        total.add(stats)
        return fitter

    start_seeds = (
        None if baseline is None else baseline_seeds(baseline, spike_defs, profile, n_values)
    )
    for index in fit_order(settings):
        setting = settings[index]
        neighbour = min(
            fitted,
            key=lambda done: (
                done.intervention_id != setting.intervention_id,
                abs(done.g - setting.g),
            ),
            default=None,
        )
        seeds = None
        if neighbour is not None:
            same = neighbour.intervention_id == setting.intervention_id
            gap = abs(neighbour.g - setting.g) if same else None
            seeds = seed_floors(fitted[neighbour], seed_relaxation(gap))
        elif start_seeds is not None:
            seeds = _from_baseline(start_seeds, setting, n_layers)
        fitter = one_pass(setting, seeds)
        if fitter.incomplete():  # a seed was above the k-th largest value: fit again without
            bar.total += input_ids.size
            fitter = one_pass(setting, None)
        fits = fitter.fits()
        rows[index] = threshold_rows(setting, fits, target_rates)
        taus = np.empty((len(spike_defs), len(target_rates), n_layers), dtype=np.float32)
        for fit in fits:
            taus[fit["spike_index"], fit["rate_index"], fit["layer"]] = fit["tau"]
        fitted[setting] = taus
    bar.close()
    return pd.DataFrame([row for index in range(len(settings)) for row in rows[index]]), total


def _from_baseline(start_seeds: np.ndarray, setting: GainSetting, n_layers: int) -> np.ndarray:
    """The baseline's g = 1 seeds for ``setting``: as they are for the unmodified model
    (every layer gain 1), relaxed like a neighbour's thresholds ``|g - 1|`` away for any other
    (:func:`.thresholds.seed_floors`, which drops seeds at or below 0)."""
    if layer_gains(setting.intervention_id, setting.g, n_layers).is_identity:
        return start_seeds
    return seed_floors(start_seeds[:, None, :], seed_relaxation(abs(setting.g - 1.0)))


def fit_order(settings: Sequence[GainSetting]) -> list[int]:
    """Indices of ``settings`` in the order :func:`fit_thresholds` fits them: per
    intervention from g = 1 outwards (``|g - 1|``, then g), so every setting after the first
    has a fitted neighbour one grid step away to seed its top-k from."""
    return sorted(
        range(len(settings)),
        key=lambda i: (settings[i].intervention_id, abs(settings[i].g - 1.0), settings[i].g),
    )


def threshold_rows(
    setting: GainSetting, fits: Sequence[dict], target_rates: Sequence[float], layer_offset: int = 0
) -> list[dict]:
    """Threshold-fit table rows of one setting from :meth:`ThresholdFitter.fits` (``layer`` +
    ``layer_offset``: a fitter that saw only the layers from ``layer_offset`` up)."""
    return [
        {
            "intervention_id": setting.intervention_id,
            "g": float(setting.g),
            "spike_def_id": fit["spike_def_id"],
            "target_rate": float(target_rates[fit["rate_index"]]),
            "layer": fit["layer"] + layer_offset,
            "r_star": fit["r_star"],
            "n_values": fit["n_values"],
            "topk_kept": fit["topk_kept"],
            "tau": fit["tau"],
            "m_budget": fit["m_budget"],
            "n_exceed_calibration": fit["n_exceed_calibration"],
            "achieved_rate_calibration": fit["achieved_rate_calibration"],
        }
        for fit in fits
    ]


def tau_array(
    threshold_fit: pd.DataFrame,
    setting: GainSetting,
    spike_defs: Sequence[str],
    target_rates: Sequence[float],
    n_layers: int,
) -> np.ndarray:
    """``tau[s, r, l]`` (float32, the exact fitted values) of one (intervention, g)."""
    part = threshold_fit[
        (threshold_fit["intervention_id"] == setting.intervention_id)
        & (threshold_fit["g"] == setting.g)
    ]
    taus = np.empty((len(spike_defs), len(target_rates), n_layers), dtype=np.float32)
    for si, spike_def in enumerate(spike_defs):
        for ri, rate in enumerate(target_rates):
            rows = part[(part["spike_def_id"] == spike_def) & (part["target_rate"] == rate)]
            if len(rows) != n_layers:
                raise ConfigurationError(
                    f"The threshold table has {len(rows)} layers for {setting}, {spike_def}, "
                    f"target {rate}; the model has {n_layers}.",
                    "Re-run the events pipeline (kedro run --pipelines events) so thresholds "
                    "and rasters come from the same parameters.",
                )
            taus[si, ri] = rows.sort_values("layer")["tau"].to_numpy(dtype=np.float32)
    return taus


# --------------------------------------------------------------------------------------------
# Rasters


class _RasterCounter:
    """Per-batch event counts ``[S*R, B, L, T]`` on the device, flushed to a raster writer.

    The counting itself is :class:`.event_counter.EventCounter`, the same code the public API
    (:func:`.activations.events_from_activations`) runs on user-supplied activations; each
    layer's counts are written straight into the buffer (on the CPU through a numpy view).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        standardizer: Standardizer,
        spike_defs: Sequence[str],
        taus: np.ndarray,  # [S, R, L] float32 values
        cond_rows: np.ndarray,  # [S, R] row of each (spike def, target) in the raster file
        writer: RasterWriter,
        seq_len: int,
        batch_size: int,
    ):
        self.guard = FiniteGuard(loaded.n_layers, loaded.device)
        self.counter = EventCounter(standardizer, spike_defs, taus, guard=self.guard)
        self.n_s, self.n_r, n_layers = taus.shape
        self.cond_rows = cond_rows
        self.writer = writer
        self.seq_len = seq_len
        self.buffer = torch.zeros(
            self.n_s * self.n_r,
            batch_size,
            n_layers,
            seq_len,
            dtype=torch.int32,
            device=loaded.device,
        )
        self.host_buffer = self.buffer.numpy() if self.buffer.device.type == "cpu" else None
        self.size = 0

    def on_batch(self, start: int, stop: int) -> None:
        self.size = stop - start
        self.guard.on_batch(start, stop)

    def on_u(self, layer: int, u: torch.Tensor) -> None:
        buffer = self.buffer if self.host_buffer is None else self.host_buffer
        self.counter.count_layer_into(layer, u, buffer[:, : self.size, layer])

    def on_batch_end(self, start: int, stop: int) -> None:
        self.guard.on_batch_end(start, stop)
        counts = self.buffer[:, : self.size].cpu().numpy().astype(np.uint16)  # [S*R, B, L, T]
        for si in range(self.n_s):
            for ri in range(self.n_r):
                self.writer.write(int(self.cond_rows[si, ri]), start, counts[si * self.n_r + ri])


def record_rasters(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    standardizer: Standardizer,
    taus: np.ndarray,
    cond_rows: np.ndarray,
    spike_defs: Sequence[str],
    setting: GainSetting,
    writer: RasterWriter,
    batch_size: int,
    progress: bool | tqdm = False,
    description: str = "rasters",
    on_logits=None,
) -> PassStats:
    """One pass over ``input_ids`` at ``setting``; A[n, l, t] = #units with v > tau_l for every
    (spike def, target) pair, written to rows ``cond_rows[s, r]`` of the raster file.

    ``on_logits(start, stop, logits)`` (optional) receives each batch's logits from the same
    pass, e.g. to score the windows' perplexity without a second forward pass.
    """
    if loaded.d_ff > np.iinfo(np.uint16).max:
        raise ConfigurationError(
            f"d_ff = {loaded.d_ff} exceeds the uint16 range of raster counts.",
            "This model is too wide for uint16 rasters; open an issue to widen the dtype.",
        )
    writer.bind_d_ff(loaded.d_ff)  # raster.json records the bound of every count
    counter = _RasterCounter(
        loaded,
        standardizer,
        spike_defs,
        taus,
        cond_rows,
        writer,
        seq_len=input_ids.shape[1],
        batch_size=min(batch_size, input_ids.shape[0]),
    )
    return run_pass(
        loaded,
        input_ids,
        batch_size=batch_size,
        gains=layer_gains(setting.intervention_id, setting.g, loaded.n_layers),
        on_u=counter.on_u,
        on_batch=counter.on_batch,
        on_batch_end=counter.on_batch_end,
        on_logits=on_logits,
        progress=progress,
        description=description,
    )


__all__ = [
    "MLP_GLOBAL",
    "NULL_NONE",
    "NULL_TOKEN_SHUFFLE_INPUT",
    "GainSetting",
    "accumulate_moments",
    "count_baseline_exceedances",
    "fit_order",
    "fit_thresholds",
    "record_rasters",
    "tau_array",
    "threshold_rows",
]
