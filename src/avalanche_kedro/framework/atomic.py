"""Saves that publish a dataset version only once it is completely written.

Kedro finds the latest version of a versioned dataset by listing ``<filepath>/*/<name>``: a
version exists as soon as its file does. A save that writes straight to that path and fails
half way (a full disk, a killed process, a value that cannot be serialized) therefore leaves
a truncated file that every later load, and ``--only-missing-outputs``, takes for the newest
version, shadowing the good one before it.

Here a save writes to a hidden sibling of its target (``.<name>.partial-<pid>-<token>`` in the
same folder, which the version listing never matches) and renames it into place only after
the write returned; a failed save removes the staged file and the version folder it created.
A versioned save never replaces an existing file (a hard link refuses to, where the
filesystem has them; otherwise the rename follows Kedro's own check that the version is new).

:class:`ParquetDataset`, :class:`JSONDataset`, :class:`PickleDataset` and :class:`TextDataset`
are kedro-datasets' classes (same arguments, loads, previews) with this save; the catalog uses
them instead of ``pandas.ParquetDataset``, ``json.JSONDataset``, ``pickle.PickleDataset`` and
``text.TextDataset``. Re-exported by :mod:`avalanche_kedro.framework.datasets`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset
from kedro_datasets.text import TextDataset as _TextDataset

__all__ = [
    "AtomicSaveMixin",
    "JSONDataset",
    "ParquetDataset",
    "PickleDataset",
    "TextDataset",
    "is_local",
    "publish",
    "remove_staged",
    "staged_path",
]

PARTIAL = ".partial-"


def staged_path(target: PurePosixPath) -> PurePosixPath:
    """A hidden, unique sibling of ``target`` to write into before publishing it."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return target.parent / f".{target.name}{PARTIAL}{token}"


def is_local(fs: Any) -> bool:
    """Whether ``fs`` (an fsspec filesystem) is the local one, where renames are atomic."""
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def publish(fs: Any, staged: str, target: str, *, overwrite: bool) -> None:
    """Move the completely written ``staged`` file or folder to ``target`` in one step.

    ``overwrite=False`` (versioned saves): an existing ``target`` is never replaced; the save
    fails naming it. On another filesystem than the local one the move is ``fs.mv`` (object
    stores write an object whole or not at all).
    """
    if not is_local(fs):
        if not overwrite and fs.exists(target):
            raise _exists_error(target)
        fs.mv(staged, target, recursive=fs.isdir(staged))
        return
    if overwrite and os.path.isdir(staged) and os.path.isdir(target):
        # a folder cannot replace a non-empty one: move the old one aside, then drop it
        old = f"{staged}.old"
        os.rename(target, old)
        os.rename(staged, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    if overwrite:
        os.replace(staged, target)
        return
    if os.path.isdir(staged):
        if os.path.lexists(target):
            raise _exists_error(target)
        os.rename(staged, target)  # fails rather than replace a non-empty folder
        return
    try:
        os.link(staged, target)  # an atomic create that never replaces
    except FileExistsError:
        raise _exists_error(target) from None
    except OSError:  # no hard links on this filesystem: Kedro checked the version is new
        if os.path.lexists(target):
            raise _exists_error(target) from None
        os.replace(staged, target)
        return
    os.unlink(staged)


def _exists_error(target: str) -> DatasetError:
    return DatasetError(
        f"Save path '{target}' exists already: another save wrote this version while this "
        "one was writing, and saved versions are never overwritten.\n"
        "  How to fix: run again (a new run saves a new version)."
    )


def remove_staged(fs: Any, staged: str, folder: str | None) -> None:
    """Remove what a failed save left: ``staged`` and, when it is now empty, ``folder`` (the
    version folder the save created). Never raises: the save's own error is what counts."""
    with contextlib.suppress(Exception):
        if is_local(fs):
            if os.path.isdir(staged) and not os.path.islink(staged):
                shutil.rmtree(staged, ignore_errors=True)
            elif os.path.lexists(staged):
                os.unlink(staged)
            if folder and os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        else:
            if fs.exists(staged):
                fs.rm(staged, recursive=True)
            if folder and fs.isdir(folder) and not fs.ls(folder):
                fs.rmdir(folder)


class AtomicSaveMixin:
    """Makes an fsspec-based Kedro dataset's save write a staged file and publish it.

    The dataset's own save runs unchanged, with :meth:`_get_save_path` returning the staged
    path while it runs (kedro-datasets' saves ask for the path exactly once, then write to it).
    """

    _staged: PurePosixPath | None = None

    def _get_save_path(self) -> PurePosixPath:
        if self._staged is not None:
            return self._staged
        return super()._get_save_path()  # type: ignore[misc]

    @contextlib.contextmanager
    def staging(self, target: PurePosixPath) -> Iterator[PurePosixPath]:
        """Stage a save to ``target``: yields the staged path, publishes it when the body
        returns, removes it (and the version folder it made) when the body raises."""
        fs, protocol = self._fs, self._protocol  # type: ignore[attr-defined]
        versioned = self._version is not None  # type: ignore[attr-defined]
        staged = staged_path(target)
        staged_str = get_filepath_str(staged, protocol)
        folder = get_filepath_str(target.parent, protocol) if versioned else None
        created = folder is not None and not fs.exists(folder)
        try:
            yield staged
            publish(fs, staged_str, get_filepath_str(target, protocol), overwrite=not versioned)
        except BaseException:
            remove_staged(fs, staged_str, folder if created else None)
            raise

    def _save_staged(self, upstream: type, data: Any) -> None:
        """Run ``upstream``'s save (unwrapped: Kedro's wrapper runs once, around this class's
        save) into a staged path, then publish it."""
        target = self._get_save_path()  # versioned: refuses a version that exists
        raw_save = getattr(upstream.save, "__wrapped__", upstream.save)
        with self.staging(target) as staged:
            self._staged = staged
            try:
                raw_save(self, data)
            finally:
                self._staged = None
        self._invalidate_cache()  # type: ignore[attr-defined]


class ParquetDataset(AtomicSaveMixin, _ParquetDataset):
    """``pandas.ParquetDataset`` whose version appears only once its file is complete."""

    def save(self, data: Any) -> None:
        self._save_staged(_ParquetDataset, data)


class JSONDataset(AtomicSaveMixin, _JSONDataset):
    """``json.JSONDataset`` whose version appears only once its file is complete."""

    def save(self, data: Any) -> None:
        self._save_staged(_JSONDataset, data)


class PickleDataset(AtomicSaveMixin, _PickleDataset):
    """``pickle.PickleDataset`` whose version appears only once its file is complete."""

    def save(self, data: Any) -> None:
        self._save_staged(_PickleDataset, data)


class TextDataset(AtomicSaveMixin, _TextDataset):
    """``text.TextDataset`` whose version appears only once its file is complete."""

    def save(self, data: str) -> None:
        self._save_staged(_TextDataset, data)
