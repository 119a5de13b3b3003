"""`kedro viz build` writes a static site that renders in headless Chromium with all pipelines.

The site of the end-to-end project is served from ``build/`` on a local port and opened with
Playwright in the system Chromium (Debian's ``chromium`` package; Playwright's own browser
download is not used). The test takes a screenshot, opens the pipeline selector and reads the
pipelines the page lists. Chromium missing fails the test with how to install it; set
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

from tests.conftest import run_kedro

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


def test_viz_site_renders_every_pipeline_in_chromium(site, tmp_path, record_property):
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
    with sync_playwright() as playwright:
        # Playwright gives the browser a new, empty profile (its own --user-data-dir).
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.route("**/*", keep_local)
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(site, wait_until="domcontentloaded")

            selector = page.locator('[data-test="kedro-pipeline-selector"]')
            selector.wait_for(state="visible")
            # the flowchart is drawn once the nodes of the default pipeline are on the page
            page.locator("#nodes .pipeline-node").first.wait_for(state="attached")
            hint = page.locator(".feature-hints__close")  # the first-visit feature tour
            if hint.count() and hint.first.is_visible():
                hint.first.click()

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
    print(f"screenshot: {screenshot}")
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
