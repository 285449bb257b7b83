"""Does the mock look like the real Universe? Relations, degeneracies and equilibrium checks.

- `summarise_galaxies(galaxies)`: per-galaxy measurements from the particles (masses, light,
  colour, sizes, sigma_e, V80, dark fractions, gas fraction).
- `relation_table(population, summary)`: offset (median of log mock - log published) and scatter
  of each relation against its published curve, with the published scatter beside it.
- `relation_figures(population, summary)`: matplotlib figures with the published curves.
- `degeneracy_table(summary)` / `print_degeneracies(summary)`: at fixed r-band luminosity, the
  scatter of M*/L, f_DM and M_tot, i.e. what light alone cannot tell.
- `equilibrium_drift(galaxy)`: integrate a subsample of star particles in the galaxy's fixed
  model potential and return the change of Lagrangian radii and velocity dispersions.

Measurement conventions (ours): projections along the box z axis; R_e = projected half-r-light
radius; sigma_e = r-light-weighted sqrt(<v_z^2>) inside R_e (includes rotation, as ATLAS3D's
sigma_e does); V80 = circular velocity at the cylindrical radius (disc frame) holding 80 % of
the r light (Reyes+2011 use the rotation speed there); f_DM(<R_e) in a sphere of radius R_e
(Cappellari+2013); f_DM(<r_half) in a sphere of the 3D half-stellar-mass radius (Lovell+2018).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis_lib.particles import Galaxy
from analysis_lib.sources.mock import relations as rel
from analysis_lib.sources.mock.dynamics import integrate_orbits
from analysis_lib.sources.mock.ssp import SUN_ABS_MAG_LSST_AB


def _weighted_radius(r: np.ndarray, w: np.ndarray, frac: float) -> float:
    order = np.argsort(r)
    cum = np.cumsum(w[order])
    return float(np.interp(frac * cum[-1], cum, r[order]))


def summarise_galaxy(g: Galaxy) -> dict:
    """Measured properties of one mock galaxy (see the module docstring for conventions)."""
    s = g.stars
    m_star = float(s.mass.sum())
    l_r, l_g = s.lum["r"], s.lum["g"]
    g_r = float(-2.5 * np.log10(l_g.sum() / l_r.sum())
                + SUN_ABS_MAG_LSST_AB["g"] - SUN_ABS_MAG_LSST_AB["r"])
    r_half = g.half_mass_radius()
    r_proj = np.hypot(s.pos[:, 0], s.pos[:, 1])
    re = _weighted_radius(r_proj, l_r, 0.5)
    inside = r_proj < re
    sigma_e = float(np.sqrt(np.sum(l_r[inside] * s.vel[inside, 2] ** 2) / l_r[inside].sum()))
    spin = np.asarray(g.meta.get("spin_axis", [0, 0, 1]), float)
    r_cyl = np.linalg.norm(s.pos - np.outer(s.pos @ spin, spin), axis=1)
    r80 = _weighted_radius(r_cyl, l_r, 0.8)
    vcirc = g.meta.get("vcirc_kms")
    v80 = float(vcirc(r80)) if vcirc is not None else np.nan
    m_tot_h = float(g.enclosed_mass("total", r_half))
    m_tot_re = float(g.enclosed_mass("total", re))
    m_gas = float(g.gas.mass.sum()) if g.gas is not None else 0.0
    return {
        "galaxy_id": g.galaxy_id, "galaxy_type": g.meta.get("galaxy_type"),
        "log_mstar": np.log10(m_star),
        "log_mstar_30kpc": np.log10(float(g.enclosed_mass("stars", 30.0))),
        "log_lum_r": np.log10(l_r.sum()), "g_minus_r": g_r,
        "log_ml_r": np.log10(m_star / l_r.sum()), "r_half_kpc": r_half, "re_kpc": re,
        "sigma_e_kms": sigma_e, "v80_kms": v80,
        "log_mtot_rhalf": np.log10(m_tot_h),
        "log_mstar_rhalf": np.log10(float(g.enclosed_mass("stars", r_half))),
        "fdm_rhalf": float(g.enclosed_mass("dm", r_half)) / m_tot_h,
        "fdm_re": float(g.enclosed_mass("dm", re)) / m_tot_re,
        "log_gas_fraction": np.log10(max(m_gas, 1.0) / m_star),
        "m200c": g.meta.get("m200c", np.nan),
    }


def summarise_galaxies(galaxies) -> pd.DataFrame:
    """One row per galaxy from an iterable of Galaxy objects."""
    return pd.DataFrame([summarise_galaxy(g) for g in galaxies])


def _stats(delta: np.ndarray) -> tuple[float, float]:
    delta = np.asarray(delta, float)
    delta = delta[np.isfinite(delta)]
    if len(delta) == 0:
        return np.nan, np.nan
    p16, p50, p84 = np.percentile(delta, [16, 50, 84])
    return float(p50), float(0.5 * (p84 - p16))


def relation_table(population: pd.DataFrame, summary: pd.DataFrame | None = None,
                   size_relation: str = "shen03") -> pd.DataFrame:
    """Offset (median, dex) and scatter (half 16-84 %, dex) of the mock about each relation.

    Population-level rows use the drawn properties; the rest need `summary` (particles).
    """
    rows = []

    def add(name, delta, published_scatter, note, n=None):
        off, sc = _stats(delta)
        rows.append({"relation": name, "n": int(np.isfinite(delta).sum()) if n is None else n,
                     "offset_dex": off, "scatter_dex": sc,
                     "published_scatter_dex": published_scatter, "note": note})

    pop = population
    add("SHMR (Moster+2013)", pop["log_mstar"] - np.log10(rel.moster13_mstar(pop["m200c"])),
        0.15, "drawn M* vs M200c; after the M*(<30 kpc) cut, so biased high at low M200c")
    size_fn = rel.SIZE_RELATIONS[size_relation]
    for kind, is_early in (("early", True), ("late", False)):
        sel = pop["early"] == is_early
        med, sig_ln = size_fn(pop.loc[sel, "m_star"], np.full(sel.sum(), is_early))
        add(f"size-mass {kind} drawn ({size_relation})", np.log10(pop.loc[sel, "re_kpc"] / med),
            float(np.median(sig_ln)) / np.log(10), "drawn R_e")
    bins = np.arange(10.0, 11.8, 0.3)
    idx = np.digitize(pop["log_mstar"], bins)
    frac, pred = [], []
    for k in range(1, len(bins)):
        sel = idx == k
        if sel.sum() >= 5:
            frac.append(pop.loc[sel, "early"].mean())
            pred.append(rel.peng10_quenched_fraction(10 ** (0.5 * (bins[k - 1] + bins[k]))))
    add("quenched fraction (Peng+2010)", np.array(frac) - np.array(pred), np.nan,
        "per 0.3-dex mass bin: fraction difference, not dex", n=len(frac))
    if summary is not None and len(summary):
        s = summary
        early = s["galaxy_type"] == "early"
        ms = 10 ** s["log_mstar"]
        for kind, sel in (("early", early), ("late", ~early)):
            med, sig_ln = size_fn(ms[sel], np.full(sel.sum(), kind == "early"))
            add(f"size-mass {kind} measured ({size_relation})",
                np.log10(s.loc[sel, "re_kpc"] / med), float(np.median(sig_ln)) / np.log(10),
                "projected half-r-light radius from particles")
        add("sigma-M* (Zahid+2016), early", np.log10(s.loc[early, "sigma_e_kms"])
            - rel.zahid16_log_sigma(ms[early]), np.nan, "sigma_e includes rotation")
        add("Tully-Fisher (Reyes+2011), late", np.log10(s.loc[~early, "v80_kms"])
            - rel.reyes11_log_v80(ms[~early]), 0.036, "V80 = v_circ at R80 (r light)")
        add("M/L_r vs g-r (Bell+2003, Kroupa)", s["log_ml_r"] - rel.bell03_log_ml_r(
            s["g_minus_r"]), 0.1, "mock LSST g-r vs SDSS g-r; dust-free")
        add("f_DM(<R_e) early vs ATLAS3D median", s.loc[early, "fdm_re"]
            - rel.ATLAS3D_FDM_RE_MEDIAN, np.nan, "difference in fraction, not dex")
        add("f_DM(<r_half) vs TNG100 floor 0.5", s["fdm_rhalf"] - rel.LOVELL18_FDM_RHALF_MIN,
            np.nan, "difference in fraction, not dex")
        late = ~early
        ref = np.log10(10 ** rel.xgass_log_hi_fraction(ms[late])
                       + 10 ** rel.xcoldgass_log_h2_fraction(ms[late])) + np.log10(1.36)
        add("cold gas fraction, late (xGASS + xCOLD GASS)",
            s.loc[late, "log_gas_fraction"] - ref, 0.3, "includes helium (x1.36)")
        add("g-r early minus late (bimodality)",
            np.array([s.loc[early, "g_minus_r"].median() - s.loc[late, "g_minus_r"].median()]),
            np.nan, "difference of medians in mag; SDSS red sequence - blue cloud ~0.3-0.4",
            n=len(s))
    return pd.DataFrame(rows)


MASTERS10_DIMMING_R = 0.5  # mag, face-on to edge-on r-band extinction of spirals (Masters+2010)
MASTERS10_REDDENING_GR = 0.1  # mag, the same for g - r (0.6 mag in g minus 0.5 in r)
FACE_ON_MAX_DEG, EDGE_ON_MIN_DEG = 30.0, 80.0


def screen_reddening_ratio() -> float:
    """E(g-r) / A_r of a foreground screen with this library's dust (CCM curve + scattering)."""
    from analysis_lib.observe.dust import BAND_WAVELENGTH_ANGSTROM as lam
    from analysis_lib.observe.dust import ccm_extinction_ratio, scattering_factor

    a_g, a_r = (ccm_extinction_ratio(lam[b]) * scattering_factor(b) for b in ("g", "r"))
    return float((a_g - a_r) / a_r)


