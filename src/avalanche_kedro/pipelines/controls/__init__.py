"""Controls: raster nulls, exact marginal checks, paired bootstrap comparisons (SPEC §7)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
