"""Invariants of event rasters and their agreement with the condition table (SPEC §5).

A raster set ``A [C, N, L, T]`` (uint16 counts), ``X = (A > 0)`` (uint8) always satisfies:

* every count is at most ``d_ff``, the number of MLP units of a layer (a site counts units);
* ``X`` holds only 0 and 1, and ``X == (A > 0)`` at every site;
* ``cond_id`` (the rows) and ``seq_id`` (the windows) are unique.

:func:`check_raster_invariants` scans ``A`` and ``X`` block by block (memory-mapped rasters of
several GB are never copied whole) and names the first site that breaks a rule, so a raster
file corrupted or edited after it was written is refused instead of analysed.

:func:`check_rasters_match` checks a raster set against the condition table it is read with:
the nodes look each condition row up by ``cond_id`` (:meth:`EventRasters.counts`), so the two
must hold exactly the same condition ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ArtifactError

#: elements of A (and X) scanned per block: 4 Mi elements, 8 MiB of counts and 4 MiB of X,
#: large enough that numpy's per-call overhead is negligible, small enough to stay bounded
CHUNK_ELEMENTS = 1 << 22

#: the fix of every corrupted-raster error
REWRITE_FIX = (
    "The file is corrupted or was edited; rerun the producing pipeline, e.g. "
    "`kedro run --pipelines events`."
)


def check_raster_invariants(
    A: np.ndarray,
    X: np.ndarray,
    cond_id: np.ndarray,
    seq_id: np.ndarray,
    *,
    d_ff: int | None,
    where: str,
) -> None:
    """Raise :class:`ArtifactError` naming ``where`` and the first offending site unless the
    counts are at most ``d_ff`` (skipped when ``d_ff`` is None: the bound is unknown), ``X``
    holds only 0/1 with ``X == (A > 0)``, and ``cond_id`` and ``seq_id`` are unique.

    ``A`` and ``X`` are ``[C, N, L, T]`` arrays of equal shape (shapes and dtypes are checked
    by :func:`~avalanche_kedro.measure.rasters.check_raster_arrays`); they are read in blocks
    of whole (condition, window) rows of about :data:`CHUNK_ELEMENTS` elements.
    """
    _check_unique(cond_id, "cond_id", "condition row", where)
    _check_unique(seq_id, "seq_id", "window", where)
    if d_ff is not None and (isinstance(d_ff, bool) or int(d_ff) != d_ff or d_ff < 1):
        raise ArtifactError(
            f"Raster {where}: d_ff must be a positive integer, got {d_ff!r}.", REWRITE_FIX
        )
    shape = tuple(A.shape)
    if A.size == 0:
        return
    # [C, N, L, T] -> [C * N, L * T]: a view of a C-contiguous (memory-mapped) array, so each
    # block below is read from the file only when it is scanned
    sites = shape[2] * shape[3]
    flat_a = A.reshape(shape[0] * shape[1], sites)
    flat_x = X.reshape(shape[0] * shape[1], sites)
    step = max(1, CHUNK_ELEMENTS // max(sites, 1))
    for start in range(0, flat_a.shape[0], step):
        a = np.asarray(flat_a[start : start + step])
        x = np.asarray(flat_x[start : start + step])
        # one reduction per block; the site is searched only when the block is bad
        if d_ff is not None and int(a.max()) > d_ff:
            at = int(np.argmax(a > d_ff))
            site = _site(shape, start, sites, at)
            raise ArtifactError(
                f"Raster {where}: count A{list(site)} = {int(a.flat[at])} exceeds d_ff = "
                f"{int(d_ff)} (a site counts at most d_ff units) at (condition row, window, "
                f"layer, token) = {site}, cond_id {int(cond_id[site[0]])}, seq_id "
                f"{int(seq_id[site[1]])}.",
                REWRITE_FIX,
            )
        # (A > 0) as uint8 compared with X catches both a mismatch and X values other than 0/1
        wrong = x != (a > 0).view(np.uint8)
        if wrong.any():
            at = int(np.argmax(wrong))
            site = _site(shape, start, sites, at)
            value, count = int(x.flat[at]), int(a.flat[at])
            what = (
                f"X{list(site)} = {value} is not 0 or 1"
                if value > 1
                else f"X{list(site)} = {value} but A{list(site)} = {count} (X must be A > 0)"
            )
            raise ArtifactError(
                f"Raster {where}: {what} at (condition row, window, layer, token) = {site}, "
                f"cond_id {int(cond_id[site[0]])}, seq_id {int(seq_id[site[1]])}.",
                REWRITE_FIX,
            )


def _site(shape: Sequence[int], start: int, sites: int, at: int) -> tuple[int, int, int, int]:
    """(condition row, window, layer, token) of element ``at`` of the block starting at flat
    row ``start`` of ``[C * N, L * T]``."""
    flat = start * sites + at
    return tuple(int(i) for i in np.unravel_index(flat, tuple(shape)))


def _repeated(ids: np.ndarray) -> np.ndarray:
    """The ids that occur more than once, sorted."""
    values, counts = np.unique(np.asarray(ids), return_counts=True)
    return values[counts > 1]


def _check_unique(ids: np.ndarray, name: str, what: str, where: str) -> None:
    repeated = _repeated(ids)
    if repeated.size:
        raise ArtifactError(
            f"Raster {where}: {name} repeats {repeated[:10].tolist()} (each {what} must have "
            "its own id).",
            REWRITE_FIX,
        )


def check_rasters_match(
    rasters, conditions: pd.DataFrame, *, raster_name: str, conditions_name: str
) -> None:
    """Raise :class:`ArtifactError` unless raster set ``rasters`` holds one row for each row of
    the condition table ``conditions`` and nothing else: the condition ids are unique in both
    and the same set, so C equals the number of condition rows (the row order may differ:
    readers look rows up by ``cond_id``).

    Rasters and conditions from different runs (a rerun of one but not the other) would pair
    counts with the wrong condition, or fail half-way with a missing cond_id.
    """
    fix = (
        f"Rerun the events pipeline (kedro run --pipelines events, and the pipeline that "
        f"writes {raster_name} if it is another) so that {raster_name} and {conditions_name} "
        "come from one run."
    )
    table = np.asarray(conditions["cond_id"].to_numpy(), dtype=np.int64)
    held = np.asarray(rasters.cond_id, dtype=np.int64)
    repeated = _repeated(table)
    if repeated.size:
        raise ArtifactError(
            f"{conditions_name} repeats cond_id {repeated[:10].tolist()}, so its rows "
            f"cannot be matched to the rows of {raster_name}.",
            fix,
        )
    missing = np.setdiff1d(table, held)
    extra = np.setdiff1d(held, table)
    if len(held) != len(table) or missing.size or extra.size:
        raise ArtifactError(
            f"{raster_name} holds {len(held)} condition rows, {conditions_name} has "
            f"{len(table)}: cond_ids of {conditions_name} missing from {raster_name}: "
            f"{_ids(missing)}; cond_ids of {raster_name} not in {conditions_name}: "
            f"{_ids(extra)}.",
            fix,
        )


def _ids(ids: np.ndarray, limit: int = 10) -> str:
    shown = ids[:limit].tolist()
    return f"{shown}{f' (and {ids.size - limit} more)' if ids.size > limit else ''}"


def raster_label(directory: Path | None, where: str | None) -> str:
    """How an error names a raster: ``where`` (a dataset name) and the directory."""
    place = f"'{directory}'" if directory is not None else "(in memory)"
    return f"{where} {place}" if where else place


__all__ = [
    "CHUNK_ELEMENTS",
    "REWRITE_FIX",
    "check_raster_invariants",
    "check_rasters_match",
    "raster_label",
]
