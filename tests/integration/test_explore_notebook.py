"""notebooks/explore.ipynb runs top to bottom on a finished project and draws its figures.

The notebook is copied into ``<e2e_project>/notebooks/`` and executed there (the working
directory ``kedro jupyter`` gives it) with nbclient on the ``python3`` kernel of this
interpreter; it loads the catalog through the Kedro IPython extension.
"""

from __future__ import annotations

import nbformat
import pytest

from tests.conftest import PROJECT_ROOT
from tests.integration.notebooks import cells_by_tag, execute_in_project

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore.ipynb"
#: cells (by tag) that must draw a figure
FIGURE_CELLS = ("raster", "branching-curves", "analysis-api", "lens")


def test_notebook_is_committed_clean():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        "notebooks/explore.ipynb is committed with outputs; clear them "
        "(jupyter nbconvert --clear-output --inplace notebooks/explore.ipynb)"
    )
    assert set(FIGURE_CELLS) <= set(cells_by_tag(notebook))


@pytest.mark.slow
def test_explore_notebook_runs_in_the_project(e2e_project):
    notebook = execute_in_project(NOTEBOOK, e2e_project)

    cells = cells_by_tag(notebook)
    for tag in FIGURE_CELLS:
        images = [
            output
            for output in cells[tag].outputs
            if output.output_type == "display_data" and "image/png" in output.get("data", {})
        ]
        assert images, f"cell '{tag}' drew no figure: {cells[tag].outputs}"
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    api_text = "".join(output.get("text", "") for output in cells["analysis-api"].outputs)
    assert "avalanches; b_time" in api_text and "T01_SUMMARY:" in api_text
    control = "".join(
        str(output.get("data", {}).get("text/plain", ""))
        for output in cells["trained-vs-untrained"].outputs
    )
    assert "diff_delta_b_tot" in control and "instruct" in control
