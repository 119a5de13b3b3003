"""Trained embedded checkpoints: a tiny Llama trained by the project, offline and reproducibly.

A *trained recipe* is an embedded recipe (:mod:`avalanche_kedro.measure.embedded`) with a
``training`` block and a ``training_text``; a *fine-tuning recipe* names ``finetune_from``
another recipe and starts from its final weights and tokenizer. Building one writes, into a
staging folder renamed into place only when everything is written:

    <path>/step-000000/   the initialisation (or, fine-tuning, the base's final weights)
    <path>/step-000004/   ... log-spaced steps (:func:`~.training.checkpoint_steps`) ...
    <path>/step-000400/   the final step
    <path>/TRAINING.json  recipe and its sha256, text sha256, losses, throughput, the content
                          sha256 of every step directory

each step a normal Hugging Face checkpoint (``save_pretrained``, safetensors + tokenizer). An
existing directory is reused when its record names the same recipe and text, and is an error
otherwise; it is never overwritten. The build runs under
:func:`~avalanche_kedro.measure.build_lock.build_lock`: two runs started at once train the
model once (the second waits, then reuses it), and staging folders left by an interrupted
build are removed (never loaded) only under that lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import CheckpointError, ConfigurationError, CorpusError
from .build_lock import build_lock, make_staging, remove_stale_staging
from .checkpoints import directory_sha256, transformers_progress_bars
from .embedded import (
    EMBEDDED_DEFAULTS,
    EMBEDDED_SPECIAL_TOKEN,
    build_embedded_model,
    train_embedded_tokenizer,
)
from .training import train_causal_lm, training_settings
from .windows import cut_windows

logger = logging.getLogger(__name__)

TRAINING_RECORD = "TRAINING.json"
#: Keys a fine-tuning recipe may set (its architecture and tokenizer are its base's).
FINETUNE_KEYS = {"seed_name", "finetune_from", "training_text", "training"}
ARCHITECTURE_KEYS = tuple(
    k for k in EMBEDDED_DEFAULTS if k not in ("seed_name", "perturb_from", "perturbation_scale")
)


def is_trained_recipe(spec: Mapping[str, Any]) -> bool:
    """Does this embedded recipe train (or fine-tune) its model?"""
    return spec.get("training") is not None or spec.get("finetune_from") is not None


def trained_recipe(name: str, specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The full recipe of ``specs[name]`` (``path`` dropped), defaults and base filled in.

    A fine-tuning recipe carries its base's full recipe under ``base`` so its hash changes
    whenever the base does.
    """
    spec = {k: v for k, v in specs[name].items() if k != "path"}
    if spec.get("training_text") is None:
        raise ConfigurationError(
            f"embedded_checkpoints.{name} trains a model but names no training_text.",
            "Set training_text: stdlib_comments (or builtin_qa for a fine-tuning recipe).",
        )
    base_name = spec.get("finetune_from")
    if base_name is not None:
        unknown = set(spec) - FINETUNE_KEYS
        if unknown:
            raise ConfigurationError(
                f"embedded_checkpoints.{name} fine-tunes '{base_name}' but also sets "
                f"{sorted(unknown)}; a fine-tuned model keeps its base's architecture and "
                "tokenizer.",
                f"Remove {sorted(unknown)} from embedded_checkpoints.{name}.",
            )
        if base_name not in specs or base_name == name:
            raise ConfigurationError(
                f"embedded_checkpoints.{name}.finetune_from names '{base_name}', which is not "
                "another recipe of embedded_checkpoints.",
                f"Use one of {sorted(n for n in specs if n != name)}.",
            )
        if specs[base_name].get("finetune_from") is not None:
            raise ConfigurationError(
                f"embedded_checkpoints.{name} fine-tunes '{base_name}', itself a fine-tuned "
                "recipe; only one level of fine-tuning is supported.",
                f"Fine-tune from the base recipe '{specs[base_name]['finetune_from']}'.",
            )
        return {
            "seed_name": spec.get("seed_name", name),
            "finetune_from": base_name,
            "base": trained_recipe(base_name, specs),
            "training_text": spec["training_text"],
            "training": training_settings(spec.get("training")),
        }
    unknown = set(spec) - set(EMBEDDED_DEFAULTS) - {"training", "training_text"}
    if unknown:
        raise ConfigurationError(
            f"Unknown keys {sorted(unknown)} in embedded_checkpoints.{name}.",
            f"Use only {sorted({*EMBEDDED_DEFAULTS, 'training', 'training_text', 'path'})}.",
        )
    recipe = {**EMBEDDED_DEFAULTS, **spec}
    recipe["training"] = training_settings(spec.get("training"))
    return recipe


