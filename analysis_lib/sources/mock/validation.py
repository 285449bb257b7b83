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
from analysis_lib.sources.mock.ssp import SUN_ABS_MAG_SDSS_AB


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
                + SUN_ABS_MAG_SDSS_AB["g"] - SUN_ABS_MAG_SDSS_AB["r"])
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
                   size_relation: str = "shen03_mass") -> pd.DataFrame:
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
    # Shen+2003 split by Sersic index, so the population draws (and is compared) by structure
    from analysis_lib.sources.mock.population import SIZE_SPLIT_BY_STRUCTURE

    structural = size_relation in SIZE_SPLIT_BY_STRUCTURE
    size_early = (pop["bt"] >= 0.5) if structural else pop["early"].astype(bool)
    for kind, is_early in (("early", True), ("late", False)):
        sel = size_early == is_early
        med, sig_ln = size_fn(pop.loc[sel, "m_star"], np.full(sel.sum(), is_early))
        add(f"size-mass {kind} drawn ({size_relation})", np.log10(pop.loc[sel, "re_kpc"] / med),
            float(np.median(sig_ln)) / np.log(10),
            "drawn R_e; " + ("split by B/T >= 0.5 (Shen split by Sersic n)" if structural
                             else "split by type"))
    bins = np.arange(10.0, 11.8, 0.3)
    idx = np.digitize(pop["log_mstar"], bins)
    frac, pred = [], []
    for k in range(1, len(bins)):
        sel = idx == k
        if sel.sum() >= 5:
            frac.append(pop.loc[sel, "early"].mean())
            pred.append(rel.moustakas13_quiescent_fraction(10 ** (0.5 * (bins[k - 1] + bins[k]))))
    add("quenched fraction (Moustakas+2013)", np.array(frac) - np.array(pred), np.nan,
        "per 0.3-dex mass bin: fraction difference, not dex", n=len(frac))
    if summary is not None and len(summary):
        s = summary
        early = s["galaxy_type"] == "early"
        ms = 10 ** s["log_mstar"]
        # measured radii are half-LIGHT radii: compare them with a half-light relation (the
        # chosen one if it is of light, else Shen+2003, which TNG100's r-band sizes also match
        # to < 0.25 dex, Genel+2018)
        light_name = size_relation if rel.SIZE_RELATION_IS_LIGHT[size_relation] else "shen03"
        light_fn = rel.SIZE_RELATIONS[light_name]
        for kind, sel in (("early", early), ("late", ~early)):
            med, sig_ln = light_fn(ms[sel], np.full(sel.sum(), kind == "early"))
            add(f"size-mass {kind} measured ({light_name}, half-light)",
                np.log10(s.loc[sel, "re_kpc"] / med), float(np.median(sig_ln)) / np.log(10),
                "projected half-r-light radius from particles")
        add("sigma-M* (Zahid+2016), early", np.log10(s.loc[early, "sigma_e_kms"])
            - rel.zahid16_log_sigma(ms[early]), np.nan, "sigma_e includes rotation")
        add("Tully-Fisher (Reyes+2011), late", np.log10(s.loc[~early, "v80_kms"])
            - rel.reyes11_log_v80(ms[~early]), 0.036, "V80 = v_circ at R80 (r light)")
        add("M/L_r vs g-r (Bell+2003, Kroupa)", s["log_ml_r"] - rel.bell03_log_ml_r(
            s["g_minus_r"]), 0.1, "mock SDSS g-r (BC03); dust-free")
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
                     size_relation: str = "shen03_mass") -> dict:
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
    ax.plot(centres, rel.moustakas13_quiescent_fraction(10**centres), "k-",
            label="Moustakas+2013 (SDSS)")
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
          "g - r [mag] (SDSS, dust-free)", r"log$_{10}$ M$_*$/L$_r$ [M$_\odot$/L$_\odot$]",
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
    ax.set_xlabel("g - r [mag] (SDSS, dust-free)")
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


