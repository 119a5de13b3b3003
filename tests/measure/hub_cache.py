"""A genuine Hugging Face Hub cache of tiny Pythia stand-ins, built offline for the tests.

Each "revision" is a tiny random-init ``GPTNeoXForCausalLM`` (the real Pythia class: parallel
attention/MLP residual, partial rotary) saved with ``save_pretrained`` and laid out exactly as
``huggingface_hub`` lays out a download:

    <cache>/models--EleutherAI--pythia-70m-deduped/
        blobs/<sha256>            LFS files (weights), named by the sha256 of their content
        blobs/<git sha1>          git files (config, tokenizer), named by their git blob id
        snapshots/<commit>/<file> -> ../../blobs/<name>   (relative symlinks)
        refs/<revision>           the commit the branch points at (no newline)

so that transformers' ``from_pretrained(..., revision="step512")`` and the project's resolver
read it as they would read a real download. :func:`use_cache` points huggingface_hub at it and
turns on offline mode; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import torch

PYTHIA = "EleutherAI/pythia-70m-deduped"
#: The pythia environment's revisions and the seeds of their stand-ins.
STEPS = (0, 512, 1000, 8000, 33000, 143000)
HIDDEN, D_FF, N_LAYERS, HEADS = 32, 128, 2, 4  # d_ff = 4 x hidden, as in Pythia
LFS_SUFFIXES = (".safetensors", ".bin")

_TEXT = [
    "The quick brown fox jumps over the lazy dog.",
    "A language model predicts the next token of a text from the tokens before it.",
    "Training checkpoints of one run are saved as branches named after their step.",
    "Activation events cascade through layers and along the sequence of tokens.",
]


def tiny_tokenizer():
    """A byte-level BPE with Pythia's single special token, trained on four sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_TEXT, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def save_tiny_neox(directory: Path, tokenizer, seed: int) -> Path:
    """A random-init GPTNeoXForCausalLM (weights from ``seed``) saved with ``tokenizer``."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=D_FF,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file (what the Hub cache names a non-LFS blob by)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def repo_folder(cache: Path, repo_id: str = PYTHIA) -> Path:
    # written out, not read from huggingface_hub, so the layout is checked independently
    return cache / ("models--" + repo_id.replace("/", "--"))


def commit_of(revision: str, salt: str = "") -> str:
    return hashlib.sha1(f"{PYTHIA}@{revision}{salt}".encode()).hexdigest()


def add_revision(
    cache: Path,
    revision: str,
    source: Path,
    *,
    commit: str | None = None,
    skip: tuple[str, ...] = (),
    repo_id: str = PYTHIA,
) -> str:
    """Lay out the files of ``source`` (minus ``skip``) as revision ``revision``; its commit."""
    repo = repo_folder(cache, repo_id)
    commit = commit or commit_of(revision)
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name in skip:
            continue
        data = path.read_bytes()
        lfs = path.name.endswith(LFS_SUFFIXES)
        blob = repo / "blobs" / (hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data))
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / path.name
        link.symlink_to(os.path.relpath(blob, snapshot))
    ref = repo / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return commit


def build_pythia_cache(root: Path, steps=STEPS) -> dict:
    """One saved stand-in per step (seed = its index) and the cache holding them all.

    Returns ``{"cache": Path, "sources": {revision: directory}, "commits": {revision: sha}}``.
    The last step also carries a ``pytorch_model.bin`` beside ``model.safetensors`` (as
    Pythia's ``main`` does), so the safetensors preference is exercised on a real layout.
    """
    tokenizer = tiny_tokenizer()
    cache = root / "hf-home" / "hub"
    sources, commits = {}, {}
    for index, step in enumerate(steps):
        revision = f"step{step}"
        source = save_tiny_neox(root / "saved" / revision, tokenizer, seed=100 + index)
        if index == len(steps) - 1:
            from safetensors.torch import load_file

            torch.save(load_file(source / "model.safetensors"), source / "pytorch_model.bin")
        sources[revision] = source
        commits[revision] = add_revision(cache, revision, source)
    return {"cache": cache, "sources": sources, "commits": commits}


def copy_cache(cache: Path, destination: Path) -> Path:
    """A copy of a cache (symlinks kept as symlinks) that a test may change."""
    shutil.copytree(cache.parent, destination, symlinks=True)
    return destination / cache.name


@contextmanager
def use_cache(cache: Path):
    """huggingface_hub and transformers read ``cache``, offline, for the ``with`` block.

    The environment variables are what a user sets; huggingface_hub reads them once at import,
    so its ``constants`` (which every download and cache lookup reads at call time) are set
    too.
    """
    import pytest
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(cache.parent))
        patch.setenv("HF_HUB_CACHE", str(cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(constants, "HF_HOME", str(cache.parent))
        patch.setattr(constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        yield cache


@contextmanager
def no_network():
    """Any internet connection attempted in the block fails loudly (Unix sockets stay open)."""
    import pytest

    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address)

    def guarded_create_connection(address, *args, **kwargs):
        raise AssertionError(f"network access attempted: {address!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket, "create_connection", guarded_create_connection)
        yield
