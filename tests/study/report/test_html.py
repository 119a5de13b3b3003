"""The report as one self-contained HTML page with the run's figures inline."""

from __future__ import annotations

from avalanche_kedro.study import report
from tests.study.report.test_summary import FIGURES, three_roles


def test_html_page_is_self_contained_with_the_figures_inline():
    text = three_roles()
    page = report.render_html(text, FIGURES)
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    for path in FIGURES.values():
        assert f'<img src="{path}"' in page and f'<a href="{path}">' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<title>Run report: activation-event cascades (run" in page
    assert report.render_html(text, FIGURES) == page  # deterministic


def test_without_figures_there_is_no_gallery_and_markdown_tables_render():
    page = report.render_html("# T\n\n| a | b |\n|---|---|\n| 1 | **2** |\n")
    assert "<h2>Figures</h2>" not in page and "<img" not in page
    assert "<td>1</td>" in page and "<td><strong>2</strong></td>" in page
    assert "<title>T</title>" in page
