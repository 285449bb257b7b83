"""The HTML/JS explorers in a real (headless Chromium) browser, opened from file:// offline.

Skipped only when chromium / chromium-driver / selenium are missing (the CI script installs
them). Builds one page with the three explorers from the synthetic dataset and fake runs,
checks that they rendered, drives their controls and asserts that what is shown changes.
A screenshot of the page is left at SCREENSHOT for people to look at.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis_lib import interactive as ie
from analysis_lib.dataset import open_dataset

from .browser import (
    BOOK_THEME_NOISE,
    external_requests,
    headless_chromium,
    image_natural_widths,
    missing_reason,
    open_file,
    select_index,
    set_range_value,
    severe_console_errors,
    wait_until,
)
from .conftest import make_synthetic_dataset
from .test_widgets import make_fake_runs

SCREENSHOT = "/tmp/widget_screenshot.png"

pytestmark = pytest.mark.skipif(missing_reason() is not None,
                                reason=missing_reason() or "headless browser available")


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """A galaxy browser, an experiment explorer and two importance explorers (HTML blocks)."""
    d = tmp_path_factory.mktemp("browser_page")
    path = make_synthetic_dataset(d / "synthetic.h5", n_galaxies=6)
    ds, runs = open_dataset(path), make_fake_runs(d / "results", path)
    return [ie.galaxy_browser_html(ds, runs, n_samples=4, progress=False),
            ie.experiment_explorer_html(runs, progress=False),
            ie.importance_explorer_html(runs), ie.importance_explorer_html(runs)]


@pytest.fixture(scope="module")
def page(blocks, tmp_path_factory):
    path = tmp_path_factory.mktemp("browser_page") / "explorers.html"
    return ie.write_page(path, blocks, "explorer test page")


@pytest.fixture(scope="module")
def driver(page):
    with headless_chromium() as drv:
        open_file(drv, page)
        yield drv


def _explorers(driver, kind):
    return driver.find_elements("css selector", f'div[data-explorer="{kind}"]')


def _in(root, cls):
    return root.find_element("css selector", "." + cls)


def test_page_renders_offline_without_errors(driver):
    widths = wait_until(lambda: (w := image_natural_widths(driver)) and all(w) and w,
                        what="every <img> to decode")
    assert len(widths) == 2 and min(widths) > 100  # galaxy panels and the scatter plot
    assert severe_console_errors(driver) == []
    assert external_requests(driver) == []
    assert len(_explorers(driver, "importance-explorer")) == 2


def test_galaxy_browser_next_slider_and_select(driver):
    root = _explorers(driver, "galaxy-browser")[0]
    img, caption = _in(root, "ie-image"), _in(root, "ie-caption")
    prev, nxt, slider = _in(root, "ie-prev"), _in(root, "ie-next"), _in(root, "ie-slider")
    src0, text0 = img.get_attribute("src"), caption.text
    assert text0.startswith("galaxy ") and prev.get_attribute("disabled")
    rows0 = _in(root, "ie-table").text
    assert "cnn/s41_rv_mstar" in rows0 and "gbdt/mstar_default" in rows0
    nxt.click()
    wait_until(lambda: caption.text != text0, what="caption to change after 'next'")
    assert img.get_attribute("src") != src0
    assert _in(root, "ie-pos").text == "2 / 4" and slider.get_attribute("value") == "1"
    set_range_value(driver, slider, 3)
    wait_until(lambda: _in(root, "ie-pos").text == "4 / 4", what="slider to move to the end")
    assert nxt.get_attribute("disabled")
    select_index(_in(root, "ie-select"), 0)
    wait_until(lambda: caption.text == text0, what="dropdown to go back to the first sample")
    assert img.get_attribute("src") == src0
    assert wait_until(lambda: image_natural_widths(driver, f"#{root.get_attribute('id')} img"))


def test_experiment_explorer_switches_target_and_run(driver):
    root = _explorers(driver, "experiment-explorer")[0]
    img, table = _in(root, "ie-image"), _in(root, "ie-table")
    run_sel, tgt_sel = _in(root, "ie-run"), _in(root, "ie-target")
    assert "paper (TNG100)" in table.text and "this study, all" in table.text
    src0, table0 = img.get_attribute("src"), table.text
    select_index(tgt_sel, 1)
    wait_until(lambda: img.get_attribute("src") != src0, what="scatter to change with target")
    assert table.text != table0
    assert "log_mtot" in _in(root, "ie-caption").text
    select_index(run_sel, 1)
    wait_until(lambda: "gbdt/mstar_default" in _in(root, "ie-caption").text,
               what="caption to follow the run")
    assert len(tgt_sel.find_elements("tag name", "option")) == 1


def test_importance_explorers_change_independently(driver):
    first, second = _explorers(driver, "importance-explorer")
    names = lambda root: [e.text for e in root.find_elements(  # noqa: E731
        "css selector", ".ie-bar-name")]
    assert names(first)[0] == "M_r" and names(second)[0] == "M_r"  # gain: M_r first
    select_index(_in(first, "ie-method"), 1)  # permutation
    wait_until(lambda: names(first)[0] == "g_r", what="permutation ranking")
    assert names(second)[0] == "M_r"  # the other explorer on the page did not move
    assert "dex²" in first.find_element("css selector", ".ie-bar-value").text


# What JupyterLab's renderHTML does with a trusted text/html output: set innerHTML on a host
# element (scripts set that way never run), then replace every <script> by a fresh copy so that
# it runs, either before or after the host is attached to the page.
_JUPYTERLAB_INSERT = """
var host = document.createElement('div');
host.className = 'fake-output-' + arguments[1];
if (arguments[1] === 'attached') { document.body.appendChild(host); }
host.innerHTML = arguments[0];
Array.from(host.getElementsByTagName('script')).forEach(function (old) {
  var clone = document.createElement('script');
  Array.from(old.attributes).forEach(function (a) { clone.setAttribute(a.name, a.value); });
  clone.textContent = old.textContent;
  old.parentNode.replaceChild(clone, old);
});
if (arguments[1] !== 'attached') { document.body.appendChild(host); }
"""


def test_explorer_runs_when_inserted_like_jupyterlab(blocks, tmp_path):
    blank = ie.write_page(tmp_path / "blank.html", [], "blank")
    with headless_chromium() as drv:
        open_file(drv, blank)
        for mode in ("attached", "detached"):
            drv.execute_script(_JUPYTERLAB_INSERT, blocks[2], mode)
        for mode in ("attached", "detached"):
            root = drv.find_element("css selector", f".fake-output-{mode} .ie-explorer")
            wait_until(lambda r=root: r.find_elements("css selector", ".ie-bar-name"),
                       what=f"bars of the explorer inserted {mode}")
            select_index(_in(root, "ie-method"), 1)
            wait_until(lambda r=root: r.find_element("css selector", ".ie-bar-name").text
                       == "g_r", what=f"method switch in the explorer inserted {mode}")
        assert severe_console_errors(drv) == []


def test_screenshot(driver):
    driver.set_window_size(1300, 2200)
    driver.execute_script("window.scrollTo(0, 0);")
    assert driver.save_screenshot(SCREENSHOT)


def _tiny_book(root, blocks) -> None:
    """A Jupyter Book 1.x project whose one notebook holds the explorers as text/html outputs,
    as papermill leaves them after `IPython.display.HTML(...)`; execution is off, as in ours."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Explorers")]
    for i, block in enumerate(blocks):
        cell = nbformat.v4.new_code_cell(f"explorer_{i}", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output(
            "display_data", data={"text/html": block, "text/plain": "<IPython.core.display.HTML "
                                                                    "object>"})]
        nb.cells.append(cell)
    nbformat.write(nb, root / "explorers.ipynb")
    (root / "intro.md").write_text("# Intro\n")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n"
                                   "  - file: explorers\n")
    (root / "_config.yml").write_text("title: explorer test\nexecute:\n"
                                      "  execute_notebooks: 'off'\n")


@pytest.mark.slow
def test_explorers_survive_a_jupyter_book_build(blocks, tmp_path):
    """myst-nb must keep the <script> of text/html outputs: the built page must still work."""
    _tiny_book(tmp_path, blocks)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
           "sys.exit(main())", "build", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    page = tmp_path / "_build" / "html" / "explorers.html"
    with headless_chromium() as drv:
        open_file(drv, page)
        assert wait_until(lambda: (w := image_natural_widths(drv, ".ie-explorer img"))
                          and all(w), what="explorer images in the book page")
        assert severe_console_errors(drv, ignore=BOOK_THEME_NOISE) == []
        assert external_requests(drv) == []
        root = drv.find_element("css selector", 'div[data-explorer="galaxy-browser"]')
        caption = _in(root, "ie-caption")
        text0 = caption.text
        _in(root, "ie-next").click()
        wait_until(lambda: caption.text != text0, what="'next' to work in the built book")
