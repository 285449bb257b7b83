"""The mock galaxy population at z ~ 0: one row per galaxy, drawn from published relations.

Recipe (defaults; knobs in cfg['mock']):

1. Halo masses M200c from the Tinker+2008 mass function (colossus, TNG Planck15 cosmology)
   between 10^11.2 Msun (well below where Moster's median reaches M* = 1e10) and
   cfg['data']['max_halo_mass'].
2. Stellar mass from the Moster+2013 SHMR with log-normal scatter (cfg['mock']['shmr_scatter_dex']).
3. Early (quenched) or late type with the SDSS quiescent fraction of Moustakas+2013.
4. Structure: bulge-to-total from type-dependent distributions that overlap (red discs and blue
   bulges at observed rates, see draw_bulge_to_total); projected half-mass radius from the
   size-mass relation (Shen+2003 default; its early/late split is by structure, B/T >= 0.5
   here, see SIZE_SPLIT_BY_STRUCTURE); late-type bulges are 4x more compact
   than their disc (R_e,bulge = 0.25 x 1.678 R_d), early-type bulge and disc share R_e; both
   components are then scaled together so that the face-on projected half-mass radius of the
   whole galaxy is the drawn R_e; sech^2 thickness z0 ~ U(0.1, 0.2) R_d. Cold gas in two
   exponential discs, each with a helium factor 1.36 and half the stellar thickness: HI from
   xGASS with scale length R_HI / 2, R_HI from the Wang+2016 HI size-mass relation (this
   makes Sigma_HI(R_HI) = 2 M_HI / (pi R_HI^2) e^-2 ~ 1 Msun/pc^2 and a central HI density of
   ~7 Msun/pc^2, near the observed saturation); H2 from xCOLD GASS with the stellar disc's
   scale length (molecular gas follows the stars, Leroy+2008). Early (quenched) types follow
   ATLAS3D instead: 22 % hold molecular gas (Young+2011) and 32 % HI (Serra+2012), with
   log M_H2/M* ~ N(-2.14, 0.76) and log M_HI/M* ~ N(-2.08, 0.86) when they do (relations.py:
   from the published tables); the rest have none.
   Metallicities: stars from Gallazzi+2005 (median and its skewed 16-84 % range, a split
   normal); gas from the Curti+2020 gas-phase mass-metallicity relation with
   0.08 dex scatter, both at R_e, with a -0.1 dex per R_e gradient. Slow rotators (early
   types, probability 0.05 + 0.9 / (1 + exp(-(log M* - 11.4) / 0.15)), ATLAS3D-like, our
   choice) are pure non-rotating spheroids; other spheroids rotate (a random fraction
   U(0.3, 0.8) of their retrograde stars is flipped, which keeps the equilibrium). Spin axes
   are isotropic.
5. NFW with colossus diemer19 concentration and log-normal scatter.
6. Sample cut as the paper: M*(<30 kpc, 3D) > cfg['data']['min_mstar_30kpc'] (analytic).

Galaxies are drawn in fixed-size batches until n are accepted, so the table depends only on
the seed and the sample cuts, and a smaller n gives the first rows of a larger one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis_lib.rng import make_rng
from analysis_lib.sources.mock import relations as rel

H_TNG = 0.6774
LOG_M200_MIN = 11.2
HE_FACTOR = 1.36  # total cold gas / hydrogen
GAS_MZR_SCATTER_DEX = 0.08  # about the scatter of the Curti+2020 gas-phase MZR
BATCH = 2048  # haloes drawn per batch (fixed, so the first rows do not depend on n)


def halo_mass_function_sampler(log_m_min: float, log_m_max: float):
    """Inverse-CDF sampler of log10 M200c (Msun) from the Tinker+2008 dn/dlnM at z = 0."""
    from analysis_lib import offline

    offline.colossus_cosmology()
    from colossus.lss import mass_function

    log_m = np.linspace(log_m_min, log_m_max, 400)
    dndlnm = mass_function.massFunction(10**log_m * H_TNG, 0.0, mdef="200c", model="tinker08",
                                        q_out="dndlnM")
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dndlnm[1:] + dndlnm[:-1]) * np.diff(log_m))])
    cdf /= cdf[-1]
    return lambda u: np.interp(u, cdf, log_m)


def concentration_median(m200c: np.ndarray, model: str) -> np.ndarray:
    """colossus c200c(M) at z = 0 (median; M in Msun, converted to Msun/h for colossus)."""
    from analysis_lib import offline

    offline.colossus_cosmology()
    from colossus.halo import concentration

    return np.asarray(concentration.concentration(np.asarray(m200c) * H_TNG, "200c", 0.0,
                                                  model=model), dtype=float)


def r200c_kpc(m200c: np.ndarray) -> np.ndarray:
    """r200c in physical kpc at z = 0 (rho_crit of H0 = 67.74 km/s/Mpc)."""
    h0 = 67.74 / 1000.0  # km/s/kpc
    rho_crit = 3 * h0**2 / (8 * np.pi * rel.G_KPC_KMS2_MSUN)  # Msun/kpc^3
    return (3 * np.asarray(m200c) / (4 * np.pi * 200 * rho_crit)) ** (1 / 3)


def hernquist_projected_fraction(r_proj: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Fraction of a Hernquist sphere's mass inside projected radius R (Hernquist 1990 eq. 37)."""
    s = np.maximum(np.asarray(r_proj, float) / a, 1e-9)
    s = np.where(np.abs(s - 1) < 1e-6, 1 + 1e-6, s)
    inner = np.arccosh(1 / np.minimum(s, 1 - 1e-12)) / np.sqrt(np.abs(1 - s**2))
    outer = np.arccos(1 / np.maximum(s, 1 + 1e-12)) / np.sqrt(np.abs(s**2 - 1))
    x = np.where(s < 1, inner, outer)
    return s**2 * (x - 1) / (1 - s**2)