# --- Dark-matter fractions and universes (issue 12, helper "Universes") ---------------------
# Conventions, as the references measure them:
# - f_DM(<r_half): dark / total mass in a sphere of the 3D half-stellar-mass radius (Lovell+2018,
#   TNG100; the dataset's log_fdm target);
# - f_DM(<R_e): dark / total mass in a sphere of radius R_e, the projected half-LIGHT radius
#   (Cappellari+2013, ATLAS3D early types);
# - disc fraction at 2.2 R_d: stellar-disc mass / total mass within 2.2 disc scale lengths of
#   late types (Bershady+2011, DiskMass: 15-30 %), both as spherical enclosed masses (the
#   mock's discs move in their monopole; a thin disc's own v^2 there is ~15-20 % higher).

FDM_MASS_BINS = np.arange(10.0, 11.76, 0.25)  # log10 M* (Msun) bin edges for the medians


def _stellar_components(comps: dict) -> tuple[str, ...]:
    return tuple(c for c in ("bulge", "disc") if c in comps)


def population_mass_fractions(population: pd.DataFrame, mcfg: dict) -> pd.DataFrame:
    """Central dark-matter fractions of each population row from its exact mass model.

    No particles are made (about 2 ms a galaxy), so a few hundred galaxies per universe take
    seconds; the values equal the built galaxies' meta['fdm_rhalf_model']. The varying IMF
    (mock.imf = varying) is applied as galaxy.build_galaxy does. R_e for the ATLAS3D
    comparison is the drawn projected radius, turned into a half-light radius when the size
    relation is one of half-mass radii (divided by relations.SZOMORU13_MASS_TO_LIGHT_SIZE).
    """
    from analysis_lib.sources.mock.galaxy import build_mass_model, imf_alpha

    light = rel.SIZE_RELATION_IS_LIGHT.get(mcfg.get("size_relation", "shen03_mass"), False)
    to_light = 1.0 if light else 1.0 / rel.SZOMORU13_MASS_TO_LIGHT_SIZE
    rows = []
    for _, row in population.iterrows():
        model, comps = build_mass_model(row, mcfg)
        r_half = model.half_mass_radius(_stellar_components(comps))
        if mcfg.get("imf") == "varying":
            sigma = float(np.sqrt(rel.G_KPC_KMS2_MSUN * model.enclosed_mass(r_half)
                                  / (3 * r_half)))
            model, comps = build_mass_model(row, mcfg, imf_alpha(sigma))
            r_half = model.half_mass_radius(_stellar_components(comps))
        re_light = float(row["re_kpc"]) * to_light
        r22 = 2.2 * float(row["disc_rd_kpc"])
        disc = (float(model.enclosed_mass(r22, "disc") / model.enclosed_mass(r22))
                if "disc" in comps and not bool(row["early"]) else np.nan)
        rows.append({
            "galaxy_id": int(row["galaxy_id"]), "log_mstar": float(row["log_mstar"]),
            "early": bool(row["early"]), "r_half_kpc": r_half,
            "fdm_rhalf": float(model.enclosed_mass(r_half, "dm") / model.enclosed_mass(r_half)),
            "re_light_kpc": re_light,
            "fdm_re": float(model.enclosed_mass(re_light, "dm") / model.enclosed_mass(re_light)),
            "disc_fraction_2p2rd": disc})
    return pd.DataFrame(rows)


def dataset_mass_fractions(table: pd.DataFrame) -> pd.DataFrame:
    """The same columns from a dataset table (GalaxyDataset.table), one row per galaxy.

    M* is twice the stellar mass inside the 3D half-stellar-mass radius (exact by definition
    of that radius); f_DM(<r_half) = 10^log_fdm. The dataset has no R_e sphere or disc
    fraction, so those columns are NaN.
    """
    need = {"galaxy_id", "log_mstar", "log_fdm", "galaxy_type", "rhalf_kpc"}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"dataset table lacks {', '.join(sorted(missing))}")
    first = table.drop_duplicates("galaxy_id")
    return pd.DataFrame({
        "galaxy_id": first["galaxy_id"].astype(int).to_numpy(),
        "log_mstar": (first["log_mstar"] + np.log10(2.0)).to_numpy(),
        "early": (first["galaxy_type"] == 1).to_numpy(),
        "r_half_kpc": first["rhalf_kpc"].to_numpy(),
        "fdm_rhalf": (10 ** first["log_fdm"]).to_numpy(),
        "re_light_kpc": np.nan, "fdm_re": np.nan, "disc_fraction_2p2rd": np.nan})


