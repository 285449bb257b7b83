"""Book timings keep the from-scratch cost of each notebook when a cheap rebuild reuses results."""

from __future__ import annotations

import json

import pytest

from analysis_lib import paths
from analysis_lib.presentation import publish as book
from analysis_lib.presentation import report

PROFILE = "test"


def _entry(root, name):
    return book.read_timings(book.timings_path(PROFILE, root))["notebooks"][name]


def test_old_flat_format_is_read(tmp_path):
    path = book.timings_path(PROFILE, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"02_data": 15.2, "04_cnn_mstar": 481.0}))
    table = report.book_timings(PROFILE, root=tmp_path)
    assert list(table.notebook[:2]) == ["02_data", "04_cnn_mstar"]
    assert list(table["latest [s]"][:2]) == [15.2, 481.0]
    assert list(table["from scratch [s]"][:2]) == [15.2, 481.0]
    assert table["latest reused stored results"][:2].isna().all()  # unknown in the old format
    total = table.iloc[-1]
    assert total.notebook.startswith("total")
    assert total["latest [s]"] == pytest.approx(496.2)
    assert total["from scratch [s]"] == pytest.approx(496.2)
    # a cheap rerun after an old-format file does not hide the old (longer) time
    book._write_timings(PROFILE, "04_cnn_mstar", 40.0, written=0, root=tmp_path)
    e = _entry(tmp_path, "04_cnn_mstar")
    assert e["latest"]["seconds"] == 40.0 and e["latest"]["reused"] is True
    assert e["from_scratch"]["seconds"] == 481.0


def test_cheap_rerun_keeps_from_scratch_time(tmp_path):
    book._write_timings(PROFILE, "04_cnn_mstar", 481.04, written=3, build_id="b1",
                        build_size=8, root=tmp_path)
    book._write_timings(PROFILE, "04_cnn_mstar", 40.0, written=0, build_id="b2", build_size=8,
                        root=tmp_path)
    e = _entry(tmp_path, "04_cnn_mstar")
    assert e["latest"] == {**e["latest"], "seconds": 40.0, "reused": True, "written": 0}
    assert e["from_scratch"]["seconds"] == 481.0 and e["from_scratch"]["reused"] is False
    assert e["latest"]["utc"].endswith("Z")
    table = report.book_timings(PROFILE, root=tmp_path)
    row = table.set_index("notebook").loc["04_cnn_mstar"]
    assert row["latest [s]"] == 40.0 and row["from scratch [s]"] == 481.0
    assert bool(row["latest reused stored results"]) is True
    total = table.iloc[-1]
    assert "latest build, started b2: 1 of 8 notebooks" in total.notebook
    assert total["latest [s]"] == 40.0 and total["from scratch [s]"] == 481.0
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically


def test_longer_or_complete_run_replaces_from_scratch(tmp_path):
    book._write_timings(PROFILE, "05_gbdt", 100.0, written=2, root=tmp_path)  # interrupted
    book._write_timings(PROFILE, "05_gbdt", 150.0, written=4, root=tmp_path)  # longer, more work
    assert _entry(tmp_path, "05_gbdt")["from_scratch"]["seconds"] == 150.0
    book._write_timings(PROFILE, "05_gbdt", 90.0, written=2, root=tmp_path)  # a partial redo
    assert _entry(tmp_path, "05_gbdt")["from_scratch"]["seconds"] == 150.0
    book._write_timings(PROFILE, "05_gbdt", 170.0, written=0, root=tmp_path)  # slow, reused all
    assert _entry(tmp_path, "05_gbdt")["from_scratch"]["seconds"] == 150.0
    book._write_timings(PROFILE, "05_gbdt", 60.0, written=4, root=tmp_path)  # complete, faster
    assert _entry(tmp_path, "05_gbdt")["from_scratch"]["seconds"] == 60.0
    # notebooks that never write results (or old records): the longest run counts
    book._write_timings(PROFILE, "07_reproducibility", 3.0, written=0, root=tmp_path)
    book._write_timings(PROFILE, "07_reproducibility", 5.0, written=0, root=tmp_path)
    book._write_timings(PROFILE, "07_reproducibility", 4.0, written=0, root=tmp_path)
    e = _entry(tmp_path, "07_reproducibility")
    assert e["from_scratch"]["seconds"] == 5.0 and e["latest"]["seconds"] == 4.0


def test_build_book_records_reuse_from_the_store(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "DATASETS_DIR", tmp_path / "datasets")
    clock = iter([0.0, 300.0, 300.0, 310.0, 400.0, 410.0, 410.0, 411.0])
    monkeypatch.setattr(book.time, "perf_counter", lambda: next(clock))

    def fake_execute(name, params):
        if name == "05_gbdt":  # trains once, then finds its run in the store
            run = tmp_path / "results" / PROFILE / "gbdt" / "mstar_default" / "metrics.json"
            if not run.exists():
                run.parent.mkdir(parents=True)
                run.write_text("{}")

    monkeypatch.setattr(book, "execute_notebook", fake_execute)
    cfg = {"profile": PROFILE}
    book.build_book(cfg, notebooks=["05_gbdt", "07_reproducibility"], build=False)
    book.build_book(cfg, notebooks=["05_gbdt", "07_reproducibility"], build=False)
    table = report.book_timings(PROFILE).set_index("notebook")
    gbdt = table.loc["05_gbdt"]
    assert gbdt["latest [s]"] == 10.0 and bool(gbdt["latest reused stored results"])
    assert gbdt["from scratch [s]"] == 300.0
    assert not bool(gbdt["from-scratch run reused stored results"])
    assert table.iloc[-1]["latest [s]"] == 11.0
    assert table.iloc[-1]["from scratch [s]"] == 310.0
    assert "2 of 2 notebooks" in table.index[-1]


