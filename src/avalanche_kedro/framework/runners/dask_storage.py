"""What a Dask run needs from storage: every dataset persisted, and paths every worker sees.

Workers share no memory with the client, so every dataset a node writes must be on storage
that all workers reach at the same path; these checks fail before any node runs, naming the
datasets or workers and the fix, instead of as a missing file halfway through a run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline

from ...core.errors import ScaleOutError

PROBE_FOLDER = ".dask-storage-probe"


def check_persisted(pipeline: Pipeline, catalog) -> None:
    """Every dataset a node writes must be persisted: workers share no memory."""
    in_memory = []
    for name in sorted(pipeline.all_outputs()):
        dataset = catalog.get(name, fallback_to_runtime_pattern=True)
        if isinstance(dataset, MemoryDataset) or dataset is None:
            in_memory.append(name)
    if in_memory:
        raise ScaleOutError(
            f"Datasets passed between nodes only in memory cannot cross Dask workers: "
            f"{', '.join(in_memory[:12])}{' ...' if len(in_memory) > 12 else ''}.",
            "Run with --env dask (its catalog persists every dataset on shared storage), or "
            "declare these datasets in the catalog with a filepath every worker can reach.",
        )


def _filepath(dataset) -> Path | None:
    path = getattr(dataset, "_filepath", None)
    if path is None:
        return None
    protocol = getattr(dataset, "_protocol", "file")
    if protocol not in ("file", None):
        return None  # object stores are reachable by construction
    return Path(str(path))


def check_shared_storage(client, pipeline: Pipeline, catalog) -> None:
    """Every worker must see the client's storage: the output root and every input file.

    The client writes a probe file under the common root of all outputs; each worker must read
    back its token and write its own, which the client must then see. Input files (corpora, the
    ARC file) must exist on every worker. A path that only the client sees fails here, before
    any node runs, instead of as a missing file halfway through the run.
    """
    outputs = [
        p for name in pipeline.all_outputs() if (p := _filepath(catalog.get(name))) is not None
    ]
    inputs = [
        str(p)
        for name in pipeline.inputs()
        if not name.startswith("params:") and (p := _filepath(catalog.get(name))) is not None
    ]
    problems: list[str] = []
    if outputs:
        root = Path(os.path.commonpath([str(p.parent) for p in outputs]))
        probe_dir = root / PROBE_FOLDER
        probe_dir.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        probe = probe_dir / f"client-{token}"
        probe.write_text(token)
        try:
            replies = client.run(_probe_storage, str(probe), token, str(probe_dir))
            for worker, reply in sorted(replies.items()):
                if reply["error"]:
                    problems.append(f"worker {worker}: {reply['error']}")
                elif not Path(reply["written"]).exists():
                    problems.append(
                        f"worker {worker} wrote {reply['written']}, which this client cannot see"
                    )
                else:
                    Path(reply["written"]).unlink()
        finally:
            probe.unlink(missing_ok=True)
        storage = str(root)
    else:
        storage = "(no file outputs)"
    if inputs:
        for worker, missing in sorted(client.run(_missing_files, inputs).items()):
            if missing:
                problems.append(f"worker {worker} cannot find input files {missing[:3]}")
    if problems:
        raise ScaleOutError(
            f"Dask workers do not share this run's storage ({storage}):\n  "
            + "\n  ".join(problems[:10]),
            "Put data_root (conf/dask/globals.yml) and the input files on storage every worker "
            "mounts at the same path (NFS, a shared volume), or run the workers on this "
            "machine. Nothing was run or written.",
        )


def _probe_storage(probe: str, token: str, probe_dir: str) -> dict[str, str | None]:
    """On a worker: read the client's probe and leave one of our own next to it."""
    try:
        seen = Path(probe).read_text()
    except OSError as exc:
        return {"error": f"cannot read {probe} ({type(exc).__name__})", "written": None}
    if seen != token:
        return {"error": f"{probe} holds another run's token", "written": None}
    written = Path(probe_dir) / f"worker-{uuid.uuid4().hex}"
    try:
        written.write_text(token)
    except OSError as exc:
        return {"error": f"cannot write in {probe_dir} ({type(exc).__name__})", "written": None}
    return {"error": None, "written": str(written)}


def _missing_files(paths: list[str]) -> list[str]:
    return [p for p in paths if not Path(p).exists()]


def portable_catalog(pipeline: Pipeline, catalog) -> DataCatalog:
    """A plain, picklable catalog with the run's dataset objects (versions included)."""
    return DataCatalog(datasets={name: catalog.get(name) for name in sorted(pipeline.datasets())})
