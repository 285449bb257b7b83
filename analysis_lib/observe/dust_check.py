"""Does dust move galaxies along the M*/L - colour relation? A check of a built dataset.

Bell & de Jong (2001) find that dust moves a galaxy nearly ALONG the relation between its
stellar M/L and its optical colour: it dims (raising M*/L) and reddens in about the ratio of the
relation's slope, so colour-based M*/L estimates are robust to dust. A dust model that is too
grey (dims without reddening) pushes dusty galaxies above the relation and destroys the
correlation over all types. This module measures that on a dataset's rows:

- the Pearson correlation of log M*/L_r with g - r, over all rows and per type, attenuated (what
  the dataset holds) and dust-free;
- the medians of the attenuated and dust-free log M*/L_r per type;
- the dust vector: the displacement a given attenuation produces in the (g - r, log M*/L_r)
  plane, d(g - r) = E(g - r) = A_g - A_r and d log M*/L_r = 0.4 A_r. Its slope
  0.4 A_r / E(g - r) (dex per mag) is compared with the slope of Bell et al. (2003)'s relation
  (1.097) and with that of a foreground screen of the same dust (0.4 / screen E/A).

Apertures: the dataset's g_r, A_r and A_g are measured within projected 2 R_half, and so is
log_ml_r_2rhalf; its dust-free value is then exact, log_ml_r_2rhalf - 0.4 A_r, and the colour's
g_r - (A_g - A_r). log_ml_r (within projected R_half) mixes apertures with the colour, and its
dust-free value needs a dust-free build of the same galaxies (`intrinsic`, a table of a dataset
built with observe.dust=false), matched on galaxy_id and projection.

The mock's colours are LSST g - r, Bell et al.'s SDSS g - r (a few hundredths of a mag apart);
the reference line is Bell et al. (2003)'s relation shifted to a Kroupa IMF
(sources/mock/relations.bell03_log_ml_r).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SAME_APERTURE_ML = "log_ml_r_2rhalf"  # projected 2 R_half, the aperture of g_r, A_r and A_g
BELL03_SLOPE = 1.097  # dex of log M*/L_r per mag of g - r (Bell et al. 2003, Table 7)
TYPE_NAMES = {0: "late", 1: "early"}


def bell03_log_ml_r(g_minus_r: np.ndarray) -> np.ndarray:
    """Bell et al. (2003) log M*/L_r at this g - r, Kroupa IMF (the mock's relations module)."""
    from analysis_lib.sources.mock.relations import bell03_log_ml_r as relation

    return relation(g_minus_r)


def screen_reddening_ratio() -> float:
    """E(g-r) / A_r of a foreground screen of this library's dust (CCM curve + scattering)."""
    from analysis_lib.observe.dust import BAND_WAVELENGTH_ANGSTROM as lam
    from analysis_lib.observe.dust import ccm_extinction_ratio, scattering_factor

    a_g, a_r = (ccm_extinction_ratio(lam[b]) * scattering_factor(b) for b in ("g", "r"))
    return float((a_g - a_r) / a_r)


def dust_vector(a_r: float, reddening_ratio: float) -> tuple[float, float]:
    """(d(g-r) [mag], d log M*/L_r [dex]) of an attenuation A_r with E(g-r) = ratio x A_r."""
    return float(reddening_ratio * a_r), float(0.4 * a_r)


def with_dust_free(table: pd.DataFrame, ml_column: str = SAME_APERTURE_ML,
                   intrinsic: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows with dust-free colour and M*/L added: columns g_r_0 and ml_0.

    From A_r and A_g when `ml_column` is the 2 R_half one (exact), else from `intrinsic` (a
    dust-free build of the same galaxies and projections). Raises ValueError when neither works.
    """
    need = {"galaxy_type", "g_r", "A_r", "A_g", ml_column}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {sorted(missing)} for the dust check")
    out = table.copy()
    if intrinsic is not None:
        keys = ["galaxy_id", "projection"]
        ref = intrinsic[keys + ["g_r", ml_column]].rename(
            columns={"g_r": "g_r_0", ml_column: "ml_0"})
        out = out.merge(ref, on=keys, how="left", validate="one_to_one")
        if out["ml_0"].isna().any():
            raise ValueError("intrinsic table does not hold every (galaxy_id, projection) row")
    elif ml_column == SAME_APERTURE_ML:
        out["g_r_0"] = out["g_r"] - (out["A_g"] - out["A_r"])
        out["ml_0"] = out[ml_column] - 0.4 * out["A_r"]
    else:
        raise ValueError(f"dust-free '{ml_column}' needs an intrinsic (dust-free) table: A_r is "
                         f"measured within 2 R_half, '{ml_column}' in another aperture")
    return out


def _corr(x: pd.Series, y: pd.Series) -> float:
    ok = np.isfinite(x.to_numpy(float)) & np.isfinite(y.to_numpy(float))
    if ok.sum() < 3:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def ml_colour_table(table: pd.DataFrame, ml_column: str = SAME_APERTURE_ML,
                    intrinsic: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per group (all, late, early): correlations, medians and the dust vector's slope.

    Columns: group, n, corr (attenuated g - r vs log M*/L_r), corr_dust_free, median_ml,
    median_ml_dust_free (dex), median_A_r (mag), E_over_A (sum E(g-r) / sum A_r), vector_slope
    (0.4 sum A_r / sum E(g-r), dex/mag; NaN without reddening), bell_offset (median of
    log M*/L_r minus Bell+2003 (Kroupa) at the row's colour, dex).
    """
    t = with_dust_free(table, ml_column, intrinsic)
    groups = [("all", np.ones(len(t), bool))]
    groups += [(name, (t["galaxy_type"] == code).to_numpy()) for code, name in
               TYPE_NAMES.items()]
    rows = []
    for name, sel in groups:
        s = t[sel]
        red = float((s["A_g"] - s["A_r"]).sum())
        a_r = float(s["A_r"].sum())
        rows.append({
            "group": name, "n": int(sel.sum()),
            "corr": _corr(s["g_r"], s[ml_column]),
            "corr_dust_free": _corr(s["g_r_0"], s["ml_0"]),
            "median_ml": float(s[ml_column].median()),
            "median_ml_dust_free": float(s["ml_0"].median()),
            "median_A_r": float(s["A_r"].median()),
            "E_over_A": red / a_r if a_r > 0 else float("nan"),
            "vector_slope": 0.4 * a_r / red if red > 0 else float("nan"),
            "bell_offset": float((s[ml_column] - bell03_log_ml_r(s["g_r"])).median()),
        })
    return pd.DataFrame(rows)


def ml_colour_figure(table: pd.DataFrame, ml_column: str = SAME_APERTURE_ML,
                     intrinsic: pd.DataFrame | None = None, source: str = "mock",
                     n_arrows: int = 40, seed: int = 0):
    """Attenuated log M*/L_r against g - r with Bell+2003 and the dust vectors drawn.

    Points: every row, coloured by type. Grey arrows: the dust displacement of `n_arrows`
    random late-type rows (dust-free -> attenuated). Thick arrows from the late types' dust-free
    median: their mean dust vector, and a foreground screen of the same mean A_r.
    """
    import matplotlib.pyplot as plt

    t = with_dust_free(table, ml_column, intrinsic)
    stats = ml_colour_table(table, ml_column, intrinsic).set_index("group")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for code, name in TYPE_NAMES.items():
        s = t[t["galaxy_type"] == code]
        ax.scatter(s["g_r"], s[ml_column], s=6, alpha=0.5, color="C0" if code == 0 else "C3",
                   label=f"{name} (corr {stats.loc[name, 'corr']:.2f})")
    late = t[t["galaxy_type"] == 0]
    rng = np.random.default_rng(seed)
    pick = late.iloc[rng.permutation(len(late))[:n_arrows]] if len(late) else late
    for _, r in pick.iterrows():
        ax.annotate("", xy=(r["g_r"], r[ml_column]), xytext=(r["g_r_0"], r["ml_0"]),
                    arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.6})
    gr = np.linspace(np.nanmin(t[["g_r", "g_r_0"]].to_numpy()) - 0.05,
                     np.nanmax(t[["g_r", "g_r_0"]].to_numpy()) + 0.05, 50)
    ax.plot(gr, bell03_log_ml_r(gr), "k--", lw=1.2, label="Bell+2003 (Kroupa IMF, SDSS g$-$r)")
    if len(late):
        x0, y0 = float(late["g_r_0"].median()), float(late["ml_0"].median())
        mean_a = float(late["A_r"].mean())
        ratio = float((late["A_g"] - late["A_r"]).mean() / mean_a) if mean_a > 0 else 0.0
        for (dx, dy), colour, label in (
                (dust_vector(mean_a, ratio), "C2",
                 f"late types' mean dust vector (A$_r$ = {mean_a:.2f} mag)"),
                (dust_vector(mean_a, screen_reddening_ratio()), "C1",
                 "foreground screen, same A$_r$")):
            ax.annotate("", xy=(x0 + dx, y0 + dy), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 2.2})
            ax.plot([], [], color=colour, lw=2.2, label=label)
    ax.set_xlabel("g $-$ r [mag] (dust-attenuated, projected 2 R$_{1/2}$)")
    aperture = "2 R$_{1/2}$" if ml_column == SAME_APERTURE_ML else "R$_{1/2}$"
    ax.set_ylabel(f"log$_{{10}}$ M$_*$/L$_r$ [M$_\\odot$/L$_\\odot$] (attenuated, {aperture})")
    overall = stats.loc["all"]
    ax.set_title(f"{source}\nM$_*$/L$_r$ against colour: all types corr {overall['corr']:.2f} "
                 f"(dust-free {overall['corr_dust_free']:.2f})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
