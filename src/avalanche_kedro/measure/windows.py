"""Deterministic token windows and disjoint slices (SPEC §1).

A *window* is one sequence of exactly ``seq_len`` token ids cut from the concatenated token
stream of a corpus. Windows are selected from a candidate pool with the study seed rule, and
the calibration and analysis slices of dataset A are disjoint, so thresholds are fitted on one
set of windows and every metric is measured on held-out windows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import ConfigurationError, CorpusError
from ..core.seeds import seed_of

#: Records are tokenized in chunks of this many to use the fast tokenizer's batch path;
#: the result is identical to tokenizing one record at a time.
TOKENIZE_CHUNK = 256

WINDOW_COLUMNS = ["dataset_role", "slice", "position", "seq_id", "input_ids"]


@dataclass(frozen=True)
class TokenStream:
    """Concatenated ids of the non-empty records, in dataset order.

    ``complete`` is False when reading stopped early because ``max_tokens`` were reached,
    in which case ``n_records`` counts only the records that were read.
    """

    ids: np.ndarray
    n_records: int
    n_empty_records: int
    complete: bool


def tokenize_stream(
    records: Iterable[str],
    tokenizer,
    max_tokens: int | None = None,
) -> TokenStream:
    """Tokenize each non-empty record separately (``add_special_tokens=False``) and concatenate.

    A record is empty when it is ``None`` or contains only whitespace; such records are skipped
    (WikiText, for instance, separates articles with blank lines). Reading stops as soon as
    ``max_tokens`` ids are available, so a streamed corpus such as C4 is never read further
    than the window pool needs.
    """
    pieces: list[np.ndarray] = []
    total = 0
    n_records = 0
    n_empty = 0
    chunk: list[str] = []

    def flush() -> None:
        nonlocal total
        if not chunk:
            return
        # verbose=False: records longer than the model's context are expected here (the stream
        # is cut into windows afterwards), so the tokenizer's length warning is noise.
        encoded = tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
        for ids in encoded:
            pieces.append(np.asarray(ids, dtype=np.int64))
            total += len(ids)
        chunk.clear()

    complete = True
    for record in records:
        if record is None or not str(record).strip():
            n_empty += 1
            continue
        if not isinstance(record, str):
            raise CorpusError(
                f"A corpus record is of type {type(record).__name__}, not text.",
                "Set windows.text_field to the column that holds the text of each record.",
            )
        chunk.append(record)
        n_records += 1
        if len(chunk) >= TOKENIZE_CHUNK:
            flush()
            if max_tokens is not None and total >= max_tokens:
                complete = False
                break
    flush()
    ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    if max_tokens is not None and ids.size > max_tokens:
        ids = ids[:max_tokens]
    return TokenStream(ids=ids, n_records=n_records, n_empty_records=n_empty, complete=complete)


def cut_windows(ids: np.ndarray, seq_len: int) -> np.ndarray:
    """Cut a token stream into non-overlapping windows of exactly ``seq_len`` ids (no padding).

    Returns an array ``[n_windows, seq_len]``; the tail shorter than ``seq_len`` is dropped.
    Row ``i`` is the window with ``chunk_index = i``.
    """
    if seq_len < 3:
        raise ConfigurationError(
            f"windows.seq_len = {seq_len} is too short for token shuffles and branching.",
            "Use a sequence length of at least 3 tokens (the study uses 256).",
        )
    n_windows = ids.size // seq_len
    return ids[: n_windows * seq_len].reshape(n_windows, seq_len)


def select_slices(
    n_available: int,
    slice_sizes: Mapping[str, int],
    dataset_role: str,
    window_pool_factor: int,
    corpus_name: str,
    source: str | None = None,
) -> dict[str, np.ndarray]:
    """Choose the chunk indices of each slice (SPEC §1 step 3-4).

    The pool is the first ``min(n_available, window_pool_factor * n_needed)`` windows. With
    ``rng = default_rng(seed_of("select", dataset_role))``, ``n_needed`` pool indices are drawn
    without replacement; the first ``slice_sizes[s0]`` drawn form slice ``s0``, the next ones
    slice ``s1`` and so on (dict order), each sorted ascending. Slices are therefore disjoint.
    """
    n_needed = int(sum(slice_sizes.values()))
    if window_pool_factor < 1:
        raise ConfigurationError(
            f"windows.window_pool_factor = {window_pool_factor} must be at least 1.",
            "Set windows.window_pool_factor to a positive integer (the study uses 10).",
        )
    if any(size <= 0 for size in slice_sizes.values()):
        raise ConfigurationError(
            f"Slice sizes must be positive, got {dict(slice_sizes)} for dataset {dataset_role}.",
            "Set every window count (windows.n_calibration, n_raster, n_eval_b) to at least 1.",
        )
    if n_available < n_needed:
        parts = " + ".join(f"{size} {name}" for name, size in slice_sizes.items())
        raise CorpusError(
            f"Dataset {dataset_role} ({corpus_name}{', ' + source if source else ''}) yields only "
            f"{n_available} windows, "
            f"but {n_needed} are needed ({parts}).",
            f"Lower the window counts or windows.seq_len, or point the catalog entry "
            f"'{corpus_name}' at a larger text source.",
        )
    pool_size = min(n_available, window_pool_factor * n_needed)
    rng = np.random.default_rng(seed_of("select", dataset_role))
    drawn = rng.choice(pool_size, size=n_needed, replace=False)
    slices: dict[str, np.ndarray] = {}
    start = 0
    for name, size in slice_sizes.items():
        slices[name] = np.sort(drawn[start : start + size]).astype(np.int64)
        start += size
    return slices


def slice_hash(dataset_role: str, chunk_indices: Sequence[int], windows: np.ndarray) -> str:
    """sha256 of the canonical JSON list ``[{dataset_role, chunk_index, input_ids}, ...]``.

    Canonical JSON: keys sorted, no whitespace (``separators=(",", ":")``), ASCII only, list in
    slice order (ascending ``chunk_index``). ``windows`` holds the slice's rows in that order.
    """
    payload = [
        {
            "dataset_role": dataset_role,
            "chunk_index": int(chunk),
            "input_ids": [int(token) for token in row],
        }
        for chunk, row in zip(chunk_indices, windows, strict=True)
    ]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def windows_frame(
    dataset_role: str, slices: Mapping[str, np.ndarray], all_windows: np.ndarray
) -> pd.DataFrame:
    """Long table of the selected windows: one row per window, ids as a list column.

    ``seq_id`` equals the window's ``chunk_index``; ``position`` is its rank inside its slice.
    """
    rows = []
    for slice_name, chunks in slices.items():
        for position, chunk in enumerate(chunks):
            rows.append(
                {
                    "dataset_role": dataset_role,
                    "slice": slice_name,
                    "position": position,
                    "seq_id": int(chunk),
                    "input_ids": all_windows[chunk].astype(np.int32),
                }
            )
    frame = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    return frame.astype({"position": "int32", "seq_id": "int32"})


def slice_windows(windows: pd.DataFrame, slice_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(input_ids [N, T] int64, seq_id [N] int32)`` of one slice, in slice order."""
    part = windows[windows["slice"] == slice_name].sort_values("position")
    if part.empty:
        raise ConfigurationError(
            f"The windows table has no '{slice_name}' slice "
            f"(it has {sorted(windows['slice'].unique())}).",
            "Re-run the capture pipeline (kedro run --pipelines capture) to rebuild the windows.",
        )
    ids = np.stack([np.asarray(row, dtype=np.int64) for row in part["input_ids"]])
    return ids, part["seq_id"].to_numpy(dtype=np.int32)


