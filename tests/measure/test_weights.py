"""Weight files, the weights hash and Hub revisions (measure/weights.py), offline.

The Hub cache is a genuine one (tests/measure/hub_cache.py): tiny real GPTNeoX checkpoints,
blobs named by their sha256 / git id, snapshot symlinks and refs, as huggingface_hub writes
them. Online answers of the Hub are exercised with the library's own classes built from
payloads shaped like the API's JSON (``ModelInfo``, ``RevisionNotFoundError``), never a mock.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from avalanche_kedro.core.errors import CheckpointError
from avalanche_kedro.measure.weights import (
    HubRevision,
    WeightsIdentity,
    cached_commit,
    cached_revisions,
    combine_weights_sha256,
    folder_weights,
    hub_revision_error,
    hub_weights,
    local_weights,
    metadata_weights,
    repo_cache,
    resolve_hub_revision,
    sha256_file,
    weight_files,
)
from tests.measure.hub_cache import (
    PYTHIA,
    add_revision,
    build_pythia_cache,
    commit_of,
    copy_cache,
    git_blob_sha1,
    no_network,
    repo_folder,
    use_cache,
)

STEPS = (0, 512, 143000)


@pytest.fixture(scope="module")
def pythia(tmp_path_factory) -> dict:
    return build_pythia_cache(tmp_path_factory.mktemp("pythia"), steps=STEPS)


@pytest.fixture
def hub(pythia):
    with use_cache(pythia["cache"]), no_network():
        yield pythia


def by_hand(directory, names) -> str:
    """The weights hash written out: sha256 over sorted "name NUL sha256(file) LF" lines."""
    lines = "".join(
        f"{name}\0{hashlib.sha256((directory / name).read_bytes()).hexdigest()}\n"
        for name in sorted(names)
    )
    return hashlib.sha256(lines.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Which files are weights, and the hash


def test_weight_files_prefers_safetensors_and_ignores_everything_else():
    names = [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
        "model-00002-of-00002.safetensors",
        "model-00001-of-00002.safetensors",
        "pytorch_model.bin",
        "onnx/model.safetensors",  # a sub-folder: another runtime's copy
    ]
    assert weight_files(names) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    # .bin only when there is no safetensors file; trainer and tokenizer files never count
    assert weight_files(
        ["pytorch_model.bin", "training_args.bin", "optimizer.bin", "tokenizer.bin", "vocab.json"]
    ) == ["pytorch_model.bin"]
    assert weight_files(["config.json", "tokenizer.json"]) == []


def test_combine_weights_sha256_by_hand():
    hashes = {"b.safetensors": "2" * 64, "a.safetensors": "1" * 64}
    expected = hashlib.sha256(
        f"a.safetensors\0{'1' * 64}\nb.safetensors\0{'2' * 64}\n".encode()
    ).hexdigest()
    assert combine_weights_sha256(hashes) == expected
    assert WeightsIdentity.of(hashes, "files") == WeightsIdentity(
        expected, ("a.safetensors", "b.safetensors"), "files"
    )


def test_local_weights_hash_only_the_weights(pythia, tmp_path):
    source = pythia["sources"]["step0"]
    directory = shutil.copytree(source, tmp_path / "ckpt")
    identity = local_weights(directory)
    assert identity.files == ("model.safetensors",) and identity.source == "files"
    assert identity.sha256 == by_hand(directory, ["model.safetensors"])
    # a changed tokenizer or config is not a change of weights
    (directory / "tokenizer_config.json").write_text("{}")
    (directory / "config.json").write_text(
        json.dumps({**json.loads((directory / "config.json").read_text()), "note": 1})
    )
    assert local_weights(directory) == identity
    # hashes already computed are used, not recomputed (a large checkpoint is read once)
    known = {"model.safetensors": "f" * 64}
    assert local_weights(directory, known).sha256 == combine_weights_sha256(known)
    # the last step carries pytorch_model.bin too: the safetensors file is what is hashed
    last = pythia["sources"]["step143000"]
    assert (last / "pytorch_model.bin").exists()
    assert local_weights(last).files == ("model.safetensors",)
    (directory / "model.safetensors").unlink()
    assert local_weights(directory) is None  # no weights at all


def test_a_partial_sharded_download_is_not_the_weights(tmp_path):
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (tmp_path / name).write_bytes(name.encode())
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    complete = folder_weights(tmp_path)
    assert complete.files == (
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    )
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    assert folder_weights(tmp_path) is None
    (tmp_path / "model.safetensors.index.json").write_text("not json")
    assert folder_weights(tmp_path) is None


# --------------------------------------------------------------------------------------------
# The local Hugging Face cache


def test_the_cache_layout_is_the_hub_layout(pythia):
    repo = repo_folder(pythia["cache"])
    assert repo.name == "models--EleutherAI--pythia-70m-deduped"
    snapshot = repo / "snapshots" / pythia["commits"]["step512"]
    weights = snapshot / "model.safetensors"
    config = snapshot / "config.json"
    assert weights.is_symlink() and config.is_symlink()
    assert weights.resolve().name == sha256_file(weights)  # LFS blob: its sha256
    assert config.resolve().name == git_blob_sha1(config.read_bytes())  # git blob: its sha1
    assert (repo / "refs" / "step512").read_text() == pythia["commits"]["step512"]


def test_cache_weights_come_from_the_blob_names_and_equal_the_files_hash(pythia, tmp_path):
    for revision, source in pythia["sources"].items():
        snapshot = repo_folder(pythia["cache"]) / "snapshots" / pythia["commits"][revision]
        identity = folder_weights(snapshot, blob_names=True, source="hub cache")
        assert identity.source == "hub cache"
        assert identity.sha256 == local_weights(source).sha256
    # the blob name is what is read: a blob whose content no longer matches its name still
    # gives the name (the cache's own guarantee), while hashing the files sees the change
    cache = copy_cache(pythia["cache"], tmp_path / "copy")
    snapshot = repo_folder(cache) / "snapshots" / pythia["commits"]["step0"]
    blob = (snapshot / "model.safetensors").resolve()
    blob.write_bytes(b"truncated")
    assert (
        folder_weights(snapshot, blob_names=True).sha256
        == local_weights(pythia["sources"]["step0"]).sha256
    )
    assert folder_weights(snapshot).sha256 == combine_weights_sha256(
        {"model.safetensors": hashlib.sha256(b"truncated").hexdigest()}
    )


def test_cached_revisions_and_commits(hub):
    assert cached_revisions(PYTHIA) == {f"step{s}": commit_of(f"step{s}") for s in STEPS}
    assert cached_commit(PYTHIA, "step512") == hub["commits"]["step512"]
    # a commit hash pins itself when its snapshot is cached
    assert cached_commit(PYTHIA, hub["commits"]["step512"]) == hub["commits"]["step512"]
    assert cached_commit(PYTHIA, "step999") is None
    assert cached_commit(PYTHIA, None) is None  # no `main` ref in this cache
    assert repo_cache(PYTHIA) == repo_folder(hub["cache"])


def test_offline_resolution_reads_the_refs(hub):
    for revision in ("step0", "step512"):
        resolved = resolve_hub_revision("r", PYTHIA, revision)
        assert resolved == HubRevision(PYTHIA, revision, hub["commits"][revision], None)
        weights = hub_weights("r", resolved)
        assert weights.source == "hub cache"
        assert weights.sha256 == local_weights(hub["sources"][revision]).sha256


def test_offline_missing_revision_names_role_id_revision_and_the_fix(hub):
    with pytest.raises(CheckpointError) as info:
        resolve_hub_revision("step999", PYTHIA, "step999")
    problem, fix = info.value.problem, info.value.fix
    assert "Revision 'step999' of 'EleutherAI/pythia-70m-deduped'" in problem
    assert "model role 'step999', models.step999.revision" in problem
    assert "HF_HUB_OFFLINE=1" in problem
    assert "Cached revisions: ['step0', 'step143000', 'step512']" in problem
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step999" in fix
    assert "hf download EleutherAI/pythia-70m-deduped --revision step999" in fix


def test_offline_weights_missing_from_the_cache(hub, tmp_path):
    cache = copy_cache(hub["cache"], tmp_path / "copy")
    commit = add_revision(
        cache, "step1000", hub["sources"]["step0"], commit="c" * 40, skip=("model.safetensors",)
    )
    with use_cache(cache):
        resolved = resolve_hub_revision("late", PYTHIA, "step1000")
        assert resolved.commit == commit
        with pytest.raises(CheckpointError) as info:
            hub_weights("late", resolved)
    assert f"at revision 'step1000' (commit {commit}, model role 'late')" in info.value.problem
    assert "hf download EleutherAI/pythia-70m-deduped --revision step1000" in info.value.fix


# --------------------------------------------------------------------------------------------
# Online answers, from the library's own classes


def model_info(pythia, revision: str, *, lfs: bool = True):
    """A ``ModelInfo`` as ``model_info(files_metadata=True)`` builds it from the API's JSON."""
    from huggingface_hub.hf_api import ModelInfo

    source = pythia["sources"][revision]
    siblings = []
    for path in sorted(source.iterdir()):
        data = path.read_bytes()
        sibling = {"rfilename": path.name, "size": len(data), "blobId": git_blob_sha1(data)}
        if lfs and path.suffix in (".safetensors", ".bin"):
            sibling["lfs"] = {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "pointerSize": 134,
            }
        siblings.append(sibling)
    return ModelInfo(id=PYTHIA, sha=pythia["commits"][revision], siblings=siblings)