def composite_scale(re: np.ndarray, bt: np.ndarray, bulge_re_frac: np.ndarray) -> np.ndarray:
    """Factor k such that bulge (R_e,b = k f R_e) + disc (R_d = k R_e / 1.678) have a face-on
    projected half-mass radius equal to R_e, so the size-mass relation describes the whole
    galaxy rather than one component. Solved by bisection (k = 1 for a single component)."""
    lo, hi = np.full_like(re, 0.2), np.full_like(re, 5.0)
    for _ in range(50):
        k = np.sqrt(lo * hi)
        a = k * bulge_re_frac * re / 1.8153
        x = re / (k * re / 1.678)
        frac = bt * hernquist_projected_fraction(re, a) + (1 - bt) * (1 - (1 + x) * np.exp(-x))
        too_small = frac > 0.5  # more than half inside R_e: components too compact
        lo = np.where(too_small, k, lo)
        hi = np.where(too_small, hi, k)
    return np.sqrt(lo * hi)


def stellar_mass_within(r_kpc: float, m_star: np.ndarray, bt: np.ndarray, bulge_a: np.ndarray,
                        disc_rd: np.ndarray) -> np.ndarray:
    """Analytic M*(<r) (3D sphere): Hernquist bulge + thin exponential disc."""
    mb = m_star * bt * r_kpc**2 / (r_kpc + bulge_a) ** 2
    x = r_kpc / disc_rd
    md = m_star * (1 - bt) * (1 - (1 + x) * np.exp(-x))
    return mb + md


