"""Provenance: config hash, code version, content run id, artifact records (SPEC §12)."""

from __future__ import annotations

import hashlib
import json
import subprocess

from avalanche_kedro.study.provenance import (
    artifact_records,
    canonical_json,
    code_version,
    config_hash,
    content_run_id,
)

PARAMS = {
    "runtime": {"device": "cpu", "progress": True, "scratch_dir": "x"},
    "gain_grid": [0.7, 1.0],
}


def test_config_hash_is_sha256_of_canonical_json_without_presentation_settings():
    expected = hashlib.sha256(
        json.dumps(
            {"gain_grid": [0.7, 1.0], "runtime": {"device": "cpu"}},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()
    assert config_hash(PARAMS) == expected
    quiet = {
        **PARAMS,
        "runtime": {**PARAMS["runtime"], "progress": False, "scratch_dir": "elsewhere"},
    }
    assert config_hash(quiet) == expected  # progress bars and scratch never change a number
    threads = {**PARAMS, "runtime": {**PARAMS["runtime"], "torch_threads": 1}}
    assert config_hash(threads) == expected  # how many threads compute it, not what
    assert config_hash({**PARAMS, "gain_grid": [0.7, 1.0, 1.3]}) != expected
    assert config_hash({**PARAMS, "runtime": {**PARAMS["runtime"], "device": "cuda"}}) != expected
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_code_version_in_and_outside_git(tmp_path):
    assert code_version(tmp_path) == "no_git_metadata"
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run(["git", "add", "f.txt"], cwd=tmp_path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        cwd=tmp_path,
        check=True,
    )
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert code_version(tmp_path) == commit
    (tmp_path / "f.txt").write_text("b")
    assert code_version(tmp_path) == f"{commit}-dirty"


def test_content_run_id_depends_on_what_was_run_not_where():
    models = {
        "base": {
            "model_id": "m",
            "checkpoint": "/a/m",
            "content_sha256": "c",
            "tokenizer_sha256": "t",
        }
    }
    slices = {"base": {"slices": [{"dataset_role": "A", "slice": "analysis", "sha256": "s"}]}}
    first = content_run_id("h", "v", models, slices)
    assert first.startswith("run-") and len(first) == 4 + 16
    moved = {"base": {**models["base"], "checkpoint": "/elsewhere/m"}}
    assert content_run_id("h", "v", moved, slices) == first
    assert content_run_id("h2", "v", models, slices) != first
    other_slice = {"base": {"slices": [{"dataset_role": "A", "slice": "analysis", "sha256": "s2"}]}}
    assert content_run_id("h", "v", models, other_slice) != first


def test_artifact_records_for_files_and_directories(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.bin").write_bytes(b"xyz")
    (tmp_path / "d" / "a.bin").write_bytes(b"")
    records = artifact_records(tmp_path / "d")
    assert [r["path"].split("/")[-1] for r in records] == ["a.bin", "b.bin"]
    assert records[1]["bytes"] == 3
    assert records[1]["sha256"] == hashlib.sha256(b"xyz").hexdigest()
    assert artifact_records(tmp_path / "missing") == []
