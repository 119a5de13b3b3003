"""The reporting pipeline: tables, figures and the report, over all model roles."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from ..replication.pipeline import FROM_CONFIG, control_role_of, trajectory_series
from .figures_pipeline import create_figures_pipeline
from .report_pipeline import create_report_pipeline
from .tables_pipeline import create_tables_pipeline


def create_pipeline(
    model_roles: list[str] | None = None,
    control_role=FROM_CONFIG,
    trajectory=FROM_CONFIG,
    models=FROM_CONFIG,
    lens: bool = False,
    **kwargs,
) -> Pipeline:
    """T08 and the report's specificity need the control role (``replication.control_role``
    of the active configuration unless given), and only when it is one of the roles; T09,
    F12 and the report's trajectory section need the roles to be a training series
    (``trajectory.enabled``, ``models.<role>.step``); T10, T11, F13, F14 and the report's lens
    section need the per-role lens tables (``lens``: the registry passes ``lens.enabled``)."""
    roles = list(model_roles or ["base"])
    control = control_role_of(roles, control_role)
    series = trajectory_series(roles, trajectory, models) is not None
    return (
        create_tables_pipeline(roles, control, series, lens=lens)
        + create_figures_pipeline(roles, series, lens=lens, control_role=control)
        + create_report_pipeline(roles, control, series, lens=lens)
    )
