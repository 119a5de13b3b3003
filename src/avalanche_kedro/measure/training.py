"""Deterministic causal-LM training on the CPU: the embedded models learn something.

A plain PyTorch loop (AdamW, linear warm-up then cosine decay, gradient clipping) over
fixed-length windows of a token stream, with every source of randomness seeded by the study's
seed rule (SPEC §1) and ``torch.use_deterministic_algorithms`` on, so the same recipe on the
same machine gives byte-identical weights. The caller decides where checkpoints go:
:func:`train_causal_lm` calls ``save(step, model)`` at each step of :func:`checkpoint_steps`
(step 0 is the initialisation, before any update).

Units: ``learning_rate`` per step; ``tokens_per_second`` counts input tokens of the training
windows (``batch_size * seq_len`` per step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.errors import AvalancheError, ConfigurationError, CorpusError
from ..core.seeds import seed_of

#: Training settings of a recipe (``models.<role>.embedded.training`` / embedded_checkpoints).
TRAINING_DEFAULTS: dict[str, Any] = {
    "steps": 400,
    "batch_size": 16,
    "seq_len": 128,
    "learning_rate": 3.0e-3,
    "min_learning_rate_ratio": 0.1,  # cosine decay ends at this fraction of the peak
    "warmup_steps": 20,
    "weight_decay": 0.01,
    "beta1": 0.9,
    "beta2": 0.95,
    "grad_clip": 1.0,
    "checkpoints": 6,  # log-spaced checkpoint steps, 0 and the last step included
}


class TrainingError(AvalancheError):
    """Training cannot run or diverged."""


@dataclass
class TrainingLog:
    """What a training run did: losses per step and throughput."""

    steps: int
    tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    saved_steps: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "loss_first": self.losses[0] if self.losses else None,
            "loss_last": self.losses[-1] if self.losses else None,
            "loss_last_10_mean": float(np.mean(self.losses[-10:])) if self.losses else None,
            "saved_steps": list(self.saved_steps),
        }


def training_settings(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`TRAINING_DEFAULTS` updated with ``overrides``, checked (clear errors, early)."""
    settings = dict(TRAINING_DEFAULTS)
    unknown = set(overrides or {}) - set(settings)
    if unknown:
        raise ConfigurationError(
            f"Unknown training settings {sorted(unknown)}.",
            f"Use only {sorted(settings)} under the recipe's `training:` block.",
        )
    settings.update(overrides or {})
    for key in ("steps", "batch_size", "seq_len", "checkpoints"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ConfigurationError(
                f"training.{key} must be a positive integer, got {settings[key]!r}.",
                f"Set training.{key} to at least 1 (steps: the number of optimizer updates).",
            )
    if settings["checkpoints"] < 2:
        raise ConfigurationError(
            f"training.checkpoints must be at least 2 (step 0 and the last step), got "
            f"{settings['checkpoints']}.",
            "Set training.checkpoints to 2 or more.",
        )
    rate = settings["learning_rate"]
    if not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
        raise ConfigurationError(
            f"training.learning_rate must be a positive finite number, got {rate!r}.",
            "Set training.learning_rate, e.g. 3.0e-3 for the embedded tiny Llama.",
        )
    return settings


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """``count`` log-spaced steps from 0 to ``steps``: 0, then round(geomspace(1, steps)).

    Rounded steps that coincide are merged, so fewer than ``count`` may come back for small
    ``steps`` (e.g. ``checkpoint_steps(4, 6) == [0, 1, 2, 3, 4]``).
    """
    if steps < 1 or count < 2:
        raise ValueError(f"need steps >= 1 and count >= 2, got {steps}, {count}")
    spaced = np.rint(np.geomspace(1, steps, count - 1)).astype(int).tolist()
    return sorted({0, *spaced, steps})


def learning_rate_at(step: int, settings: Mapping[str, Any]) -> float:
    """Linear warm-up over ``warmup_steps`` then cosine decay to ``min_learning_rate_ratio``.

    ``step`` counts updates from 0; the rate used by update ``step`` (0-based) is
    ``peak * (step + 1) / warmup`` during warm-up, then
    ``peak * (m + (1 - m) * (1 + cos(pi * p)) / 2)`` with ``p`` the fraction of the remaining
    updates done and ``m`` the floor ratio.
    """
    peak = float(settings["learning_rate"])
    warmup = int(settings["warmup_steps"])
    total = int(settings["steps"])
    floor = float(settings["min_learning_rate_ratio"])
    if step < warmup:
        return peak * (step + 1) / warmup
    remaining = max(total - warmup, 1)
    progress = min((step - warmup) / remaining, 1.0)
    return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def batch_order(n_windows: int, steps: int, batch_size: int, seed_name: str) -> np.ndarray:
    """``[steps, batch_size]`` window indices: epochs of seeded permutations, concatenated.

    Epoch ``e`` is ``default_rng(seed_of("train_order", seed_name, e)).permutation(n_windows)``,
    so every window is seen once per epoch and the order depends only on the recipe.
    """
    if n_windows < batch_size:
        raise CorpusError(
            f"The training text gives {n_windows} windows, fewer than one batch ({batch_size}).",
            "Lower training.batch_size or training.seq_len, or train on more text.",
        )
    needed = steps * batch_size
    order: list[np.ndarray] = []
    epoch = 0
    while sum(len(o) for o in order) < needed:
        rng = np.random.default_rng(seed_of("train_order", seed_name, epoch))
        order.append(rng.permutation(n_windows))
        epoch += 1
    return np.concatenate(order)[:needed].reshape(steps, batch_size)


@contextmanager
def deterministic_torch(seed: int):
    """Deterministic kernels and a seeded global generator, restored afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous)


def train_causal_lm(
    model: torch.nn.Module,
    windows: np.ndarray,
    settings: Mapping[str, Any],
    seed_name: str,
    save: Callable[[int, torch.nn.Module], None],
    progress: Callable[[int, float, float], None] | None = None,
) -> TrainingLog:
    """Train ``model`` in place on ``windows`` ``[n, seq_len]`` (token ids), next-token loss.

    ``save(step, model)`` is called at every step of :func:`checkpoint_steps` (step 0 before
    the first update); ``progress(step, loss, tokens_per_second)`` after each update. The
    first non-finite loss stops training with :class:`TrainingError` naming the step and the
    learning rate; nothing is saved for that step.
    """
    steps, batch_size = int(settings["steps"]), int(settings["batch_size"])
    windows = np.asarray(windows, dtype=np.int64)
    order = batch_order(len(windows), steps, batch_size, seed_name)
    to_save = set(checkpoint_steps(steps, int(settings["checkpoints"])))
    log = TrainingLog(steps=steps, tokens=0, seconds=0.0)
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        # norms and biases are not decayed (the usual AdamW recipe)
        (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": float(settings["weight_decay"])},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=float(settings["learning_rate"]),
        betas=(float(settings["beta1"]), float(settings["beta2"])),
        foreach=False,  # the single-tensor path: the same arithmetic whatever the grouping
    )
    with deterministic_torch(seed_of("train", seed_name)):
        model.train()
        if 0 in to_save:
            save(0, model)
            log.saved_steps.append(0)
        started = time.perf_counter()
        for step in range(steps):
            rate = learning_rate_at(step, settings)
            for group in optimizer.param_groups:
                group["lr"] = rate
            batch = torch.from_numpy(windows[order[step]])
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"The training loss became {value} at step {step + 1} of {steps} "
                    f"(learning rate {rate:.3g}) for '{seed_name}'.",
                    "Lower training.learning_rate (or raise training.warmup_steps) in the "
                    "recipe and run again; checkpoints saved before this step are kept.",
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(settings["grad_clip"]))
            optimizer.step()
            log.losses.append(value)
            log.tokens += batch.numel()
            log.seconds = time.perf_counter() - started
            if progress is not None:
                progress(step + 1, value, log.tokens_per_second)
            if step + 1 in to_save:
                save(step + 1, model)
                log.saved_steps.append(step + 1)
        model.eval()
    return log
