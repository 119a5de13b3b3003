"""Ablation passes that compute only the blocks an intervention changes (issue 19, item 1).

``MLP_BAND_MID`` at gain g scales the MLPs of blocks ``[c1, c2)``; blocks ``0 .. c1-1`` run
exactly as in the g = 1 model, so their u, their rate-matched thresholds (fitted on the same
calibration windows) and their event counts (on the same analysis windows) equal those of the
``MLP_GLOBAL`` g = 1 pass, which the events pipeline has already measured. Likewise for
``MLP_BAND_LATE`` (blocks below ``c2``) and for any intervention at g = 1 (every block).

So, per batch of windows:

1. one plain forward up to the deepest resume block keeps the residual entering each resume
   block (:func:`.resume.capture_block_inputs`), shared by every setting of the batch;
2. each setting runs from its own first changed block ``s`` (:func:`.resume.resume_at`), with
   the threshold fitter / event counter fed layers ``s .. L-1`` only;
3. layers below ``s`` take the g = 1 thresholds (``threshold_fit`` of the events pipeline) and
   the g = 1 counts (``event_rasters_A``) instead of being recomputed.

The results are bit-identical to full passes (tested); what changes is the work: a setting
resumed at block s costs ``(L - s) / L`` of a pass. Settings that change block 0
(``ATTN_GLOBAL``, ``MLP_BAND_EARLY``) run whole, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core.errors import ConfigurationError
from .accumulators import FiniteGuard, ThresholdFitter
from .adapters import instrument
from .checkpoints import LoadedModel
from .event_counter import EventCounter
from .forward import PassStats, check_windows_fit, count_tokens, token_progress
from .gain import MLP_GLOBAL, LayerGains, layer_gains
from .moments import Standardizer, UnitMoments
from .rasters import EventRasters, RasterWriter
from .resume import ResidualKey, capture_block_inputs, checkpoint_identity, resume_at
from .sweep import GainSetting, _profile_array, tau_array, threshold_rows
from .thresholds import seed_floors, seed_relaxation

#: the columns of a threshold-fit row as :func:`.sweep.fit_thresholds` writes them
FIT_COLUMNS = [
    "intervention_id",
    "g",
    "spike_def_id",
    "target_rate",
    "layer",
    "r_star",
    "n_values",
    "topk_kept",
    "tau",
    "m_budget",
    "n_exceed_calibration",
    "achieved_rate_calibration",
]


def standardizer_from(
    moments: UnitMoments, start: int, device: torch.device, eps: float
) -> Standardizer:
    """The standardizer of layers ``start .. L-1`` (indexed from 0): the same fp32 values as
    rows ``start..`` of the full one, since each entry is rounded on its own."""
    part = UnitMoments(moments.counts[start:], moments.mu[start:], moments.sigma[start:])
    return part.standardizer(device, eps)


class _OffsetGuard(FiniteGuard):
    """A finite guard of all L layers fed by an accumulator that numbers layers from
    ``offset``: a NaN is reported in the model's own layer numbering."""

    def __init__(self, n_layers: int, device, offset: int):
        super().__init__(n_layers, device)
        self.offset = offset

    def observe_peak(self, layer: int, peak) -> None:
        super().observe_peak(layer + self.offset, peak)


@dataclass
class _Job:
    """One (intervention, g) of a shared-prefix sweep: its gains, the block it resumes at
    (L: nothing to compute) and its observers."""

    gains: LayerGains
    start: int
    on_u: Callable[[int, torch.Tensor], None]
    on_batch: Callable[[int, int], None] = lambda _a, _b: None
    on_batch_end: Callable[[int, int], None] = lambda _a, _b: None


def run_shared_prefix(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    jobs: Sequence[_Job],
    batch_size: int,
    slice_name: str,
    tuple_output: bool,
    bar: tqdm,
) -> dict:
    """Batch by batch: one g = 1 prefix pass keeps the residuals every job resumes from, then
    each job runs from its own block. Returns the work done in window-blocks
    (``block_passes``) next to what full passes would cost (``block_passes_full``)."""
    check_windows_fit(loaded, input_ids)
    n_windows, seq_len = input_ids.shape
    n_layers = loaded.n_layers
    identity = checkpoint_identity(loaded)
    starts = sorted({job.start for job in jobs if 0 < job.start < n_layers})
    work = {"block_passes": 0, "block_passes_full": len(jobs) * n_windows * n_layers}
    for first in range(0, n_windows, batch_size):
        last = min(n_windows, first + batch_size)
        batch = torch.as_tensor(input_ids[first:last], dtype=torch.long, device=loaded.device)
        cached = capture_block_inputs(loaded, batch, starts, slice_name, first) if starts else {}
        if starts:
            count_tokens(batch.numel())
            work["block_passes"] += (last - first) * starts[-1]
        for job in jobs:
            job.on_batch(first, last)
            if job.start < n_layers:
                with instrument(loaded.model, loaded.adapter, gains=job.gains, on_u=job.on_u):
                    if job.start == 0:
                        with torch.inference_mode():
                            loaded.backbone(input_ids=batch, use_cache=False)
                    else:
                        key = ResidualKey(identity, slice_name, first, last, job.start)
                        resume_at(loaded, batch, cached[job.start], key, tuple_output)
                count_tokens(batch.numel())
                work["block_passes"] += (last - first) * (n_layers - job.start)
            job.on_batch_end(first, last)
            bar.update((last - first) * seq_len)
    return work