def median_by_mass(frame: pd.DataFrame, column: str, bins: np.ndarray = FDM_MASS_BINS,
                   select: np.ndarray | None = None, min_count: int = 3) -> pd.DataFrame:
    """Median and 16-84 % range of `column` in bins of log M*; bins with < min_count are
    dropped. `select` is an optional boolean mask of rows (e.g. early types)."""
    f = frame if select is None else frame[np.asarray(select, bool)]
    f = f[np.isfinite(f[column])]
    out = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        v = f.loc[(f["log_mstar"] >= lo) & (f["log_mstar"] < hi), column].to_numpy()
        if len(v) < min_count:
            continue
        p16, p50, p84 = np.percentile(v, [16, 50, 84])
        out.append({"log_mstar_lo": lo, "log_mstar_hi": hi, "log_mstar": 0.5 * (lo + hi),
                    "n": len(v), "median": p50, "p16": p16, "p84": p84})
    return pd.DataFrame(out, columns=["log_mstar_lo", "log_mstar_hi", "log_mstar", "n",
                                      "median", "p16", "p84"])


def fdm_comparison_table(frames: dict[str, pd.DataFrame],
                         bins: np.ndarray = FDM_MASS_BINS) -> pd.DataFrame:
    """Per universe and M* bin: median f_DM(<r_half) beside TNG100 (Lovell+2018, approximate
    curve), the median f_DM(<R_e) of early types beside ATLAS3D's 0.13, and the median disc
    fraction at 2.2 R_d of late types beside DiskMass's 0.15-0.30."""
    rows = []
    for name, frame in frames.items():
        all_ = median_by_mass(frame, "fdm_rhalf", bins).set_index("log_mstar")
        early = median_by_mass(frame, "fdm_re", bins, frame["early"]).set_index("log_mstar")
        late = median_by_mass(frame, "disc_fraction_2p2rd", bins,
                              ~frame["early"].astype(bool)).set_index("log_mstar")
        for centre, r in all_.iterrows():
            tng = float(rel.lovell18_fdm_rhalf(10**centre))
            rows.append({
                "universe": name, "log_mstar": centre, "n": int(r["n"]),
                "fdm_rhalf": r["median"], "fdm_rhalf_tng100": tng,
                "minus_tng100": r["median"] - tng,
                "fdm_re_early": early["median"].get(centre, np.nan),
                "fdm_re_atlas3d": rel.ATLAS3D_FDM_RE_MEDIAN,
                "disc_fraction_late": late["median"].get(centre, np.nan),
                "diskmass_range": "{:.2f}-{:.2f}".format(*rel.DISKMASS_DISC_FRACTION_2P2RD)})
    return pd.DataFrame(rows)


