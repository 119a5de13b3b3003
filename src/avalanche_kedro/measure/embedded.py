"""The embedded default model: a tiny Llama built deterministically from a recipe (SPEC §2).

The recipe lives in ``models.<role>.embedded`` (defaults in :data:`EMBEDDED_DEFAULTS`). A
byte-level BPE tokenizer is trained deterministically on corpus A and a random-init
``LlamaForCausalLM`` is drawn from a seed named by the recipe; both are written once with
``save_pretrained`` plus an :data:`BUILD_RECORD` file and from then on loaded like any local
checkpoint (:mod:`avalanche_kedro.measure.checkpoints`). A directory built from another recipe
is an error, never overwritten. The build runs under
:func:`~avalanche_kedro.measure.build_lock.build_lock`, so two runs started at once build it
once: the second waits for the first, then reuses its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError, ConfigurationError, CorpusError
from ..core.seeds import seed_of
from .build_lock import build_lock, make_staging, remove_stale_staging

logger = logging.getLogger(__name__)

BUILD_RECORD = "EMBEDDED_BUILD.json"
EMBEDDED_SPECIAL_TOKEN = "<|endoftext|>"

#: Defaults of the embedded recipe; every key can be overridden in ``models.<role>.embedded``.
EMBEDDED_DEFAULTS: dict[str, Any] = {
    "seed_name": "tiny-llama",
    "tokenizer_vocab_size": 4096,
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    # A derived checkpoint (the embedded stand-in for "base vs instruct"): the weights of the
    # recipe named `perturb_from`, plus Gaussian noise of `perturbation_scale` x each tensor's std.
    "perturb_from": None,
    "perturbation_scale": 0.0,
}


def embedded_recipe(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The full recipe: :data:`EMBEDDED_DEFAULTS` updated with ``overrides``."""
    recipe = dict(EMBEDDED_DEFAULTS)
    unknown = set(overrides or {}) - set(recipe)
    if unknown:
        raise ConfigurationError(
            f"Unknown keys {sorted(unknown)} in the embedded model recipe.",
            f"Use only {sorted(recipe)} under models.<role>.embedded.",
        )
    recipe.update(overrides or {})
    return recipe


