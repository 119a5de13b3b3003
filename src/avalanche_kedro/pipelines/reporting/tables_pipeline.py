"""Reporting nodes that describe the run and build the tables."""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from ..roles_io import role_inputs
from . import tables_nodes as n

#: Kedro namespace of the table nodes (a collapsible group in Kedro-Viz; dataset names stay
#: unprefixed, so the tables are still ``T01_SUMMARY`` and so on).
NAMESPACE = "reporting.tables"


def _node(function, inputs, outputs, name, roles):
    return node(
        update_wrapper(partial(function, roles=roles), function) if roles else function,
        inputs=inputs,
        outputs=outputs,
        name=name,
    )


def create_tables_pipeline(
    roles: list[str],
    control_role: str | None = None,
    trajectory: bool = False,
    lens: bool = False,
) -> Pipeline:
    """T01-T06 always, T07 with two or more roles, T08 when ``control_role`` is given, T09
    when the roles are a training series (``trajectory``), T10 and T11 from every role's
    lens tables when the logit lens runs (``lens``). One output per table: its catalog entry
    writes the Parquet file and the CSV copy. Node names are ``reporting.tables.<name>``."""
    nodes = [
        _node(
            n.describe_run,
            ["parameters", *role_inputs(roles, n.DESCRIBE_INPUTS)],
            "run_provenance",
            "describe_run",
            roles,
        ),
        _node(
            n.build_t01,
            [
                "run_provenance",
                "params:calibration",
                "params:rate_matching",
                *role_inputs(roles, n.T01_INPUTS),
            ],
            "T01_SUMMARY",
            "build_T01_SUMMARY",
            roles,
        ),
        _node(
            n.build_t02,
            ["run_provenance", *role_inputs(roles, n.T02_INPUTS)],
            "T02_GENERALIZATION",
            "build_T02_GENERALIZATION",
            roles,
        ),
        _node(
            n.build_t03,
            ["run_provenance", *role_inputs(roles, n.T03_INPUTS)],
            "T03_ARC",
            "build_T03_ARC",
            roles,
        ),
        _node(
            n.build_t04,
            ["run_provenance", *role_inputs(roles, n.T04_INPUTS)],
            "T04_TAIL_FITS",
            "build_T04_TAIL_FITS",
            roles,
        ),
        _node(
            n.build_t05,
            ["run_provenance", *role_inputs(roles, n.T05_INPUTS)],
            "T05_CRACKLING_DIAGNOSTICS",
            "build_T05_CRACKLING_DIAGNOSTICS",
            roles,
        ),
        _node(
            n.build_t06,
            ["run_provenance", *role_inputs(roles, n.T06_INPUTS)],
            "T06_ABLATIONS",
            "build_T06_ABLATIONS",
            roles,
        ),
    ]
    if len(roles) >= 2:
        nodes.append(
            node(
                n.build_t07,
                inputs=["run_provenance", "replication_A"],
                outputs="T07_REPLICATION_SUMMARY",
                name="build_T07_REPLICATION_SUMMARY",
            )
        )
    if control_role is not None:
        nodes.append(
            node(
                n.build_t08,
                inputs=["run_provenance", "trained_vs_untrained_A"],
                outputs="T08_TRAINED_VS_UNTRAINED",
                name="build_T08_TRAINED_VS_UNTRAINED",
            )
        )
    if trajectory:
        nodes.append(
            node(
                n.build_t09,
                inputs=[
                    "run_provenance",
                    "T01_SUMMARY",
                    "T02_GENERALIZATION",
                    "T03_ARC",
                    "training_trajectory_A",
                ],
                outputs="T09_TRAINING_TRAJECTORY",
                name="build_T09_TRAINING_TRAJECTORY",
            )
        )
    if lens:
        nodes += [
            _node(
                function,
                ["run_provenance", *role_inputs(roles, inputs)],
                table,
                f"build_{table}",
                roles,
            )
            for function, inputs, table in (
                (n.build_t10, n.T10_INPUTS, "T10_LENS"),
                # T11 pairs every trained role with the untrained control on the same windows
                (
                    update_wrapper(partial(n.build_t11, control_role=control_role), n.build_t11),
                    n.T11_INPUTS,
                    "T11_COLLAPSE_VS_CASCADE",
                ),
            )
        ]
    return Pipeline(
        nodes, tags=["reporting"], namespace=NAMESPACE, prefix_datasets_with_namespace=False
    )
