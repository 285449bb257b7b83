"""Ages and metallicities of mock star particles: star-formation histories with radial trends.

Choices (ours, stated; none tuned to the study's results):
- Each component forms stars with a delayed-exponential history SFR(t) ~ t exp(-t/tau), t since
  its start. Spheroids (all components of early types, and late-type bulges) start 12.5 Gyr ago
  with tau = 1 Gyr (M*/1e11)^-0.3 (lower-mass spheroids form longer: 'downsizing'), 0.1 dex
  scatter; early-type discs take 1.5 x that tau. Early types (quenched) stop forming stars
  t_q ~ U(1, 3) Gyr ago (drawn per galaxy), so their SFR over the last Gyr is zero.
  Late-type discs start 11.5 Gyr ago with tau = 5 Gyr (M*/1e10)^-0.2, stretched with radius
  (tau (0.7 + 0.3 R/R_d), inside-out growth: younger outskirts). The resulting sSFR of late
  types is measured in the mock report, not tuned.
- Metallicity: the galaxy's drawn Gallazzi+2005 value (log Z/Zsun) plus component offsets and
  gradients: bulges +0.05 dex and -0.2 dex per dex in r / R_e,bulge; discs -0.1 dex per disc
  half-mass radius (1.678 R_d) about it; 0.1 dex particle scatter. Z = Zsun 10^[log Z/Zsun] with
  the project's Zsun = 0.0127 (particles.SOLAR_METALLICITY).
"""

from __future__ import annotations

import numpy as np

from analysis_lib.particles import SOLAR_METALLICITY

SPHEROID_START_GYR = 12.5
DISC_START_GYR = 11.5


def spheroid_tau_gyr(m_star: float) -> float:
    """Median delayed-tau timescale of spheroids (Gyr) at total stellar mass M* (Msun)."""
    return float(np.clip(1.0 * (m_star / 1e11) ** -0.3, 0.3, 2.5))


def disc_tau_gyr(m_star: float) -> float:
    """Median delayed-tau timescale of star-forming discs (Gyr)."""
    return float(np.clip(5.0 * (m_star / 1e10) ** -0.2, 1.0, 15.0))


def sample_delayed_tau_ages(rng: np.random.Generator, tau_gyr: np.ndarray | float,
                            start_gyr: float, n: int, stop_gyr: float = 0.0) -> np.ndarray:
    """Ages (Gyr) of n stars from SFR ~ t exp(-t/tau), t = start - age, ages in [stop, start].

    `stop_gyr` > 0 truncates star formation that long ago (quenching).
    """
    tau = np.broadcast_to(np.asarray(tau_gyr, float), (n,)).copy()
    t = np.empty(n)
    todo = np.arange(n)
    while len(todo):
        draw = rng.gamma(2.0, tau[todo])
        ok = draw < start_gyr - stop_gyr
        t[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return start_gyr - t


def bulge_populations(rng: np.random.Generator, r_kpc: np.ndarray, re_bulge: float,
                      m_star: float, log_z_gal: float, quench_gyr: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(age Gyr, Z) for spheroid particles at 3D radius r; no stars younger than quench_gyr."""
    tau = spheroid_tau_gyr(m_star) * 10 ** rng.normal(0, 0.1)
    age = sample_delayed_tau_ages(rng, tau, SPHEROID_START_GYR, len(r_kpc), quench_gyr)
    log_z = (log_z_gal + 0.05 - 0.2 * np.log10(np.maximum(r_kpc, 1e-3) / re_bulge)
             + rng.normal(0, 0.1, len(r_kpc)))
    return age, SOLAR_METALLICITY * 10 ** np.clip(log_z, -2.5, 0.6)


def disc_populations(rng: np.random.Generator, r_cyl_kpc: np.ndarray, r_d: float,
                     m_star: float, log_z_gal: float, early: bool, quench_gyr: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(age Gyr, Z) for disc particles at cylindrical radius R (early: quenched discs)."""
    n = len(r_cyl_kpc)
    if early:
        tau = 1.5 * spheroid_tau_gyr(m_star) * 10 ** rng.normal(0, 0.1)
        age = sample_delayed_tau_ages(rng, tau, SPHEROID_START_GYR, n, quench_gyr)
    else:
        tau = disc_tau_gyr(m_star) * 10 ** rng.normal(0, 0.1)
        age = sample_delayed_tau_ages(rng, tau * (0.7 + 0.3 * r_cyl_kpc / r_d), DISC_START_GYR, n)
    log_z = log_z_gal - 0.1 * (r_cyl_kpc / (1.678 * r_d) - 1.0) + rng.normal(0, 0.1, n)
    return age, SOLAR_METALLICITY * 10 ** np.clip(log_z, -2.5, 0.6)


def gas_metallicity(r_cyl_kpc: np.ndarray, r_d: float, log_z_gas: float) -> np.ndarray:
    """Gas Z: log_z_gas (log Z/Zsun) at R_e = 1.678 R_d and the disc's -0.1 dex per R_e gradient.

    The gradient is the CALIFA one (Sanchez et al. 2014); the value at R_e comes from the
    gas-phase mass-metallicity relation (population column log_zgas_zsun).
    """
    log_z = log_z_gas - 0.1 * (r_cyl_kpc / (1.678 * r_d) - 1.0)
    return SOLAR_METALLICITY * 10 ** np.clip(log_z, -2.5, 0.6)
