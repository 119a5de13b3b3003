"""The run's preflight: every check that needs no model, before any node runs.

Typed parameters are validated when Kedro builds the catalog (:mod:`.context`); what the
parameter models cannot know is checked here, from the ``before_pipeline_run`` hook, so a bad
value or file stops a run in seconds instead of after the windows are tokenized and a 7B model
is loaded:

* the compute device and dtype (``runtime.device: cuda`` on a machine without CUDA);
* every local corpus or question file the selected pipelines read (exists, is a file, is
  UTF-8 text: :func:`~avalanche_kedro.measure.text_files.check_text_file`);
* every model role's local checkpoint that is not built by the project (directory complete,
  ``config.json`` valid JSON with a supported family, tokenizer ids within the embedding:
  :func:`~avalanche_kedro.measure.checkpoint_checks.check_local_checkpoint`);
* ``windows.seq_len`` within every role's context (its config.json, or the recipe of a
  checkpoint the project builds);
* every saved model manifest a model node loads: one recording ``trust_remote_code: true``
  that this run's configuration does not allow stops the run (the flag is never read back
  from a saved file: :mod:`avalanche_kedro.measure.remote_code`).

Hub ids and checkpoints the project trains are checked by the ``resolve_model`` node, the
first node of each role (a Hub lookup needs the network; a trained checkpoint does not exist
before the training pipeline ran).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

#: the runtime parameter that sets each raw file in the local_model environment
FILE_PARAMETERS = {"corpus_A": "corpus_a", "corpus_B": "corpus_b", "arc_questions": "arc_jsonl"}


def run_preflight(pipeline, catalog, produced: set[str]) -> list[str]:
    """Run every model-free check for ``pipeline``; the checks done (for the log).

    ``produced``: datasets some registered pipeline writes (the raw inputs are the others).
    Raises the first problem found as the project's error (problem + fix).
    """
    inputs = set(pipeline.inputs())
    parameters = run_parameters(catalog)
    done: list[str] = []
    if "params:runtime" in inputs and parameters.get("runtime") is not None:
        done.append(_check_runtime(parameters["runtime"]))
    for name in sorted(inputs - produced):
        done += _check_raw_files(name, catalog)
    roles = [
        key.removeprefix("params:models.")
        for key in sorted(inputs)
        if key.startswith("params:models.")
    ]
    for role in roles:
        done += _check_role_checkpoint(role, parameters)
    done += _check_saved_model_manifests(pipeline, catalog, parameters, produced)
    return done


def _check_saved_model_manifests(
    pipeline, catalog, parameters: Mapping[str, Any], produced: set[str]
) -> list[str]:
    """A saved model manifest that a model node will load must not switch remote code on:
    ``trust_remote_code`` comes from this run's configuration only
    (:func:`~avalanche_kedro.measure.remote_code.check_manifest`)."""
    from ..measure.remote_code import allowed_by, check_manifest

    saved = set(pipeline.inputs()) & produced
    names = sorted(
        {
            name
            for node in pipeline.nodes
            if "model" in node.tags
            for name in node.inputs
            if name in saved and name.rsplit(".", 1)[-1] == "model_manifest"
        }
    )
    allowed = allowed_by(parameters)
    done = []
    for name in names:
        try:
            manifest = catalog.load(name) if catalog.exists(name) else None
        except Exception:  # missing or unreadable: the input check names it next
            continue
        if isinstance(manifest, Mapping):
            check_manifest(manifest, allowed)
            state = "allowed" if manifest.get("model_role") in allowed else "off"
            done.append(f"{name}: remote code {state}")
    return done


def run_parameters(catalog) -> dict[str, Any]:
    """The run's parameters as written (plain mappings; ``{}`` for a bare catalog)."""
    from ..study.params import as_plain

    try:
        return dict(as_plain(catalog.load("parameters")) or {})
    except Exception:  # no parameters dataset (a bare catalog in a test): nothing to check
        return {}


def _check_runtime(runtime: Mapping[str, Any]) -> str:
    from ..measure.checkpoints import resolve_device, resolve_dtype

    device = resolve_device(runtime.get("device", "auto"))
    dtype = resolve_dtype(runtime.get("dtype", "auto"), device)
    return f"runtime: {device}, {str(dtype).replace('torch.', '')}"


def _check_raw_files(name: str, catalog) -> list[str]:
    from ..measure.text_files import check_text_file
    from .datasets import HubDataset

    try:
        dataset = catalog.get(name)
    except Exception:
        return []
    if not isinstance(dataset, HubDataset):
        return []
    parameter = FILE_PARAMETERS.get(name)
    how = f"Point the catalog entry '{name}' (its `filepath`" + (
        f"; in the local_model environment --params {parameter}=/path/to/file)"
        if parameter
        else ")"
    )
    done = []
    for path in dataset.local_files():
        check_text_file(path, entry=f"catalog entry '{name}'", how_to_point=how)
        done.append(f"{name}: {path}")
    return done


def _seq_len(parameters: Mapping[str, Any]) -> int | None:
    """``windows.seq_len`` when the configuration sets it (typed parameters have checked it)."""
    windows = parameters.get("windows")
    return windows.get("seq_len") if isinstance(windows, Mapping) else None


def _check_role_checkpoint(role: str, parameters: Mapping[str, Any]) -> list[str]:
    """The role's local checkpoint (complete, readable, supported) and that ``windows.seq_len``
    fits its context: from its config.json, or from the recipe of a checkpoint the project
    builds (which does not exist yet)."""
    from ..core.paths import project_path
    from ..measure.checkpoint_checks import (
        check_local_checkpoint,
        check_windows_fit_context,
        context_length,
        read_local_config,
    )
    from ..measure.checkpoints import looks_like_hub_id

    spec = (parameters.get("models") or {}).get(role) or {}
    checkpoint = spec.get("checkpoint")
    if not checkpoint:
        return []
    if spec.get("embedded") is not None:
        recipe = spec["embedded"] if isinstance(spec["embedded"], Mapping) else {}
        check_windows_fit_context(
            role,
            _seq_len(parameters),
            context_length(recipe),
            f"max_position_embeddings of models.{role}.embedded",
        )
        return []
    directory = project_path(str(checkpoint))
    recipes = parameters.get("embedded_checkpoints") or {}
    for name, recipe in recipes.items():
        if isinstance(recipe, Mapping) and recipe.get("path"):
            if project_path(str(recipe["path"])) == directory:
                # trained or built by the project (resolve_model checks its files)
                check_windows_fit_context(
                    role,
                    _seq_len(parameters),
                    context_length(recipe),
                    f"max_position_embeddings of embedded_checkpoints.{name}",
                )
                return []
    if not directory.exists() and looks_like_hub_id(str(checkpoint)):
        return []  # a Hub id: resolved (revision, files, context) by resolve_model
    check_local_checkpoint(role, directory)
    check_windows_fit_context(
        role,
        _seq_len(parameters),
        context_length(read_local_config(directory, role)),
        f"{directory / 'config.json'}",
    )
    return [f"models.{role}: {directory}"]
