"""The measurement passes against brute force on materialized activations (SPEC §3-5).

Every quantity the sweep computes on the device with streaming/sparse shortcuts (moments,
baseline counts, top-k order statistics, sparse per-site event counts) is recomputed here from
the full tensor u[N, T, L, d_ff], materialized with the same hooks (``instrument``) and the same
batch boundaries, and compared exactly (counts, thresholds) or to fp64 accuracy (moments).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from avalanche_kedro.measure.adapters import instrument
from avalanche_kedro.measure.gain import MLP_GLOBAL, layer_gains
from avalanche_kedro.measure.moments import DEFAULT_EPS
from avalanche_kedro.measure.rasters import RasterWriter
from avalanche_kedro.measure.sweep import (
    GainSetting,
    accumulate_moments,
    count_baseline_exceedances,
    fit_thresholds,
    record_rasters,
)
from avalanche_kedro.measure.thresholds import (
    SPIKE_ONE_SIDED_POS,
    SPIKE_TWO_SIDED_ABS,
    TAU0_BASELINE,
    seed_relaxation,
    target_profile,
    topk_capacity,
    verify_rate_matching,
)

SPIKE_DEFS = (SPIKE_ONE_SIDED_POS, SPIKE_TWO_SIDED_ABS)
TARGET_RATES = (2e-3, 5e-3, 1.2e-2)
GAINS = (1.0, 0.8)
BATCH = 5  # uneven batches (5, 5, 2) over 12 windows


def materialize_u(loaded, input_ids: np.ndarray, g: float, batch_size: int = BATCH) -> np.ndarray:
    """u as fp32 ``[N, T, L, d_ff]``, forwarded with the same batch boundaries as run_pass."""
    captured: list[list[torch.Tensor]] = [[] for _ in range(loaded.n_layers)]
    gains = layer_gains(MLP_GLOBAL, g, loaded.n_layers)
    with (
        instrument(
            loaded.model,
            loaded.adapter,
            gains=gains,
            on_u=lambda layer, u: captured[layer].append(u.detach().to(torch.float32).clone()),
        ),
        torch.inference_mode(),
    ):
        for start in range(0, input_ids.shape[0], batch_size):
            batch = torch.as_tensor(input_ids[start : start + batch_size], dtype=torch.long)
            loaded.backbone(input_ids=batch, use_cache=False)
    per_layer = [torch.cat(parts).numpy() for parts in captured]  # each [N, T, d_ff]
    return np.stack(per_layer, axis=2)


def standardize(u: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """z = (u - mu) / (sigma + eps) in fp32, mu and sigma + eps rounded once to fp32."""
    mu32 = mu.astype(np.float32)
    den32 = (sigma + DEFAULT_EPS).astype(np.float32)
    return ((u.astype(np.float32) - mu32) / den32).astype(np.float32)


def spike_stat(z: np.ndarray, spike_def: str) -> np.ndarray:
    return z if spike_def == SPIKE_ONE_SIDED_POS else np.abs(z)


@pytest.fixture(scope="module")
def data(small_model, small_windows):
    calibration = small_windows[:12]
    analysis = small_windows[12:24]
    return {
        "calibration": calibration,
        "analysis": analysis,
        "u_cal": {g: materialize_u(small_model, calibration, g) for g in GAINS},
        "u_ana": {g: materialize_u(small_model, analysis, g) for g in GAINS},
    }


@pytest.fixture(scope="module")
def calibrated(small_model, data):
    moments, stats = accumulate_moments(small_model, data["calibration"], batch_size=BATCH)
    assert stats.tokens == 12 * 32 and stats.windows == 12
    standardizer = moments.standardizer("cpu")
    baseline, _ = count_baseline_exceedances(
        small_model, data["calibration"], standardizer, SPIKE_DEFS, TAU0_BASELINE, BATCH
    )
    rows = []
    for spike_def in SPIKE_DEFS:
        r_base = (
            baseline[baseline["spike_def_id"] == spike_def]
            .sort_values("layer")["r_base"]
            .to_numpy()
        )
        for rate in TARGET_RATES:
            for layer, r_star in enumerate(target_profile(r_base, rate)):
                rows.append(
                    {
                        "spike_def_id": spike_def,
                        "target_rate": rate,
                        "layer": layer,
                        "r_star": r_star,
                    }
                )
    rate_targets = pd.DataFrame(rows)
    fits, _ = fit_thresholds(
        small_model,
        data["calibration"],
        standardizer,
        rate_targets,
        [GainSetting(MLP_GLOBAL, g) for g in GAINS],
        SPIKE_DEFS,
        TARGET_RATES,
        batch_size=BATCH,
    )
    return {
        "moments": moments,
        "standardizer": standardizer,
        "baseline": baseline,
        "rate_targets": rate_targets,
        "fits": fits,
    }


def test_materialized_u_has_the_expected_shape(small_model, data):
    assert data["u_cal"][1.0].shape == (12, 32, small_model.n_layers, small_model.d_ff)
    assert small_model.n_layers == 4 and small_model.d_ff == 64
    # the gain changes u downstream of layer 0 (layer 0's u does not see any MLP output)
    np.testing.assert_array_equal(data["u_cal"][1.0][:, :, 0], data["u_cal"][0.8][:, :, 0])
    assert not np.array_equal(data["u_cal"][1.0][:, :, 1:], data["u_cal"][0.8][:, :, 1:])


def test_accumulate_moments_matches_numpy(small_model, data, calibrated):
    moments = calibrated["moments"]
    u = data["u_cal"][1.0].astype(np.float64)  # [N, T, L, d_ff]
    flat = u.reshape(-1, small_model.n_layers, small_model.d_ff)
    # count = windows x tokens per layer, not divided by the layer count
    np.testing.assert_array_equal(moments.counts, [12 * 32] * small_model.n_layers)
    np.testing.assert_allclose(moments.mu, flat.mean(axis=0), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(moments.sigma, flat.std(axis=0, ddof=0), rtol=1e-6, atol=1e-12)


def test_count_baseline_exceedances_matches_brute_force(small_model, data, calibrated):
    moments = calibrated["moments"]
    z = standardize(data["u_cal"][1.0], moments.mu, moments.sigma)
    baseline = calibrated["baseline"]
    n_values = 12 * 32 * small_model.d_ff
    assert len(baseline) == len(SPIKE_DEFS) * small_model.n_layers
    for spike_def in SPIKE_DEFS:
        v = spike_stat(z, spike_def)
        for layer in range(small_model.n_layers):
            row = baseline[(baseline["spike_def_id"] == spike_def) & (baseline["layer"] == layer)]
            assert len(row) == 1
            brute = int(np.count_nonzero(v[:, :, layer] > TAU0_BASELINE))
            assert int(row["n_exceed"].iloc[0]) == brute
            assert int(row["n_values"].iloc[0]) == n_values
            assert row["r_base"].iloc[0] == pytest.approx(brute / n_values, rel=1e-15)
    # two-sided counts can only be larger
    one = baseline[baseline["spike_def_id"] == SPIKE_ONE_SIDED_POS]["n_exceed"].to_numpy()
    two = baseline[baseline["spike_def_id"] == SPIKE_TWO_SIDED_ABS]["n_exceed"].to_numpy()
    assert np.all(two >= one) and one.sum() > 0


def test_fit_thresholds_equal_brute_force_order_statistics(small_model, data, calibrated):
    moments, fits = calibrated["moments"], calibrated["fits"]
    n_values = 12 * 32 * small_model.d_ff
    assert len(fits) == len(GAINS) * len(SPIKE_DEFS) * len(TARGET_RATES) * small_model.n_layers
    profile = calibrated["rate_targets"].set_index(["spike_def_id", "target_rate", "layer"])[
        "r_star"
    ]
    n_checked_nonzero_budget = 0
    for g in GAINS:
        z = standardize(data["u_cal"][g], moments.mu, moments.sigma)
        for spike_def in SPIKE_DEFS:
            v = spike_stat(z, spike_def)
            for layer in range(small_model.n_layers):
                values = v[:, :, layer].reshape(-1)
                desc = np.sort(values)[::-1]
                r_stars = [profile[(spike_def, rate, layer)] for rate in TARGET_RATES]
                k = topk_capacity(max(r_stars), n_values)
                for rate, r_star in zip(TARGET_RATES, r_stars, strict=True):
                    row = fits[
                        (fits["g"] == g)
                        & (fits["spike_def_id"] == spike_def)
                        & (fits["target_rate"] == rate)
                        & (fits["layer"] == layer)
                    ]
                    assert len(row) == 1
                    row = row.iloc[0]
                    m = int(np.floor(r_star * n_values))
                    expected_tau = float(desc[m])  # (m+1)-th largest; the max when m = 0
                    brute = int(np.count_nonzero(values > np.float32(expected_tau)))
                    assert row["m_budget"] == m
                    assert row["tau"] == expected_tau, (g, spike_def, rate, layer)
                    assert row["n_exceed_calibration"] == brute <= m
                    assert row["achieved_rate_calibration"] == brute / n_values
                    assert row["r_star"] == r_star
                    assert row["n_values"] == n_values
                    assert row["topk_kept"] == k
                    assert row["intervention_id"] == MLP_GLOBAL
                    n_checked_nonzero_budget += m > 0
    assert n_checked_nonzero_budget > 0
    # fp32 activations of this model have no ties at the thresholds: rates are matched
    verify_rate_matching(fits)


def _brute_counts(z: np.ndarray, taus: np.ndarray, spike_defs) -> np.ndarray:
    """A[s, r, n, l, t] = #units with v > tau[s, r, l]."""
    n, t, n_layers, _ = z.shape
    out = np.zeros((len(spike_defs), taus.shape[1], n, n_layers, t), dtype=np.int64)
    for si, spike_def in enumerate(spike_defs):
        v = spike_stat(z, spike_def)
        for ri in range(taus.shape[1]):
            for layer in range(n_layers):
                hits = v[:, :, layer, :] > np.float32(taus[si, ri, layer])  # [N, T, d_ff]
                out[si, ri, :, layer, :] = hits.sum(axis=-1)
    return out


