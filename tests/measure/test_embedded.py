"""The embedded tiny Llama: recipe, deterministic tokenizer and weights, build-once directory.

A recipe far smaller than the session's ``SMALL_RECIPE`` keeps every build to a second or so;
the shared ``small_checkpoint`` (built from ``SMALL_RECIPE``) is reused for the checks on an
existing directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from avalanche_kedro.core.errors import CheckpointError, ConfigurationError, CorpusError
from avalanche_kedro.core.seeds import seed_of
from avalanche_kedro.measure.embedded import (
    BUILD_RECORD,
    EMBEDDED_DEFAULTS,
    EMBEDDED_SPECIAL_TOKEN,
    build_embedded_model,
    embedded_recipe,
    ensure_embedded_checkpoint,
    train_embedded_tokenizer,
)
from tests.conftest import SMALL_RECIPE, TINY_ARCHITECTURE

#: Smaller than SMALL_RECIPE: 2 layers of width 16, a 300-token vocabulary (256 bytes + merges).
TINY = {
    "seed_name": "test-embedded-tiny",
    **TINY_ARCHITECTURE,
}
VOCAB, SPECIAL_ID = 300, 0


@pytest.fixture(scope="module")
def records(python_corpus_a) -> list[str]:
    return python_corpus_a[:6]


def state(model) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def assert_same_weights(a, b) -> None:
    sa, sb = state(a), state(b)
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def tree(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``directory`` with its mtime and content hash."""
    return {
        str(p.relative_to(directory)): (
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# Recipe


def test_recipe_defaults_and_overrides():
    assert embedded_recipe(None) == EMBEDDED_DEFAULTS
    assert embedded_recipe({}) == EMBEDDED_DEFAULTS
    recipe = embedded_recipe({"hidden_size": 16, "seed_name": "other"})
    assert recipe == {**EMBEDDED_DEFAULTS, "hidden_size": 16, "seed_name": "other"}
    recipe["num_hidden_layers"] = 99  # a copy: the defaults never change
    assert EMBEDDED_DEFAULTS["num_hidden_layers"] == 8


def test_recipe_rejects_unknown_keys():
    with pytest.raises(ConfigurationError) as info:
        embedded_recipe({"hiden_size": 16, "bogus": 1, "hidden_size": 16})
    assert (
        info.value.problem == "Unknown keys ['bogus', 'hiden_size'] in the embedded model recipe."
    )
    assert info.value.fix == f"Use only {sorted(EMBEDDED_DEFAULTS)} under models.<role>.embedded."


# --------------------------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_training_is_deterministic(records):
    first = train_embedded_tokenizer(records, VOCAB)
    second = train_embedded_tokenizer(list(records), VOCAB)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    # blank records are dropped before training, so they change nothing
    padded = train_embedded_tokenizer(["", *records, "   \n", None], VOCAB)
    assert padded.backend_tokenizer.to_str() == first.backend_tokenizer.to_str()
    # another vocabulary size is another tokenizer
    other = train_embedded_tokenizer(records, VOCAB + 20)
    assert other.backend_tokenizer.to_str() != first.backend_tokenizer.to_str()


def test_tokenizer_is_byte_level_with_one_special_token(records):
    tokenizer = train_embedded_tokenizer(records, VOCAB)
    assert len(tokenizer) == VOCAB  # 256 byte symbols, the special token and the merges
    assert tokenizer.convert_tokens_to_ids(EMBEDDED_SPECIAL_TOKEN) == SPECIAL_ID
    assert tokenizer.bos_token == tokenizer.eos_token == EMBEDDED_SPECIAL_TOKEN
    assert tokenizer.all_special_tokens == [EMBEDDED_SPECIAL_TOKEN]
    text = "def f(x):\n    return x ** 2  # ünïcode, never seen in training ✓"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text  # byte level: nothing is unknown
    assert len(ids) < len(text.encode("utf-8"))  # and the merges compress


@pytest.mark.parametrize("corpus", [[], ["", "  \n", None]], ids=["no-records", "blank"])
def test_tokenizer_refuses_an_empty_corpus(corpus):
    with pytest.raises(CorpusError) as info:
        train_embedded_tokenizer(corpus, VOCAB)
    assert "Corpus A is empty" in info.value.problem
    assert "corpus_A" in info.value.fix


# --------------------------------------------------------------------------------------------
# Weights


def test_same_recipe_same_weights_and_the_documented_seed():
    recipe = embedded_recipe(TINY)
    model = build_embedded_model(recipe, VOCAB, SPECIAL_ID)
    assert_same_weights(model, build_embedded_model(recipe, VOCAB, SPECIAL_ID))
    assert not model.training
    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (config.vocab_size, config.hidden_size, config.intermediate_size) == (VOCAB, 16, 32)
    assert (config.num_hidden_layers, config.num_attention_heads) == (2, 2)
    assert config.num_key_value_heads == 1 and config.max_position_embeddings == 32
    assert config.bos_token_id == config.eos_token_id == SPECIAL_ID
    assert config.hidden_act == "silu" and config.tie_word_embeddings is False
    # by hand: LlamaForCausalLM(config) drawn right after torch.manual_seed(seed_of(...))
    from transformers import LlamaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_of("embedded_model", "test-embedded-tiny"))
        by_hand = LlamaForCausalLM(config)
    assert_same_weights(model, by_hand)


def test_another_seed_name_gives_other_weights():
    a = build_embedded_model(embedded_recipe(TINY), VOCAB, SPECIAL_ID)
    b = build_embedded_model(embedded_recipe({**TINY, "seed_name": "another"}), VOCAB, SPECIAL_ID)
    sa, sb = state(a), state(b)
    random_init = [n for n in sa if "norm" not in n]  # the norms start at 1 in both
    assert random_init and all(not torch.equal(sa[n], sb[n]) for n in random_init)


def test_building_does_not_disturb_the_global_random_stream():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_embedded_model(embedded_recipe(TINY), VOCAB, SPECIAL_ID)
    assert torch.equal(torch.rand(3), expected)


def test_perturb_from_is_the_base_plus_noise_of_the_configured_scale():
    base = build_embedded_model(embedded_recipe(TINY), VOCAB, SPECIAL_ID)
    recipe = embedded_recipe(
        {**TINY, "seed_name": "tiny-derived", "perturb_from": TINY["seed_name"],
         "perturbation_scale": 0.1}
    )  # fmt: skip
    derived = build_embedded_model(recipe, VOCAB, SPECIAL_ID)
    # by hand: w + 0.1 * std(w) * N(0, 1), noise drawn in sorted parameter-name order from
    # the generator seeded with this recipe's own seed name
    noise = torch.Generator().manual_seed(seed_of("embedded_model", "tiny-derived"))
    base_params = dict(base.named_parameters())
    derived_params = dict(derived.named_parameters())
    assert base_params.keys() == derived_params.keys()
    for name in sorted(base_params):
        w = base_params[name].detach()
        z = torch.randn(w.shape, generator=noise, dtype=w.dtype)
        torch.testing.assert_close(
            derived_params[name].detach(), w + z * (0.1 * w.std()), rtol=0, atol=1e-7
        )
        # and the noise really is of that scale (a standard normal once divided by it)
        if w.numel() >= 256 and w.std() > 0:
            ratio = (derived_params[name].detach() - w) / (0.1 * w.std())
            assert 0.8 < float(ratio.std()) < 1.2, name
    # a zero scale is exactly the base model
    zero = embedded_recipe({**recipe, "perturbation_scale": 0.0})
    assert_same_weights(build_embedded_model(zero, VOCAB, SPECIAL_ID), base)


# --------------------------------------------------------------------------------------------
# The checkpoint directory: built once, never overwritten


def test_ensure_builds_once_then_reuses(tmp_path, records):
    from transformers import AutoTokenizer, LlamaForCausalLM

    recipe = embedded_recipe(TINY)
    directory = tmp_path / "models" / "tiny"
    assert ensure_embedded_checkpoint(directory, recipe, iter(records)) is True
    assert sorted(os.listdir(directory.parent)) == ["tiny"]  # no staging directory left
    names = set(os.listdir(directory))
    assert {"config.json", "model.safetensors", "tokenizer.json", BUILD_RECORD} <= names
    record = json.loads((directory / BUILD_RECORD).read_text())
    assert record == {
        "recipe": recipe,
        "weights_seed": seed_of("embedded_model", "test-embedded-tiny"),
        "perturbation_seed": None,
        "tokenizer_training_corpus_sha256": hashlib.sha256(
            "\0".join(records).encode("utf-8")
        ).hexdigest(),
        "tokenizer_training_records": len(records),
    }
    # what was saved is exactly the recipe's tokenizer and weights
    saved_tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer = train_embedded_tokenizer(records, TINY["tokenizer_vocab_size"])
    assert saved_tokenizer.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert_same_weights(
        LlamaForCausalLM.from_pretrained(directory),
        build_embedded_model(recipe, len(tokenizer), SPECIAL_ID),
    )

    before = tree(directory)
    assert ensure_embedded_checkpoint(directory, recipe, records) is False
    assert tree(directory) == before


def test_a_derived_recipe_records_its_perturbation_seed(tmp_path, records):
    recipe = embedded_recipe(
        {**TINY, "seed_name": "tiny-derived", "perturb_from": TINY["seed_name"],
         "perturbation_scale": 0.05}
    )  # fmt: skip
    assert ensure_embedded_checkpoint(tmp_path / "derived", recipe, records) is True
    record = json.loads((tmp_path / "derived" / BUILD_RECORD).read_text())
    assert record["weights_seed"] == seed_of("embedded_model", "test-embedded-tiny")
    assert record["perturbation_seed"] == seed_of("embedded_model", "tiny-derived")


def test_a_directory_built_from_another_recipe_is_refused(small_checkpoint, python_corpus_a):
    directory = Path(small_checkpoint["checkpoint"])
    recipe = embedded_recipe(SMALL_RECIPE)
    before = tree(directory)
    assert ensure_embedded_checkpoint(directory, recipe, python_corpus_a) is False
    other = embedded_recipe({**SMALL_RECIPE, "seed_name": "not-the-same"})
    with pytest.raises(CheckpointError) as info:
        ensure_embedded_checkpoint(directory, other, python_corpus_a)
    assert f"The embedded checkpoint at '{directory}' was built from a different recipe" in (
        info.value.problem
    )
    assert "'seed_name': 'test-tiny-llama'" in info.value.problem
    assert "'seed_name': 'not-the-same'" in info.value.problem
    assert "existing checkpoints are never overwritten" in info.value.fix
    assert tree(directory) == before


@pytest.mark.parametrize("content", [None, "config.json"], ids=["empty-dir", "plain-checkpoint"])
def test_a_directory_without_the_build_record_is_refused(tmp_path, records, content):
    directory = tmp_path / "plain"
    directory.mkdir()
    if content:
        (directory / content).write_text("{}")
    before = tree(directory)
    with pytest.raises(CheckpointError) as info:
        ensure_embedded_checkpoint(directory, embedded_recipe(TINY), records)
    assert info.value.problem == (
        f"'{directory}' exists but is not an embedded checkpoint built by this project "
        f"(no {BUILD_RECORD})."
    )
    assert "Remove `embedded:`" in info.value.fix
    assert tree(directory) == before


def test_an_empty_corpus_builds_nothing(tmp_path):
    with pytest.raises(CorpusError):
        ensure_embedded_checkpoint(tmp_path / "models" / "tiny", embedded_recipe(TINY), ["  "])
    assert not (tmp_path / "models").exists() or not os.listdir(tmp_path / "models")
