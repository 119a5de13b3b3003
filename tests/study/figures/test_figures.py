"""Figures F01-F11 (SPEC §11): drawn from table-shaped frames and rasters only, every axis
labelled, provenance in the PNG and PDF metadata, nothing saved when drawing fails."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import DatasetError, Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from matplotlib.artist import Artist
from PIL import Image

from avalanche_kedro.analysis.lattice import label_components
from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.framework.datasets import FigureDataset, render_figure
from avalanche_kedro.measure.rasters import EventRasters
from avalanche_kedro.pipelines.reporting.figures_pipeline import create_figures_pipeline
from avalanche_kedro.study import figures, tables

# cross-role nodes read role datasets such as "base.tau_table" on purpose (as the registry does)
pytestmark = pytest.mark.filterwarnings("ignore:One or more dataset names contain")

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
            }
        )
    return pd.DataFrame(rows)


def _g_star(t01: pd.DataFrame, role: str, spike: str, rate: float) -> float:
    rows = t01[(t01.model_role == role) & (t01.spike_def_id == spike) & (t01.target_rate == rate)]
    return float(rows.loc[rows.opt_is_gstar, "g"].iloc[0])


def make_t02(t01: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for role, spike, rate in itertools.product(t01.model_role.unique(), SPIKES, RATES):
        for condition in ("g1", "gstar"):
            g = 1.0 if condition == "g1" else _g_star(t01, role, spike, rate)
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
            g = 1.0 if condition == "g1" else _g_star(t01, role, spike, rate)
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
        cells += [("gstar", _g_star(t01, role, spike, rate), i) for i in interventions]
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
    table = {
        "F06_GENERALIZATION_B": make_t02,
        "F07_ARC_ACCURACY": make_t03,
        "F11_ABLATIONS": make_t06,
    }.get(figure_id, lambda t: t)(t01)
    return figures.FIGURE_FUNCTIONS[figure_id](table, prov)


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    """The figure functions never register figures with pyplot."""
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before


# ---- figure functions ---------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [("base", "instruct"), ("base",)], ids=["two_roles", "one_role"])
@pytest.mark.parametrize("figure_id", list(figures.FIGURE_FUNCTIONS))
def test_every_axis_is_labelled_and_titled(figure_id, roles):
    figure = draw(figure_id, roles)
    assert figure.get_suptitle()
    assert figure.axes
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel(), f"{figure_id}: colorbar without a label"
            continue
        assert ax.get_xlabel(), f"{figure_id}: axes '{ax.get_title()}' has no x label"
        assert ax.get_ylabel(), f"{figure_id}: axes '{ax.get_title()}' has no y label"
        assert ax.get_title(), f"{figure_id}: an axes has no title"
        assert ax.has_data(), f"{figure_id}: axes '{ax.get_title()}' is empty"
    metadata = figures.figure_metadata(figure)
    assert metadata["figure_id"] == figure_id
    assert metadata["run_id"] == RUN_ID
    assert metadata["config_hash"] == CONFIG_HASH
    assert metadata["condition"]
    assert "tiny-base" in metadata["model_ids"]
    assert ("tiny-instruct" in metadata["model_ids"]) == (
        len(roles) == 2 and figure_id != "F01_RASTER"
    )


def test_units_in_axis_labels():
    figure = draw("F03_BRANCHING_VS_GAIN")
    ax = figure.axes[0]
    assert "×" in ax.get_xlabel() and "per occupied site" in ax.get_ylabel()
    assert "events per unit per token" in draw("F02_RATE_MATCHING").axes[0].get_ylabel()
    assert "dimensionless" in draw("F05_GSTAR_SELECTION").axes[0].get_ylabel()


def test_f04_says_the_null_preserves_the_marginals():
    figure = draw("F04_DELTA_B_VS_GAIN")
    text = " ".join(legend.get_title().get_text() for legend in figure.legends)
    assert "preserved exactly" in text.replace("\n", " ")
    assert "(window, layer)" in text
    assert (
        "preserves every (window, layer) marginal exactly"
        in figures.figure_metadata(figure)["condition"]
    )


def _expected_component_colours(window_labels: np.ndarray) -> np.ndarray:
    """Independent of figures.component_colours: rank labels by their first site."""
    expected = np.ones((*window_labels.shape, 4))
    rank: dict[int, int] = {}
    for (l_index, t_index), label in np.ndenumerate(window_labels):
        if label == 0:
            continue
        rank.setdefault(int(label), len(rank))
        palette = figures.COMPONENT_PALETTE
        expected[l_index, t_index] = palette[rank[int(label)] % len(palette)]
    return expected


def test_f01_colours_are_the_components_of_label_components():
    t01, rasters = make_t01(), make_rasters()
    figure = figures.f01_raster(t01, rasters, provenance(), seq_index=2)
    # default: base role, one-sided, the middle rate, its g*
    rate = sorted(RATES)[len(RATES) // 2]
    g_star = _g_star(t01, "base", "SPIKE_ONE_SIDED_POS", rate)
    row = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == rate)
        & (t01.g == g_star)
    ]
    counts = rasters.counts(int(row.opt_cond_id.iloc[0]))
    labels, _ = label_components(counts, "ADJ_4N")
    counts_ax, components_ax = (ax for ax in figure.axes if ax.get_label() != "<colorbar>")
    shown = np.asarray(components_ax.images[0].get_array())
    np.testing.assert_array_equal(shown, _expected_component_colours(labels[2]))
    # sites of one component share a colour; empty sites are white
    for label in np.unique(labels[2][labels[2] > 0]):
        assert len(np.unique(shown[labels[2] == label], axis=0)) == 1
    assert (shown[labels[2] == 0] == 1.0).all()
    np.testing.assert_array_equal(
        np.ma.filled(counts_ax.images[0].get_array(), 0), counts[2].astype(float)
    )
    metadata = figures.figure_metadata(figure)
    assert f"seq_id={int(rasters.seq_id[2])}" in metadata["condition"]
    assert f"g={g_star:g} (g*)" in metadata["condition"]


def test_f01_default_window_is_the_median_total():
    rasters = make_rasters()
    figure = figures.f01_raster(make_t01(), rasters, provenance())
    condition = figures.figure_metadata(figure)["condition"]
    seq_index = int(condition.split("seq_index=")[1].split(";")[0])
    t01 = make_t01()
    rate = sorted(RATES)[len(RATES) // 2]
    row = t01[
        (t01.model_role == "base")
        & (t01.spike_def_id == "SPIKE_ONE_SIDED_POS")
        & (t01.target_rate == rate)
        & t01.opt_is_gstar
    ]
    totals = rasters.counts(int(row.opt_cond_id.iloc[0])).reshape(N, -1).sum(axis=1)
    assert seq_index == int(np.argsort(totals, kind="stable")[(N - 1) // 2])


def test_tables_of_another_run_are_refused():
    other = {**provenance(), "run_id": "run-ffffffffffffffff"}
    with pytest.raises(ArtifactError, match="run_id"):
        figures.f03_branching_vs_gain(make_t01(), other)


def test_missing_columns_are_named():
    with pytest.raises(ArtifactError, match="delta_b_tot"):
        figures.f10_null_comparison(make_t01().drop(columns="delta_b_tot"), provenance())


def test_output_is_deterministic():
    for fmt in ("png", "pdf"):
        first = render_figure(draw("F05_GSTAR_SELECTION"), fmt, {"dpi": 50})
        second = render_figure(draw("F05_GSTAR_SELECTION"), fmt, {"dpi": 50})
        assert first == second, fmt


# ---- the dataset --------------------------------------------------------------------------------


def _saved_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_dataset_writes_png_and_pdf_with_provenance(tmp_path):
    dataset = FigureDataset(
        filepath=str(tmp_path / "figures" / "F09"),
        save_args={"dpi": 40},
        version=Version(None, "v1"),
    )
    figure = draw("F09_SUSCEPTIBILITY")
    dataset.save(figure)
    folder = tmp_path / "figures" / "F09" / "v1" / "F09"
    assert [p.name for p in _saved_files(tmp_path)] == ["F09.pdf", "F09.png"]
    assert dataset.exists()

    text = Image.open(folder / "F09.png").text
    for key in ("Title", "Subject", "Keywords", "Creator", *figures.REQUIRED_METADATA):
        assert text.get(key), key
    assert text["run_id"] == RUN_ID and text["config_hash"] == CONFIG_HASH
    assert "base:tiny-base" in text["model_ids"] and "dataset_role=A" in text["condition"]

    pdf = (folder / "F09.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    for key in ("Title", "Subject", "Keywords", "Creator", "figure_id", "model_ids", "condition"):
        assert f"/{key} (".encode() in pdf, key
    assert f"/run_id ({RUN_ID})".encode() in pdf
    assert f"/config_hash ({CONFIG_HASH})".encode() in pdf
    assert b"/CreationDate" not in pdf  # reproducible

    # a second version of the same figure is byte-identical
    FigureDataset(
        filepath=str(tmp_path / "figures" / "F09"),
        save_args={"dpi": 40},
        version=Version(None, "v2"),
    ).save(draw("F09_SUSCEPTIBILITY"))
    for name in ("F09.png", "F09.pdf"):
        again = tmp_path / "figures" / "F09" / "v2" / "F09" / name
        assert again.read_bytes() == (folder / name).read_bytes()


def test_dataset_refuses_a_figure_without_provenance(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([1, 2])
    dataset = FigureDataset(filepath=str(tmp_path / "plain"), version=Version(None, "v1"))
    with pytest.raises(DatasetError, match="provenance"):
        dataset.save(figure)
    assert _saved_files(tmp_path) == []
    with pytest.raises(DatasetError, match="not supported"):
        dataset.load()


class _FailsInPdf(Artist):
    """Draws nothing in PNG and raises in PDF: the PNG is rendered before the failure."""

    def draw(self, renderer):
        from matplotlib.backends.backend_agg import RendererAgg

        if not isinstance(renderer, RendererAgg):  # the PDF backend's (mixed-mode) renderer
            raise RuntimeError("cannot draw this in PDF")


def test_nothing_is_written_when_one_format_fails(tmp_path):
    figure = draw("F07_ARC_ACCURACY")
    figure.add_artist(_FailsInPdf())
    dataset = FigureDataset(filepath=str(tmp_path / "F07"), version=Version(None, "v1"))
    with pytest.raises(Exception, match="cannot draw this in PDF"):
        dataset.save(figure)
    assert _saved_files(tmp_path) == []


def test_nothing_is_saved_when_a_figure_function_raises(tmp_path):
    broken_t01 = make_t01().drop(columns=["b_tot"])
    catalog = DataCatalog(
        {
            "run_provenance": MemoryDataset(provenance()),
            "T01_SUMMARY": MemoryDataset(broken_t01),
            "F03_BRANCHING_VS_GAIN": FigureDataset(
                filepath=str(tmp_path / "F03"), version=Version(None, None)
            ),
        }
    )
    from avalanche_kedro.pipelines.reporting import figures_nodes

    pipeline = Pipeline(
        [
            node(
                figures_nodes.draw_f03,
                ["run_provenance", "T01_SUMMARY"],
                "F03_BRANCHING_VS_GAIN",
                name="draw_F03",
            )
        ]
    )
    with pytest.raises(ArtifactError, match="b_tot"):
        SequentialRunner().run(pipeline, catalog)
    assert _saved_files(tmp_path) == []


# ---- Kedro wiring -------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [["base"], ["base", "instruct"]])
def test_figures_pipeline_needs_no_replication(roles):
    pipeline = create_figures_pipeline(roles)
    assert sorted(pipeline.outputs()) == sorted(figures.FIGURES)
    assert "T07_REPLICATION_SUMMARY" not in pipeline.inputs()
    assert "replication_A" not in pipeline.inputs()
    assert f"{roles[0]}.event_rasters_A" in pipeline.inputs()
    assert {f"{r}.tau_table" for r in roles} <= pipeline.inputs()


def test_catalog_has_a_versioned_figure_dataset_per_figure():
    from kedro.config import OmegaConfigLoader

    from tests.conftest import PROJECT_ROOT

    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base", env="base"
    )
    catalog = loader["catalog"]
    for figure_id in figures.FIGURES:
        entry = catalog[figure_id]
        assert entry["type"] == "avalanche_kedro.framework.datasets.FigureDataset"
        assert entry["versioned"] is True
        assert entry["filepath"] == f"data/08_reporting/figures/{figure_id}"
        assert list(entry["formats"]) == ["png", "pdf"]
    assert not any(name.startswith("_") for name in catalog)


@pytest.mark.slow
def test_figures_pipeline_runs_on_saved_outputs(tmp_path):
    """The whole figures pipeline on synthetic tables and rasters: 11 PNG + 11 PDF."""
    roles = ["base"]
    t01 = make_t01(roles)
    inputs = {
        "run_provenance": provenance(roles),
        "T01_SUMMARY": t01,
        "T02_GENERALIZATION": make_t02(t01),
        "T03_ARC": make_t03(t01),
        "T06_ABLATIONS": make_t06(t01),
        "base.tau_table": make_tau_table("base"),
        "base.event_rasters_A": make_rasters(),
    }
    datasets = {name: MemoryDataset(value, copy_mode="assign") for name, value in inputs.items()}
    for figure_id in figures.FIGURES:
        datasets[figure_id] = FigureDataset(
            filepath=str(tmp_path / figure_id), save_args={"dpi": 30}, version=Version(None, "v")
        )
    SequentialRunner().run(create_figures_pipeline(roles), DataCatalog(datasets))
    for figure_id in figures.FIGURES:
        folder = tmp_path / figure_id / "v" / figure_id
        assert sorted(p.name for p in folder.iterdir()) == [f"{figure_id}.pdf", f"{figure_id}.png"]
        assert Image.open(folder / f"{figure_id}.png").text["figure_id"] == figure_id
