"""Training: the embedded models are trained by the project, offline and reproducibly."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
