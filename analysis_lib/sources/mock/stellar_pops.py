"""Ages and metallicities of mock star particles: stochastic star-formation histories.

Every component (bulge, disc) of a galaxy samples its particle ages from one star-formation
history (SFH) built here; choices are ours unless a reference is named, and none is tuned to
the study's results.

- Smooth part: a delayed-exponential SFR(t) ~ t exp(-t/tau), t since the component's start
  (delayed-tau histories describe main-sequence galaxies best, Speagle et al. 2014). Spheroids
  (bulges, of every type) start U(11.5, 13) Gyr ago with tau = 1 Gyr (M*/1e11)^-0.3
  ('downsizing'). Discs start U(10, 12)
  Gyr ago with tau = 5 Gyr (M*/1e10)^-0.2, stretched with radius (tau (0.7 + 0.3 R/R_d):
  inside-out growth); the discs of quenched galaxies are such discs, quenched. tau scatters by
  SFH_TAU_SCATTER_DEX = 0.2 dex between galaxies (an age spread at fixed mass; the previous
  0.1 dex left a one-parameter family with too little M*/L scatter at fixed colour).
- Stochastic part (`mock.sfh_burstiness`, dex): the SFR is multiplied by 10^(b e_k), e_k
  independent unit normals in BURST_BIN_GYR = 0.2 Gyr bins of lookback time, one series per
  galaxy shared by its components. The default b = 0.2 dex is the width of the star-forming
  main sequence (Speagle et al. 2014, ApJS 214, 15: ~0.2 dex after deconvolving the SFR
  indicators' scatter), which bounds SFR variability on these (~0.1-0.2 Gyr) timescales: an
  upper bound, since tau and start times scatter too. The `bursty` universe raises it.
  Check (not tuned to it): shortcuts.age_metallicity_table sets the mock's r-light-weighted
  ages and metallicities (dataset diagnostics log_age_r, log_z_r) beside Gallazzi et al.
  (2005)'s percentiles.
- Quenching (quenched galaxies): the smooth SFR declines exp(-(t_q - age)/tau_q) after the
  quenching lookback time t_q ~ U(0.5, 8) Gyr (a broad spread: quiescent galaxies quench over
  most of cosmic time, e.g. Pacifici et al. 2016, ApJ 832, 79; the range is our choice), with
  tau_q log-uniform in 0.1-1 Gyr (fast and slow quenching; transition times of ~1-2 Gyr in
  GAMA, Bravo et al. 2023).
- Residual star formation of quenched galaxies that hold molecular gas (ATLAS3D: 22 %,
  Young et al. 2011; population column m_h2): SFR_res = M_H2 / t_dep since quenching, with
  t_dep = 2.5 x 2 Gyr = 5 Gyr: the Bigiel et al. (2008) molecular depletion time of spirals
  (2 Gyr, helium included) lengthened by the factor ~2.5 lower efficiency of ATLAS3D early
  types (Davis et al. 2014, MNRAS 444, 3427).
- Metallicity (`MetallicityModel`, defaults in DEFAULT_METALLICITY): the galaxy's Gallazzi et
  al. (2005) log Z/Zsun plus component offsets and gradients, and a particle scatter. Bulges:
  -0.3 dex per dex in r / R_e,bulge, the typical gradient of ellipticals (Kobayashi & Arimoto
  1999, astro-ph/9907091, abstract: d[Fe/H]/dlog r ~ -0.3; Tamura & Ohta 2003, astro-ph/0304404,
  abstract: -0.3 +- 0.1 from colour gradients in Abell 2199), offset +0.05 dex at R_e,bulge (our
  choice). Discs: -0.1 dex per disc half-mass radius (our choice). Particle scatter 0.1 dex (our
  choice; the metallicity dispersion of solar-neighbourhood stars younger than 3 Gyr is about
  0.1 dex, Haywood 2006, astro-ph/0609523, abstract). The model's other fields (a
  galaxy-to-galaxy spread of the bulge gradient, an age-metallicity relation within each
  component) are off by default: colour_ml.ml_colour_lever_table switches them on to show how
  little they move the M*/L scatter at fixed colour. Gallazzi+05 use BC03, whose solar
  metallicity is Z = 0.02, so Z = 0.02 x 10^[log Z/Zsun] (GALLAZZI_ZSUN). Gas metallicities
  (Curti et al. 2020, 12 + log O/H relative to 8.69) keep the project's Zsun = 0.0127
  (particles.SOLAR_METALLICITY), which the dust model also uses. The galaxy's metallicity is
  drawn independently of its history: observed ellipticals anti-correlate age and metallicity at
  fixed sigma (the 'Z-plane' of Trager et al. 2000, AJ 120, 165; astro-ph/0004095), but no
  coefficient could be verified here. A trial (not kept) with log Z shifted by -0.7 dex per dex
  of quenching lookback time gave early types an age-Z correlation of -0.3 to -0.5 at fixed mass
  and moved their dust-free M*/L_r scatter about g - r only from 0.039 to 0.041 dex: for these
  composite populations g - r and M*/L_r move almost together along the age-metallicity
  degeneracy (Bell & de Jong 2001, ApJ 550, 212, abstract: colour-M/L trends are robust to
  stellar-population and history uncertainties, modest bursts included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis_lib.particles import SOLAR_METALLICITY

GALLAZZI_ZSUN = 0.02  # BC03's solar metallicity, the scale of Gallazzi+2005's log Z/Zsun
SPHEROID_START_GYR = (11.5, 13.0)
DISC_START_GYR = (10.0, 12.0)
SFH_TAU_SCATTER_DEX = 0.2
BURST_BIN_GYR = 0.2
QUENCH_LOOKBACK_GYR = (0.5, 8.0)
QUENCH_TAU_GYR = (0.1, 1.0)
ETG_H2_DEPLETION_GYR = 2.5 * 2.0  # Davis+2014 factor x Bigiel+2008 depletion time


@dataclass(frozen=True)
class MetallicityModel:
    """How star particles' metallicities scatter about the galaxy's Gallazzi+05 value.

    Attributes
    ----------
    bulge_offset_dex : float
        Spheroid log Z offset from the galaxy value at r = R_e,bulge.
    bulge_gradient : float
        Spheroid d log Z / d log r (dex per dex of r / R_e,bulge).
    bulge_gradient_scatter : float
        Galaxy-to-galaxy standard deviation of bulge_gradient (drawn once per spheroid);
        0 draws nothing.
    disc_gradient_per_re : float
        Disc d log Z / d(R / R_e,disc), R_e,disc = 1.678 R_d.
    particle_scatter_dex : float
        Gaussian log Z scatter of single particles about the component's profile.
    enrichment_dex : float
        Age-metallicity relation within a component: log Z rises linearly in formation time by
        this many dex from the component's start to today, with zero mean over its particles
        (so the galaxy's Gallazzi value stays the anchor); 0 = no relation.
    """

    bulge_offset_dex: float = 0.05
    bulge_gradient: float = -0.3
    bulge_gradient_scatter: float = 0.0
    disc_gradient_per_re: float = -0.1
    particle_scatter_dex: float = 0.1
    enrichment_dex: float = 0.0


DEFAULT_METALLICITY = MetallicityModel()


def _enrichment(age_gyr: np.ndarray, start_gyr: float, enrichment_dex: float) -> np.ndarray:
    """log Z offsets of an age-metallicity relation: linear in formation time, zero mean."""
    if enrichment_dex == 0 or not len(age_gyr):
        return np.zeros(len(age_gyr))
    formed = (start_gyr - age_gyr) / start_gyr  # 0 at the component's start, 1 today
    return enrichment_dex * (formed - formed.mean())


def spheroid_tau_gyr(m_star: float) -> float:
    """Median delayed-tau timescale of spheroids (Gyr) at total stellar mass M* (Msun)."""
    return float(np.clip(1.0 * (m_star / 1e11) ** -0.3, 0.3, 2.5))


def disc_tau_gyr(m_star: float) -> float:
    """Median delayed-tau timescale of star-forming discs (Gyr)."""
    return float(np.clip(5.0 * (m_star / 1e10) ** -0.2, 1.0, 15.0))


@dataclass
class GalaxyHistory:
    """The galaxy-wide parts of a star-formation history, drawn once per galaxy.

    quench_gyr = 0 for a star-forming galaxy; burst_log_factor holds log10 of the stochastic
    SFR factor in BURST_BIN_GYR bins of lookback time (bin k covers [k, k+1) x BURST_BIN_GYR);
    residual_fraction is the fraction of the stellar mass formed by residual star formation
    after quenching (uniform in age over [0, quench_gyr]).
    """

    early: bool
    tau_factor: float
    spheroid_start_gyr: float
    disc_start_gyr: float
    quench_gyr: float
    quench_tau_gyr: float
    burst_log_factor: np.ndarray
    residual_fraction: float


def draw_history(rng: np.random.Generator, early: bool, m_star: float, m_h2: float,
                 burstiness: float) -> GalaxyHistory:
    """Draw a galaxy's history parameters (see the module docstring).

    m_h2 is the galaxy's molecular gas mass (Msun, helium included); it feeds the residual
    star formation of quenched galaxies. burstiness (dex) must be >= 0.
    """
    if not np.isfinite(burstiness) or burstiness < 0:
        raise ValueError(f"mock.sfh_burstiness must be a number >= 0, got {burstiness!r}")
    tau_factor = float(10 ** rng.normal(0.0, SFH_TAU_SCATTER_DEX))
    sph_start = float(rng.uniform(*SPHEROID_START_GYR))
    disc_start = float(rng.uniform(*DISC_START_GYR))
    n_bins = int(np.ceil(SPHEROID_START_GYR[1] / BURST_BIN_GYR)) + 1
    bursts = burstiness * rng.normal(size=n_bins)
    quench = float(rng.uniform(*QUENCH_LOOKBACK_GYR)) if early else 0.0
    q_tau = float(np.exp(rng.uniform(*np.log(QUENCH_TAU_GYR)))) if early else 1.0
    residual = 0.0
    if early and m_h2 > 0:
        mass_res = m_h2 / (ETG_H2_DEPLETION_GYR * 1e9) * quench * 1e9  # Msun
        residual = float(min(mass_res / m_star, 0.5))
    return GalaxyHistory(bool(early), tau_factor, sph_start, disc_start, quench, q_tau,
                         bursts, residual)


def sample_ages(rng: np.random.Generator, tau_gyr: np.ndarray | float, start_gyr: float,
                n: int, history: GalaxyHistory | None = None) -> np.ndarray:
    """Ages (Gyr) of n stars from SFR ~ t exp(-t/tau) x bursts x quenching, t = start - age.

    Smooth ages are drawn exactly (t ~ Gamma(2, tau), truncated at the start); the stochastic
    factor and the post-quenching decline are applied by rejection (acceptance = factor /
    its maximum), and a residual_fraction of the stars is then redrawn uniformly in age since
    quenching. Without a history, the smooth delayed-tau ages are returned.
    """
    tau = np.broadcast_to(np.asarray(tau_gyr, float), (n,)).copy()
    out = np.empty(n)
    todo = np.arange(n)
    log_f = None if history is None else history.burst_log_factor
    log_max = 0.0 if log_f is None else float(np.max(log_f))
    for _ in range(10000):
        if not len(todo):
            break
        t = rng.gamma(2.0, tau[todo])
        ok = t < start_gyr
        age = start_gyr - t
        if history is not None:
            k = np.clip((np.maximum(age, 0) / BURST_BIN_GYR).astype(int), 0, len(log_f) - 1)
            accept = 10 ** (log_f[k] - log_max)
            if history.quench_gyr > 0:
                after = age < history.quench_gyr
                accept = np.where(after, accept * np.exp(-(history.quench_gyr - age)
                                                         / history.quench_tau_gyr), accept)
            ok &= rng.uniform(size=len(todo)) < accept
        out[todo[ok]] = age[ok]
        todo = todo[~ok]
    if len(todo):  # pathological history (all mass after a very early quench): smooth ages
        out[todo] = start_gyr - np.minimum(rng.gamma(2.0, tau[todo]), start_gyr)
    if history is not None and history.residual_fraction > 0:
        res = rng.uniform(size=n) < history.residual_fraction
        out[res] = rng.uniform(0.0, history.quench_gyr, int(res.sum()))
    return out


def _to_z(log_z_zsun: np.ndarray) -> np.ndarray:
    """Gallazzi+05 log Z/Zsun (BC03 scale, Zsun = 0.02) to a metal mass fraction Z."""
    return GALLAZZI_ZSUN * 10 ** np.clip(log_z_zsun, -2.5, 0.6)


def bulge_populations(rng: np.random.Generator, r_kpc: np.ndarray, re_bulge: float,
                      m_star: float, log_z_gal: float, history: GalaxyHistory,
                      zmodel: MetallicityModel = DEFAULT_METALLICITY
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(age Gyr, Z) for spheroid particles at 3D radius r (metallicities: `zmodel`)."""
    tau = spheroid_tau_gyr(m_star) * history.tau_factor
    age = sample_ages(rng, tau, history.spheroid_start_gyr, len(r_kpc), history)
    gradient = zmodel.bulge_gradient
    if zmodel.bulge_gradient_scatter > 0:
        gradient += zmodel.bulge_gradient_scatter * rng.normal()
    log_z = (log_z_gal + zmodel.bulge_offset_dex
             + gradient * np.log10(np.maximum(r_kpc, 1e-3) / re_bulge)
             + rng.normal(0, zmodel.particle_scatter_dex, len(r_kpc))
             + _enrichment(age, history.spheroid_start_gyr, zmodel.enrichment_dex))
    return age, _to_z(log_z)


def disc_populations(rng: np.random.Generator, r_cyl_kpc: np.ndarray, r_d: float,
                     m_star: float, log_z_gal: float, history: GalaxyHistory,
                     zmodel: MetallicityModel = DEFAULT_METALLICITY
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(age Gyr, Z) for disc particles at cylindrical radius R (metallicities: `zmodel`).

    Discs of quenched galaxies are faded star-forming discs: the same inside-out history,
    stopped at the galaxy's quenching time (red spirals 'ceased star formation gradually' and
    are not post-starbursts, Masters et al. 2010).
    """
    n = len(r_cyl_kpc)
    tau = disc_tau_gyr(m_star) * history.tau_factor * (0.7 + 0.3 * r_cyl_kpc / r_d)
    age = sample_ages(rng, tau, history.disc_start_gyr, n, history)
    log_z = (log_z_gal + zmodel.disc_gradient_per_re * (r_cyl_kpc / (1.678 * r_d) - 1.0)
             + rng.normal(0, zmodel.particle_scatter_dex, n)
             + _enrichment(age, history.disc_start_gyr, zmodel.enrichment_dex))
    return age, _to_z(log_z)


def gas_metallicity(r_cyl_kpc: np.ndarray, r_d: float, log_z_gas: float) -> np.ndarray:
    """Gas Z: log_z_gas (log Z/Zsun) at R_e = 1.678 R_d and the disc's -0.1 dex per R_e gradient.

    The gradient is the CALIFA one (Sanchez et al. 2014); the value at R_e comes from the
    gas-phase mass-metallicity relation (population column log_zgas_zsun), relative to the
    project's Zsun = 0.0127 (Curti+2020 quote 12 + log O/H against the solar 8.69).
    """
    log_z = log_z_gas - 0.1 * (r_cyl_kpc / (1.678 * r_d) - 1.0)
    return SOLAR_METALLICITY * 10 ** np.clip(log_z, -2.5, 0.6)
