"""Errors that stop a run: each names the problem and the fix.

Every error raised on bad input derives from :class:`AvalancheError`, whose message has two
parts, what is wrong and what to do about it, so a user reading a failed ``kedro run`` never
has to open the source to know the next step.
"""

from __future__ import annotations


class AvalancheError(RuntimeError):
    """Base class: ``problem`` says what is wrong, ``fix`` says what to change."""

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  How to fix: {fix}")

    def __reduce__(self):
        # Rebuilt from both parts when unpickled: an error raised on a Dask worker reaches the
        # client as itself, not as a plain Exception (the default would call cls(message)).
        return (type(self), (self.problem, self.fix))


class ConfigurationError(AvalancheError):
    """A parameter or catalog entry is missing or inconsistent."""


class CorpusError(AvalancheError):
    """A text corpus is empty, malformed or too small for the requested windows."""


class CheckpointError(AvalancheError):
    """A model checkpoint cannot be found, is incomplete or cannot be loaded."""


class UnsupportedArchitectureError(AvalancheError):
    """The model family has no adapter (SPEC §2)."""


class InstrumentationError(AvalancheError):
    """The hooks do not reproduce the model (the SPEC §2 validate step failed)."""


class NonFiniteActivationError(AvalancheError):
    """The model produced NaN or inf activations."""

    @classmethod
    def in_layer(cls, layer: int, where: str = "") -> NonFiniteActivationError:
        """The error for layer ``layer``; ``where`` says which windows (may be empty)."""
        return cls(
            f"Layer {layer} produced NaN or inf MLP activations{where}.",
            "Run the model in float32 (runtime.dtype: float32) or check the checkpoint's "
            "weights; half precision can overflow in large models.",
        )


class RateMatchingError(AvalancheError):
    """Order-statistic thresholds missed their target rates (SPEC §4 verification)."""


class ArtifactError(AvalancheError):
    """A saved artifact is missing, truncated or inconsistent with its metadata."""


class ScaleOutError(AvalancheError):
    """A distributed run cannot start or lost its workers (scheduler, shared storage, workers)."""
