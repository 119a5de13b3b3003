"""Resuming a forward pass at a block from a cached g = 1 residual (issue 19 item 1), on tiny
real models of every supported family."""

from __future__ import annotations

import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure.gain import (
    ATTN_GLOBAL,
    INTERVENTIONS,
    MLP_BAND_EARLY,
    MLP_BAND_LATE,
    MLP_BAND_MID,
    MLP_GLOBAL,
    LayerGains,
    layer_gains,
)
from avalanche_kedro.measure.resume import (
    ResidualKey,
    capture_block_inputs,
    check_resume_exact,
    checkpoint_identity,
    first_changed_block,
    resume_at,
    reusable_blocks,
)

from .model_cases import CASES, input_ids, loaded_model, tiny_model

N_LAYERS = 6  # band edges c1 = 2, c2 = 4


def test_first_changed_block_by_hand():
    assert first_changed_block(LayerGains(mlp=(1.0, 1.0, 0.5), attn=(1.0, 1.0, 1.0))) == 2
    assert first_changed_block(LayerGains(mlp=(1.0, 1.0, 0.5), attn=(1.0, 2.0, 1.0))) == 1
    assert first_changed_block(LayerGains(mlp=(1.0,) * 3, attn=(1.0,) * 3)) == 3
    expected = {
        MLP_GLOBAL: 0,
        ATTN_GLOBAL: 0,
        MLP_BAND_EARLY: 0,
        MLP_BAND_MID: 2,
        MLP_BAND_LATE: 4,
    }
    for intervention in INTERVENTIONS:
        assert reusable_blocks(intervention, 1.3, N_LAYERS) == expected[intervention]
        assert reusable_blocks(intervention, 1.0, N_LAYERS) == N_LAYERS


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("intervention", [MLP_BAND_MID, MLP_BAND_LATE])
def test_a_resumed_pass_equals_the_full_pass_bit_for_bit(case, intervention):
    loaded = loaded_model(case, tiny_model(case, N_LAYERS))
    gains = layer_gains(intervention, 1.3, N_LAYERS)
    check = check_resume_exact(loaded, input_ids(0, (2, 12)), gains, first_changed_block(gains))
    assert check == {"exact": True, "tuple_output": False, "reason": ""}


def _counting_calls(loaded):
    calls: list[int] = []
    handles = [
        block.register_forward_pre_hook(lambda _m, _a, _i=i: calls.append(_i))
        for i, block in enumerate(loaded.adapter.layers(loaded.model))
    ]
    return calls, handles


def test_capture_stops_at_the_deepest_block_and_resume_runs_only_the_rest():
    loaded = loaded_model("llama", tiny_model("llama", N_LAYERS))
    batch = input_ids(1, (2, 10))
    calls, handles = _counting_calls(loaded)
    try:
        cached = capture_block_inputs(loaded, batch, [2, 4], "analysis", 0)
        assert calls == [0, 1, 2, 3, 4]  # block 4's input kept, block 4 itself never run
        assert sorted(cached) == [2, 4] and cached[4].hidden.shape == (2, 10, 32)
        calls.clear()
        resume_at(loaded, batch, cached[4], cached[4].key, tuple_output=False)
        assert calls == [4, 5]
    finally:
        for handle in handles:
            handle.remove()
    # the blocks are back in place after the pass
    blocks = loaded.adapter.layers(loaded.model)
    assert all(type(b).__name__ == "LlamaDecoderLayer" for b in blocks)


def test_a_residual_of_another_checkpoint_gain_or_window_is_refused():
    loaded = loaded_model("llama", tiny_model("llama", N_LAYERS))
    batch = input_ids(2, (2, 10))
    cached = capture_block_inputs(loaded, batch, [2], "analysis", 0)[2]
    identity = checkpoint_identity(loaded)
    assert cached.key == ResidualKey(identity, "analysis", 0, 2, 2)
    wrong_keys = [
        ResidualKey("content_sha256:another", "analysis", 0, 2, 2),
        ResidualKey(identity, "analysis", 0, 2, 2, gain_setting="MLP_GLOBAL g=0.8"),
        ResidualKey(identity, "analysis", 2, 4, 2),
        ResidualKey(identity, "calibration", 0, 2, 2),
        ResidualKey(identity, "analysis", 0, 2, 4),
    ]
    for wrong in wrong_keys:
        with pytest.raises(ConfigurationError, match="cached residual stream"):
            resume_at(loaded, batch, cached, wrong, tuple_output=False)
    assert all(type(b).__name__ == "LlamaDecoderLayer" for b in loaded.adapter.layers(loaded.model))


def test_blocks_are_restored_when_the_resumed_pass_fails():
    loaded = loaded_model("llama", tiny_model("llama", N_LAYERS))
    batch = input_ids(3, (2, 10))
    cached = capture_block_inputs(loaded, batch, [4], "analysis", 0)[4]
    broken = type(cached)(cached.key, cached.hidden[:, :5])  # wrong length: attention fails
    with pytest.raises(RuntimeError):
        resume_at(loaded, batch, broken, cached.key, tuple_output=False)
    assert all(type(b).__name__ == "LlamaDecoderLayer" for b in loaded.adapter.layers(loaded.model))
    assert sum(len(b._forward_pre_hooks) for b in loaded.adapter.layers(loaded.model)) == 0


def test_capture_rejects_block_zero_and_blocks_past_the_model():
    loaded = loaded_model("llama", tiny_model("llama", N_LAYERS))
    for blocks in ([0], [N_LAYERS], []):
        with pytest.raises(ValueError, match="blocks to capture"):
            capture_block_inputs(loaded, input_ids(0, (1, 4)), blocks, "analysis", 0)


def test_a_manifest_hash_names_the_checkpoint():
    loaded = loaded_model("llama", tiny_model("llama", N_LAYERS))
    loaded.manifest["content_sha256"] = "abc"
    try:
        assert checkpoint_identity(loaded) == "content_sha256:abc"
    finally:
        del loaded.manifest["content_sha256"]
    assert checkpoint_identity(loaded) == "model_id:tiny-llama"
