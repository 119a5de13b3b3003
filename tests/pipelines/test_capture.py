"""Capture pipeline through Kedro's SequentialRunner on the real datasets: model manifest,
windows and slice hashes, the validate step, unit moments and rate targets."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure.windows import slice_hash, slice_windows
from avalanche_kedro.pipelines.capture.nodes import _fits_context
from avalanche_kedro.study.params import WindowsParams

from .conftest import D_FF, N_LAYERS, SEQ_LEN, load


def test_model_manifest_identifies_the_checkpoint(small_run):
    catalog, root = small_run
    manifest = load(catalog, "model_manifest")
    assert manifest["source"] == "embedded"
    assert manifest["model_type"] == "llama"
    assert manifest["checkpoint"] == str(root / "models" / "small-llama")
    assert len(manifest["content_sha256"]) == 64
    assert len(manifest["tokenizer_sha256"]) == 64
    assert (root / "models" / "small-llama" / "model.safetensors").exists()


def test_windows_longer_than_the_models_context_stop_at_resolve_model(small_run):
    """The check behind the preflight for Hub models: the manifest's context (from the config
    read before any weights load) bounds windows.seq_len."""
    catalog, _ = small_run
    manifest = load(catalog, "model_manifest")
    context = manifest["context_length"]
    assert context == 64 and SEQ_LEN <= context
    sizes = {"n_calibration": 8, "n_raster": 8, "n_eval_b": 4}
    assert _fits_context(manifest, WindowsParams(seq_len=context, **sizes)) is manifest
    with pytest.raises(ConfigurationError) as info:
        _fits_context(manifest, WindowsParams(seq_len=context + 1, **sizes))
    assert f"windows.seq_len = {context + 1} exceeds the context of model role 'base'" in str(
        info.value
    )
    assert f"at most {context}" in info.value.fix


def test_windows_slices_are_disjoint_and_hashed(small_run):
    catalog, _ = small_run
    windows = load(catalog, "windows")
    manifest = load(catalog, "slice_manifest")
    counts = windows.groupby(["dataset_role", "slice"]).size().to_dict()
    assert counts == {("A", "analysis"): 8, ("A", "calibration"): 8, ("B", "eval_b"): 4}
    calibration = set(windows.query("slice == 'calibration'")["seq_id"])
    analysis = set(windows.query("slice == 'analysis'")["seq_id"])
    assert not calibration & analysis
    assert all(len(ids) == SEQ_LEN for ids in windows["input_ids"])
    for entry in manifest["slices"]:
        ids, seq_ids = slice_windows(windows, entry["slice"])
        assert list(seq_ids) == entry["chunk_indices"] == sorted(entry["chunk_indices"])
        assert slice_hash(entry["dataset_role"], seq_ids, ids) == entry["sha256"]


def test_validate_step_and_moments(small_run):
    catalog, _ = small_run
    report = load(catalog, "instrumentation_report")
    assert report["u_matches_recomputed"] and report["logits_identical_at_g1"]
    assert report["logits_change_at_g_test"]
    moments = load(catalog, "unit_moments")
    assert len(moments) == N_LAYERS * D_FF
    # every (layer, unit) saw every token of the 8 calibration windows exactly once
    assert set(moments["count"]) == {8 * SEQ_LEN}
    assert (moments["sigma"] > 0).all()
    summary = load(catalog, "calibration_summary")
    assert summary["tokens_forwarded"] == 8 * SEQ_LEN


def test_rate_targets_keep_the_layer_mean(small_run):
    catalog, _ = small_run
    targets = load(catalog, "rate_targets")
    means = targets.groupby(["spike_def_id", "target_rate"])["r_star"].mean()
    for (_, rate), mean in means.items():
        assert mean == pytest.approx(rate, rel=1e-12)
    baseline = load(catalog, "baseline_rates")
    for (spike_def, rate), part in targets.groupby(["spike_def_id", "target_rate"]):
        base = baseline[baseline["spike_def_id"] == spike_def].sort_values("layer")
        expected = base["r_base"].to_numpy() * rate / base["r_base"].mean()
        np.testing.assert_allclose(part.sort_values("layer")["r_star"], expected, rtol=1e-12)
