"""A chapter notebook in a real JupyterLab: Run All, then a live ipywidgets explorer responds.

Why: the static book shows the self-contained explorers; a reader who opens the notebook in
JupyterLab gets the live ipywidgets ones (analysis_lib.presentation.widgets), which only a
running kernel and
the JupyterLab widget manager can show. This starts ``jupyter lab`` headless on a free local port
with a token, in a temporary root holding a copy of chapter 4.1 with the smoke profile injected
(as papermill injects parameters), opens it in headless Chromium, runs every cell from the Run
menu, clicks the galaxy browser's "next" button and checks that the shown galaxy changes.

The kernel writes into the session's smoke data folder (tests/conftest.py smoke_data_dir): after
the smoke book test it reuses the stored runs and takes about a minute; alone it trains the
chapter's smoke experiments first (a few minutes).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from analysis_lib.presentation.publish import notebook_path

from .browser import headless_chromium, require_chromium, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

CHAPTER = "04_cnn_mstar"
RUN_ALL_TIMEOUT_S = 900.0  # a cold store trains the chapter's smoke runs inside the kernel


LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root: Path, env: dict[str, str], startup_timeout_s: float = 60.0
                ) -> Iterator[str]:
    """A headless JupyterLab serving root on 127.0.0.1; yields its base URL with the token.

    Settings, workspaces and runtime files go to a folder inside root, so the user's own
    JupyterLab state neither leaks in nor is touched; no browser, news, update check or PyPI
    extension manager, so nothing leaves the machine."""
    port, token = free_port(), secrets.token_hex(16)
    state = root / ".jupyter-state"
    env = {**env, "JUPYTER_CONFIG_DIR": str(state / "config"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # CI containers run as root; the server refuses without this
        cmd.append("--ServerApp.allow_root=True")
    # What a returning user has set once: start the notebook's kernel without asking, no news.
    for plugin, values in LAB_SETTINGS.items():
        path = state / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    log = (root / ".jupyter-lab.log").open("w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited ({proc.returncode}): "
                                     f"{(root / '.jupyter-lab.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError as exc:
                if time.monotonic() > end:
                    raise AssertionError(f"jupyter lab did not answer in {startup_timeout_s} s"
                                         ) from exc
                time.sleep(0.5)
        yield f"{url}/lab/tree/{{path}}?token={token}"
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def smoke_copy(name: str, root: Path, profile: str = "smoke") -> Path:
    """A copy of a chapter notebook with `profile` injected after its parameters cell."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(notebook_path(name))),
                               {"profile": profile})
    out = root / f"{name}.ipynb"
    nbformat.write(nb, out)
    return out


def run_all_cells(driver) -> None:
    """Run > Run All Cells, from JupyterLab's menu bar, as a user would."""
    from selenium.webdriver.common.by import By

    menu = wait_until(lambda: next((m for m in driver.find_elements(
        By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text.strip() == "Run"), None),
        timeout_s=30, what="the Run menu")
    menu.click()
    wait_until(lambda: driver.find_elements(
        By.CSS_SELECTOR, '.lm-Menu-item[data-command="runmenu:run-all"]'),
        what="Run All Cells in the Run menu")[0].click()


def kernel_idle(driver) -> bool:
    """Whether the notebook's kernel is connected and idle (the toolbar's status circle)."""
    return bool(driver.execute_script(
        "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        "return s !== null && s.getAttribute('data-status') === 'idle';"))


def cell_errors(driver) -> list[str]:
    """Tracebacks shown in the notebook's outputs."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"] pre,"
        " .jp-RenderedText[data-mime-type=\"application/vnd.jupyter.error\"]'))"
        ".map(e => e.textContent.slice(0, 500));")


def code_prompts(driver) -> list[str]:
    """The execution prompts of the code cells: '[ ]:' not run, '[*]:' running, '[3]:' ran."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))"
        ".map(e => e.textContent.trim());")


def wait_for_run_all(driver, timeout_s: float, screenshot: Path) -> list[str]:
    """Wait until every code cell has run (or one failed); the tracebacks shown, if any.

    On a timeout the message says what the kernel and the cells were doing, and a screenshot
    of the page is saved."""
    end = time.monotonic() + timeout_s
    while True:
        errors, prompts, idle = cell_errors(driver), code_prompts(driver), kernel_idle(driver)
        if errors or (idle and prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)):
            return errors
        if time.monotonic() > end:
            driver.save_screenshot(str(screenshot))
            raise AssertionError(f"Run All did not finish in {timeout_s:.0f} s: kernel idle "
                                 f"{idle}, cell prompts {prompts} (screenshot {screenshot})")
        time.sleep(0.5)


def next_button(driver):
    """The live galaxy browser's 'next' button (an ipywidgets Button), if it is shown."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea button.widget-button"):
        if button.get_attribute("textContent").strip() == "next":
            return button
    return None


def shown_galaxy(driver, button) -> tuple[str, str]:
    """The caption text and image source of the browser widget that holds `button`."""
    return tuple(driver.execute_script(
        "let box = arguments[0];"
        "while (box && !box.querySelector('.widget-image')) { box = box.parentElement; }"
        "if (!box) { return ['', '']; }"
        "const cap = box.querySelector('.widget-html-content');"
        "const img = box.querySelector('.widget-image');"
        "return [cap ? cap.innerText : '', img ? img.getAttribute('src') || '' : ''];", button))


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory, smoke_data_dir) -> Iterator[str]:
    require_chromium()
    root = tmp_path_factory.mktemp("lab")
    smoke_copy(CHAPTER, root)
    env = {**os.environ, "ANALYSIS_LIB_DATA": str(smoke_data_dir), "TQDM_DISABLE": "1",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    with jupyter_lab(root, env) as url:
        yield url.format(path=f"{CHAPTER}.ipynb")


def test_a_live_widget_in_jupyterlab_responds_to_a_click(lab_url, tmp_path):
    with headless_chromium(width=1400, height=1000, page_load_timeout_s=120) as driver:
        driver.get(lab_url)
        assert wait_until(lambda: kernel_idle(driver) and len(prompts := code_prompts(driver))
                          > 1 and all(p == "[ ]:" for p in prompts), timeout_s=120,
                          what="the notebook to open with an idle kernel")
        run_all_cells(driver)
        errors = wait_for_run_all(driver, RUN_ALL_TIMEOUT_S, tmp_path / "run-all.png")
        assert not errors, errors
        button = wait_until(lambda: next_button(driver), timeout_s=30,
                            what="a live ipywidgets 'next' button in the outputs")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
        before = wait_until(lambda: s if all(s := shown_galaxy(driver, button)) else None,
                            timeout_s=30, what="the browser widget's caption and image")
        button.click()
        after = wait_until(lambda: (s := shown_galaxy(driver, button)) != before and s,
                           timeout_s=30, what="the widget to show the next galaxy")
        assert after[0] != before[0], (before[0], after[0])
        assert after[1] != before[1]
        assert not cell_errors(driver)
