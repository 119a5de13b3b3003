"""Compiled (numba) host kernels for the CPU event passes: one read of u per layer and batch.

The reductions of :mod:`.accumulators` only need the few entries of ``u [sites, d_ff]`` that lie
outside the per-unit bounds ``[lo, hi]`` of :func:`.moments.exceedance_bounds` (about 1 % of
them at the study's rates). In numpy that takes two comparisons, a logical and, a negation and
a ``flatnonzero`` over all of u, then one comparison and one ``bincount`` per (spike definition,
target rate) over the kept entries: seven passes and as many temporaries. On the embedded model
(d_ff = 384, a forward of a few milliseconds per layer) those passes cost as much as a tenth of
the pass itself. The kernels here read u once:

* per site (row), a branch-free, vectorizable loop writes the mask ``u < lo or u > hi or u is
  NaN`` of the row into a small byte buffer;
* the buffer is read eight bytes at a time as one 64-bit word; in the (rare) non-zero words
  the kept bytes are found by counting trailing zero bits (``llvm.cttz``), not by testing
  each byte, whose branch was mispredicted at every kept entry;
* a kept entry gets ``z = fl(fl(u - mu) / (sigma + eps))`` by the same correctly rounded fp32
  operations as :class:`.moments.Standardizer` (numba types ``float32 - float32`` as float32 and
  compiles without fast-math), so every z is bit-identical to the dense computation;
* when counting, the kept units of the row are listed first, and only then get their z and
  their per-threshold counts (0/1 comparisons summed over the row's kept z). Counting inside
  the search loop cost about a third more (0.23 against 0.17 ms for 2048 sites of d_ff = 384
  at 0.85 % kept, 8 thresholds): each mispredicted exit of the search also discarded the
  counting begun after it. Collecting z, whose work per entry is a store, stays in the loop.

Both kernels also return ``max |z|`` of the kept entries for :class:`.accumulators.FiniteGuard`
(0 when none), or NaN when any kept z is NaN.

**Threads.** With torch running the forward on several threads, a serial hook is the one
part of the pass that does not speed up (on 2 cores the hooks' share rose from 3.7 to
5.2-6.5 %), and the half of u that the other thread wrote sits in the other core's cache. So
a caller passes torch's thread count and the scan splits the sites into that many consecutive
ranges (:func:`_scan_parallel`), then moves each range's collected z up behind the previous
one's: the same values in the same order as one thread, bit for bit. It runs on numba's
OpenMP layer, whose calls bind to the libgomp torch loaded (``libtorch_global_deps`` makes it
global), so the ranges run on torch's own, still spinning, worker threads. Python threads
(tried first) contended with those workers and made the hooks slower; so does any other
threading layer, which is why the scans fall back to one thread for good when numba picks
another one, and in a forked child of a process that launched them (numba terminates such a
child rather than risk GNU OpenMP after ``fork``).

Compiled once per machine: ``cache=True`` stores the machine code next to this module
(``__pycache__``), so later processes load it in milliseconds. ``nogil`` lets torch's own
threads run meanwhile.
"""

from __future__ import annotations

import os
import sys
import threading

import llvmlite.ir as llvm_ir
import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .moments import DEN, HI, LO, MU

#: bytes looked at together when scanning the row mask for kept entries
_WORD = 8
if sys.byteorder != "little":  # byte b of a mask word must be its bits 8b .. 8b+7
    raise ImportError(
        "avalanche_kedro.measure.kernels reads its byte masks as little-endian 64-bit words; "
        "this machine is big-endian. Run the passes on an accelerator (runtime.device)."
    )


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _row_mask(row, lo, hi, mask) -> None:  # pragma: no cover - compiled
    """``mask[j] = not (lo[j] <= row[j] <= hi[j])`` (NaN: 1), branch-free so LLVM vectorizes."""
    for j in range(row.shape[0]):
        x = row[j]
        mask[j] = np.uint8(not (x <= hi[j])) | np.uint8(not (x >= lo[j]))


