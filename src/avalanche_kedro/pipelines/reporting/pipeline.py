"""The reporting pipeline: tables, figures and the report, over all model roles."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from .figures_pipeline import create_figures_pipeline
from .report_pipeline import create_report_pipeline
from .tables_pipeline import create_tables_pipeline


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = list(model_roles or ["base"])
    return (
        create_tables_pipeline(roles)
        + create_figures_pipeline(roles)
        + create_report_pipeline(roles)
    )
