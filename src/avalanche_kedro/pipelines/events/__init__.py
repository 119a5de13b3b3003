"""Events: rate-matched thresholds for every gain and event rasters (SPEC §4-5, §7)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
