"""The static plotly explorers in a real (headless Chromium) browser, opened from file:// offline.

Skipped only when chromium / chromium-driver / selenium are missing (the CI script installs
them). Builds one page with the three explorers from the synthetic dataset and fake runs
(plotly.js inline once, in the page's head), checks that they rendered without errors or
outside requests, clicks their plotly controls as a reader would and asserts that what is
drawn changes (titles, axis labels, table cells, bar order, image). A screenshot of the page is
left at SCREENSHOT for people to look at.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis_lib.dataset import open_dataset
from analysis_lib.presentation import interactive as ie

from .browser import (
    BOOK_THEME_NOISE,
    external_requests,
    headless_chromium,
    missing_reason,
    open_file,
    severe_console_errors,
    wait_until,
)
from .conftest import make_synthetic_dataset
from .test_widgets import make_fake_runs

SCREENSHOT = "/tmp/widget_screenshot.png"

pytestmark = pytest.mark.skipif(missing_reason() is not None,
                                reason=missing_reason() or "headless browser available")


@pytest.fixture(scope="module")
def runs_and_payloads(tmp_path_factory):
    """The fake runs, and the payloads of a galaxy browser, an experiment explorer and two
    importance explorers."""
    d = tmp_path_factory.mktemp("browser_page")
    path = make_synthetic_dataset(d / "synthetic.h5", n_galaxies=6)
    ds, runs = open_dataset(path), make_fake_runs(d / "results", path)
    return runs, [ie.galaxy_browser_payload(ds, runs, n_samples=4, progress=False),
                  ie.experiment_payload(runs, progress=False),
                  ie.importance_payload(runs), ie.importance_payload(runs)]


@pytest.fixture(scope="module")
def blocks(runs_and_payloads):
    """The explorers' HTML blocks without plotly.js (the test page carries it once)."""
    return [ie.explorer_html(p, include_plotlyjs=False) for p in runs_and_payloads[1]]


@pytest.fixture(scope="module")
def page(blocks, tmp_path_factory):
    path = tmp_path_factory.mktemp("browser_page") / "explorers.html"
    return ie.write_page(path, blocks, "explorer test page")


@pytest.fixture(scope="module")
def driver(page):
    with headless_chromium() as drv:
        open_file(drv, page)
        wait_until(lambda: len(_plots(drv)) == 4, timeout_s=30, what="four plotly graphs")
        yield drv


def _explorers(driver, kind):
    return driver.find_elements("css selector", f'[data-explorer="{kind}"]')


def _plots(driver):
    return driver.find_elements("css selector", ".js-plotly-plot")


def _texts(root, css: str) -> list[str]:
    return [e.text for e in root.find_elements("css selector", css)]


def _title(root) -> str:
    return " ".join(_texts(root, ".gtitle"))


def _cells(root) -> list[str]:
    return [t for t in _texts(root, ".table .cell-text") if t]


def _click(driver, element) -> None:
    """A real mouse click on an SVG element (plotly's controls are SVG groups)."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    ActionChains(driver).move_to_element(element).click().perform()


def _choose(driver, root, label_part: str) -> None:
    """Open the explorer's plotly dropdown and click the entry whose label contains the text."""
    _click(driver, root.find_element("css selector", ".updatemenu-header"))
    buttons = wait_until(lambda: [b for b in root.find_elements(
        "css selector", ".updatemenu-dropdown-button") if label_part in b.text],
        what=f"dropdown entry '{label_part}'")
    _click(driver, buttons[0])


def test_page_renders_offline_without_errors(driver, page):
    assert page.read_text().count("plotly.js v") == 1  # the library once, in the head
    assert len(_explorers(driver, "importance-explorer")) == 2
    assert severe_console_errors(driver) == []
    assert external_requests(driver) == []


def test_galaxy_browser_slider_shows_another_sample(driver):
    root = _explorers(driver, "galaxy-browser")[0]
    title0, cells0 = _title(root), _cells(root)
    assert title0.startswith("galaxy ")
    assert "cnn/s41_rv_mstar" in cells0 and "gbdt/mstar_default" in cells0
    href = lambda: [e.get_attribute("href") for e in root.find_elements(  # noqa: E731
        "css selector", ".imagelayer image, g.im image") if e.is_displayed()]
    image0 = href()
    assert image0 and image0[0].startswith("data:image/png;base64,")
    rail = root.find_element("css selector", ".slider-rail-touch-rect")
    from selenium.webdriver.common.action_chains import ActionChains

    width = rail.size["width"]
    ActionChains(driver).move_to_element_with_offset(rail, int(width / 2) - 2, 0).click() \
        .perform()  # the right end of the rail: the last sample
    wait_until(lambda: _title(root) != title0, what="title to follow the slider")
    assert _title(root).startswith("galaxy ")
    assert _cells(root) != cells0  # another sample's truths and predictions
    assert href() != image0


