"""The training loop: schedule, data order, determinism and a clear stop on divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.core.errors import ConfigurationError, CorpusError
from avalanche_kedro.core.seeds import seed_of
from avalanche_kedro.measure.training import (
    TRAINING_DEFAULTS,
    TrainingError,
    batch_order,
    checkpoint_steps,
    learning_rate_at,
    train_causal_lm,
    training_settings,
)


def test_checkpoint_steps_by_hand():
    # geomspace(1, 250, 5) = 1, 3.98, 15.8, 62.9, 250
    assert checkpoint_steps(250, 6) == [0, 1, 4, 16, 63, 250]
    # geomspace(1, 4, 5) = 1, 1.41, 2, 2.83, 4: rounded duplicates merge
    assert checkpoint_steps(4, 6) == [0, 1, 2, 3, 4]
    assert checkpoint_steps(1, 2) == [0, 1]
    with pytest.raises(ValueError):
        checkpoint_steps(0, 3)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    settings = {**TRAINING_DEFAULTS, "steps": 110, "warmup_steps": 10, "learning_rate": 1e-3}
    assert learning_rate_at(0, settings) == pytest.approx(1e-4)
    assert learning_rate_at(9, settings) == pytest.approx(1e-3)
    assert learning_rate_at(10, settings) == pytest.approx(1e-3)  # cosine starts at the peak
    # half-way through the decay: floor + (1 - floor) / 2 of the peak
    assert learning_rate_at(60, settings) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert learning_rate_at(110, settings) == pytest.approx(1e-4)  # the floor (ratio 0.1)


def test_batch_order_is_seeded_epochs_of_permutations():
    order = batch_order(n_windows=5, steps=4, batch_size=2, seed_name="unit")
    first = np.random.default_rng(seed_of("train_order", "unit", 0)).permutation(5)
    second = np.random.default_rng(seed_of("train_order", "unit", 1)).permutation(5)
    np.testing.assert_array_equal(order.ravel(), np.concatenate([first, second])[:8])
    assert sorted(order.ravel()[:5]) == [0, 1, 2, 3, 4]  # every window once per epoch
    np.testing.assert_array_equal(order, batch_order(5, 4, 2, "unit"))
    assert not np.array_equal(order, batch_order(5, 4, 2, "other"))


def test_text_shorter_than_one_batch_is_a_clear_error():
    with pytest.raises(CorpusError, match="fewer than one batch"):
        batch_order(n_windows=3, steps=1, batch_size=4, seed_name="unit")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "training.steps must be a positive integer"),
        ({"batch_size": 2.5}, "training.batch_size must be a positive integer"),
        ({"checkpoints": 1}, "at least 2"),
        ({"learning_rate": float("nan")}, "training.learning_rate must be a positive finite"),
        ({"learning_rate": -1.0}, "training.learning_rate must be a positive finite"),
        ({"lr": 0.1}, r"Unknown training settings \['lr'\]"),
    ],
)
def test_bad_training_settings_name_the_setting(overrides, message):
    with pytest.raises(ConfigurationError, match=message):
        training_settings(overrides)


def _tiny_model(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def _windows(n: int = 12, seq_len: int = 8) -> np.ndarray:
    # a learnable pattern: token i is followed by i + 1 (mod 64)
    starts = np.arange(n)[:, None] * 5
    return (starts + np.arange(seq_len)[None, :]) % 64


SETTINGS = training_settings(
    {"steps": 12, "batch_size": 4, "seq_len": 8, "warmup_steps": 2, "checkpoints": 4}
)


def test_training_learns_saves_at_the_checkpoint_steps_and_is_byte_identical():
    saved: dict[int, dict[str, torch.Tensor]] = {}

    def save(step, model):
        saved[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model = _tiny_model()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    log = train_causal_lm(model, _windows(), SETTINGS, "unit", save)
    assert log.saved_steps == checkpoint_steps(12, 4) == sorted(saved)
    assert all(torch.equal(saved[0][k], initial[k]) for k in initial)  # step 0 = the init
    assert log.tokens == 12 * 4 * 8 and len(log.losses) == 12
    assert np.mean(log.losses[-3:]) < log.losses[0] - 0.2  # it learned the pattern
    assert not model.training

    again = _tiny_model()
    train_causal_lm(again, _windows(), SETTINGS, "unit", lambda step, model: None)
    for key, value in model.state_dict().items():
        assert value.numpy().tobytes() == again.state_dict()[key].numpy().tobytes(), key


def test_a_non_finite_loss_stops_at_its_step_naming_the_learning_rate():
    saved = []
    settings = {**SETTINGS, "learning_rate": 1.0e12, "warmup_steps": 1, "grad_clip": 1.0e30}
    with pytest.raises(TrainingError, match=r"at step \d+ of 12 \(learning rate") as error:
        train_causal_lm(_tiny_model(), _windows(), settings, "unit", lambda s, m: saved.append(s))
    assert "Lower training.learning_rate" in str(error.value)
    step = int(str(error.value).split("at step ")[1].split(" ")[0])
    assert saved == [s for s in checkpoint_steps(12, 4) if s < step]  # nothing after it
