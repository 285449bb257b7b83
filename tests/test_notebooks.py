"""The committed notebooks are the source of truth: edited as notebooks, committed without outputs.

Nothing generates them, so these checks keep them clean: valid nbformat, no outputs or execution
counts (diffs show only what a person changed), exactly one cell tagged ``parameters`` (what
papermill and the book's parameter handling need), and every notebook is one the book runs.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from analysis_lib.paths import REPO_ROOT
from analysis_lib.presentation.publish import NOTEBOOK_DIR, NOTEBOOK_ORDER

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_valid_and_clean(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)  # raises with the offending field
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them"
    run_state = sorted({"widgets", "papermill"} & set(nb.metadata))
    assert not run_state, f"{path.name}: notebook metadata {run_state} from a run; remove it"
    timed = [i for i, c in enumerate(nb.cells) if {"execution", "papermill"} & set(c.metadata)]
    assert not timed, f"{path.name}: cells {timed} keep run metadata (execution/papermill)"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: cells tagged 'parameters': {tagged} (want one)"
    assert nb.cells[tagged[0]].cell_type == "code"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cell_ids_are_unique(path: Path):
    nb = nbformat.read(path, as_version=4)
    ids = [c.get("id") for c in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{path.name}: missing or repeated cell ids"


def test_every_notebook_is_run_by_the_book_and_listed_in_the_toc():
    names = {p.stem for p in NOTEBOOKS}
    assert names == set(NOTEBOOK_ORDER), names ^ set(NOTEBOOK_ORDER)
    toc = (REPO_ROOT / "_toc.yml").read_text()
    missing = [n for n in NOTEBOOK_ORDER if f"book/executed/{n}\n" not in toc + "\n"]
    assert not missing, f"_toc.yml lacks {missing}"
