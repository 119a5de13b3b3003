"""Which files hold a checkpoint's weights, their content hash, and the Hub revision a role pins.

The weights hash of a checkpoint is

    weights_sha256 = sha256( concat over the weight files f, sorted by name, of
                             f"{name(f)}\\0{sha256(bytes of f)}\\n" )

over the files ``from_pretrained`` reads the weights from (:func:`weight_files`), so it ignores
the config, the tokenizer and everything else in the folder: two revisions of a training run
that serve the same tensors get the same hash whatever else differs (issue 13, revision
integrity). It is computed without reading any weight file where possible:

* a local directory: from the files themselves;
* a Hub model, online: from the Hub's file metadata (``HfApi.model_info(files_metadata=True)``,
  the LFS ``sha256`` of every file at the resolved commit), in the same call that resolves the
  revision to its commit;
* a Hub model, offline (or the Hub unreachable): from the local Hugging Face cache, where a
  snapshot file is a symlink to ``blobs/<sha256>`` for every LFS file;
* otherwise the weight files of that commit are downloaded (they are needed to load the model
  anyway) and hashed.

A revision that the Hub does not know, or that an offline machine never downloaded, is a
:class:`CheckpointError` naming the role, the Hub id and the revision.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..core.errors import CheckpointError

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: Files with a weight suffix that hold no model weights (trainer state, tokenizers).
_NOT_WEIGHTS = re.compile(r"tokenizer|training_args|optimizer|scheduler|rng_state", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def sha256_file(path: Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_files(names: Iterable[str]) -> list[str]:
    """The weight files among a checkpoint's file names (relative paths), sorted.

    Top-level ``*.safetensors`` files if there is any (``from_pretrained`` prefers them),
    otherwise top-level ``*.bin`` files; sub-folders (``onnx/``, ...) and trainer or tokenizer
    files are never weights of the model transformers loads.
    """
    top = [n for n in names if "/" not in PurePosixPath(n).as_posix().strip("/")]
    candidates = [n for n in top if n.endswith(WEIGHT_SUFFIXES) and not _NOT_WEIGHTS.search(n)]
    safetensors = [n for n in candidates if n.endswith(".safetensors")]
    return sorted(safetensors or candidates)


def combine_weights_sha256(file_sha256: Mapping[str, str]) -> str:
    """sha256 over ``name\\0sha256\\n`` lines of the weight files, sorted by name."""
    digest = hashlib.sha256()
    for name in sorted(file_sha256):
        digest.update(f"{name}\0{file_sha256[name]}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsIdentity:
    """The weights hash of one checkpoint, the files it covers and where the hashes came from
    (``files``, ``hub cache``, ``hub metadata`` or ``download``)."""

    sha256: str
    files: tuple[str, ...]
    source: str

    @classmethod
    def of(cls, file_sha256: Mapping[str, str], source: str) -> WeightsIdentity:
        return cls(combine_weights_sha256(file_sha256), tuple(sorted(file_sha256)), source)


def _shards_listed(folder: Path, names: list[str]) -> bool:
    """False when the index of a sharded checkpoint (of the chosen format) names a shard the
    folder lacks, or cannot be read: a partial download must not pass for the weights."""
    index = folder / _INDEXES[0 if names[0].endswith(".safetensors") else 1]
    if not index.is_file():
        return True
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return False
    return shards <= set(names)


def folder_weights(
    folder: Path,
    *,
    blob_names: bool = False,
    known: Mapping[str, str] | None = None,
    source: str = "files",
) -> WeightsIdentity | None:
    """Weights identity of the weight files in ``folder`` (None when it holds none, or only
    some shards of a sharded checkpoint).

    ``blob_names``: ``folder`` is a snapshot of the Hugging Face cache, whose files are symlinks
    to ``blobs/<sha256>`` for LFS files; that name is used instead of reading the file. A blob
    named by a git sha1 (40 hex, a non-LFS file) is hashed. ``known``: file sha256 by name
    already computed (a large checkpoint is read once).
    """
    if not folder.is_dir():
        return None
    names = weight_files(p.name for p in folder.iterdir() if p.is_file())
    if not names or not _shards_listed(folder, names):
        return None
    hashes = {}
    for name in names:
        path = folder / name
        target = path.resolve().name if blob_names and path.is_symlink() else ""
        if _SHA256.match(target):
            hashes[name] = target
        else:
            hashes[name] = (known or {}).get(name) or sha256_file(path)
    return WeightsIdentity.of(hashes, source)


def local_weights(
    directory: Path, file_sha256: Mapping[str, str] | None = None
) -> WeightsIdentity | None:
    """Weights identity of a local checkpoint directory, from the files' content
    (``file_sha256``: their hashes by relative path, when already computed)."""
    return folder_weights(Path(directory), known=file_sha256, source="files")


# --------------------------------------------------------------------------------------------
# Hub revisions


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub read it (read at call time, so tests can set it)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def repo_cache(repo_id: str) -> Path:
    """``<HF_HUB_CACHE>/models--<org>--<name>``: the cache folder of a Hub model."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE).expanduser() / repo_folder_name(
        repo_id=repo_id, repo_type="model"
    )


