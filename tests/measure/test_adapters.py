"""Architecture-adapter tests (SPEC §2): where u is read, per family, and which modules hold it.

Every case is a tiny random-init model of the *real* transformers class (see
:mod:`tests.measure.model_cases`) — never a mock — so a transformers upgrade that moves a
module or changes a block's arithmetic fails here. Where the gain acts is tested in
``test_gain.py``, the validate step in ``test_forward.py``.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from avalanche_kedro.core.errors import (  # noqa: E402
    InstrumentationError,
    UnsupportedArchitectureError,
)
from avalanche_kedro.measure.adapters import (  # noqa: E402
    ADAPTERS,
    SUPPORTED_MODEL_TYPES,
    adapter_for,
    instrument,
)
from avalanche_kedro.measure.gain import layer_gains  # noqa: E402

from .model_cases import (  # noqa: E402
    CASES,
    D_FF,
    EXTRA_TYPES,
    HIDDEN,
    REQUIRED_TYPES,
    G,
    attn_contribution,
    blocks_of,
    input_ids,
    loaded_model,
    mlp_contribution,
    mlp_entry,
    model_type_of,
    recompute_u,
    tiny_model,
    total_hooks,
    u_projection,
)

# --------------------------------------------------------------------------------------------
# Registry


def test_every_case_builds_the_real_class_and_is_supported():
    assert set(REQUIRED_TYPES + EXTRA_TYPES) <= set(SUPPORTED_MODEL_TYPES)
    assert len(SUPPORTED_MODEL_TYPES) == len(set(SUPPORTED_MODEL_TYPES)), "type in two adapters"
    for case in CASES:
        model = tiny_model(case)
        assert model.config.model_type == model_type_of(case)
        assert type(model).__module__.startswith("transformers.models."), type(model)


@pytest.mark.parametrize("case", CASES)
def test_adapter_paths_resolve_to_the_expected_modules(case):
    model_type = model_type_of(case)
    model = tiny_model(case)
    adapter = adapter_for(model_type)
    blocks = blocks_of(model, model_type)
    assert adapter.n_layers(model) == len(blocks) == 4
    for ours, theirs in zip(adapter.layers(model), blocks, strict=True):
        assert ours is theirs
        assert theirs.get_submodule(adapter.u_module) is u_projection(theirs, model_type)
        assert theirs.get_submodule(adapter.mlp_module) is mlp_entry(theirs, model_type)
        assert theirs.get_submodule(adapter.mlp_gain_module) is mlp_contribution(theirs, model_type)
        assert theirs.get_submodule(adapter.attn_gain_module) is attn_contribution(
            theirs, model_type
        )
    assert adapter.d_ff(model) == D_FF


# --------------------------------------------------------------------------------------------
# u is read where the MLP's output projection reads it


@pytest.mark.parametrize("case", CASES)
def test_hooked_u_equals_independent_recomputation(case):
    model_type = model_type_of(case)
    model = tiny_model(case)
    adapter = adapter_for(model_type)
    blocks = blocks_of(model, model_type)
    ids = input_ids(1)
    hooked_u, hooked_x, own_u, own_x = {}, {}, {}, {}
    own = [
        u_projection(b, model_type).register_forward_pre_hook(
            lambda _m, a, _i=i: own_u.__setitem__(_i, a[0].detach().clone())
        )
        for i, b in enumerate(blocks)
    ] + [
        mlp_entry(b, model_type).register_forward_pre_hook(
            lambda _m, a, _i=i: own_x.__setitem__(_i, a[0].detach().clone())
        )
        for i, b in enumerate(blocks)
    ]
    try:
        with (
            torch.inference_mode(),
            instrument(
                model,
                adapter,
                on_u=lambda i, u: hooked_u.__setitem__(i, u.detach().clone()),
                on_mlp_input=lambda i, x: hooked_x.__setitem__(i, x.detach().clone()),
            ),
        ):
            model(input_ids=ids, use_cache=False)
            assert sorted(hooked_u) == sorted(hooked_x) == list(range(len(blocks)))
            for i, block in enumerate(blocks):
                u, x = hooked_u[i], hooked_x[i]
                assert u.dtype == torch.float32
                assert u.shape[-1] == adapter.d_ff(model) == D_FF
                assert x.shape[-1] == HIDDEN
                # OPT flattens tokens before fc1: u is [B*T, d_ff] there (same row-major
                # order, which is all the observers rely on); elsewhere [B, T, d_ff].
                lead = (ids.numel(),) if model_type == "opt" else tuple(ids.shape)
                assert u.shape == (*lead, D_FF) and x.shape == (*lead, HIDDEN)
                assert torch.equal(u, own_u[i]) and torch.equal(x, own_x[i])
                expected = recompute_u(block, model_type, x)
                torch.testing.assert_close(u, expected, rtol=0, atol=1e-5)
                assert u.abs().max() > 1e-3  # not a trivially zero tensor
    finally:
        for handle in own:
            handle.remove()


# --------------------------------------------------------------------------------------------
# Unsupported architectures and adapters that do not match the model


@pytest.mark.parametrize("model_type", ["bert", "mamba", "t5", ""])
def test_unknown_architecture_is_a_clear_error(model_type):
    with pytest.raises(UnsupportedArchitectureError) as info:
        adapter_for(model_type)
    message = str(info.value)
    assert f"'{model_type}'" in message
    for supported in REQUIRED_TYPES + EXTRA_TYPES:
        assert supported in message
    assert "ArchitectureAdapter" in message and "adapters.py" in message
    assert "How to fix" in message


def test_every_adapter_is_covered_here():
    covered = {model_type_of(c) for c in CASES}
    for adapter in ADAPTERS:
        assert set(adapter.model_types) <= covered, adapter.family


def test_u_module_that_is_not_a_projection_is_an_instrumentation_error():
    model = tiny_model("llama")
    wrong = dataclasses.replace(adapter_for("llama"), u_module="mlp.act_fn")
    with pytest.raises(InstrumentationError, match="mlp.act_fn"):
        loaded_model("llama", model, adapter=wrong)


def test_module_paths_missing_from_the_model_are_an_instrumentation_error():
    """Module paths that do not exist in the model (e.g. after a transformers upgrade moved a
    module, or the wrong family's adapter) are an InstrumentationError naming the path, not a
    bare AttributeError, and no hook is left behind."""
    model = tiny_model("llama")
    before = total_hooks(model)
    post_norm_adapter = adapter_for("gemma2")
    with pytest.raises(InstrumentationError, match="post_feedforward_layernorm"):
        with instrument(model, post_norm_adapter, gains=layer_gains("MLP_GLOBAL", G, 4)):
            pass
    assert total_hooks(model) == before
    with pytest.raises(InstrumentationError, match="does_not_exist"):
        dataclasses.replace(adapter_for("llama"), layers_path="model.does_not_exist").layers(model)
    with pytest.raises(InstrumentationError, match="transformer.h"):
        loaded_model("llama", model, adapter=adapter_for("gpt2"))
