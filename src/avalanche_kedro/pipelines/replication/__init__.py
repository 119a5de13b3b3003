"""Replication: the study compared across model roles (SPEC §9)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