def cached_revisions(repo_id: str) -> dict[str, str]:
    """Revision name -> commit of every ref recorded in the local cache (``refs/<name>``)."""
    refs = repo_cache(repo_id) / "refs"
    if not refs.is_dir():
        return {}
    return {
        p.relative_to(refs).as_posix(): p.read_text().strip()
        for p in sorted(refs.rglob("*"))
        if p.is_file()
    }


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit the local cache records for ``revision`` (``main`` when None), or None."""
    name = revision or "main"
    if _COMMIT.match(name) and (repo_cache(repo_id) / "snapshots" / name).is_dir():
        return name
    return cached_revisions(repo_id).get(name)


@dataclass(frozen=True)
class HubRevision:
    """A Hub revision resolved to its commit. ``file_sha256``: the Hub's LFS sha256 of every
    file at that commit (None for a non-LFS file); None when the Hub was not asked."""

    repo_id: str
    requested: str | None
    commit: str
    file_sha256: dict[str, str | None] | None = None


def tree_url(repo_id: str, revision: str | None) -> str:
    return f"https://huggingface.co/{repo_id}/tree/{revision or 'main'}"


def hub_revision_error(role: str, repo_id: str, revision: str | None, error: Exception):
    """The CheckpointError for a Hub refusal: unknown revision, unknown (or gated) repo;
    None for any other error."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    shown = revision or "main"
    if isinstance(error, RevisionNotFoundError):
        return CheckpointError(
            f"models.{role}.revision '{shown}' does not exist on the Hugging Face Hub for "
            f"'{repo_id}' (model role '{role}').",
            f"Check the branches and tags at {tree_url(repo_id, revision)} (the 'Files and "
            "versions' tab lists them; Pythia's training checkpoints are branches named "
            f"step<N>) and set models.{role}.revision to one that exists.",
        )
    if isinstance(error, GatedRepoError):
        return CheckpointError(
            f"'{repo_id}' (model role '{role}', revision '{shown}') is a gated repository on "
            "the Hugging Face Hub and this machine has no access.",
            f"Request access at https://huggingface.co/{repo_id} and log in (hf auth login).",
        )
    if isinstance(error, RepositoryNotFoundError):
        return CheckpointError(
            f"'{repo_id}' (model role '{role}') is not a model repository on the Hugging Face "
            "Hub (or it is private).",
            f"Check the id at https://huggingface.co/{repo_id}, log in for a private model "
            f"(hf auth login), or point models.{role}.checkpoint at a local directory.",
        )
    return None


def not_cached_error(role: str, repo_id: str, revision: str | None, reason: str):
    """The CheckpointError for a revision the local cache lacks while the Hub cannot be asked."""
    shown = revision or "main"
    cached = cached_revisions(repo_id)
    if not cached:
        return CheckpointError(
            f"Could not read the config or tokenizer of '{repo_id}' from the Hugging Face Hub "
            f"(model role '{role}', revision '{shown}'): {reason}, and the model is not in the "
            f"local cache ({repo_cache(repo_id).parent}).",
            "Check the Hub id and revision and that this machine can reach the Hub (or has "
            "the model cached; HF_HUB_OFFLINE=1 allows only cached models), or point "
            f"models.{role}.checkpoint at a local directory.",
        )
    return CheckpointError(
        f"Revision '{shown}' of '{repo_id}' (model role '{role}', models.{role}.revision) "
        f"is not in the local Hugging Face cache ({repo_cache(repo_id)}), and {reason}: it "
        "does not exist on the Hub or was never downloaded to this machine. Cached "
        f"revisions: {sorted(cached)}.",
        f"Check that the revision exists at {tree_url(repo_id, revision)}; then download it "
        f"where the Hub is reachable (hf download {repo_id} --revision {shown}) into this "
        f"cache (HF_HOME / HF_HUB_CACHE), or set models.{role}.revision to a cached revision.",
    )