def recipe_sha256(recipe: Mapping[str, Any]) -> str:
    """sha256 of the recipe's canonical JSON (sorted keys, compact separators)."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def text_sha256(records: Sequence[str]) -> str:
    """sha256 of the records joined by NUL: which training text exactly was used."""
    return hashlib.sha256("\0".join(records).encode("utf-8")).hexdigest()


def step_directory(directory: Path | str, step: int) -> Path:
    return Path(directory) / f"step-{int(step):06d}"


def read_training_record(directory: Path | str) -> dict[str, Any] | None:
    path = Path(directory) / TRAINING_RECORD
    return json.loads(path.read_text()) if path.exists() else None


def resolve_step(record: Mapping[str, Any], step: int | str | None, role: str) -> int:
    """``final`` (or None) is the last step; an int must be one of the saved steps."""
    saved = [int(s) for s in record["steps"]]
    if step is None or step == "final":
        return max(saved)
    if isinstance(step, bool) or not isinstance(step, int) or step not in saved:
        raise ConfigurationError(
            f"models.{role}.step = {step!r} is not a saved step of this training run "
            f"(saved: {saved}).",
            f"Set models.{role}.step to one of {saved} or to final.",
        )
    return int(step)


def _check_existing(directory: Path, recipe: Mapping[str, Any], text_digest: str) -> dict | None:
    if not directory.exists():
        return None
    record = read_training_record(directory)
    if record is None:
        raise CheckpointError(
            f"'{directory}' exists but holds no {TRAINING_RECORD}: it was not built by this "
            "project's training (an older random-init build, or another model).",
            "Point the recipe's path at a new folder, or delete that folder to train there; "
            "existing checkpoints are never overwritten.",
        )
    if record.get("recipe_sha256") != recipe_sha256(recipe):
        raise CheckpointError(
            f"The trained checkpoints at '{directory}' were built from another recipe "
            f"(sha256 {str(record.get('recipe_sha256'))[:12]}, configured "
            f"{recipe_sha256(recipe)[:12]}).",
            "Give the changed recipe a new path, or delete that folder to retrain it; "
            "existing checkpoints are never overwritten.",
        )
    if record.get("training_text_sha256") != text_digest:
        raise CheckpointError(
            f"The trained checkpoints at '{directory}' were trained on other text (sha256 "
            f"{str(record.get('training_text_sha256'))[:12]}, now {text_digest[:12]}); the "
            "shipped text differs between Python versions.",
            "Use the Python version that built them, or give the recipe a new path.",
        )
    return record


def text_fingerprint() -> str:
    """sha256 of what the training text is made by: the Python version (its standard library)
    and the code of :mod:`avalanche_kedro.measure.corpora` (sources, decontamination)."""
    from . import corpora

    digest = hashlib.sha256(sys.version.encode())
    digest.update(Path(corpora.__file__).read_bytes())
    return digest.hexdigest()


def reusable_record(directory: Path | str, recipe: Mapping[str, Any]) -> dict[str, Any] | None:
    """The training record of ``directory`` when it can be reused without reading the text.

    That is when it was built from this recipe with the same :func:`text_fingerprint` (same
    Python, same text code). None when there is nothing yet or the fingerprint differs (the
    caller then compares the text itself); an error when another recipe built it.
    """
    directory = Path(directory)
    if not directory.exists():
        return None
    record = read_training_record(directory)
    if record is None or record.get("recipe_sha256") != recipe_sha256(recipe):
        _check_existing(directory, recipe, "")  # raises, naming the problem and the fix
    if record.get("text_fingerprint") != text_fingerprint():
        return None
    return record


def ensure_trained_checkpoints(
    directory: Path | str,
    recipe: Mapping[str, Any],
    training_records: Sequence[str],
    base_directory: Path | str | None = None,
    progress: Callable[[int, float, float], None] | None = None,
    notes: Mapping[str, Any] | None = None,
    lock_timeout: float | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` into ``directory`` unless it is there already; its training record.

    ``base_directory``: the base's trained folder, for a fine-tuning recipe (its final step is
    the starting point and its tokenizer is reused). ``notes`` are added to the record of a
    new build (e.g. how many records the decontamination dropped). While another run trains
    the same directory this one waits (``lock_timeout`` seconds at most; None: as long as that
    run takes), then reuses what it trained.
    """
    directory = Path(directory)
    records = [r for r in training_records if r and r.strip()]
    if not records:
        raise CorpusError(
            f"The training text of '{directory.name}' ({recipe['training_text']}) is empty.",
            "Check the recipe's training_text source.",
        )
    digest = text_sha256(records)
    existing = _check_existing(directory, recipe, digest)
    if existing is not None:
        return existing
    with build_lock(directory, timeout=lock_timeout) as waited:
        existing = _check_existing(directory, recipe, digest)  # built by a run we waited for
        if existing is not None:
            if waited:
                logger.info("Reusing %s, trained by the run this one waited for", directory)
            return existing
        remove_stale_staging(directory)  # under the lock: no live build's staging is removed
        return _build(directory, recipe, records, digest, base_directory, progress, notes)


