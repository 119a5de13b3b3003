"""Runs the capture and events pipelines once per module on a small configuration.

The catalog is the project's own ``conf/base/catalog.yml`` with every file path moved under a
temporary directory, so the pipelines save and load through the real versioned datasets.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from avalanche_kedro.pipelines import capture, cascades, controls, events, training
from tests.conftest import PROJECT_ROOT, SMALL_RECIPE

SMALL_PARAMS = {
    "model_roles": ["base"],
    "windows": {
        "seq_len": 32,
        "window_pool_factor": 10,
        "n_calibration": 8,
        "n_raster": 8,
        "n_eval_b": 4,
        "text_field": "text",
    },
    "calibration": {
        "eps": 1e-6,
        "tau0": 2.5,
        "spike_defs": ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"],
        # d_ff = 64: 0.26 and 1.0 expected events per site, the paper's range.
        "target_rates": [0.004, 0.016],
    },
    "gain_grid": [0.8, 1.0, 1.25],
    "rate_matching": {"rel_tol": 0.05},
    "events": {
        "interventions": {"MLP_GLOBAL": "grid", "ATTN_GLOBAL": [1.25], "MLP_BAND_LATE": [0.8]},
        "token_shuffle_gains": [1.0],
    },
    "cascades": {
        "adjacencies": ["ADJ_4N", "ADJ_8N"],
        "crackling": {
            "d_min": 3,
            "d_max": 64,
            "min_points": 8,
            "max_ci_width": 0.5,
            "bootstrap_replicates": 200,
        },
        "tail_fits": {"min_tail_samples": 100},
    },
    "controls": {"bootstrap_replicates": 200},
    # Calibration (SPEC §8): g*, dataset B, ARC and the ablations.
    "gstar": {"tie_tolerance": 1e-12},
    "generalization": {"bootstrap_replicates": 200},
    "arc": {"bootstrap_replicates": 200, "max_questions": 12},
    "ablations": {
        "interventions": ["ATTN_GLOBAL", "MLP_BAND_EARLY", "MLP_BAND_MID", "MLP_BAND_LATE"],
        "bootstrap_replicates": 200,
    },
    # The logit lens on every analysis window, one prompt (docs/lens.md).
    "lens": {
        "enabled": True,
        "top_k": 3,
        "bootstrap_replicates": 100,
        "null_permutations": 50,
        "adjacency": "ADJ_4N",
        "max_windows": None,
        "max_logit_elements": 1 << 16,
        "self_check_kl_tolerance": None,
        "prompts": ["Return the absolute value of the"],
    },
}


def small_parameters(root: Path) -> dict:
    params = copy.deepcopy(SMALL_PARAMS)
    params["models"] = {
        "base": {
            "checkpoint": str(root / "models" / "small-llama"),
            "revision": None,
            "trust_remote_code": False,
        }
    }
    params["embedded_checkpoints"] = {
        "small-llama": {"path": str(root / "models" / "small-llama"), **SMALL_RECIPE}
    }
    params["runtime"] = {
        "device": "cpu",
        "dtype": "float32",
        "batch_size": 3,  # not a divisor of 8: exercises the ragged last batch
        "progress": False,
        "scratch_dir": str(root / "scratch"),
        "validate_g": 0.9,
    }
    return params


def reroot_paths(entry, root: Path, keys=("filepath", "data_files")):
    """A catalog config with the relative paths under ``keys`` moved under ``root``."""
    if isinstance(entry, dict):
        return {
            key: (str(root / value) if key in keys else reroot_paths(value, root, keys))
            for key, value in entry.items()
        }
    return entry


def catalog_with_parameters(config: dict, params: dict) -> DataCatalog:
    """``DataCatalog.from_config(config)`` plus ``params:`` entries as Kedro adds them."""
    catalog = DataCatalog.from_config(config)
    for name, value in flatten_params(params).items():
        catalog[name] = value
    return catalog


def project_catalog(root: Path, params: dict) -> DataCatalog:
    """The base catalog with relative file paths re-rooted at ``root``, plus parameters."""
    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base", env="base"
    )
    return catalog_with_parameters(reroot_paths(loader["catalog"], root), params)


def flatten_params(params: dict, prefix: str = "params:") -> dict:
    flat = {}
    for key, value in params.items():
        flat[f"{prefix}{key}"] = value
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
    return flat


def run_study(root: Path) -> DataCatalog:
    """Capture, events, cascades and controls on the small configuration."""
    params = small_parameters(root)
    catalog = project_catalog(root, params)
    roles = params["model_roles"]
    pipeline = (
        training.create_pipeline(roles)
        + capture.create_pipeline(roles)
        + events.create_pipeline(roles)
        + cascades.create_pipeline(roles)
        + controls.create_pipeline(roles)
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog


def run_capture_and_events(root: Path) -> DataCatalog:
    params = small_parameters(root)
    catalog = project_catalog(root, params)
    roles = params["model_roles"]
    pipeline = (
        training.create_pipeline(roles)
        + capture.create_pipeline(roles)
        + events.create_pipeline(roles)
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.fixture(scope="package")
def small_run(tmp_path_factory):
    """(catalog, root) after one run of capture, events, cascades and controls."""
    root = tmp_path_factory.mktemp("pipeline-run")
    return run_study(root), root


#: The second role of the two-role run: the small recipe's weights plus seeded noise.
INSTRUCT_RECIPE = {
    **SMALL_RECIPE,
    "seed_name": "test-tiny-llama-instruct",
    "perturb_from": SMALL_RECIPE["seed_name"],
    "perturbation_scale": 0.25,
}


def two_role_parameters(root: Path) -> dict:
    params = small_parameters(root)
    params["model_roles"] = ["base", "instruct"]
    params["models"]["instruct"] = {
        "checkpoint": str(root / "models" / "small-llama-instruct"),
        "revision": None,
        "trust_remote_code": False,
    }
    params["embedded_checkpoints"]["small-llama-instruct"] = {
        "path": str(root / "models" / "small-llama-instruct"),
        **INSTRUCT_RECIPE,
    }
    return params


def run_everything(root: Path, params: dict) -> DataCatalog:
    """All seven pipelines for the roles of ``params`` through SequentialRunner."""
    from avalanche_kedro.pipeline_registry import PIPELINE_ORDER
    from avalanche_kedro.pipelines import calibration, lens, replication, reporting

    modules = {
        "training": training,
        "capture": capture,
        "events": events,
        "cascades": cascades,
        "controls": controls,
        "calibration": calibration,
        "lens": lens,
        "replication": replication,
        "reporting": reporting,
    }
    arc = root / "data" / "01_raw" / "arc_embedded.jsonl"
    arc.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "data" / "01_raw" / "arc_embedded.jsonl", arc)
    catalog = project_catalog(root, params)
    catalog["parameters"] = params
    pipeline = sum(
        (modules[name].create_pipeline(params["model_roles"]) for name in PIPELINE_ORDER),
        Pipeline([]),
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.fixture(scope="package")
def two_role_run(tmp_path_factory):
    """(catalog, root, params) after every pipeline ran for two roles on the small config."""
    root = tmp_path_factory.mktemp("two-role-run")
    params = two_role_parameters(root)
    return run_everything(root, params), root, params


def load(catalog, name: str, role: str = "base"):
    """``<role>.<name>`` from ``catalog`` (the small runs use the role ``base``)."""
    return catalog.load(f"{role}.{name}")


#: shape of the small configuration (SMALL_RECIPE, SMALL_PARAMS): analysis windows, layers,
#: MLP width and window length
N_WINDOWS, N_LAYERS, D_FF, SEQ_LEN = 8, 4, 64, 32


@pytest.fixture(scope="package")
def outputs(small_run):
    """Every cascades and controls output of the ``base`` role of :func:`small_run`."""
    catalog, _ = small_run
    names = [
        "event_rasters_A",
        "conditions_A",
        "avalanches_A",
        "branching_per_window_A",
        "cascade_summary_A",
        "crackling_fits_A",
        "tail_fits_A",
        "null_branching_per_window_A",
        "marginal_checks_A",
        "controls_summary_A",
    ]
    return {name: load(catalog, name) for name in names}


#: The control role of :func:`control_run`: the two-role run has no untrained role, so the
#: noisy sibling `instruct` stands in for it (T08 compares `base` with it).
CONTROL_ROLE = "instruct"


@pytest.fixture(scope="package")
def control_run(two_role_run):
    """(catalog, root, params) of :func:`two_role_run` plus T08 with ``instruct`` as the control.

    Only the nodes the control adds run, on the saved outputs of the two-role run:
    ``compare_with_control`` (-> ``trained_vs_untrained_A``), ``build_T08_TRAINED_VS_UNTRAINED``
    and the report node, whose output is renamed ``run_report_with_control`` so that the
    two-role run's own ``run_report`` stays as it was.
    """
    from avalanche_kedro.pipelines import replication, reporting

    catalog, root, params = two_role_run
    roles = params["model_roles"]
    compare = replication.create_pipeline(roles, control_role=CONTROL_ROLE).only_nodes(
        "replication.compare_with_control"
    )
    report = reporting.create_pipeline(roles, control_role=CONTROL_ROLE)
    pipeline = (
        compare
        + report.only_nodes("reporting.tables.build_T08_TRAINED_VS_UNTRAINED")
        + Pipeline(
            report.only_nodes("reporting.report.build_run_report"),
            outputs={
                "run_report": "run_report_with_control",
                "run_report_html": "run_report_html_with_control",
            },
        )
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog, root, {**params, "replication": {"control_role": CONTROL_ROLE}}
