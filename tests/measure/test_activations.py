"""The public measurement API against the pipeline's own passes (measure.sweep), exactly.

The pipeline fits thresholds and records rasters from forward hooks; the API gets the same u
as arrays. With the same batch boundaries every number must agree bit for bit: moments (fp64
Chan merge), order-statistic taus, and every raster of every (spike definition, target).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avalanche_kedro.core.errors import ConfigurationError, NonFiniteActivationError
from avalanche_kedro.measure import activations as api
from avalanche_kedro.measure import sweep
from avalanche_kedro.measure.gain import MLP_GLOBAL, layer_gains
from avalanche_kedro.measure.rasters import RasterWriter
from avalanche_kedro.measure.sweep import GainSetting, tau_array
from avalanche_kedro.measure.thresholds import SPIKE_DEFS, rate_targets_table

RATES = (2e-3, 5e-3)
BATCH = 5  # uneven batches (5, 5, 2) over 12 windows


@pytest.fixture(scope="module")
def pipeline_run(small_model, small_windows, tmp_path_factory):
    """Moments, thresholds at g = 1 and 0.8, and rasters of the pipeline's own passes."""
    calibration, analysis = small_windows[:12], small_windows[12:]
    moments, _ = sweep.accumulate_moments(small_model, calibration, BATCH)
    standardizer = moments.standardizer("cpu")
    baseline, _ = sweep.count_baseline_exceedances(
        small_model, calibration, standardizer, SPIKE_DEFS, 2.5, BATCH
    )
    targets = rate_targets_table(baseline, SPIKE_DEFS, RATES)
    settings = [GainSetting(MLP_GLOBAL, 1.0), GainSetting(MLP_GLOBAL, 0.8)]
    fit, _ = sweep.fit_thresholds(
        small_model, calibration, standardizer, targets, settings, SPIKE_DEFS, RATES, BATCH
    )
    rasters = {}
    for setting in settings:
        taus = tau_array(fit, setting, SPIKE_DEFS, RATES, small_model.n_layers)
        writer = RasterWriter(
            tmp_path_factory.mktemp("rasters") / "r",
            cond_ids=range(4),
            seq_ids=range(12),
            n_layers=small_model.n_layers,
            seq_len=analysis.shape[1],
        )
        sweep.record_rasters(
            small_model,
            analysis,
            standardizer,
            taus,
            np.arange(4).reshape(2, 2),
            SPIKE_DEFS,
            setting,
            writer,
            BATCH,
        )
        rasters[setting.g] = np.asarray(writer.finalize().A).reshape(
            2, 2, 12, -1, analysis.shape[1]
        )
    return {
        "calibration": calibration,
        "analysis": analysis,
        "moments": moments,
        "fit": fit,
        "rasters": rasters,
    }


def captured(model, ids, g=1.0):
    gains = None if g == 1.0 else layer_gains(MLP_GLOBAL, g, model.n_layers)
    return lambda: api.mlp_activations(model, ids, batch_size=BATCH, gains=gains)


@pytest.fixture(scope="module")
def api_thresholds(small_model, pipeline_run):
    return api.fit_thresholds(captured(small_model, pipeline_run["calibration"]), RATES, SPIKE_DEFS)


def test_fit_reproduces_the_pipelines_moments_and_thresholds(pipeline_run, api_thresholds):
    moments = pipeline_run["moments"]
    assert np.array_equal(api_thresholds.moments.mu, moments.mu)
    assert np.array_equal(api_thresholds.moments.sigma, moments.sigma)
    expected = tau_array(
        pipeline_run["fit"], GainSetting(MLP_GLOBAL, 1.0), SPIKE_DEFS, RATES, moments.n_layers
    )
    assert api_thresholds.tau.dtype == np.float32
    assert np.array_equal(api_thresholds.tau, expected)
    table = api_thresholds.table()
    pipeline = pipeline_run["fit"][pipeline_run["fit"]["g"] == 1.0].reset_index(drop=True)
    for column in ["spike_def_id", "target_rate", "layer", "r_star", "n_values", "m_budget"]:
        assert table[column].tolist() == pipeline[column].tolist(), column
    assert np.array_equal(
        table["achieved_rate_calibration"].to_numpy(), pipeline["achieved_rate_calibration"]
    )
    # the budget rule m = floor(r* n) and count(v > tau) <= m hold cell by cell
    n = api_thresholds.n_values[None, None, :]
    assert np.array_equal(api_thresholds.m_budget, np.floor(api_thresholds.r_star * n))
    assert (api_thresholds.n_exceed <= api_thresholds.m_budget).all()