def shuffle_window_tokens(
    input_ids: np.ndarray,
    seq_ids: np.ndarray,
    dataset_role: str,
    special_ids: Iterable[int] = (),
) -> np.ndarray:
    """Token-shuffle null input (SPEC §7): permute ids at positions 1 ... T-2 of each window.

    The first and last positions and every position holding a special token stay in place.
    Window ``seq_id`` uses ``default_rng(seed_of("token_shuffle", dataset_role, seq_id))``, the
    same permutation at every gain, so shuffled conditions are paired across gains and models.
    """
    special = np.asarray(sorted(set(int(s) for s in special_ids)), dtype=np.int64)
    shuffled = input_ids.copy()
    seq_len = input_ids.shape[1]
    inner = np.arange(1, seq_len - 1)
    for row, seq_id in enumerate(seq_ids):
        movable = inner[~np.isin(input_ids[row, inner], special)]
        rng = np.random.default_rng(seed_of("token_shuffle", dataset_role, int(seq_id)))
        order = rng.permutation(movable.size)
        shuffled[row, movable] = input_ids[row, movable[order]]
    return shuffled


def iter_text_records(loaded: object, text_field: str = "text") -> Iterator[str]:
    """Yield the text of each record of whatever a corpus dataset loaded.

    Accepts a list/iterable of strings, a Hugging Face ``Dataset`` or ``IterableDataset`` (or any
    iterable of mappings) whose ``text_field`` column holds the text, or one string, which is
    read as one record per line (the layout of WikiText's raw files).
    """
    if isinstance(loaded, str):
        yield from loaded.splitlines(keepends=True)
        return
    if isinstance(loaded, Mapping):
        raise CorpusError(
            f"The corpus loaded as a mapping of splits ({sorted(loaded)[:5]}), not as one split.",
            "Add `split: <name>` to the dataset_kwargs of the corpus catalog entry.",
        )
    for record in loaded:  # type: ignore[attr-defined]
        if isinstance(record, Mapping):
            if text_field not in record:
                raise CorpusError(
                    f"A corpus record has no field '{text_field}' (fields: {sorted(record)}).",
                    "Set windows.text_field to the column that holds the text.",
                )
            yield record[text_field]
        else:
            yield record
