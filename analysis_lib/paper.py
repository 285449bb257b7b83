"""The paper's numbers, in one place: book/reference/paper_results.csv and its lookup.

Every table or stored run that sets a number beside the paper's reads it through `paper_row`, so
a key that names no paper number fails loudly instead of printing a blank. `paper_method` is the
one mapping from a stored run's model kind to the paper's method name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis_lib.paths import REFERENCE_DIR

# A stored run's model kind -> the `method` column of paper_results.csv. Kinds the paper has no
# number for (JAM, a kind added later) are absent: `paper_method` answers None for them.
PAPER_METHOD = {"cnn": "cnn", "gbdt": "lightgbm", "lightgbm": "lightgbm",
                "baseline": "powerlaw"}


def paper_method(kind: str) -> str | None:
    """The paper's name for the method of a run of this model kind, or None.

    Why one mapping: the tables, the discussion and the explorers all set a run beside the
    paper's row, and a kind spelled differently in one of them would silently lose its number.

    Parameters
    ----------
    kind : str
        The run's model kind as the results store records it (``Run.kind``).

    Returns
    -------
    str or None
        The ``method`` of paper_results.csv, or None when the paper has no such method.
    """
    return PAPER_METHOD.get(kind)


def paper_results(path: Path | None = None) -> pd.DataFrame:
    """The paper's headline numbers (Tables 4 and 6 and the text), one row each."""
    return pd.read_csv(path or REFERENCE_DIR / "paper_results.csv", dtype={"section": str})


def paper_row(section: str, method: str, inputs: str, target: str,
              path: Path | None = None) -> dict | None:
    """The paper's row for (section, method, inputs, target), or None without the file.

    Strict: a key that matches no row, or several, is a configuration error (an experiment
    pointing at a paper number that does not exist), so it raises instead of printing a blank.

    Parameters
    ----------
    section, method, inputs, target : str
        The key columns of paper_results.csv (`method` as `paper_method` gives it).
    path : pathlib.Path, optional
        Another reference file (tests); default book/reference/paper_results.csv.

    Returns
    -------
    dict or None
        ``section``, ``inputs``, ``target``, ``bias`` and ``sigma`` (dex; None where the paper
        gives none) and ``note``; None when the reference file is absent.

    Raises
    ------
    ValueError
        Naming the file, when the key matches no row or several.
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
