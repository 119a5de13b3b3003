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
  compiles without fast-math), so every z is bit-identical to the dense computation.

A site's event counts are summed in a small local array and added to ``counts`` once per site
with a kept entry, each threshold comparison added as 0 or 1 rather than branched on.

Both kernels also return ``max |z|`` of the kept entries for :class:`.accumulators.FiniteGuard`;
a NaN z makes it NaN for good (the comparison ``not (a <= peak)`` is guarded by ``peak == peak``).

Compiled once per machine: ``cache=True`` stores the machine code next to this module
(``__pycache__``), so later processes load it in milliseconds. ``nogil`` lets torch's own
threads run meanwhile.
"""

from __future__ import annotations

import sys

import llvmlite.ir as llvm_ir
import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

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


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _scan(rows, lo, hi, mu, den, taus, two_sided, counts, collect, z):  # pragma: no cover
    """The one read of ``rows [sites, d_ff]`` the kernels share: every entry outside
    ``[lo, hi]`` gets its exact z, which is collected into ``z`` (``collect``; ``z`` must hold
    every entry) or counted per site and threshold into ``counts``. Returns (peak ``max |z|``,
    number collected)."""
    n_sites, d_ff = rows.shape
    n_s, n_r = taus.shape
    n_q = n_s * n_r
    n_words = (d_ff + _WORD - 1) // _WORD
    mask = np.zeros(n_words * _WORD, np.uint8)
    words = mask.view(np.uint64)
    flat_taus = taus.ravel()
    site_counts = np.zeros(max(n_q, 1), np.int32)
    peak = np.float32(0.0)
    n_kept = 0
    for site in range(n_sites):
        row = rows[site]
        _row_mask(row, lo, hi, mask)
        kept_here = False
        for w in range(n_words):
            bits = words[w]
            while bits != 0:
                # mask bytes are 0 or 1, so the lowest set bit is bit 0 of the next kept byte
                # (little-endian: byte b of the word is bits 8b .. 8b+7)
                j = w * _WORD + np.int64(_trailing_zeros(bits)) // 8
                bits &= bits - np.uint64(1)
                kept_here = True
                value = (row[j] - mu[j]) / den[j]
                a = abs(value)
                if peak == peak and not (a <= peak):
                    peak = a
                if collect:
                    z[n_kept] = value
                    n_kept += 1
                    continue
                for s in range(n_s):
                    v = a if two_sided[s] else value
                    for r in range(n_r):
                        site_counts[s * n_r + r] += np.int32(v > flat_taus[s * n_r + r])
        if kept_here and not collect:
            for q in range(n_q):
                counts[q, site] += site_counts[q]
                site_counts[q] = 0
    return peak, n_kept


@numba.njit(cache=True, nogil=True, boundscheck=False)
def count_outside_events(rows, lo, hi, mu, den, taus, two_sided, counts):  # pragma: no cover
    """Add to ``counts [S*R, sites]`` (int32, zeroed by the caller) the per-site number of
    entries with ``v > taus[s, r]``, over the entries of ``rows [sites, d_ff]`` (fp32,
    C-contiguous) outside ``[lo, hi]``; ``v = |z|`` where ``two_sided[s]``, else z.

    Exact when every ``taus[s, r]`` is at least the floor the bounds were formed for: an entry
    inside the bounds cannot exceed any threshold. Returns the peak ``max |z|`` of the kept
    entries (0 when none; NaN when any z is NaN).
    """
    no_z = np.empty(0, np.float32)
    peak, _ = _scan(rows, lo, hi, mu, den, taus, two_sided, counts, False, no_z)
    return peak


@numba.njit(cache=True, nogil=True, boundscheck=False)
def outside_values(rows, lo, hi, mu, den):  # pragma: no cover - compiled
    """The exact z (fp32, in row-major index order) of the entries of ``rows [sites, d_ff]``
    (fp32, C-contiguous) outside ``[lo, hi]`` (NaN included) and their peak ``max |z|`` (0
    when none; NaN when any z is NaN): what the threshold fits and the baseline counts need."""
    n_sites, d_ff = rows.shape
    # room for every entry: the pages of the (few) kept ones are the only ones touched, and a
    # growing buffer's capacity check cost more than the whole comparison pass
    z = np.empty(n_sites * d_ff, np.float32)
    no_taus, no_flags = np.empty((0, 0), np.float32), np.empty(0, np.bool_)
    no_counts = np.empty((0, 0), np.int32)
    peak, n_kept = _scan(rows, lo, hi, mu, den, no_taus, no_flags, no_counts, True, z)
    return z[:n_kept].copy(), peak


def host_rows(values: np.ndarray, d_ff: int) -> np.ndarray:
    """``values`` as C-contiguous fp32 ``[sites, d_ff]`` (a view when it already is one)."""
    return np.ascontiguousarray(values.reshape(-1, d_ff), dtype=np.float32)
