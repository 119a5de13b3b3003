"""Shared by the notebook tests: execute a committed notebook inside a finished project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def cells_by_tag(notebook) -> dict[str, nbformat.NotebookNode]:
    """The cells of ``notebook`` by their metadata tags."""
    return {
        tag: cell for cell in notebook.cells for tag in cell.get("metadata", {}).get("tags", [])
    }


def execute_in_project(notebook_path: Path, project: Path) -> nbformat.NotebookNode:
    """Copy the notebook into ``<project>/notebooks/`` (the working directory ``kedro jupyter``
    gives it) and run it top to bottom with nbclient on this interpreter's ``python3`` kernel;
    raises ``CellExecutionError`` with the traceback on any failure."""
    notebook_dir = project / "notebooks"
    notebook_dir.mkdir(exist_ok=True)
    shutil.copy(notebook_path, notebook_dir / notebook_path.name)
    notebook = nbformat.read(notebook_dir / notebook_path.name, as_version=4)
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", HF_HUB_OFFLINE="1")
    env.pop("MPLBACKEND", None)  # the kernel's inline backend must produce the figures
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(notebook_dir)}},
    )
    client.execute(env=env)
    return notebook