def _g1_rows(g1_fit: pd.DataFrame, setting: GainSetting, start: int) -> pd.DataFrame:
    """The MLP_GLOBAL g = 1 threshold rows of layers below ``start``, relabelled ``setting``."""
    rows = g1_fit[
        (g1_fit["intervention_id"] == MLP_GLOBAL) & (g1_fit["g"] == 1.0) & (g1_fit["layer"] < start)
    ][FIT_COLUMNS].copy()
    rows["intervention_id"] = setting.intervention_id
    rows["g"] = float(setting.g)
    return rows


def fit_thresholds_reusing_g1(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    moments: UnitMoments,
    eps: float,
    rate_targets: pd.DataFrame,
    settings: Sequence[GainSetting],
    spike_defs: Sequence[str],
    target_rates: Sequence[float],
    batch_size: int,
    g1_fit: pd.DataFrame,
    starts: Sequence[int],
    tuple_output: bool,
    progress: bool = False,
) -> tuple[pd.DataFrame, PassStats, dict]:
    """:func:`.sweep.fit_thresholds` of ``settings`` with setting k fitted on layers
    ``starts[k] ..`` only and the g = 1 rows of ``g1_fit`` below (same table, same order).

    Each top-k is seeded from the g = 1 thresholds of its layer, relaxed as a neighbour of
    another intervention (:func:`.thresholds.seed_relaxation`); the settings whose seed proved
    too high (fewer than k values above it) are fitted again without seeds in a second shared
    pass, so the table is exact either way.
    """
    n_layers = loaded.n_layers
    for setting, start in zip(settings, starts, strict=True):
        needed = _g1_rows(g1_fit, setting, start)
        if len(needed) != start * len(spike_defs) * len(target_rates):
            raise ConfigurationError(
                f"The g = 1 threshold table has {len(needed)} rows below layer {start}; "
                f"{setting} reuses {start * len(spike_defs) * len(target_rates)}.",
                "Re-run the events pipeline (kedro run --pipelines events) with the same "
                "calibration parameters, or set ablations.reuse_unchanged_layers: false.",
            )
    fit = _FitPlan(loaded, input_ids, moments, eps, rate_targets, spike_defs, target_rates)
    seeds = _g1_seeds(g1_fit, spike_defs, target_rates, n_layers)
    bar = _bar(len(settings) * input_ids.size, "ablation rate matching (calibration)", progress)
    try:
        fitters, jobs = fit.jobs(settings, starts, seeds)
        started = _now()
        work = run_shared_prefix(
            loaded, input_ids, jobs, batch_size, "calibration", tuple_output, bar
        )
        stats = _stats(input_ids, jobs, started)
        redo = [k for k, fitter in enumerate(fitters) if fitter.incomplete()]
        if redo:  # a seed was above the k-th largest value: those settings again, unseeded
            bar.total += len(redo) * input_ids.size
            again, jobs = fit.jobs([settings[k] for k in redo], [starts[k] for k in redo], None)
            started = _now()
            more = run_shared_prefix(
                loaded, input_ids, jobs, batch_size, "calibration", tuple_output, bar
            )
            stats.add(_stats(input_ids, jobs, started))
            work = {key: work[key] + more[key] for key in work}
            for k, fitter in zip(redo, again, strict=True):
                fitters[k] = fitter
    finally:
        bar.close()
    parts = []
    for setting, start, fitter in zip(settings, starts, fitters, strict=True):
        fitted = (
            pd.DataFrame(threshold_rows(setting, fitter.fits(), target_rates, start))
            if start < n_layers
            else pd.DataFrame(columns=FIT_COLUMNS)
        )
        both = pd.concat([_g1_rows(g1_fit, setting, start), fitted[FIT_COLUMNS]])
        parts.append(_in_fit_order(both, spike_defs, target_rates))
    table = pd.concat(parts, ignore_index=True)
    return table.astype(_fit_dtypes(g1_fit)), stats, work


