"""Errors that stop a run: one base class, and every message names the problem and the fix."""

from __future__ import annotations

import inspect
import pickle

import pytest

from avalanche_kedro.core import errors
from avalanche_kedro.core.errors import (
    ArtifactError,
    AvalancheError,
    CheckpointError,
    ConfigurationError,
    CorpusError,
    InstrumentationError,
    NonFiniteActivationError,
    RateMatchingError,
    ScaleOutError,
    UnsupportedArchitectureError,
)

SUBCLASSES = (
    ConfigurationError,
    CorpusError,
    CheckpointError,
    UnsupportedArchitectureError,
    InstrumentationError,
    NonFiniteActivationError,
    RateMatchingError,
    ArtifactError,
    ScaleOutError,
)


def test_the_module_defines_exactly_these_error_classes():
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if obj.__module__ == errors.__name__
    }
    assert defined == {AvalancheError, *SUBCLASSES}


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_an_avalanche_error(cls):
    assert issubclass(cls, AvalancheError)
    assert issubclass(cls, RuntimeError)  # so generic RuntimeError handlers still see them
    with pytest.raises(AvalancheError) as info:
        raise cls("The thing is broken.", "Repair the thing.")
    assert type(info.value) is cls


@pytest.mark.parametrize("cls", (AvalancheError, *SUBCLASSES), ids=lambda cls: cls.__name__)
def test_message_is_the_problem_then_how_to_fix(cls):
    error = cls("runtime.batch_size must be at least 1, got 0.", "Set runtime.batch_size to 8.")
    assert error.problem == "runtime.batch_size must be at least 1, got 0."
    assert error.fix == "Set runtime.batch_size to 8."
    expected = (
        "runtime.batch_size must be at least 1, got 0.\n  How to fix: Set runtime.batch_size to 8."
    )
    assert str(error) == expected
    assert error.args == (expected,)


def test_problem_and_fix_are_both_required():
    with pytest.raises(TypeError):
        ConfigurationError("only a problem")  # type: ignore[call-arg]


def test_non_finite_activation_in_layer():
    error = NonFiniteActivationError.in_layer(3)
    assert type(error) is NonFiniteActivationError
    assert error.problem == "Layer 3 produced NaN or inf MLP activations."
    assert error.fix == (
        "Run the model in float32 (runtime.dtype: float32) or check the checkpoint's "
        "weights; half precision can overflow in large models."
    )
    where = NonFiniteActivationError.in_layer(0, " in windows 8..15 of the slice")
    assert (
        where.problem
        == "Layer 0 produced NaN or inf MLP activations in windows 8..15 of the slice."
    )
    assert str(where).endswith("\n  How to fix: " + error.fix)


def test_errors_survive_a_pickle_round_trip():
    error = ConfigurationError("The thing is broken.", "Repair the thing.")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ConfigurationError
    assert (copy.problem, copy.fix, str(copy)) == (error.problem, error.fix, str(error))
