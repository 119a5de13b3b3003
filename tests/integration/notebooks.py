"""Shared by the notebook tests: execute a committed notebook inside a finished project, and
read what its cells printed."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbclient import NotebookClient

#: ANSI colours and terminal hyperlinks of Kedro's rich log lines (in their text/plain form)
_ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b]*\x1b\\")
#: the line Kedro's IPython extension logs each time it loads the project
PROJECT_LOADED = "Kedro project avalanche_kedro"
#: a warning by any route: Python's warnings (also logged by Kedro's rich handler, "WARNING"),
#: tqdm's TqdmWarning, a library's own "warn..." message
WARNING_TEXT = re.compile(r"warn", re.IGNORECASE)


def cells_by_tag(notebook) -> dict[str, nbformat.NotebookNode]:
    """The cells of ``notebook`` by their metadata tags."""
    return {
        tag: cell for cell in notebook.cells for tag in cell.get("metadata", {}).get("tags", [])
    }


def execute_in_project(
    notebook_path: Path, project: Path, probes: Sequence[str] = ()
) -> nbformat.NotebookNode:
    """Copy the notebook into ``<project>/notebooks/`` (the working directory ``kedro jupyter``
    gives it) and run it top to bottom with nbclient on this interpreter's ``python3`` kernel;
    raises ``CellExecutionError`` with the traceback on any failure.

    ``probes`` are code cells run after the notebook's last cell in the same kernel, to read
    what the cells left behind (figures, variables); they are appended to the executed copy
    only, tagged ``probe-0``, ``probe-1``...
    """
    notebook_dir = project / "notebooks"
    notebook_dir.mkdir(exist_ok=True)
    shutil.copy(notebook_path, notebook_dir / notebook_path.name)
    notebook = nbformat.read(notebook_dir / notebook_path.name, as_version=4)
    for index, source in enumerate(probes):
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": [f"probe-{index}"]})
        notebook.cells.append(cell)
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


def output_text(output) -> str:
    """What an output shows as text, ANSI codes removed: a stream's text, an error's name and
    value, or a display's ``text/plain`` (Kedro's rich log lines arrive as displays)."""
    if output.output_type == "stream":
        text = output.get("text", "")
    elif output.output_type == "error":
        text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
    else:
        text = str(output.get("data", {}).get("text/plain", ""))
    return _ANSI.sub("", text)


def notebook_outputs(notebook) -> list[tuple[int, nbformat.NotebookNode]]:
    """(cell index, output) for every output of every code cell, probes excluded."""
    return [
        (index, output)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and not any(tag.startswith("probe-") for tag in cell.get("metadata", {}).get("tags", []))
        for output in cell.outputs
    ]


def warnings_shown(notebook) -> list[str]:
    """Every output that is on stderr or mentions a warning, as ``cell <i> (<kind>): text``."""
    return [
        f"cell {index} ({output.get('name', output.output_type)}): {output_text(output)[:300]}"
        for index, output in notebook_outputs(notebook)
        if output.get("name") == "stderr" or WARNING_TEXT.search(output_text(output))
    ]


def project_loads(notebook) -> int:
    """How many times the notebook loaded the Kedro project (Kedro logs one line per load)."""
    return sum(
        output_text(output).count(PROJECT_LOADED) for _, output in notebook_outputs(notebook)
    )
