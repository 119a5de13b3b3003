"""From a model and text to event rasters: corpora and windows, checkpoints (the embedded
default, any Hugging Face model), architecture adapters and gain hooks, forward passes, unit
moments, rate-matched thresholds, the event sweep, raster files and the condition table.

Imports only :mod:`avalanche_kedro.core` (not the analysis: measurement never depends on how
rasters are analysed); Kedro-free.
"""
