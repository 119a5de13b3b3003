"""What the measurements mean: g* selection, perplexity, ARC multiple choice, and the paired
comparison of real rasters with their nulls.

May import :mod:`~avalanche_kedro.core`, :mod:`~avalanche_kedro.analysis` and
:mod:`~avalanche_kedro.measure`; Kedro-free.
"""