def dust_table(table: pd.DataFrame) -> pd.DataFrame:
    """Dust of the observed dataset rows against the inclination dependence seen in SDSS.

    Masters et al. (2010, MNRAS 404, 792; 24,276 Galaxy Zoo spirals) measure how much redder
    discs get from face-on to edge-on (0.1 mag in g - r) and infer, with a screen-like
    extinction law, a dimming of 0.6 mag in g and 0.5 in r. The reddening is their measurement;
    the dimming is a model-dependent conversion of it, and an attenuation greyer than a screen
    (stars mixed with dust, opaque sightlines that remove light whatever its colour) dims more
    for the same reddening. We compare the medians of the late types' dust terms in the most
    face-on (i < 30 deg) and most edge-on (i > 80 deg) lines of sight: A_r, and the reddening
    E(g-r) = A_g - A_r, which is the dust's alone (the observed g - r of different galaxies
    also differs by their stellar populations). These are different galaxies, so the comparison
    needs ~50 rows per bin. The greyness row compares sum E(g-r) / sum A_r of the edge-on rows
    with the screen value of the same dust (screen_reddening_ratio) and with Masters' 0.1/0.5.
    """
    rows = []
    late = table["galaxy_type"] == 0
    face = late & (table["inclination_deg"] < FACE_ON_MAX_DEG)
    edge = late & (table["inclination_deg"] > EDGE_ON_MIN_DEG)
    n = f"{int(face.sum())} face-on, {int(edge.sum())} edge-on"
    reddening = table["A_g"] - table["A_r"]
    rows.append({"check": "r dimming edge-on minus face-on, late types", "n": n,
                 "mock": table.loc[edge, "A_r"].median() - table.loc[face, "A_r"].median(),
                 "published": MASTERS10_DIMMING_R,
                 "reference": "Masters+2010, inferred from their reddening with a screen law"})
    rows.append({"check": "E(g-r) reddening edge-on minus face-on, late types", "n": n,
                 "mock": reddening[edge].median() - reddening[face].median(),
                 "published": MASTERS10_REDDENING_GR,
                 "reference": "Masters+2010, measured (colour against axis ratio)"})
    rows.append({"check": "E(g-r) / A_r of edge-on late types (greyness; no unit)",
                 "n": str(int(edge.sum())),
                 "mock": reddening[edge].sum() / table.loc[edge, "A_r"].sum(),
                 "published": MASTERS10_REDDENING_GR / MASTERS10_DIMMING_R,
                 "reference": f"Masters+2010 conversion 0.1/0.5; a screen of this dust gives "
                              f"{screen_reddening_ratio():.2f}"})
    rows.append({"check": "median A_r, face-on late types", "n": str(int(face.sum())),
                 "mock": table.loc[face, "A_r"].median(), "published": np.nan,
                 "reference": "no direct reference; SDSS discs a few tenths of a mag"})
    early = table["galaxy_type"] == 1
    rows.append({"check": "median A_r, early types (all inclinations)",
                 "n": str(int(early.sum())), "mock": table.loc[early, "A_r"].median(),
                 "published": np.nan, "reference": "little gas, little dust expected"})
    return pd.DataFrame(rows).rename(columns={"mock": "mock [mag]",
                                              "published": "published [mag]"})


