"""Nodes of the capture pipeline: model, windows, validate step, calibration at g = 1.

Each node is a thin wrapper around the Kedro-free modules (:mod:`avalanche_kedro.measure.windows`,
:mod:`avalanche_kedro.measure.checkpoints`, :mod:`avalanche_kedro.measure.sweep`, ...), turning parameters and
catalog data into their arguments and their results into tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from ...core.errors import CheckpointError, ConfigurationError, CorpusError, InstrumentationError
from ...core.paths import project_path
from ...framework.datasets import source_detail
from ...measure.checkpoint_checks import check_windows_fit_context
from ...measure.checkpoints import load_model, looks_like_hub_id, resolve_checkpoint
from ...measure.forward import validate_instrumentation
from ...measure.lens import lens_self_check
from ...measure.moments import UnitMoments
from ...measure.remote_code import remote_code_allowed
from ...measure.sweep import accumulate_moments, count_baseline_exceedances
from ...measure.thresholds import rate_targets_table
from ...measure.trained import is_trained_recipe, resolve_step, step_directory
from ...measure.windows import (
    cut_windows,
    iter_text_records,
    select_slices,
    slice_hash,
    slice_windows,
    tokenize_stream,
    windows_frame,
)
from ...study.params import (
    CalibrationParams,
    EmbeddedCheckpoints,
    ModelParams,
    RuntimeParams,
    WindowsParams,
)

logger = logging.getLogger(__name__)

#: Slices of each dataset role, in the order their windows are drawn (SPEC §1 step 4).
SLICE_PLAN = {
    "A": (("calibration", "n_calibration"), ("analysis", "n_raster")),
    "B": (("eval_b", "n_eval_b"),),
}


def resolve_model(
    corpus_A: Any,
    embedded_models: dict,
    model: ModelParams,
    embedded_checkpoints: EmbeddedCheckpoints | None,
    windows: WindowsParams,
    *,
    model_role: str,
) -> dict:
    """Identify the role's checkpoint (building an untrained embedded recipe on first use).

    A checkpoint path that is a *trained* recipe of ``embedded_checkpoints`` resolves to the
    step ``models.<role>.step`` (default ``final``) of what the training pipeline wrote
    (``embedded_models``), after checking that step's content hash against the training
    record. Any other recipe path is built from its recipe here; anything else is a plain
    local directory or a Hub id.
    """
    model = ModelParams.coerce(model)
    windows = WindowsParams.coerce(windows)
    recipes = (
        EmbeddedCheckpoints.coerce(embedded_checkpoints).recipes()
        if embedded_checkpoints is not None
        else {}
    )
    spec = model.spec()
    checkpoint = model.checkpoint
    trained = _trained_recipe_of(checkpoint, recipes)
    if trained is not None:
        return _fits_context(_resolve_trained(model_role, spec, trained, embedded_models), windows)
    records = iter_text_records(corpus_A, windows.text_field)
    if checkpoint and spec.get("embedded") is None:
        target = project_path(checkpoint)
        for recipe in recipes.values():
            if project_path(recipe["path"]) == target:
                spec["embedded"] = {k: v for k, v in recipe.items() if k != "path"}
    if (
        spec.get("embedded") is not None
        and looks_like_hub_id(checkpoint)
        and not project_path(checkpoint).exists()
    ):
        raise ConfigurationError(
            f"models.{model_role}.checkpoint = '{checkpoint}' looks like a Hub id, but "
            f"models.{model_role}.embedded is set, which would build a tiny random model there.",
            f"Remove models.{model_role}.embedded to use the Hub model.",
        )
    # A relative checkpoint directory is relative to the project, wherever Kedro runs from;
    # a Hub id (org/name) is left alone unless such a directory exists.
    if checkpoint and (
        spec.get("embedded") is not None
        or project_path(checkpoint).exists()
        or not looks_like_hub_id(checkpoint)
    ):
        spec["checkpoint"] = str(project_path(checkpoint))
    spec.pop("step", None)
    manifest = resolve_checkpoint(model_role, spec, records)
    if model.step is not None:
        manifest["training_step"] = model.step
    return _fits_context(manifest, windows)


def _fits_context(manifest: dict, windows: WindowsParams) -> dict:
    """The manifest, once ``windows.seq_len`` is known to fit the model's context (read from
    its config before any weights load; the preflight checks local checkpoints and recipes
    earlier, this catches Hub models)."""
    check_windows_fit_context(
        manifest["model_role"],
        windows.seq_len,
        manifest.get("context_length"),
        f"config of {manifest['checkpoint']}",
    )
    return manifest


def _trained_recipe_of(checkpoint: str, recipes: dict) -> str | None:
    if not checkpoint:
        return None
    target = project_path(checkpoint)
    for name, recipe in recipes.items():
        if "path" in recipe and project_path(recipe["path"]) == target:
            return name if is_trained_recipe(recipe) else None
    return None


def _resolve_trained(role: str, spec: dict, name: str, embedded_models: dict) -> dict:
    built = (embedded_models or {}).get("recipes", {}).get(name)
    if built is None:
        raise ConfigurationError(
            f"models.{role}.checkpoint is the trained embedded recipe '{name}', but the "
            "training pipeline did not train it in the run that wrote embedded_models.",
            "Run the training pipeline first: kedro run --pipelines training (kedro run runs it).",
        )
    step = resolve_step(built, spec.get("step"), role)
    directory = step_directory(project_path(built["path"]), step)
    manifest = resolve_checkpoint(role, {**spec, "checkpoint": str(directory), "step": None}, None)
    if manifest["content_sha256"] != built["steps"][str(step)]:
        raise CheckpointError(
            f"The files of '{directory}' changed since they were trained (content sha256 "
            f"{manifest['content_sha256'][:12]}, training record {built['steps'][str(step)][:12]}).",
            f"Delete '{project_path(built['path'])}' and run kedro run again to retrain it.",
        )
    manifest.update(
        source="embedded",
        model_id=f"{Path(built['path']).name}@step-{step}",
        embedded_recipe=name,
        recipe_sha256=built["recipe_sha256"],
        training_step=step,
        final_training_step=built["final_step"],
    )
    return manifest


def _load_tokenizer(model_manifest: dict):
    """The manifest's tokenizer; remote code only as the run's configuration allows it
    (:func:`~avalanche_kedro.measure.remote_code.remote_code_allowed`), never the manifest."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        model_manifest["checkpoint"],
        revision=model_manifest.get("revision") or model_manifest.get("revision_requested"),
        trust_remote_code=remote_code_allowed(model_manifest),
    )


