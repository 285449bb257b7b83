"""Compare two results stores value by value: did a refactoring change any number?

Usage: python tools/compare_stores.py ROOT_A ROOT_B

Every file of every run entry (<profile>/<kind>/<name>/...) is compared: JSON files value by
value (floats exactly, NaN equal to NaN), CSV files cell by cell as written (the text of a float
is its round-trip repr, so equal text is equal bits), anything else byte for byte. Fields that
record when, where or how fast a run went (timestamps, timings, the command line, the machine
and library versions) differ between any two runs and are ignored; the table's last column
says which were ignored in each file. Prints one row per file and exits 1 on any difference
(or a file that only one store has), 0 otherwise.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

# environment: where and with what a run happened (top level of meta.json only: 'shap' is also
# an importance column of the results)
ENVIRONMENT = {"python", "platform", "machine", "cpu_count", "code_version", "torch", "gpu",
               "lightgbm", "shap", "scikit-learn", "command", "time_utc", "device_name"}
# timings: how long it took (never the same twice)
TIMING_KEYS = {"timings", "wall_s", "wall_seconds", "wall_seconds_this_call", "seconds",
               "first_step_s", "epoch_s", "timings_quantile_s", "seconds_per_fit_median",
               "train_s_this_call"}
# files that are not results: locks and checkpoints left while a run is live
SKIP_FILES = (".lock",)


def _timing(key: str) -> bool:
    """A timing field: a known name, or one named seconds_*, *_seconds or *_s (seconds_mge,
    input_reading.read_s)."""
    return (key in TIMING_KEYS or key.startswith("seconds_") or key.endswith("_seconds")
            or key.endswith("_s"))


def _flatten(obj, prefix: str, out: dict, ignored: set, environment: set) -> None:
    if isinstance(obj, dict | list) and not obj:
        out[prefix] = obj  # an empty container is a value too
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if _timing(str(k)) or (not prefix and str(k) in environment):
                ignored.add(str(k))
                continue
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, ignored, set())
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}[{i}]", out, ignored, set())
    else:
        out[prefix] = obj


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def compare_json(a: Path, b: Path) -> tuple[list[str], int, set]:
    """Differences (key paths), values compared, and the ignored keys of two JSON files."""
    fa, fb, ignored = {}, {}, set()
    env = ENVIRONMENT if a.name == "meta.json" else set()
    _flatten(json.loads(a.read_text()), "", fa, ignored, env)
    _flatten(json.loads(b.read_text()), "", fb, ignored, env)
    diffs = [k for k in sorted(set(fa) | set(fb))
             if k not in fa or k not in fb or not _same(fa[k], fb[k])]
    return diffs, len(set(fa) | set(fb)), ignored


def compare_csv(a: Path, b: Path) -> tuple[list[str], int, set]:
    """Differences (column names or 'rows'), cells compared, and the ignored columns."""
    with a.open() as fa, b.open() as fb:
        ra, rb = list(csv.reader(fa)), list(csv.reader(fb))
    if not ra or not rb:
        return ([] if ra == rb else ["content"]), 0, set()
    head_a, head_b = ra[0], rb[0]
    ignored = {c for c in head_a + head_b if _timing(c)}
    if head_a != head_b:
        return [f"columns {head_a} != {head_b}"], 0, ignored
    if len(ra) != len(rb):
        return [f"rows {len(ra) - 1} != {len(rb) - 1}"], 0, ignored
    keep = [i for i, c in enumerate(head_a) if c not in ignored]
    diffs = sorted({head_a[i] for ia, ib in zip(ra[1:], rb[1:], strict=True) for i in keep
                    if ia[i] != ib[i]})
    return diffs, len(keep) * (len(ra) - 1), ignored


def compare_file(a: Path, b: Path) -> tuple[list[str], int, set]:
    if a.suffix == ".json":
        return compare_json(a, b)
    if a.suffix == ".csv":
        return compare_csv(a, b)
    same = a.read_bytes() == b.read_bytes()
    return ([] if same else ["bytes"]), 1, set()


def entry_files(root: Path) -> set[str]:
    """Relative paths of every file inside a complete run entry of the store."""
    files = set()
    for metrics in root.glob("*/*/*/metrics.json"):
        entry = metrics.parent
        for f in entry.rglob("*"):
            if f.is_file() and not f.name.endswith(SKIP_FILES):
                files.add(str(f.relative_to(root)))
    return files


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root_a, root_b = Path(argv[0]), Path(argv[1])
    files_a, files_b = entry_files(root_a), entry_files(root_b)
    if not files_a and not files_b:
        print(f"no complete runs in {root_a} or {root_b}", file=sys.stderr)
        return 2
    width = max(len(f) for f in files_a | files_b)
    print(f"{'file':{width}s}  {'status':6s}  {'values':>7s}  ignored")
    bad = 0
    all_ignored: set = set()
    for rel in sorted(files_a | files_b):
        if rel not in files_a or rel not in files_b:
            where = root_a if rel in files_a else root_b
            print(f"{rel:{width}s}  {'ONLY':6s}  {'':>7s}  only in {where}")
            bad += 1
            continue
        diffs, n, ignored = compare_file(root_a / rel, root_b / rel)
        all_ignored |= ignored
        status = "same" if not diffs else "DIFF"
        bad += bool(diffs)
        note = ", ".join(sorted(ignored)) or "-"
        if diffs:
            note = f"differs in: {', '.join(diffs[:8])}" + (" ..." if len(diffs) > 8 else "")
        print(f"{rel:{width}s}  {status:6s}  {n:7d}  {note}")
    print(f"\n{len(files_a | files_b)} files, {bad} differing; ignored fields (timestamps, "
          f"timings, environment): {', '.join(sorted(all_ignored)) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
