"""A small reusable helper for tests that open HTML pages in headless Chromium (via selenium).

Why: the explorers and the built book are read offline as static HTML; only a real browser
shows whether their JavaScript runs, their images decode and nothing is fetched from outside.

    from tests.browser import headless_chromium, require_chromium
    require_chromium()                      # pytest.skip with the reason if it is not installed
    with headless_chromium() as driver:
        open_file(driver, "book/_build/html/intro.html")
        assert not severe_console_errors(driver, ignore=BOOK_THEME_NOISE)
        assert not external_requests(driver)

Chromium runs with --headless --no-sandbox --disable-gpu and the switches that stop it from
reaching the network on its own (background networking, component updates, sync), in a fresh
temporary profile. The chromedriver path is passed explicitly, so Selenium Manager never tries
to download a driver. Debian packages: chromium, chromium-driver; PyPI: selenium.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
DRIVER_NAMES = ("chromedriver", "chromium-driver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--disable-extensions", "--mute-audio")


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) executables on PATH, or None if either is missing."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    return (browser, driver) if browser and driver else None


def missing_reason() -> str | None:
    """Why a browser test cannot run here (None if it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if find_chromium() is None:
        return ("chromium and chromium-driver are not installed "
                "(apt-get install -y chromium chromium-driver)")
    return None


def require_chromium() -> None:
    """pytest.skip with a clear reason when the headless browser is not available."""
    import pytest

    reason = missing_reason()
    if reason:
        pytest.skip(reason)


@contextmanager
def headless_chromium(width: int = 1400, height: int = 1000,
                      page_load_timeout_s: float = 60.0) -> Iterator:
    """A selenium Chrome driver on headless Chromium in a throw-away profile; quits on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError(missing_reason() or "chromium not found")
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="chromium-test-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(page_load_timeout_s)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_file(driver, path: str | Path) -> None:
    """Load a local HTML file through file:// (as a reader opening the book from disk)."""
    driver.get(Path(path).resolve().as_uri())


def wait_until(predicate: Callable[[], object], timeout_s: float = 10.0,
               what: str = "condition"):
    """Poll until predicate() is truthy and return its value; AssertionError after timeout."""
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def image_natural_widths(driver, css: str = "img") -> list[int]:
    """naturalWidth of every matching <img> (0 = not loaded or undecodable)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(function (i) { return i.complete ? i.naturalWidth : 0; });", css)


# Console errors that every Jupyter Book 1.x page (sphinx-book-theme) shows on its own, seen with
# jupyter-book 1.0.4 in Chromium 156; pass as `ignore` when testing book pages.
BOOK_THEME_NOISE = ("Identifier 'THEBE_JS_URL' has already been declared",
                    "Got invalid theme mode")


def severe_console_errors(driver, ignore: tuple[str, ...] = ()) -> list[str]:
    """Console messages at SEVERE level (JavaScript errors, failed loads) since the last call,
    less those containing any of the `ignore` substrings."""
    try:
        logs = driver.get_log("browser")
    except Exception:  # some drivers do not expose the log
        return []
    return [e["message"] for e in logs if e.get("level") == "SEVERE"
            and not any(pattern in e["message"] for pattern in ignore)]


def external_requests(driver) -> list[str]:
    """Resources the page asked for that are not local (not file:, data: or blob:) — an
    offline reader would not get them."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });")
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:"))]


def set_range_value(driver, element, value: int) -> None:
    """Move an <input type=range> as a user would: set it, then fire 'input' and 'change'."""
    driver.execute_script(
        "arguments[0].value = String(arguments[1]);"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", element, value)


def select_index(element, index: int) -> None:
    """Choose the index-th <option> of a <select> (fires 'change' like a user would)."""
    from selenium.webdriver.support.ui import Select

    Select(element).select_by_index(index)
