"""Cascades: avalanches, branching, susceptibility, crackling and tail fits (SPEC §6)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
