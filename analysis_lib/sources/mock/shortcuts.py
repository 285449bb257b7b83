"""Shortcut checks: can a model read the type, M* or M*/L off the mock too easily?

The mock universe must not offer shortcuts that real galaxies (or TNG) do not: a type that is
a lookup of SFR or kinetic B/T, or an M*/L that is a function of colour alone. These checks
run on a dataset table (analysis_lib.dataset.open_dataset(path).table: one row per line of
sight) and return one row per check with the measured value, the requirement (issue 12) and
whether it is met.

Dust-free quantities are the dataset's diagnostics (analysis_lib.dataset.DIAGNOSTICS): g_r_nodust
(projected 2 R_half), log_ml_r_nodust (projected R_half, the aperture of the models' log_ml_r
target) and log_ml_r_2rhalf_nodust (projected 2 R_half, the aperture of the colour), computed
from the stars' dust-free light, so no reconstruction from the attenuations is needed. Masses
for the red sequence are log_mstar_total (all star particles), the closest to the total masses
of SDSS catalogues.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("galaxy_id", "galaxy_type", "sfr", "kinetic_bt", "g_r", "log_ml_r",
                    "log_ml_r_2rhalf", "g_r_nodust", "log_ml_r_nodust", "log_ml_r_2rhalf_nodust")


# The all-galaxy rows are context, not a requirement (met is None): Bell et al. (2003, ApJS 149,
# 289) quote ~0.1 dex for observed galaxies; in the galform
# semi-analytic model, with its own star-formation and enrichment histories, one intrinsic
# colour gives the V-band M*/L to ~0.06 dex (Wilkins et al. 2013,
# arXiv:1304.4421, abstract).
ALL_GALAXY_ML_CONTEXT = ("context: ~0.1 dex for observed galaxies (Bell+03); "
                         "~0.06 dex intrinsic in galform (Wilkins+13, V band)")


def _check_columns(table: pd.DataFrame, extra: tuple[str, ...] = ()) -> None:
    missing = [c for c in (*REQUIRED_COLUMNS, *extra) if c not in table.columns]
    if missing:
        raise ValueError(f"shortcut checks need dataset columns {', '.join(missing)} (the "
                         "dust-free ones are diagnostics of datasets built since they were "
                         "added: rebuild the dataset)")


def dust_free_colour(table: pd.DataFrame) -> np.ndarray:
    """g - r of the stars without dust, within projected 2 R_half (mag)."""
    return table["g_r_nodust"].to_numpy(float)


def dust_free_log_ml_r(table: pd.DataFrame, aperture: str = "rhalf") -> np.ndarray:
    """log10 M*/L_r without dust, in projected R_half ('rhalf') or 2 R_half ('2rhalf')."""
    if aperture not in ("rhalf", "2rhalf"):
        raise ValueError(f"aperture must be 'rhalf' or '2rhalf', got {aperture!r}")
    col = "log_ml_r_nodust" if aperture == "rhalf" else "log_ml_r_2rhalf_nodust"
    return table[col].to_numpy(float)


def fit_residual_scatter(x: np.ndarray, y: np.ndarray) -> float:
    """Standard deviation of y about its least-squares straight line in x (nan if < 3 points)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    coef = np.polyfit(x[ok], y[ok], 1)
    return float(np.std(y[ok] - np.polyval(coef, x[ok]), ddof=2))


def galaxy_bootstrap_std(statistic, groups: np.ndarray, *arrays: np.ndarray,
                         n_boot: int = 200, seed: int = 0) -> float:
    """Standard deviation of statistic(*arrays) over bootstrap resamples of whole galaxies.

    Why: a dataset has several lines of sight per galaxy, which are not independent; resampling
    galaxies (all their rows together) gives the uncertainty a sample of this many galaxies
    leaves on the statistic (for the M*/L scatter about colour of ~140 early types, ~0.004 dex).
    """
    groups = np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == k) for k in range(len(ids))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = np.concatenate([rows_of[k] for k in rng.integers(0, len(ids), len(ids))])
        values.append(statistic(*(np.asarray(a)[pick] for a in arrays)))
    values = np.asarray(values, float)
    return float(np.std(values[np.isfinite(values)])) if np.isfinite(values).any() else np.nan


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