def _build(directory, recipe, records, digest, base_directory, progress, notes) -> dict[str, Any]:
    from transformers import AutoTokenizer, LlamaForCausalLM

    settings = recipe["training"]
    if recipe.get("finetune_from") is not None:
        base_record = read_training_record(base_directory) if base_directory else None
        if base_record is None:
            raise CheckpointError(
                f"'{directory.name}' fine-tunes '{recipe['finetune_from']}', which is not "
                "trained yet.",
                "Train the base recipe first (the training pipeline does, in order).",
            )
        start = step_directory(base_directory, max(int(s) for s in base_record["steps"]))
        tokenizer = AutoTokenizer.from_pretrained(start)
        model = LlamaForCausalLM.from_pretrained(start, torch_dtype="float32")
    else:
        tokenizer = train_embedded_tokenizer(records, recipe["tokenizer_vocab_size"])
        special_id = tokenizer.convert_tokens_to_ids(EMBEDDED_SPECIAL_TOKEN)
        model = build_embedded_model(recipe, len(tokenizer), special_id)
    windows = _training_windows(records, tokenizer, int(settings["seq_len"]))
    staging = make_staging(directory)
    hashes: dict[str, str] = {}

    def save(step: int, trained) -> None:
        target = step_directory(staging, step)
        with transformers_progress_bars(False):  # no shard bars inside the training bar
            trained.save_pretrained(target)
            tokenizer.save_pretrained(target)
        hashes[str(step)] = directory_sha256(target)

    try:
        log = train_causal_lm(model, windows, settings, recipe["seed_name"], save, progress)
        record = {
            "recipe": dict(recipe),
            "recipe_sha256": recipe_sha256(recipe),
            "training_text": recipe["training_text"],
            "training_text_sha256": digest,
            "training_records": len(records),
            "training_windows": int(len(windows)),
            "training_tokens_available": int(windows.size),
            "steps": hashes,
            "final_step": int(settings["steps"]),
            "python_version": sys.version,
            "text_fingerprint": text_fingerprint(),
            **dict(notes or {}),
            "log": log.as_dict(),
            "losses": [round(v, 6) for v in log.losses],
        }
        (staging / TRAINING_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "Trained %s: %d steps, loss %.3f -> %.3f, %.0f tokens/s",
        directory,
        log.steps,
        log.losses[0],
        log.losses[-1],
        log.tokens_per_second,
    )
    return record


def _training_windows(records: Sequence[str], tokenizer, seq_len: int) -> np.ndarray:
    """Records tokenized in order, joined with the end-of-text token, cut into windows."""
    ids: list[int] = []
    separator = tokenizer.convert_tokens_to_ids(EMBEDDED_SPECIAL_TOKEN)
    for encoded in tokenizer(list(records), add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(separator)
    return cut_windows(np.asarray(ids, dtype=np.int64), seq_len)
