"""Roles that cannot be compared pairwise are refused with the datasets that differ."""

from __future__ import annotations

import hashlib

import pytest

from avalanche_kedro.study.replication import (
    ReplicationError,
    check_comparable_roles,
    check_distinct_weights,
)


def manifests(**overrides):
    base = {"tokenizer_sha256": "t" * 64, "model_id": "m"}
    return {"base": base, "instruct": {**base, **overrides}}


SLICES = {
    role: {
        "slices": [{"slice": "analysis", "sha256": "s"}, {"slice": "calibration", "sha256": "c"}]
    }
    for role in ("base", "instruct")
}
REPORTS = {"base": {"n_layers": 8}, "instruct": {"n_layers": 8}}


def test_comparable_roles_pass():
    check_comparable_roles(manifests(), SLICES, REPORTS)


def test_different_tokenizers_are_refused():
    with pytest.raises(ReplicationError) as info:
        check_comparable_roles(manifests(tokenizer_sha256="u" * 64), SLICES, REPORTS)
    message = str(info.value)
    assert "instruct.model_manifest and base.model_manifest have different tokenizers" in message
    assert "How to fix" in message


def test_different_layer_counts_are_refused():
    with pytest.raises(ReplicationError, match="instruct has 12 layers and base has 8"):
        check_comparable_roles(
            manifests(), SLICES, {"base": {"n_layers": 8}, "instruct": {"n_layers": 12}}
        )


def test_different_windows_are_refused():
    slices = {**SLICES, "instruct": {"slices": [{"slice": "analysis", "sha256": "other"}]}}
    with pytest.raises(
        ReplicationError, match="instruct.slice_manifest and base.slice_manifest differ"
    ):
        check_comparable_roles(manifests(), slices, REPORTS)


# --------------------------------------------------------------------------------------------
# check_distinct_weights: a training series needs its own weights at every step


def commit(step: int) -> str:
    return hashlib.sha1(f"step{step}".encode()).hexdigest()


def hub_manifest(step: int, weights: str | None) -> dict:
    """What resolve_checkpoint records for a Pythia branch (commit: 40 hex per step)."""
    return {
        "source": "hub",
        "model_id": "EleutherAI/pythia-70m-deduped",
        "checkpoint": "EleutherAI/pythia-70m-deduped",
        "revision_requested": f"step{step}",
        "revision": commit(step),
        "weights_sha256": weights,
    }


def test_distinct_weights_pass():
    manifests = {f"step{s}": hub_manifest(s, f"{s:064x}") for s in (0, 512, 1000)}
    check_distinct_weights(manifests)  # returns without error
    # unknown hashes (None, or a manifest written before the field existed) are not compared
    manifests["step8000"] = hub_manifest(8000, None)
    old = hub_manifest(33000, None)
    del old["weights_sha256"]
    manifests["step33000"] = old
    check_distinct_weights(manifests)


def test_identical_weights_name_both_roles_their_revisions_and_the_fix():
    same = "ab" * 32
    manifests = {
        "step0": hub_manifest(0, "0" * 64),
        "step1000": hub_manifest(1000, same),
        "step8000": hub_manifest(8000, same),
    }
    with pytest.raises(ReplicationError) as info:
        check_distinct_weights(manifests)
    problem, fix = info.value.problem, info.value.fix
    assert problem == (
        "Two model roles would be measured on the same weights: "
        f"step1000 (EleutherAI/pythia-70m-deduped @ step1000, commit {commit(1000)[:12]}) and "
        f"step8000 (EleutherAI/pythia-70m-deduped @ step8000, commit {commit(8000)[:12]}) "
        f"have identical weights (weights_sha256 {same[:12]})."
    )
    assert "models.step8000.revision" in fix
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step1000" in fix
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step8000" in fix
    assert "some Pythia branches serve the weights of another step" in fix
    assert "remove step8000 from model_roles" in fix
    assert "step0" not in problem  # the role with its own weights is not blamed


def test_every_clash_is_reported_local_directories_too():
    manifests = {
        "a": {"source": "local", "checkpoint": "/models/a", "weights_sha256": "1" * 64},
        "b": {"source": "local", "checkpoint": "/models/b", "weights_sha256": "1" * 64},
        "c": hub_manifest(0, "2" * 64),
        "d": hub_manifest(512, "2" * 64),
        "e": hub_manifest(1000, "2" * 64),
    }
    with pytest.raises(ReplicationError) as info:
        check_distinct_weights(manifests)
    problem = info.value.problem
    assert (
        "a (/models/a) and b (/models/b) have identical weights (weights_sha256 1111111" in problem
    )
    assert f"c (EleutherAI/pythia-70m-deduped @ step0, commit {commit(0)[:12]}) and d (" in problem
    assert (
        f"and e (EleutherAI/pythia-70m-deduped @ step1000, commit {commit(1000)[:12]})" in problem
    )
    assert "remove b, d, e from model_roles" in info.value.fix