def _g1_seeds(g1_fit: pd.DataFrame, spike_defs, target_rates, n_layers: int) -> np.ndarray | None:
    """Top-k seeds ``[S, L]`` from the MLP_GLOBAL g = 1 thresholds, relaxed as from another
    intervention; None when ``g1_fit`` has no complete g = 1 fit."""
    g1 = GainSetting(MLP_GLOBAL, 1.0)
    rows = g1_fit[(g1_fit["intervention_id"] == MLP_GLOBAL) & (g1_fit["g"] == 1.0)]
    if len(rows) != len(spike_defs) * len(target_rates) * n_layers:
        return None
    taus = tau_array(g1_fit, g1, spike_defs, target_rates, n_layers)
    return seed_floors(taus, seed_relaxation(None))


class _FitPlan:
    """Builds the threshold fitters and shared-prefix jobs of a set of settings."""

    def __init__(self, loaded, input_ids, moments, eps, rate_targets, spike_defs, target_rates):
        self.loaded, self.moments, self.eps = loaded, moments, eps
        self.spike_defs = spike_defs
        self.n_values = int(input_ids.shape[0] * input_ids.shape[1] * loaded.d_ff)
        self.profile = _profile_array(rate_targets, spike_defs, target_rates, loaded.n_layers)

    def jobs(
        self, settings: Sequence[GainSetting], starts: Sequence[int], seeds: np.ndarray | None
    ) -> tuple[list[ThresholdFitter], list[_Job]]:
        """One fitter of layers ``start ..`` per setting (seeded from ``seeds[:, start:]``)."""
        loaded, n_layers = self.loaded, self.loaded.n_layers
        fitters, jobs = [], []
        for setting, start in zip(settings, starts, strict=True):
            guard = _OffsetGuard(n_layers, loaded.device, start)
            fitter = ThresholdFitter(
                standardizer_from(self.moments, start, loaded.device, self.eps),
                self.spike_defs,
                self.profile[:, :, start:],
                [self.n_values] * (n_layers - start),
                guard=guard,
                seeds=None if seeds is None else seeds[:, start:],
            )
            fitters.append(fitter)
            jobs.append(
                _Job(
                    layer_gains(setting.intervention_id, setting.g, n_layers),
                    start,
                    on_u=lambda layer, u, _f=fitter, _s=start: _f.update(layer - _s, u),
                    on_batch=guard.on_batch,
                    on_batch_end=fitter.on_batch_end,
                )
            )
        return fitters, jobs


def _in_fit_order(rows: pd.DataFrame, spike_defs, target_rates) -> pd.DataFrame:
    """Rows in :func:`.sweep.fit_thresholds` order: spike definition, layer, target rate."""
    spike_rank = rows["spike_def_id"].map({s: i for i, s in enumerate(spike_defs)})
    rate_rank = rows["target_rate"].map({float(r): i for i, r in enumerate(target_rates)})
    order = np.lexsort((rate_rank.to_numpy(), rows["layer"].to_numpy(), spike_rank.to_numpy()))
    return rows.iloc[order]


def _fit_dtypes(g1_fit: pd.DataFrame) -> dict:
    return {column: g1_fit[column].dtype for column in FIT_COLUMNS}


class _ReusingRasterCounter:
    """Event counts ``[S, R, B, L, T]`` of one setting: layers ``start..`` counted from u,
    layers below copied from the g = 1 raster rows ``g1_rows[s, r]``."""

    def __init__(
        self,
        loaded: LoadedModel,
        standardizer: Standardizer,
        spike_defs: Sequence[str],
        taus: np.ndarray,  # [S, R, L - start]
        cond_rows: np.ndarray,
        writer: RasterWriter,
        g1_rasters: EventRasters,
        g1_rows: np.ndarray,
        start: int,
        seq_len: int,
        batch_size: int,
    ):
        self.guard = _OffsetGuard(loaded.n_layers, loaded.device, start)
        self.counter = (
            EventCounter(standardizer, spike_defs, taus, guard=self.guard)
            if start < loaded.n_layers
            else None
        )
        self.n_s, self.n_r = len(spike_defs), taus.shape[1]
        self.start, self.seq_len = start, seq_len
        self.cond_rows, self.writer = cond_rows, writer
        self.g1_rasters, self.g1_rows = g1_rasters, g1_rows
        self.buffer = np.zeros(
            (self.n_s, self.n_r, batch_size, loaded.n_layers, seq_len), dtype=np.uint16
        )
        # counts of the computed layers stay on the device until the batch ends (one transfer)
        self.computed = torch.zeros(
            (self.n_s * self.n_r, batch_size, loaded.n_layers - start, seq_len),
            dtype=torch.int32,
            device=loaded.device,
        )
        # on the CPU the kernel writes each layer's counts straight into them
        self.host_computed = self.computed.numpy() if self.computed.device.type == "cpu" else None
        self.size = 0

    def on_batch(self, first: int, last: int) -> None:
        self.size = last - first
        self.guard.on_batch(first, last)

    def on_u(self, layer: int, u: torch.Tensor) -> None:
        computed = self.computed if self.host_computed is None else self.host_computed
        self.counter.count_layer_into(
            layer - self.start, u, computed[:, : self.size, layer - self.start]
        )

    def on_batch_end(self, first: int, last: int) -> None:
        self.guard.on_batch_end(first, last)
        block = self.buffer[:, :, : self.size]
        if self.counter is not None:
            computed = self.computed[:, : self.size].cpu().numpy()  # [S*R, B, L - start, T]
            block[:, :, :, self.start :, :] = computed.reshape(block[:, :, :, self.start :].shape)
        for si in range(self.n_s):
            for ri in range(self.n_r):
                g1 = self.g1_rasters.A[self.g1_rows[si, ri], first:last, : self.start, :]
                block[si, ri, :, : self.start, :] = g1
                self.writer.write(int(self.cond_rows[si, ri]), first, block[si, ri])