@intrinsic
def _trailing_zeros(typingctx, word):  # pragma: no cover - compiled
    """Trailing zero bits of a non-zero uint64 (LLVM's ``cttz``: one instruction)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        i64 = llvm_ir.IntType(64)
        function_type = llvm_ir.FunctionType(i64, [i64, llvm_ir.IntType(1)])
        cttz = builder.module.declare_intrinsic("llvm.cttz", [i64], function_type)
        return builder.call(cttz, [args[0], llvm_ir.Constant(llvm_ir.IntType(1), 0)])

    return signature, codegen


@numba.njit(cache=True, nogil=True)
def _check_shapes(u, units, taus, two_sided, counts, collect, z) -> None:  # pragma: no cover
    """The scans run without bounds checks, so every shape is checked once before them."""
    n_b, n_t, d_ff = u.shape
    n_s, n_r = taus.shape
    if units.shape[0] != 4 or units.shape[1] != d_ff:
        raise ValueError("the unit table must be [4, d_ff] of u")
    if not collect and (
        counts.shape[0] != n_s * n_r
        or counts.shape[1] != n_b
        or counts.shape[2] != n_t
        or two_sided.shape[0] != n_s
    ):
        raise ValueError("counts must be [S*R, B, T] of u [B, T, d_ff] and taus [S, R]")
    if collect and z.shape[0] < u.size:
        raise ValueError("z must hold every entry of u")


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan_sites(u, units, taus, two_sided, counts, collect, z, first, last):  # pragma: no cover
    """The one read of the sites ``first .. last - 1`` (site ``b T + t``) of ``u [B, T, d_ff]``:
    every entry outside ``[lo, hi]`` gets its exact z, which is collected into ``z`` from
    index ``first d_ff`` on (room for every entry of these sites) or counted per site and
    threshold into ``counts [S*R, B, T]`` (every site is written). Returns (peak ``max |z|``
    of the finite z, whether any z was NaN, number collected)."""
    n_t, d_ff = u.shape[1], u.shape[2]
    n_s, n_r = taus.shape
    lo, hi, mu, den = units[LO], units[HI], units[MU], units[DEN]
    n_words = (d_ff + _WORD - 1) // _WORD
    mask = np.zeros(n_words * _WORD, np.uint8)
    words = mask.view(np.uint64)
    kept = np.empty(d_ff, np.int64)
    site_z = np.empty(d_ff, np.float32)
    peak = np.float32(0.0)
    saw_nan = False
    start = first * d_ff
    n_kept = 0
    block, t = first // n_t, first % n_t - 1  # advanced at the top of each site
    for _ in range(first, last):
        t += 1
        if t == n_t:
            block, t = block + 1, 0
        row = u[block, t]
        _row_mask(row, lo, hi, mask)
        m = 0
        for w in range(n_words):
            bits = words[w]
            while bits != 0:
                # mask bytes are 0 or 1, so the lowest set bit is bit 0 of the next kept byte
                # (little-endian: byte b of the word is bits 8b .. 8b+7)
                j = w * _WORD + np.int64(_trailing_zeros(bits)) // 8
                bits &= bits - np.uint64(1)
                if collect:  # the same branch every time: predicted
                    value = (row[j] - mu[j]) / den[j]
                    z[start + n_kept] = value
                    n_kept += 1
                    a = abs(value)
                    saw_nan |= a != a
                    peak = a if a > peak else peak
                else:
                    kept[m] = j
                    m += 1
        if collect:
            continue
        for e in range(m):
            j = kept[e]
            value = (row[j] - mu[j]) / den[j]
            site_z[e] = value
            a = abs(value)
            saw_nan |= a != a
            peak = a if a > peak else peak
        for s in range(n_s):
            for r in range(n_r):
                tau = taus[s, r]
                c = 0
                if two_sided[s]:
                    for e in range(m):
                        c += abs(site_z[e]) > tau
                else:
                    for e in range(m):
                        c += site_z[e] > tau
                counts[s * n_r + r, block, t] = c
    return peak, saw_nan, n_kept


@numba.njit(cache=True, nogil=True)
def _scan(u, units, taus, two_sided, counts, collect, z):  # pragma: no cover - compiled
    """:func:`_scan_sites` over every site of u in one thread: (peak, number collected)."""
    _check_shapes(u, units, taus, two_sided, counts, collect, z)
    n_sites = u.shape[0] * u.shape[1]
    peak, saw_nan, n_kept = _scan_sites(u, units, taus, two_sided, counts, collect, z, 0, n_sites)
    return (np.float32(np.nan) if saw_nan else peak), n_kept


@numba.njit(cache=True, nogil=True, parallel=True)
def _scan_parallel(u, units, taus, two_sided, counts, collect, z, n_parts):  # pragma: no cover
    """:func:`_scan_sites` over ``n_parts`` consecutive ranges of sites, one per thread, then
    the collected z of each range moved up behind the previous one's (row-major order kept):
    (peak, number collected). The same values as :func:`_scan`, bit for bit."""
    _check_shapes(u, units, taus, two_sided, counts, collect, z)
    n_sites = u.shape[0] * u.shape[1]
    d_ff = u.shape[2]
    peaks = np.zeros(n_parts, np.float32)
    nans = np.zeros(n_parts, np.bool_)
    n_kept = np.zeros(n_parts, np.int64)
    for part in numba.prange(n_parts):
        first, last = part * n_sites // n_parts, (part + 1) * n_sites // n_parts
        peaks[part], nans[part], n_kept[part] = _scan_sites(
            u, units, taus, two_sided, counts, collect, z, first, last
        )
    total = 0
    for part in range(n_parts):
        start = part * n_sites // n_parts * d_ff
        for e in range(n_kept[part]):  # start >= total: a forward move never overwrites
            z[total + e] = z[start + e]
        total += n_kept[part]
    if nans.any():
        return np.float32(np.nan), total
    return peaks.max(), total


def _threads_for(threads: int) -> int:
    """How many threads a scan may use: 1 unless the caller runs several (torch's intra-op
    count) and the parallel scan shares them, i.e. numba's OpenMP layer, in the process that
    first launched it (:data:`parallel_state`)."""
    if threads <= 1 or parallel_state.get("disabled"):
        return 1
    pid = parallel_state.setdefault("pid", os.getpid())
    if pid != os.getpid():  # a forked child: numba would terminate it (GNU OpenMP after fork)
        return 1
    return min(threads, numba.config.NUMBA_NUM_THREADS)


def _launch(u, units, taus, two_sided, counts, collect, z, threads: int):
    """:func:`_scan` or :func:`_scan_parallel`, as :func:`_threads_for` allows."""
    n_parts = _threads_for(threads)
    if n_parts == 1:
        return _scan(u, units, taus, two_sided, counts, collect, z)
    if "layer" not in parallel_state:
        # The first launch loads numba's threading layer; it is made by one thread at a time,
        # since numba's fallback layer (workqueue) aborts the process on concurrent launches.
        with _FIRST_LAUNCH:
            if "layer" not in parallel_state:
                numba.set_num_threads(n_parts)
                result = _scan_parallel(u, units, taus, two_sided, counts, collect, z, n_parts)
                # only OpenMP runs on torch's own (already spinning) threads; another layer
                # would start a second pool that contends with them for the cores
                parallel_state["disabled"] = numba.threading_layer() != "omp"
                parallel_state["layer"] = numba.threading_layer()
                return result
        return _launch(u, units, taus, two_sided, counts, collect, z, threads)
    if numba.get_num_threads() != n_parts:  # numba's count is per calling thread
        numba.set_num_threads(n_parts)
    return _scan_parallel(u, units, taus, two_sided, counts, collect, z, n_parts)


def count_outside_events(u, units, taus, two_sided, counts, threads: int = 1) -> np.float32:
    """Write into ``counts [S*R, B, T]`` (int32, any strides) the per-site number of entries
    with ``v > taus[s, r]``, over the entries of ``u [B, T, d_ff]`` (fp32, C-contiguous)
    outside the bounds of ``units`` (:attr:`.moments.UnitBounds.host_table`); ``v = |z|``
    where ``two_sided[s]``, else z. A caller's buffer of any layout (a layer's slice of
    ``[S*R, B, L, T]``) is filled in place; ``threads``: see :func:`_threads_for`.

    Exact when every ``taus[s, r]`` is at least the floor the bounds were formed for: an entry
    inside the bounds cannot exceed any threshold. Returns the peak ``max |z|`` of the kept
    entries (0 when none; NaN when any z is NaN).
    """
    peak, _ = _launch(u, units, taus, two_sided, counts, False, _NO_Z, threads)
    return peak


def outside_values(u, units, threads: int = 1) -> tuple[np.ndarray, np.float32]:
    """The exact z (fp32, in row-major index order) of the entries of ``u [B, T, d_ff]``
    (fp32, C-contiguous) outside the bounds of ``units`` (NaN included) and their peak
    ``max |z|`` (0 when none; NaN when any z is NaN): what the threshold fits and the baseline
    counts need. ``threads``: see :func:`_threads_for`."""
    # room for every entry: the pages of the (few) kept ones are the only ones touched, and a
    # growing buffer's capacity check cost more than the whole comparison pass
    z = np.empty(u.size, np.float32)
    peak, n_kept = _launch(u, units, _NO_TAUS, _NO_FLAGS, _NO_COUNTS, True, z, threads)
    return z[:n_kept].copy(), peak


#: placeholders of the arguments one kind of scan does not use
_NO_Z = np.empty(0, np.float32)
_NO_TAUS, _NO_FLAGS = np.empty((0, 0), np.float32), np.empty(0, np.bool_)
_NO_COUNTS = np.empty((0, 0, 1), np.int32)

#: the parallel scan's process (``pid``), numba's threading layer once it launched (``layer``)
#: and whether the scans stay in one thread for good (``disabled``)
parallel_state: dict = {}
_FIRST_LAUNCH = threading.Lock()


def host_sites(values: np.ndarray, d_ff: int) -> np.ndarray:
    """``values [..., d_ff]`` as C-contiguous fp32 ``[B, T, d_ff]``: a three-dimensional
    array (a hook's u) keeps its shape, any other becomes ``[1, sites, d_ff]``; a view when it
    already is C-contiguous fp32, else a copy."""
    if values.ndim != 3:
        values = values.reshape(1, -1, d_ff)
    return np.ascontiguousarray(values, dtype=np.float32)
