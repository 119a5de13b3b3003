"""Event rasters on disk: ``[C, N, L, T]`` counts A (uint16) and occupancy X (uint8) (SPEC §5).

A raster set is a directory holding ``A.npy``, ``X.npy``, ``cond_id.npy`` (int32, length C,
keys of the condition table) and ``seq_id.npy`` (int32, length N, the windows' chunk indices),
plus ``raster.json`` describing the shape: ``{"shape": [C, N, L, T], "axes": ["condition",
"window", "layer", "token"], "n_layers": L, "n_tokens": T, "d_ff": d_ff}`` (files written before
the axis names were spelled out say ``"axes": ["C", "N", "L", "T"]`` and have no ``n_layers``;
files written before d_ff was recorded have no ``d_ff``; they open as well). The arrays are plain ``.npy`` files opened
memory-mapped, so an analysis reads one condition at a time without loading the rest.

:class:`RasterWriter` fills ``A.npy`` with positioned writes (one block per condition and batch
of windows) instead of holding the raster in memory, so the measurement's host memory does
not grow with the number of windows.

Nodes write into a scratch directory made by :func:`new_scratch_directory`
(``rasters-<label>-<host>-<pid>-<random>`` under ``runtime.scratch_dir``); the raster dataset
moves the files into a version folder and removes it. Until then this process keeps it in a
registry, so an interrupted run removes the scratch it made (:func:`scratch_directories`), and a
scratch directory whose process died without cleaning up (``kill -9``, a power cut) is removed
when the next one is made on the same host (:func:`remove_stale_scratch`); a directory of a
process that is still running is never touched.

One condition, ``rasters.counts(cond_id)``, is ``[N, L, T]`` (windows, layers, tokens), the
axis order of :mod:`avalanche_kedro.analysis`; pass ``n_layers=rasters.n_layers`` to the analysis
functions so a transposed array is refused instead of exchanging b_time and b_depth.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..core.errors import ArtifactError
from .raster_checks import REWRITE_FIX, check_raster_invariants, raster_label

A_FILE = "A.npy"
X_FILE = "X.npy"
COND_FILE = "cond_id.npy"
SEQ_FILE = "seq_id.npy"
META_FILE = "raster.json"
RASTER_FILES = (A_FILE, X_FILE, COND_FILE, SEQ_FILE, META_FILE)
#: axis names of A and X, in order, as raster.json stores them
AXES = ("condition", "window", "layer", "token")
#: the single-letter spelling of the same axes in raster.json files written before AXES
LEGACY_AXES = ("C", "N", "L", "T")
#: first part of every scratch directory's name
SCRATCH_PREFIX = "rasters"


@dataclass(frozen=True)
class EventRasters:
    """Counts ``A [C, N, L, T]`` and occupancy ``X = (A > 0)`` with their keys.

    The axes are :attr:`axes` = ``("condition", "window", "layer", "token")``; one condition
    (:meth:`counts`, :meth:`occupancy`) is ``[N, L, T]``. :attr:`n_layers`, :attr:`n_tokens`
    and :attr:`n_windows` are the lengths of those axes; pass ``n_layers=rasters.n_layers`` to
    the analysis functions to have a transposed array refused.
    """

    axes: ClassVar[tuple[str, ...]] = AXES

    A: np.ndarray
    X: np.ndarray
    cond_id: np.ndarray
    seq_id: np.ndarray
    directory: Path | None = None
    #: MLP units per layer, the largest possible count (None: unknown, an older raster.json)
    d_ff: int | None = None

    def __post_init__(self) -> None:
        check_raster_arrays(self.A, self.X, self.cond_id, self.seq_id)

    def check_invariants(self, *, d_ff: int | None = None, where: str | None = None) -> None:
        """Raise :class:`ArtifactError` naming the directory (and ``where``, e.g. the dataset
        name) and the first offending (condition row, window, layer, token) site unless every
        count is at most ``d_ff`` (given, else :attr:`d_ff`; unchecked when both are None),
        X holds only 0/1 with ``X == (A > 0)``, and cond_id and seq_id are unique.

        Scans A and X block by block (:func:`~.raster_checks.check_raster_invariants`), so a
        memory-mapped raster is never copied whole.
        """
        check_raster_invariants(
            self.A,
            self.X,
            self.cond_id,
            self.seq_id,
            d_ff=self.d_ff if d_ff is None else d_ff,
            where=raster_label(self.directory, where),
        )

    @property
    def n_conditions(self) -> int:
        """C, the number of conditions (axis 0)."""
        return int(self.A.shape[0])

    @property
    def n_windows(self) -> int:
        """N, the number of windows (axis 1)."""
        return int(self.A.shape[1])

    @property
    def n_layers(self) -> int:
        """L, the number of layers (axis 2 of A; axis 1 of one condition)."""
        return int(self.A.shape[2])

    @property
    def n_tokens(self) -> int:
        """T, the number of tokens per window (axis 3 of A; axis 2 of one condition)."""
        return int(self.A.shape[3])

    def index_of(self, cond_id: int) -> int:
        """Row of ``cond_id`` in the arrays."""
        matches = np.flatnonzero(self.cond_id == cond_id)
        if matches.size != 1:
            raise KeyError(f"cond_id {cond_id} is not in this raster set")
        return int(matches[0])

    def counts(self, cond_id: int) -> np.ndarray:
        """Counts ``A[n, l, t]`` of one condition: a view shaped ``[N, L, T]`` (windows,
        layers, tokens), uint16."""
        return self.A[self.index_of(cond_id)]

    def occupancy(self, cond_id: int) -> np.ndarray:
        """Occupancy ``X[n, l, t]`` of one condition: a view shaped ``[N, L, T]`` (windows,
        layers, tokens), uint8 0/1."""
        return self.X[self.index_of(cond_id)]

    @classmethod
    def open(cls, directory: Path | str) -> EventRasters:
        """Open a raster directory memory-mapped (read-only), checking it is complete and that
        ``A`` agrees with the axes, shape and layer/token counts stored in raster.json."""
        directory = Path(directory)
        missing = [name for name in RASTER_FILES if not (directory / name).exists()]
        if missing:
            raise ArtifactError(
                f"Raster directory '{directory}' is incomplete: missing {missing}.",
                "Re-run the events pipeline (kedro run --pipelines events) to rewrite it.",
            )
        try:
            meta = json.loads((directory / META_FILE).read_text())
            expected_shape = meta["shape"]
            A = np.load(directory / A_FILE, mmap_mode="r")
            X = np.load(directory / X_FILE, mmap_mode="r")
            cond_id = np.load(directory / COND_FILE)
            seq_id = np.load(directory / SEQ_FILE)
        except (ValueError, EOFError, OSError, KeyError, TypeError) as exc:
            # a truncated .npy cannot be mapped or parsed; a broken raster.json cannot be read
            raise ArtifactError(
                f"Raster files in '{directory}' are truncated or corrupted ({exc}).",
                "Re-run the events pipeline (kedro run --pipelines events) to rewrite them.",
            ) from exc
        _check_metadata(directory, meta, A.shape)
        if list(A.shape) != expected_shape:
            raise ArtifactError(
                f"Raster A in '{directory}' has shape {list(A.shape)}, its metadata says "
                f"{expected_shape}.",
                "Re-run the events pipeline (kedro run --pipelines events) to rewrite it.",
            )
        d_ff = meta.get("d_ff")  # absent in files written before it was recorded
        if d_ff is not None and (isinstance(d_ff, bool) or not isinstance(d_ff, int) or d_ff < 1):
            raise ArtifactError(
                f"raster.json in '{directory}' says d_ff = {d_ff!r}, not a positive integer.",
                REWRITE_FIX,
            )
        return cls(A=A, X=X, cond_id=cond_id, seq_id=seq_id, directory=directory, d_ff=d_ff)


def _check_metadata(directory: Path, meta: dict, shape: tuple[int, ...]) -> None:
    """The axis names and the layer and token counts of raster.json against ``A``'s shape."""
    rewrite = "Re-run the events pipeline (kedro run --pipelines events) to rewrite it."
    axes = meta.get("axes")
    if axes is not None and (not isinstance(axes, list) or tuple(axes) not in (AXES, LEGACY_AXES)):
        raise ArtifactError(
            f"raster.json in '{directory}' says the axes of A are {axes!r}; this reader "
            f"expects {list(AXES)} (or the older spelling {list(LEGACY_AXES)}).",
            "Store A as [condition, window, layer, token] (RasterWriter does). " + rewrite,
        )
    if len(shape) != 4:
        return  # the shape check and check_raster_arrays name a wrong rank
    for key, axis, other in (("n_layers", 2, 3), ("n_tokens", 3, 2)):
        if key not in meta:
            continue  # written before the counts were stored
        stored = meta[key]
        if shape[axis] == stored:
            continue
        swapped = shape[other] == stored
        raise ArtifactError(
            f"Raster A in '{directory}' has shape {list(shape)} (condition, window, layer, "
            f"token) but raster.json says {key} = {stored}"
            + (": layers and tokens look swapped (A stored as [C, N, T, L])." if swapped else "."),
            (
                "Write A as [C, N, L, T] (np.swapaxes(A, 2, 3) of the swapped array). "
                if swapped
                else ""
            )
            + rewrite,
        )


