"""Capture: model, windows, validate step and calibration at g = 1 (SPEC §1-3)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
