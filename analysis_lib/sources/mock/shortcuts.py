"""Shortcut checks: can a model read the type, M* or M*/L off the mock too easily?

The mock universe must not offer shortcuts that real galaxies (or TNG) do not: a type that is
a lookup of SFR or kinetic B/T, or an M*/L that is a function of colour alone. These checks
run on a dataset table (analysis_lib.dataset.open_dataset(path).table: one row per line of
sight) and return one row per check with the measured value, the requirement (issue 12) and
whether it is met.

Dust-free quantities are reconstructed from the stored attenuations: g-r without dust is
g_r - (A_g - A_r), and log M*/L_r without dust is log_ml_r - 0.4 A_r. A_r and A_g are measured
within projected 2 R_half while log_ml_r is within R_half, so the dust-free M*/L is an
approximation (exact for a uniform screen); a stored dust-free M*/L_r would remove it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("galaxy_id", "galaxy_type", "sfr", "kinetic_bt", "g_r", "A_r", "A_g",
                    "log_ml_r")


def _check_columns(table: pd.DataFrame, extra: tuple[str, ...] = ()) -> None:
    missing = [c for c in (*REQUIRED_COLUMNS, *extra) if c not in table.columns]
    if missing:
        raise ValueError(f"shortcut checks need dataset columns {', '.join(missing)}")


def dust_free_colour(table: pd.DataFrame) -> np.ndarray:
    """g - r of the stars without dust, within projected 2 R_half (mag)."""
    return (table["g_r"] - (table["A_g"] - table["A_r"])).to_numpy(float)


def dust_free_log_ml_r(table: pd.DataFrame) -> np.ndarray:
    """log10 M*/L_r without dust (approximate: see the module docstring)."""
    return (table["log_ml_r"] - 0.4 * table["A_r"]).to_numpy(float)


def fit_residual_scatter(x: np.ndarray, y: np.ndarray) -> float:
    """Standard deviation of y about its least-squares straight line in x (nan if < 3 points)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    coef = np.polyfit(x[ok], y[ok], 1)
    return float(np.std(y[ok] - np.polyval(coef, x[ok]), ddof=2))


