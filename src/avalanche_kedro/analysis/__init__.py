"""The cascade analysis on numpy rasters ``[N, L, T]``: lattice components and branching,
marginal-preserving nulls, window bootstrap, crackling and tail fits (the public analysis API,
docs/api.md).

Imports only :mod:`avalanche_kedro.core`; Kedro-free and torch-free, so a notebook or another
project can use it on any raster.
"""
