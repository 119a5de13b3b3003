"""Model checkpoints: resolution of any checkpoint, content hashes, loading (SPEC §2).

A model is named by ``checkpoint``: a local directory in Hugging Face format or a Hub id
(with an optional pinned ``revision``). The embedded default is built from its recipe by
:mod:`avalanche_kedro.measure.embedded` the first time it is resolved; from then on it is
loaded with ``from_pretrained`` like any local checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.errors import CheckpointError, ConfigurationError
from .adapters import ArchitectureAdapter, adapter_for
from .checkpoint_checks import (
    check_checkpoint_files,
    check_vocabulary,
    config_vocab_size,
    context_length,
    declared_model_type,
)
from .embedded import embedded_recipe, ensure_embedded_checkpoint
from .remote_code import remote_code_allowed, warn_remote_code
from .weights import hub_weights, local_weights, resolve_hub_revision, sha256_file

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# --------------------------------------------------------------------------------------------
# Hashes


def file_sha256s(directory: Path) -> dict[str, str]:
    """sha256 of every file of ``directory`` by relative path, in path order (hidden files
    excluded): read once, shared by the content hash and the weights hash."""
    hashes = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue
        hashes[relative] = sha256_file(path)
    return hashes


def directory_sha256(directory: Path, file_sha256: Mapping[str, str] | None = None) -> str:
    """Content hash of a checkpoint directory: sha256 over ``relative_path\\0file_sha256\\n``
    lines of every file, sorted by path (hidden files excluded; the embedded build record is
    included, so two builds from different recipes never share a hash). ``file_sha256``: the
    :func:`file_sha256s` of ``directory`` when already computed."""
    hashes = file_sha256 if file_sha256 is not None else file_sha256s(directory)
    digest = hashlib.sha256()
    for relative, value in hashes.items():
        digest.update(f"{relative}\0{value}\n".encode())
    return digest.hexdigest()


def tokenizer_sha256(tokenizer) -> str:
    """sha256 of the tokenizer's canonical serialization (``tokenizer.json`` content)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:  # a slow tokenizer: hash its vocabulary and special tokens
        text = json.dumps(
            {"vocab": tokenizer.get_vocab(), "special": tokenizer.all_special_tokens},
            sort_keys=True,
        )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# Reading a local checkpoint's config


def checkpoint_d_ff(checkpoint: str | Path) -> int:
    """The MLP width (d_ff) of a local checkpoint, read from its ``config.json``."""
    path = Path(checkpoint).expanduser() / "config.json"
    if not path.exists():
        raise CheckpointError(
            f"Cannot read d_ff: '{path}' does not exist.",
            "Point the checkpoint at a local directory saved with save_pretrained(), or give "
            "calibration.target_rates explicitly.",
        )
    config = json.loads(path.read_text())
    for key in ("intermediate_size", "ffn_dim", "n_inner"):
        if config.get(key):
            return int(config[key])
    hidden = config.get("hidden_size") or config.get("n_embd")
    if hidden:
        return 4 * int(hidden)  # the transformers default of GPT-2-style configs
    raise CheckpointError(
        f"'{path}' names no MLP width (intermediate_size, ffn_dim, n_inner or hidden_size).",
        "Give calibration.target_rates explicitly.",
    )


def rates_for_expected_events(checkpoint: str | Path, events_per_site) -> list[float]:
    """Target rates giving ``events_per_site`` expected events per site: ``r = e / d_ff``.

    SPEC §3: the per-site expected count r * d_ff should sit in the paper's range (0.19 ... 1.52
    for the rates {1, 2, 4, 8}e-5 at d_ff = 18944), whatever the model's width. Registered as the
    config resolver ``${per_site_rates:<checkpoint>,<list>}``.
    """
    d_ff = checkpoint_d_ff(checkpoint)
    return [float(e) / d_ff for e in events_per_site]


# --------------------------------------------------------------------------------------------
# Resolution: what exactly is this model?


def looks_like_hub_id(checkpoint: str) -> bool:
    """``org/name`` or ``name`` (what the Hub accepts), not a path such as ``data/x/y``."""
    return bool(_HUB_ID.match(checkpoint)) and not checkpoint.startswith((".", "~"))


def _is_local(checkpoint: str) -> bool:
    return Path(checkpoint).expanduser().exists()


