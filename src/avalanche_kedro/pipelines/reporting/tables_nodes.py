"""Nodes that describe the run and build the paper tables T01-T11 (cross-role).

Each table node returns the table; its catalog entry (a TableDataset) writes the Parquet file
and the CSV copy."""

from __future__ import annotations

from collections.abc import Sequence

from ...core.paths import project_path
from ...study import control, lens, tables, trajectory
from ...study.params import CalibrationParams, RateMatchingParams, as_plain
from ...study.provenance import code_version, config_hash, content_run_id, package_versions
from ..roles_io import regroup

DESCRIBE_INPUTS = ["model_manifest", "slice_manifest", "instrumentation_report"]
T01_INPUTS = [
    "model_manifest",
    "controls_summary_A",
    "cascade_summary_A",
    "crackling_fits_A",
    "tau_table",
    "gstar_A",
    "controls_summary_gstar_A",
]
T02_INPUTS = ["model_manifest", "generalization_B"]
T03_INPUTS = ["model_manifest", "arc_summary", "arc_manifest"]
T04_INPUTS = ["model_manifest", "conditions_A", "tail_fits_A"]
T05_INPUTS = ["model_manifest", "conditions_A", "crackling_fits_A"]
T06_INPUTS = ["model_manifest", "ablations_A"]
T10_INPUTS = ["model_manifest", "lens_layers"]
T11_INPUTS = ["model_manifest", "lens_alignment"]


def describe_run(parameters: dict, *values, roles: Sequence[str]) -> dict:
    """The provenance shared by every table of this run (content run id, hashes, versions).

    ``parameters`` is Kedro's whole parameter set, its blocks already parameter models: they
    are hashed and recorded as the mappings they were written as (:func:`as_plain`)."""
    parameters = as_plain(parameters)
    data = regroup(values, roles, DESCRIBE_INPUTS)
    config_sha = config_hash(parameters)
    code = code_version(project_path("."))
    return {
        "run_id": content_run_id(config_sha, code, data["model_manifest"], data["slice_manifest"]),
        "config_hash": config_sha,
        "code_version": code,
        "roles": list(roles),
        "models": {
            role: {
                k: manifest.get(k)
                for k in (
                    "model_id",
                    "source",
                    "revision",
                    "content_sha256",
                    "tokenizer_sha256",
                    "model_type",
                    "embedded_recipe",
                    "training_step",
                    "final_training_step",
                )
            }
            for role, manifest in data["model_manifest"].items()
        },
        "slices": {
            role: {s["slice"]: s["sha256"] for s in manifest["slices"]}
            for role, manifest in data["slice_manifest"].items()
        },
        "devices": {
            role: {k: report.get(k) for k in ("device", "dtype", "n_layers", "d_ff")}
            for role, report in data["instrumentation_report"].items()
        },
        "packages": {
            k: v
            for k, v in package_versions().items()
            if k in ("python", "torch", "transformers", "kedro")
        },
        "parameters": {
            "windows": parameters.get("windows"),
            "calibration": parameters.get("calibration"),
            "gain_grid": parameters.get("gain_grid"),
        },
    }


def build_t01(
    run_provenance,
    calibration: CalibrationParams,
    rate_matching: RateMatchingParams,
    *values,
    roles,
):
    data = regroup(values, roles, T01_INPUTS)
    return tables.build_t01(
        run_provenance,
        CalibrationParams.coerce(calibration).model_dump(),
        RateMatchingParams.coerce(rate_matching).model_dump(),
        data["model_manifest"],
        data["controls_summary_A"],
        data["cascade_summary_A"],
        data["crackling_fits_A"],
        data["tau_table"],
        data["gstar_A"],
        data["controls_summary_gstar_A"],
    )


def build_t02(run_provenance, *values, roles):
    data = regroup(values, roles, T02_INPUTS)
    return tables.build_t02(run_provenance, data["model_manifest"], data["generalization_B"])


def build_t03(run_provenance, *values, roles):
    data = regroup(values, roles, T03_INPUTS)
    return tables.build_t03(
        run_provenance, data["model_manifest"], data["arc_summary"], data["arc_manifest"]
    )


def build_t04(run_provenance, *values, roles):
    data = regroup(values, roles, T04_INPUTS)
    return tables.build_t04(
        run_provenance, data["model_manifest"], data["conditions_A"], data["tail_fits_A"]
    )


def build_t05(run_provenance, *values, roles):
    data = regroup(values, roles, T05_INPUTS)
    return tables.build_t05(
        run_provenance, data["model_manifest"], data["conditions_A"], data["crackling_fits_A"]
    )


def build_t06(run_provenance, *values, roles):
    data = regroup(values, roles, T06_INPUTS)
    return tables.build_t06(run_provenance, data["model_manifest"], data["ablations_A"])


def build_t07(run_provenance, replication_A):
    return tables.build_t07(run_provenance, replication_A)


def build_t08(run_provenance, trained_vs_untrained_A):
    return control.build_t08(run_provenance, trained_vs_untrained_A)


def build_t09(run_provenance, t01, t02, t03, training_trajectory_A):
    return trajectory.build_t09(run_provenance, t01, t02, t03, training_trajectory_A)


def build_t10(run_provenance, *values, roles):
    data = regroup(values, roles, T10_INPUTS)
    return lens.build_t10(run_provenance, data["model_manifest"], data["lens_layers"])


def build_t11(run_provenance, *values, roles, control_role=None):
    data = regroup(values, roles, T11_INPUTS)
    return lens.build_t11(
        run_provenance, data["model_manifest"], data["lens_alignment"], control_role
    )
