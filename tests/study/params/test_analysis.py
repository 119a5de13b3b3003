"""The analysis parameter blocks: allowed ids in step with the science modules, bad values."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from avalanche_kedro.analysis.lattice import ADJACENCIES
from avalanche_kedro.measure.gain import INTERVENTIONS
from avalanche_kedro.measure.thresholds import SPIKE_DEFS
from avalanche_kedro.study.params import (
    AblationsParams,
    ArcParams,
    CascadesParams,
    ControlsParams,
    GeneralizationParams,
    LensParams,
)
from avalanche_kedro.study.params._base import Adjacency, Intervention, SpikeDef


def test_the_allowed_ids_are_those_of_the_science_modules():
    assert set(typing.get_args(SpikeDef)) == set(SPIKE_DEFS)
    assert set(typing.get_args(Adjacency)) == set(ADJACENCIES)
    assert set(typing.get_args(Intervention)) == set(INTERVENTIONS)


@pytest.mark.parametrize(
    ("model", "raw", "key"),
    [
        (CascadesParams, {"adjacencies": ["ADJ_6N"]}, "adjacencies"),
        (CascadesParams, {"adjacencies": []}, "adjacencies"),
        (CascadesParams, {"adjacency": ["ADJ_8N"]}, "adjacency"),  # the typo
        (CascadesParams, {"crackling": {"bootstrap_replicates": 0}}, "bootstrap_replicates"),
        (CascadesParams, {"crackling": {"d_min": 9, "d_max": 4}}, "d_max"),
        (CascadesParams, {"tail_fits": {"workers": -1}}, "workers"),
        (ControlsParams, {"bootstrap_replicates": 0}, "bootstrap_replicates"),
        (GeneralizationParams, {"perplexity_gains": [0.0]}, "perplexity_gains"),
        (ArcParams, {"max_questions": 0}, "max_questions"),
        (AblationsParams, {"interventions": ["MLP_BAND_LAST"]}, "interventions"),
        (LensParams, {"adjacency": "ADJ_6N"}, "adjacency"),
        (LensParams, {"top_k": 0}, "top_k"),
        (LensParams, {"max_windows": 1}, "max_windows"),
        (LensParams, {"prompts": [" "]}, "prompts"),
    ],
)
def test_bad_values_are_refused(model, raw, key):
    with pytest.raises(ValidationError, match=key):
        model.model_validate(raw)


def test_defaults():
    cascades = CascadesParams()
    assert cascades.adjacencies == ["ADJ_4N", "ADJ_8N"]
    assert (cascades.crackling.d_min, cascades.crackling.d_max) == (3, 64)
    assert ControlsParams().bootstrap_replicates == 500
    assert LensParams().max_windows is None