def _record(small_model, tmp_path, name, input_ids, standardizer, taus, spike_defs, g):
    n_s, n_r, n_layers = taus.shape
    cond_rows = np.arange(n_s * n_r).reshape(n_s, n_r)
    cond_ids = 100 + np.arange(n_s * n_r)
    seq_ids = np.arange(input_ids.shape[0]) + 12
    writer = RasterWriter(tmp_path / name, cond_ids, seq_ids, n_layers, input_ids.shape[1])
    stats = record_rasters(
        small_model,
        input_ids,
        standardizer,
        taus.astype(np.float32),
        cond_rows,
        spike_defs,
        GainSetting(MLP_GLOBAL, g),
        writer,
        batch_size=BATCH,
    )
    assert stats.windows == input_ids.shape[0]
    rasters = writer.finalize()
    np.testing.assert_array_equal(rasters.cond_id, cond_ids)
    np.testing.assert_array_equal(rasters.seq_id, seq_ids)
    return rasters, cond_rows


@pytest.mark.parametrize("g", GAINS)
def test_record_rasters_equal_brute_force_with_fitted_taus(
    small_model, data, calibrated, tmp_path, g
):
    moments, fits = calibrated["moments"], calibrated["fits"]
    n_layers = small_model.n_layers
    taus = np.zeros((len(SPIKE_DEFS), len(TARGET_RATES), n_layers), dtype=np.float32)
    for si, spike_def in enumerate(SPIKE_DEFS):
        for ri, rate in enumerate(TARGET_RATES):
            part = fits[
                (fits["g"] == g)
                & (fits["spike_def_id"] == spike_def)
                & (fits["target_rate"] == rate)
            ]
            taus[si, ri] = part.sort_values("layer")["tau"].to_numpy(dtype=np.float32)
    rasters, cond_rows = _record(
        small_model,
        tmp_path,
        f"fitted_{g}",
        data["analysis"],
        calibrated["standardizer"],
        taus,
        SPIKE_DEFS,
        g,
    )
    z = standardize(data["u_ana"][g], moments.mu, moments.sigma)
    expected = _brute_counts(z, taus, SPIKE_DEFS)
    assert rasters.A.shape == (len(SPIKE_DEFS) * len(TARGET_RATES), 12, n_layers, 32)
    total = 0
    for si in range(len(SPIKE_DEFS)):
        for ri in range(len(TARGET_RATES)):
            got = np.asarray(rasters.A[cond_rows[si, ri]])
            np.testing.assert_array_equal(
                got, expected[si, ri], err_msg=f"{SPIKE_DEFS[si]} {TARGET_RATES[ri]}"
            )
            np.testing.assert_array_equal(
                rasters.X[cond_rows[si, ri]], (expected[si, ri] > 0).astype(np.uint8)
            )
            total += int(got.sum())
    assert total > 0  # the comparison is not vacuous
    # lower rates -> never more events at the same site (taus nested per layer)
    for si in range(len(SPIKE_DEFS)):
        assert np.all(
            np.asarray(rasters.A[cond_rows[si, 0]]) <= np.asarray(rasters.A[cond_rows[si, 2]])
        )


