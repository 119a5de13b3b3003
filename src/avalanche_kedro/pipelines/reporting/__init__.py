"""Reporting: paper tables, figures and the run report from saved outputs (SPEC §10-§12)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
