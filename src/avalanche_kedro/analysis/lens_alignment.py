"""The logit lens aligned with activation cascades (issue 14): per-layer and per-token views.

Inputs are plain numpy arrays of one condition on the analysis windows (N windows, L decoder
blocks, T tokens; layer l is the residual stream after block l, 0-based):

* the lens arrays ``[N, L, T]`` (``entropy``, ``kl_to_final``, ``p_next``, ``rank_next``,
  ``agrees_final``; see the lens data contract in docs/api.md), and
* the event raster ``A [N, L, T]`` of events per (window, layer, token) site.

Every function taking an ``[N, L, T]`` array accepts an optional keyword ``n_layers``: when
given, an array whose axis 1 has another length is refused (``RasterError`` for a raster,
:class:`LensArrayError` for a lens array), naming the transpose when the array looks like
``[N, T, L]``.

Two per-token quantities connect them:

* the **collapse layer** ``c[n, t] = min{l : agrees_final[n, l', t] for every l' >= l}``, the
  layer from which the lens top-1 stays equal to the final top-1 (``L`` when even the last
  layer disagrees, which a well-formed lens never produces), and
* the **cascade depth** ``d[n, t] = l_max - l_min + 1`` over the layers with ``A[n, l, t] > 0``
  (layers spanned, gaps included; 0 for a token without events).

:func:`collapse_cascade_alignment` measures their Spearman rank correlation over all N * T
tokens (tokens without events included, at depth 0) with a window-bootstrap CI and a
token-shuffle null that permutes depths across tokens *within* each window. That null keeps
everything that is constant within a window: a window with many events (deep cascades) whose
predictions also settle late gives a positive rho that survives the shuffle. Only the excess
``rho - null_rho_mean`` measures alignment at the level of single tokens.

Kedro-free and torch-free; a worked example is in docs/api.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import AvalancheError
from ..core.seeds import seed_of
from ..core.threads import single_threaded_blas
from .bootstrap import bootstrap_indices, percentile_interval, resample_weights
from .lattice import ADJ_4N, check_layer_axis, check_raster, label_components

#: seed label of the token-shuffle null: ``seed_of(NULL_SEED_LABEL, condition_key, p)``
NULL_SEED_LABEL = "lens_token_shuffle"
#: two null deviations closer than this count as equal in the permutation p-value
P_VALUE_TOLERANCE = 1e-12

LAYER_SITE_COLUMNS = [
    "layer",
    "n_sites",
    "events",
    "event_rate",
    "occupancy",
    "avalanche_site_fraction",
]
LAYER_LENS_COLUMNS = [
    "layer",
    "n_tokens",
    "mean_entropy_nats",
    "mean_kl_to_final_nats",
    "top1_agreement",
    "mean_p_next",
    "median_rank_next",
]
#: The statistics of :func:`collapse_cascade_alignment` that are NaN when rho is undefined.
RHO_KEYS = [
    "spearman_rho",
    "rho_ci_low",
    "rho_ci_high",
    "null_rho_mean",
    "null_rho_low",
    "null_rho_high",
    "delta_rho_vs_null",
    "p_value_vs_null",
]
ALIGNMENT_KEYS = [
    "n_windows",
    "n_tokens",
    "mean_collapse_layer",
    "mean_cascade_depth",
    "frac_tokens_with_events",
    *RHO_KEYS,
    "n_replicates",
    "n_null_permutations",
    "defined",
    "reason",
]
CROSSTAB_COLUMNS = ["collapse_layer", "cascade_depth", "n_tokens"]


class LensArrayError(AvalancheError, ValueError):
    """A lens or per-token array has the wrong rank, shape, dtype or values (a ValueError)."""


# --------------------------------------------------------------------------------------------
# validation


def _lens_array(values, name: str, kinds: str, what: str) -> np.ndarray:
    """``values`` as an ndarray ``[N, L, T]`` with at least one token, of a dtype in ``kinds``."""
    array = np.asarray(values)
    if array.ndim != 3:
        raise LensArrayError(
            f"{name} must have 3 axes [N, L, T] (windows, layers, tokens); got shape {array.shape}.",
            "Pass the per-token lens array of one condition, e.g. entropy[n, l, t].",
        )
    if array.dtype.kind not in kinds:
        raise LensArrayError(
            f"{name} must hold {what}; got dtype {array.dtype}.",
            "Use the arrays of the lens measurement (see the lens_tokens columns in docs/api.md).",
        )
    if 0 in array.shape:
        raise LensArrayError(
            f"{name} has no (window, layer, token) entry: shape {array.shape}.",
            "Measure the lens on at least one window of at least one token.",
        )
    return array


def _agreement(values, name: str = "agrees_final") -> np.ndarray:
    """A bool ``[N, L, T]`` array; integer arrays are accepted when they hold only 0 and 1."""
    array = _lens_array(values, name, "biu", "booleans (top-1 equal to the final top-1)")
    if array.dtype.kind != "b":
        if not np.isin(array, (0, 1)).all():
            raise LensArrayError(
                f"{name} is an integer array with values other than 0 and 1.",
                "Pass the boolean agrees_final column (top1 at layer l == top1 at the last layer).",
            )
        array = array.astype(bool)
    return array


def _token_pair(collapse, depth) -> tuple[np.ndarray, np.ndarray]:
    """Validate the per-token collapse layers and cascade depths: equal 2-D shapes [N, T]."""
    arrays = []
    for name, values in (("collapse", collapse), ("depth", depth)):
        array = np.asarray(values)
        if array.ndim != 2:
            raise LensArrayError(
                f"{name} must have 2 axes [N, T] (windows, tokens); got shape {array.shape}.",
                "Use collapse_layers(agrees_final) and cascade_depth(A).",
            )
        if array.dtype.kind not in "iu":
            raise LensArrayError(
                f"{name} must hold integer layers; got dtype {array.dtype}.",
                "Use collapse_layers(agrees_final) and cascade_depth(A).",
            )
        if array.size and array.min() < 0:
            raise LensArrayError(
                f"{name} contains negative values (minimum {array.min()}).",
                "Collapse layers and cascade depths count layers and are never negative.",
            )
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise LensArrayError(
            f"collapse has shape {arrays[0].shape} but depth has shape {arrays[1].shape}.",
            "Compute both from the same windows and tokens of one condition.",
        )
    return arrays[0], arrays[1]


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise LensArrayError(
            f"{name} must be a non-negative integer; got {value!r}.",
            f"Set {name} to 0 (skip) or a positive number.",
        )
    return int(value)


# --------------------------------------------------------------------------------------------
# per-token quantities


def collapse_layers(agrees_final, *, n_layers: int | None = None) -> np.ndarray:
    """Collapse layer of every token: int64 ``[N, T]`` from ``agrees_final`` bool ``[N, L, T]``.

    ``c[n, t] = L - k`` with ``k`` the number of trailing layers that agree with the final
    top-1, i.e. the first layer ``l`` with ``agrees_final[n, l:, t]`` all True; a flicker
    (agree, disagree, agree) resets it to the layer after the last disagreement. ``c = L`` when
    the last layer itself does not agree. Raises :class:`LensArrayError` (a ``ValueError``) on
    a bad rank, dtype or an empty array, or when ``n_layers`` is given and axis 1 of
    ``agrees_final`` has another length.
    """
    agree = _agreement(agrees_final)
    check_layer_axis(agree, n_layers, "agrees_final", error=LensArrayError)
    n_layers = agree.shape[1]
    trailing = np.logical_and.accumulate(agree[:, ::-1, :], axis=1).sum(axis=1, dtype=np.int64)
    return n_layers - trailing


def cascade_depth(A, *, n_layers: int | None = None) -> np.ndarray:
    """Cascade depth of every token: int64 ``[N, T]`` from events ``A [N, L, T]`` (windows,
    layers, tokens; counts or bool).

    ``d[n, t] = l_max - l_min + 1`` over the layers ``l`` with ``A[n, l, t] > 0`` (layers
    spanned, an empty layer in between counted), 0 where the token has no event. Raises
    :class:`avalanche_kedro.analysis.lattice.RasterError` on a bad raster, or when ``n_layers``
    is given and axis 1 of ``A`` has another length.
    """
    occupied = check_raster(A, n_layers=n_layers) > 0
    n_windows, n_layers, seq_len = occupied.shape
    if n_layers == 0:
        return np.zeros((n_windows, seq_len), dtype=np.int64)
    has_event = occupied.any(axis=1)
    l_min = occupied.argmax(axis=1)
    l_max = n_layers - 1 - occupied[:, ::-1, :].argmax(axis=1)
    return np.where(has_event, l_max - l_min + 1, 0).astype(np.int64)


# --------------------------------------------------------------------------------------------
# per-layer tables


def layer_site_fractions(
    A, d_ff: int, adjacency: str = ADJ_4N, *, n_layers: int | None = None
) -> pd.DataFrame:
    """Events of ``A [N, L, T]`` (windows, layers, tokens) per layer: one row per layer ``l``
    (0-based).

    Columns: ``layer``; ``n_sites`` = N * T; ``events`` = sum of A over the layer (int64);
    ``event_rate`` = events / (N * T * d_ff) (events per unit per token); ``occupancy`` =
    fraction of the layer's sites with A > 0; ``avalanche_site_fraction`` = fraction of the
    layer's sites lying in an avalanche (connected component of occupied sites in one window,
    :func:`avalanche_kedro.analysis.lattice.label_components` with ``adjacency``) of at least
    2 sites, i.e. part of a cascade rather than an isolated event. Under ``ADJ_4N`` two sites
    touching only diagonally are two isolated events. ``n_layers`` (optional) refuses a raster
    whose axis 1 has another length (``RasterError``).
    """
    counts = check_raster(A, n_layers=n_layers)
    d_ff = _count(d_ff, "d_ff")
    if d_ff == 0:
        raise LensArrayError("d_ff must be positive; got 0.", "Pass the MLP width of the model.")
    n_windows, n_layers, seq_len = counts.shape
    n_sites = n_windows * seq_len
    if n_sites == 0:
        raise LensArrayError(
            f"The raster has no (window, token) site: shape {counts.shape}.",
            "Pass the raster of at least one window of at least one token.",
        )
    labels, n_components = label_components(counts, adjacency)
    sizes = np.bincount(labels.ravel(), minlength=n_components + 1)
    sizes[0] = 0  # label 0 is the empty background, not a component
    in_avalanche = sizes[labels] >= 2
    events = counts.sum(axis=(0, 2), dtype=np.int64)
    return pd.DataFrame(
        {
            "layer": np.arange(n_layers, dtype=np.int64),
            "n_sites": np.full(n_layers, n_sites, dtype=np.int64),
            "events": events,
            "event_rate": events / float(n_sites * d_ff),
            "occupancy": (counts > 0).sum(axis=(0, 2), dtype=np.int64) / n_sites,
            "avalanche_site_fraction": in_avalanche.sum(axis=(0, 2), dtype=np.int64) / n_sites,
        }
    )[LAYER_SITE_COLUMNS]


def layer_lens_summary(
    entropy, kl_to_final, p_next, rank_next, agrees_final, *, n_layers: int | None = None
) -> pd.DataFrame:
    """The logit lens per layer: one row per layer ``l`` from the ``[N, L, T]`` (windows,
    layers, tokens) lens arrays.

    Columns: ``layer``; ``n_tokens`` = N * T; ``mean_entropy_nats`` and
    ``mean_kl_to_final_nats`` = means over the N * T tokens (nats, accumulated in float64);
    ``top1_agreement`` = fraction of tokens with ``agrees_final``; ``mean_p_next`` = mean
    probability of the true next token over its finite values (the last position, which has
    no next token, is NaN and left out); ``median_rank_next`` = median 1-based rank of the true
    next token over the entries with rank >= 1 (the last position's -1 left out). A layer
    without any finite p_next / rank gets NaN. ``n_layers`` (optional) refuses arrays whose
    axis 1 has another length (:class:`LensArrayError`).
    """
    entropy = _lens_array(entropy, "entropy", "f", "floats (nats)")
    check_layer_axis(entropy, n_layers, "entropy", error=LensArrayError)
    arrays = {
        "kl_to_final": _lens_array(kl_to_final, "kl_to_final", "f", "floats (nats)"),
        "p_next": _lens_array(p_next, "p_next", "f", "probabilities (floats)"),
        "rank_next": _lens_array(rank_next, "rank_next", "iu", "integer ranks"),
        "agrees_final": _agreement(agrees_final),
    }
    for name, array in arrays.items():
        if array.shape != entropy.shape:
            raise LensArrayError(
                f"{name} has shape {array.shape} but entropy has shape {entropy.shape}.",
                "Pass the lens arrays of one condition, all shaped [N, L, T].",
            )
    n_windows, n_layers, seq_len = entropy.shape
    p_next, rank_next = arrays["p_next"], arrays["rank_next"]
    finite = np.isfinite(p_next)
    n_finite = finite.sum(axis=(0, 2), dtype=np.int64)
    p_sum = np.where(finite, p_next, 0).sum(axis=(0, 2), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p_next = np.where(n_finite > 0, p_sum / np.maximum(n_finite, 1), np.nan)
    median_rank = np.full(n_layers, np.nan)
    for layer in range(n_layers):
        ranks = rank_next[:, layer, :]
        ranks = ranks[ranks >= 1]
        if ranks.size:
            median_rank[layer] = float(np.median(ranks))
    return pd.DataFrame(
        {
            "layer": np.arange(n_layers, dtype=np.int64),
            "n_tokens": np.full(n_layers, n_windows * seq_len, dtype=np.int64),
            "mean_entropy_nats": entropy.mean(axis=(0, 2), dtype=np.float64),
            "mean_kl_to_final_nats": arrays["kl_to_final"].mean(axis=(0, 2), dtype=np.float64),
            "top1_agreement": arrays["agrees_final"].mean(axis=(0, 2), dtype=np.float64),
            "mean_p_next": mean_p_next,
            "median_rank_next": median_rank,
        }
    )[LAYER_LENS_COLUMNS]


# --------------------------------------------------------------------------------------------
# collapse vs cascade depth


def _rho_from_tables(tables: np.ndarray) -> np.ndarray:
    """Spearman rho (average ranks for ties) of each joint count table ``[B, K1, K2]``.

    Row ``i`` / column ``j`` is the i-th / j-th smallest distinct value of the two variables and
    ``w[b, i, j]`` the number of tokens with that pair. With marginals ``r_i``, ``s_j`` and
    ``M = sum w``, the tied tokens of value ``i`` share the midrank ``R_<i + (r_i + 1) / 2``;
    centred on the mean rank (M + 1) / 2 it is ``x_i = cumsum(r)_i - r_i / 2 - M / 2``. Then
    ``rho = sum w_ij x_i y_j / sqrt(sum r_i x_i^2 * sum s_j y_j^2)``: the Pearson correlation
    of the ranks, exactly what ``scipy.stats.spearmanr`` computes on the token list. NaN when
    either variable is constant in a table.
    """
    rows, cols = tables.sum(axis=2), tables.sum(axis=1)
    total = rows.sum(axis=1, keepdims=True)
    x = np.cumsum(rows, axis=1) - rows / 2 - total / 2
    y = np.cumsum(cols, axis=1) - cols / 2 - total / 2
    cov = np.einsum("bij,bi,bj->b", tables, x, y)
    var = (rows * x * x).sum(axis=1) * (cols * y * y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)
    return np.clip(rho, -1.0, 1.0)


def _undefined_reason(collapse: np.ndarray, depth: np.ndarray) -> str:
    reasons = []
    if not (depth > 0).any():
        reasons.append("no token has an event")
    elif depth.min() == depth.max():
        reasons.append(f"cascade depth constant ({int(depth.flat[0])} layers at every token)")
    if collapse.min() == collapse.max():
        reasons.append(f"collapse layer constant (layer {int(collapse.flat[0])} at every token)")
    return "; ".join(reasons)


def _null_tables(
    codes_c: np.ndarray, codes_d: np.ndarray, shape: tuple[int, int], condition_key: str, P: int
) -> np.ndarray:
    """Joint tables ``[P, K1 * K2]`` of the token-shuffle null (depths permuted within windows)."""
    n_windows, seq_len = codes_c.shape
    cells = shape[0] * shape[1]
    base = codes_c * shape[1]
    tables = np.empty((P, cells), dtype=np.float64)
    for p in range(P):
        rng = np.random.default_rng(seed_of(NULL_SEED_LABEL, condition_key, p))
        order = np.stack([rng.permutation(seq_len) for _ in range(n_windows)])
        shuffled = np.take_along_axis(codes_d, order, axis=1)
        tables[p] = np.bincount((base + shuffled).ravel(), minlength=cells)
    return tables


@single_threaded_blas
def collapse_cascade_alignment(
    collapse,
    depth,
    condition_key: str,
    replicates: int,
    null_permutations: int,
    *,
    bootstrap_key: str | None = None,
    keep_replicates: bool = False,
) -> dict[str, Any]:
    """Does the lens collapse layer of a token follow the depth of its activation cascade?

    ``collapse`` and ``depth`` are int ``[N, T]`` (:func:`collapse_layers`,
    :func:`cascade_depth`). Returns the T11 statistics of one condition:

    * ``n_windows`` = N, ``n_tokens`` = N * T, ``mean_collapse_layer``, ``mean_cascade_depth``
      (layers, tokens without events at 0) and ``frac_tokens_with_events`` (depth > 0);
    * ``spearman_rho``: Spearman rank correlation (average ranks for ties) of collapse and
      depth over all N * T tokens;
    * ``rho_ci_low`` / ``rho_ci_high``: 2.5 / 97.5 % percentiles of the finite replicate rhos
      of the window bootstrap, ``bootstrap_indices(N, replicates, condition_key)`` (the index
      matrix every other statistic of the condition uses); a replicate takes all T tokens of
      each drawn window;
    * the token-shuffle null: for ``p = 0 .. P-1``, ``rng = default_rng(seed_of(
      "lens_token_shuffle", condition_key, p))`` draws ``rng.permutation(T)`` for each window in
      window order and the depths of that window are permuted with it; ``null_rho_mean``,
      ``null_rho_low`` / ``null_rho_high`` (2.5 / 97.5 %), ``delta_rho_vs_null = rho -
      null_rho_mean`` and the two-sided ``p_value_vs_null = (1 + #{|rho_p - mean| >= |rho -
      mean|}) / (1 + P)`` (deviations within 1e-12 count as equal). The shuffle keeps each
      window's collapse layers and multiset of depths, so a correlation carried by differences
      *between* windows stays in the null; only token-level alignment raises ``delta``;
    * ``n_replicates``, ``n_null_permutations`` (as requested; 0 skips that part, leaving its
      statistics NaN), ``defined`` and ``reason``;
    * with ``keep_replicates``, ``rho_replicates``: the bootstrap rho of every replicate (NaN
      where undefined), so two models measured on the same windows with the same
      ``bootstrap_key`` can be compared replicate by replicate (a paired bootstrap).

    ``bootstrap_key`` (default ``condition_key``) seeds the bootstrap indices; the null is
    always seeded by ``condition_key``.

    rho is undefined when no token has an event, when the depth is the same at every token or
    when the collapse layer is: every rho statistic is then NaN, ``defined`` False and
    ``reason`` says why (never an exception). Spearman is computed exactly from joint count
    tables (see :func:`_rho_from_tables`), which makes a bootstrap replicate one matrix product
    ``W @ per-window tables`` instead of ranking N * T resampled tokens.
    """
    collapse, depth = _token_pair(collapse, depth)
    replicates = _count(replicates, "replicates")
    null_permutations = _count(null_permutations, "null_permutations")
    n_windows, seq_len = collapse.shape
    if collapse.size == 0:
        raise LensArrayError(
            f"collapse and depth have no token: shape {collapse.shape}.",
            "Pass the tokens of at least one window.",
        )
    result: dict = dict.fromkeys(ALIGNMENT_KEYS, np.nan)
    result.update(
        n_windows=int(n_windows),
        n_tokens=int(collapse.size),
        mean_collapse_layer=float(collapse.mean(dtype=np.float64)),
        mean_cascade_depth=float(depth.mean(dtype=np.float64)),
        frac_tokens_with_events=float((depth > 0).mean(dtype=np.float64)),
        n_replicates=replicates,
        n_null_permutations=null_permutations,
        defined=False,
        reason=_undefined_reason(collapse, depth),
    )
    if keep_replicates:
        result["rho_replicates"] = np.full(replicates, np.nan)
    if result["reason"]:
        return result

    values_c, codes_c = np.unique(collapse.ravel(), return_inverse=True)
    values_d, codes_d = np.unique(depth.ravel(), return_inverse=True)
    shape = (values_c.size, values_d.size)
    codes_c, codes_d = codes_c.reshape(collapse.shape), codes_d.reshape(depth.shape)
    cells = shape[0] * shape[1]
    # per-window joint tables [N, K1 * K2]: how many tokens of window n have each pair
    flat = (np.arange(n_windows)[:, None] * cells + codes_c * shape[1] + codes_d).ravel()
    per_window = np.bincount(flat, minlength=n_windows * cells).reshape(n_windows, cells)
    per_window = per_window.astype(np.float64)

    rho = float(_rho_from_tables(per_window.sum(axis=0).reshape(1, *shape))[0])
    result.update(spearman_rho=rho, defined=True, reason="")
    if replicates:
        weights = resample_weights(
            bootstrap_indices(n_windows, replicates, bootstrap_key or condition_key), n_windows
        )
        boot = _rho_from_tables((weights.astype(np.float64) @ per_window).reshape(-1, *shape))
        result["rho_ci_low"], result["rho_ci_high"] = percentile_interval(boot)
        if keep_replicates:
            result["rho_replicates"] = boot
    if null_permutations:
        null = _rho_from_tables(
            _null_tables(codes_c, codes_d, shape, condition_key, null_permutations).reshape(
                -1, *shape
            )
        )
        null = null[np.isfinite(null)]  # never drops one: the shuffle keeps both marginals
        null_mean = float(null.mean())
        low, high = percentile_interval(null)
        extreme = np.abs(null - null_mean) >= abs(rho - null_mean) - P_VALUE_TOLERANCE
        result.update(
            null_rho_mean=null_mean,
            null_rho_low=low,
            null_rho_high=high,
            delta_rho_vs_null=rho - null_mean,
            p_value_vs_null=(1 + int(extreme.sum())) / (1 + null_permutations),
        )
    return result


def collapse_crosstab(collapse, depth) -> pd.DataFrame:
    """Joint distribution of collapse layer and cascade depth over the tokens of ``[N, T]``.

    Columns ``collapse_layer``, ``cascade_depth``, ``n_tokens`` (int64): one row per pair that
    occurs (n_tokens > 0), sorted by collapse layer then depth; the counts sum to N * T.
    """
    collapse, depth = _token_pair(collapse, depth)
    pairs = np.stack([collapse.ravel(), depth.ravel()], axis=1).astype(np.int64)
    if pairs.shape[0] == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in CROSSTAB_COLUMNS})
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    return pd.DataFrame(
        {
            "collapse_layer": unique[:, 0],
            "cascade_depth": unique[:, 1],
            "n_tokens": counts.astype(np.int64),
        }
    )