def test_record_rasters_dense_path_with_negative_and_extreme_taus(
    small_model, data, calibrated, tmp_path
):
    """Hand-chosen taus: a negative one (no sparse shortcut), zero, and one above every value."""
    moments = calibrated["moments"]
    taus = np.array(
        [
            [[-0.5, 0.0, 1.0, 1e9], [0.25, -3.0, 2.0, 0.5]],  # one-sided
            [[0.0, 0.75, 1e9, 3.0], [1.5, 0.1, 0.2, 2.5]],  # two-sided
        ],
        dtype=np.float32,
    )
    g = 0.8
    rasters, cond_rows = _record(
        small_model,
        tmp_path,
        "hand",
        data["analysis"],
        calibrated["standardizer"],
        taus,
        SPIKE_DEFS,
        g,
    )
    z = standardize(data["u_ana"][g], moments.mu, moments.sigma)
    expected = _brute_counts(z, taus, SPIKE_DEFS)
    for si in range(2):
        for ri in range(2):
            np.testing.assert_array_equal(
                np.asarray(rasters.A[cond_rows[si, ri]]), expected[si, ri]
            )
    # tau = 1e9 gives an empty layer; a negative one-sided tau gives many events per site
    assert np.asarray(rasters.A[cond_rows[0, 0]])[:, 3].sum() == 0
    assert np.asarray(rasters.A[cond_rows[0, 1]])[:, 1].min() > 0
    assert rasters.A.dtype == np.uint16 and rasters.X.dtype == np.uint8


