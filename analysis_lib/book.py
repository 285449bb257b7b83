"""Run every notebook with papermill in dependency order, then build the Jupyter Book.

Notebooks in notebooks/ are kept without outputs; the executed copies go to book/executed/
(git-ignored), which _toc.yml points at, and Jupyter Book builds with execution off. Work whose
results already exist in the store is skipped by the notebooks themselves (the library checks the
store), so a rebuild after an interruption picks up where it stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from analysis_lib.paths import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "book" / "executed"
BUILD_DIR = REPO_ROOT / "_build"

# Dependency order: the data first, then the models that read it, then what compares them.
NOTEBOOK_ORDER = (
    "02_data",
    "04_cnn_mstar",
    "04_cnn_mtot",
    "04_cnn_joint",
    "04_cnn_ml",
    "05_gbdt",
    "06_jam",
    "07_reproducibility",
)


class BookError(RuntimeError):
    """A notebook that failed, or a book build that failed; the message says which and where."""


def notebook_path(name: str) -> Path:
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    if not path.exists():
        have = ", ".join(p.stem for p in sorted(NOTEBOOK_DIR.glob("*.ipynb")))
        raise FileNotFoundError(f"{path}: no such notebook (have {have})")
    return path


def execute_notebook(name: str, parameters: dict, out_dir: Path = EXECUTED_DIR,
                     log_output: bool = False) -> Path:
    """Execute one notebook with papermill into out_dir (atomically: temp file, then rename)."""
    import papermill as pm

    src = notebook_path(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / src.name
    tmp = out_dir / f".{src.stem}.running.ipynb"
    # Figures must reach the notebook: a headless MPLBACKEND=Agg inherited by the kernel would
    # swallow them, so the kernel gets the inline backend whatever the caller's setting.
    # Progress bars in a kernel become ipywidgets, whose saved state makes the static page load
    # the widget manager from a CDN; the book shows notebook-level progress instead.
    kernel_env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "TQDM_DISABLE": "1"}
    old = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    try:
        pm.execute_notebook(str(src), str(tmp), parameters=parameters, cwd=str(NOTEBOOK_DIR),
                            kernel_name="python3", progress_bar=False, log_output=log_output)
    except pm.PapermillExecutionError as exc:
        raise BookError(f"notebook {src.name} failed in cell [{exc.exec_count}]: {exc.ename}: "
                        f"{exc.evalue} (the partly executed copy is {tmp})") from exc
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _drop_widget_state(tmp)
    os.replace(tmp, out)
    return out


def _drop_widget_state(path: Path) -> None:
    """Remove saved ipywidget state: the static book must not need a widget manager."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if nb.metadata.pop("widgets", None) is not None:
        nbformat.write(nb, path)


def build_html(build_dir: Path = BUILD_DIR) -> Path:
    """Jupyter Book 1.x build of the repository root (execution off in _config.yml)."""
    cli = "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
    cmd = [sys.executable, "-c", cli, "build", str(REPO_ROOT), "--path-output",
           str(build_dir.parent)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise BookError(f"jupyter-book build failed:\n{tail}")
    return build_dir / "html" / "index.html"


def build_book(cfg: dict, notebooks: list[str] | None = None, build: bool = True,
               overrides: list[str] | None = None) -> Path | None:
    """Execute the notebooks for cfg's profile (with the same overrides), then build the book."""
    names = list(notebooks or NOTEBOOK_ORDER)
    params = {"profile": cfg["profile"], "overrides": list(overrides or [])}
    for name in tqdm(names, desc=f"notebooks ({cfg['profile']})", unit="notebook"):
        t0 = time.perf_counter()
        execute_notebook(name, params)
        _write_timings(cfg["profile"], {name: time.perf_counter() - t0})
    return build_html() if build else None


def _write_timings(profile: str, timings: dict[str, float]) -> None:
    """Keep how long each notebook took, so the book can report the build's cost."""
    import json

    from analysis_lib.paths import RESULTS_DIR
    from analysis_lib.results import atomic_write_text

    path = RESULTS_DIR / profile / "book_timings.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({k: round(v, 1) for k, v in timings.items()})
    atomic_write_text(path, json.dumps(old, indent=1))