def resolve_hub_revision(role: str, repo_id: str, revision: str | None) -> HubRevision:
    """Resolve ``revision`` (a branch such as ``step1000``, a tag or a commit) to its commit.

    Online, one ``model_info(files_metadata=True)`` call answers both the commit and the LFS
    sha256 of every file at it; offline, or when the Hub cannot be reached, the cache's
    ``refs/<revision>`` file answers the commit.
    """
    reason = "HF_HUB_OFFLINE=1 forbids asking the Hub"
    if not hub_offline():
        from huggingface_hub import HfApi

        try:
            info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        except Exception as exc:  # every Hub or network failure; refusals are reported below
            refusal = hub_revision_error(role, repo_id, revision, exc)
            if refusal is not None:
                raise refusal from exc
            # Unreachable or failing Hub: what the cache knows is the best remaining answer.
            reason = f"the Hub could not be reached ({type(exc).__name__}: {exc})"
            logger.warning("%s for %s@%s; using the local cache", reason, repo_id, revision)
        else:
            files = {
                s.rfilename: (s.lfs.sha256 if s.lfs is not None else None)
                for s in (info.siblings or [])
            }
            return HubRevision(repo_id, revision, str(info.sha), files)
    commit = cached_commit(repo_id, revision)
    if commit is None:
        raise not_cached_error(role, repo_id, revision, reason)
    return HubRevision(repo_id, revision, commit, None)


def metadata_weights(file_sha256: Mapping[str, str | None]) -> WeightsIdentity | None:
    """Weights identity from the Hub's per-file sha256 (None if a weight file has none)."""
    names = weight_files(file_sha256)
    if not names or any(not file_sha256[n] for n in names):
        return None
    return WeightsIdentity.of({n: str(file_sha256[n]) for n in names}, "hub metadata")


def hub_weights(role: str, hub: HubRevision) -> WeightsIdentity:
    """Weights identity of a resolved Hub revision: Hub metadata, else the local cache, else
    the weight files downloaded (into the cache, where loading the model finds them)."""
    if hub.file_sha256 is not None:
        identity = metadata_weights(hub.file_sha256)
        if identity is not None:
            return identity
    snapshot = repo_cache(hub.repo_id) / "snapshots" / hub.commit
    wanted = weight_files(hub.file_sha256) if hub.file_sha256 is not None else None
    identity = folder_weights(snapshot, blob_names=True, source="hub cache")
    if identity is not None and (wanted is None or list(identity.files) == wanted):
        return identity
    shown = hub.requested or "main"
    if hub_offline() or hub.file_sha256 is None:
        raise CheckpointError(
            f"The weights of '{hub.repo_id}' at revision '{shown}' (commit {hub.commit}, "
            f"model role '{role}') are not in the local Hugging Face cache ({snapshot}), and "
            "the Hub cannot be asked (HF_HUB_OFFLINE=1 or no connection).",
            f"Download the revision where the Hub is reachable (hf download {hub.repo_id} "
            f"--revision {shown}) into this cache (HF_HOME / HF_HUB_CACHE), or run online.",
        )
    if not wanted:
        raise CheckpointError(
            f"'{hub.repo_id}' at revision '{shown}' (model role '{role}') has no weight files "
            f"(*.safetensors or *.bin) at its top level.",
            f"Check the files at {tree_url(hub.repo_id, hub.requested)}, or pick another "
            f"revision for models.{role}.revision.",
        )
    from huggingface_hub import hf_hub_download

    try:
        for name in wanted:
            hf_hub_download(hub.repo_id, name, revision=hub.commit)
    except Exception as exc:
        raise CheckpointError(
            f"Could not download the weights of '{hub.repo_id}' at revision '{shown}' (model "
            f"role '{role}'): {type(exc).__name__}: {exc}",
            "Check the connection to the Hub and the disk space of the Hugging Face cache, "
            f"or pre-download the revision (hf download {hub.repo_id} --revision {shown}).",
        ) from exc
    identity = folder_weights(snapshot, blob_names=True, source="download")
    if identity is None or list(identity.files) != wanted:
        raise CheckpointError(
            f"The downloaded weights of '{hub.repo_id}' at revision '{shown}' are incomplete "
            f"in {snapshot} (expected {wanted}).",
            "Delete that snapshot folder from the Hugging Face cache and run again.",
        )
    return identity