def _fit_one(small_model, data, calibrated, g: float, **seeding):
    """The thresholds of MLP_GLOBAL at ``g`` alone on the calibration windows (``seeding``:
    fit_thresholds' ``seed_fits`` or ``baseline``)."""
    return fit_thresholds(
        small_model,
        data["calibration"],
        calibrated["standardizer"],
        calibrated["rate_targets"],
        [GainSetting(MLP_GLOBAL, g)],
        SPIKE_DEFS,
        TARGET_RATES,
        batch_size=BATCH,
        **seeding,
    )


def test_fit_thresholds_refits_without_seeds_when_a_seed_is_too_high(small_model, data, calibrated):
    """Seeds from a (fake) neighbour whose thresholds are 100x the real ones leave fewer than
    k values above them: the pass is repeated without seeds (twice the windows forwarded) and
    the table equals the unseeded fit. Seeds from the real thresholds need no second pass."""
    fits = calibrated["fits"]
    setting = GainSetting(MLP_GLOBAL, 0.8)
    own = fits[fits["g"] == 0.8].reset_index(drop=True)
    neighbour = own.assign(g=0.9)

    def fit(seed_fits):
        return _fit_one(small_model, data, calibrated, setting.g, seed_fits=seed_fits)

    too_high, stats = fit(neighbour.assign(tau=neighbour["tau"] * 100.0))
    assert stats.windows == 2 * 12
    pd.testing.assert_frame_equal(too_high, own, check_exact=True)
    seeded, stats = fit(neighbour)
    assert stats.windows == 12
    pd.testing.assert_frame_equal(seeded, own, check_exact=True)


