"""The per-model parameter blocks: defaults, bad values, and target rates that follow d_ff."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.core.seeds import condition_key
from avalanche_kedro.study.params import (
    CalibrationParams,
    EventsParams,
    GainGrid,
    ModelParams,
    RuntimeParams,
    WindowsParams,
)

SPIKES = ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
WINDOWS = {"seq_len": 256, "n_calibration": 4, "n_raster": 4, "n_eval_b": 2}


def test_auto_target_rates_give_the_paper_grid_at_the_papers_d_ff():
    calibration = CalibrationParams(spike_defs=SPIKES)
    assert calibration.target_rates == "auto"
    rates = calibration.rates_for(18944)
    assert rates == [1e-5, 2e-5, 4e-5, 8e-5]
    # the condition keys of the paper are those of its former explicit list
    explicit = [1.0e-5, 2.0e-5, 4.0e-5, 8.0e-5]
    keys = [condition_key("A", SPIKES[0], r, 0.85, "MLP_GLOBAL") for r in explicit]
    assert [condition_key("A", SPIKES[0], r, 0.85, "MLP_GLOBAL") for r in rates] == keys
    assert keys[0] == "A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL"


@pytest.mark.parametrize(
    ("d_ff", "rates"),
    [
        (384, [4.93e-4, 9.87e-4, 1.97e-3, 3.95e-3]),  # the embedded default
        (2048, [9.25e-5, 1.85e-4, 3.7e-4, 7.4e-4]),  # Pythia-70m: its former explicit rates
        (64, [2.96e-3, 5.92e-3, 1.18e-2, 2.37e-2]),
    ],
)
def test_auto_target_rates_are_rounded_to_three_significant_digits(d_ff, rates):
    resolved = CalibrationParams(spike_defs=SPIKES).rates_for(d_ff)
    assert resolved == rates
    assert all(float(f"{r:.3g}") == r for r in resolved)


def test_an_explicit_target_rate_list_is_used_as_given():
    calibration = CalibrationParams(spike_defs=SPIKES, target_rates=[4e-3, 1.6e-2])
    assert calibration.rates_for(64) == calibration.rates_for(18944) == [4e-3, 1.6e-2]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"target_rates": [0.0]}, "target_rates"),
        ({"target_rates": [1.0]}, "target_rates"),
        ({"target_rates": []}, "target_rates"),
        ({"target_rates": "often"}, "target_rates"),
        ({"spike_defs": ["SPIKE_BOTH"]}, "spike_defs"),
        ({"spike_defs": []}, "spike_defs"),
        ({"expected_events_per_site": [0]}, "expected_events_per_site"),
        ({"tau": 2.5}, "tau"),
    ],
)
def test_bad_calibration_values_are_refused(change, key):
    with pytest.raises(ValidationError, match=key):
        CalibrationParams.model_validate({"spike_defs": SPIKES, **change})


def test_rates_that_would_leave_zero_one_are_refused_at_resolution():
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        CalibrationParams(spike_defs=SPIKES, expected_events_per_site=[5.0]).rates_for(4)


@pytest.mark.parametrize(
    ("model", "raw", "key"),
    [
        (RuntimeParams, {"batch_size": 0}, "batch_size"),
        (RuntimeParams, {"device": "gpu"}, "device"),
        (RuntimeParams, {"dtype": "float64"}, "dtype"),
        (RuntimeParams, {"validate_g": 1.0}, "validate_g"),
        (WindowsParams, {**WINDOWS, "seq_len": 1}, "seq_len"),
        (WindowsParams, {**WINDOWS, "n_raster": "many"}, "n_raster"),
        (ModelParams, {"checkpoint": "x", "step": -1}, "step"),
        (ModelParams, {"checkpoint": "x", "revison": "main"}, "revison"),
        (EventsParams, {"interventions": {"MLP_GLOBAL": []}}, "interventions"),
        (EventsParams, {"interventions": {"MLP_LOCAL": "grid"}}, "interventions"),
        (EventsParams, {"gain_blocks": 0}, "gain_blocks"),
    ],
)
def test_bad_values_are_refused(model, raw, key):
    with pytest.raises(ValidationError, match=key):
        model.model_validate(raw)


@pytest.mark.parametrize("grid", [[], [0.9, 1.1], [1.0, 1.0], [0.0, 1.0], [-0.5, 1.0]])
def test_bad_gain_grids_are_refused(grid):
    with pytest.raises(ValidationError):
        GainGrid.model_validate(grid)


def test_defaults_are_written_once_in_the_models():
    runtime = RuntimeParams()
    assert (runtime.device, runtime.dtype, runtime.batch_size, runtime.validate_g) == (
        "auto",
        "auto",
        8,
        0.9,
    )
    assert WindowsParams(**WINDOWS).window_pool_factor == 10
    assert EventsParams().interventions == {"MLP_GLOBAL": "grid"}
    assert GainGrid.model_validate([0.9, 1.0]).gains() == [0.9, 1.0]


def test_coerce_keeps_a_model_and_explains_a_bad_mapping():
    runtime = RuntimeParams(batch_size=2)
    assert RuntimeParams.coerce(runtime) is runtime
    with pytest.raises(ConfigurationError, match=r"runtime\.batch_size = 0.*integer >= 1"):
        RuntimeParams.coerce({"batch_size": 0})


def test_plain_gives_back_the_keys_that_were_written():
    assert ModelParams(checkpoint="x", step=0).spec() == {"checkpoint": "x", "step": 0}


@pytest.mark.parametrize("threads", [0, -2])
def test_a_thread_count_below_one_is_refused_naming_the_key(threads):
    with pytest.raises(
        ConfigurationError, match=r"runtime\.torch_threads = -?\d: .*greater than or equal to 1"
    ):
        RuntimeParams.coerce({"torch_threads": threads})


def test_more_threads_than_cores_is_refused_with_the_range_that_works(monkeypatch):
    monkeypatch.setattr("avalanche_kedro.core.threads.available_cores", lambda: 4)
    assert RuntimeParams(torch_threads=4).torch_threads == 4
    with pytest.raises(
        ConfigurationError,
        match=r"runtime\.torch_threads = 5: .*5 threads exceed the 4 cores .*set 1 to 4, or null",
    ):
        RuntimeParams.coerce({"torch_threads": 5})


def test_torch_threads_default_to_torchs_own_choice():
    assert RuntimeParams().torch_threads is None
    assert RuntimeParams(torch_threads=1).plain() == {"torch_threads": 1}
