"""single_threaded_blas: numpy's BLAS runs on one thread during the call, and only then."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from avalanche_kedro.core.threads import single_threaded_blas


def blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def other_threads() -> dict[str, int]:
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] != "blas"}  # fmt: skip


@single_threaded_blas
def threads_inside(a, b=2):
    """Report BLAS threads while running."""
    np.ones((4, 4)) @ np.ones((4, 4))  # a BLAS call inside the limit
    return a + b, blas_threads(), other_threads()


def test_numpy_has_a_blas_that_threadpoolctl_sees():
    assert blas_threads(), "numpy's BLAS is not visible to threadpoolctl"


def test_blas_has_one_thread_inside_and_the_previous_limit_after():
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() and set(blas_threads()) == {2}
        others = other_threads()
        total, inside, inside_others = threads_inside(1, b=5)
        assert total == 6  # arguments and the return value pass through
        assert set(inside) == {1}
        assert inside_others == others  # OpenMP (torch) and other pools are left alone
        assert set(blas_threads()) == {2}
    with threadpool_limits(limits=3, user_api="blas"):
        assert set(threads_inside(0)[1]) == {1}
        assert set(blas_threads()) == {3}


def test_the_limit_is_restored_when_the_call_raises():
    @single_threaded_blas
    def fails():
        assert set(blas_threads()) == {1}
        raise ValueError("inside")

    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(ValueError, match="inside"):
            fails()
        assert set(blas_threads()) == {2}


def test_nested_calls_stay_single_threaded():
    @single_threaded_blas
    def outer():
        first = threads_inside(0)[1]
        return first, blas_threads()

    with threadpool_limits(limits=2, user_api="blas"):
        first, after_inner = outer()
        assert set(first) == {1} and set(after_inner) == {1}
        assert set(blas_threads()) == {2}


def test_wraps_keep_name_and_docstring():
    assert threads_inside.__name__ == "threads_inside"
    assert threads_inside.__doc__ == "Report BLAS threads while running."
    assert threads_inside.__wrapped__(1)[0] == 3  # the undecorated function is reachable


def test_a_blas_loaded_after_the_first_call_is_limited_too():
    """scipy brings its own OpenBLAS; a call after it is loaded limits it as well."""
    threads_inside(0)  # a first call, whatever is loaded by now
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS if it was not yet)

    with threadpool_limits(limits=2, user_api="blas"):
        libraries = [info["filepath"] for info in threadpool_info() if info["user_api"] == "blas"]
        _, inside, _ = threads_inside(0)
        assert len(inside) == len(libraries) and set(inside) == {1}


def test_available_cores_follow_the_affinity_mask(monkeypatch):
    import os

    from avalanche_kedro.core.threads import available_cores

    if hasattr(os, "sched_getaffinity"):
        assert available_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert available_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: the machine's count
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert available_cores() == 1