def resolve_checkpoint(
    role: str, spec: Mapping[str, Any], corpus_records: Iterable[str] | None = None
) -> dict[str, Any]:
    """Identify a model precisely enough to reproduce the run, before loading any weights.

    Builds the embedded checkpoint on first use, rejects missing paths and unsupported
    architectures with clear errors, and returns the manifest: source (embedded / local /
    hub), checkpoint, revision (the commit a Hub revision resolves to; an unknown revision is
    a CheckpointError naming it), content hash of a local directory, ``weights_sha256`` (sha256
    over ``name\0sha256(file)\n`` of the weight files only, for every source:
    :mod:`avalanche_kedro.measure.weights`) and the files it covers, model type, architectures,
    adapter family and the tokenizer hash.
    """
    from transformers import AutoConfig, AutoTokenizer

    if not spec or not spec.get("checkpoint"):
        raise ConfigurationError(
            f"Model role '{role}' has no checkpoint.",
            f"Set models.{role}.checkpoint to a Hub id (e.g. Qwen/Qwen2.5-7B) or a local "
            "checkpoint directory.",
        )
    checkpoint = str(spec["checkpoint"])
    revision = spec.get("revision")
    trust_remote_code = bool(spec.get("trust_remote_code", False))
    source = "local"
    if spec.get("embedded") is not None:
        recipe = embedded_recipe(spec["embedded"])
        if corpus_records is None:
            raise ConfigurationError(
                "The embedded model needs corpus A to train its tokenizer.",
                "Pass corpus A to resolve_checkpoint.",
            )
        ensure_embedded_checkpoint(Path(checkpoint), recipe, corpus_records)
        source = "embedded"
    if _is_local(checkpoint):
        directory = Path(checkpoint).expanduser()
        check_checkpoint_files(directory)
        location = str(directory)
        declared = declared_model_type(directory, role)
        if declared is not None:
            # Before transformers parses the config: a family it does not know (or one we have
            # no adapter for) is an unsupported architecture, not a failure to read the files.
            adapter_for(declared)
        if revision:
            raise ConfigurationError(
                f"models.{role}.revision is set but '{checkpoint}' is a local directory.",
                "Remove the revision, or use a Hub id for a pinned revision.",
            )
    elif looks_like_hub_id(checkpoint):
        source = "hub"
        location = checkpoint
    else:
        raise CheckpointError(
            f"Model path '{checkpoint}' does not exist (resolved to "
            f"'{Path(checkpoint).expanduser().resolve()}').",
            f"Set models.{role}.checkpoint to an existing checkpoint directory or to a Hub "
            "id such as Qwen/Qwen2.5-7B.",
        )

    # A Hub revision (branch, tag or commit) is resolved to its commit first, so the config,
    # the tokenizer, the weights hash and later the weights all come from that one commit; an
    # unknown or uncached revision stops here with a message naming it.
    hub = resolve_hub_revision(role, checkpoint, revision) if source == "hub" else None
    pinned = hub.commit if hub is not None else revision
    if trust_remote_code:  # the caller's own configuration (spec), never a saved file
        warn_remote_code(role, location, pinned)
    try:
        config = AutoConfig.from_pretrained(
            location, revision=pinned, trust_remote_code=trust_remote_code
        )
        tokenizer = AutoTokenizer.from_pretrained(
            location, revision=pinned, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"Could not read the config or tokenizer of '{checkpoint}'"
            + (" from the Hugging Face Hub" if source == "hub" else "")
            + f": {exc}",
            "Check the Hub id and revision and that this machine can reach the Hub (or has "
            "the model cached; HF_HUB_OFFLINE=1 allows only cached models), or point "
            f"models.{role}.checkpoint at a local directory.",
        ) from exc
    adapter = adapter_for(config.model_type)
    check_vocabulary(
        len(tokenizer), config_vocab_size(config.to_dict()), location, "vocab_size in config.json"
    )
    # After the architecture check, so an unsupported model never triggers a weights download.
    files = file_sha256s(Path(location)) if hub is None else None
    weights = hub_weights(role, hub) if hub is not None else local_weights(Path(location), files)
    manifest: dict[str, Any] = {
        "model_role": role,
        "source": source,
        "checkpoint": location,
        "model_id": checkpoint if source == "hub" else Path(location).name,
        "revision_requested": revision,
        "revision": hub.commit if hub is not None else None,
        "content_sha256": directory_sha256(Path(location), files) if hub is None else None,
        "weights_sha256": weights.sha256 if weights is not None else None,
        "weights_files": list(weights.files) if weights is not None else [],
        "model_type": config.model_type,
        "architectures": list(getattr(config, "architectures", None) or []),
        "adapter_family": adapter.family,
        "trust_remote_code": trust_remote_code,
        "tokenizer_sha256": tokenizer_sha256(tokenizer),
        "tokenizer_special_ids": sorted(int(i) for i in tokenizer.all_special_ids),
        "vocab_size": int(len(tokenizer)),
        "context_length": context_length(config),
    }
    return manifest


# --------------------------------------------------------------------------------------------
# Loading


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu. An explicit unavailable device is an error."""
    requested = str(requested or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError(
            f"runtime.device is '{requested}' but CUDA is not available on this machine.",
            "Set runtime.device to auto or cpu.",
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigurationError(
            f"runtime.device is '{requested}' but MPS is not available on this machine.",
            "Set runtime.device to auto or cpu.",
        )
    return device


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA devices that support it, fp32 elsewhere."""
    requested = str(requested or "auto").lower()
    if requested == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if requested not in _DTYPES:
        raise ConfigurationError(
            f"Unknown runtime.dtype '{requested}'.", f"Use auto or one of {sorted(_DTYPES)}."
        )
    return _DTYPES[requested]