@pytest.mark.parametrize(("gap", "windows"), [(0.1, 12), (0.02, 24)])
def test_a_seed_is_relaxed_by_its_neighbours_distance_in_g(
    small_model, data, calibrated, gap, windows
):
    """A neighbour whose smallest taus are 8 % above the real k-th largest values: 0.1 away in
    g its seeds are relaxed by 10 % (0.97 of the real value: one pass); 0.02 away by 6 % only
    (1.015 of it: fewer than k values above, so the pass is repeated). Exact either way."""
    fits = calibrated["fits"]
    own = fits[fits["g"] == 0.8].reset_index(drop=True)
    neighbour = own.assign(g=0.8 + gap, tau=own["tau"] * 1.08)
    table, stats = _fit_one(small_model, data, calibrated, 0.8, seed_fits=neighbour)
    assert stats.windows == windows
    pd.testing.assert_frame_equal(table, own, check_exact=True)


@pytest.mark.parametrize("g", [1.0, 0.8])
def test_the_first_fit_is_seeded_from_the_baseline_counts(
    small_model, data, calibrated, g, monkeypatch
):
    """The g = 1 counts above tau0 seed the first setting: at g = 1 tau0 itself (exact: one
    pass), at 0.8 tau0 relaxed by seed_relaxation(0.2). The table equals the unseeded fit, and
    the seeds reach the fitter's top-k buffers."""
    from avalanche_kedro.measure import sweep

    fits = calibrated["fits"]
    own = fits[fits["g"] == g].reset_index(drop=True)
    seen = []

    class Recording(sweep.ThresholdFitter):
        def __init__(self, *args, seeds=None, **kwargs):
            seen.append(None if seeds is None else np.array(seeds))
            super().__init__(*args, seeds=seeds, **kwargs)

    monkeypatch.setattr(sweep, "ThresholdFitter", Recording)  # the real fitter, recorded
    table, stats = _fit_one(small_model, data, calibrated, g, baseline=calibrated["baseline"])
    assert stats.windows == 12  # one pass: no seed was too high
    pd.testing.assert_frame_equal(table, own, check_exact=True)
    below = float(np.nextafter(np.float32(TAU0_BASELINE), np.float32(-np.inf)))
    expected = below if g == 1.0 else (1.0 - seed_relaxation(abs(g - 1.0))) * below
    (seeds,) = seen
    assert np.isfinite(seeds).any()  # the small model has layers with at least k above tau0
    assert np.all(np.isnan(seeds) | (seeds == expected))


def test_a_baseline_seed_that_proves_too_high_refits_without_seeds(small_model, data, calibrated):
    """A baseline claiming every value exceeded tau0 = 50 seeds the top-k far above the k-th
    largest value: detected after the pass, repeated without seeds, the table exact."""
    fits = calibrated["fits"]
    own = fits[fits["g"] == 1.0].reset_index(drop=True)
    wrong = calibrated["baseline"].assign(tau0=50.0, n_exceed=calibrated["baseline"]["n_values"])
    table, stats = _fit_one(small_model, data, calibrated, 1.0, baseline=wrong)
    assert stats.windows == 2 * 12
    pd.testing.assert_frame_equal(table, own, check_exact=True)


def test_fit_thresholds_keeps_the_order_of_the_settings(calibrated):
    """GAINS = (1.0, 0.8) are fitted from g = 1 outwards: 1.0, then 0.8 seeded from 1.0; rows
    stay in the
    caller's order."""
    fits = calibrated["fits"]
    block = len(SPIKE_DEFS) * len(TARGET_RATES) * 4
    assert fits["g"].tolist() == [1.0] * block + [0.8] * block
