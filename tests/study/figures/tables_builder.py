"""Synthetic paper tables, tau tables and event rasters for the figure tests.

Plain builders shared by the tests of every figure module, of
:class:`avalanche_kedro.framework.datasets.FigureDataset` (``tests/framework/test_datasets.py``)
and of the figures pipeline (``tests/pipelines/test_reporting.py``). The tables carry the
columns of :mod:`avalanche_kedro.study.tables` (checked on every build).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.measure.rasters import EventRasters
from avalanche_kedro.study import figures, tables

RUN_ID = "run-0123456789abcdef"
CONFIG_HASH = "c" * 64
SPIKES = ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
RATES = [0.001, 0.002, 0.004]
GAINS = [0.8, 1.0, 1.25]
N, L, T = 6, 4, 24
MODEL_IDS = {"base": "tiny-base", "instruct": "tiny-instruct"}


def provenance(roles=("base", "instruct")) -> dict:
    return {
        "run_id": RUN_ID,
        "config_hash": CONFIG_HASH,
        "code_version": "no_git_metadata",
        "roles": list(roles),
        "models": {r: {"model_id": MODEL_IDS[r], "revision": None} for r in roles},
    }


def _prov_columns(role: str, dataset_role: str, stage: str) -> dict:
    return {
        "run_id": RUN_ID,
        "stage_id": stage,
        "model_id": MODEL_IDS[role],
        "model_role": role,
        "dataset_role": dataset_role,
        "config_hash": CONFIG_HASH,
        "code_version": "no_git_metadata",
    }


def _ci(record: dict, name: str, value: float, half: float = 0.02) -> None:
    record[name] = value
    record[f"{name}_ci_low"] = value - half
    record[f"{name}_ci_high"] = value + half


def make_t01(roles=("base", "instruct")) -> pd.DataFrame:
    rows = []
    for r_i, (role, spike, rate) in enumerate(itertools.product(roles, SPIKES, RATES)):
        b_tots = {g: 0.6 + 150 * rate + 0.2 * (1.0 - g) + 0.01 * r_i for g in GAINS}
        g_star = min(GAINS, key=lambda g: (abs(b_tots[g] - 1), abs(g - 1), g))
        for g_i, g in enumerate(GAINS):
            record = {**_prov_columns(role, "A", "T01_SUMMARY")}
            record.update(spike_def_id=spike, target_rate=rate, g=g, tau0_baseline=2.5)
            record.update(rate_match_tol=0.05, achieved_rate_mean=rate)
            record.update(achieved_rate_max_abs_err=rate * 1e-3)
            b_tot = b_tots[g]
            for metric, share in (("b_time", 0.55), ("b_depth", 0.45), ("b_tot", 1.0)):
                record[metric] = b_tot * share
                record[f"{metric}_perm"] = b_tot * share - 0.05 * share
                record[f"delta_{metric}"] = 0.05 * share
                record[f"opt_{metric}_ci_low"] = b_tot * share - 0.03
                record[f"opt_{metric}_ci_high"] = b_tot * share + 0.03
                record[f"opt_delta_{metric}_ci_low"] = 0.05 * share - 0.01
                record[f"opt_delta_{metric}_ci_high"] = 0.05 * share + 0.01
                for null, delta in (("shift", 0.01), ("tokshuf", 0.03)):
                    missing = null == "tokshuf" and g != 1.0 and g != g_star
                    value = np.nan if missing else delta * share
                    record[f"opt_{metric}_{null}"] = b_tot * share - value
                    record[f"opt_delta_{metric}_{null}"] = value
                    record[f"opt_delta_{metric}_{null}_ci_low"] = value - 0.005
                    record[f"opt_delta_{metric}_{null}_ci_high"] = value + 0.005
            record.update(chi=100 + 1e4 * rate - 10 * g, opt_chi_ci_low=80.0, opt_chi_ci_high=160.0)
            record.update(crackling_gamma=1.5, crackling_ci_low=1.4, crackling_ci_high=1.6)
            record.update(n_sequences=N, n_avalanches=40, avalanche_size_mean=3.0)
            record.update(avalanche_size_median=2.0, avalanche_span_tokens_mean=2.0)
            record.update(avalanche_span_layers_mean=1.5)
            spike_i, rate_i = SPIKES.index(spike), RATES.index(rate)
            record.update(
                opt_cond_id=(g_i * len(SPIKES) + spike_i) * len(RATES) + rate_i,
                opt_condition_key=f"A|{spike}|{rate!r}|{g!r}|MLP_GLOBAL",
                opt_is_gstar=bool(g == g_star),
                opt_marginals_preserved_perm=True,
                opt_marginals_preserved_shift=True,
                opt_bootstrap_replicates=200,
            )
            rows.append(record)
    table = pd.DataFrame(rows)
    assert set(tables.T01_COLUMNS) <= set(table.columns)
    return table


def make_rasters(seed: int = 0) -> EventRasters:
    rng = np.random.default_rng(seed)
    n_cond = len(GAINS) * len(SPIKES) * len(RATES)
    A = (rng.random((n_cond, N, L, T)) < 0.3) * rng.integers(1, 4, (n_cond, N, L, T))
    A = A.astype(np.uint16)
    return EventRasters(
        A=A,
        X=(A > 0).astype(np.uint8),
        cond_id=np.arange(n_cond, dtype=np.int32),
        seq_id=np.arange(100, 100 + N, dtype=np.int32),
    )


def make_tau_table(role: str) -> pd.DataFrame:
    rows = []
    for g, spike, rate, layer in itertools.product(GAINS, SPIKES, RATES, range(L)):
        r_star = rate * (0.8 + 0.1 * layer)
        rows.append(
            {
                "model_role": role,
                "intervention_id": "MLP_GLOBAL",
                "g": g,
                "spike_def_id": spike,
                "target_rate": rate,
                "layer": layer,
                "r_star": r_star,
                "achieved_rate_calibration": r_star,
                "achieved_rate_analysis": r_star * (1 + 0.2 * layer / g),
                # the events pipeline's gate max(rel_tol r*, 1/n) with rel_tol = 0.05
                "rate_match_tol": 0.05 * r_star,
            }
        )
    return pd.DataFrame(rows)


def g_star_of(t01: pd.DataFrame, role: str, spike: str, rate: float) -> float:
    """The g* that T01 marks (``opt_is_gstar``) for one (role, spike def, rate)."""
    rows = t01[(t01.model_role == role) & (t01.spike_def_id == spike) & (t01.target_rate == rate)]
    return float(rows.loc[rows.opt_is_gstar, "g"].iloc[0])


def make_t02(t01: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for role, spike, rate in itertools.product(t01.model_role.unique(), SPIKES, RATES):
        for condition in ("g1", "gstar"):
            g = 1.0 if condition == "g1" else g_star_of(t01, role, spike, rate)
            record = {**_prov_columns(role, "B", "T02_GENERALIZATION")}
            record.update(spike_def_id=spike, target_rate=rate, g_condition=condition, g=g)
            record.update(b_time=0.5, b_depth=0.4, chi=120.0, n_sequences=4, nll_mean=np.log(50))
            for name, value in (
                ("b_tot", 0.9 + 0.1 * g),
                ("delta_b_tot", 0.05 * g),
                ("ppl", 50 + g),
            ):
                record[name] = value
                record[f"opt_{name}_ci_low"] = value * 0.9
                record[f"opt_{name}_ci_high"] = value * 1.1
            rows.append(record)
    table = pd.DataFrame(rows)
    assert set(tables.T02_COLUMNS) <= set(table.columns)
    return table


def make_t03(t01: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for role, spike, rate in itertools.product(t01.model_role.unique(), SPIKES, RATES):
        for condition in ("g1", "gstar"):
            g = 1.0 if condition == "g1" else g_star_of(t01, role, spike, rate)
            record = {**_prov_columns(role, "ARC_MCQ", "T03_ARC")}
            record.update(spike_def_id=spike, target_rate=rate, g_condition=condition, g=g)
            record.update(n_questions=12, accuracy=0.25 + 0.1 * (g - 1))
            record.update(accuracy_ci_low=record["accuracy"] - 0.1)
            record.update(accuracy_ci_high=record["accuracy"] + 0.1)
            record.update(mean_logprob_correct_minus_incorrect=0.01 * g)
            rows.append(record)
    table = pd.DataFrame(rows)
    assert set(tables.T03_COLUMNS) <= set(table.columns)
    return table


def make_t06(t01: pd.DataFrame) -> pd.DataFrame:
    rows = []
    interventions = ["MLP_GLOBAL", "ATTN_GLOBAL", "MLP_BAND_EARLY", "MLP_BAND_MID", "MLP_BAND_LATE"]
    for role, spike, rate in itertools.product(t01.model_role.unique(), SPIKES, RATES):
        cells = [("g1", 1.0, "MLP_GLOBAL")]
        cells += [("gstar", g_star_of(t01, role, spike, rate), i) for i in interventions]
        for k, (condition, g, intervention) in enumerate(cells):
            record = {**_prov_columns(role, "A", "T06_ABLATIONS")}
            record.update(spike_def_id=spike, target_rate=rate, g_condition=condition, g=g)
            record.update(intervention_id=intervention, gain_target=intervention[:4].rstrip("_"))
            record.update(b_tot=0.9 + 0.02 * k, chi=100.0, n_sequences=N)
            record.update(achieved_rate_max_abs_err=1e-5)
            record.update(opt_chi_ci_low=90.0, opt_chi_ci_high=110.0)
            _ci(record, "delta_b_tot", 0.04 + 0.002 * k, 0.01)
            record["opt_delta_b_tot_ci_low"] = record.pop("delta_b_tot_ci_low")
            record["opt_delta_b_tot_ci_high"] = record.pop("delta_b_tot_ci_high")
            rows.append(record)
    table = pd.DataFrame(rows)
    assert set(tables.T06_COLUMNS) <= set(table.columns)
    return table


def draw(figure_id: str, roles=("base", "instruct")):
    """Call one figure function on synthetic inputs for ``roles``."""
    prov = provenance(roles)
    t01 = make_t01(roles)
    if figure_id == "F01_RASTER":
        return figures.f01_raster(t01, make_rasters(), prov)
    if figure_id == "F02_RATE_MATCHING":
        return figures.f02_rate_matching({r: make_tau_table(r) for r in roles}, prov)
    if figure_id == "F12_TRAINING_TRAJECTORY":  # a training series has its own roles
        from tests.study.trajectory_builder import make_t09
        from tests.study.trajectory_builder import provenance as series_provenance

        return figures.f12_training_trajectory(make_t09(), series_provenance())
    if figure_id in ("F13_LENS_DEPTH", "F14_COLLAPSE_VS_CASCADE"):  # the logit lens's tables
        from tests.study import lens_builder

        if figure_id == "F13_LENS_DEPTH":
            return figures.f13_lens_depth(lens_builder.make_t10(roles), prov)
        crosstabs = lens_builder.per_role(lens_builder.lens_collapse_crosstab, roles)
        return figures.f14_collapse_vs_cascade(lens_builder.make_t11(roles), crosstabs, prov)
    table = {
        "F06_GENERALIZATION_B": make_t02,
        "F07_ARC_ACCURACY": make_t03,
        "F11_ABLATIONS": make_t06,
    }.get(figure_id, lambda t: t)(t01)
    return figures.FIGURE_FUNCTIONS[figure_id](table, prov)


def saved_files(root: Path) -> list[Path]:
    """Every file under ``root`` (none when it does not exist), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def no_pyplot_figures():
    """The figure functions never register figures with pyplot."""
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before


