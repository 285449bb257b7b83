"""The book's API reference (book/api.md, Sphinx autodoc) covers the package and imports cleanly.

Why: autodoc imports every module it documents while the book builds; a module left off the page
is invisible to a reader, a renamed one leaves an empty section, and a module that configures
galpy or colossus (or writes anything) at import time would do so on every book build.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from analysis_lib.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "analysis_lib"
API_PAGE = REPO_ROOT / "book" / "api.md"


def package_modules() -> set[str]:
    """Every module of analysis_lib by its file (no import), less the CLI's __main__."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def documented_modules() -> list[str]:
    return re.findall(r"^\.\. automodule:: (\S+)\s*$", API_PAGE.read_text(), re.M)


def test_the_api_page_documents_every_module_once():
    documented = documented_modules()
    assert len(documented) == len(set(documented)), "a module is documented twice"
    missing = sorted(package_modules() - set(documented))
    gone = sorted(set(documented) - package_modules())
    assert not missing, f"add to {API_PAGE.name}: {missing}"
    assert not gone, f"{API_PAGE.name} documents modules that no longer exist: {gone}"


def test_the_api_page_is_in_the_book():
    toc = (REPO_ROOT / "_toc.yml").read_text()
    assert re.search(r"^\s*- file: book/api\s*$", toc, re.M)
    config = (REPO_ROOT / "_config.yml").read_text()
    for extension in ("sphinx.ext.autodoc", "sphinx.ext.napoleon"):
        assert extension in config


@pytest.mark.slow
def test_documented_modules_import_without_side_effects(tmp_path):
    """What autodoc does during the book build: import each documented module in a fresh
    interpreter. Nothing may be written to the home folder but matplotlib's font cache
    (galpy's ~/.galpyrc and colossus' cache must wait for analysis_lib.offline)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "MPLBACKEND": "Agg"}
    for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR"):
        env.pop(key, None)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    proc = subprocess.run([sys.executable, "-c", code, *documented_modules()], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()
                     and not str(p.relative_to(home)).startswith((".cache/matplotlib",
                                                                  ".config/matplotlib")))
    assert not written, f"importing the documented modules wrote {written}"
    assert not list(tmp_path.glob("*.*")), "importing wrote into the working directory"