def _dataset_windows(
    corpus: Any, corpus_name: str, dataset_role: str, tokenizer, windows: WindowsParams
) -> tuple[pd.DataFrame, list[dict]]:
    windows = WindowsParams.coerce(windows)
    source = source_detail(corpus)
    seq_len = windows.seq_len
    factor = windows.window_pool_factor
    sizes = {name: int(getattr(windows, key)) for name, key in SLICE_PLAN[dataset_role]}
    n_needed = sum(sizes.values())
    stream = tokenize_stream(
        iter_text_records(corpus, windows.text_field),
        tokenizer,
        max_tokens=factor * n_needed * seq_len,
    )
    if stream.n_records == 0:
        raise CorpusError(
            f"Corpus '{corpus_name}' ({source + ', ' if source else ''}dataset {dataset_role}) "
            "has no non-empty text records.",
            f"Point the catalog entry '{corpus_name}' at a text source with content "
            "(and check windows.text_field).",
        )
    all_windows = cut_windows(stream.ids, seq_len)
    slices = select_slices(len(all_windows), sizes, dataset_role, factor, corpus_name, source)
    frame = windows_frame(dataset_role, slices, all_windows)
    manifests = [
        {
            "dataset_role": dataset_role,
            "slice": name,
            "corpus": corpus_name,
            "n_windows": int(len(chunks)),
            "seq_len": seq_len,
            "chunk_indices": [int(c) for c in chunks],
            "sha256": slice_hash(dataset_role, chunks, all_windows[chunks]),
            "pool_size": int(min(len(all_windows), factor * n_needed)),
            "windows_read": int(len(all_windows)),
            "records_read": stream.n_records,
            "empty_records_skipped": stream.n_empty_records,
            "corpus_read_completely": stream.complete,
        }
        for name, chunks in slices.items()
    ]
    return frame, manifests


def select_windows(
    corpus_A: Any, corpus_B: Any, model_manifest: dict, windows: WindowsParams
) -> tuple[pd.DataFrame, dict]:
    """Windows of datasets A (calibration + analysis) and B (eval_b) with their slice hashes."""
    windows = WindowsParams.coerce(windows)
    tokenizer = _load_tokenizer(model_manifest)
    frame_a, manifest_a = _dataset_windows(corpus_A, "corpus_A", "A", tokenizer, windows)
    frame_b, manifest_b = _dataset_windows(corpus_B, "corpus_B", "B", tokenizer, windows)
    frame = pd.concat([frame_a, frame_b], ignore_index=True)
    manifest = {
        "model_role": model_manifest["model_role"],
        "tokenizer_sha256": model_manifest["tokenizer_sha256"],
        "slices": manifest_a + manifest_b,
    }
    for entry in manifest["slices"]:
        logger.info(
            "Dataset %s slice %s: %d windows of %d tokens, sha256 %s",
            entry["dataset_role"],
            entry["slice"],
            entry["n_windows"],
            entry["seq_len"],
            entry["sha256"][:16],
        )
    return frame, manifest


