"""Lens: the logit lens per layer, aligned with the activation cascades (seeds 001, 003)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
