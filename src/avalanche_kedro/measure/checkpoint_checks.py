"""What can be checked about a checkpoint before and right after it is loaded.

Used by the run's preflight (:mod:`avalanche_kedro.framework.preflight`, before any model is
loaded or window tokenized), by :func:`~avalanche_kedro.measure.checkpoints.resolve_checkpoint`
and by :func:`~avalanche_kedro.measure.checkpoints.load_model`: a missing or incomplete
directory, a ``config.json`` that is not JSON, a model family without an adapter, and a
tokenizer with more ids than the model's embedding has rows each stop with a
:class:`~avalanche_kedro.core.errors.CheckpointError` naming the file, the numbers and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import CheckpointError, ConfigurationError
from .adapters import adapter_for

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


#: config keys that state a model's context length, in the order transformers' families use them
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")


def context_length(model_or_config: Any) -> int | None:
    """The number of positions the model was trained for, from its config (a model, a
    transformers config or a config dict); None when the config states none."""
    config = getattr(model_or_config, "config", model_or_config)
    for key in CONTEXT_KEYS:
        value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_windows_fit_context(
    role: str, seq_len: int | None, context: int | None, where: str
) -> None:
    """``windows.seq_len`` must not exceed the model's context (``context`` positions, read
    from ``where``): longer windows run positions the model never saw, or fail deep inside
    attention. Nothing to check when either is unknown (a config that states no context)."""
    if seq_len is not None and context is not None and int(seq_len) > int(context):
        raise ConfigurationError(
            f"windows.seq_len = {seq_len} exceeds the context of model role '{role}' "
            f"({context} positions: {where}).",
            f"Set windows.seq_len to at most {context} (conf/<env>/parameters_capture.yml or "
            f"--params windows.seq_len={context}), or use a model with a longer context.",
        )


def check_checkpoint_files(directory: Path) -> None:
    if not directory.is_dir():
        raise CheckpointError(
            f"Checkpoint path '{directory}' is a file, not a directory.",
            "Point models.<role>.checkpoint at a directory saved with save_pretrained().",
        )
    missing = []
    if not (directory / "config.json").exists():
        missing.append("config.json")
    if not any((directory / name).exists() for name in _WEIGHT_FILES) and not list(
        directory.glob("model-*.safetensors")
    ):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not any(
        (directory / name).exists()
        for name in ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
    ):
        missing.append("a tokenizer (tokenizer.json, tokenizer.model or vocab.json)")
    if missing:
        raise CheckpointError(
            f"Checkpoint directory '{directory}' is incomplete: missing {', '.join(missing)}.",
            "Save the model and its tokenizer with save_pretrained() into that directory, or "
            "point models.<role>.checkpoint at a complete checkpoint.",
        )


def read_local_config(directory: Path, role: str = "<role>") -> dict[str, Any]:
    """``config.json`` of a local checkpoint as a mapping; a clear error when it is not JSON.

    transformers reports a broken file as "It looks like the config file ... is not a valid
    JSON file" without saying where; this names the line and column and the fix.
    """
    path = directory / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{path} (models.{role}.checkpoint) is not UTF-8 text: byte {exc.start} is "
            f"{exc.object[exc.start : exc.start + 1]!r}.",
            "Restore config.json: save the model again with save_pretrained(), or copy the "
            "file from where the checkpoint came from.",
        ) from exc
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} (models.{role}.checkpoint) is not valid JSON: {exc.msg} at line "
            f"{exc.lineno}, column {exc.colno}.",
            "Repair or restore config.json: save the model again with save_pretrained(), or "
            "copy the file from where the checkpoint came from. Nothing was loaded or written.",
        ) from exc
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path} (models.{role}.checkpoint) holds a JSON {type(config).__name__}, not "
            "an object with the model's configuration.",
            "Restore config.json: save the model again with save_pretrained().",
        )
    return config


def declared_model_type(directory: Path, role: str = "<role>") -> str | None:
    """``model_type`` written in ``config.json`` (None when the file does not name one)."""
    return model_type_in(read_local_config(directory, role))


def model_type_in(config: Mapping[str, Any]) -> str | None:
    """``model_type`` of a config mapping (None when it names none)."""
    value = config.get("model_type")
    return value if isinstance(value, str) and value else None


def check_local_checkpoint(role: str, directory: Path) -> None:
    """What can be checked about a local checkpoint without loading it (the run's preflight).

    The directory exists and holds a config, weights and a tokenizer; ``config.json`` is JSON
    and names a model family with an adapter; the tokenizer has no more ids than the model's
    embedding has rows (:func:`check_vocabulary`).
    """
    from transformers import AutoTokenizer

    if not directory.exists():
        raise CheckpointError(
            f"Model path '{directory}' does not exist (models.{role}.checkpoint).",
            f"Set models.{role}.checkpoint to an existing checkpoint directory or to a Hub "
            "id such as Qwen/Qwen2.5-7B.",
        )
    check_checkpoint_files(directory)
    config = read_local_config(directory, role)
    declared = model_type_in(config)  # the config read above, not the file again
    if declared is not None:
        adapter_for(declared)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as exc:  # a broken tokenizer file surfaces as a library error
        raise CheckpointError(
            f"The tokenizer of '{directory}' (models.{role}.checkpoint) cannot be read: "
            f"{type(exc).__name__}: {exc}",
            "Save the tokenizer again with tokenizer.save_pretrained() into that directory.",
        ) from exc
    check_vocabulary(
        len(tokenizer), config_vocab_size(config), directory, "vocab_size in config.json"
    )


def config_vocab_size(config: Mapping[str, Any]) -> int | None:
    value = config.get("vocab_size", (config.get("text_config") or {}).get("vocab_size"))
    return int(value) if isinstance(value, int) and value > 0 else None


def check_vocabulary(
    tokenizer_size: int, embedding_rows: int | None, checkpoint: str | Path, where: str
) -> None:
    """Stop when the tokenizer can produce ids the model's embedding has no row for.

    ``len(tokenizer) > embedding rows`` makes the first forward pass fail deep inside the
    embedding ("index out of range in self"), after minutes of loading. More rows than ids is
    normal (padded vocabularies, e.g. Qwen2.5's 152064 rows for 151665 ids).
    """
    if embedding_rows is None or tokenizer_size <= embedding_rows:
        return
    raise CheckpointError(
        f"The tokenizer of '{checkpoint}' has {tokenizer_size} token ids but the model's "
        f"embedding has only {embedding_rows} rows ({where}): ids {embedding_rows} to "
        f"{tokenizer_size - 1} would index past the embedding.",
        "Use the tokenizer that was saved with this model (tokenizer.save_pretrained() into the "
        "checkpoint directory), or resize the model's embedding to the tokenizer "
        "(model.resize_token_embeddings(len(tokenizer))) and save both again.",
    )


def check_token_ids(ids: Any, embedding_rows: int, checkpoint: str | Path) -> None:
    """Stop when windows hold a token id the model's embedding has no row for (windows
    tokenized by another tokenizer than the model's)."""
    largest = int(ids.max()) if getattr(ids, "size", 0) else -1
    if largest < embedding_rows:
        return
    raise CheckpointError(
        f"The windows hold token id {largest} but the embedding of '{checkpoint}' has only "
        f"{embedding_rows} rows: they were tokenized with another tokenizer.",
        "Re-run the capture pipeline (kedro run --pipelines capture) so the windows are cut "
        "with this model's tokenizer.",
    )