def test_snapshot_counts_new_and_rewritten_results(tmp_path):
    before = book.results_snapshot(PROFILE, root=tmp_path, datasets=tmp_path / "none")
    run = tmp_path / PROFILE / "cnn" / "x" / "metrics.json"
    run.parent.mkdir(parents=True)
    run.write_text("{}")
    after = book.results_snapshot(PROFILE, root=tmp_path, datasets=tmp_path / "none")
    assert book.changed_results(before, after) == 1
    assert book.changed_results(after, after) == 0


def test_budget_verdict_uses_the_from_scratch_cost(tmp_path):
    book._write_timings(PROFILE, "02_data", 600.0, written=1, root=tmp_path)
    book._write_timings(PROFILE, "04_cnn_mstar", 1500.0, written=3, root=tmp_path)
    book._write_timings(PROFILE, "04_cnn_mstar", 30.0, written=0, root=tmp_path)  # cheap rerun
    cfg = {"profile": PROFILE, "book": {"budget_minutes": 45}}
    verdict = book.budget_verdict(cfg, root=tmp_path)
    assert "2 notebooks take 35.0 min" in verdict and "within the profile's budget of 45" in verdict
    assert "OVER" in book.budget_verdict({**cfg, "book": {"budget_minutes": 30}}, root=tmp_path)
    assert "sets no budget" in book.budget_verdict({**cfg, "book": {}}, root=tmp_path)


def test_benchmark_summary_has_a_row_for_every_result_file(tmp_path):
    src = paths.RESULTS_DIR / "benchmarks"
    for f in src.glob("*.json"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "new_thing.json").write_text(json.dumps({"answer": 42}))
    table = report.benchmark_summary(tmp_path)
    assert set(table.benchmark) == {f.stem for f in tmp_path.glob("*.json")}
    assert table.loc[table.benchmark == "new_thing", "figure"].item() == "see new_thing.json"
    speedups = table[table.figure == "speed-up over pynbody (one band)"]["value"]
    assert len(speedups) >= 1 and (speedups > 0).all()


def test_snapshot_counts_variant_runs_and_nested_datasets(tmp_path):
    """A chapter that trains on a variant (quick+manga_like) or builds datasets in a sub-folder
    did work; the snapshot must see it, or a cheap rerun would pass for a from-scratch run."""
    from analysis_lib.presentation.publish import changed_results, results_snapshot

    results, datasets = tmp_path / "results", tmp_path / "datasets"
    (datasets / "coverage").mkdir(parents=True)
    before = results_snapshot("quick", results, datasets)
    for label in ("quick", "quick+manga_like", "smoke+manga_like"):
        entry = results / label / "cnn" / "x"
        entry.mkdir(parents=True)
        (entry / "metrics.json").write_text("{}")
    (datasets / "coverage" / "quick_manga_like.h5").write_text("")
    after = results_snapshot("quick", results, datasets)
    assert changed_results(before, after) == 3  # quick, quick+manga_like, the nested dataset


# --------------------------------------------------------------------------- progress bars

_BAR = ("import sys\nfrom tqdm.auto import tqdm\nfrom analysis_lib.io import tqdm_options\n"
        "for _ in tqdm(range(3), desc='probe', file=sys.stderr, **tqdm_options(True)): pass\n")


def _bar_output(env_extra: dict) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"} | env_extra
    proc = subprocess.run([sys.executable, "-c", _BAR], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_library_bars_show_on_the_cli_and_not_in_book_kernels():
    """Why: the book's kernels get TQDM_DISABLE (publish.KERNEL_ENV) and a bar asked for by
    library code (progress=True) must still honour it, while the CLI keeps its bars."""
    assert book.KERNEL_ENV["TQDM_DISABLE"] == "1"
    assert "probe" in _bar_output({})
    assert "probe" not in _bar_output({"TQDM_DISABLE": book.KERNEL_ENV["TQDM_DISABLE"]})


def test_notebook_bars_honour_the_book_switch(monkeypatch):
    """Why: in a kernel tqdm.auto is tqdm.notebook, which always passes disable=False and so
    ignores TQDM_DISABLE; the executed 2026-12-03 quick book held 8 empty bar widgets in
    chapter 6. tqdm_options must switch such a bar off itself."""
    from tqdm.notebook import tqdm as notebook_tqdm

    from analysis_lib.io import tqdm_options

    monkeypatch.setenv("TQDM_DISABLE", book.KERNEL_ENV["TQDM_DISABLE"])
    assert tqdm_options(True) == {"disable": True}
    bar = notebook_tqdm(range(3), **tqdm_options(True))
    assert bar.disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert tqdm_options(True) == {}
    monkeypatch.delenv("TQDM_DISABLE")
    assert tqdm_options(True) == {} and tqdm_options(False) == {"disable": True}


def test_progress_lines_follow_the_bars(monkeypatch, capsys):
    """Why: the quick book printed "[cnn seeds] ..." and "[cnn ensemble 1/5] ..." lines into
    chapters 4 and 6; they announce bars and must vanish with them, and show where bars show."""
    from analysis_lib.io import progress_note

    monkeypatch.setenv("TQDM_DISABLE", book.KERNEL_ENV["TQDM_DISABLE"])
    progress_note("[cnn 1/2] hidden")
    monkeypatch.delenv("TQDM_DISABLE")
    progress_note("[cnn 2/2] shown")
    progress_note("[cnn 3/2] unwanted", progress=False)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "shown" in text
    assert "hidden" not in text and "unwanted" not in text