@dataclass
class LoadedModel:
    """A model ready for instrumented forward passes."""

    model: torch.nn.Module
    tokenizer: Any
    adapter: ArchitectureAdapter
    device: torch.device
    dtype: torch.dtype
    manifest: dict[str, Any]
    n_layers: int = field(init=False)
    d_ff: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_layers = self.adapter.n_layers(self.model)
        self.d_ff = self.adapter.d_ff(self.model)

    @property
    def backbone(self) -> torch.nn.Module:
        """The model without its LM head: used whenever logits are not needed."""
        return getattr(self.model, self.model.base_model_prefix)

    def describe(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "n_layers": self.n_layers,
            "d_ff": self.d_ff,
            "n_parameters": int(sum(p.numel() for p in self.model.parameters())),
        }


_LOADED: dict[tuple, LoadedModel] = {}
_LOADS: list[str] = []  # every real load in this process, "<checkpoint> on <device>"


@contextmanager
def transformers_progress_bars(enabled: bool) -> Iterator[None]:
    """transformers' own progress bars ("Loading weights", "Writing model shards") on or off
    inside the block, restored afterwards: they follow ``runtime.progress`` like the project's
    bars instead of printing on every model load."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    if enabled:
        transformers_logging.enable_progress_bar()
    else:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()
        else:
            transformers_logging.disable_progress_bar()


def load_model(manifest: Mapping[str, Any], runtime: Mapping[str, Any]) -> LoadedModel:
    """Load (once per process) the model a manifest describes, on the configured device.

    The cache key is (checkpoint, revision, device, dtype), so each model role is loaded once
    per run however many nodes use it. An explicit CUDA device that cannot hold the model is
    an error, never a silent offload to the CPU. ``trust_remote_code`` comes from the
    configuration of the run (:func:`~avalanche_kedro.measure.remote_code.remote_code_allowed`),
    never from the manifest: a manifest recording it that the configuration does not allow is
    refused.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust_remote_code = remote_code_allowed(manifest)
    device = resolve_device(runtime.get("device", "auto"))
    dtype = resolve_dtype(runtime.get("dtype", "auto"), device)
    location = manifest["checkpoint"]
    revision = manifest.get("revision") or manifest.get("revision_requested")
    key = (
        location,
        revision,
        str(device),
        str(dtype),
        runtime.get("attn_implementation"),
        trust_remote_code,
    )
    if key in _LOADED:
        return _LOADED[key]
    if manifest.get("source") != "hub" and not Path(location).exists():
        raise CheckpointError(
            f"The checkpoint directory '{location}' recorded in the model manifest is gone.",
            "Re-run the capture pipeline (kedro run --pipelines capture) to rebuild or "
            "re-resolve it.",
        )
    kwargs: dict[str, Any] = {
        "revision": revision,
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
    }
    if runtime.get("attn_implementation"):
        kwargs["attn_implementation"] = runtime["attn_implementation"]
    if device.type == "cuda":
        # One device for every module: a model that does not fit fails instead of offloading.
        kwargs["device_map"] = {"": device.index or 0}
    try:
        with transformers_progress_bars(bool(runtime.get("progress", False))):
            model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
        if device.type != "cuda":
            model = model.to(device)
    except torch.OutOfMemoryError as exc:
        raise CheckpointError(
            f"The model '{location}' does not fit in the memory of {device} in {dtype}.",
            "Use a GPU with more memory, runtime.dtype: bfloat16, or runtime.device: cpu.",
        ) from exc
    except Exception as exc:  # truncated or corrupted weights surface as library errors
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"The weights of '{location}' could not be loaded: {type(exc).__name__}: {exc}",
            "Re-download or re-save the checkpoint (a truncated model.safetensors is the "
            "usual cause), then re-run the capture pipeline.",
        ) from exc
    model.eval()
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(
        location, revision=revision, trust_remote_code=kwargs["trust_remote_code"]
    )
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        adapter=adapter_for(model.config.model_type),
        device=device,
        dtype=dtype,
        manifest=dict(manifest),
    )
    rows = model.get_input_embeddings().num_embeddings
    check_vocabulary(len(tokenizer), rows, location, "rows of the loaded input embedding")
    _LOADED[key] = loaded
    _LOADS.append(f"{location} on {device}")
    logger.info(
        "Loaded %s (%s) on %s as %s: %d layers, d_ff %d",
        manifest.get("model_id"),
        manifest.get("model_role"),
        device,
        dtype,
        loaded.n_layers,
        loaded.d_ff,
    )
    return loaded


def models_loaded() -> list[str]:
    """Every model this process has loaded so far (a cache hit does not count)."""
    return list(_LOADS)


def clear_loaded_models() -> None:
    """Forget every cached model (tests, notebooks)."""
    _LOADED.clear()
