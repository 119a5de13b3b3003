"""Marginal-preserving null rasters (SPEC §7).

Both nulls act on each (window, layer) row of a raster ``A [N, L, T]`` (axis 0 windows, axis 1
layers, axis 2 tokens) separately and only move events along the token axis, so every (condition, window, layer) keeps its exact multiset of
counts (its marginal) while connectivity along tokens, and across layers, is destroyed:

* ``NULL_RASTER_WITHIN_LAYER_TIME_PERM``: the row is permuted with
  ``default_rng(seed_of("perm", condition_key, seq_id, l)).permutation(T)``.
* ``NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT``: the row is rolled by
  ``s = default_rng(seed_of("shift", condition_key, seq_id, l)).integers(1, T)``, which keeps
  the order of events within the row (their temporal autocorrelation) but misaligns layers.

The seeds depend on the condition key and the window's ``seq_id``, never on the model role,
so every model of a replication gets the same permutations.

Every function that takes a raster accepts an optional keyword ``n_layers``: when given, a
raster whose axis 1 does not have that many entries is refused with
:class:`avalanche_kedro.analysis.lattice.RasterError` (a raster passed as ``[N, T, L]`` would
otherwise be shuffled across layers instead of tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.errors import AvalancheError
from ..core.seeds import seed_of
from .lattice import RasterError, check_raster

NULL_PERM = "NULL_RASTER_WITHIN_LAYER_TIME_PERM"
NULL_SHIFT = "NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT"
RASTER_NULLS = (NULL_PERM, NULL_SHIFT)


class MarginalViolationError(AvalancheError):
    """A null raster does not preserve a (window, layer) multiset of counts."""


def _check_seq_ids(A: np.ndarray, seq_ids: Sequence[int]) -> np.ndarray:
    seq_ids = np.asarray(seq_ids)
    if seq_ids.shape != (A.shape[0],):
        raise RasterError(
            f"seq_ids has shape {seq_ids.shape} but the raster has {A.shape[0]} windows.",
            "Pass one seq_id per window row of the raster (rasters.seq_id).",
        )
    return seq_ids


def null_token_indices(
    null_id: str, condition_key: str, seq_ids: Sequence[int], n_layers: int, seq_len: int
) -> np.ndarray:
    """Source token of every null site: ``index[n, l, t]`` such that null[n, l, t] = A[n, l, index]."""
    if null_id not in RASTER_NULLS:
        raise RasterError(f"Unknown raster null '{null_id}'.", f"Use one of {list(RASTER_NULLS)}.")
    if seq_len < 2:
        raise RasterError(
            f"A circular shift needs at least 2 tokens; the raster has {seq_len}.",
            "Use longer windows.",
        )
    tokens = np.arange(seq_len)
    index = np.empty((len(seq_ids), n_layers, seq_len), dtype=np.int64)
    tag = "perm" if null_id == NULL_PERM else "shift"
    for row, seq_id in enumerate(seq_ids):
        for layer in range(n_layers):
            rng = np.random.default_rng(seed_of(tag, condition_key, int(seq_id), layer))
            if null_id == NULL_PERM:
                index[row, layer] = rng.permutation(seq_len)
            else:
                # np.roll(a, s)[t] == a[(t - s) mod T]
                index[row, layer] = (tokens - int(rng.integers(1, seq_len))) % seq_len
    return index


def null_raster(
    A,
    null_id: str,
    condition_key: str,
    seq_ids: Sequence[int],
    *,
    n_layers: int | None = None,
) -> np.ndarray:
    """The null raster of ``A [N, L, T]`` (windows, layers, tokens; same dtype); see the module
    docstring. ``n_layers`` (optional) refuses a raster whose axis 1 has another length."""
    counts = check_raster(A, n_layers=n_layers)
    seq_ids = _check_seq_ids(counts, seq_ids)
    index = null_token_indices(null_id, condition_key, seq_ids, counts.shape[1], counts.shape[2])
    return np.take_along_axis(counts, index, axis=2)


def within_layer_permutation(
    A, condition_key: str, seq_ids: Sequence[int], *, n_layers: int | None = None
) -> np.ndarray:
    """``NULL_RASTER_WITHIN_LAYER_TIME_PERM`` of ``A [N, L, T]`` (windows, layers, tokens)."""
    return null_raster(A, NULL_PERM, condition_key, seq_ids, n_layers=n_layers)


def within_layer_circular_shift(
    A, condition_key: str, seq_ids: Sequence[int], *, n_layers: int | None = None
) -> np.ndarray:
    """``NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT`` of ``A [N, L, T]`` (windows, layers,
    tokens)."""
    return null_raster(A, NULL_SHIFT, condition_key, seq_ids, n_layers=n_layers)


def preserved_marginals(A, A_null, *, n_layers: int | None = None) -> np.ndarray:
    """``[N, L]`` bool: does each (window, layer) row keep its exact multiset of counts?

    ``A`` and ``A_null`` are ``[N, L, T]`` (windows, layers, tokens); ``n_layers`` (optional)
    refuses either when its axis 1 has another length."""
    real = check_raster(A, n_layers=n_layers)
    null = check_raster(A_null, "A_null", n_layers=n_layers)
    if real.shape != null.shape:
        raise RasterError(
            f"The null raster has shape {null.shape}, the real one {real.shape}.",
            "Compare a raster with its own null.",
        )
    return (np.sort(real, axis=2) == np.sort(null, axis=2)).all(axis=2)


def assert_marginals_preserved(
    A, A_null, null_id: str, where: str = "", *, n_layers: int | None = None
) -> int:
    """Raise :class:`MarginalViolationError` unless every (window, layer) multiset is kept.

    ``A`` and ``A_null`` are ``[N, L, T]`` (windows, layers, tokens); ``n_layers`` (optional)
    refuses either when its axis 1 has another length. Returns the number of (window, layer)
    rows checked.
    """
    preserved = preserved_marginals(A, A_null, n_layers=n_layers)
    if not preserved.all():
        bad = np.argwhere(~preserved)[:5].tolist()
        raise MarginalViolationError(
            f"{null_id}{where} changed the multiset of event counts of "
            f"{int((~preserved).sum())} (window, layer) rows, e.g. [window, layer] {bad}.",
            "A raster null must only move events along the token axis within each row; this "
            "is a bug in the null, please report it.",
        )
    return int(preserved.size)
