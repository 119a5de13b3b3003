"""Two runs at once: one builds a checkpoint directory, the other waits for it and reuses it.

A checkpoint the project builds itself (an embedded recipe, :mod:`.embedded`; a trained one,
:mod:`.trained`) is assembled in a *staging* folder ``<parent>/.<name>-<random>`` and renamed
into place only when every file is written, so a reader sees either no directory or a complete
one, never a half-written checkpoint. The build itself runs under :func:`build_lock`, an
exclusive ``flock`` on ``<parent>/.<name>.lock``:

* a run that finds the lock held logs one WARNING (:data:`WAIT_MESSAGE`) and waits for it;
  once it has the lock it looks again and reuses the checkpoint the other run built;
* staging folders left by a killed build are removed only under the lock
  (:func:`remove_stale_staging`), so a live build's staging folder is never deleted;
* the lock is the kernel's: it goes with the process that holds it, so a crashed or killed run
  never leaves a lock that blocks the next one. The holder deletes the lock file before it
  lets go (a waiter that then gets the deleted file locks the path afresh), so a finished
  build leaves nothing but the checkpoint.

By default a waiting run waits as long as the other run takes (a build ends, or its process
dies and the lock with it); ``timeout`` seconds turn a longer wait into a
:class:`~avalanche_kedro.core.errors.CheckpointError`. Without ``fcntl`` (Windows) there is no
lock: two runs at once may both build, and the second rename then fails.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import CheckpointError

logger = logging.getLogger(__name__)

#: Logged once (WARNING) by a run that finds another run building the same checkpoint.
WAIT_MESSAGE = (
    "Waiting for another run that is building %s (lock %s); this run goes on with that "
    "checkpoint when it is done."
)
#: How often a wait with a timeout tries the lock again (seconds).
POLL_SECONDS = 0.1


def lock_file(directory: Path | str) -> Path:
    """``<parent>/.<name>.lock``: the lock of the checkpoint directory ``directory``."""
    directory = Path(directory)
    return directory.parent / f".{directory.name}.lock"


def make_staging(directory: Path | str) -> Path:
    """A new, empty staging folder ``<parent>/.<name>-<random>`` next to ``directory``."""
    directory = Path(directory)
    return Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))


def staging_folders(directory: Path | str) -> list[Path]:
    """The staging folders of ``directory`` (live or left behind), sorted.

    Only ``.<name>-<letters, digits, _>``: the staging folder of a checkpoint whose name
    merely starts with ``<name>-`` (``tiny-llama-stdlib-qa`` next to ``tiny-llama-stdlib``)
    has a ``-`` after the prefix and is never taken for one of this directory's.
    """
    directory = Path(directory)
    pattern = re.compile(rf"\.{re.escape(directory.name)}-[A-Za-z0-9_]+")
    if not directory.parent.is_dir():
        return []
    return sorted(
        path
        for path in directory.parent.iterdir()
        if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
    )


def remove_stale_staging(directory: Path | str) -> list[Path]:
    """Remove the staging folders of ``directory`` left by a killed build; call under the lock.

    While this process holds :func:`build_lock` no other run is building ``directory``, so
    every staging folder there belongs to a dead build: it is removed, never loaded.
    """
    removed = staging_folders(directory)
    for stale in removed:
        logger.warning("Removing %s, left by an interrupted build (never loaded)", stale)
        shutil.rmtree(stale, ignore_errors=True)
    return removed


@contextmanager
def build_lock(directory: Path | str, timeout: float | None = None) -> Iterator[bool]:
    """Hold the exclusive build lock of ``directory``; yields whether this run had to wait.

    A run that finds the lock held logs :data:`WAIT_MESSAGE` once and waits; after waiting the
    caller should look for the checkpoint again (the other run built it). ``timeout``: at most
    that many seconds of waiting, then a :class:`CheckpointError` (None: wait as long as the
    other run holds the lock; it is released when that process ends, however it ends).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    path = lock_file(directory)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; two runs at once may both build
        yield False
        return
    fd, waited = _acquire(fcntl, directory, path, timeout)
    try:
        yield waited
    finally:
        # Delete the file while still holding its lock: a run waiting on it then finds that
        # the path no longer names the file it locked, and locks the path afresh.
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)  # releases the lock


def _acquire(fcntl, directory: Path, path: Path, timeout: float | None) -> tuple[int, bool]:
    start = time.monotonic()
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fcntl, fd):
                if not waited:
                    logger.warning(WAIT_MESSAGE, directory, path)
                    waited = True
                if timeout is None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                else:
                    _wait_with_timeout(fcntl, fd, directory, path, start, timeout)
            if _names_file(path, fd):
                if waited:
                    logger.info(
                        "The other run released %s after %.1f s", path, time.monotonic() - start
                    )
                return fd, waited
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder deleted that file as it let go: lock the path again


def _try_lock(fcntl, fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_with_timeout(
    fcntl, fd: int, directory: Path, path: Path, start: float, timeout: float
) -> None:
    while not _try_lock(fcntl, fd):
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            raise CheckpointError(
                f"Another run has been building '{directory}' for more than {timeout:g} s "
                f"(it holds the lock '{path}'), so this run stopped waiting for it.",
                "Let that run finish (or stop it) and start this one again. The lock ends "
                "with the process that holds it; if no other run is alive (a lock kept by a "
                f"network file system), delete '{path}' and run again.",
            )
        time.sleep(min(POLL_SECONDS, left))


def _names_file(path: Path, fd: int) -> bool:
    """Does ``path`` still name the file open as ``fd`` (not deleted or replaced)?"""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)
