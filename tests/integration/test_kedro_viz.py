"""`kedro viz build` writes a static site that renders in headless Chromium with all pipelines.

The site of the end-to-end project is served from ``build/`` on a local port and opened with
Playwright in the system Chromium (Debian's ``chromium`` package; Playwright's own browser
download is not used). The test takes a screenshot, opens the pipeline selector and reads the
pipelines the page lists. The lineage view (docs/design.md, "Lineage view"): every dataset
carries its data layer and the bands are drawn, replication and reporting collapse into
namespaces, each table is one dataset; the default view is saved as
``$AVALANCHE_TEST_ARTIFACTS/kedro-viz-default.png`` (default ``<repo>/test-artifacts``). Chromium missing fails the test with how to install it; set
``AVALANCHE_SKIP_BROWSER=1`` to skip the browser part on a machine without one, or
``AVALANCHE_CHROMIUM=/path/to/chromium`` to use another Chromium build.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT, run_kedro

pytestmark = pytest.mark.slow

PIPELINES = [
    "training",
    "capture",
    "events",
    "cascades",
    "controls",
    "calibration",
    "lens",
    "replication",
    "reporting",
]

#: the bands Kedro-Viz draws, in order (the catalog's layers; tests/framework/test_datasets.py)
BANDS = ["raw", "models", "intermediate", "primary", "feature", "model_output", "reporting"]
#: namespaces at the top of the default view: one per model role, and the cross-role ones
TOP_NAMESPACES = {"base", "instruct", "untrained", "replication", "reporting"}
#: Top-level elements of the default view (namespaces collapsed, parameters hidden, as Kedro-Viz
#: opens): 161 before the namespaces and the one-entry tables, 112 with them, 25 once each role
#: hands its results over as one dataset and the contact sheet reads the figures back
#: (docs/design.md, "Lineage view"): the raw inputs, the training node and the embedded
#: models, one box per role, per role its results and avalanche table (plus the rasters F01
#: draws), the replication box and its two tables, the run's save version, the reporting box
#: and its three outputs.
MAX_TOP_LEVEL = 25
#: The zoom the default view must open at (Kedro-Viz fits the whole top level on opening):
#: node labels are about 6 px high at 40 % on a 1400 x 900 window and still legible; the
#: flat graph opened at Kedro-Viz's 10 % floor.
MIN_INITIAL_ZOOM = 0.35

#: how the browser runs here and in CI: no sandbox (root in a container), no GPU, no traffic
#: to Google's services (the network is closed; the site itself is on localhost)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "Install Chromium (Debian/Ubuntu: `sudo apt-get install -y --no-install-recommends "
    "chromium`; .ci/run does this in CI), or point AVALANCHE_CHROMIUM at a Chromium binary, "
    "or set AVALANCHE_SKIP_BROWSER=1 to skip the browser test."
)


#: names of the selector's options whose label is the topmost element at its own centre
_PAINTED_OPTIONS = """() => {
  const options = document.querySelectorAll(
    '[data-test="kedro-pipeline-selector"] [role="option"] .menu-option__content');
  return Array.from(options).filter((label) => {
    const box = label.getBoundingClientRect();
    const x = box.left + box.width / 2, y = box.top + box.height / 2;
    const hit = document.elementFromPoint(x, y);
    return box.width > 0 && box.height > 0 && y < window.innerHeight && hit !== null
      && (label === hit || label.contains(hit));
  }).map((label) => label.textContent.trim());
}"""


def _chromium() -> str:
    """Path of the system Chromium; skips only when AVALANCHE_SKIP_BROWSER=1."""
    if os.environ.get("AVALANCHE_SKIP_BROWSER", "") not in ("", "0"):
        pytest.skip("AVALANCHE_SKIP_BROWSER is set")
    for candidate in (
        os.environ.get("AVALANCHE_CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"Chromium not found. {INSTALL_HINT}", pytrace=False)


def _artifacts() -> Path:
    """Where test artifacts go: ``$AVALANCHE_TEST_ARTIFACTS`` or ``<repo>/test-artifacts``
    (git-ignored; CI keeps no other artifact folder)."""
    folder = Path(os.environ.get("AVALANCHE_TEST_ARTIFACTS") or PROJECT_ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: the zoom Kedro-Viz shows, the scale of the flowchart's zoom group, the fit scale of the
#: graph (what the flowchart would need to show all of it), the band labels and node labels
_VIEW = """() => {
  const label = document.querySelector('.pipeline-minimap-toolbar__scale');
  const wrapper = document.querySelector('.pipeline-flowchart__graph #zoom-wrapper')
    || document.querySelectorAll('#zoom-wrapper')[1];
  const match = /scale\\(([0-9.e-]+)\\)/.exec(wrapper ? wrapper.getAttribute('transform') : '');
  const box = document.querySelector('#nodes').getBBox();
  const view = document.querySelector('.pipeline-flowchart').getBoundingClientRect();
  return {
    zoomText: label ? label.textContent.trim() : null,
    scale: match ? parseFloat(match[1]) : null,
    fit: Math.min(view.width / box.width, view.height / box.height),
    graph: [box.width, box.height],
    view: [view.width, view.height],
    bands: Array.from(document.querySelectorAll('.pipeline-layer-name')).map(
      (e) => e.textContent.trim()),
    nodes: Array.from(document.querySelectorAll('#nodes .pipeline-node')).map(
      (e) => e.textContent.trim()),
  };
}"""


def _top_level(main: dict) -> list[dict]:
    """The elements Kedro-Viz draws when it opens: the root's children, parameters hidden."""
    by_id = {node["id"]: node for node in main["nodes"]}
    root = main["modular_pipelines"]["__root__"]["children"]
    nodes = [by_id[child["id"]] for child in root if child["type"] != "parameters"]
    # params:* inputs also appear as data nodes; the UI hides them with the parameters
    return [n for n in nodes if n["name"] != "parameters" and not n["name"].startswith("params:")]