def dust_figure(table: pd.DataFrame):
    """A_r and E(g-r) against inclination for late and early types, with binned medians and
    the face-on late-type median plus Masters et al.'s edge-on increment."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.arange(0, 91, 10)
    late_face = (table["galaxy_type"] == 0) & (table["inclination_deg"] < FACE_ON_MAX_DEG)
    panels = ((table["A_r"], MASTERS10_DIMMING_R, r"A$_r$", "dimming, inferred"),
              (table["A_g"] - table["A_r"], MASTERS10_REDDENING_GR, r"E(g$-$r) = A$_g-$A$_r$",
               "reddening, measured"))
    for ax, (value, step, name, what) in zip(axes, panels, strict=True):
        for code, colour, kind in ((0, "C0", "late"), (1, "C3", "early")):
            sel = table["galaxy_type"] == code
            inc, v = table.loc[sel, "inclination_deg"], value[sel]
            ax.scatter(inc, v, s=4, alpha=0.3, color=colour, label=f"{kind} types")
            idx = np.digitize(inc, bins)
            full = [k for k in range(1, len(bins)) if (idx == k).sum() > 4]
            ax.plot([0.5 * (bins[k - 1] + bins[k]) for k in full],
                    [v[idx == k].median() for k in full], "-o", color=colour, ms=4)
        if late_face.any():
            ax.axhline(value[late_face].median() + step, color="k", ls="--", lw=1,
                       label=f"late face-on median + {step} mag\n(Masters+2010 edge-on, {what})")
        ax.set_xlabel("inclination [deg] (90 = edge-on)")
        ax.set_ylabel(name + r" within projected 2 R$_{half}$ [mag]")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def degeneracy_table(summary: pd.DataFrame, bin_width_dex: float = 0.2,
                     min_count: int = 5) -> pd.DataFrame:
    """In narrow bins of log L_r: scatter (std) of log M*/L_r, f_DM(<r_half), log M_tot."""
    s = summary
    lo = np.floor(s["log_lum_r"].min() / bin_width_dex) * bin_width_dex
    edges = np.arange(lo, s["log_lum_r"].max() + bin_width_dex, bin_width_dex)
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=False):
        sel = (s["log_lum_r"] >= a) & (s["log_lum_r"] < b)
        if sel.sum() < min_count:
            continue
        out.append({"log_lum_r_lo": a, "log_lum_r_hi": b, "n": int(sel.sum()),
                    "std_log_ml_r": s.loc[sel, "log_ml_r"].std(),
                    "std_fdm_rhalf": s.loc[sel, "fdm_rhalf"].std(),
                    "std_log_mtot_rhalf": s.loc[sel, "log_mtot_rhalf"].std(),
                    "std_log_mstar": s.loc[sel, "log_mstar"].std()})
    return pd.DataFrame(out)


def print_degeneracies(summary: pd.DataFrame, bin_width_dex: float = 0.2) -> pd.DataFrame:
    """Print (and return) the degeneracy table: what a fixed luminosity leaves undetermined."""
    table = degeneracy_table(summary, bin_width_dex)
    with pd.option_context("display.float_format", "{:.3f}".format):
        print("Scatter at fixed r-band luminosity (bins of "
              f"{bin_width_dex} dex in L_r):")
        print(table.to_string(index=False))
    return table


def relation_figures(population: pd.DataFrame, summary: pd.DataFrame | None = None,
                     size_relation: str = "shen03") -> dict:
    """Figures of the mock against the published curves (matplotlib Figure objects)."""
    import matplotlib.pyplot as plt

    figs = {}
    pop = population
    early = pop["early"].to_numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(pop["log_m200c"], pop["log_mstar"], s=3, alpha=0.4, label="mock")
    mh = np.linspace(pop["log_m200c"].min(), pop["log_m200c"].max(), 100)
    ax.plot(mh, np.log10(rel.moster13_mstar(10**mh)), "k-", label="Moster+2013")
    ax.set_xlabel(r"log$_{10}$ M$_{200c}$ [M$_\odot$]")
    ax.set_ylabel(r"log$_{10}$ M$_*$ [M$_\odot$]")
    ax.legend()
    figs["shmr"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    size_fn = rel.SIZE_RELATIONS[size_relation]
    ms = np.logspace(10, 11.8, 100)
    for is_early, colour, name in ((True, "C3", "early"), (False, "C0", "late")):
        sel = early == is_early
        ax.scatter(pop.loc[sel, "log_mstar"], np.log10(pop.loc[sel, "re_kpc"]), s=3, alpha=0.3,
                   color=colour, label=f"mock {name} (drawn)")
        ax.plot(np.log10(ms), np.log10(size_fn(ms, np.full(100, is_early))[0]), color=colour,
                label=f"{size_relation} {name}")
    if summary is not None and len(summary):
        ax.scatter(summary["log_mstar"], np.log10(summary["re_kpc"]), s=12, marker="x",
                   color="k", label="measured (particles)")
    ax.set_xlabel(r"log$_{10}$ M$_*$ [M$_\odot$]")
    ax.set_ylabel(r"log$_{10}$ R$_e$ [kpc]")
    ax.legend(fontsize=7)
    figs["size_mass"] = fig

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.arange(10.0, 11.9, 0.2)
    idx = np.digitize(pop["log_mstar"], bins)
    centres = 0.5 * (bins[1:] + bins[:-1])
    fq = [pop.loc[idx == k, "early"].mean() if (idx == k).sum() else np.nan
          for k in range(1, len(bins))]
    ax.plot(centres, fq, "o", label="mock")
    ax.plot(centres, rel.peng10_quenched_fraction(10**centres), "k-", label="Peng+2010")
    ax.set_xlabel(r"log$_{10}$ M$_*$ [M$_\odot$]")
    ax.set_ylabel("quenched (early-type) fraction")
    ax.legend()
    figs["quenched_fraction"] = fig

    if summary is None or not len(summary):
        return figs
    s = summary
    e = (s["galaxy_type"] == "early").to_numpy()
    lm = np.linspace(s["log_mstar"].min(), s["log_mstar"].max(), 100)

    def panel(name, x, y, xlabel, ylabel, curve=None, curve_label=None, hlines=()):
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(x[e], y[e], s=8, color="C3", label="mock early")
        ax.scatter(x[~e], y[~e], s=8, color="C0", label="mock late")
        if curve is not None:
            ax.plot(curve[0], curve[1], "k-", label=curve_label)
        for value, label, style in hlines:
            ax.axhline(value, color="k", ls=style, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        figs[name] = fig

    xm = r"log$_{10}$ M$_*$ [M$_\odot$]"
    panel("sigma_mstar", s["log_mstar"].to_numpy(), np.log10(s["sigma_e_kms"]).to_numpy(), xm,
          r"log$_{10}$ $\sigma_e$ [km s$^{-1}$]", (lm, rel.zahid16_log_sigma(10**lm)),
          "Zahid+2016")
    panel("tully_fisher", s["log_mstar"].to_numpy(), np.log10(s["v80_kms"]).to_numpy(), xm,
          r"log$_{10}$ V$_{80}$ [km s$^{-1}$]", (lm, rel.reyes11_log_v80(10**lm)), "Reyes+2011")
    gr = np.linspace(0.0, 0.9, 50)
    panel("ml_colour", s["g_minus_r"].to_numpy(), s["log_ml_r"].to_numpy(),
          "g - r [mag] (LSST, dust-free)", r"log$_{10}$ M$_*$/L$_r$ [M$_\odot$/L$_\odot$]",
          (gr, rel.bell03_log_ml_r(gr)), "Bell+2003 (Kroupa)")
    panel("fdm_re", s["log_mstar"].to_numpy(), s["fdm_re"].to_numpy(), xm,
          r"f$_{DM}$(<R$_e$) (sphere)",
          hlines=((rel.ATLAS3D_FDM_RE_MEDIAN, "ATLAS3D median (ETGs)", "--"),))
    panel("fdm_rhalf", s["log_mstar"].to_numpy(), s["fdm_rhalf"].to_numpy(), xm,
          r"f$_{DM}$(<r$_{1/2}$) (3D)",
          hlines=((rel.LOVELL18_FDM_RHALF_MIN, "TNG100 level (Lovell+2018)", ":"),))
    ref = np.log10(10 ** rel.xgass_log_hi_fraction(10**lm)
                   + 10 ** rel.xcoldgass_log_h2_fraction(10**lm)) + np.log10(1.36)
    panel("gas_fraction", s["log_mstar"].to_numpy(), s["log_gas_fraction"].to_numpy(), xm,
          r"log$_{10}$ M$_{gas}$/M$_*$", (lm, ref), "xGASS + xCOLD GASS (SF, x1.36 He)")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist([s.loc[e, "g_minus_r"], s.loc[~e, "g_minus_r"]], bins=20, stacked=True,
            color=["C3", "C0"], label=["early", "late"])
    ax.set_xlabel("g - r [mag] (LSST, dust-free)")
    ax.set_ylabel("number of galaxies")
    ax.legend()
    figs["colour_bimodality"] = fig
    return figs


def equilibrium_drift(g: Galaxy, n_sub: int = 5000, n_tdyn: float = 6.0, seed: int = 0,
                      dt_factor: float = 0.02) -> dict:
    """Integrate n_sub star particles for n_tdyn dynamical times in the fixed model potential.

    t_dyn = sqrt(3 pi / (16 G rho_bar)) with rho_bar the mean total density inside the 3D
    half-stellar-mass radius (Binney & Tremaine 2008, eq. 2.40). Returns the ratios (time
    averaged over the second half of the run / initial) of the 10, 50, 90 % Lagrangian radii,
    and of the rms speed and the velocity dispersion (about the mean v_R, v_phi, v_z) in three
    radial bins holding equal numbers of particles initially.
    """
    from analysis_lib.sources.mock.relations import G_KPC_KMS2_MSUN as G

    model, sheet = g.meta["mass_model"], g.meta["disc_sheet"]
    rot = g.meta["orientation_matrix"]
    pos, vel = g.stars.pos @ rot, g.stars.vel @ rot  # back to the disc frame
    # systematic subsample in radius (every k-th particle by r, random start), so that the
    # subsample keeps the galaxy's radial profile instead of adding Poisson noise to it
    rng = np.random.default_rng(seed)
    order = np.argsort(np.linalg.norm(pos, axis=1))
    step = max(len(pos) / min(n_sub, len(pos)), 1.0)
    idx = order[(rng.uniform(0, step) + step * np.arange(min(n_sub, len(pos)))).astype(int)]
    p, v = pos[idx], vel[idx]
    r_half = g.half_mass_radius()
    rho_bar = float(model.enclosed_mass(r_half)) / (4 / 3 * np.pi * r_half**3)
    t_dyn = np.sqrt(3 * np.pi / (16 * G * rho_bar)) / 1.0227121650537077  # Gyr
    r = np.linalg.norm(p, axis=1)
    r10 = np.quantile(r, 0.1)
    dt = dt_factor * r10 / float(model.vcirc(r10)) / 1.0227121650537077
    xs, vs = integrate_orbits(model, sheet, p, v, n_tdyn * t_dyn, dt, n_snap=10)
    q0 = np.quantile(r, [0.1, 0.5, 0.9])
    q1 = np.mean([np.quantile(np.linalg.norm(x, axis=1), [0.1, 0.5, 0.9]) for x in xs], axis=0)
    edges = np.quantile(r, [0.0, 1 / 3, 2 / 3, 1.0])
    edges[-1] = np.inf

    def vrms(pp, vv):
        rr = np.linalg.norm(pp, axis=1)
        b = np.clip(np.searchsorted(edges, rr, side="right") - 1, 0, 2)
        return np.array([np.sqrt(np.mean(np.sum(vv[b == k] ** 2, axis=1))) for k in range(3)])

    def sigma(pp, vv):
        # dispersion about the mean of (v_R, v_phi, v_z) in the disc frame, per bin
        rr = np.linalg.norm(pp, axis=1)
        b = np.clip(np.searchsorted(edges, rr, side="right") - 1, 0, 2)
        rc = np.maximum(np.hypot(pp[:, 0], pp[:, 1]), 1e-12)
        v_r = (pp[:, 0] * vv[:, 0] + pp[:, 1] * vv[:, 1]) / rc
        v_phi = (pp[:, 0] * vv[:, 1] - pp[:, 1] * vv[:, 0]) / rc
        cyl = np.column_stack([v_r, v_phi, vv[:, 2]])
        return np.array([np.sqrt(np.sum(np.var(cyl[b == k], axis=0))) for k in range(3)])

    s0, d0 = vrms(p, v), sigma(p, v)
    s1 = np.mean([vrms(x, w) for x, w in zip(xs, vs, strict=False)], axis=0)
    d1 = np.mean([sigma(x, w) for x, w in zip(xs, vs, strict=False)], axis=0)
    return {"t_dyn_gyr": float(t_dyn), "n_tdyn": n_tdyn, "n_particles": len(p),
            "lagrangian_ratio": q1 / q0, "vrms_ratio": s1 / s0, "sigma_ratio": d1 / d0}