def train_embedded_tokenizer(records: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on ``records`` (deterministic for a given text and vocab size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [r for r in records if r and r.strip()]
    if not texts:
        raise CorpusError(
            "Corpus A is empty, so the embedded tokenizer has nothing to train on.",
            "Point the catalog entry corpus_A at a text source with at least one record.",
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EMBEDDED_SPECIAL_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=EMBEDDED_SPECIAL_TOKEN,
        eos_token=EMBEDDED_SPECIAL_TOKEN,
    )


def build_embedded_model(recipe: Mapping[str, Any], vocab_size: int, special_id: int):
    """A random-init ``LlamaForCausalLM`` whose weights depend only on the recipe.

    The weights are drawn from torch's CPU generator seeded with
    ``seed_of("embedded_model", seed_name)`` inside a forked RNG state, so building the model
    does not disturb any other random stream. With ``perturb_from`` the model starts from the
    weights of that seed name and every tensor ``w`` becomes
    ``w + perturbation_scale * std(w) * N(0, 1)`` with noise seeded by this recipe's seed name,
    a deterministic "fine-tuned relative" that shares the base model's tokenizer and shape.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=recipe["hidden_size"],
        intermediate_size=recipe["intermediate_size"],
        num_hidden_layers=recipe["num_hidden_layers"],
        num_attention_heads=recipe["num_attention_heads"],
        num_key_value_heads=recipe["num_key_value_heads"],
        max_position_embeddings=recipe["max_position_embeddings"],
        initializer_range=recipe["initializer_range"],
        rms_norm_eps=recipe["rms_norm_eps"],
        rope_theta=recipe["rope_theta"],
        tie_word_embeddings=recipe["tie_word_embeddings"],
        bos_token_id=special_id,
        eos_token_id=special_id,
        hidden_act="silu",
    )
    origin = recipe.get("perturb_from") or recipe["seed_name"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_of("embedded_model", origin))
        model = LlamaForCausalLM(config)
        if recipe.get("perturb_from"):
            noise = torch.Generator().manual_seed(seed_of("embedded_model", recipe["seed_name"]))
            scale = float(recipe["perturbation_scale"])
            with torch.no_grad():
                for _name, parameter in sorted(model.named_parameters()):
                    spread = parameter.std() if parameter.numel() > 1 else parameter.new_zeros(())
                    parameter.add_(
                        torch.randn(parameter.shape, generator=noise, dtype=parameter.dtype)
                        * (scale * spread)
                    )
    return model.eval()


def ensure_embedded_checkpoint(
    directory: Path,
    recipe: Mapping[str, Any],
    corpus_records: Iterable[str],
    lock_timeout: float | None = None,
) -> bool:
    """Write the embedded checkpoint to ``directory`` unless it is already there.

    Returns True when it was built now. An existing directory is never overwritten: if it was
    built from a different recipe the run stops with an error. The checkpoint is assembled in
    a staging sibling directory and renamed into place, so an interrupted build leaves
    nothing half-written behind. The build holds the directory's build lock: while another
    run builds the same directory this one waits (``lock_timeout`` seconds at most; None: as
    long as that run takes), then reuses its checkpoint (and returns False).
    """
    directory = Path(directory)
    if _check_built(directory, recipe):
        return False
    with build_lock(directory, timeout=lock_timeout) as waited:
        if _check_built(directory, recipe):  # built by the run this one waited for
            if waited:
                logger.info("Reusing %s, built by the run this one waited for", directory)
            return False
        remove_stale_staging(directory)  # under the lock: no live build's staging is removed
        _build_checkpoint(directory, recipe, corpus_records)
    logger.info("Built the embedded checkpoint at %s", directory)
    return True


def _check_built(directory: Path, recipe: Mapping[str, Any]) -> bool:
    """Is the checkpoint of ``recipe`` at ``directory``? Other contents are an error."""
    record_path = directory / BUILD_RECORD
    if not directory.exists():
        return False
    if not record_path.exists():
        raise CheckpointError(
            f"'{directory}' exists but is not an embedded checkpoint built by this project "
            f"(no {BUILD_RECORD}).",
            "Remove `embedded:` from this model's parameters to use the directory as a "
            "plain local checkpoint, or choose another path for the embedded model.",
        )
    built = json.loads(record_path.read_text())
    if built.get("recipe") != dict(recipe):
        raise CheckpointError(
            f"The embedded checkpoint at '{directory}' was built from a different recipe "
            f"({built.get('recipe')}) than the configured one ({dict(recipe)}).",
            "Delete that directory to rebuild it, or set models.<role>.checkpoint to a new "
            "path; existing checkpoints are never overwritten.",
        )
    return True


def _build_checkpoint(
    directory: Path, recipe: Mapping[str, Any], corpus_records: Iterable[str]
) -> None:
    records = list(corpus_records)
    tokenizer = train_embedded_tokenizer(records, recipe["tokenizer_vocab_size"])
    special_id = tokenizer.convert_tokens_to_ids(EMBEDDED_SPECIAL_TOKEN)
    model = build_embedded_model(recipe, len(tokenizer), special_id)
    staging = make_staging(directory)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        corpus_digest = hashlib.sha256("\0".join(records).encode("utf-8")).hexdigest()
        (staging / BUILD_RECORD).write_text(
            json.dumps(
                {
                    "recipe": dict(recipe),
                    "weights_seed": seed_of(
                        "embedded_model", recipe.get("perturb_from") or recipe["seed_name"]
                    ),
                    "perturbation_seed": seed_of("embedded_model", recipe["seed_name"])
                    if recipe.get("perturb_from")
                    else None,
                    "tokenizer_training_corpus_sha256": corpus_digest,
                    "tokenizer_training_records": len(records),
                },
                indent=2,
                sort_keys=True,
            )
        )
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
