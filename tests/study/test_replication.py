"""Roles that cannot be compared pairwise are refused with the datasets that differ."""

from __future__ import annotations

import pytest

from avalanche_kedro.study.replication import ReplicationError, check_comparable_roles


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
