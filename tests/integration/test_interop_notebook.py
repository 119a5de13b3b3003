"""notebooks/bring_your_own_activations.ipynb runs on a finished project: the measurement API
on activations captured with the project's hooks, TransformerLens and nnsight reproduces the
run's own raster (issue 15). Executed like explore.ipynb, in ``<e2e_project>/notebooks/``."""

from __future__ import annotations

import nbformat
import pytest

from tests.conftest import PROJECT_ROOT
from tests.integration.notebooks import (
    cells_by_tag,
    execute_in_project,
    project_loads,
    warnings_shown,
)

NOTEBOOK = PROJECT_ROOT / "notebooks" / "bring_your_own_activations.ipynb"
TAGS = ("setup", "inputs", "hugging-face", "transformer-lens", "nnsight", "analysis")


def _text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs)


def test_notebook_is_committed_clean():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert set(TAGS) <= set(cells_by_tag(notebook))


@pytest.mark.slow
def test_every_capture_path_reproduces_the_runs_raster(e2e_project):
    notebook = execute_in_project(NOTEBOOK, e2e_project)

    cells = cells_by_tag(notebook)
    assert project_loads(notebook) == 1
    # no Kedro OmegaConf deprecation warning (settings.py filters it), no TqdmWarning
    assert warnings_shown(notebook) == []
    assert "(a) project hooks == the run's raster: True" in _text(cells["hugging-face"])
    assert "thresholds fitted here == the run's: True" in _text(cells["hugging-face"])
    assert "(b) TransformerLens == project hooks on the same eager model: True" in _text(
        cells["transformer-lens"]
    )
    assert "(c) nnsight == the run's raster: True" in _text(cells["nnsight"])
    analysis = _text(cells["analysis"])
    assert "b_time = " in analysis and "swapped raster refused" in analysis
    assert any("image/png" in output.get("data", {}) for output in cells["analysis"].outputs), (
        "the analysis cell drew no figure"
    )