def test_hub_metadata_gives_the_same_weights_hash_without_any_file(pythia):
    for revision in ("step0", "step143000"):
        info = model_info(pythia, revision)
        files = {s.rfilename: (s.lfs.sha256 if s.lfs else None) for s in info.siblings}
        identity = metadata_weights(files)
        assert identity.source == "hub metadata"
        assert identity.sha256 == local_weights(pythia["sources"][revision]).sha256
        assert identity.files == ("model.safetensors",)  # safetensors preferred over the .bin
        resolved = HubRevision(PYTHIA, revision, info.sha, files)
        assert hub_weights("r", resolved) == identity  # no cache, no download needed
    # a weight file without LFS metadata has no sha256 to read: it must be downloaded
    info = model_info(pythia, "step0", lfs=False)
    assert metadata_weights({s.rfilename: None for s in info.siblings}) is None


def test_hub_refusals_become_checkpoint_errors():
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = f"https://huggingface.co/api/models/{PYTHIA}/revision/step999"
    response = httpx2.Response(404, request=httpx2.Request("GET", url))
    error = hub_revision_error(
        "late", PYTHIA, "step999", RevisionNotFoundError("Revision Not Found", response=response)
    )
    assert isinstance(error, CheckpointError)
    assert error.problem == (
        "models.late.revision 'step999' does not exist on the Hugging Face Hub for "
        "'EleutherAI/pythia-70m-deduped' (model role 'late')."
    )
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step999" in error.fix
    assert "models.late.revision" in error.fix
    gated = hub_revision_error("a", "org/m", None, GatedRepoError("gated", response=response))
    assert "gated repository" in gated.problem and "hf auth login" in gated.fix
    missing = hub_revision_error(
        "a", "org/m", None, RepositoryNotFoundError("x", response=response)
    )
    assert "'org/m' (model role 'a') is not a model repository" in missing.problem
    assert hub_revision_error("a", "org/m", None, OSError("connection reset")) is None
