"""Calibration: mechanistic g*, dataset B, ARC multiple choice and ablations (SPEC §8)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
