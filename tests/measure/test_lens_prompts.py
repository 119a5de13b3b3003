"""The prompt view of the logit lens on the small embedded-recipe checkpoint (real tokenizer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure import lens, lens_prompts


def _dense_lens(model, ids: list[int]) -> torch.Tensor:
    """[L, V] float64 lens log-probabilities at the last position, from hidden_states."""
    with torch.inference_mode():
        output = model.model(
            input_ids=torch.tensor([ids]), use_cache=False, output_hidden_states=True
        )
        hidden = list(output.hidden_states[1:-1]) + [output.last_hidden_state]
        rows = []
        for layer, h in enumerate(hidden):
            h = h if layer == len(hidden) - 1 else model.model.norm(h)  # the last one is normed
            rows.append(model.lm_head(h)[0, -1].double())
    return torch.log_softmax(torch.stack(rows), -1)


def test_prompt_view_lists_the_dense_top_k_with_rest_mass_and_collapse(small_model):
    prompt = "The return statement leaves the current function"
    table = lens_prompts.prompt_predictions(small_model, [prompt, "Return the"], top_k=3)
    assert list(table.columns) == lens_prompts.PROMPT_COLUMNS
    n_layers = small_model.n_layers
    assert len(table) == 2 * n_layers * 3
    first = table[table["prompt_id"] == 0]
    ids = small_model.tokenizer(prompt)["input_ids"]
    assert (first["n_prompt_tokens"] == len(ids)).all() and (first["truncated_tokens"] == 0).all()
    log_p = _dense_lens(small_model.model, ids)
    top = log_p.topk(3, dim=-1)
    for layer in range(n_layers):
        rows = first[first["layer"] == layer].sort_values("k")
        np.testing.assert_array_equal(rows["token_id"], top.indices[layer].numpy())
        np.testing.assert_allclose(rows["prob"], top.values[layer].exp().numpy(), atol=1e-6)
        rest = 1.0 - top.values[layer].exp().sum().item()
        np.testing.assert_allclose(rows["rest_mass"], rest, atol=1e-6)
        entropy = -(log_p[layer].exp() * log_p[layer]).sum().item()
        np.testing.assert_allclose(rows["entropy_nats"], entropy, atol=2e-6)
        assert rows["token"].iloc[0] == small_model.tokenizer.decode([int(top.indices[layer, 0])])
    final_top1 = int(log_p[-1].argmax())
    assert set(first.loc[first["is_final_top1"], "token_id"]) == {final_top1}
    agrees = (log_p.argmax(-1) == final_top1).numpy()
    expected = next(l for l in range(n_layers) if agrees[l:].all())  # noqa: E741
    assert (first["collapse_layer"] == expected).all()


def test_prompt_longer_than_the_context_is_left_truncated_and_counted(small_model):
    limit = lens_prompts.context_length(small_model.model)
    words = " ".join(["value"] * (limit + 40))
    table = lens_prompts.prompt_predictions(small_model, [words], top_k=1)
    n_ids = len(small_model.tokenizer(words)["input_ids"])
    assert n_ids > limit
    assert (table["n_prompt_tokens"] == limit).all()
    assert (table["truncated_tokens"] == n_ids - limit).all()


def test_empty_prompt_list_gives_an_empty_view(small_model):
    table = lens_prompts.prompt_predictions(small_model, [], top_k=5)
    assert table.empty and list(table.columns) == lens_prompts.PROMPT_COLUMNS


@pytest.mark.parametrize(
    ("prompts", "message"),
    [("The capital", "must be a list of strings"), (["ok", "  "], r"entries \[1\] are empty")],
)
def test_bad_prompt_lists_are_configuration_errors(prompts, message):
    with pytest.raises(ConfigurationError, match=message):
        lens_prompts.check_prompts(prompts)


def test_top_k_must_be_positive(small_model):
    with pytest.raises(ConfigurationError, match="lens.top_k"):
        lens_prompts.prompt_predictions(small_model, ["Return"], top_k=0)


def test_small_vocabulary_budget_streams_the_prompt_view(small_model):
    whole = lens_prompts.prompt_predictions(small_model, ["Return the"], top_k=4)
    streamed = lens_prompts.prompt_predictions(
        small_model, ["Return the"], top_k=4, max_logit_elements=100
    )
    np.testing.assert_array_equal(whole["token_id"], streamed["token_id"])
    np.testing.assert_allclose(whole["prob"], streamed["prob"], atol=1e-6)
    assert lens.default_max_logit_elements(torch.device("cpu")) > 100


def test_prompt_view_is_identical_whatever_torch_thread_count(small_model):
    """A Dask worker with one thread must write the same bytes as the main process."""
    before = torch.get_num_threads()
    tables = []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        try:
            tables.append(
                lens_prompts.prompt_predictions(small_model, ["Return the absolute"], top_k=3)
            )
            assert torch.get_num_threads() == threads  # restored after the view
        finally:
            torch.set_num_threads(before)
    assert tables[0].equals(tables[1])
