"""The paper's metric: mean and 1-sigma of log10(predicted/true), in dex."""

from __future__ import annotations

import numpy as np
import pandas as pd


def log_ratio_stats(pred_log: np.ndarray, true_log: np.ndarray) -> dict[str, float]:
    """Bias (mean) and scatter (std) of pred - true for log10 quantities, plus robust versions."""
    d = np.asarray(pred_log, dtype=float) - np.asarray(true_log, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return {"bias": float("nan"), "sigma": float("nan"), "n": 0,
                "median": float("nan"), "sigma_68": float("nan")}
    lo, hi = np.percentile(d, [15.865, 84.135])
    return {"bias": float(d.mean()), "sigma": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "n": int(len(d)), "median": float(np.median(d)), "sigma_68": float(0.5 * (hi - lo))}


def stats_by_group(pred_log: np.ndarray, true_log: np.ndarray, groups: np.ndarray,
                   labels: dict | None = None) -> pd.DataFrame:
    """The metric for all rows and per group (e.g. galaxy type), one row each."""
    rows = [{"group": "all", **log_ratio_stats(pred_log, true_log)}]
    for g in np.unique(groups):
        sel = groups == g
        rows.append({"group": (labels or {}).get(g, g),
                     **log_ratio_stats(np.asarray(pred_log)[sel], np.asarray(true_log)[sel])})
    return pd.DataFrame(rows)


TYPE_LABELS = {0: "late", 1: "early"}


def target_metrics(pred_log: np.ndarray, true_log: np.ndarray, galaxy_type: np.ndarray) -> dict:
    """The standard metrics block of metrics.json for one target: 'all', 'early', 'late'.

    Every model (CNN, GBDT, JAM, baselines) writes metrics.json as
    {"targets": {<target>: target_metrics(...) | {"paper": {...}}}, ...} so the book can
    compare them one to one.
    """
    pred_log, true_log = np.asarray(pred_log), np.asarray(true_log)
    galaxy_type = np.asarray(galaxy_type)
    out = {"all": log_ratio_stats(pred_log, true_log)}
    for code, label in TYPE_LABELS.items():
        sel = galaxy_type == code
        out[label] = log_ratio_stats(pred_log[sel], true_log[sel])
    return out
