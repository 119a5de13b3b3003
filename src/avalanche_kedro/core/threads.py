"""Single-threaded BLAS for the small matrix products of the analysis.

The bootstrap and crackling fits multiply matrices of a few hundred rows (replicate weights
times per-window counts). With OpenBLAS's thread pool such a product waits for its threads to
wake up: on a 2-core machine a 500 x 64 by 64 x 60 product took 4 ms with 2 threads and 0.1 ms
with one. :func:`single_threaded_blas` limits numpy's BLAS to one thread for the duration of a
call and restores it afterwards, so a notebook's own large products are not affected.
:func:`available_cores` is the upper bound of ``runtime.torch_threads``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable


def _controller():
    """A controller of the thread pools loaded *now*. Built per call (0.6 ms): a controller
    kept from an earlier call would not know a BLAS loaded since (scipy's own OpenBLAS is
    loaded only when scipy is first imported) and would leave it multi-threaded."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas(function: Callable) -> Callable:
    """Decorator: run ``function`` with every loaded BLAS (numpy's, scipy's) limited to one
    thread."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with _controller().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one, e.g. a
    container limited to 2 of a host's 64 cores; otherwise ``os.cpu_count()``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)
