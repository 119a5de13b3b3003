"""Checks of a checkpoint before and right after loading: config JSON, vocabulary, token ids.

On copies of the session's real ``small_checkpoint`` (a LlamaForCausalLM saved with
``save_pretrained``), each with one thing wrong; the numbers in the messages are the model's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avalanche_kedro.core.errors import CheckpointError
from avalanche_kedro.measure.checkpoint_checks import (
    check_local_checkpoint,
    check_token_ids,
    check_vocabulary,
    context_length,
    read_local_config,
)
from avalanche_kedro.measure.checkpoints import resolve_checkpoint
from avalanche_kedro.measure.forward import run_pass, validate_instrumentation


def copy_of(small_checkpoint, tmp_path) -> Path:
    directory = tmp_path / "copy"
    shutil.copytree(small_checkpoint["checkpoint"], directory)
    return directory


def test_vocabulary_check_by_hand():
    check_vocabulary(512, 512, "m", "config")  # equal: fine
    check_vocabulary(500, 512, "m", "config")  # padded embedding (Qwen2.5-style): fine
    check_vocabulary(10**6, None, "m", "config")  # unknown size: nothing to compare
    with pytest.raises(CheckpointError) as info:
        check_vocabulary(532, 512, "/models/m", "vocab_size in config.json")
    message = str(info.value)
    assert "The tokenizer of '/models/m' has 532 token ids" in message
    assert "embedding has only 512 rows (vocab_size in config.json)" in message
    assert "ids 512 to 531 would index past the embedding" in message
    assert "resize_token_embeddings" in message


def test_context_length_by_hand(small_model):
    assert context_length({"max_position_embeddings": 256, "n_positions": 64}) == 256
    assert context_length({"n_positions": 1024}) == 1024  # gpt2
    assert context_length({"n_ctx": 2048, "hidden_size": 8}) == 2048
    assert context_length({"hidden_size": 8}) is None
    assert context_length({"max_position_embeddings": True, "seq_length": 0}) is None
    # a model, its config object, and the manifest of its checkpoint agree
    assert context_length(small_model.model) == small_model.model.config.max_position_embeddings


def test_the_manifest_records_the_context_length(small_checkpoint):
    assert small_checkpoint["context_length"] == 64


def test_token_id_check_by_hand():
    check_token_ids(np.array([[0, 5], [511, 3]]), 512, "m")
    check_token_ids(np.zeros((0, 4), dtype=np.int64), 512, "m")  # no windows: nothing to check
    with pytest.raises(CheckpointError) as info:
        check_token_ids(np.array([[0, 5], [512, 3]]), 512, "/models/m")
    assert "The windows hold token id 512 but the embedding of '/models/m' has only 512" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"model_type": "llama",\n  vocab_size: 5}', "Expecting property name enclosed in "),
        (b'["llama"]', "holds a JSON list, not an object"),
        # é is byte 19: the 15 bytes of '{"model_type": ' and then '"caf'
        (b'{"model_type": "caf\xe9"}', "is not UTF-8 text: byte 19 is b'\\xe9'"),
    ],
    ids=["not-json", "a-list", "latin-1"],
)
def test_a_broken_config_json_is_named_with_where(small_checkpoint, tmp_path, content, expected):
    directory = copy_of(small_checkpoint, tmp_path)
    (directory / "config.json").write_bytes(content)
    for check in (
        lambda: read_local_config(directory, "base"),
        lambda: check_local_checkpoint("base", directory),
        lambda: resolve_checkpoint("base", {"checkpoint": str(directory)}),
    ):
        with pytest.raises(CheckpointError) as info:
            check()
        message = str(info.value)
        assert f"{directory / 'config.json'} (models.base.checkpoint)" in message
        assert expected in message
        assert "save_pretrained" in message
    if expected.startswith("Expecting"):
        assert "at line 2, column 3" in message


def _tokenizer_with_extra_ids(directory: Path, extra: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(extra)])
    tokenizer.save_pretrained(directory)
    return len(tokenizer)


def test_a_tokenizer_larger_than_the_embedding_stops_before_any_model_loads(
    small_checkpoint, tmp_path
):
    directory = copy_of(small_checkpoint, tmp_path)
    rows = json.loads((directory / "config.json").read_text())["vocab_size"]
    size = _tokenizer_with_extra_ids(directory, 7)
    assert size == rows + 7
    expected = f"has {size} token ids but the model's embedding has only {rows} rows"
    with pytest.raises(CheckpointError) as info:
        check_local_checkpoint("base", directory)  # the preflight
    assert expected in str(info.value)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("base", {"checkpoint": str(directory)})  # the resolve_model node
    assert expected in str(info.value)
    check_local_checkpoint("base", Path(small_checkpoint["checkpoint"]))  # the original is fine


def test_windows_cut_by_another_tokenizer_stop_before_the_forward_pass(small_model):
    rows = small_model.model.get_input_embeddings().num_embeddings
    ids = np.arange(16, dtype=np.int64).reshape(2, 8)
    ids[1, 3] = rows + 2
    for forward in (
        lambda: run_pass(small_model, ids, batch_size=2),
        lambda: validate_instrumentation(small_model, ids),
    ):
        with pytest.raises(CheckpointError) as info:
            forward()
        assert f"token id {rows + 2} but the embedding of" in str(info.value)
        assert f"has only {rows} rows" in str(info.value)
