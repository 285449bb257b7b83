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
import tempfile
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
    "02_mock_universe",
    "02_observations",
    "03_methods",
    "04_cnn_mstar",
    "04_cnn_mtot",
    "04_cnn_joint",
    "04_cnn_ml",
    "05_gbdt",
    "05_survey",
    "06_jam",
    "06_beyond",
    "06_discussion",
    "07_reproducibility",
)


class BookError(RuntimeError):
    """A notebook that failed, or a book build that failed; the message says which and where."""


def notebook_path(name: str) -> Path:
    """notebooks/<name>.ipynb; FileNotFoundError naming the notebooks there if it is absent."""
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    if not path.exists():
        have = ", ".join(p.stem for p in sorted(NOTEBOOK_DIR.glob("*.ipynb")))
        raise FileNotFoundError(f"{path}: no such notebook (have {have})")
    return path


def execute_notebook(name: str, parameters: dict, out_dir: Path = EXECUTED_DIR,
                     log_output: bool = False) -> Path:
    """Execute one notebook with papermill into out_dir, atomically (analysis_lib.io).

    The executed copy appears under its final name only complete; a notebook that fails leaves
    its partly executed copy beside it as ``.<name>.failed.ipynb`` (named in the error), which
    the book never reads (_config.yml excludes book/executed/.*).
    """
    from analysis_lib.io import atomic_write

    src = notebook_path(name)
    out = out_dir / src.name

    def run_into(tmp: Path) -> None:
        _run_papermill(src, tmp, parameters, log_output)
        _drop_widget_state(tmp)
        show_parameters_once(tmp, parameters)

    return atomic_write(out, run_into, suffix=".running.ipynb")


# What the notebook kernels see in their environment, whatever the caller's. Figures must reach
# the notebook: a headless MPLBACKEND=Agg would swallow them, so the kernel gets the inline
# backend. TQDM_DISABLE is the one switch for progress bars in the book: a bar in a kernel is an
# ipywidget, whose saved state makes the static page load the widget manager from a CDN (the
# book shows notebook-level progress instead). Library code honours it by passing `disable`
# only to switch a bar off (analysis_lib.io.tqdm_options); the CLI keeps its bars.
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "TQDM_DISABLE": "1"}


def _run_papermill(src: Path, tmp: Path, parameters: dict, log_output: bool) -> None:
    """papermill `src` into `tmp` in a kernel with KERNEL_ENV; BookError on a failed cell."""
    import papermill as pm
    from jupyter_client.manager import KernelManager

    old = {k: os.environ.get(k) for k in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)
    # The kernel talks to us over local IPC sockets in a private temporary folder, not over
    # unencrypted TCP ports (which ipykernel rightly warns about at every start).
    sockets = tempfile.TemporaryDirectory(prefix="book-kernel-")
    km = KernelManager(kernel_name="python3", transport="ipc",
                       ip=os.path.join(sockets.name, "kernel"))
    try:
        pm.execute_notebook(str(src), str(tmp), parameters=parameters, cwd=str(NOTEBOOK_DIR),
                            kernel_name="python3", km=km, progress_bar=False,
                            log_output=log_output)
    except pm.PapermillExecutionError as exc:
        failed = tmp.with_name(f".{src.stem}.failed.ipynb")
        os.replace(tmp, failed)
        raise BookError(f"notebook {src.name} failed in cell [{exc.exec_count}]: {exc.ename}: "
                        f"{exc.evalue} (the partly executed copy is {failed})") from exc
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=False)
        sockets.cleanup()
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def merge_parameters(source: str, parameters: dict) -> str:
    """The parameters cell's source with each injected value in place of its default.

    Why: papermill runs the notebook's own parameters cell and then an injected cell that
    overrides some of them, so a page showing both states the parameters twice and the reader
    must work out which values won. Merged, one cell shows every parameter with the value the
    run actually used; a changed line keeps the notebook's default in a comment. Parameters the
    notebook does not define are appended, as papermill's cell defines them too.
    """
    import ast

    from papermill.translators import PythonTranslator

    lines = source.splitlines()
    spans = {}
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign | ast.AnnAssign) and node.end_lineno is not None
                and isinstance(target := (node.targets[0] if isinstance(node, ast.Assign)
                                          else node.target), ast.Name)):
            spans[target.id] = (node.lineno - 1, node.end_lineno, node.value)
    replacements = []
    extra = []
    for name, value in parameters.items():
        literal = PythonTranslator.translate(value)
        if name not in spans:
            extra.append(f"{name} = {literal}  # set for this run")
            continue
        start, end, node = spans[name]
        default = ast.get_source_segment(source, node) if node is not None else None
        if default is not None and _same_value(default, value):
            continue
        note = f"  # set for this run; the notebook's default is {' '.join(default.split())}"
        replacements.append((start, end, f"{name} = {literal}{note if default else ''}"))
    for start, end, text in sorted(replacements, reverse=True):
        lines[start:end] = [text]
    return "\n".join(lines + extra)