def visible_texts(figure) -> list:
    """Every Text artist of ``figure`` a reader sees: visible and not blank (the figure is laid
    out first, so every tick label exists)."""
    import matplotlib.text

    figure.draw_without_rendering()
    return [
        text
        for text in figure.findobj(matplotlib.text.Text)
        if text.get_visible() and text.get_text().strip()
    ]


def assert_print_ready(figure) -> None:
    """One or two journal columns wide (3.5 or 7.2 in), at most 9.4 in tall, and no visible
    text under 7 pt (the figure is printed at the size it is drawn)."""
    from avalanche_kedro.study.figures import style

    width, height = figure.get_size_inches()
    assert width in (style.SINGLE_COLUMN_IN, style.DOUBLE_COLUMN_IN), width
    assert height <= style.MAX_HEIGHT_IN + 1e-9, height
    small = [(t.get_text(), t.get_fontsize()) for t in visible_texts(figure)]
    small = [(text, size) for text, size in small if size < style.MIN_FONT_PT]
    assert not small, small


def drawn_colours(figure) -> set[str]:
    """Hex colours (alpha dropped) of every data artist of every axes: lines and their markers,
    collections (error bars, scatters, bands) and patches (bars, spans); white and fully
    transparent paint (hollow markers, empty faces) is no colour."""
    import matplotlib.colors as mcolors

    found: set[str] = set()

    def add(values) -> None:
        array = mcolors.to_rgba_array(values) if len(np.atleast_1d(values)) else []
        for rgba in array:
            if rgba[3] > 0 and tuple(rgba[:3]) != (1.0, 1.0, 1.0):
                found.add(mcolors.to_hex(rgba[:3]))

    for ax in figure.axes:
        for line in ax.lines:
            if line.get_linestyle() not in ("None", "none", "", " "):
                add(line.get_color())
            if line.get_marker() not in (None, "None", "none", "", " "):
                for paint in (line.get_markerfacecolor(), line.get_markeredgecolor()):
                    if not (isinstance(paint, str) and paint.lower() == "none"):
                        add(paint)
        for collection in ax.collections:
            add(collection.get_facecolor())
            add(collection.get_edgecolor())
        for patch in ax.patches:
            add(patch.get_facecolor())
            if patch.get_linewidth() > 0:
                add(patch.get_edgecolor())
    return found