def _cold_gas(rng: np.random.Generator, m_star: np.ndarray, early: np.ndarray,
              log_fhi_sf: np.ndarray, log_fh2_sf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HI and H2 hydrogen masses (Msun): star-forming relations for late types; for early types
    the ATLAS3D detection rates and the fractions of the detected ones, zero otherwise."""
    n = len(m_star)
    det_hi = rng.uniform(size=n) < rel.ATLAS3D_HI_DETECTED
    det_h2 = rng.uniform(size=n) < rel.ATLAS3D_H2_DETECTED
    log_fhi_q = rel.ATLAS3D_HI_LOG_FRACTION[0] + rng.normal(0, rel.ATLAS3D_HI_LOG_FRACTION[1], n)
    log_fh2_q = rel.ATLAS3D_H2_LOG_FRACTION[0] + rng.normal(0, rel.ATLAS3D_H2_LOG_FRACTION[1], n)
    m_hi = np.where(early, np.where(det_hi, 10**log_fhi_q, 0.0), 10**log_fhi_sf) * m_star
    m_h2 = np.where(early, np.where(det_h2, 10**log_fh2_q, 0.0), 10**log_fh2_sf) * m_star
    return m_hi, m_h2


# Size relations whose early/late split is structural (Shen+2003: Sersic n > 2.5 'early'), so
# red discs take late-type sizes and blue bulges early-type ones; the others (van der Wel+2014:
# UVJ colours; TNG100: star formation) split by quenching.
SIZE_SPLIT_BY_STRUCTURE = ("shen03", "shen03_mass")
# Morphology and star formation are correlated, not identical (see draw_bulge_to_total).
BLUE_EARLY_TYPE_FRACTION = 0.057  # Schawinski+2009 (MNRAS 396, 818): 5.7 +- 0.4 % of
#                                   morphological early types at z < 0.05 are blue
BLUE_BULGY_MAX = 0.15  # our cap: blue early types are 'virtually absent' above sigma 200 km/s
RED_DISC_FRACTION = 0.25  # our choice, between Masters+2010 (red spirals: a 'significant
#                           fraction' of massive spirals) and Bundy+2010 (passive discs: nearly
#                           half of the red sequence at z < 1, mostly bulgy Sa-Sb)


def draw_bulge_to_total(rng: np.random.Generator, log_ms: np.ndarray, early: np.ndarray,
                        slow: np.ndarray, p_slow: np.ndarray) -> np.ndarray:
    """Bulge-to-total mass ratios whose distributions for quenched and star-forming galaxies
    overlap, as observed (red discs, blue bulges), instead of a B/T cut that gives the type.

    Star-forming: disc-dominated, B/T ~ N(0.1 + 0.2 (log M* - 10.5), 0.1) in [0, 0.5]; a
    fraction p_b of them is bulge-dominated, B/T ~ U(0.5, 0.8) (the disc that remains keeps
    forming stars: Schawinski+2009's blue early types), with p_b chosen so that blue ones are
    5.7 % of all bulge-dominated galaxies at each mass: p_b (1 - f_q) = 0.057 / 0.943 x f_q
    (1 - f_rd (1 - p_slow)), the quenched bulge-dominated ones, at the Moustakas+2013 quiescent
    fraction f_q, capped at BLUE_BULGY_MAX. Quenched: slow rotators B/T = 1; of the others a
    fraction RED_DISC_FRACTION are red discs, B/T ~ U(0.1, 0.5) (Sa-Sb-like), the rest
    B/T ~ U(0.5, 1).
    """
    n = len(log_ms)
    f_q = np.clip(rel.moustakas13_quiescent_fraction(10**log_ms), 1e-3, 1 - 1e-3)
    red_bulgy = f_q * (1 - RED_DISC_FRACTION * (1 - p_slow))
    p_bulgy = np.minimum(BLUE_EARLY_TYPE_FRACTION / (1 - BLUE_EARLY_TYPE_FRACTION) * red_bulgy
                         / (1 - f_q), BLUE_BULGY_MAX)
    bulgy_sf = rng.uniform(size=n) < p_bulgy
    red_disc = rng.uniform(size=n) < RED_DISC_FRACTION
    bt_disc = np.clip(rng.normal(0.1 + 0.2 * (log_ms - 10.5), 0.1, n), 0.0, 0.5)
    bt_sf = np.where(bulgy_sf, rng.uniform(0.5, 0.8, n), bt_disc)
    bt_q = np.where(slow, 1.0, np.where(red_disc, rng.uniform(0.1, 0.5, n),
                                        rng.uniform(0.5, 1.0, n)))
    return np.where(early, bt_q, bt_sf)


def _draw_batch(rng: np.random.Generator, n: int, mcfg: dict, dcfg: dict,
                hmf_sampler) -> pd.DataFrame:
    log_mh = hmf_sampler(rng.uniform(size=n))
    m200 = 10**log_mh
    if mcfg["shmr"] != "moster13":
        raise ValueError(f"mock.shmr '{mcfg['shmr']}' unknown (have: moster13)")
    log_ms = np.log10(rel.moster13_mstar(m200)) + rng.normal(0, mcfg["shmr_scatter_dex"], n)
    m_star = 10**log_ms
    early = rng.uniform(size=n) < rel.moustakas13_quiescent_fraction(m_star)
    # ATLAS3D-like: slow rotators become common above ~2e11 Msun (logistic, our choice)
    p_slow = 0.05 + 0.9 / (1 + np.exp(-(log_ms - 11.4) / 0.15))
    slow = early & (rng.uniform(size=n) < p_slow)
    bt = draw_bulge_to_total(rng, log_ms, early, slow, p_slow)
    size_fn = rel.SIZE_RELATIONS[mcfg["size_relation"]]
    size_early = bt >= 0.5 if mcfg["size_relation"] in SIZE_SPLIT_BY_STRUCTURE else early
    re_med, sig_ln = size_fn(m_star, size_early)
    re = re_med * np.exp(rng.normal(0, 1, n) * sig_ln)
    bulge_frac = np.where(early, 1.0, 0.25)  # bulge R_e relative to the disc's (before scaling)
    k = composite_scale(re, bt, bulge_frac)
    bulge_a = k * bulge_frac * re / 1.8153  # Hernquist: projected R_e = 1.8153 a
    disc_rd = k * re / 1.678  # exponential disc: R_e = 1.678 R_d
    z0 = rng.uniform(0.1, 0.2, n) * disc_rd
    log_fhi = rel.xgass_log_hi_fraction(m_star) + rng.normal(0, 0.3, n)
    log_fh2 = rel.xcoldgass_log_h2_fraction(m_star) + rng.normal(0, 0.3, n)
    c_med = concentration_median(m200, mcfg["concentration_model"])
    conc = c_med * 10 ** rng.normal(0, mcfg["concentration_scatter_dex"], n)
    z_med, z_below, z_above = rel.gallazzi05_logz_split(m_star)
    u = rng.normal(0, 1, n)
    log_z = z_med + u * np.where(u > 0, z_above, z_below)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    log_zgas = rel.curti20_gas_log_z(m_star) + rng.normal(0, GAS_MZR_SCATTER_DEX, n)
    m_hi_h, m_h2_h = _cold_gas(rng, m_star, early, log_fhi, log_fh2)
    return pd.DataFrame({
        "m200c": m200, "log_m200c": log_mh, "r200c_kpc": r200c_kpc(m200), "concentration": conc,
        "m_star": m_star, "log_mstar": log_ms, "early": early, "slow_rotator": slow,
        "bt": bt, "re_kpc": re, "bulge_a_kpc": bulge_a, "disc_rd_kpc": disc_rd,
        "disc_z0_kpc": z0, "m_gas": HE_FACTOR * (m_hi_h + m_h2_h),
        "m_hi": HE_FACTOR * m_hi_h,
        "hi_rd_kpc": 0.5 * rel.wang16_hi_radius_kpc(np.maximum(m_hi_h, 1.0)),
        "m_h2": HE_FACTOR * m_h2_h, "h2_rd_kpc": disc_rd,
        "log_z_zsun": log_z, "log_zgas_zsun": log_zgas,
        "rotation_flip": np.where(slow, 0.0, rng.uniform(0.3, 0.8, n)),
        "spin_x": axis[:, 0], "spin_y": axis[:, 1], "spin_z": axis[:, 2],
        "mstar_30kpc": stellar_mass_within(30.0, m_star, bt, bulge_a, disc_rd),
        # spheroid OM anisotropy beta(r_half), drawn last (dynamics.py: Kronawitter+2000)
        "beta_rhalf": np.where(slow, rng.uniform(0.1, 0.5, n), rng.uniform(0.0, 0.3, n)),
    })


def draw_population(cfg: dict) -> pd.DataFrame:
    """The population table for cfg: n = cfg['data']['n_galaxies'] galaxies passing the cuts."""
    n = int(cfg["data"]["n_galaxies"])
    if n <= 0:
        raise ValueError(f"data.n_galaxies must be positive, got {n}")
    mcfg, dcfg = cfg["mock"], cfg["data"]
    log_m_max = np.log10(float(dcfg["max_halo_mass"]))
    sampler = halo_mass_function_sampler(LOG_M200_MIN, log_m_max)
    rng = make_rng(cfg["seed"], "mock-population")
    parts, have = [], 0
    while have < n:
        batch = _draw_batch(rng, BATCH, mcfg, dcfg, sampler)
        batch = batch[batch["mstar_30kpc"] > float(dcfg["min_mstar_30kpc"])]
        parts.append(batch)
        have += len(batch)
    pop = pd.concat(parts, ignore_index=True).iloc[:n].reset_index(drop=True)
    pop.insert(0, "galaxy_id", np.arange(n))
    pop["galaxy_type"] = np.where(pop["early"], "early", "late")
    return pop
