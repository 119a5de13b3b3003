"""Every figure test checks that drawing leaves pyplot's figure registry as it found it."""

from __future__ import annotations

import pytest

from tests.study.figures.tables_builder import no_pyplot_figures  # noqa: F401


@pytest.fixture(autouse=True)
def _figures_stay_off_pyplot(no_pyplot_figures):  # noqa: F811
    """The figure functions never register figures with pyplot (see ``no_pyplot_figures``)."""