def test_event_counts_equal_the_pipeline_rasters_for_every_condition(
    small_model, pipeline_run, api_thresholds
):
    A = api.event_counts(captured(small_model, pipeline_run["analysis"]), api_thresholds)
    expected = pipeline_run["rasters"][1.0]
    assert A.dtype == np.uint16 and A.shape == expected.shape
    assert np.array_equal(A, expected)
    assert A.sum() > 0  # the comparison is not between two empty rasters
    one = api.events_from_activations(
        captured(small_model, pipeline_run["analysis"]),
        api_thresholds,
        spike_def=SPIKE_DEFS[1],
        target_rate=RATES[0],
    )
    assert np.array_equal(one, expected[1, 0])


def test_a_gain_uses_the_g1_moments_and_profile_like_the_pipeline(small_model, pipeline_run):
    """Thresholds at g = 0.8: refitted on activations at 0.8 with the g = 1 moments and profile;
    one-shot iterators are enough then (a single pass)."""
    calibration = pipeline_run["calibration"]
    moments = api.unit_moments(captured(small_model, calibration))
    profile = api.rate_profile(captured(small_model, calibration), moments, RATES, SPIKE_DEFS)
    thresholds = api.fit_thresholds(
        captured(small_model, calibration, g=0.8)(),  # a generator: read once
        RATES,
        SPIKE_DEFS,
        moments=moments,
        profile=profile,
    )
    expected = tau_array(
        pipeline_run["fit"], GainSetting(MLP_GLOBAL, 0.8), SPIKE_DEFS, RATES, moments.n_layers
    )
    assert np.array_equal(thresholds.tau, expected)
    A = api.event_counts(captured(small_model, pipeline_run["analysis"], g=0.8)(), thresholds)
    assert np.array_equal(A, pipeline_run["rasters"][0.8])


def test_every_input_layout_gives_the_same_raster(small_model, pipeline_run, api_thresholds):
    batches = list(captured(small_model, pipeline_run["analysis"])())
    expected = pipeline_run["rasters"][1.0]
    full = torch.stack([torch.cat([b[layer] for b in batches]) for layer in range(4)], dim=2)
    layouts = {
        "one array [N, T, L, d_ff]": full,
        "numpy array": full.numpy(),
        "layers first (layer_axis=0)": full.permute(2, 0, 1, 3).contiguous(),
        "batches as dicts": [dict(enumerate(b)) for b in batches],
        "bfloat16-free list of batches": [torch.stack(b, dim=2) for b in batches],
    }
    for name, value in layouts.items():
        axis = 0 if "layer_axis=0" in name else 2
        A = api.event_counts(value, api_thresholds, layer_axis=axis)
        assert np.array_equal(A, expected), name


def test_from_run_tables_reads_the_pipelines_saved_thresholds(pipeline_run, api_thresholds):
    saved = api.EventThresholds.from_run_tables(
        pipeline_run["moments"].to_frame(), pipeline_run["fit"], g=1.0
    )
    assert saved.spike_defs == SPIKE_DEFS and saved.target_rates == RATES
    assert np.array_equal(saved.tau, api_thresholds.tau)
    assert np.array_equal(saved.n_exceed, api_thresholds.n_exceed)
    with pytest.raises(api.ActivationError, match=r"no rows for \(MLP_GLOBAL, g=1.3\)"):
        api.EventThresholds.from_run_tables(
            pipeline_run["moments"].to_frame(), pipeline_run["fit"], g=1.3
        )


# --------------------------------------------------------------------------------------------
# Bad input: a clear error naming the argument and the fix


