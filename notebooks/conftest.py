"""nbval runs the chapter notebooks (``pytest --nbval-lax notebooks/``) in the smoke profile.

Why a hook and not an environment variable read by the notebooks: the parameters cell a reader
sees stays plain literals (``profile = "quick"``), and the test sets the profile the way papermill
does, by running assignments right after the notebook's own parameters cell. The profile is
``smoke`` unless ANALYSIS_NBVAL_PROFILE names another.

The kernels write into the pytest session's smoke data directory (``<basetemp>/smoke-data``, the
one tests/test_book_smoke.py builds the smoke book in), never into data/: when the book test ran
first in the same session, the notebooks reuse its stored runs instead of training again, so nbval
checks that every notebook runs top to bottom in a plain kernel without doubling the suite's time.
Each cell is one test item, marked ``notebooks`` and ``slow``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SMOKE_DATA = "smoke-data"  # the same folder name as tests/conftest.py's smoke_data_dir fixture
KERNEL_ENV = {
    # figures reach the cell output, as in JupyterLab, whatever MPLBACKEND the caller exported
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


def nbval_profile() -> str:
    return os.environ.get("ANALYSIS_NBVAL_PROFILE", "smoke")


def _is_notebook_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell" and HERE in Path(str(item.path)).parents


def smoke_data_dir(config: pytest.Config) -> Path:
    """The session's smoke data folder (created if needed), shared with the smoke book test;
    ANALYSIS_TEST_SMOKE_DATA names a folder to keep between sessions instead."""
    factory = getattr(config, "_tmp_path_factory", None)
    base = Path(factory.getbasetemp()) if factory is not None else Path(
        tempfile.mkdtemp(prefix="nbval-"))
    kept = os.environ.get("ANALYSIS_TEST_SMOKE_DATA")
    path = Path(kept) if kept else base / SMOKE_DATA
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not _is_notebook_cell(item):
            continue
        item.add_marker(pytest.mark.notebooks)
        item.add_marker(pytest.mark.slow)
        if "parameters" in item.cell.metadata.get("tags", []):
            item.cell.source += (f"\n\n# injected by notebooks/conftest.py for nbval\n"
                                 f"profile = {nbval_profile()!r}\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    """The notebook's kernel starts in the first cell's setup: give it the test environment."""
    if not _is_notebook_cell(item):
        yield
        return
    env = {**KERNEL_ENV, "ANALYSIS_LIB_DATA": str(smoke_data_dir(item.config))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