def record_rasters_reusing_g1(
    loaded: LoadedModel,
    input_ids: np.ndarray,
    moments: UnitMoments,
    eps: float,
    threshold_fit: pd.DataFrame,
    g1_taus: np.ndarray,  # [S, R, L] the MLP_GLOBAL g = 1 thresholds
    blocks: Sequence[tuple[GainSetting, np.ndarray]],
    starts: Sequence[int],
    spike_defs: Sequence[str],
    target_rates: Sequence[float],
    writer: RasterWriter,
    g1_rasters: EventRasters,
    g1_rows: np.ndarray,
    batch_size: int,
    tuple_output: bool,
    progress: bool = False,
) -> tuple[PassStats, dict]:
    """Rasters of ``blocks`` (setting, raster rows ``[S, R]``) on the analysis windows, each
    setting computed from its block ``starts[k]`` and the g = 1 counts of ``g1_rasters`` rows
    ``g1_rows [S, R]`` below it. The thresholds of the reused layers must equal ``g1_taus``
    (the g = 1 thresholds the g = 1 rasters were recorded with)."""
    n_layers = loaded.n_layers
    writer.bind_d_ff(loaded.d_ff)  # raster.json records the bound of every count
    jobs = []
    for (setting, rows), start in zip(blocks, starts, strict=True):
        taus = tau_array(threshold_fit, setting, spike_defs, target_rates, n_layers)
        if not np.array_equal(taus[:, :, :start], g1_taus[:, :, :start]):
            raise ConfigurationError(
                f"The thresholds of {setting} below layer {start} differ from the g = 1 ones, "
                "so the g = 1 rasters cannot stand in for those layers.",
                "Fit the ablation thresholds and record the g = 1 rasters from one events run "
                "(kedro run --pipelines events,calibration), or set "
                "ablations.reuse_unchanged_layers: false.",
            )
        counter = _ReusingRasterCounter(
            loaded,
            standardizer_from(moments, start, loaded.device, eps),
            spike_defs,
            taus[:, :, start:],
            rows,
            writer,
            g1_rasters,
            g1_rows,
            start,
            input_ids.shape[1],
            min(batch_size, input_ids.shape[0]),
        )
        jobs.append(
            _Job(
                layer_gains(setting.intervention_id, setting.g, n_layers),
                start,
                on_u=counter.on_u,
                on_batch=counter.on_batch,
                on_batch_end=counter.on_batch_end,
            )
        )
    bar = _bar(len(jobs) * input_ids.size, "ablation rasters (analysis slice)", progress)
    started = _now()
    try:
        work = run_shared_prefix(loaded, input_ids, jobs, batch_size, "analysis", tuple_output, bar)
    finally:
        bar.close()
    return _stats(input_ids, jobs, started), work


def _bar(total: int, description: str, progress: bool) -> tqdm:
    return token_progress(total, description, bool(progress))


def _now() -> float:
    return time.perf_counter()


def _stats(input_ids: np.ndarray, jobs: Sequence[_Job], started: float) -> PassStats:
    """Window-passes of the settings that ran a forward (a setting at g = 1 runs none)."""
    passes = sum(1 for job in jobs if job.start < len(job.gains.mlp))
    return PassStats(
        windows=passes * int(input_ids.shape[0]),
        tokens=passes * int(input_ids.size),
        seconds=_now() - started,
    )


__all__ = [
    "FIT_COLUMNS",
    "fit_thresholds_reusing_g1",
    "record_rasters_reusing_g1",
    "run_shared_prefix",
    "standardizer_from",
]
