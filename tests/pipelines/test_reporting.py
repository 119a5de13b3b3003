"""The reporting pipeline: figures F01-F11 and the run report wired into Kedro (nodes,
pipelines, catalog entries), on synthetic tables and on the latest saved run."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from PIL import Image

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.framework.datasets import FigureDataset
from avalanche_kedro.pipelines import reporting
from avalanche_kedro.pipelines.reporting import report_nodes
from avalanche_kedro.pipelines.reporting.figures_pipeline import create_figures_pipeline
from avalanche_kedro.pipelines.reporting.report_pipeline import create_report_pipeline
from avalanche_kedro.study import figures, report
from avalanche_kedro.study.schemas import SCHEMAS
from avalanche_kedro.study.tables import PROVENANCE_COLUMNS, TABLE_IDS
from tests.conftest import PROJECT_ROOT
from tests.study.figures import tables_builder as figure_tables
from tests.study.figures.tables_builder import no_pyplot_figures  # noqa: F401 (a fixture)
from tests.study.report.tables_builder import Scenario, make_tables
from tests.study.report.tables_builder import provenance as report_provenance

# cross-role nodes read role datasets such as "base.tau_table" on purpose (as the registry does)
pytestmark = pytest.mark.filterwarnings("ignore:One or more dataset names contain")


# ---- figures ------------------------------------------------------------------------------------

LENS_FIGURES = {"F13_LENS_DEPTH", "F14_COLLAPSE_VS_CASCADE"}


@pytest.mark.usefixtures("no_pyplot_figures")
def test_nothing_is_saved_when_a_figure_function_raises(tmp_path):
    broken_t01 = figure_tables.make_t01().drop(columns=["b_tot"])
    catalog = DataCatalog(
        {
            "run_provenance": MemoryDataset(figure_tables.provenance()),
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
    assert figure_tables.saved_files(tmp_path) == []


@pytest.mark.usefixtures("no_pyplot_figures")
@pytest.mark.parametrize("roles", [["base"], ["base", "instruct"]])
def test_figures_pipeline_needs_no_replication(roles):
    pipeline = create_figures_pipeline(roles)
    series_only = {"F12_TRAINING_TRAJECTORY"}
    drawn = set(figures.FIGURES) - series_only - LENS_FIGURES
    # the contact sheet reads every figure back, so it is the one final output
    assert pipeline.outputs() == {figures.CONTACT_SHEET}
    assert sorted(pipeline.all_outputs()) == sorted(drawn | {figures.CONTACT_SHEET})
    assert "T07_REPLICATION_SUMMARY" not in pipeline.inputs()
    assert "replication_A" not in pipeline.inputs()
    assert f"{roles[0]}.event_rasters_A" in pipeline.inputs()
    assert {f"{r}.tau_table" for r in roles} <= pipeline.inputs()
    series = create_figures_pipeline(roles, trajectory=True)
    assert sorted(series.all_outputs()) == sorted(
        set(figures.FIGURES) - LENS_FIGURES | {figures.CONTACT_SHEET}
    )
    assert "T09_TRAINING_TRAJECTORY" in series.inputs()
    everything = create_figures_pipeline(roles, trajectory=True, lens=True)
    assert sorted(everything.all_outputs()) == sorted([*figures.FIGURES, figures.CONTACT_SHEET])


@pytest.mark.parametrize(("trajectory", "lens"), [(False, False), (True, False), (True, True)])
def test_the_contact_sheet_shows_exactly_the_figures_the_pipeline_draws(trajectory, lens):
    pipeline = create_figures_pipeline(["base", "instruct"], trajectory=trajectory, lens=lens)
    (sheet,) = [n for n in pipeline.nodes if n.outputs == [figures.CONTACT_SHEET]]
    drawn = sorted(pipeline.all_outputs() - {figures.CONTACT_SHEET})
    # the sheet reads every figure back (FigureDataset loads the PNG) and nothing else reads them
    assert sorted(sheet.inputs) == sorted(["run_provenance", *drawn])
    for figure_id in drawn:
        (producer,) = [n for n in pipeline.nodes if figure_id in n.outputs]
        assert producer.outputs == [figure_id]
        assert [n.name for n in pipeline.nodes if figure_id in n.inputs] == [sheet.name]


@pytest.mark.usefixtures("no_pyplot_figures")
def test_catalog_has_a_versioned_figure_dataset_per_figure():
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base", env="base"
    )
    catalog = loader["catalog"]
    for figure_id in [*figures.FIGURES, figures.CONTACT_SHEET]:
        entry = catalog[figure_id]
        assert entry["type"] == "avalanche_kedro.framework.datasets.FigureDataset"
        assert entry["versioned"] is True
        assert entry["filepath"] == f"data/08_reporting/figures/{figure_id}"
        assert list(entry["formats"]) == ["png", "pdf"]
    assert not any(name.startswith("_") for name in catalog)
    assert not [name for name in catalog if "thumbnail" in name]  # the sheet reads the PNGs


@pytest.mark.slow
@pytest.mark.usefixtures("no_pyplot_figures")
def test_figures_pipeline_runs_on_saved_outputs(tmp_path):
    """The whole figures pipeline on synthetic tables and rasters: 11 PNG + 11 PDF and the
    contact sheet of them (F12 needs a training series: tests/pipelines/test_trajectory.py)."""
    roles = ["base"]
    t01 = figure_tables.make_t01(roles)
    inputs = {
        "run_provenance": figure_tables.provenance(roles),
        "T01_SUMMARY": t01,
        "T02_GENERALIZATION": figure_tables.make_t02(t01),
        "T03_ARC": figure_tables.make_t03(t01),
        "T06_ABLATIONS": figure_tables.make_t06(t01),
        "base.tau_table": figure_tables.make_tau_table("base"),
        "base.event_rasters_A": figure_tables.make_rasters(),
    }
    datasets = {name: MemoryDataset(value, copy_mode="assign") for name, value in inputs.items()}
    pipeline = create_figures_pipeline(roles)
    drawn = sorted(pipeline.all_outputs())
    assert len(drawn) == 12  # F01-F11 and their contact sheet
    for figure_id in drawn:
        datasets[figure_id] = FigureDataset(
            filepath=str(tmp_path / figure_id), save_args={"dpi": 30}, version=Version(None, "v")
        )
    SequentialRunner().run(pipeline, DataCatalog(datasets))
    for figure_id in drawn:
        folder = tmp_path / figure_id / "v" / figure_id
        assert sorted(p.name for p in folder.iterdir()) == [f"{figure_id}.pdf", f"{figure_id}.png"]
        assert Image.open(folder / f"{figure_id}.png").text["figure_id"] == figure_id


# ---- the run report -----------------------------------------------------------------------------


def test_node_reads_six_tables_for_one_role_seven_for_two_and_eight_with_a_control():
    frames = make_tables({"base": Scenario()})
    single, single_html = report_nodes.build_run_report(
        report_provenance(),
        "2026-01-01T00.00.00.000Z",
        *[frames[t] for t in report.TABLE_NAMES if t not in ("T07", "T08", "T09")],
        figures=["F03_BRANCHING_VS_GAIN"],
    )
    link = (
        "../../figures/F03_BRANCHING_VS_GAIN/2026-01-01T00.00.00.000Z/F03_BRANCHING_VS_GAIN/"
        "F03_BRANCHING_VS_GAIN.png"
    )
    assert f"[F03_BRANCHING_VS_GAIN]: {link}" in single.splitlines()
    assert f'<img src="{link}"' in single_html
    assert "Replication was not run" in single
    assert "no untrained control in this run — signatures cannot be called specific" in single
    both = make_tables({"base": Scenario(), "instruct": Scenario()})
    text, _ = report_nodes.build_run_report(
        report_provenance(("base", "instruct")),
        None,  # no save version: the figures are not linked, and the report says so
        *[both[t] for t in report.TABLE_NAMES if t not in ("T08", "T09")],
    )
    assert "| instruct − base |" in text and "Figures not linked" in text
    assert "no untrained control in this run" in text
    roles = ("base", "instruct", "untrained")
    three = make_tables({r: Scenario() for r in roles}, control="untrained")
    text, _ = report_nodes.build_run_report(
        report_provenance(roles), "v", *[three[t] for t in report.TABLE_NAMES if t != "T09"]
    )
    assert "| instruct − untrained |" in text and "| base − untrained |" in text
    assert "no untrained control in this run" not in text
    with pytest.raises(ValueError, match="expected"):
        report_nodes.build_run_report(report_provenance(), "v", frames["T01"])


def test_pipeline_inputs_follow_the_roles_and_the_reporting_pipeline_includes_it():
    single = create_report_pipeline(["base"])
    assert single.outputs() == {"run_report", "run_report_html"}
    assert "T07_REPLICATION_SUMMARY" not in single.inputs()
    assert {"run_provenance", "run_save_version", "T01_SUMMARY", "T06_ABLATIONS"} <= (
        single.inputs()
    )
    # the report links exactly the figures the same configuration draws
    (node,) = single.nodes
    assert set(node.func.keywords["figures"]) == create_figures_pipeline(["base"]).all_outputs()
    assert all(name.startswith(("F", "CONTACT_SHEET")) for name in node.func.keywords["figures"])
    lens = create_report_pipeline(["base", "untrained"], "untrained", lens=True).nodes[0]
    assert {"F13_LENS_DEPTH", "F14_COLLAPSE_VS_CASCADE"} <= set(lens.func.keywords["figures"])
    assert "F12_TRAINING_TRAJECTORY" not in lens.func.keywords["figures"]
    assert "T07_REPLICATION_SUMMARY" in create_report_pipeline(["base", "instruct"]).inputs()
    assert "T08_TRAINED_VS_UNTRAINED" not in create_report_pipeline(["base", "instruct"]).inputs()
    assert "run_report" in reporting.create_pipeline(["base"]).all_outputs()
    # T08 and its table node only when the control is one of the roles
    roles = ["base", "untrained"]
    assert "T08_TRAINED_VS_UNTRAINED" in create_report_pipeline(roles, "untrained").inputs()
    with_control = reporting.create_pipeline(roles, control_role="untrained")
    assert "trained_vs_untrained_A" in with_control.inputs()
    assert "T08_TRAINED_VS_UNTRAINED" in with_control.all_outputs()  # Parquet + CSV in one
    assert not any(name.endswith("_csv") for name in with_control.all_outputs())
    for control in ("untrained", None):
        outputs = reporting.create_pipeline(
            ["base", "instruct"], control_role=control
        ).all_outputs()
        assert "T08_TRAINED_VS_UNTRAINED" not in outputs


def test_catalog_entry_is_a_versioned_markdown_text_dataset():
    from kedro.config import OmegaConfigLoader

    raw = yaml.safe_load((PROJECT_ROOT / "conf/base/catalog_report.yml").read_text())
    assert raw["run_report"]["filepath"] == "${globals:data_root}/08_reporting/report.md"
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base"
    )
    for name, file in (("run_report", "report.md"), ("run_report_html", "report.html")):
        entry = loader["catalog"][name]
        assert entry["type"] == "avalanche_kedro.framework.datasets.TextDataset"
        assert entry["filepath"] == f"data/08_reporting/{file}"  # data_root defaults to data
        assert entry["versioned"] is True
        assert entry["metadata"] == {"kedro-viz": {"layer": "reporting"}}
    # the report's links assume the report and the figures under the same 08_reporting folder
    figures = loader["catalog"]["F03_BRANCHING_VS_GAIN"]["filepath"]
    report_folder = Path(loader["catalog"]["run_report"]["filepath"])
    assert (report_folder / "V" / report_nodes.FIGURES_FROM_REPORT).resolve() == (
        Path(figures).parent.resolve()
    )


def test_run_save_version_is_the_catalogs_save_version():
    from kedro.config import OmegaConfigLoader
    from kedro.io import DatasetError

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base"
    )
    config = {"run_save_version": loader["catalog"]["run_save_version"]}
    catalog = DataCatalog.from_config(config, save_version="2026-01-01T00.00.00.000Z")
    assert catalog.load("run_save_version") == "2026-01-01T00.00.00.000Z"
    assert catalog.exists("run_save_version")
    with pytest.raises(DatasetError, match="read-only"):
        catalog.save("run_save_version", "other")


def _latest(pattern: str) -> Path | None:
    versions = sorted(glob.glob(str(PROJECT_ROOT / pattern)))
    return Path(versions[-1]) if versions else None


def test_report_from_the_latest_saved_tables_renders():
    base = "data/08_reporting"
    found = {
        short: _latest(f"{base}/tables/{name}.parquet/*/{name}.parquet")
        for short, name in report.TABLE_NAMES.items()
    }
    prov_path = _latest(f"{base}/run_provenance.json/*/run_provenance.json")
    if prov_path is None or any(found[t] is None for t in report.REQUIRED_TABLES):
        pytest.skip("no saved run in this checkout (run `kedro run` first)")
    frames = {t: pd.read_parquet(p) if p is not None else None for t, p in found.items()}
    prov = json.loads(prov_path.read_text())
    if len(prov.get("roles", [])) < 2:
        frames["T07"] = None
    # the latest T08/T09 may come from a run of another environment (other roles)
    for key, column in (("T08", "compared_role"), ("T09", "model_role")):
        frame = frames.get(key)
        if frame is not None and not set(frame[column]) <= set(prov.get("roles", [])):
            frames[key] = None
    text = report.build_report(prov, frames)
    n_groups = len(frames["T01"][report.GROUP_KEYS].drop_duplicates())
    lines = text.splitlines()
    for title in ("## S1:", "## S2:", "## S3:", "## Falsifier (a)", "## Falsifier (c)"):
        section = text.split(f"\n{title}")[1].split("\n## ")[0].splitlines()
        rows = [
            line
            for line in section
            if line.startswith("| ")
            and line.split("|")[-2].strip().startswith(("T01:", "T05:", "T02:"))
        ]
        assert len(rows) == n_groups, title  # one table row per group, citing its rows
    assert "## Replication (T07)" in text and "T01:" in text
    assert max(len(line) for line in lines) <= report.MAX_LINE


@pytest.fixture(scope="module")
def loaded(control_run):
    """(catalog, params) after every pipeline ran for two roles, plus T08 with `instruct` as the
    control role (tests/pipelines/conftest.py)."""
    catalog, _root, params = control_run
    return catalog, params


# T09 needs a training series: tests/pipelines/test_trajectory.py
TABLES = {key: TABLE_IDS[key] for key in SCHEMAS if key != "T09"}


@pytest.mark.parametrize("key", sorted(TABLES))
def test_every_table_is_saved_validated_and_stamped(loaded, key):
    catalog, params = loaded
    name = TABLES[key]
    table = catalog.load(name)  # the catalog validates on load too
    SCHEMAS[key].validate(table)
    assert list(table.columns[: len(PROVENANCE_COLUMNS)]) == PROVENANCE_COLUMNS
    provenance = catalog.load("run_provenance")
    assert set(table["run_id"]) == {provenance["run_id"]}
    assert set(table["config_hash"]) == {provenance["config_hash"]}
    # the CSV copy written by the same TableDataset entry, in the same version folder name
    dataset = catalog.get(name)
    csv_path = Path(str(dataset.csv_load_path()))
    assert csv_path.parent.name == Path(str(dataset._get_load_path())).parent.name
    csv = pd.read_csv(csv_path)
    assert list(csv.columns) == list(table.columns) and len(csv) == len(table)
    numeric = table.select_dtypes("number").columns
    pd.testing.assert_frame_equal(
        csv[numeric].reset_index(drop=True),
        table[numeric].reset_index(drop=True),
        check_dtype=False,
    )


def test_t01_covers_both_roles_every_gain(loaded):
    catalog, params = loaded
    t01 = catalog.load("T01_SUMMARY")
    assert len(t01) == 2 * 2 * 2 * len(params["gain_grid"])
    assert (
        t01.groupby(["model_role", "spike_def_id", "target_rate"])["opt_is_gstar"].sum().eq(1).all()
    )
    assert np.isfinite(t01["b_tot"]).all()


def test_an_invalid_table_is_refused_and_nothing_is_written(loaded, tmp_path):
    catalog, _ = loaded
    table = catalog.load("T02_GENERALIZATION")
    folder = Path(str(catalog.get("T02_GENERALIZATION")._filepath))
    before = sorted(p for p in folder.rglob("*") if p.is_file())
    broken = table.drop(index=table.index[0])  # one (role, spike def, rate, g_condition) missing
    with pytest.raises(Exception, match="Validation failed"):
        catalog.save("T02_GENERALIZATION", broken)
    assert sorted(p for p in folder.rglob("*") if p.is_file()) == before


def test_report_marks_specificity_against_the_control_and_says_when_there_is_none(loaded):
    catalog, _ = loaded
    without = catalog.load("run_report")  # the two-role run: no control role among its roles
    assert (
        "Specificity: no untrained control in this run — signatures cannot be called specific."
        in (without)
    )
    assert "Against the untrained control" not in without
    text = catalog.load("run_report_with_control")
    t08 = catalog.load("T08_TRAINED_VS_UNTRAINED")
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("| instruct (control) |")]  # verdict table
    for position, row in enumerate(t08.itertuples()):
        cited = f"T08:{position}"
        assert row.compared_role == "base" and row.control_role == "instruct"
        key = f"| base | {row.spike_def_id} | {float(row.target_rate)!r} |"
        # the verdict table and the S1-S3 tables cite the T08 row in the group's line
        assert sum(line.startswith(key) and cited in line for line in lines) == 4
        # and so do the two tables of paired differences (at g* and at g = 1)
        diff_key = f"| base − instruct | {row.spike_def_id} | {float(row.target_rate)!r} |"
        assert (
            sum(line.startswith(diff_key) and line.endswith(f"| {cited} |") for line in lines) == 2
        )
    assert "Control role `instruct`" in text and "| base vs instruct |" in text


def test_t01_carries_the_token_shuffle_null_at_g1_and_at_its_own_gstar_only(loaded):
    catalog, _ = loaded
    t01 = catalog.load("T01_SUMMARY")
    # recorded at g = 1 (events pipeline) and at each g* (calibration pipeline); compared only
    # where the report reads it: g = 1 and each (spike def, rate) at its own g*
    expected = [
        g == 1.0 or bool(is_gstar)
        for g, is_gstar in zip(t01["g"], t01["opt_is_gstar"], strict=True)
    ]
    assert t01["opt_delta_b_tot_tokshuf"].notna().tolist() == expected
    for role in ("base", "instruct"):
        # g = 1 from the events pipeline (controls_summary_A), every other g* from calibration
        sources = {
            True: catalog.load(f"{role}.controls_summary_A").set_index("cond_id"),
            False: catalog.load(f"{role}.controls_summary_gstar_A").set_index("cond_id"),
        }
        rows = t01[(t01["model_role"] == role) & t01["opt_is_gstar"].astype(bool)]
        for row in rows.itertuples():
            source = sources[row.g == 1.0]
            assert row.opt_delta_b_tot_tokshuf == source.loc[row.opt_cond_id, "delta_b_tot_tokshuf"]


# ---- the logit lens (lens=True): T10, T11, F13, F14 and the report's lens section --------------

LENS_ROLES = ["base", "instruct", "untrained"]
LENS_NODES = {
    "reporting.tables.build_T10_LENS",
    "reporting.tables.build_T11_COLLAPSE_VS_CASCADE",
    "reporting.figures.draw_F13_LENS_DEPTH",
    "reporting.figures.draw_F14_COLLAPSE_VS_CASCADE",
}


def _whole(lens: bool, roles=LENS_ROLES, control="untrained") -> Pipeline:
    return reporting.create_pipeline(
        roles, control_role=control, trajectory={}, models={}, lens=lens
    )


def test_without_the_lens_nothing_reads_or_writes_a_lens_table():
    pipeline = _whole(lens=False)
    names = {n.name for n in pipeline.nodes}
    assert not names & LENS_NODES
    assert not {d for d in pipeline.all_inputs() | pipeline.all_outputs() if "lens" in d.lower()}
    assert not {"T10_LENS", "T11_COLLAPSE_VS_CASCADE"} & pipeline.all_outputs()
    assert names == {
        n.name
        for n in reporting.create_pipeline(
            LENS_ROLES, control_role="untrained", trajectory={}, models={}
        ).nodes
    }  # lens=False is the default


@pytest.mark.parametrize("roles", [["base"], LENS_ROLES])
def test_with_the_lens_every_role_feeds_t10_t11_f13_f14_and_the_report(roles):
    pipeline = _whole(lens=True, roles=roles)
    added = {n.name for n in pipeline.nodes} - {n.name for n in _whole(False, roles).nodes}
    assert added == LENS_NODES
    nodes = {n.name: n for n in pipeline.nodes}
    t10 = nodes["reporting.tables.build_T10_LENS"]
    assert t10.inputs == [
        "run_provenance",
        *[f"{r}.{name}" for r in roles for name in ("model_manifest", "lens_layers")],
    ]
    assert t10.outputs == ["T10_LENS"]
    t11 = nodes["reporting.tables.build_T11_COLLAPSE_VS_CASCADE"]
    assert t11.inputs[1:] == [
        f"{r}.{name}" for r in roles for name in ("model_manifest", "lens_alignment")
    ]
    assert t11.outputs == ["T11_COLLAPSE_VS_CASCADE"]
    assert nodes["reporting.figures.draw_F13_LENS_DEPTH"].inputs == ["run_provenance", "T10_LENS"]
    assert nodes["reporting.figures.draw_F14_COLLAPSE_VS_CASCADE"].inputs == [
        "run_provenance",
        "T11_COLLAPSE_VS_CASCADE",
        *[f"{r}.lens_collapse_crosstab" for r in roles],
    ]
    assert nodes["reporting.figures.draw_F14_COLLAPSE_VS_CASCADE"].outputs == [
        "F14_COLLAPSE_VS_CASCADE"
    ]
    report_inputs = nodes["reporting.report.build_run_report"].inputs
    assert report_inputs[-2:] == ["T10_LENS", "T11_COLLAPSE_VS_CASCADE"]
    assert create_report_pipeline(roles, lens=True).inputs() >= {
        "T10_LENS",
        "T11_COLLAPSE_VS_CASCADE",
    }


def test_catalog_declares_the_lens_tables_with_their_schemas():
    from kedro.config import OmegaConfigLoader

    from avalanche_kedro.study import lens

    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base", env="base"
    )
    catalog = loader["catalog"]
    for name, schema in (("T10_LENS", "T10_SCHEMA"), ("T11_COLLAPSE_VS_CASCADE", "T11_SCHEMA")):
        entry = catalog[name]
        assert entry["type"] == "avalanche_kedro.framework.datasets.TableDataset"
        assert entry["versioned"] is True
        assert entry["filepath"] == f"data/08_reporting/tables/{name}.parquet"
        assert entry["validator"] == f"avalanche_kedro.study.lens.{schema}"
        assert isinstance(getattr(lens, schema), type(SCHEMAS["T01"]))
    # one entry per table: the TableDataset writes the CSV copy beside the Parquet file
    assert not any(name.endswith("_csv") for name in catalog)


def _lens_catalog(tmp_path) -> DataCatalog:
    """The project's T10/T11 entries (validators included) writing under ``tmp_path``, the
    role tables and T01-T08 in memory, the figures as FigureDatasets."""
    from kedro.config import OmegaConfigLoader

    from tests.study import lens_builder

    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base", env="base"
    )
    config = {
        name: {**loader["catalog"][name], "filepath": str(tmp_path / f"{name}.parquet")}
        for name in ("T10_LENS", "T11_COLLAPSE_VS_CASCADE")
    }
    for name in list(config):
        config[name]["versioned"] = False
    catalog = DataCatalog.from_config(config, save_version="v")
    inputs = {
        "run_provenance": lens_builder.provenance(),
        **make_tables({role: Scenario() for role in LENS_ROLES}, control="untrained"),
    }
    inputs = {report.TABLE_NAMES.get(k, k): v for k, v in inputs.items() if v is not None}
    for role in LENS_ROLES:
        inputs[f"{role}.model_manifest"] = lens_builder.model_manifests()[role]
        inputs[f"{role}.lens_layers"] = lens_builder.lens_layers(role)
        inputs[f"{role}.lens_alignment"] = lens_builder.lens_alignment(role)
        inputs[f"{role}.lens_collapse_crosstab"] = lens_builder.lens_collapse_crosstab(role)
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    for figure_id in LENS_FIGURES:
        catalog[figure_id] = FigureDataset(
            filepath=str(tmp_path / figure_id), save_args={"dpi": 30}, version=Version(None, "v")
        )
    catalog["run_report"] = MemoryDataset()
    catalog["run_report_html"] = MemoryDataset()
    catalog["run_save_version"] = MemoryDataset("v")
    return catalog


@pytest.mark.usefixtures("no_pyplot_figures")
def test_lens_nodes_build_validated_tables_figures_and_the_report_section(tmp_path):
    catalog = _lens_catalog(tmp_path)
    pipeline = _whole(lens=True).only_nodes(*LENS_NODES, "reporting.report.build_run_report")
    SequentialRunner().run(pipeline, catalog)
    t10 = catalog.load("T10_LENS")  # validated again on load
    assert list(dict.fromkeys(t10["model_role"])) == LENS_ROLES
    assert len(t10) == 3 * 2 * 2 * 3 * 4
    t11 = pd.read_parquet(tmp_path / "T11_COLLAPSE_VS_CASCADE.parquet")
    assert (~t11["defined"]).sum() == 6
    assert len(pd.read_csv(tmp_path / "T11_COLLAPSE_VS_CASCADE.csv")) == len(t11)
    for figure_id in LENS_FIGURES:
        png = tmp_path / figure_id / "v" / figure_id / f"{figure_id}.png"
        assert Image.open(png).text["figure_id"] == figure_id
    text = catalog.load("run_report")
    assert "## Where the prediction forms vs where cascades run (T10, T11)" in text
    assert "### Against the untrained control `untrained`" in text
    # the lens figures drawn under tmp_path/<figure>/v/ are the ones the report links
    for figure_id in LENS_FIGURES:
        link = next(
            line.split(": ", 1)[1]
            for line in text.splitlines()
            if line.startswith(f"[{figure_id}]: ")
        )
        assert link == f"../../figures/{figure_id}/v/{figure_id}/{figure_id}.png"
        assert (tmp_path / link.removeprefix("../../figures/")).is_file()
    assert '<img src="../../figures/F13_LENS_DEPTH/v/' in catalog.load("run_report_html")


def test_an_invalid_lens_table_is_refused_by_the_catalog(tmp_path):
    from tests.study import lens_builder

    catalog = _lens_catalog(tmp_path)
    broken = lens_builder.make_t11().drop(index=0)  # one (role, condition) missing
    with pytest.raises(Exception, match="Validation failed"):
        catalog.save("T11_COLLAPSE_VS_CASCADE", broken)
    assert not (tmp_path / "T11_COLLAPSE_VS_CASCADE.parquet").exists()
