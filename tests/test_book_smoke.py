"""The whole pipeline in the smoke profile: every notebook executed by papermill, the book built.

Each notebook runs top to bottom with the smoke profile in a fresh kernel (papermill), in
dependency order, against the session's smoke data directory (tests/conftest.py smoke_data_dir,
which nbval and the JupyterLab test then reuse); then Jupyter Book builds the HTML offline from
the executed notebooks and every chapter page exists, with one parameters cell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis_lib.paths import REPO_ROOT
from analysis_lib.presentation.publish import NOTEBOOK_ORDER

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_book(smoke_data_dir):
    data = smoke_data_dir
    env = {**os.environ, "ANALYSIS_LIB_DATA": str(data), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "analysis_lib", "book", "--profile", "smoke"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    return proc, data


def test_book_command_succeeds(smoke_book):
    proc, _ = smoke_book
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "book built: open" in proc.stdout


@pytest.mark.parametrize("name", NOTEBOOK_ORDER)
def test_every_notebook_executed_without_error(smoke_book, name):
    import nbformat

    proc, _ = smoke_book
    assert proc.returncode == 0
    nb = nbformat.read(REPO_ROOT / "book" / "executed" / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert nb.metadata["papermill"]["parameters"]["profile"] == "smoke"


@pytest.mark.parametrize("name", NOTEBOOK_ORDER)
def test_every_chapter_page_is_built(smoke_book, name):
    proc, _ = smoke_book
    assert proc.returncode == 0
    page = REPO_ROOT / "_build" / "html" / "book" / "executed" / f"{name}.html"
    assert page.exists()
    html = page.read_text()
    assert "Traceback" not in html


@pytest.mark.parametrize("name", NOTEBOOK_ORDER)
def test_every_chapter_shows_one_parameters_cell_with_the_values_used(smoke_book, name):
    """papermill's injected cell is left out of the page; the notebook's own parameters cell
    shows the values the build used (the smoke profile), not the notebook's defaults."""
    import html
    import re

    proc, _ = smoke_book
    assert proc.returncode == 0
    page = (REPO_ROOT / "_build" / "html" / "book" / "executed" / f"{name}.html").read_text()
    cells = re.findall(r'<div class="cell ([^"]*)"', page)
    assert sum("tag_parameters" in c.split() for c in cells) == 1, cells
    assert not any("tag_injected-parameters" in c for c in cells), cells
    start = page.index("tag_parameters")
    text = html.unescape(re.sub(r"<[^>]+>", "", page[start:page.index("</pre>", start)]))
    assert re.search(r"^profile = \"smoke\"", text, re.M), text
    assert "overrides = []" in text, text


def test_book_has_no_remote_scripts(smoke_book):
    """The static book works offline: no page loads a script from another host."""
    import re

    proc, _ = smoke_book
    assert proc.returncode == 0
    offenders = []
    for page in Path(REPO_ROOT / "_build" / "html").rglob("*.html"):
        for src in re.findall(r'<script[^>]+src="([^"]+)"', page.read_text()):
            if src.startswith(("http:", "https:", "//")):
                offenders.append(f"{page.name}: {src}")
    assert not offenders, offenders[:5]


@pytest.mark.parametrize("name", ["intro", "executed/02_data", "executed/04_cnn_mstar",
                                  "executed/05_gbdt", "executed/06_jam"])
def test_pages_render_offline_in_a_browser(smoke_book, name):
    """Headless Chromium opens built pages from disk: figures load, no request leaves the page."""
    from .browser import (
        BOOK_THEME_NOISE,
        external_requests,
        headless_chromium,
        image_natural_widths,
        open_file,
        require_chromium,
        severe_console_errors,
        wait_until,
    )

    require_chromium()
    proc, _ = smoke_book
    assert proc.returncode == 0
    page = REPO_ROOT / "_build" / "html" / "book" / f"{name}.html"
    with headless_chromium() as drv:
        open_file(drv, page)
        assert drv.find_element("css selector", "article h1").text.strip()
        if name != "intro":
            assert wait_until(lambda: (w := image_natural_widths(drv, "main img")) and all(w),
                              what=f"figures on {name}")
        assert severe_console_errors(drv, ignore=BOOK_THEME_NOISE) == []
        assert external_requests(drv) == []


def test_a_widget_in_the_built_book_responds_to_a_click(smoke_book):
    """The galaxy browser of chapter 4.1 works in the static book (a plotly figure, no kernel):
    a click at the right end of its slider shows another galaxy."""
    from selenium.webdriver.common.action_chains import ActionChains

    from .browser import headless_chromium, open_file, require_chromium, wait_until

    require_chromium()
    proc, _ = smoke_book
    assert proc.returncode == 0
    page = REPO_ROOT / "_build" / "html" / "book" / "executed" / "04_cnn_mstar.html"
    with headless_chromium() as drv:
        open_file(drv, page)
        root = wait_until(lambda: drv.find_elements(
            "css selector", '[data-explorer="galaxy-browser"] .js-plotly-plot'), timeout_s=30,
            what="the galaxy browser's plotly figure")[0]
        title = lambda: " ".join(e.text for e in root.find_elements(  # noqa: E731
            "css selector", ".gtitle"))
        before = wait_until(title, what="the browser's title")
        rail = root.find_element("css selector", ".slider-rail-touch-rect")
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", rail)
        ActionChains(drv).move_to_element_with_offset(rail, int(rail.size["width"] / 2) - 2, 0) \
            .click().perform()  # the right end of the rail: the last galaxy
        assert wait_until(lambda: title() != before,
                          what="the galaxy browser to show another galaxy")


def test_one_notebook_reruns_with_new_parameters(smoke_book, tmp_path):
    """The README's papermill command: chapter 4.1 with other inputs and another resolution
    trains and stores that experiment (here r image only at the smoke profile's 30 px)."""
    import json

    proc, data = smoke_book
    assert proc.returncode == 0
    out = tmp_path / "out.ipynb"
    env = {**os.environ, "ANALYSIS_LIB_DATA": str(data), "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-m", "papermill", "notebooks/04_cnn_mstar.ipynb",
                          str(out), "-p", "profile", "smoke", "-p", "inputs", "r_image",
                          "-p", "resolution", "30"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    stored = list((data / "results" / "smoke" / "cnn").glob("custom_*_30_log_mstar"))
    assert len(stored) == 1, stored
    config = json.loads((stored[0] / "config.json").read_text())
    assert config["experiment"]["resolution"] == 30
    assert config["experiment"]["inputs"] == ["image_r"]
    assert (stored[0] / "metrics.json").exists()