def random_u(n=3, t=8, layers=2, d_ff=16, seed=0):
    return torch.randn(n, t, layers, d_ff, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def toy_thresholds():
    return api.fit_thresholds(random_u(n=20), [0.01], verify=False)


def test_nan_activations_name_the_layer_and_windows(toy_thresholds):
    u = random_u()
    u[1, 3, 1, 5] = float("nan")
    with pytest.raises(
        NonFiniteActivationError,
        match=r"Layer 1 of activations holds NaN or inf values \(windows 0\.\.2\)",
    ):
        api.event_counts(u, toy_thresholds)
    with pytest.raises(NonFiniteActivationError, match="Layer 1 of calibration_activations"):
        api.fit_thresholds(u, [0.01])
    u[1, 3, 1, 5] = float("inf")
    with pytest.raises(NonFiniteActivationError, match="Layer 1"):
        api.event_counts(u, toy_thresholds)


def test_a_layer_count_that_differs_from_the_calibration_is_refused(toy_thresholds):
    with pytest.raises(api.ActivationError, match="3 layers x d_ff 16.*2 layers x d_ff 16"):
        api.event_counts(random_u(layers=3), toy_thresholds)
    # tokens and layers swapped ([N, L, T, d_ff] read with the default layer_axis=2): caught
    with pytest.raises(api.ActivationError, match="(?s)8 layers x d_ff 16.*layer_axis"):
        api.event_counts(random_u(t=8, layers=2).transpose(1, 2), toy_thresholds)


def test_counts_or_ids_where_activations_are_expected_are_refused(toy_thresholds):
    with pytest.raises(api.ActivationError, match="dtype torch.int64.*floating point"):
        api.event_counts(torch.ones(3, 8, 2, 16, dtype=torch.int64), toy_thresholds)
    with pytest.raises(
        api.ActivationError, match="dtype torch.uint16; MLP activations are floating point"
    ):
        api.fit_thresholds(np.ones((3, 8, 2, 16), dtype=np.uint16), [0.01])


def test_empty_and_exhausted_iterators_are_refused(toy_thresholds):
    with pytest.raises(api.ActivationError, match="yielded no batch"):
        api.event_counts([], toy_thresholds)
    batches = iter([random_u()])
    api.event_counts(batches, toy_thresholds)
    with pytest.raises(api.ActivationError, match="yielded no batch"):
        api.event_counts(batches, toy_thresholds)
    with pytest.raises(api.ActivationError, match="one-shot iterator.*3 times"):
        api.fit_thresholds(iter([random_u()]), [0.01])


def test_shapes_and_rates_are_checked():
    with pytest.raises(api.ActivationError, match=r"shape \(8, 2, 16\).*wrap it as a list"):
        api.fit_thresholds(random_u()[0], [0.01])
    with pytest.raises(api.ActivationError, match=r"disagree in shape"):
        api.fit_thresholds([[torch.randn(3, 8, 16), torch.randn(3, 8, 12)]], [0.01])
    with pytest.raises(api.ActivationError, match=r"target_rates must be event rates in \(0, 1\)"):
        api.fit_thresholds(random_u(), [0.0])
    with pytest.raises(ConfigurationError, match="SPIKE_ONE_SIDED_POS"):
        api.fit_thresholds(random_u(), [0.01], ["SPIKE_BOTH"])


def test_choosing_one_raster_among_several(toy_thresholds):
    two = api.fit_thresholds(random_u(n=20), [0.01, 0.02], verify=False)
    with pytest.raises(api.ActivationError, match="(?s)2 target_rates.*target_rate="):
        api.events_from_activations(random_u(), two)
    with pytest.raises(api.ActivationError, match="0.05 is not among"):
        api.events_from_activations(random_u(), two, target_rate=0.05)
    A = api.events_from_activations(random_u(), toy_thresholds)
    assert A.shape == (3, 2, 8)  # [N, L, T]


def test_hand_computed_events_on_a_tiny_array():
    """Two layers, d_ff = 4, rates chosen so each layer's tau is a known order statistic."""
    u = torch.zeros(1, 5, 2, 4)
    u[0, :, 0, :] = torch.arange(20, dtype=torch.float32).reshape(5, 4)  # layer 0: 0..19
    u[0, :, 1, :] = -torch.arange(20, dtype=torch.float32).reshape(5, 4)  # layer 1: 0..-19
    thresholds = api.fit_thresholds(u, [0.1], ["SPIKE_TWO_SIDED_ABS"], tau0=1.0, verify=False)
    # mu = 9.5 (layer 0) per unit differs; check the rule directly on the standardized values
    z = (u[0] - torch.as_tensor(thresholds.moments.mu, dtype=torch.float32).unsqueeze(0)) / (
        torch.as_tensor(thresholds.moments.sigma + 1e-6, dtype=torch.float32).unsqueeze(0)
    )
    A = api.events_from_activations(u, thresholds)
    for layer in range(2):
        v = z[:, layer, :].abs()
        m = int(np.floor(thresholds.r_star[0, 0, layer] * 20))
        tau = np.sort(v.reshape(-1).numpy())[::-1][m] if m > 0 else float(v.max())
        assert thresholds.tau[0, 0, layer] == np.float32(tau)
        assert A[0, layer].tolist() == (v > float(tau)).sum(dim=1).tolist()