@pytest.fixture(scope="module")
def viz_build(e2e_project) -> Path:
    """``kedro viz build`` in the end-to-end project: the static site in ``build/``."""
    run_kedro(e2e_project, "viz", "build", timeout=600)
    build = e2e_project / "build"
    assert (build / "index.html").is_file() and (build / "api" / "main").is_file()
    return build


@pytest.fixture
def site(viz_build):
    """``build/`` served by http.server on a free local port; yields the base URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            pass

    handler = functools.partial(QuietHandler, directory=str(viz_build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_viz_build_api_lists_every_pipeline(viz_build):
    main = json.loads((viz_build / "api" / "main").read_text())
    names = [pipeline["name"] for pipeline in main["pipelines"]]
    assert [name for name in names if name != "__default__"] == PIPELINES
    assert main["selected_pipeline"] == "__default__"
    for name in PIPELINES:
        pipeline = json.loads((viz_build / "api" / "pipelines" / name).read_text())
        assert pipeline["nodes"], f"pipeline {name} has no nodes in the build"
    node_names = {node["name"] for node in main["nodes"]}
    assert {"T01_SUMMARY", "base.event_rasters_A", "instruct.event_rasters_A"} <= node_names


def test_viz_lineage_has_layers_namespaces_and_one_dataset_per_table(viz_build):
    main = json.loads((viz_build / "api" / "main").read_text())
    data = [node for node in main["nodes"] if node["type"] == "data"]
    # every dataset in a band, and the bands in lineage order (Kedro-Viz drops them on a cycle)
    assert main["layers"] == BANDS
    assert {
        node["name"]: node.get("layer") for node in data if node.get("layer") not in BANDS
    } == {}
    # each table once: the Parquet entry writes the CSV copy too
    assert not [node["name"] for node in data if node["name"].endswith("_csv")]
    assert {"T01_SUMMARY", "base.lens_prompts"} <= {node["name"] for node in data}
    # collapsed namespaces: replication and reporting nodes are not at the top level
    tree = main["modular_pipelines"]
    assert {"reporting.tables", "reporting.figures", "reporting.report"} <= set(tree)
    top = _top_level(main)
    assert {n["name"] for n in top if n["type"] == "modularPipeline"} == TOP_NAMESPACES
    assert [n["name"] for n in top if n["type"] == "task"] == ["train_embedded_models"]
    # what crosses from a role into the cross-role steps: its results and the large tables
    roles = sorted(TOP_NAMESPACES - {"replication", "reporting"})
    crossing = {n["name"] for n in top if n["type"] == "data" and n["name"].split(".")[0] in roles}
    assert crossing == {f"{r}.{d}" for r in roles for d in ("results", "avalanches_A")} | {
        "base.event_rasters_A"
    }
    assert len(top) <= MAX_TOP_LEVEL, len(top)
    print(f"top-level elements of the default view: {len(top)}")


def test_viz_site_renders_every_pipeline_in_chromium(site, viz_build, tmp_path, record_property):
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is in the test extras
        pytest.fail("playwright is not installed: pip install -e '.[test]'", pytrace=False)
    from PIL import Image

    local = urlparse(site).netloc
    external: list[str] = []

    def keep_local(route):
        # fonts.googleapis.com and the like: refused at once, so the run is the same offline
        if urlparse(route.request.url).netloc == local:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    screenshot = tmp_path / "kedro-viz.png"
    default_view = _artifacts() / "kedro-viz-default.png"
    top = _top_level(json.loads((viz_build / "api" / "main").read_text()))
    with sync_playwright() as playwright:
        # Playwright gives the browser a new, empty profile (its own --user-data-dir).
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.route("**/*", keep_local)
            # as a returning user sees it: no first-visit feature tour over the flowchart
            page.add_init_script(
                "window.localStorage.setItem('KedroViz', JSON.stringify({showFeatureHints: false}))"
            )
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(site, wait_until="domcontentloaded")

            selector = page.locator('[data-test="kedro-pipeline-selector"]')
            selector.wait_for(state="visible")
            # the flowchart is drawn once the nodes of the default pipeline are on the page
            page.locator("#nodes .pipeline-node").first.wait_for(state="attached")
            # the default view as it opens (namespaces collapsed), once the layout has settled
            page.locator(".pipeline-layer-name").first.wait_for(state="attached")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(default_view))
            view = page.evaluate(_VIEW)

            selector.locator(".dropdown__label").click()
            page.wait_for_selector(
                '[data-test="kedro-pipeline-selector"][aria-expanded="true"]', state="attached"
            )
            options = selector.locator('[role="option"]')
            options.last.wait_for(state="visible")
            listed = [text.strip() for text in options.all_inner_texts()]
            # The open list scrolls after five entries (max-height 300px); lift the cap so the
            # screenshot shows every pipeline, then ask the browser which option labels are
            # really painted on top at their own position (hit test at each label's centre).
            page.add_style_tag(
                content='[data-test="kedro-pipeline-selector"] .dropdown__options'
                "{max-height: none !important}"
            )
            painted = page.evaluate(_PAINTED_OPTIONS)
            page.screenshot(path=str(screenshot))

            # choosing a pipeline in the selector switches the page to it
            options.filter(has_text="reporting").first.click()
            page.wait_for_function(
                "() => document.querySelector("
                "'[data-test=\"kedro-pipeline-selector\"] .dropdown__label')"
                "?.textContent.trim() === 'reporting'"
            )
        finally:
            browser.close()

    record_property("screenshot", str(screenshot))
    record_property("default_view", str(default_view))
    print(f"screenshot: {screenshot}")
    print(f"default view: {default_view} (zoom {view['zoomText']}, fit {view['fit']:.3f})")
    # the default view draws exactly the top-level elements: the namespaces are collapsed
    assert len(view["nodes"]) == len(top), (len(view["nodes"]), len(top))
    assert TOP_NAMESPACES <= set(view["nodes"]), view["nodes"]
    assert not any(name.startswith(("build_T", "draw_F", "compare_")) for name in view["nodes"])
    # the bands of the top-level datasets, in lineage order (Kedro-Viz draws a band only when
    # it holds a visible element; intermediate and primary data now sit inside the roles)
    drawn_layers = {n.get("layer") for n in top if n["type"] == "data"}
    assert view["bands"] == [band for band in BANDS if band in drawn_layers], view["bands"]
    assert view["bands"] == ["raw", "models", "feature", "model_output", "reporting"]
    # Kedro-Viz opens at max(10 %, the zoom that fits the whole top level): with one dataset
    # per role into the cross-role steps the top level is a column about 1,250 layout units
    # wide and 2,100 high, which opens at 40 % (the flat graph was 15,150 units wide: 10 %)
    assert view["zoomText"] == f"{round(view['scale'] * 100)}%"
    assert view["scale"] >= MIN_INITIAL_ZOOM, view
    assert [name for name in listed if name != "__default__"] == PIPELINES, listed
    assert [name for name in painted if name != "__default__"] == PIPELINES, painted
    assert not page_errors, page_errors

    with Image.open(screenshot) as image:
        assert image.format == "PNG"
        assert image.size == (1400, 900)
        gray = np.asarray(image.convert("L"), dtype=np.float64)
        colors = len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])
    assert gray.std() > 10, f"screenshot looks blank (pixel std {gray.std():.1f})"
    assert colors > 50, f"screenshot has only {colors} colours"
