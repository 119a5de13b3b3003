"""The shared parts of the parameter blocks: frozen, no unknown keys, coerce, as_plain."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.study.params import GainGrid, ModelParams, RuntimeParams, as_plain


def test_blocks_are_frozen_and_refuse_unknown_keys():
    runtime = RuntimeParams()
    with pytest.raises(ValidationError):
        runtime.batch_size = 2
    with pytest.raises(ValidationError, match="batchsize"):
        RuntimeParams.model_validate({"batchsize": 2})


def test_coerce_names_the_block_key():
    with pytest.raises(ConfigurationError, match=r"gain_grid = \[\]"):
        GainGrid.coerce([])


def test_as_plain_turns_models_back_into_what_was_written():
    params = {
        "gain_grid": GainGrid.model_validate([0.9, 1.0]),
        "models": {"base": ModelParams(checkpoint="x", step="final")},
        "model_roles": ["base"],
    }
    assert as_plain(params) == {
        "gain_grid": [0.9, 1.0],
        "models": {"base": {"checkpoint": "x", "step": "final"}},
        "model_roles": ["base"],
    }
