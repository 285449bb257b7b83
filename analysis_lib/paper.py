"""The paper's numbers, in one place: book/reference/paper_results.csv and its lookup.

Every table or stored run that sets a number beside the paper's reads it through `paper_row`, so
a key that names no paper number fails loudly instead of printing a blank.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis_lib.paths import REFERENCE_DIR


def paper_results(path: Path | None = None) -> pd.DataFrame:
    """The paper's headline numbers (Tables 4 and 6 and the text), one row each."""
    return pd.read_csv(path or REFERENCE_DIR / "paper_results.csv", dtype={"section": str})


def paper_row(section: str, method: str, inputs: str, target: str,
              path: Path | None = None) -> dict | None:
    """The paper's row for (section, method, inputs, target): bias and sigma in dex (None where
    the paper gives none) and its note; None when the reference file is absent.

    Strict: a key that matches no row, or several, is a configuration error (an experiment
    pointing at a paper number that does not exist), so it raises ValueError naming the file.
    """
    path = path or REFERENCE_DIR / "paper_results.csv"
    if not path.exists():
        return None
    table = paper_results(path)
    sel = table[(table["section"] == str(section)) & (table["method"] == method)
                & (table["inputs"] == inputs) & (table["target"] == target)]
    if len(sel) != 1:
        raise ValueError(f"{path}: ({section}, {method}, {inputs}, {target}) matches "
                         f"{len(sel)} rows, not 1")
    row = sel.iloc[0]

    def num(v) -> float | None:
        return None if pd.isna(v) else float(v)

    return {"section": str(section), "inputs": inputs, "target": target,
            "bias": num(row["bias_dex"]), "sigma": num(row["sigma_dex"]),
            "note": "" if pd.isna(row["note"]) else str(row["note"])}