def red_sequence_medians(table: pd.DataFrame, mass_column: str = "log_mstar_total",
                         edges: tuple[float, ...] = (10.0, 10.5, 11.0, 11.5),
                         min_count: int = 10, reference=None) -> pd.DataFrame:
    """Median g - r (dust-free and attenuated) of early types in bins of stellar mass.

    With `reference` (a callable: log10 M* -> g - r of a red-sequence relation), also the
    offsets median - reference at each bin's median mass.
    """
    _check_columns(table, (mass_column,))
    early = table["galaxy_type"].to_numpy() == 1
    mass = table[mass_column].to_numpy(float)
    free, att = dust_free_colour(table), table["g_r"].to_numpy(float)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = early & (mass >= lo) & (mass < hi)
        if sel.sum() >= min_count:
            row = {"log_mstar_lo": lo, "log_mstar_hi": hi, "n": int(sel.sum()),
                   "log_mstar_median": float(np.median(mass[sel])),
                   "g_r_dust_free": float(np.median(free[sel])),
                   "g_r_attenuated": float(np.median(att[sel]))}
            if reference is not None:
                ref = float(reference(row["log_mstar_median"]))
                row.update({"g_r_reference": ref,
                            "offset_dust_free": row["g_r_dust_free"] - ref,
                            "offset_attenuated": row["g_r_attenuated"] - ref})
            rows.append(row)
    return pd.DataFrame(rows)


def shortcut_table(table: pd.DataFrame, n_folds: int = 5,
                   red_sequence_reference=None) -> pd.DataFrame:
    """The issue-12 shortcut checks on a dataset table: check, value, uncertainty,
    requirement, met.

    uncertainty: for the fractions and scatters, the standard deviation over bootstrap
    resamples of whole galaxies (`galaxy_bootstrap_std`); 'met' compares the value alone, and
    is None for rows that are context rather than a requirement (the all-galaxy M*/L
    scatters, ALL_GALAXY_ML_CONTEXT).

    M*/L_r scatter about a line in g - r: g - r is measured within projected 2 R_half; M*/L_r
    both within projected R_half (log_ml_r, the models' target) and within 2 R_half (the
    colour's own aperture, as colour-M*/L relations are calibrated).
    red_sequence_reference: optional callable, log10 M* (Msun) -> SDSS red-sequence g - r.
    The module ships none: no published SDSS g - r red-sequence-mass relation could be
    verified here, so without one the red-sequence rows give the mock's medians and 'met' is
    None (not judged). Masses are log_mstar_total (all star particles).
    """
    _check_columns(table)
    early = table["galaxy_type"].to_numpy() == 1
    if early.sum() < 3 or (~early).sum() < 3:
        raise ValueError("shortcut checks need at least 3 rows of each galaxy type")
    sfr = table["sfr"].to_numpy(float)
    kbt = table["kinetic_bt"].to_numpy(float)
    rows = []

    gid = table["galaxy_id"].to_numpy()

    def add(check, value, requirement, met, uncertainty=np.nan):
        judged = None if met is None else (bool(met) if np.isfinite(value) else False)
        rows.append({"check": check, "value": value, "uncertainty": uncertainty,
                     "requirement": requirement, "met": judged})

    f_sf = float(np.mean(sfr[early] > 0))
    add("early types with SFR > 0 over the last Gyr (fraction)", f_sf, ">= 0.10", f_sf >= 0.10,
        galaxy_bootstrap_std(lambda x: np.mean(x > 0), gid[early], sfr[early]))
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
    gr = {"dust-free": dust_free_colour(table), "attenuated": table["g_r"].to_numpy(float)}
    ml = {("dust-free", "R_half"): dust_free_log_ml_r(table, "rhalf"),
          ("dust-free", "2 R_half"): dust_free_log_ml_r(table, "2rhalf"),
          ("attenuated", "R_half"): table["log_ml_r"].to_numpy(float),
          ("attenuated", "2 R_half"): table["log_ml_r_2rhalf"].to_numpy(float)}
    for who, sel in (("early types", early), ("all", np.ones(len(early), bool))):
        need = ">= 0.05 dex" if who == "early types" else ALL_GALAXY_ML_CONTEXT
        for (kind, aperture), values in ml.items():
            s = fit_residual_scatter(gr[kind][sel], values[sel])
            add(f"scatter of log M*/L_r ({aperture}) about a line in g-r, {kind}, {who} [dex]",
                s, need, (s >= 0.05) if who == "early types" else None,
                galaxy_bootstrap_std(fit_residual_scatter, gid[sel], gr[kind][sel], values[sel]))
    rs = red_sequence_medians(table, reference=red_sequence_reference)
    for _, row in rs.iterrows():
        label = f"log M* {row['log_mstar_lo']:.1f}-{row['log_mstar_hi']:.1f}"
        for kind in ("dust_free", "attenuated"):
            if red_sequence_reference is None:
                add(f"median g-r of early types, {kind.replace('_', '-')}, {label} [mag]",
                    float(row[f"g_r_{kind}"]),
                    "within 0.05 mag of SDSS (no verified reference here)", None)
            else:
                delta = float(row[f"offset_{kind}"])
                add(f"median g-r of early types minus SDSS, {kind.replace('_', '-')}, "
                    f"{label} [mag]", delta, "|value| <= 0.05", abs(delta) <= 0.05)
    return pd.DataFrame(rows)


