"""Stamps beside saved artifacts: digests, parameter leaves and the checks built on them."""

from __future__ import annotations

import hashlib

import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.framework.stamps import (
    ABSENT,
    changed_parameters,
    digest,
    identity,
    leaves_sha256,
    parameter_leaves,
    read_stamp,
    stamp_path,
    verify_file,
    write_stamp,
)


def test_digest_of_a_file_is_its_size_and_sha256(tmp_path):
    path = tmp_path / "table.parquet"
    path.write_bytes(b"abc")
    assert digest(path) == {
        "bytes": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    }


def test_digest_of_a_folder_covers_names_sizes_and_contents(tmp_path):
    folder = tmp_path / "event_rasters_A"
    (folder / "sub").mkdir(parents=True)
    (folder / "A.npy").write_bytes(b"abc")
    (folder / "sub" / "x").write_bytes(b"")
    sha_abc = hashlib.sha256(b"abc").hexdigest()
    sha_empty = hashlib.sha256(b"").hexdigest()
    lines = f"A.npy 3 {sha_abc}\nsub/x 0 {sha_empty}\n"
    assert digest(folder) == {"bytes": 3, "sha256": hashlib.sha256(lines.encode()).hexdigest()}
    (folder / "sub" / "x").rename(folder / "sub" / "y")  # a rename changes the digest
    assert digest(folder)["sha256"] != hashlib.sha256(lines.encode()).hexdigest()


def test_parameter_leaves_flatten_the_keys_a_dataset_depends_on():
    parameters = {
        "windows": {"seq_len": 64, "n_raster": 16},
        "models": {"base": {"checkpoint": "a", "revision": None}, "instruct": {"checkpoint": "b"}},
        "gain_grid": [0.5, 1.0],
    }
    leaves = parameter_leaves(parameters, ["windows", "models.base", "gain_grid", "lens"])
    assert leaves == {
        "windows.n_raster": 16,
        "windows.seq_len": 64,
        "models.base.checkpoint": "a",
        "models.base.revision": None,
        "gain_grid": [0.5, 1.0],
        "lens": ABSENT,
    }
    assert parameter_leaves(parameters, [""])["models.instruct.checkpoint"] == "b"


def test_changed_parameters_name_each_key_with_both_values():
    recorded = {"windows.n_raster": 16, "windows.seq_len": 64, "gain_grid": [1.0]}
    current = {"windows.n_raster": 12, "windows.seq_len": 64, "lens.top_k": 5}
    assert changed_parameters(recorded, current) == [
        "gain_grid: [1.0] -> <not set>",
        "lens.top_k: <not set> -> 5",
        "windows.n_raster: 16 -> 12",
    ]
    assert changed_parameters(recorded, dict(recorded)) == []
    assert leaves_sha256({"a": 1, "b": 2}) == leaves_sha256({"b": 2, "a": 1})


def test_a_stamp_is_written_beside_the_artifact_and_read_back(tmp_path):
    version = tmp_path / "windows.parquet" / "2026-12-01T10.00.00.000Z"
    version.mkdir(parents=True)
    artifact = version / "windows.parquet"
    artifact.write_bytes(b"data")
    written = write_stamp(artifact, {"dataset": "windows", "parameters": {"windows.seq_len": 64}})
    assert written == stamp_path(artifact) == version / ".windows.parquet.stamp.json"
    assert [p.name for p in version.iterdir() if p.name.startswith(".")] == [written.name]
    stamp = read_stamp(artifact)
    assert stamp["bytes"] == 4 and stamp["sha256"] == hashlib.sha256(b"data").hexdigest()
    assert stamp["parameters"] == {"windows.seq_len": 64} and stamp["artifact"] == "windows.parquet"
    verify_file(artifact, stamp, dataset="windows", command="kedro run --pipelines capture")


def test_an_artifact_changed_in_place_is_refused_with_both_hashes_and_the_fix(tmp_path):
    artifact = tmp_path / "A.npy"
    artifact.write_bytes(bytes(range(256)) * 4)
    write_stamp(artifact, {"session_id": "s1"})
    before = identity(artifact)
    expected = hashlib.sha256(artifact.read_bytes()).hexdigest()
    with open(artifact, "r+b") as handle:  # same size, last 64 bytes set to 0xFF
        handle.seek(-64, 2)
        handle.write(b"\xff" * 64)
    assert identity(artifact) != before
    with pytest.raises(ArtifactError) as info:
        verify_file(artifact, read_stamp(artifact), dataset="base.x", command="kedro run -p e")
    message = str(info.value)
    assert f"expected 1024 bytes with sha256 {expected}" in message
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() in message
    assert "session s1" in message and "`kedro run -p e`" in info.value.fix


def test_an_unreadable_stamp_is_an_error_not_a_pass(tmp_path):
    artifact = tmp_path / "t.json"
    artifact.write_text("{}")
    assert read_stamp(artifact) is None
    stamp_path(artifact).write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot be read"):
        read_stamp(artifact)


def test_the_manifest_record_and_the_stamp_of_a_saved_file_share_one_read(tmp_path, monkeypatch):
    from avalanche_kedro.study import provenance

    reads = []
    real = provenance.sha256_file
    monkeypatch.setattr(provenance, "sha256_file", lambda p: reads.append(p) or real(p))
    artifact = tmp_path / "t.parquet"
    artifact.write_bytes(b"abc")
    (record,) = provenance.artifact_records(artifact)  # ProvenanceHooks, after the save
    assert digest(artifact) == {"bytes": 3, "sha256": record["sha256"]}  # LineageHooks
    assert reads == [artifact]
    artifact.write_bytes(b"abcd")  # a rewrite is read again
    assert digest(artifact)["bytes"] == 4 and len(reads) == 2
