"""The token x layer event lattice: avalanches, branching and susceptibility (SPEC §6).

Every function takes rasters shaped ``[N, L, T]`` (axis 0 windows, axis 1 layers, axis 2
tokens): counts ``A`` (events per site, any non-negative integer dtype) or occupancy ``X``
(``A > 0``, bool or 0/1 integers). Windows never connect to each other and the lattice does not
wrap around.

Axis safety: a raster passed as ``[N, T, L]`` would silently exchange ``b_time`` and
``b_depth``. Every function therefore takes an optional keyword ``n_layers``; when given, an
array whose axis 1 does not have ``n_layers`` entries is refused with a :class:`RasterError`
(which names the transpose when the last axis has ``n_layers`` entries). Pass the layer count
you know, e.g. ``n_layers=rasters.n_layers`` of an
:class:`avalanche_kedro.measure.rasters.EventRasters`. A raster with as many layers as tokens
cannot be told apart from its transpose; the check cannot catch that case.

Example::

    from avalanche_kedro.analysis.lattice import avalanches, branching, susceptibility
    table = avalanches(A, adjacency="ADJ_4N")      # one row per avalanche
    b = branching(A > 0)                           # {"b_time", "b_depth", "b_tot", ...}
    chi = susceptibility(A)
    branching(A.transpose(0, 2, 1), n_layers=A.shape[1])  # RasterError: looks like [N, T, L]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import AvalancheError

ADJ_4N = "ADJ_4N"
ADJ_8N = "ADJ_8N"
ADJACENCIES = (ADJ_4N, ADJ_8N)

#: SPEC §6: more components than this in one window is a hard failure.
MAX_COMPONENTS_PER_WINDOW = 20000
#: SPEC §6: chi = var(Y) / (mean(Y) + CHI_EPS).
CHI_EPS = 1e-8

AVALANCHE_COLUMNS = [
    "seq_index",
    "size",
    "span_tokens",
    "span_layers",
    "n_sites",
    "t_min",
    "t_max",
    "l_min",
    "l_max",
]


class RasterError(AvalancheError):
    """A raster has the wrong rank, dtype or values."""


class ComponentExplosionError(AvalancheError):
    """A window has more connected components than SPEC §6 allows."""


def check_layer_axis(
    array: np.ndarray, n_layers: int | None, name: str = "A", *, error: type = RasterError
) -> None:
    """Refuse an ``[N, L, T]`` array whose layer axis (axis 1) contradicts ``n_layers``.

    Nothing is checked when ``n_layers`` is None. ``array`` must already have 3 axes. Raises
    ``error`` (default :class:`RasterError`) naming the argument, its shape and the expected
    layer count; when the last axis has ``n_layers`` entries the message says the array looks
    like ``[N, T, L]`` and gives the transpose.
    """
    if n_layers is None:
        return
    if isinstance(n_layers, bool) or not isinstance(n_layers, int | np.integer) or n_layers < 0:
        raise RasterError(
            f"n_layers must be a non-negative integer or None; got {n_layers!r}.",
            "Pass the number of layers of the model (e.g. rasters.n_layers) or leave it None.",
        )
    shape = tuple(int(n) for n in array.shape)
    if shape[1] == n_layers:
        return
    if shape[2] == n_layers:
        raise error(
            f"{name} has shape {shape} but n_layers={int(n_layers)}: axis 1 (layers) has "
            f"{shape[1]} entries while the last axis has {int(n_layers)}, so {name} looks like "
            "[N, T, L] (windows, tokens, layers) instead of [N, L, T]. Analysed as it is, "
            "tokens would be read as layers (b_time and b_depth exchanged).",
            f"Swap the last two axes: {name}.transpose(0, 2, 1) (or np.swapaxes({name}, 1, 2)).",
        )
    raise error(
        f"{name} has shape {shape} but n_layers={int(n_layers)}: axis 1 (layers) has "
        f"{shape[1]} entries and no axis matches the expected layer count.",
        f"Pass {name} as [N, L, T] (windows, layers, tokens) of the model with {int(n_layers)} "
        "layers, or correct n_layers.",
    )


def check_raster(raster, name: str = "A", *, n_layers: int | None = None) -> np.ndarray:
    """Validate a raster ``[N, L, T]`` (windows, layers, tokens) of non-negative integers (or
    bools); returns it as ndarray.

    With ``n_layers``, an array whose axis 1 does not have ``n_layers`` entries is refused
    (:func:`check_layer_axis`).
    """
    array = np.asarray(raster)
    if array.ndim != 3:
        raise RasterError(
            f"Raster {name} must have 3 axes [N, L, T] (windows, layers, tokens); "
            f"got shape {array.shape}.",
            "Pass one condition at a time, e.g. rasters.counts(cond_id) or A[c] of the "
            "[C, N, L, T] array.",
        )
    if array.dtype.kind not in "biu":
        raise RasterError(
            f"Raster {name} must hold integer event counts or booleans; got dtype {array.dtype}.",
            "Use the uint16 counts A or the uint8 occupancy X written by the events pipeline. "
            "Float activations must first be thresholded into event counts; a float array "
            f"that holds whole counts can be cast: {name}.astype(numpy.uint16).",
        )
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise RasterError(
            f"Raster {name} contains negative counts (minimum {array.min()}).",
            "Event counts are numbers of units above threshold and cannot be negative; check "
            "how the raster was built.",
        )
    check_layer_axis(array, n_layers, name)
    return array


def _check_adjacency(adjacency: str) -> int:
    """The 2-D connectivity (4 or 8) of an adjacency id."""
    if adjacency not in ADJACENCIES:
        raise RasterError(f"Unknown adjacency '{adjacency}'.", f"Use one of {list(ADJACENCIES)}.")
    return 4 if adjacency == ADJ_4N else 8


class _Components:
    """Components of every window at once, grouped per component in scan order.

    The windows are laid side by side in one 2-D image ``[L, N * (T + 1)]`` with an empty token
    column after each window, so a single ``cc3d`` call labels every window and no component
    can cross from one window into the next (nor wrap around). Occupied sites are then grouped
    by label and components are numbered by their first site in (window, layer, token) raster
    order, the numbering ``scipy.ndimage.label`` would give, whatever order the library used.
    """

    def __init__(self, occupied: np.ndarray, adjacency: str):
        import cc3d

        n_windows, n_layers, seq_len = occupied.shape
        width = seq_len + 1
        image = np.zeros((n_layers, n_windows, width), dtype=bool)
        image[:, :, :seq_len] = occupied.transpose(1, 0, 2)
        image = image.reshape(n_layers, n_windows * width)
        labels, count = cc3d.connected_components(
            image, connectivity=_check_adjacency(adjacency), return_N=True
        )
        self.count = int(count)
        sites = np.flatnonzero(image)  # boolean flatnonzero is the fast one
        raw = labels.ravel()[sites]
        order = np.argsort(raw, kind="stable")
        self.raw = raw[order]
        sites = sites[order]
        layer, rest = np.divmod(sites, n_windows * width)
        window, token = np.divmod(rest, width)
        self.window, self.layer, self.token = window, layer, token
        self.raster_index = (window * n_layers + layer) * seq_len + token  # flat [N, L, T] index
        self.starts = np.flatnonzero(np.r_[True, self.raw[1:] != self.raw[:-1]])
        if self.count:
            first = np.minimum.reduceat(self.raster_index, self.starts)
            self.rank = np.argsort(first, kind="stable")
        else:
            self.starts = self.rank = np.zeros(0, dtype=np.int64)

    def reduce(self, ufunc, values: np.ndarray) -> np.ndarray:
        """``ufunc.reduceat`` of per-site values per component, in scan order."""
        return ufunc.reduceat(values, self.starts)[self.rank]

    def sites_per_component(self) -> np.ndarray:
        return np.diff(np.r_[self.starts, self.raw.size])[self.rank]


def label_components(
    raster, adjacency: str = ADJ_4N, *, n_layers: int | None = None
) -> tuple[np.ndarray, int]:
    """Connected components of the occupied sites of every window of ``raster [N, L, T]``
    (windows, layers, tokens) in one call.

    Returns ``(labels [N, L, T] int32, n_components)``; label 0 is empty and components are
    numbered 1... in scan order (window, layer, token). No component spans two windows.
    ``n_layers`` (optional) refuses a raster whose axis 1 has another length.
    """
    array = check_raster(raster, n_layers=n_layers)
    components = _Components(array > 0, adjacency)
    labels = np.zeros(array.size, dtype=np.int32)
    if components.count:
        number = np.empty(components.count, dtype=np.int32)
        number[components.rank] = np.arange(1, components.count + 1, dtype=np.int32)
        per_group = np.diff(np.r_[components.starts, components.raw.size])
        labels[components.raster_index] = np.repeat(number, per_group)
    return labels.reshape(array.shape), components.count


def avalanches(
    A, adjacency: str = ADJ_4N, seq_ids=None, *, n_layers: int | None = None
) -> pd.DataFrame:
    """One row per avalanche (connected component of occupied sites) of ``A [N, L, T]``
    (windows, layers, tokens).

    Columns: ``seq_index`` (window row in A; plus ``seq_id`` when ``seq_ids`` is given),
    ``size`` S = sum of A over the component's sites (events), ``span_tokens`` D = t_max -
    t_min + 1, ``span_layers`` H = l_max - l_min + 1, ``n_sites``, and the bounding box
    ``t_min, t_max, l_min, l_max``. Rows are in scan order (by each avalanche's first site).
    ``ADJ_4N`` joins t +/- 1 in a layer and l +/- 1 at a token; ``ADJ_8N`` also joins
    diagonals. All windows are labelled in one vectorized call; more than
    :data:`MAX_COMPONENTS_PER_WINDOW` components in one window raises
    :class:`ComponentExplosionError`. ``n_layers`` (optional) refuses a raster whose axis 1
    has another length.
    """
    counts = check_raster(A, n_layers=n_layers)
    _check_adjacency(adjacency)
    columns = (
        ["seq_index", "seq_id"] if seq_ids is not None else ["seq_index"]
    ) + AVALANCHE_COLUMNS[1:]
    if seq_ids is not None and len(seq_ids) != counts.shape[0]:
        raise RasterError(
            f"seq_ids has {len(seq_ids)} entries but the raster has {counts.shape[0]} windows.",
            "Pass the seq_id of every window row of the raster (rasters.seq_id).",
        )
    components = _Components(counts > 0, adjacency)
    if components.count == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in columns})
    seq_index = components.reduce(np.minimum, components.window).astype(np.int64)
    per_window = np.bincount(seq_index, minlength=counts.shape[0])
    worst = int(per_window.argmax())
    if per_window[worst] > MAX_COMPONENTS_PER_WINDOW:
        raise ComponentExplosionError(
            f"Window {worst} of the raster has {int(per_window[worst])} connected components "
            f"({adjacency}), above the SPEC limit of {MAX_COMPONENTS_PER_WINDOW}.",
            "The events are almost all isolated: raise the thresholds (lower target rates) "
            "or shorten the windows; the cascade statistics of such a raster are meaningless.",
        )
    t_min = components.reduce(np.minimum, components.token)
    t_max = components.reduce(np.maximum, components.token)
    l_min = components.reduce(np.minimum, components.layer)
    l_max = components.reduce(np.maximum, components.layer)
    events = counts.ravel()[components.raster_index].astype(np.int64)
    table = {
        "seq_index": seq_index,
        "size": components.reduce(np.add, events),
        "span_tokens": (t_max - t_min + 1).astype(np.int64),
        "span_layers": (l_max - l_min + 1).astype(np.int64),
        "n_sites": components.sites_per_component().astype(np.int64),
        "t_min": t_min.astype(np.int64),
        "t_max": t_max.astype(np.int64),
        "l_min": l_min.astype(np.int64),
        "l_max": l_max.astype(np.int64),
    }
    if seq_ids is not None:
        table["seq_id"] = np.asarray(seq_ids, dtype=np.int64)[seq_index]
    return pd.DataFrame(table)[columns]


def branching_counts(X, *, n_layers: int | None = None) -> pd.DataFrame:
    """Per-window branching counts of occupancy ``X [N, L, T]`` (windows, layers, tokens;
    SPEC §6).

    ``n_time = sum X[l, t] X[l, t+1]`` (pairs along tokens), ``n_depth = sum X[l, t]
    X[l+1, t]`` (pairs along depth) and ``den = sum X`` (every occupied site, boundary sites
    included), one row per window. ``n_layers`` (optional) refuses a raster whose axis 1 has
    another length (a transposed raster would exchange n_time and n_depth).
    """
    occupied = check_raster(X, "X", n_layers=n_layers) > 0
    n_time = (occupied[:, :, :-1] & occupied[:, :, 1:]).sum(axis=(1, 2), dtype=np.int64)
    n_depth = (occupied[:, :-1, :] & occupied[:, 1:, :]).sum(axis=(1, 2), dtype=np.int64)
    den = occupied.sum(axis=(1, 2), dtype=np.int64)
    return pd.DataFrame({"n_time": n_time, "n_depth": n_depth, "den": den})


def pooled_branching(n_time, n_depth, den) -> dict[str, float | bool]:
    """``b_x = sum n_x / sum den`` (a ratio of sums, not a mean of ratios).

    An empty raster (``sum den = 0``) gives NaN for every b and ``empty = True``.
    """
    total = int(np.sum(den))
    if total == 0:
        return {"b_time": np.nan, "b_depth": np.nan, "b_tot": np.nan, "empty": True}
    b_time = int(np.sum(n_time)) / total
    b_depth = int(np.sum(n_depth)) / total
    return {"b_time": b_time, "b_depth": b_depth, "b_tot": b_time + b_depth, "empty": False}


def branching(X, *, n_layers: int | None = None) -> dict[str, float | bool]:
    """Pooled branching of ``X [N, L, T]`` (windows, layers, tokens): ``b_time``, ``b_depth``,
    ``b_tot`` and ``empty``. ``n_layers`` (optional) refuses a raster whose axis 1 has another
    length."""
    counts = branching_counts(X, n_layers=n_layers)
    return pooled_branching(counts["n_time"], counts["n_depth"], counts["den"])


def window_totals(A, *, n_layers: int | None = None) -> np.ndarray:
    """``Y_n = sum_{l, t} A[n, l, t]``: events per window (int64) of ``A [N, L, T]`` (windows,
    layers, tokens); ``n_layers`` (optional) refuses a raster whose axis 1 has another length."""
    return check_raster(A, n_layers=n_layers).sum(axis=(1, 2), dtype=np.int64)


def susceptibility_of_totals(Y) -> float:
    """``chi = var(Y, ddof=0) / (mean(Y) + 1e-8)`` of per-window event totals."""
    totals = np.asarray(Y, dtype=np.float64)
    if totals.size == 0:
        return float("nan")
    return float(totals.var() / (totals.mean() + CHI_EPS))


def susceptibility(A, *, n_layers: int | None = None) -> float:
    """Susceptibility chi of a raster ``A [N, L, T]`` (windows, layers, tokens; SPEC §6).

    ``n_layers`` (optional) refuses a raster whose axis 1 has another length."""
    return susceptibility_of_totals(window_totals(A, n_layers=n_layers))