def age_metallicity_table(table: pd.DataFrame,
                          edges: tuple[float, ...] = (10.0, 10.4, 10.8, 11.2, 11.6),
                          min_count: int = 5) -> pd.DataFrame:
    """The mock's r-light-weighted ages and metallicities per mass bin beside Gallazzi+2005.

    A check of the star-formation histories and metallicities, not a target they were tuned
    to. One value per galaxy (the median over its lines of sight) of the dataset diagnostics
    log_age_r and log_z_r (projected 2 R_half, dust-free light; log Z on Gallazzi's BC03
    scale, Zsun = 0.02), binned in log_mstar_total. Per bin: the P16 / P50 / P84 of the mock
    (all galaxies, as Gallazzi's table), of Gallazzi et al. (2005) at the bin's median mass,
    the mock's early-type median, and the Pearson correlation of age and metallicity among
    the bin's early types (observed ellipticals anti-correlate at fixed sigma, Trager et al.
    2000; the mock draws them independently). Gallazzi's values come from 3'' fibre spectra:
    galaxy centres, older and more metal-rich than a 2 R_half average, above all in discs.
    """
    from analysis_lib.sources.mock import relations as rel
    from analysis_lib.sources.mock.stellar_pops import GALLAZZI_ZSUN

    need = ("galaxy_id", "galaxy_type", "log_mstar_total", "log_age_r", "log_z_r")
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"age_metallicity_table needs dataset columns {', '.join(missing)}")
    gal = table.groupby("galaxy_id").agg(
        m=("log_mstar_total", "first"), early=("galaxy_type", "first"),
        age=("log_age_r", "median"), z=("log_z_r", "median"))
    gal["z"] = gal["z"] - np.log10(GALLAZZI_ZSUN)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        s = gal[(gal["m"] >= lo) & (gal["m"] < hi)].dropna()
        if len(s) < min_count:
            continue
        m_med = 10 ** float(s["m"].median())
        row = {"log_mstar_lo": lo, "log_mstar_hi": hi, "n": len(s)}
        for name, values in (("age", s["age"]), ("z", s["z"])):
            p16, p50, p84 = np.percentile(values, [16, 50, 84])
            row.update({f"mock_{name}_p16": p16, f"mock_{name}_p50": p50,
                        f"mock_{name}_p84": p84})
        g_age = rel.gallazzi05_log_age(m_med)
        z_med, z_below, z_above = rel.gallazzi05_logz_split(m_med)
        row.update({"g05_age_p16": float(g_age[0]), "g05_age_p50": float(g_age[1]),
                    "g05_age_p84": float(g_age[2]), "g05_z_p16": float(z_med - z_below),
                    "g05_z_p50": float(z_med), "g05_z_p84": float(z_med + z_above)})
        early = s[s["early"] == 1]
        row["mock_early_age_p50"] = float(early["age"].median()) if len(early) else np.nan
        row["mock_early_z_p50"] = float(early["z"].median()) if len(early) else np.nan
        row["early_age_z_correlation"] = (float(np.corrcoef(early["age"], early["z"])[0, 1])
                                          if len(early) >= 3 else np.nan)
        out.append(row)
    return pd.DataFrame(out)
