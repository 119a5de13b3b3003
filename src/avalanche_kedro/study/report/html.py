"""The report as one self-contained HTML page: the markdown rendered by markdown-it-py
(CommonMark plus tables), a small inline stylesheet, and every figure of the run inline
(``<img>`` with the same relative paths as the markdown's links). No external CSS, JS or font.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from markdown_it import MarkdownIt

from .summary import figure_label

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 3px; }
blockquote { border-left: 3px solid #bbb; margin: 0.8em 0; padding: 0 1em; color: #444; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; max-width: 560px; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; }
"""


def render_html(markdown: str, figures: Mapping[str, str] | None = None) -> str:
    """``markdown`` as an HTML page whose last section shows each figure of ``figures`` (figure
    id -> path relative to the report's folder) inline. Deterministic: the same markdown and
    figures give the same bytes."""
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = parser.render(markdown)
    title = next(
        (line[2:].strip() for line in markdown.splitlines() if line.startswith("# ")), "Run report"
    )
    gallery = ""
    if figures:
        items = "\n".join(
            f'<figure id="{html.escape(figure_id)}"><a href="{html.escape(path)}">'
            f'<img src="{html.escape(path)}" alt="{html.escape(figure_label(figure_id))}" '
            f'loading="lazy"></a><figcaption>{html.escape(figure_label(figure_id))}'
            "</figcaption></figure>"
            for figure_id, path in figures.items()
        )
        gallery = f"<h2>Figures</h2>\n{items}\n"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}{gallery}</body>\n</html>\n"
    )