def check_raster_arrays(
    A: np.ndarray, X: np.ndarray, cond_id: np.ndarray, seq_id: np.ndarray
) -> None:
    """Shapes and dtypes of a raster set; a clear error naming the offending array."""
    if A.ndim != 4 or A.dtype != np.uint16:
        raise ArtifactError(
            f"Raster A must be a uint16 array [C, N, L, T]; got {A.dtype} with shape {A.shape}.",
            "Build rasters with avalanche_kedro.measure.rasters.RasterWriter or cast the counts.",
        )
    if X.shape != A.shape or X.dtype != np.uint8:
        raise ArtifactError(
            f"Raster X must be uint8 with A's shape {A.shape}; got {X.dtype} {X.shape}.",
            "Derive X as (A > 0).astype(numpy.uint8).",
        )
    if cond_id.shape != (A.shape[0],) or cond_id.dtype != np.int32:
        raise ArtifactError(
            f"cond_id must be int32 of length C = {A.shape[0]}; got {cond_id.dtype} "
            f"{cond_id.shape}.",
            "Give one int32 condition id per raster row.",
        )
    if seq_id.shape != (A.shape[1],) or seq_id.dtype != np.int32:
        raise ArtifactError(
            f"seq_id must be int32 of length N = {A.shape[1]}; got {seq_id.dtype} {seq_id.shape}.",
            "Give one int32 window id per raster column.",
        )