def validate_model_instrumentation(
    model_manifest: dict, windows: pd.DataFrame, runtime: RuntimeParams
) -> dict:
    """SPEC §2 validate step on the first two calibration windows (hard fail on mismatch),
    and the logit lens's self-check: its last layer must reproduce the model's own logits."""
    runtime = RuntimeParams.coerce(runtime)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, _ = slice_windows(windows, "calibration")
    report = validate_instrumentation(loaded, ids[:2], g_test=runtime.validate_g)
    report.update(lens_self_check(loaded, ids[:2]))
    report.update(
        model_role=model_manifest["model_role"],
        model_id=model_manifest["model_id"],
        content_sha256=model_manifest.get("content_sha256"),
        revision=model_manifest.get("revision"),
        **loaded.describe(),
    )
    return report


def _require_validated(report: dict, model_manifest: dict) -> None:
    """Downstream passes run only on a model whose validate step passed."""
    passed = (
        report.get("u_matches_recomputed")
        and report.get("logits_identical_at_g1")
        and report.get("logits_change_at_g_test")
    )
    same_model = report.get("content_sha256") == model_manifest.get(
        "content_sha256"
    ) and report.get("revision") == model_manifest.get("revision")
    if not (passed and same_model):
        raise InstrumentationError(
            "The instrumentation report does not certify this model "
            f"('{model_manifest.get('model_id')}').",
            "Re-run the capture pipeline so the validate step runs on the current model: "
            "kedro run --pipelines capture.",
        )


def accumulate_unit_moments(
    model_manifest: dict,
    windows: pd.DataFrame,
    instrumentation_report: dict,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
) -> tuple[pd.DataFrame, dict]:
    """mu and sigma of u per (layer, unit) over the calibration slice at g = 1 (SPEC §3)."""
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    _require_validated(instrumentation_report, model_manifest)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, _ = slice_windows(windows, "calibration")
    moments, stats = accumulate_moments(loaded, ids, runtime.batch_size, progress=runtime.progress)
    eps = calibration.eps
    degenerate = moments.degenerate(eps)
    summary = {
        "model_role": model_manifest["model_role"],
        "n_windows": int(ids.shape[0]),
        "values_per_unit": int(moments.counts[0]),
        "eps": eps,
        "degenerate_units_total": int(degenerate.sum()),
        "degenerate_units_per_layer": [int(x) for x in degenerate.sum(axis=1)],
        "tokens_forwarded": stats.tokens,
        "seconds": stats.seconds,
    }
    if summary["degenerate_units_total"]:
        logger.warning(
            "%d units have sigma <= eps on the calibration slice (per layer: %s)",
            summary["degenerate_units_total"],
            summary["degenerate_units_per_layer"],
        )
    return moments.to_frame(eps), summary


def measure_baseline_rates(
    model_manifest: dict,
    windows: pd.DataFrame,
    unit_moments: pd.DataFrame,
    runtime: RuntimeParams,
    calibration: CalibrationParams,
) -> pd.DataFrame:
    """r_base[l] = fraction of calibration values with v > tau0, per spike definition."""
    runtime = RuntimeParams.coerce(runtime)
    calibration = CalibrationParams.coerce(calibration)
    loaded = load_model(model_manifest, runtime.model_dump())
    ids, _ = slice_windows(windows, "calibration")
    moments = UnitMoments.from_frame(unit_moments)
    standardizer = moments.standardizer(loaded.device, calibration.eps)
    table, _ = count_baseline_exceedances(
        loaded,
        ids,
        standardizer,
        tuple(calibration.spike_defs),
        calibration.tau0,
        runtime.batch_size,
        progress=runtime.progress,
    )
    table.insert(0, "model_role", model_manifest["model_role"])
    return table


def derive_rate_targets(
    baseline_rates: pd.DataFrame, instrumentation_report: dict, calibration: CalibrationParams
) -> pd.DataFrame:
    """r*[l] = clip(r_base[l] r / mean_l r_base, 0, 1) per spike definition and target rate
    r, the rates resolved for this model's d_ff (``calibration.target_rates: auto``)."""
    calibration = CalibrationParams.coerce(calibration)
    rates = calibration.rates_for(int(instrumentation_report["d_ff"]))
    return rate_targets_table(baseline_rates, calibration.spike_defs, rates)


__all__ = [
    "resolve_model",
    "select_windows",
    "validate_model_instrumentation",
    "accumulate_unit_moments",
    "measure_baseline_rates",
    "derive_rate_targets",
]
