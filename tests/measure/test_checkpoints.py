"""Checkpoint hashes, config reading, resolution and the process-wide model cache (SPEC §2).

Bad checkpoints inside a real run (missing or incomplete directories, unknown families, a Hub
id offline, a checkpoint deleted after capture) are covered by
``tests/integration/test_bad_input.py``; the dtype basics and a Qwen2 checkpoint in bf16 by
``tests/integration/test_paper_config.py``. Here: the functions themselves, on small files
and on the session's ``small_checkpoint``, and Hub ids pinned to revisions, read offline from a
genuine Hugging Face cache of tiny GPTNeoX stand-ins (``tests/measure/hub_cache.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from avalanche_kedro.core.errors import CheckpointError, ConfigurationError
from avalanche_kedro.measure import checkpoints
from avalanche_kedro.measure.adapters import adapter_for
from avalanche_kedro.measure.checkpoints import (
    checkpoint_d_ff,
    clear_loaded_models,
    directory_sha256,
    file_sha256s,
    load_model,
    looks_like_hub_id,
    models_loaded,
    rates_for_expected_events,
    resolve_checkpoint,
    resolve_device,
    resolve_dtype,
    sha256_file,
    tokenizer_sha256,
)
from avalanche_kedro.measure.embedded import EMBEDDED_SPECIAL_TOKEN
from tests.conftest import SMALL_RECIPE

CPU = torch.device("cpu")
RUNTIME = {"device": "cpu", "dtype": "float32"}  # as the session's small_model


# --------------------------------------------------------------------------------------------
# Hashes


def test_sha256_file(tmp_path):
    path = tmp_path / "weights.bin"
    content = bytes(range(256)) * 5
    path.write_bytes(content)
    assert sha256_file(path) == hashlib.sha256(content).hexdigest()
    assert sha256_file(path, chunk_size=7) == hashlib.sha256(content).hexdigest()  # chunked
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_directory_sha256_by_hand(tmp_path):
    files = {
        "config.json": b'{"model_type": "llama"}',
        "model.safetensors": b"\x00\x01weights",
        "tokenizer/vocab.json": b'{"a": 0}',
        "z/deep/file.txt": b"",
    }
    hidden = {
        ".gitattributes": b"lfs",
        "tokenizer/.cache": b"x",
        ".git/objects/ab": b"blob",
        "z/.hidden/file.txt": b"y",
    }
    for relative, content in {**files, **hidden}.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(content)
    # sha256 over "relative_path \0 file_sha256 \n" lines, sorted by path, hidden files out
    lines = "".join(
        f"{relative}\0{hashlib.sha256(files[relative]).hexdigest()}\n" for relative in sorted(files)
    )
    expected = hashlib.sha256(lines.encode()).hexdigest()
    assert directory_sha256(tmp_path) == expected
    # the per-file hashes, read once, give the same hash (resolve_checkpoint reuses them for
    # the weights hash)
    hashes = file_sha256s(tmp_path)
    assert hashes == {r: hashlib.sha256(files[r]).hexdigest() for r in sorted(files)}
    assert directory_sha256(tmp_path, hashes) == expected
    # content, not timestamps or the folder's name, decides
    moved = tmp_path.parent / (tmp_path.name + "-copy")
    tmp_path.rename(moved)
    assert directory_sha256(moved) == expected
    (moved / "z" / "deep" / "file.txt").write_bytes(b"changed")
    assert directory_sha256(moved) != expected


# --------------------------------------------------------------------------------------------
# Reading a local checkpoint's config


def write_config(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize(
    ("config", "d_ff"),
    [
        ({"model_type": "llama", "hidden_size": 32, "intermediate_size": 96}, 96),
        ({"model_type": "opt", "hidden_size": 32, "ffn_dim": 48}, 48),
        ({"model_type": "gpt2", "n_embd": 16, "n_inner": 80}, 80),
        ({"model_type": "gpt2", "n_embd": 16, "n_inner": None}, 64),  # GPT-2: 4 x n_embd
        ({"model_type": "x", "hidden_size": 10}, 40),
        ({"intermediate_size": 0, "ffn_dim": 12, "hidden_size": 10}, 12),  # 0 names nothing
    ],
    ids=["intermediate_size", "ffn_dim", "n_inner", "4-n_embd", "4-hidden", "first-nonzero"],
)
def test_checkpoint_d_ff(tmp_path, config, d_ff):
    assert checkpoint_d_ff(write_config(tmp_path / "model", config)) == d_ff
    assert checkpoint_d_ff(str(tmp_path / "model")) == d_ff


def test_checkpoint_d_ff_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_config(tmp_path / "models" / "m", {"intermediate_size": 18944})
    assert checkpoint_d_ff("~/models/m") == 18944


def test_checkpoint_d_ff_errors(tmp_path):
    directory = write_config(tmp_path / "model", {"model_type": "mamba", "d_model": 32})
    with pytest.raises(CheckpointError) as info:
        checkpoint_d_ff(directory)
    assert info.value.problem == (
        f"'{directory / 'config.json'}' names no MLP width (intermediate_size, ffn_dim, n_inner "
        "or hidden_size)."
    )
    assert info.value.fix == "Give calibration.target_rates explicitly."
    with pytest.raises(CheckpointError) as info:
        checkpoint_d_ff(tmp_path / "nowhere")
    assert (
        info.value.problem
        == f"Cannot read d_ff: '{tmp_path / 'nowhere' / 'config.json'}' does not exist."
    )


def test_rates_for_expected_events(tmp_path, small_checkpoint):
    directory = write_config(tmp_path / "model", {"intermediate_size": 50000})
    rates = rates_for_expected_events(directory, [0.5, 1, "2"])
    assert rates == [1e-5, 2e-5, 4e-5]
    assert all(type(r) is float for r in rates)
    # the paper's rates {1, 2, 4, 8}e-5 at d_ff = 18944, back from their expected counts
    write_config(tmp_path / "qwen", {"intermediate_size": 18944})
    paper = rates_for_expected_events(
        tmp_path / "qwen", [r * 18944 for r in (1e-5, 2e-5, 4e-5, 8e-5)]
    )
    assert paper == pytest.approx([1e-5, 2e-5, 4e-5, 8e-5], rel=1e-12)
    # the small checkpoint: d_ff = SMALL_RECIPE's intermediate_size = 64
    assert rates_for_expected_events(small_checkpoint["checkpoint"], [0.64, 1.28]) == [0.01, 0.02]


# --------------------------------------------------------------------------------------------
# Hub ids


@pytest.mark.parametrize(
    "checkpoint",
    ["Qwen/Qwen2.5-7B", "gpt2", "meta-llama/Llama-3.1-8B-Instruct", "org_1/model.v2", "x"],
)
def test_looks_like_a_hub_id(checkpoint):
    assert looks_like_hub_id(checkpoint)


@pytest.mark.parametrize(
    "checkpoint",
    [
        "data/06_models/small-llama",  # two slashes: a path
        "./model",
        "../models/llama",
        "~/models/llama",
        "/abs/model",
        "org/",
        "-org/model",
        "org/model name",
        "",
    ],
)
def test_does_not_look_like_a_hub_id(checkpoint):
    assert not looks_like_hub_id(checkpoint)


# --------------------------------------------------------------------------------------------
# Devices and dtypes on the CPU (the basic rules are in test_paper_config.test_dtype_rules)


@pytest.mark.parametrize(
    ("requested", "dtype"),
    [
        ("fp32", torch.float32),
        ("FLOAT32", torch.float32),
        ("bf16", torch.bfloat16),
        ("float16", torch.float16),
        ("fp16", torch.float16),
        ("AUTO", torch.float32),
        (None, torch.float32),  # missing means auto
        ("", torch.float32),
    ],
)
def test_resolve_dtype_aliases_on_cpu(requested, dtype):
    assert resolve_dtype(requested, CPU) is dtype


def test_resolve_dtype_names_the_choices():
    with pytest.raises(ConfigurationError) as info:
        resolve_dtype("int8", CPU)
    assert info.value.problem == "Unknown runtime.dtype 'int8'."
    assert info.value.fix == (
        "Use auto or one of ['bf16', 'bfloat16', 'float16', 'float32', 'fp16', 'fp32']."
    )


def test_resolve_device_on_cpu():
    assert resolve_device("CPU") == CPU
    assert resolve_device() == resolve_device(None) == resolve_device("") == resolve_device("auto")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert resolve_device("auto") == CPU


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_explicit_mps_without_mps_is_a_clear_error():
    with pytest.raises(ConfigurationError) as info:
        resolve_device("mps")
    assert info.value.problem == "runtime.device is 'mps' but MPS is not available on this machine."
    assert info.value.fix == "Set runtime.device to auto or cpu."


# --------------------------------------------------------------------------------------------
# resolve_checkpoint on the session's small embedded checkpoint


def test_manifest_of_the_small_checkpoint(small_checkpoint):
    from transformers import AutoTokenizer

    directory = Path(small_checkpoint["checkpoint"])
    tokenizer = AutoTokenizer.from_pretrained(directory)
    special_id = tokenizer.convert_tokens_to_ids(EMBEDDED_SPECIAL_TOKEN)
    assert small_checkpoint == {
        "model_role": "test",
        "source": "embedded",
        "checkpoint": str(directory),
        "model_id": "small-llama",
        "revision_requested": None,
        "revision": None,
        "content_sha256": directory_sha256(directory),
        "weights_sha256": hashlib.sha256(
            f"model.safetensors\0{sha256_file(directory / 'model.safetensors')}\n".encode()
        ).hexdigest(),
        "weights_files": ["model.safetensors"],
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "adapter_family": adapter_for("llama").family,
        "trust_remote_code": False,
        "tokenizer_sha256": hashlib.sha256(
            tokenizer.backend_tokenizer.to_str().encode("utf-8")
        ).hexdigest(),
        "tokenizer_special_ids": [special_id],
        "vocab_size": len(tokenizer),
        "context_length": SMALL_RECIPE["max_position_embeddings"],
    }
    assert len(small_checkpoint["content_sha256"]) == 64
    assert small_checkpoint["vocab_size"] == SMALL_RECIPE["tokenizer_vocab_size"]


def test_resolving_again_or_as_a_plain_directory_gives_the_same_identity(
    small_checkpoint, python_corpus_a
):
    directory = small_checkpoint["checkpoint"]
    again = resolve_checkpoint(
        "test", {"checkpoint": directory, "embedded": SMALL_RECIPE}, python_corpus_a
    )
    assert again == small_checkpoint
    plain = resolve_checkpoint("base", {"checkpoint": directory})
    assert plain == {**small_checkpoint, "model_role": "base", "source": "local"}


def test_resolve_checkpoint_refusals(small_checkpoint):
    for spec in (None, {}, {"checkpoint": ""}):
        with pytest.raises(ConfigurationError) as info:
            resolve_checkpoint("instruct", spec)
        assert info.value.problem == "Model role 'instruct' has no checkpoint."
        assert "models.instruct.checkpoint" in info.value.fix
    directory = small_checkpoint["checkpoint"]
    with pytest.raises(ConfigurationError) as info:
        resolve_checkpoint("base", {"checkpoint": directory, "embedded": SMALL_RECIPE})
    assert info.value.problem == "The embedded model needs corpus A to train its tokenizer."
    with pytest.raises(ConfigurationError) as info:
        resolve_checkpoint("base", {"checkpoint": directory, "revision": "main"})
    assert info.value.problem == (
        f"models.base.revision is set but '{directory}' is a local directory."
    )


# --------------------------------------------------------------------------------------------
# load_model and the process-wide cache


def test_load_model_returns_the_cached_model(small_checkpoint, small_model):
    assert load_model(small_checkpoint, RUNTIME) is small_model
    # the key holds the resolved device and dtype, so aliases hit the same entry
    assert load_model(small_checkpoint, {"device": "CPU", "dtype": "fp32"}) is small_model
    if resolve_device("auto") == CPU:  # runtime defaults: device and dtype auto
        assert load_model(dict(small_checkpoint), {}) is small_model
    assert f"{small_checkpoint['checkpoint']} on cpu" in models_loaded()


def test_the_loaded_model(small_checkpoint, small_model):
    model = small_model.model
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert small_model.backbone is model.model  # the model without its LM head
    assert small_model.manifest == small_checkpoint
    assert small_model.describe() == {
        "device": "cpu",
        "dtype": "float32",
        "n_layers": SMALL_RECIPE["num_hidden_layers"],
        "d_ff": SMALL_RECIPE["intermediate_size"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    # the tokenizer the run uses is the one the manifest hashed
    assert tokenizer_sha256(small_model.tokenizer) == small_checkpoint["tokenizer_sha256"]


def test_clear_loaded_models_forgets_the_cache(small_checkpoint, small_model, monkeypatch):
    # work on copies of the cache, so the session's small_model stays cached for other tests
    monkeypatch.setattr(checkpoints, "_LOADED", dict(checkpoints._LOADED))
    monkeypatch.setattr(checkpoints, "_LOADS", list(checkpoints._LOADS))
    loads = len(models_loaded())
    clear_loaded_models()
    assert checkpoints._LOADED == {}
    reloaded = load_model(small_checkpoint, RUNTIME)
    assert reloaded is not small_model
    assert len(models_loaded()) == loads + 1  # a real load, recorded
    assert load_model(small_checkpoint, RUNTIME) is reloaded  # and cached again
    theirs, ours = small_model.model.state_dict(), reloaded.model.state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[name], ours[name]) for name in theirs)


@pytest.mark.parametrize("progress", [False, True])
def test_transformers_loading_bar_follows_runtime_progress(
    small_checkpoint, monkeypatch, capfd, progress
):
    """A real load of the small checkpoint: transformers' "Loading weights" bar prints only
    with ``runtime.progress`` on, and the global bar setting is restored afterwards."""
    from transformers.utils import logging as transformers_logging

    monkeypatch.setattr(checkpoints, "_LOADED", {})  # force a real load, keep the session cache
    monkeypatch.setattr(checkpoints, "_LOADS", list(checkpoints._LOADS))
    before = transformers_logging.is_progress_bar_enabled()
    capfd.readouterr()
    load_model(small_checkpoint, {**RUNTIME, "progress": progress})
    printed = capfd.readouterr().err
    assert transformers_logging.is_progress_bar_enabled() == before
    if progress:
        assert "Loading weights" in printed
    else:
        assert "Loading weights" not in printed and "%|" not in printed


def test_transformers_progress_bars_restores_the_setting():
    from transformers.utils import logging as transformers_logging

    from avalanche_kedro.measure.checkpoints import transformers_progress_bars

    transformers_logging.enable_progress_bar()
    with transformers_progress_bars(False):
        assert not transformers_logging.is_progress_bar_enabled()
    assert transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    with transformers_progress_bars(True):
        assert transformers_logging.is_progress_bar_enabled()
    assert not transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()  # transformers' default


# --------------------------------------------------------------------------------------------
# Hub ids pinned to revisions: tiny GPTNeoX stand-ins in a genuine offline Hub cache


@pytest.fixture(scope="module")
def pythia_cache(tmp_path_factory) -> dict:
    from tests.measure.hub_cache import build_pythia_cache

    return build_pythia_cache(tmp_path_factory.mktemp("pythia"), steps=(0, 512, 1000))


@pytest.fixture
def offline_hub(pythia_cache, monkeypatch):
    from tests.measure.hub_cache import no_network, use_cache

    # load_model caches per process: start empty (a stand-in of the same commit loaded by
    # another test must not answer), and restore the session's entries afterwards
    monkeypatch.setattr(checkpoints, "_LOADED", {})
    monkeypatch.setattr(checkpoints, "_LOADS", list(checkpoints._LOADS))
    with use_cache(pythia_cache["cache"]), no_network():
        yield pythia_cache


def assert_loaded_weights(model, source: Path) -> None:
    """``model`` holds exactly the tensors saved in ``source``/model.safetensors."""
    from safetensors.torch import load_file

    # transformers 5 names Pythia's output layer lm_head in memory and embed_out on disk
    saved = {
        name.replace("embed_out.", "lm_head."): tensor
        for name, tensor in load_file(source / "model.safetensors").items()
    }
    state = model.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(state[name], tensor) for name, tensor in saved.items())


def test_each_revision_resolves_to_its_own_commit_and_weights(offline_hub):
    from tests.measure.hub_cache import PYTHIA

    manifests = {
        revision: resolve_checkpoint(revision, {"checkpoint": PYTHIA, "revision": revision})
        for revision in ("step0", "step512", "step1000")
    }
    for revision, manifest in manifests.items():
        source = offline_hub["sources"][revision]
        assert manifest["source"] == "hub"
        assert manifest["checkpoint"] == manifest["model_id"] == PYTHIA
        assert manifest["revision_requested"] == revision
        assert manifest["revision"] == offline_hub["commits"][revision]  # the pinned commit
        assert manifest["content_sha256"] is None  # a Hub model has no local directory
        assert (
            manifest["weights_sha256"]
            == hashlib.sha256(
                f"model.safetensors\0{sha256_file(source / 'model.safetensors')}\n".encode()
            ).hexdigest()
        )
        assert manifest["weights_files"] == ["model.safetensors"]
        assert manifest["model_type"] == "gpt_neox"
        assert manifest["architectures"] == ["GPTNeoXForCausalLM"]
        assert manifest["adapter_family"] == adapter_for("gpt_neox").family
    assert len({m["revision"] for m in manifests.values()}) == 3
    assert len({m["weights_sha256"] for m in manifests.values()}) == 3
    # the same tokenizer at every step, as in a training run
    assert len({m["tokenizer_sha256"] for m in manifests.values()}) == 1


def test_transformers_reads_each_revision_from_the_cache(offline_hub):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from tests.measure.hub_cache import PYTHIA

    for revision in ("step0", "step512"):
        model = AutoModelForCausalLM.from_pretrained(PYTHIA, revision=revision)
        assert_loaded_weights(model, offline_hub["sources"][revision])
    step0 = load_file(offline_hub["sources"]["step0"] / "model.safetensors")
    name = "gpt_neox.layers.0.mlp.dense_h_to_4h.weight"
    assert not torch.equal(step0[name], model.state_dict()[name])  # step512 is another model


def test_load_model_on_a_pinned_gpt_neox_revision(offline_hub):

    from tests.measure.hub_cache import D_FF, N_LAYERS, PYTHIA

    manifest = resolve_checkpoint("step512", {"checkpoint": PYTHIA, "revision": "step512"})
    loaded = load_model(manifest, RUNTIME)
    assert type(loaded.model).__name__ == "GPTNeoXForCausalLM"
    assert loaded.model.config.use_parallel_residual is True  # Pythia's residual
    assert loaded.adapter.family == "gpt_neox / pythia"
    assert (loaded.n_layers, loaded.d_ff) == (N_LAYERS, D_FF)
    assert loaded.backbone is loaded.model.gpt_neox
    assert_loaded_weights(loaded.model, offline_hub["sources"]["step512"])
    assert tokenizer_sha256(loaded.tokenizer) == manifest["tokenizer_sha256"]
    # the manifest pins the commit: a branch moved later would not change what is loaded
    assert load_model(manifest, RUNTIME) is loaded
    assert models_loaded()[-1] == f"{PYTHIA} on cpu"


def test_a_commit_hash_pins_a_revision_too(offline_hub):
    from tests.measure.hub_cache import PYTHIA

    commit = offline_hub["commits"]["step1000"]
    by_commit = resolve_checkpoint("late", {"checkpoint": PYTHIA, "revision": commit})
    by_branch = resolve_checkpoint("late", {"checkpoint": PYTHIA, "revision": "step1000"})
    assert by_commit["revision"] == commit
    assert {**by_commit, "revision_requested": "step1000"} == by_branch


def test_a_revision_that_does_not_exist_is_a_clear_checkpoint_error(offline_hub):
    from tests.measure.hub_cache import PYTHIA

    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("step2000", {"checkpoint": PYTHIA, "revision": "step2000"})
    message = str(info.value)
    assert "Revision 'step2000' of 'EleutherAI/pythia-70m-deduped'" in message
    assert "model role 'step2000'" in message
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step2000" in message
    assert "How to fix" in message and "models.step2000.revision" in info.value.fix
    # a Hub id that is not cached at all keeps the general offline message
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("base", {"checkpoint": "someorg/somemodel", "revision": "v1"})
    message = str(info.value)
    assert "'someorg/somemodel' from the Hugging Face Hub" in message
    assert "revision 'v1'" in message and "HF_HUB_OFFLINE" in message
