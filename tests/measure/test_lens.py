"""The logit lens on tiny real models of every supported family.

Expectations are computed independently: the residuals from transformers' own
``output_hidden_states`` (block ``l``'s output is ``hidden_states[l + 1]`` below the last
block), the final norm and head called as the model's own modules, and the statistics from a
dense float64 log-softmax over the whole vocabulary.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from avalanche_kedro.core.errors import InstrumentationError
from avalanche_kedro.measure import lens
from avalanche_kedro.measure.adapters import adapter_for
from avalanche_kedro.measure.gain import MLP_GLOBAL, layer_gains
from tests.measure.model_cases import CASES, VOCAB, input_ids, logits, model_type_of, tiny_model

IDS = input_ids(3, (3, 9)).numpy()


def _final_modules(model, model_type: str):
    """(final norm or None, projection or None) written out per family, not from the adapter."""
    if model_type == "gpt_neox":
        return model.gpt_neox.final_layer_norm, None
    if model_type == "gpt2":
        return model.transformer.ln_f, None
    if model_type == "opt":
        decoder = model.model.decoder
        return decoder.final_layer_norm, decoder.project_out
    return model.model.norm, None


def _reference(model, case: str, ids: np.ndarray, gains=None):
    """Dense float64 lens log-probabilities [L, N, T, V] from output_hidden_states."""
    model_type = model_type_of(case)
    norm, projection = _final_modules(model, model_type)
    adapter = adapter_for(model.config.model_type)
    with torch.inference_mode():
        from avalanche_kedro.measure.adapters import instrument

        with instrument(model, adapter, gains=gains):
            output = model(
                input_ids=torch.as_tensor(ids), use_cache=False, output_hidden_states=True
            )
        n_layers = len(output.hidden_states) - 1
        rows = []
        for layer in range(n_layers - 1):
            h = output.hidden_states[layer + 1]
            if norm is not None:
                h = norm(h)
            if projection is not None:
                h = projection(h)
            z = model.get_output_embeddings()(h)
            cap = getattr(model.config, "final_logit_softcapping", None)
            if cap:
                z = torch.tanh(z / cap) * cap
            scaling = getattr(model.config, "logits_scaling", None)
            if scaling:
                z = z / scaling
            rows.append(z.double())
        rows.append(output.logits.double())  # the last layer's lens is the model itself
    return torch.log_softmax(torch.stack(rows), -1)


@pytest.mark.parametrize("case", CASES)
def test_lens_matches_a_dense_float64_reference_in_every_family(case):
    model = tiny_model(case)
    result = lens.layer_predictions(model, IDS, batch_size=2)
    log_p = _reference(model, case, IDS)  # [L, N, T, V]
    to_host = lambda t: t.permute(1, 0, 2).numpy()  # noqa: E731
    entropy = -(log_p.exp() * log_p).sum(-1)
    kl = (log_p[-1:].exp() * (log_p[-1:] - log_p)).sum(-1)
    np.testing.assert_allclose(result.entropy, to_host(entropy), atol=2e-6)
    np.testing.assert_allclose(result.kl_to_final, to_host(kl), atol=2e-6)
    nxt = torch.as_tensor(IDS[:, 1:])[None, ..., None].expand(log_p.shape[0], -1, -1, 1)
    p_next = log_p[:, :, :-1].gather(-1, nxt)[..., 0].exp()
    np.testing.assert_allclose(result.p_next[:, :, :-1], to_host(p_next), atol=1e-6)
    assert np.isnan(result.p_next[:, :, -1]).all() and (result.rank_next[:, :, -1] == -1).all()
    z_next = log_p[:, :, :-1].gather(-1, nxt)
    rank = (log_p[:, :, :-1] > z_next).sum(-1) + 1
    np.testing.assert_array_equal(result.rank_next[:, :, :-1], to_host(rank))
    np.testing.assert_array_equal(result.top1_id, to_host(log_p.argmax(-1)))
    assert result.agrees_final[:, -1].all()
    assert np.allclose(result.kl_to_final[:, -1], 0.0)


@pytest.mark.parametrize("case", ["llama", "gemma2", "opt"])
def test_vocabulary_streamed_in_chunks_gives_the_same_lens(case):
    model = tiny_model(case)
    whole = lens.layer_predictions(model, IDS, batch_size=3)
    # 40 logits at once: 16 tokens x 2-entry vocabulary chunks over 4 layers would not fit,
    # so both tokens and vocabulary are chunked (and ranks are counted in a second pass)
    assert lens._chunk_sizes(4, 27, 64, 40) == (16, 1)
    chunked = lens.layer_predictions(model, IDS, batch_size=3, max_logit_elements=40)
    for name in ("entropy", "kl_to_final", "p_next"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), atol=2e-6)
    np.testing.assert_array_equal(chunked.rank_next, whole.rank_next)
    np.testing.assert_array_equal(chunked.top1_id, whole.top1_id)


def test_gains_move_the_lens_through_the_gain_hooks():
    model = tiny_model("llama")
    gains = layer_gains(MLP_GLOBAL, 1.3, 4)
    scaled = lens.layer_predictions(model, IDS, gains=gains)
    log_p = _reference(model, "llama", IDS, gains=gains)
    entropy = -(log_p.exp() * log_p).sum(-1)
    np.testing.assert_allclose(scaled.entropy, entropy.permute(1, 0, 2).numpy(), atol=2e-6)
    plain = lens.layer_predictions(model, IDS)
    assert not np.allclose(plain.entropy, scaled.entropy)


def test_top_k_of_decode_layers_is_the_dense_top_k():
    model = tiny_model("qwen2")
    decoder = lens.LensDecoder(model)
    hidden = decoder.hidden(torch.randn(4, 5, 32, generator=torch.Generator().manual_seed(0)))
    nxt = torch.zeros(5, dtype=torch.int64)
    for budget in (1 << 20, 30):
        stats = lens.decode_layers(decoder, hidden, nxt, budget, top_k=3)
        log_p = torch.log_softmax(decoder.logits(hidden).double(), -1)
        top = log_p.topk(3, dim=-1)
        np.testing.assert_array_equal(stats.topk_id.numpy(), top.indices.numpy())
        np.testing.assert_allclose(stats.topk_prob.numpy(), top.values.exp().numpy(), atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_self_check_passes_for_every_family(case):
    report = lens.lens_self_check(tiny_model(case), IDS)
    assert report["lens_self_check_max_kl"] <= lens.SELF_CHECK_KL_TOLERANCE
    assert report["lens_self_check_tokens"] == IDS.size


def test_self_check_stops_a_lens_that_decodes_with_the_wrong_norm():
    model = copy.deepcopy(tiny_model("llama"))
    # random-init norms are all ones (every RMSNorm the same function): give the final norm
    # its own weights, as training does, so a lens using another norm decodes differently
    model.model.norm.weight.data = torch.linspace(0.2, 3.0, model.config.hidden_size)
    lens.lens_self_check(model, IDS)
    base = adapter_for("llama")
    wrong = type(base)(**{**base.__dict__, "final_norm_path": "model.layers.0.input_layernorm"})
    with pytest.raises(InstrumentationError, match="does not reproduce the logits") as error:
        lens.lens_self_check(model, IDS, adapter=wrong)
    assert "final_norm_path" in str(error.value)


def test_soft_cap_is_part_of_the_lens():
    model = copy.deepcopy(tiny_model("gemma2"))
    model.config.final_logit_softcapping = 0.05  # strong capping: the logits depend on it
    report = lens.lens_self_check(model, IDS)  # the lens applies the model's own cap
    assert report["lens_self_check_max_kl"] <= lens.SELF_CHECK_KL_TOLERANCE
    decoder = lens.LensDecoder(model)
    captured = {}
    with torch.inference_mode():
        from avalanche_kedro.measure.adapters import instrument

        with instrument(model, adapter_for("gemma2"), on_residual=captured.__setitem__):
            own = torch.log_softmax(logits(model, torch.as_tensor(IDS)).double(), -1)
        hidden = decoder.hidden(captured[3])
        uncapped = hidden @ decoder.weight.float().T  # the same lens without the cap
    kl = (own.exp() * (own - torch.log_softmax(uncapped.double(), -1))).sum(-1)
    assert float(kl.max()) > 100 * lens.SELF_CHECK_KL_TOLERANCE


def test_half_precision_model_uses_the_half_tolerance():
    model = copy.deepcopy(tiny_model("llama")).to(torch.bfloat16)
    report = lens.lens_self_check(model, IDS)
    assert report["lens_self_check_dtype"] == "bfloat16"
    assert report["lens_self_check_tolerance"] == lens.SELF_CHECK_KL_TOLERANCE_HALF
    assert 0.0 < report["lens_self_check_max_kl"] < 1e-3
    result = lens.layer_predictions(model, IDS)  # fp32 decoding of a bf16 model
    assert result.entropy.dtype == np.float32 and np.isfinite(result.entropy).all()


def test_tied_embeddings_decode_with_the_embedding_matrix():
    model = tiny_model("gpt2")  # gpt2 ties lm_head to wte
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert lens.LensDecoder(model).weight is model.get_input_embeddings().weight
    assert lens.lens_self_check(model, IDS)["lens_vocab_size"] == VOCAB


def test_missing_final_norm_names_the_adapter_entry():
    model = tiny_model("llama")
    base = adapter_for("llama")
    for changes, message in (
        ({"final_norm_path": ""}, "has no final_norm_path"),
        ({"final_norm_path": "model.final_norm"}, "has no final norm at 'model.final_norm'"),
        ({"output_projection_path": "model.project_out"}, "no output projection"),
    ):
        adapter = type(base)(**{**base.__dict__, **changes})
        with pytest.raises(InstrumentationError, match=message) as error:
            lens.LensDecoder(model, adapter)
        assert "adapters.py" in str(error.value)


def test_no_unembedding_is_a_clear_error():
    model = copy.deepcopy(tiny_model("llama"))
    model.lm_head = None
    model.config.tie_word_embeddings = False
    with pytest.raises(InstrumentationError, match="no unembedding matrix"):
        lens.LensDecoder(model)


def test_bad_input_ids_shape():
    with pytest.raises(ValueError, match=r"\[windows, tokens\]"):
        lens.layer_predictions(tiny_model("llama"), np.arange(5))
