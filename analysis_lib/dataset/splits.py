"""Train/validation/test splits by galaxy, never by projection unless asked.

The paper split samples (projections) at random, so the three projections of one galaxy can sit
in both training and test sets; `by='projection'` reproduces that leaky split so the book can
measure how much it flatters the scores. The default keeps every projection of a galaxy together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis_lib.rng import make_rng

SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}


def split_rows(table: pd.DataFrame, fractions: list[float] | tuple[float, ...], seed: int,
               by: str = "galaxy") -> dict[str, np.ndarray]:
    """Row indices per split; fractions (summing to 1) are of galaxies (by='galaxy') or rows."""
    fractions = np.asarray(fractions, dtype=float)
    if len(fractions) not in SPLIT_NAMES or not np.isclose(fractions.sum(), 1.0, atol=1e-3):
        raise ValueError(f"split fractions {list(fractions)} must be 2 or 3 numbers summing to 1")
    rng = make_rng(seed, "split", by)
    if by == "galaxy":
        units = np.unique(table["galaxy_id"].to_numpy())
    elif by == "projection":
        units = np.arange(len(table))
    else:
        raise ValueError(f"split.by must be 'galaxy' or 'projection', not '{by}'")
    units = rng.permutation(units)
    edges = np.round(np.cumsum(fractions) * len(units)).astype(int)
    edges[-1] = len(units)
    parts = np.split(units, edges[:-1])
    out = {}
    for name, part in zip(SPLIT_NAMES[len(fractions)], parts, strict=True):
        if by == "galaxy":
            rows = np.flatnonzero(table["galaxy_id"].isin(part).to_numpy())
        else:
            rows = np.sort(part)
        out[name] = rows
    return out


def cnn_split(table: pd.DataFrame, cfg: dict, by: str | None = None) -> dict[str, np.ndarray]:
    """Train/val/test rows with the paper's 16000/4000/8110 proportions."""
    return split_rows(table, cfg["split"]["cnn_fractions"], cfg["seed"], by or cfg["split"]["by"])


def gbdt_split(table: pd.DataFrame, cfg: dict, by: str | None = None) -> dict[str, np.ndarray]:
    """Train/test rows with the paper's 18833/9277 proportions."""
    f = cfg["split"]["gbdt_test_fraction"]
    return split_rows(table, [1 - f, f], cfg["seed"], by or cfg["split"]["by"])
