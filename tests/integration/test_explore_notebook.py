"""notebooks/explore.ipynb runs top to bottom on a finished project and draws its figures.

The notebook is copied into ``<e2e_project>/notebooks/`` and executed there (the working
directory ``kedro jupyter`` gives it) with nbclient on the ``python3`` kernel of this
interpreter; it loads the catalog through the Kedro IPython extension. A probe cell run after
it in the same kernel reads the figures it left (legends, the plotted size CCDF).
"""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT
from tests.integration.notebooks import (
    cells_by_tag,
    execute_in_project,
    output_text,
    project_loads,
    warnings_shown,
)

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore.ipynb"
#: cells (by tag) that must draw a figure
FIGURE_CELLS = ("raster", "branching-curves", "analysis-api", "lens")

#: Run after the notebook: every figure it kept in a variable, with its legends' labels, and the
#: points of the size plot next to the avalanche table they come from.
PROBE = """
import json
from matplotlib.figure import Figure
figures = {name: value for name, value in sorted(globals().items()) if isinstance(value, Figure)}
legends = {
    name: [[text.get_text() for text in legend.get_texts()]
           for legend in [*figure.legends, *(ax.get_legend() for ax in figure.axes)] if legend]
    for name, figure in figures.items()
}
line = fig_sizes.axes[0].lines[0]
print(json.dumps({
    "legends": legends,
    "size_points": [line.get_xdata().tolist(), line.get_ydata().tolist()],
    "avalanche_sizes": table["size"].tolist(),
}))
"""


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


def test_the_project_is_loaded_by_the_extension_only():
    """One load: the extension's own (``%load_ext`` finds the project), no ``%reload_kedro``,
    ``bootstrap_project`` or ``KedroSession.create`` on top; the size plot uses the CCDF helper."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert source.count("%load_ext kedro.ipython") == 1
    for second_load in ("%reload_kedro", "bootstrap_project", "KedroSession"):
        assert second_load not in source
    assert 'ccdf(table["size"]' in cells_by_tag(notebook)["analysis-api"].source


@pytest.mark.slow
def test_explore_notebook_runs_in_the_project(e2e_project):
    notebook = execute_in_project(NOTEBOOK, e2e_project, probes=[PROBE])

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
    # Nothing on stderr and no warning of any kind (Kedro's OmegaConf deprecation, TqdmWarning)
    assert warnings_shown(notebook) == []
    assert project_loads(notebook) == 1
    api_text = "".join(output.get("text", "") for output in cells["analysis-api"].outputs)
    assert "avalanches; b_time" in api_text and "T01_SUMMARY:" in api_text
    control = "".join(
        str(output.get("data", {}).get("text/plain", ""))
        for output in cells["trained-vs-untrained"].outputs
    )
    assert "diff_delta_b_tot" in control and "instruct" in control

    probe = json.loads(output_text(cells["probe-0"].outputs[-1]))
    legends = probe["legends"]
    assert {"fig_raster", "fig_curves", "fig_sizes", "fig_lens"} <= set(legends)
    for name, figure_legends in legends.items():
        for labels in figure_legends:
            assert len(labels) == len(set(labels)), f"{name}: duplicate legend labels {labels}"
    # the branching figure: one legend, each quantity once, then one entry per target rate
    (curve_labels,) = legends["fig_curves"]
    assert curve_labels[:3] == ["b_time", "b_depth", "b_tot"]
    assert len(curve_labels) > 3 and all(label.startswith("r* = ") for label in curve_labels[3:])
    # the size plot is the CCDF with ties merged: one point per distinct size, P(S >= s)
    sizes = np.asarray(probe["avalanche_sizes"])
    plotted_s, plotted_p = (np.asarray(values) for values in probe["size_points"])
    np.testing.assert_array_equal(plotted_s, np.unique(sizes))
    expected = np.array([(sizes >= s).sum() / sizes.size for s in plotted_s])
    np.testing.assert_allclose(plotted_p, expected, rtol=0, atol=1e-15)
    assert plotted_p[0] == 1.0 and len(plotted_s) < len(sizes)
