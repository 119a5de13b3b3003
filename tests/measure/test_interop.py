"""Bring your own activations: TransformerLens, nnsight and an in-memory Hugging Face model give
the pipeline's thresholds and rasters bit for bit on the tiny Llama (docs/api.md, issue 15).

The pipeline side is the events pipeline's own code (``measure.sweep``: hooks on
``down_proj``'s input, moments, order-statistic thresholds, ``record_rasters``). Every model is
loaded with eager attention: TransformerLens' bridge switches the model it wraps to eager (so
its hooks can see attention patterns), and sdpa and eager attention differ by ~1e-8 in fp32,
which can move a value across a threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.measure import activations as api
from avalanche_kedro.measure import sweep
from avalanche_kedro.measure.checkpoints import load_model
from avalanche_kedro.measure.gain import MLP_GLOBAL
from avalanche_kedro.measure.rasters import RasterWriter
from avalanche_kedro.measure.sweep import GainSetting, tau_array
from avalanche_kedro.measure.thresholds import SPIKE_DEFS, rate_targets_table

transformer_bridge = pytest.importorskip(
    "transformer_lens.model_bridge", reason="pip install -e '.[test]' installs transformer-lens"
)
nnsight = pytest.importorskip("nnsight", reason="pip install -e '.[test]' installs nnsight")

RATES = (2e-3, 5e-3)
BATCH = 6
EAGER = {"device": "cpu", "dtype": "float32", "attn_implementation": "eager"}


@pytest.fixture(scope="module")
def windows(small_windows):
    return {"calibration": small_windows[:12], "analysis": small_windows[12:]}


@pytest.fixture(scope="module")
def pipeline(small_checkpoint, windows, tmp_path_factory):
    """Thresholds (threshold_fit, unit_moments) and rasters as the pipelines compute them."""
    loaded = load_model(small_checkpoint, EAGER)
    calibration, analysis = windows["calibration"], windows["analysis"]
    moments, _ = sweep.accumulate_moments(loaded, calibration, BATCH)
    standardizer = moments.standardizer("cpu")
    baseline, _ = sweep.count_baseline_exceedances(
        loaded, calibration, standardizer, SPIKE_DEFS, 2.5, BATCH
    )
    targets = rate_targets_table(baseline, SPIKE_DEFS, RATES)
    setting = GainSetting(MLP_GLOBAL, 1.0)
    fit, _ = sweep.fit_thresholds(
        loaded, calibration, standardizer, targets, [setting], SPIKE_DEFS, RATES, BATCH
    )
    taus = tau_array(fit, setting, SPIKE_DEFS, RATES, loaded.n_layers)
    writer = RasterWriter(
        tmp_path_factory.mktemp("interop") / "rasters",
        cond_ids=range(4),
        seq_ids=range(len(analysis)),
        n_layers=loaded.n_layers,
        seq_len=analysis.shape[1],
    )
    sweep.record_rasters(
        loaded, analysis, standardizer, taus, np.arange(4).reshape(2, 2), SPIKE_DEFS, setting,
        writer, BATCH,
    )  # fmt: skip
    rasters = writer.finalize()
    return {
        "thresholds": api.EventThresholds.from_run_tables(moments.to_frame(), fit),
        "rasters": np.asarray(rasters.A).reshape(2, 2, len(analysis), rasters.n_layers, -1),
        "n_layers": loaded.n_layers,
    }


def batches_of(ids: np.ndarray):
    for start in range(0, len(ids), BATCH):
        yield torch.as_tensor(ids[start : start + BATCH], dtype=torch.long)


def hugging_face_path(checkpoint):
    """(a) A Hugging Face model already in memory, captured with the project's hooks."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager").eval()
    return lambda ids: api.mlp_activations(model, ids, batch_size=BATCH)


def transformer_lens_path(checkpoint):
    """(b) A TransformerLens TransformerBridge: ``blocks.{l}.mlp.hook_post``."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    bridge = TransformerBridge.boot_transformers(
        checkpoint, hf_model=model, tokenizer=tokenizer, device="cpu"
    )

    def activations(ids):
        for batch in batches_of(ids):
            with torch.inference_mode():
                _, cache = bridge.run_with_cache(
                    batch, names_filter=lambda name: name.endswith("mlp.hook_post")
                )
            yield cache.stack_activation("post")  # [L, B, T, d_ff]

    return activations


def nnsight_path(checkpoint):
    """(c) nnsight: ``model.model.layers[l].mlp.down_proj.input``."""
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager").eval()
    # nnsight 0.8 deprecates LanguageModel for TransformersModel; the module tree is the same
    lm = TransformersModel(
        model, tokenizer=AutoTokenizer.from_pretrained(checkpoint), task="text-generation"
    )
    n_layers = model.config.num_hidden_layers

    def activations(ids):
        for batch in batches_of(ids):
            saved = []
            # nnsight runs the body of its own `with` block: keep it the only manager there
            with torch.inference_mode():
                with lm.trace(batch):
                    for layer in range(n_layers):
                        saved.append(lm.model.layers[layer].mlp.down_proj.input.save())
            yield [getattr(u, "value", u) for u in saved]

    return activations


PATHS = {
    "hugging_face": (hugging_face_path, 2),
    "transformer_lens": (transformer_lens_path, 0),
    "nnsight": (nnsight_path, 2),
}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_path_gives_the_pipelines_thresholds_and_rasters(
    name, small_checkpoint, windows, pipeline
):
    build, layer_axis = PATHS[name]
    capture = build(small_checkpoint["checkpoint"])
    # the pipeline's thresholds applied to this path's activations: the pipeline's rasters
    A = api.event_counts(
        capture(windows["analysis"]), pipeline["thresholds"], layer_axis=layer_axis
    )
    assert A.shape == pipeline["rasters"].shape
    assert A.sum() > 0
    assert np.array_equal(A, pipeline["rasters"])
    # thresholds fitted from this path's calibration activations: the pipeline's, exactly
    fitted = api.fit_thresholds(
        lambda: capture(windows["calibration"]), RATES, SPIKE_DEFS, layer_axis=layer_axis
    )
    assert np.array_equal(fitted.moments.mu, pipeline["thresholds"].moments.mu)
    assert np.array_equal(fitted.tau, pipeline["thresholds"].tau)
    one = api.events_from_activations(
        capture(windows["analysis"]),
        fitted,
        spike_def=SPIKE_DEFS[0],
        target_rate=RATES[1],
        layer_axis=layer_axis,
    )
    assert one.shape == (
        len(windows["analysis"]),
        pipeline["n_layers"],
        windows["analysis"].shape[1],
    )
    assert np.array_equal(one, pipeline["rasters"][0, 1])
