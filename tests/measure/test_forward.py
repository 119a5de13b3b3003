"""The SPEC §2 validate step and the hooks' lifetime around instrumented forward passes.

Run on tiny real models of every supported family (see :mod:`tests.measure.model_cases`):
``validate_instrumentation`` passes for every correct adapter and fails with a clear
:class:`InstrumentationError` for adapters that read u in the wrong place, and no hook outlives
its ``with`` block.
"""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

from avalanche_kedro.core.errors import InstrumentationError  # noqa: E402
from avalanche_kedro.measure.adapters import adapter_for, instrument  # noqa: E402
from avalanche_kedro.measure.forward import validate_instrumentation  # noqa: E402
from avalanche_kedro.measure.gain import layer_gains  # noqa: E402

from .model_cases import (  # noqa: E402
    CASES,
    D_FF,
    G,
    input_ids,
    loaded_model,
    tiny_model,
    total_hooks,
)

# --------------------------------------------------------------------------------------------
# Hooks are always removed


def test_hooks_are_removed_when_the_block_raises():
    model = tiny_model("llama")
    adapter = adapter_for("llama")
    before = total_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with instrument(
            model,
            adapter,
            gains=layer_gains("MLP_GLOBAL", G, 4),
            on_u=lambda *_: None,
            on_mlp_input=lambda *_: None,
        ):
            assert total_hooks(model) > before
            raise RuntimeError("boom")
    assert total_hooks(model) == before


# --------------------------------------------------------------------------------------------
# The validate step


@pytest.mark.parametrize("case", CASES)
def test_validate_instrumentation_passes(case):
    model = tiny_model(case)
    loaded = loaded_model(case, model)
    assert loaded.n_layers == 4 and loaded.d_ff == D_FF
    ids = input_ids(7, shape=(3, 10)).numpy()
    report = validate_instrumentation(loaded, ids, g_test=0.9)
    assert report["u_matches_recomputed"] is True
    assert report["logits_identical_at_g1"] is True
    assert report["logits_change_at_g_test"] is True
    assert len(report["u_max_abs_error_per_layer"]) == 4
    assert max(report["u_max_abs_error_per_layer"]) <= 1e-5
    assert (report["n_windows"], report["seq_len"]) == (3, 10)


# --------------------------------------------------------------------------------------------
# Adapters that do not match the model fail the validate step


@pytest.mark.parametrize(
    "change",
    [
        # A recompute that forgets the up projection.
        {"recompute_u": lambda block, x: block.mlp.act_fn(block.mlp.gate_proj(x))},
        # The MLP input read before the pre-MLP norm (the raw residual stream).
        {"mlp_module": "post_attention_layernorm"},
        # A recompute with gate and up swapped: act(up(x)) * gate(x).
        {
            "recompute_u": lambda block, x: (
                block.mlp.act_fn(block.mlp.up_proj(x)) * block.mlp.gate_proj(x)
            )
        },
    ],
    ids=["wrong-recompute", "mlp-input-before-norm", "gate-and-up-swapped"],
)
def test_mismatched_adapter_fails_validation(change):
    model = tiny_model("llama")
    wrong = dataclasses.replace(adapter_for("llama"), **change)
    loaded = loaded_model("llama", model, adapter=wrong)
    with pytest.raises(InstrumentationError) as info:
        validate_instrumentation(loaded, input_ids(8).numpy())
    assert "recomputed" in str(info.value)
    assert "How to fix" in str(info.value)
    assert total_hooks(model) == 0


def test_u_of_the_wrong_width_is_an_instrumentation_error():
    model = tiny_model("llama")
    # up_proj is a Linear, but its input is x (width 32), not u (width 64).
    wrong = dataclasses.replace(adapter_for("llama"), u_module="mlp.up_proj")
    loaded = loaded_model("llama", model, adapter=wrong)
    with pytest.raises(InstrumentationError):
        validate_instrumentation(loaded, input_ids(8).numpy())
