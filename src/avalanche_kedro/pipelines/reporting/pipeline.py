"""The reporting pipeline: tables, figures and the report, over all model roles."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from .tables_pipeline import create_tables_pipeline


def create_pipeline(model_roles: list[str] | None = None, **kwargs) -> Pipeline:
    roles = list(model_roles or ["base"])
    return create_tables_pipeline(roles)