def test_experiment_explorer_switches_run_and_target(driver, runs_and_payloads):
    root = _explorers(driver, "experiment-explorer")[0]
    title0, cells0 = _title(root), _cells(root)
    assert "cnn/s41_rv_mstar: log_mstar" in title0
    assert "all" in cells0 and any(c.startswith("paper,") for c in cells0)
    x_title0 = " ".join(_texts(root, ".g-xtitle"))
    _choose(driver, root, "log_mtot")
    wait_until(lambda: "log_mtot" in _title(root), what="title to follow the target")
    assert _cells(root) != cells0
    assert " ".join(_texts(root, ".g-xtitle")) != x_title0  # M_tot instead of M*
    _choose(driver, root, "gbdt/mstar_default")
    wait_until(lambda: "gbdt/mstar_default" in _title(root), what="title to follow the run")
    gbdt = runs_and_payloads[0][1]
    assert ie.fmt(ie.target_stats(gbdt, "log_mstar")["all"]["sigma"], 3) in _cells(root)


def test_importance_explorers_change_independently(driver):
    first, second = _explorers(driver, "importance-explorer")
    top = lambda root: _texts(root, ".ytick text")[-1]  # noqa: E731 (largest bar on top)
    assert top(first) == "M_r" and top(second) == "M_r"  # gain ranks M_r first
    _choose(driver, first, "permutation")
    wait_until(lambda: top(first) == "g_r", what="permutation ranking")
    assert top(second) == "M_r"  # the other explorer on the page did not move
    assert any("dex²" in t for t in _texts(first, ".bartext, .textpoint text"))


def test_screenshot(driver):
    driver.set_window_size(1300, 2600)
    driver.execute_script("window.scrollTo(0, 0);")
    assert driver.save_screenshot(SCREENSHOT)


def _tiny_book(root, blocks) -> None:
    """A Jupyter Book 1.x project whose one notebook holds the explorers as text/html outputs
    (the first with plotly.js inline, as a kernel renders them), beside the live widget view
    that _config.yml must rank last; execution is off, as in ours."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Explorers")]
    for i, block in enumerate(blocks):
        cell = nbformat.v4.new_code_cell(f"explorer_{i}", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output(
            "display_data", data={
                "text/html": block, "text/plain": "<explorer>",
                "application/vnd.jupyter.widget-view+json": {
                    "version_major": 2, "version_minor": 0, "model_id": f"model{i}"}})]
        nb.cells.append(cell)
    nbformat.write(nb, root / "explorers.ipynb")
    (root / "intro.md").write_text("# Intro\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                   "  - file: explorers\n")
    (root / "_config.yml").write_text(
        "title: explorer test\nexecute:\n  execute_notebooks: 'off'\n"
        "sphinx:\n  config:\n    nb_mime_priority_overrides:\n"
        "      - ['*', 'application/vnd.jupyter.widget-view+json', 35]\n")


@pytest.mark.slow
def test_explorers_survive_a_jupyter_book_build(runs_and_payloads, tmp_path):
    """myst-nb must keep the <script> of text/html outputs and prefer them to the widget view:
    the built page must still work offline."""
    payloads = runs_and_payloads[1]
    _tiny_book(tmp_path, [ie.explorer_html(payloads[0], include_plotlyjs=True),
                          *(ie.explorer_html(p, include_plotlyjs=False) for p in payloads[1:])])
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
           "sys.exit(main())", "build", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    page = tmp_path / "_build" / "html" / "explorers.html"
    with headless_chromium() as drv:
        open_file(drv, page)
        wait_until(lambda: len(_plots(drv)) == 4, timeout_s=30, what="plotly graphs in the book")
        assert severe_console_errors(drv, ignore=BOOK_THEME_NOISE) == []
        assert external_requests(drv) == []
        root = _explorers(drv, "importance-explorer")[0]
        _choose(drv, root, "permutation")
        wait_until(lambda: _texts(root, ".ytick text")[-1] == "g_r",
                   what="the dropdown to work in the built book")