def overlap_fractions(a: np.ndarray, b: np.ndarray, lo: float = 5.0, hi: float = 95.0
                      ) -> tuple[float, float]:
    """(fraction of a inside b's lo-hi percentile range, fraction of b inside a's)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return float("nan"), float("nan")
    b_lo, b_hi = np.percentile(b, [lo, hi])
    a_lo, a_hi = np.percentile(a, [lo, hi])
    return (float(np.mean((a >= b_lo) & (a <= b_hi))),
            float(np.mean((b >= a_lo) & (b <= a_hi))))


def tree_accuracy(features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                  n_folds: int = 5, max_depth: int = 2, seed: int = 0) -> float:
    """Cross-validated accuracy of a depth-2 decision tree (folds grouped by galaxy, so the
    lines of sight of one galaxy never sit on both sides)."""
    from sklearn.model_selection import GroupKFold
    from sklearn.tree import DecisionTreeClassifier

    n_groups = len(np.unique(groups))
    if n_groups < n_folds or len(np.unique(labels)) < 2:
        return float("nan")
    correct = 0
    for train, test in GroupKFold(n_splits=n_folds).split(features, labels, groups):
        clf = DecisionTreeClassifier(max_depth=max_depth, random_state=seed)
        clf.fit(features[train], labels[train])
        correct += int(np.sum(clf.predict(features[test]) == labels[test]))
    return correct / len(labels)


def red_sequence_medians(table: pd.DataFrame, mass_column: str = "log_mstar_2rhalf",
                         edges: tuple[float, ...] = (10.0, 10.5, 11.0, 11.5),
                         min_count: int = 10) -> pd.DataFrame:
    """Median g - r (dust-free and attenuated) of early types in bins of stellar mass."""
    _check_columns(table, (mass_column,))
    early = table["galaxy_type"].to_numpy() == 1
    mass = table[mass_column].to_numpy(float)
    free, att = dust_free_colour(table), table["g_r"].to_numpy(float)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = early & (mass >= lo) & (mass < hi)
        if sel.sum() >= min_count:
            rows.append({"log_mstar_lo": lo, "log_mstar_hi": hi, "n": int(sel.sum()),
                         "g_r_dust_free": float(np.median(free[sel])),
                         "g_r_attenuated": float(np.median(att[sel]))})
    return pd.DataFrame(rows)


def shortcut_table(table: pd.DataFrame, n_folds: int = 5,
                   red_sequence_reference=None) -> pd.DataFrame:
    """The issue-12 shortcut checks on a dataset table: check, value, requirement, met.

    red_sequence_reference: optional callable, log10 M* (Msun) -> SDSS red-sequence g - r.
    The module ships none: no published SDSS g - r red-sequence-mass relation could be
    verified here, so without one the red-sequence rows give the mock's medians and 'met' is
    None (not judged). Masses are the dataset's log_mstar_2rhalf (stars inside 2 R_half,
    ~0.1 dex below the total; the red sequence's slope makes that < 0.01 mag of colour).
    """
    _check_columns(table)
    early = table["galaxy_type"].to_numpy() == 1
    if early.sum() < 3 or (~early).sum() < 3:
        raise ValueError("shortcut checks need at least 3 rows of each galaxy type")
    sfr = table["sfr"].to_numpy(float)
    kbt = table["kinetic_bt"].to_numpy(float)
    rows = []

    def add(check, value, requirement, met):
        judged = None if met is None else (bool(met) if np.isfinite(value) else False)
        rows.append({"check": check, "value": value, "requirement": requirement,
                     "met": judged})

    f_sf = float(np.mean(sfr[early] > 0))
    add("early types with SFR > 0 over the last Gyr (fraction)", f_sf, ">= 0.10", f_sf >= 0.10)
    e_in_l, l_in_e = overlap_fractions(kbt[early], kbt[~early])
    add("early types inside the late types' 5-95 % kinetic B/T range", e_in_l, "> 0",
        e_in_l > 0)
    add("late types inside the early types' 5-95 % kinetic B/T range", l_in_e, "> 0",
        l_in_e > 0)
    feats = np.column_stack([sfr, kbt])
    ok = np.all(np.isfinite(feats), axis=1)
    acc = tree_accuracy(feats[ok], early[ok].astype(int),
                        table["galaxy_id"].to_numpy()[ok], n_folds=n_folds)
    add("depth-2 tree accuracy, type from (SFR, kinetic B/T), grouped CV", acc, "<= 0.95",
        acc <= 0.95)
    gr_free, gr_att = dust_free_colour(table), table["g_r"].to_numpy(float)
    ml_free, ml_att = dust_free_log_ml_r(table), table["log_ml_r"].to_numpy(float)
    for who, sel in (("early types", early), ("all", np.ones(len(early), bool))):
        s_free = fit_residual_scatter(gr_free[sel], ml_free[sel])
        s_att = fit_residual_scatter(gr_att[sel], ml_att[sel])
        need = ">= 0.05 dex" if who == "early types" else "~0.1 dex (Bell+03)"
        add(f"scatter of log M*/L_r about a line in g-r, dust-free, {who} [dex]", s_free,
            need, s_free >= 0.05)
        add(f"scatter of log M*/L_r about a line in g-r, attenuated, {who} [dex]", s_att,
            need, s_att >= 0.05)
    if "log_mstar_2rhalf" in table.columns:
        rs = red_sequence_medians(table)
        for _, row in rs.iterrows():
            label = f"log M* {row['log_mstar_lo']:.1f}-{row['log_mstar_hi']:.1f}"
            for kind in ("dust_free", "attenuated"):
                value = float(row[f"g_r_{kind}"])
                if red_sequence_reference is None:
                    add(f"median g-r of early types, {kind.replace('_', '-')}, {label} [mag]",
                        value, "within 0.05 mag of SDSS (no verified reference here)", None)
                else:
                    centre = 0.5 * (row["log_mstar_lo"] + row["log_mstar_hi"])
                    delta = value - float(red_sequence_reference(centre))
                    add(f"median g-r of early types minus SDSS, {kind.replace('_', '-')}, "
                        f"{label} [mag]", delta, "|value| <= 0.05", abs(delta) <= 0.05)
    return pd.DataFrame(rows)


def light_weighted_age_table(galaxies, edges: tuple[float, ...] = (10.0, 10.4, 10.8, 11.2, 11.6),
                             min_count: int = 5) -> pd.DataFrame:
    """The mock's r-light-weighted stellar ages per stellar-mass bin beside Gallazzi+2005.

    A check of the star-formation histories, not a target they were tuned to: an age spread
    much narrower than observed at fixed mass is what makes M*/L a function of colour. Takes
    particle galaxies (Galaxy objects with stars.lum['r'] and age_gyr; meta m_star_model) and
    returns per bin the mock's and Gallazzi+2005's (all galaxies) P16 / P50 / P84 of
    log10(age / yr), and the mock's early-type median.
    """
    from analysis_lib.sources.mock import relations as rel

    rows = []
    for g in galaxies:
        w = np.asarray(g.stars.lum["r"], float)
        if w.sum() <= 0:
            continue
        age = float(np.sum(w * g.stars.age_gyr) / w.sum())
        rows.append((np.log10(float(g.meta.get("m_star_model", g.stars.mass.sum()))),
                     g.meta.get("galaxy_type") == "early", np.log10(age * 1e9)))
    if not rows:
        raise ValueError("light_weighted_age_table: no galaxy with r-band light")
    arr = np.array(rows, dtype=float)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (arr[:, 0] >= lo) & (arr[:, 0] < hi)
        if sel.sum() < min_count:
            continue
        mock = np.percentile(arr[sel, 2], [16, 50, 84])
        ref = rel.gallazzi05_log_age(10 ** np.median(arr[sel, 0]))
        early = arr[sel, 1] == 1
        out.append({"log_mstar_lo": lo, "log_mstar_hi": hi, "n": int(sel.sum()),
                    "mock_p16": mock[0], "mock_p50": mock[1], "mock_p84": mock[2],
                    "g05_p16": float(ref[0]), "g05_p50": float(ref[1]),
                    "g05_p84": float(ref[2]),
                    "mock_early_p50": float(np.median(arr[sel, 2][early])) if early.any()
                    else float("nan")})
    return pd.DataFrame(out)
