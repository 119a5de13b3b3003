"""Nodes of the lens pipeline: where the prediction forms, next to where the cascades run.

``measure_lens`` decodes the residual stream of every layer on the analysis windows of
dataset A at g = 1 and at each g* (``MLP_GLOBAL``, the gains the event rasters were recorded
at); ``align_lens_with_cascades`` sets those per-token measurements next to the same windows'
event rasters; ``decode_lens_prompts`` writes the prompt view of the seeds.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ...analysis import lens_alignment as align
from ...core.seeds import condition_key
from ...measure.checkpoints import load_model
from ...measure.gain import MLP_GLOBAL, layer_gains
from ...measure.lens import (
    LensResult,
    default_max_logit_elements,
    layer_predictions,
    lens_self_check,
)
from ...measure.lens_prompts import PROMPT_COLUMNS, check_prompts, prompt_predictions
from ...measure.raster_checks import check_rasters_match
from ...measure.rasters import EventRasters
from ...measure.sweep import NULL_NONE
from ...measure.windows import slice_windows
from ...study.params import LensParams, RuntimeParams

logger = logging.getLogger(__name__)

TOKEN_COLUMNS = [
    "g",
    "seq_id",
    "layer",
    "position",
    "entropy_nats",
    "kl_to_final_nats",
    "p_next",
    "rank_next",
    "top1_id",
    "agrees_final",
]
ADJACENCIES = ("ADJ_4N", "ADJ_8N")


def check_lens_parameters(lens: LensParams) -> dict[str, Any]:
    """The ``lens`` parameters (checked by :class:`LensParams` before any model loads) as the
    settings the lens nodes use."""
    lens = LensParams.coerce(lens)
    return {
        "top_k": lens.top_k,
        "bootstrap_replicates": lens.bootstrap_replicates,
        "null_permutations": lens.null_permutations,
        # None: the device's default (measure.lens.default_max_logit_elements)
        "max_logit_elements": lens.max_logit_elements,
        "adjacency": lens.adjacency,
        "max_windows": lens.max_windows,
        "self_check_kl_tolerance": lens.self_check_kl_tolerance,
        "prompts": check_prompts(lens.prompts),
    }


def lens_gains(gstar: pd.DataFrame) -> list[float]:
    """g = 1 and every distinct g* of the role, ascending."""
    return sorted({1.0, *(float(g) for g in gstar["g_star"])})


def _token_frame(g: float, seq_ids: np.ndarray, result: LensResult) -> pd.DataFrame:
    n_windows, n_layers, seq_len = result.entropy.shape
    grid = np.meshgrid(np.arange(n_windows), np.arange(n_layers), np.arange(seq_len), indexing="ij")
    return pd.DataFrame(
        {
            "g": np.full(result.entropy.size, float(g)),
            "seq_id": seq_ids.astype(np.int64)[grid[0].ravel()],
            "layer": grid[1].ravel().astype(np.int64),
            "position": grid[2].ravel().astype(np.int64),
            "entropy_nats": result.entropy.ravel(),
            "kl_to_final_nats": result.kl_to_final.ravel(),
            "p_next": result.p_next.ravel(),
            "rank_next": result.rank_next.ravel(),
            "top1_id": result.top1_id.ravel(),
            "agrees_final": result.agrees_final.ravel(),
        },
        columns=TOKEN_COLUMNS,
    )


def measure_lens(
    model_manifest: dict,
    windows: pd.DataFrame,
    gstar: pd.DataFrame,
    runtime: RuntimeParams,
    lens: LensParams,
) -> tuple[pd.DataFrame, dict]:
    """Lens measurements per (g, window, layer, token) on dataset A's analysis windows.

    The self-check runs first on two windows: a lens whose last layer does not reproduce the
    model's logits stops the run before anything is measured. One forward pass per window
    per gain (g = 1 and each distinct g*), with the ``MLP_GLOBAL`` gain hooks. With
    ``lens.max_windows`` only the first that many analysis windows (slice order) are decoded.
    """
    settings = check_lens_parameters(lens)
    ids, seq_ids = slice_windows(windows, "analysis")
    if settings["max_windows"] is not None:
        ids, seq_ids = ids[: settings["max_windows"]], seq_ids[: settings["max_windows"]]
    runtime = RuntimeParams.coerce(runtime)
    loaded = load_model(model_manifest, runtime.model_dump())
    check = lens_self_check(loaded, ids[:2], settings["self_check_kl_tolerance"])
    gains = lens_gains(gstar)
    frames, passes, seconds = [], 0, 0.0
    for g in gains:
        result = layer_predictions(
            loaded,
            ids,
            gains=layer_gains(MLP_GLOBAL, g, loaded.n_layers),
            batch_size=runtime.batch_size,
            max_logit_elements=settings["max_logit_elements"],
            progress=runtime.progress,
        )
        frames.append(_token_frame(g, seq_ids, result))
        passes += result.stats.windows
        seconds += result.stats.seconds
    logger.info(
        "Logit lens of %s: %d forward passes over %d gains in %.1f s",
        model_manifest["model_role"],
        passes,
        len(frames),
        seconds,
    )
    manifest = {
        "model_role": model_manifest["model_role"],
        "gains": gains,
        "n_windows": int(ids.shape[0]),
        "seq_len": int(ids.shape[1]),
        "n_layers": int(loaded.n_layers),
        # the decoder's own count (a head tied to the input embeddings has no output layer)
        "vocab_size": check["lens_vocab_size"],
        "forward_passes": int(passes),
        "seconds": float(seconds),
        "max_logit_elements": settings["max_logit_elements"]
        or default_max_logit_elements(loaded.device),
        **check,
    }
    return pd.concat(frames, ignore_index=True), manifest


def lens_window_rows(tokens: pd.DataFrame, raster_seq_ids: np.ndarray) -> np.ndarray:
    """Rows of the rasters holding the windows the lens decoded (in the rasters' order)."""
    decoded = set(tokens["seq_id"].astype(int).unique())
    rows = np.flatnonzero(np.isin(raster_seq_ids.astype(int), list(decoded)))
    if len(rows) != len(decoded):
        raise ValueError(
            "lens_tokens holds windows that event_rasters_A does not: re-run the lens "
            "pipeline after the events pipeline (kedro run --pipelines lens)."
        )
    return rows


def _arrays(tokens: pd.DataFrame, g: float, seq_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The ``[N, L, T]`` arrays of one gain, windows in the order of ``seq_ids``."""
    part = tokens[tokens["g"] == g]
    if part.empty:
        raise ValueError(f"lens_tokens has no rows at g = {g}: re-run the lens pipeline.")
    order = {int(s): i for i, s in enumerate(seq_ids)}
    if set(part["seq_id"].astype(int).unique()) != set(order):
        raise ValueError(
            f"lens_tokens covers different windows at g = {g} than at the other gains: re-run "
            "the lens pipeline."
        )
    n_layers, seq_len = int(part["layer"].max()) + 1, int(part["position"].max()) + 1
    index = (
        part["seq_id"].map(order).to_numpy() * n_layers + part["layer"].to_numpy()
    ) * seq_len + part["position"].to_numpy()
    shape = (len(seq_ids), n_layers, seq_len)
    if len(part) != int(np.prod(shape)) or part.duplicated(["seq_id", "layer", "position"]).any():
        raise ValueError(
            f"lens_tokens at g = {g} has {len(part)} rows, not one per (window, layer, token) "
            f"= {int(np.prod(shape))}: re-run the lens pipeline."
        )
    arrays = {}
    for column in TOKEN_COLUMNS[4:]:
        values = part[column].to_numpy()
        array = np.empty(int(np.prod(shape)), dtype=values.dtype)
        array[index] = values
        arrays[column] = array.reshape(shape)
    return arrays


def align_lens_with_cascades(
    lens_tokens: pd.DataFrame,
    rasters: EventRasters,
    conditions: pd.DataFrame,
    gstar: pd.DataFrame,
    events_summary: dict,
    lens: dict,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Per layer the lens next to the events (T10 rows), per token the collapse layer next to
    the cascade depth (T11 rows, their joint counts, and the per-token table itself: one row
    per (g condition, spike definition, rate, window, position)), at g = 1 and at g* for every
    spike definition and target rate of the role."""
    check_rasters_match(
        rasters, conditions, raster_name="event_rasters_A", conditions_name="conditions_A"
    )
    settings = check_lens_parameters(lens)
    role = str(conditions["model_role"].iloc[0])
    d_ff = int(events_summary["d_ff"])
    real = conditions[
        (conditions["null_id"] == NULL_NONE) & (conditions["intervention_id"] == MLP_GLOBAL)
    ]
    rows = lens_window_rows(lens_tokens, rasters.seq_id)
    seq_ids = rasters.seq_id[rows]
    cache: dict[float, dict[str, np.ndarray]] = {}
    layer_rows, alignment_rows, crosstabs, token_rows = [], [], [], []
    for star in gstar.itertuples(index=False):
        for label, g in (("g1", 1.0), ("gstar", float(star.g_star))):
            if g not in cache:
                cache[g] = _arrays(lens_tokens, g, seq_ids)
            arrays = cache[g]
            match = real[
                (real["spike_def_id"] == star.spike_def_id)
                & (real["target_rate"] == star.target_rate)
                & (real["g"] == g)
            ]
            if len(match) != 1:
                raise ValueError(
                    f"conditions_A has {len(match)} MLP_GLOBAL rows for {star.spike_def_id} at "
                    f"{star.target_rate}, g = {g}: re-run the events pipeline."
                )
            counts = np.asarray(rasters.counts(int(match["cond_id"].iloc[0])))[rows]
            keys = {
                "model_role": role,
                "g_condition": label,
                "spike_def_id": star.spike_def_id,
                "target_rate": float(star.target_rate),
                "g": g,
            }
            lens_layers = align.layer_lens_summary(
                arrays["entropy_nats"],
                arrays["kl_to_final_nats"],
                arrays["p_next"],
                arrays["rank_next"],
                arrays["agrees_final"],
                n_layers=rasters.n_layers,
            )
            sites = align.layer_site_fractions(
                counts, d_ff, settings["adjacency"], n_layers=rasters.n_layers
            )
            merged = lens_layers.merge(
                sites[["layer", "event_rate", "occupancy", "avalanche_site_fraction"]],
                on="layer",
                validate="1:1",
            )
            layer_rows.append(merged.assign(**keys))
            collapse = align.collapse_layers(arrays["agrees_final"], n_layers=rasters.n_layers)
            depth = align.cascade_depth(counts, n_layers=rasters.n_layers)
            key = condition_key("A", star.spike_def_id, star.target_rate, g, MLP_GLOBAL)
            # one bootstrap for both gain conditions and every role (the g = 1 key has no g*
            # and no role): the same resampled windows everywhere, so differences between
            # roles or gains are paired replicate by replicate (T11's control columns)
            paired_key = condition_key("A", star.spike_def_id, star.target_rate, 1.0, MLP_GLOBAL)
            stats = align.collapse_cascade_alignment(
                collapse,
                depth,
                key,
                settings["bootstrap_replicates"],
                settings["null_permutations"],
                bootstrap_key=paired_key,
                keep_replicates=True,
            )
            stats["rho_replicates"] = stats["rho_replicates"].tolist()
            stats["seq_ids"] = [int(s) for s in seq_ids]
            alignment_rows.append({**keys, **stats})
            crosstabs.append(align.collapse_crosstab(collapse, depth).assign(**keys))
            token_rows.append(
                pd.DataFrame(
                    {
                        **keys,
                        "seq_id": np.repeat(seq_ids.astype(np.int64), collapse.shape[1]),
                        "position": np.tile(np.arange(collapse.shape[1]), collapse.shape[0]),
                        "collapse_layer": collapse.ravel(),
                        "cascade_depth": depth.ravel(),
                    }
                )
            )
    key_columns = ["model_role", "g_condition", "spike_def_id", "target_rate", "g"]
    layers = pd.concat(layer_rows, ignore_index=True)
    layers = layers[key_columns + [c for c in layers.columns if c not in key_columns]]
    crosstab = pd.concat(crosstabs, ignore_index=True)
    crosstab = crosstab[key_columns + [c for c in crosstab.columns if c not in key_columns]]
    tokens = pd.concat(token_rows, ignore_index=True)
    return layers, pd.DataFrame(alignment_rows), crosstab, tokens


def decode_lens_prompts(
    model_manifest: dict, runtime: RuntimeParams, lens: LensParams
) -> pd.DataFrame:
    """The prompt view at g = 1 (its catalog entry writes Parquet and CSV); an empty prompt
    list writes an empty table."""
    settings = check_lens_parameters(lens)
    if not settings["prompts"]:
        logger.warning("lens.prompts is empty: the prompt view is skipped (empty tables).")
        return pd.DataFrame(columns=PROMPT_COLUMNS)
    loaded = load_model(model_manifest, RuntimeParams.coerce(runtime).model_dump())
    table = prompt_predictions(
        loaded,
        settings["prompts"],
        top_k=settings["top_k"],
        max_logit_elements=settings["max_logit_elements"],
    )
    truncated = table.drop_duplicates("prompt_id")["truncated_tokens"]
    if int((truncated > 0).sum()):
        logger.warning(
            "%d lens prompts were longer than the context and left-truncated (%d tokens).",
            int((truncated > 0).sum()),
            int(truncated.sum()),
        )
    return table