def fdm_figure(frames: dict[str, pd.DataFrame], bins: np.ndarray = FDM_MASS_BINS):
    """Three panels, one line per universe (binned median, 16-84 % band for the first):
    f_DM(<r_half) against M* with TNG100 (Lovell+2018); f_DM(<R_e) of early types with the
    ATLAS3D median (Cappellari+2013); the stellar-disc mass fraction within 2.2 R_d of late
    types with the DiskMass range (Bershady+2011)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    lm = np.linspace(bins[0], bins[-1], 100)
    axes[0].plot(lm, rel.lovell18_fdm_rhalf(10**lm), "k-", lw=2,
                 label="TNG100 median, Lovell+2018\n(approximate reading)")
    axes[0].fill_between(lm, rel.lovell18_fdm_rhalf(10**lm) - rel.LOVELL18_FDM_SCATTER,
                         rel.lovell18_fdm_rhalf(10**lm) + rel.LOVELL18_FDM_SCATTER,
                         color="k", alpha=0.1, label=r"TNG100 1$\sigma$ $\lesssim$ 0.1")
    axes[1].axhline(rel.ATLAS3D_FDM_RE_MEDIAN, color="k", ls="--", lw=2,
                    label="ATLAS3D median 0.13\n(Cappellari+2013, ETGs)")
    lo, hi = rel.DISKMASS_DISC_FRACTION_2P2RD
    axes[2].axhspan(lo, hi, color="k", alpha=0.15, label="DiskMass 15-30 %\n(Bershady+2011)")
    axes[2].axhline(rel.DISKMASS_DISC_FRACTION_MAX, color="k", ls=":",
                    label="DiskMass upper bound 50 %")
    panels = (("fdm_rhalf", None), ("fdm_re", "early"), ("disc_fraction_2p2rd", "late"))
    for k, (name, frame) in enumerate(frames.items()):
        colour = f"C{k}"
        for ax, (column, kind) in zip(axes, panels, strict=True):
            sel = None if kind is None else (frame["early"] if kind == "early"
                                             else ~frame["early"].astype(bool))
            m = median_by_mass(frame, column, bins, sel)
            if not len(m):
                continue
            ax.plot(m["log_mstar"], m["median"], "-o", color=colour, ms=4,
                    label=f"mock '{name}'")
            if k == 0:
                ax.fill_between(m["log_mstar"], m["p16"], m["p84"], color=colour, alpha=0.15)
    xlabel = r"log$_{10}$ M$_*$ [M$_\odot$]"
    ylabels = (r"f$_{DM}$(<r$_{1/2}$), sphere of 3D half-mass radius",
               r"f$_{DM}$(<R$_e$), sphere of projected half-light R$_e$",
               r"M$_{disc,*}$/M$_{tot}$ within 2.2 R$_d$")
    titles = ("all galaxies vs TNG100", "early types vs ATLAS3D", "late types vs DiskMass")
    for ax, ylabel, title in zip(axes, ylabels, titles, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def universe_relation_figure(populations: dict[str, pd.DataFrame],
                             summaries: dict[str, pd.DataFrame] | None = None):
    """Every drawn relation of each universe against its published curve (binned medians).

    Panels from the population tables (no particles needed): SHMR (Moster+2013), half-mass
    sizes of early and late types (Shen+2003 converted with Szomoru+2013; Shen's half-light
    curve and the approximate TNG100 one dashed/dotted), quenched fraction (Moustakas+2013), HI
    (xGASS) and H2 (xCOLD GASS main sequence) fractions of late types, stellar (Gallazzi+2005)
    and gas-phase (Curti+2020) metallicity. With `summaries` (validation.summarise_galaxies of
    built galaxies, per universe), also sigma_e-M* (Zahid+2016), V80-M* (Reyes+2011) and
    M*/L_r against g - r (Bell+2003).
    """
    import matplotlib.pyplot as plt

    n_extra = 3 if summaries else 0
    n_panels = 8 + n_extra
    ncol = 4
    nrow = int(np.ceil(n_panels / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.4 * nrow))
    axes = axes.ravel()
    bins = np.arange(10.0, 11.81, 0.2)
    lm = np.linspace(10.0, 11.8, 100)
    ms = 10**lm

    def binned(ax, x, y, colour, label, stat=np.median):
        idx = np.digitize(x, bins)
        keep = [k for k in range(1, len(bins)) if (idx == k).sum() >= 3]
        ax.plot([0.5 * (bins[k - 1] + bins[k]) for k in keep],
                [stat(np.asarray(y)[idx == k]) for k in keep], "-o", ms=3, color=colour,
                label=label)

    xm = r"log$_{10}$ M$_*$ [M$_\odot$]"
    mh = np.linspace(11.3, 14.0, 100)
    axes[0].plot(mh, np.log10(rel.moster13_mstar(10**mh)), "k-", lw=2, label="Moster+2013")
    for kind, ax in (("early", axes[1]), ("late", axes[2])):
        e = np.full(len(ms), kind == "early")
        ax.plot(lm, np.log10(rel.shen03_mass_size(ms, e)[0]), "k-", lw=2,
                label="Shen+2003 x 0.75 (Szomoru+2013)")
        ax.plot(lm, np.log10(rel.shen03_size(ms, e)[0]), "k--", lw=1, label="Shen+2003 light")
        ax.plot(lm, np.log10(rel.tng100_size(ms, e)[0]), "k:", lw=1,
                label="TNG100 (approximate)")
    axes[3].plot(lm, rel.moustakas13_quiescent_fraction(ms), "k-", lw=2,
                 label="Moustakas+2013 (SDSS)")
    axes[4].plot(lm, rel.xgass_log_hi_fraction(ms), "k-", lw=2, label="xGASS (all galaxies)")
    axes[5].plot(lm, rel.xcoldgass_log_h2_fraction(ms), "k-", lw=2,
                 label="xCOLD GASS (main sequence)")
    axes[6].plot(lm, rel.gallazzi05_logz_split(ms)[0], "k-", lw=2, label="Gallazzi+2005")
    axes[7].plot(lm, rel.curti20_gas_log_z(ms), "k-", lw=2, label="Curti+2020")
    for k, (name, pop) in enumerate(populations.items()):
        c = f"C{k}"
        e = pop["early"].to_numpy(bool)
        binned_x = pop["log_m200c"].to_numpy()
        idx = np.digitize(binned_x, mh[::10])
        keep = [j for j in range(1, 10) if (idx == j).sum() >= 3]
        axes[0].plot([0.5 * (mh[::10][j - 1] + mh[::10][j]) for j in keep],
                     [np.median(pop["log_mstar"].to_numpy()[idx == j]) for j in keep], "-o",
                     ms=3, color=c, label=f"'{name}'")
        binned(axes[1], pop.loc[e, "log_mstar"], np.log10(pop.loc[e, "re_kpc"]), c, f"'{name}'")
        binned(axes[2], pop.loc[~e, "log_mstar"], np.log10(pop.loc[~e, "re_kpc"]), c,
               f"'{name}'")
        binned(axes[3], pop["log_mstar"], e.astype(float), c, f"'{name}' (fraction)",
               stat=np.mean)
        hi = np.log10(np.maximum(pop["m_hi"] / 1.36, 1.0) / pop["m_star"])
        h2 = np.log10(np.maximum(pop["m_h2"] / 1.36, 1.0) / pop["m_star"])
        binned(axes[4], pop.loc[~e, "log_mstar"], hi[~e], c, f"'{name}' late")
        binned(axes[5], pop.loc[~e, "log_mstar"], h2[~e], c, f"'{name}' late")
        binned(axes[6], pop["log_mstar"], pop["log_z_zsun"], c, f"'{name}'")
        binned(axes[7], pop["log_mstar"], pop["log_zgas_zsun"], c, f"'{name}'")
    labels = ((r"log$_{10}$ M$_{200c}$ [M$_\odot$]", xm, "SHMR"),
              (xm, r"log$_{10}$ R$_e$ [kpc], half-mass", "size-mass, early types"),
              (xm, r"log$_{10}$ R$_e$ [kpc], half-mass", "size-mass, late types"),
              (xm, "quenched (early) fraction", "quenched fraction"),
              (xm, r"log$_{10}$ M$_{HI}$/M$_*$", "atomic gas"),
              (xm, r"log$_{10}$ M$_{H2}$/M$_*$", "molecular gas"),
              (xm, r"log$_{10}$ Z$_*$/Z$_\odot$ (median)", "stellar metallicity"),
              (xm, r"log$_{10}$ Z$_{gas}$/Z$_\odot$", "gas-phase metallicity"))
    if summaries:
        axes[8].plot(lm, rel.zahid16_log_sigma(ms), "k-", lw=2, label="Zahid+2016")
        axes[9].plot(lm, rel.reyes11_log_v80(ms), "k-", lw=2, label="Reyes+2011")
        gr = np.linspace(0.2, 0.9, 50)
        axes[10].plot(gr, rel.bell03_log_ml_r(gr), "k-", lw=2, label="Bell+2003 (Chabrier)")
        for k, (name, s) in enumerate(summaries.items()):
            c = f"C{k}"
            e = (s["galaxy_type"] == "early").to_numpy()
            binned(axes[8], s.loc[e, "log_mstar"], np.log10(s.loc[e, "sigma_e_kms"]), c,
                   f"'{name}' early")
            binned(axes[9], s.loc[~e, "log_mstar"], np.log10(s.loc[~e, "v80_kms"]), c,
                   f"'{name}' late")
            axes[10].scatter(s["g_minus_r"], s["log_ml_r"], s=6, color=c, label=f"'{name}'")
        labels += ((xm, r"log$_{10}$ $\sigma_e$ [km s$^{-1}$]", "sigma-M*, early types"),
                   (xm, r"log$_{10}$ V$_{80}$ [km s$^{-1}$]", "Tully-Fisher, late types"),
                   ("g - r [mag] (dust-free)", r"log$_{10}$ M$_*$/L$_r$ [M$_\odot$/L$_\odot$]",
                    "M/L against colour"))
    for ax, (xl, yl, title) in zip(axes, labels, strict=False):
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    fig.suptitle("Mock universes (binned medians) against published relations (black)")
    fig.tight_layout()
    return fig