def raster_metadata(shape: Sequence[int], d_ff: int | None = None) -> dict:
    """The content of raster.json for an array ``A`` of ``shape [C, N, L, T]`` counting units
    of layers ``d_ff`` wide (omitted when None: the count bound is then unknown to readers)."""
    meta = {
        "shape": [int(n) for n in shape],
        "axes": list(AXES),
        "n_layers": int(shape[2]),
        "n_tokens": int(shape[3]),
    }
    if d_ff is not None:
        meta["d_ff"] = int(d_ff)
    return meta


class RasterWriter:
    """Writes a raster directory block by block; :meth:`finalize` derives X and checks coverage.

    ``d_ff`` (MLP units per layer) is recorded in raster.json, so a reader can check that no
    count exceeds it (:meth:`EventRasters.check_invariants`).
    """

    def __init__(
        self,
        directory: Path | str,
        cond_ids: Sequence[int],
        seq_ids: Sequence[int],
        n_layers: int,
        seq_len: int,
        d_ff: int | None = None,
    ):
        self.d_ff = None if d_ff is None else int(d_ff)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if any(self.directory.iterdir()):
            raise ArtifactError(
                f"Raster directory '{self.directory}' is not empty.",
                "Write rasters into a new or empty directory; existing rasters are never overwritten.",
            )
        self.cond_ids = np.asarray(cond_ids, dtype=np.int32)
        self.seq_ids = np.asarray(seq_ids, dtype=np.int32)
        self.shape = (len(self.cond_ids), len(self.seq_ids), int(n_layers), int(seq_len))
        # open_memmap writes the .npy header and sizes the file (sparse); we then write blocks
        # through an ordinary file handle so nothing of the raster stays resident in memory.
        mapped = np.lib.format.open_memmap(
            self.directory / A_FILE, mode="w+", dtype=np.uint16, shape=self.shape
        )
        self._offset = int(mapped.offset)
        del mapped
        self._handle = open(self.directory / A_FILE, "r+b")  # noqa: SIM115
        self._covered = np.zeros(self.shape[:2], dtype=bool)
        self._site_bytes = self.shape[2] * self.shape[3] * 2

    def bind_d_ff(self, d_ff: int) -> None:
        """Record ``d_ff`` of the model whose counts are written (a measurement loop knows it);
        a writer made for another width is refused."""
        if self.d_ff is not None and self.d_ff != int(d_ff):
            raise ArtifactError(
                f"Raster {self.directory} was opened for d_ff = {self.d_ff}, but a model with "
                f"d_ff = {int(d_ff)} writes into it.",
                "Write each model's counts into its own raster (this is a bug; please report it).",
            )
        self.d_ff = int(d_ff)

    def write(self, row: int, window_start: int, block: np.ndarray) -> None:
        """Write counts ``block [B, L, T]`` of raster row ``row`` for windows from ``window_start``."""
        n_block = block.shape[0]
        if block.shape[1:] != self.shape[2:]:
            raise ValueError(f"block shape {block.shape} does not match raster {self.shape}")
        position = self._offset + (row * self.shape[1] + window_start) * self._site_bytes
        self._handle.seek(position)
        self._handle.write(np.ascontiguousarray(block, dtype="<u2").tobytes())
        self._covered[row, window_start : window_start + n_block] = True

    def finalize(self) -> EventRasters:
        """Close A, write X, cond_id, seq_id and the metadata; return the opened raster set."""
        self._handle.close()
        if not self._covered.all():
            missing = np.argwhere(~self._covered)[:5].tolist()
            raise ArtifactError(
                f"Raster {self.directory} was not completely written (first missing "
                f"[row, window] pairs: {missing}).",
                "This is a bug in the measurement loop; please report it.",
            )
        mapped_x = np.lib.format.open_memmap(
            self.directory / X_FILE, mode="w+", dtype=np.uint8, shape=self.shape
        )
        x_offset = int(mapped_x.offset)
        del mapped_x
        per_row = self.shape[1] * self.shape[2] * self.shape[3]
        with (
            open(self.directory / A_FILE, "rb") as source,
            open(self.directory / X_FILE, "r+b") as sink,
        ):
            for row in range(self.shape[0]):
                source.seek(self._offset + row * per_row * 2)
                counts = np.frombuffer(source.read(per_row * 2), dtype="<u2")
                sink.seek(x_offset + row * per_row)
                sink.write((counts > 0).astype(np.uint8).tobytes())
        np.save(self.directory / COND_FILE, self.cond_ids)
        np.save(self.directory / SEQ_FILE, self.seq_ids)
        (self.directory / META_FILE).write_text(
            json.dumps(raster_metadata(self.shape, self.d_ff), indent=2)
        )
        return EventRasters.open(self.directory)

    def abort(self) -> None:
        """Discard a partially written raster."""
        if not self._handle.closed:
            self._handle.close()
        remove_scratch(self.directory)


