"""One store of runs (CNN, GBDT, JAM, baselines) that notebooks read instead of retraining.

Layout: data/results/<profile>/<kind>/<name>/ with::

    config.json       the fully resolved configuration of the run
    meta.json         device, timings, code version, command, data source, dataset path
    metrics.json      test metrics: {"targets": {X: metrics.target_metrics(pred, true, type)}}
                      (bias and scatter in dex for all, early and late types), plus extras
    predictions.csv   test-set predictions beside the truths, one row per sample: columns
                      galaxy_id, projection, galaxy_type, inclination_deg, then for each target
                      X: true_X and pred_X (log10 values); a quantity derived from other
                      predictions (f_DM from M* and M_tot) as pred_X_derived beside true_X
    history.csv       per-epoch (or per-round) losses, if the model has them
    extra/            anything else the model wants to keep (importances, checkpoints)

A run is complete when metrics.json exists. An entry is written whole: into a temporary
directory beside it, then renamed over the old one, so a crash never leaves files of two runs
side by side; a lock (<entry>.lock) keeps two live runs from writing the same entry.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis_lib import __version__
from analysis_lib.io import (
    atomic_directory,
    atomic_write_csv,
    atomic_write_text,
    output_lock,
    short_hash,
)
from analysis_lib.paths import RESULTS_DIR

__all__ = ["ResultsStore", "Run", "atomic_write_csv", "atomic_write_text", "prediction_pairs",
           "run_fingerprint", "environment_info"]


def prediction_pairs(predictions: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Target -> (true column, predicted column) of a predictions table in the store convention.

    'true_X'/'pred_X' gives target X; 'pred_X_derived' scored against 'true_X' gives target
    'X_derived' (the CNN runs' f_DM and M*/L_r, as named in the experiments' 'paper' mapping).
    A column without its partner is ignored.
    """
    cols = set(predictions.columns)
    pairs: dict[str, tuple[str, str]] = {}
    for col in predictions.columns:
        if col.startswith("true_") and f"pred_{col[5:]}" in cols:
            pairs[col[5:]] = (col, f"pred_{col[5:]}")
    for col in predictions.columns:
        base = col[5:-8]
        if col.startswith("pred_") and col.endswith("_derived") and f"true_{base}" in cols:
            pairs[f"{base}_derived"] = (f"true_{base}", col)
    return pairs


def run_fingerprint(**parts) -> str:
    """Short stable hash of what a run depends on (dataset identity, settings, experiment)."""
    return short_hash(parts, 16)


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


def environment_info() -> dict:
    """Where a run happened: enough to reproduce or to compare timings fairly."""
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "code_version": __version__, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime())}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


@dataclass
class Run:
    """A stored run, as notebooks see it."""

    kind: str
    name: str
    profile: str
    path: Path
    config: dict
    meta: dict
    metrics: dict
    predictions: pd.DataFrame
    history: pd.DataFrame | None


class ResultsStore:
    """Runs under data/results/<profile>/<kind>/<name>/ (root configurable for tests)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else RESULTS_DIR

    def run_dir(self, kind: str, name: str, profile: str) -> Path:
        return self.root / profile / kind / name

    def exists(self, kind: str, name: str, profile: str, fingerprint: str | None = None) -> bool:
        """A complete run; with a fingerprint, only one made from the same inputs and settings.

        The fingerprint (see `run_fingerprint`) hashes the dataset's content and every setting
        that changes the result, so a stored run of an older dataset is redone, not reused.
        """
        d = self.run_dir(kind, name, profile)
        if not (d / "metrics.json").exists():
            return False
        if fingerprint is None:
            return True
        try:
            stored = json.loads((d / "meta.json").read_text()).get("fingerprint")
        except (OSError, ValueError):
            return False
        return stored == fingerprint

    def lock(self, kind: str, name: str, profile: str):
        """Context manager holding this entry's lock (refuses, naming the holder, when busy).

        Re-entrant in one process: a trainer holds it from the start of training, and `save`
        takes it again.
        """
        return output_lock(self.run_dir(kind, name, profile), f"store entry {kind}/{name}")

    def save(self, kind: str, name: str, profile: str, *, config: dict, metrics: dict,
             predictions: pd.DataFrame, history: pd.DataFrame | None = None,
             meta: dict | None = None, fingerprint: str | None = None,
             extra: Callable[[Path], None] | None = None, keep: tuple[str, ...] = ()) -> Path:
        """Write a finished run as one new entry: every file, then swap it in whole.

        `extra(entry_dir)` writes model-specific files into the new entry before it replaces
        the old one (never beside an older run's metrics). `keep` names relative paths of the
        old entry to carry over (caches, e.g. JAM's per-sample fits).
        """
        d = self.run_dir(kind, name, profile)
        with self.lock(kind, name, profile), atomic_directory(d, keep=keep) as tmp:
            (tmp / "config.json").write_text(_json(config))
            (tmp / "meta.json").write_text(_json({**environment_info(), "command": " ".join(
                sys.argv), **(meta or {}), "fingerprint": fingerprint}))
            predictions.to_csv(tmp / "predictions.csv", index=False)
            if history is not None:
                history.to_csv(tmp / "history.csv", index=False)
            if extra is not None:
                (tmp / "extra").mkdir(exist_ok=True)
                extra(tmp)
            (tmp / "metrics.json").write_text(_json(metrics))
        return d

    def load(self, kind: str, name: str, profile: str) -> Run:
        d = self.run_dir(kind, name, profile)
        if not (d / "metrics.json").exists():
            raise FileNotFoundError(f"no complete {kind} run '{name}' for profile '{profile}' "
                                    f"in {d}")
        hist = d / "history.csv"
        return Run(kind=kind, name=name, profile=profile, path=d,
                   config=json.loads((d / "config.json").read_text()),
                   meta=json.loads((d / "meta.json").read_text()),
                   metrics=json.loads((d / "metrics.json").read_text()),
                   predictions=pd.read_csv(d / "predictions.csv"),
                   history=pd.read_csv(hist) if hist.exists() else None)

    def list_runs(self, kind: str | None = None, profile: str | None = None) -> pd.DataFrame:
        """One row per complete run: profile, kind, name, path."""
        rows = []
        for m in sorted(self.root.glob("*/*/*/metrics.json")):
            prof, knd, name = m.parent.parent.parent.name, m.parent.parent.name, m.parent.name
            if (kind is None or knd == kind) and (profile is None or prof == profile):
                rows.append({"profile": prof, "kind": knd, "name": name, "path": str(m.parent)})
        return pd.DataFrame(rows, columns=["profile", "kind", "name", "path"])
