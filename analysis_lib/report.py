"""Tables that put this study's numbers beside the paper's, with the data source in every row.

Mock numbers are never presented as TNG numbers: each row carries the source and profile of the
dataset it came from, and the paper's TNG100 numbers sit in their own, labelled columns.
"""

from __future__ import annotations

import pandas as pd

from analysis_lib.paths import REFERENCE_DIR
from analysis_lib.results import ResultsStore, Run

SOURCE_LABELS = {"mock": "mock universe (this library)", "tng": "IllustrisTNG100",
                 "synthetic": "synthetic test data"}


def paper_results() -> pd.DataFrame:
    """The paper's headline numbers (Tables 4 and 6 and the text), one row each."""
    return pd.read_csv(REFERENCE_DIR / "paper_results.csv")


def paper_row(section: str, method: str, inputs: str, target: str) -> pd.Series | None:
    """The paper's row matching (section, method, inputs, target), or None."""
    table = paper_results()
    sel = ((table.section.astype(str) == str(section)) & (table.method == method)
           & (table.inputs == inputs) & (table.target == target))
    return table[sel].iloc[0] if sel.any() else None


def data_label(run: Run) -> str:
    """'mock universe (this library), quick profile' and the like."""
    source = run.config.get("data", {}).get("source", run.meta.get("source", "?"))
    return f"{SOURCE_LABELS.get(source, source)}, {run.profile} profile"


def comparison_table(runs: list[Run]) -> pd.DataFrame:
    """One row per (run, target): our bias and scatter beside the paper's, source named."""
    rows = []
    for run in runs:
        for target, m in run.metrics.get("targets", {}).items():
            ref = m.get("paper") or {}
            rows.append({
                "experiment": run.name, "target": target,
                "bias (dex)": m.get("all", {}).get("bias"),
                "sigma (dex)": m.get("all", {}).get("sigma"),
                "N test": m.get("all", {}).get("n"),
                "data": data_label(run),
                "paper bias (TNG100)": ref.get("bias_dex"),
                "paper sigma (TNG100)": ref.get("sigma_dex"),
            })
    return pd.DataFrame(rows)


def load_runs(kind: str, profile: str, names: list[str] | None = None,
              store: ResultsStore | None = None) -> list[Run]:
    """Complete runs of a kind for a profile (optionally only the named ones)."""
    store = store or ResultsStore()
    listed = store.list_runs(kind=kind, profile=profile)
    wanted = names if names is not None else list(listed.name)
    return [store.load(kind, n, profile) for n in wanted if store.exists(kind, n, profile)]