# ---- scratch directories ------------------------------------------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
_SCRATCH_NAME = re.compile(
    rf"^{SCRATCH_PREFIX}-(?:[A-Za-z0-9_]+-)?(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[^-]+$"
)
_scratch_lock = threading.RLock()  # re-entrant: a signal handler may run while it is held
_scratch: dict[Path, int] = {}  # scratch directories of this process -> the thread that made it


def new_scratch_directory(root: Path | str, label: str = "") -> Path:
    """A new empty directory ``rasters-[<label>-]<host>-<pid>-<random>`` under ``root``.

    It is registered as this process's scratch until :func:`remove_scratch` (or a raster
    dataset's save, which moves its files) releases it. Stale scratch directories of dead
    processes of this host are removed first (:func:`remove_stale_scratch`).
    """
    if label and not re.fullmatch(r"[A-Za-z0-9_]+", label):
        raise ValueError(f"scratch label must be letters, digits or _, got {label!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(root)
    prefix = f"{SCRATCH_PREFIX}-{label + '-' if label else ''}{_HOST}-{os.getpid()}-"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    with _scratch_lock:
        _scratch[path] = threading.get_ident()
    return path


def is_scratch(directory: Path | str | None) -> bool:
    """Whether ``directory`` is a live scratch directory made by this process."""
    if directory is None:
        return False
    with _scratch_lock:
        return Path(directory) in _scratch


def remove_scratch(directory: Path | str) -> None:
    """Remove a scratch directory (whatever is left in it) and release it."""
    shutil.rmtree(directory, ignore_errors=True)
    with _scratch_lock:
        _scratch.pop(Path(directory), None)


def scratch_directories() -> dict[Path, int]:
    """The scratch directories this process holds now, each with the id of the thread that
    made it (an interrupted run removes those it made: framework.interrupts)."""
    with _scratch_lock:
        return dict(_scratch)


def remove_stale_scratch(root: Path | str) -> list[Path]:
    """Remove the scratch directories under ``root`` left by processes of this host that no
    longer run (killed before they could clean up); returns them.

    Only names made by :func:`new_scratch_directory` on this host are considered, and one whose
    process is alive (another run going on now) is left alone.
    """
    root = Path(root)
    removed = []
    try:
        children = list(root.iterdir())
    except OSError:
        return removed
    for child in children:
        match = _SCRATCH_NAME.match(child.name)
        if match is None or match["host"] != _HOST or not child.is_dir():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or _process_alive(pid):
            continue
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True