def _same_value(default_source: str, value) -> bool:
    import ast

    try:
        return ast.literal_eval(default_source) == value
    except (ValueError, SyntaxError):
        return False


def show_parameters_once(path: Path, parameters: dict) -> None:
    """Make an executed notebook show one parameters cell, with the values the run used.

    The notebook's own ``parameters`` cell gets the injected values (merge_parameters) and
    papermill's ``injected-parameters`` cell is tagged ``remove-cell``, so Jupyter Book leaves it
    out of the page; the executed notebook itself still holds both cells as they ran.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    tagged = {tag: [c for c in nb.cells if tag in c.metadata.get("tags", [])]
              for tag in (PARAMETERS_TAG, INJECTED_TAG)}
    if not tagged[INJECTED_TAG] or not tagged[PARAMETERS_TAG]:
        return  # nothing injected, or papermill's cell is the only one: it stays visible
    injected = tagged[INJECTED_TAG][0]
    injected.metadata["tags"] = [*injected.metadata["tags"], "remove-cell"]
    cell = tagged[PARAMETERS_TAG][0]
    cell.source = merge_parameters(cell.source, parameters)
    nbformat.write(nb, path)


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
    build_id = _utc_now()
    for name in tqdm(names, desc=f"notebooks ({cfg['profile']})", unit="notebook"):
        before = results_snapshot(cfg["profile"])
        t0 = time.perf_counter()
        execute_notebook(name, params)
        seconds = time.perf_counter() - t0
        written = changed_results(before, results_snapshot(cfg["profile"]))
        _write_timings(cfg["profile"], name, seconds, written=written, build_id=build_id,
                       build_size=len(names))
    print(budget_verdict(cfg))
    return build_html() if build else None


def budget_verdict(cfg: dict, root: Path | None = None) -> str:
    """One sentence: the from-scratch cost of the profile's notebooks against its budget.

    The cost is the sum of each notebook's from-scratch run (book_timings.json), so it stays
    the cost of a fresh build after cheap rebuilds; it was measured on whatever machine ran them.
    """
    data = read_timings(timings_path(cfg["profile"], root))
    runs = [e.get("from_scratch") or {} for e in data["notebooks"].values()]
    minutes = sum(r.get("seconds") or 0.0 for r in runs) / 60.0
    budget = cfg.get("book", {}).get("budget_minutes")
    cost = (f"From scratch, the '{cfg['profile']}' profile's {len(runs)} notebooks take "
            f"{minutes:.1f} min on the machines that ran them (this one has {os.cpu_count()} "
            f"CPUs)")
    if budget is None:
        return cost + "; the profile sets no budget."
    verdict = "within" if minutes <= float(budget) else "OVER"
    return f"{cost}: {verdict} the profile's budget of {float(budget):.0f} min."


# ------------------------------------------------------------------------------ book timings
#
# data/results/<profile>/book_timings.json keeps, per notebook, its latest run and its
# "from-scratch" run, so a cheap rebuild that reuses stored results does not hide what a fresh
# build costs:
#   {"format": 2,
#    "notebooks": {name: {"latest": RUN, "from_scratch": RUN}},
#    "latest_build": {"id": UTC of its start, "notebooks": {name: seconds}, "seconds": total,
#                     "planned": number of notebooks asked for}}
# with RUN = {"seconds": wall seconds, "utc": when it finished, "written": result files (metrics
# of runs, dataset files) created or updated during the run, "reused": written == 0}.
# A run replaces the from-scratch one as _is_from_scratch decides: a run that did work beats one
# that reused everything, a complete redo replaces it, and otherwise the longer run wins. The
# entry's "most_written" is the most results any run of the notebook wrote. The old flat
# {name: seconds} format is read as runs of unknown kind ("reused": None), each both latest and
# from-scratch until a longer or complete run replaces it.

TIMINGS_FILE = "book_timings.json"


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def timings_path(profile: str, root: Path | None = None) -> Path:
    """The book-timings file of a profile in the results store (or under `root`, for tests)."""
    from analysis_lib.paths import RESULTS_DIR

    return Path(root if root is not None else RESULTS_DIR) / profile / TIMINGS_FILE


def results_snapshot(profile: str, root: Path | None = None,
                     datasets: Path | None = None) -> dict[str, int]:
    """Modification times of the profile's stored runs (metrics.json) and the dataset files.

    The profile's runs include those of its variants (store folders '<profile>+<variant>', see
    config.store_label) and datasets in sub-folders, so a chapter that trains on a variant
    counts the work it did.
    """
    from analysis_lib.paths import DATASETS_DIR, RESULTS_DIR

    base = Path(root if root is not None else RESULTS_DIR)
    datasets = Path(datasets if datasets is not None else DATASETS_DIR)
    files = list((base / profile).glob("*/*/metrics.json"))
    files += list(base.glob(f"{profile}+*/*/*/metrics.json"))
    files += [p for p in datasets.rglob("*") if p.is_file()] if datasets.is_dir() else []
    out = {}
    for path in files:
        try:
            out[str(path)] = path.stat().st_mtime_ns
        except FileNotFoundError:  # removed while we looked
            continue
    return out


def changed_results(before: dict[str, int], after: dict[str, int]) -> int:
    """How many result files are new or were rewritten between two snapshots."""
    return sum(1 for k, v in after.items() if before.get(k) != v)


def read_timings(path: Path) -> dict:
    """book_timings.json in the current format, converting the old flat {name: seconds} one."""
    import json

    empty = {"format": 2, "notebooks": {}, "latest_build": None}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return empty
    if isinstance(data, dict) and data.get("format") == 2:
        data.setdefault("notebooks", {})
        data.setdefault("latest_build", None)
        return data
    notebooks = {}
    for name, seconds in (data or {}).items():
        if isinstance(seconds, int | float):
            run = {"seconds": float(seconds), "utc": None, "written": None, "reused": None}
            notebooks[name] = {"latest": dict(run), "from_scratch": dict(run)}
    return {"format": 2, "notebooks": notebooks, "latest_build": None}


def record_timing(data: dict, name: str, seconds: float, *, written: int | None,
                  utc: str | None = None, build_id: str | None = None,
                  build_size: int | None = None) -> dict:
    """Add one notebook run to the timings (in place, and returned)."""
    utc = utc or _utc_now()
    run = {"seconds": round(float(seconds), 1), "utc": utc, "written": written,
           "reused": None if written is None else written == 0}
    entry = data["notebooks"].setdefault(name, {})
    entry["latest"] = run
    if _is_from_scratch(run, entry.get("from_scratch"), entry.get("most_written")):
        entry["from_scratch"] = dict(run)
    if written is not None:
        entry["most_written"] = max(written, entry.get("most_written") or 0)
    if build_id is not None:
        build = data.get("latest_build") or {}
        if build.get("id") != build_id:
            build = {"id": build_id, "notebooks": {}, "planned": build_size}
        build["notebooks"][name] = run["seconds"]
        build["seconds"] = round(sum(build["notebooks"].values()), 1)
        build["utc"] = utc
        data["latest_build"] = build
    return data


def _is_from_scratch(run: dict, best: dict | None, most_written: int | None) -> bool:
    """Whether a notebook run should replace the recorded from-scratch run.

    Where both runs say whether they wrote results, a run that reused everything never replaces
    one that did work, one that did work replaces one that reused everything, and one that redid
    at least as much as any run of the notebook ever did (a complete redo, e.g. on another
    machine) replaces it whatever its duration. Otherwise the longer run counts as the fuller one.
    """
    if best is None:
        return True
    new_w, old_w = run.get("written"), best.get("written")
    if new_w is not None and old_w is not None:
        if new_w == 0 and old_w > 0:
            return False
        if new_w > 0 and (old_w == 0 or new_w >= (most_written or 0)):
            return True
    return run["seconds"] > best["seconds"]


def _write_timings(profile: str, name: str, seconds: float, *, written: int | None = None,
                   build_id: str | None = None, build_size: int | None = None,
                   root: Path | None = None) -> dict:
    """Record one notebook's wall time (atomically), so the book can report the build's cost."""
    import json

    from analysis_lib.io import atomic_write_text

    path = timings_path(profile, root)
    data = record_timing(read_timings(path), name, seconds, written=written, build_id=build_id,
                         build_size=build_size)
    atomic_write_text(path, json.dumps(data, indent=1))
    return data
