"""Particle galaxies with known answers, for tests and benchmarks (not for the dataset).

- Hernquist (1990) and Plummer spheres with isotropic Gaussian velocities whose dispersion is the
  exact isotropic Jeans solution of the self-gravitating model (a Jeans-consistent approximation
  to the distribution function; the tests only need second moments and zero rotation).
- A razor-thin exponential disc on circular orbits, v_c^2 = G M_tot(<r) / r in a dominant
  analytic Hernquist halo, so the spherical circular-orbit model of circularity.py is exact.
- A gas disc of fixed metallicity for dust tests.

Every draw comes from analysis_lib.rng with a seed and a purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis_lib.observe.circularity import G_KPC_KMS2_MSUN as G
from analysis_lib.particles import Galaxy, Gas, Stars
from analysis_lib.rng import galaxy_rng

ML_R = 2.0  # stellar M/L_r of the test populations, Msun/Lsun
G_OVER_R = 0.6  # L_g / L_r of the test populations


@dataclass
class HernquistProfile:
    """Analytic Hernquist mass, M(<r) = M r^2 / (r + a)^2 (e.g. a dark halo)."""

    mass: float
    a: float

    def enclosed_mass(self, r_kpc: np.ndarray) -> np.ndarray:
        r = np.asarray(r_kpc, dtype=float)
        return self.mass * r**2 / (r + self.a) ** 2


def _isotropic(rng: np.random.Generator, r: np.ndarray) -> np.ndarray:
    u = rng.normal(size=(len(r), 3))
    return u / np.linalg.norm(u, axis=1)[:, None] * r[:, None]


def _stars(pos, vel, mass, rng) -> Stars:
    n = len(pos)
    m = np.full(n, mass / n)
    lum_r = m / ML_R
    return Stars(pos=pos, vel=vel, mass=m, age_gyr=rng.uniform(0.0, 13.0, n),
                 metallicity=np.full(n, 0.0127), lum={"r": lum_r, "g": G_OVER_R * lum_r})


def hernquist_sigma2(r: np.ndarray, mass: float, a: float) -> np.ndarray:
    """Isotropic 1D velocity dispersion^2 of a self-gravitating Hernquist sphere (H90 eq. 10)."""
    x = np.asarray(r, dtype=float) / a
    bracket = (12 * x * (1 + x) ** 3 * np.log((1 + x) / x)
               - x / (1 + x) * (25 + 52 * x + 42 * x**2 + 12 * x**3))
    return np.clip(G * mass / (12 * a) * bracket, 0.0, None)


def hernquist_galaxy(n: int, mass: float = 1e10, a: float = 2.0, u_max: float = 0.99,
                     seed: int = 0, galaxy_id: int = 0) -> Galaxy:
    """A non-rotating Hernquist sphere truncated at mass fraction u_max (stars only)."""
    rng = galaxy_rng(seed, galaxy_id, "hernquist")
    su = np.sqrt(rng.uniform(0.0, u_max, n))
    r = a * su / (1 - su)
    pos = _isotropic(rng, r)
    vel = rng.normal(size=(n, 3)) * np.sqrt(hernquist_sigma2(r, mass * u_max, a))[:, None]
    return Galaxy(galaxy_id=galaxy_id, stars=_stars(pos, vel, mass * u_max, rng),
                  meta={"galaxy_type": "early", "source": "analytic"})


def plummer_galaxy(n: int, mass: float = 1e10, a: float = 2.0, u_max: float = 0.99,
                   seed: int = 0, galaxy_id: int = 0) -> Galaxy:
    """A non-rotating Plummer sphere truncated at mass fraction u_max (stars only)."""
    rng = galaxy_rng(seed, galaxy_id, "plummer")
    u = rng.uniform(0.0, u_max, n)
    r = a / np.sqrt(u ** (-2.0 / 3.0) - 1.0)
    pos = _isotropic(rng, r)
    sigma2 = G * mass / (6.0 * np.sqrt(r**2 + a**2))
    vel = rng.normal(size=(n, 3)) * np.sqrt(sigma2)[:, None]
    return Galaxy(galaxy_id=galaxy_id, stars=_stars(pos, vel, mass * u_max, rng),
                  meta={"galaxy_type": "early", "source": "analytic"})


def _exponential_radii(rng, n: int, r_d: float, r_max: float) -> np.ndarray:
    # inverse CDF of R exp(-R/r_d) by tabulation, truncated at r_max
    grid = np.linspace(0.0, r_max, 4001)
    cdf = 1.0 - (1.0 + grid / r_d) * np.exp(-grid / r_d)
    return np.interp(rng.uniform(0.0, cdf[-1], n), cdf, grid)


def cold_disc_galaxy(n: int, mass: float = 1e10, r_d: float = 3.0, halo_mass: float = 1e12,
                     halo_a: float = 20.0, seed: int = 0, galaxy_id: int = 0,
                     mirror: bool = True) -> Galaxy:
    """A razor-thin exponential disc in the x-y plane rotating about +z on circular orbits.

    With mirror=True every particle has a twin at (-x, -y) with opposite velocity, so the
    disc is exactly point-symmetric (its mean-velocity map must be exactly antisymmetric).
    """
    rng = galaxy_rng(seed, galaxy_id, "cold_disc")
    n_draw = n // 2 if mirror else n
    rad = _exponential_radii(rng, n_draw, r_d, 6.0 * r_d)
    phi = rng.uniform(0.0, 2 * np.pi, n_draw)
    pos = np.column_stack([rad * np.cos(phi), rad * np.sin(phi), np.zeros(n_draw)])
    if mirror:
        pos = np.concatenate([pos, pos * np.array([-1.0, -1.0, 1.0])])
    halo = HernquistProfile(halo_mass, halo_a)
    galaxy = Galaxy(galaxy_id=galaxy_id, stars=_stars(pos, np.zeros_like(pos), mass, rng),
                    dm=halo, meta={"galaxy_type": "late", "source": "analytic",
                                   "spin_axis": [0.0, 0.0, 1.0]})
    rcyl = np.hypot(pos[:, 0], pos[:, 1])
    vc = np.sqrt(G * galaxy.enclosed_mass("total", rcyl) / np.maximum(rcyl, 1e-9))
    galaxy.stars.vel = np.column_stack([-vc * pos[:, 1] / np.maximum(rcyl, 1e-9),
                                        vc * pos[:, 0] / np.maximum(rcyl, 1e-9),
                                        np.zeros(len(pos))])
    return galaxy


def gas_disc(n: int, mass: float, r_d: float, z0: float, metallicity: float = 0.0127,
             seed: int = 0, galaxy_id: int = 0) -> Gas:
    """A gas disc in the x-y plane: exponential in R, Gaussian in z (scale z0), at rest."""
    rng = galaxy_rng(seed, galaxy_id, "gas_disc")
    rad = _exponential_radii(rng, n, r_d, 6.0 * r_d)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    pos = np.column_stack([rad * np.cos(phi), rad * np.sin(phi), rng.normal(0.0, z0, n)])
    return Gas(pos=pos, vel=np.zeros_like(pos), mass=np.full(n, mass / n),
               metallicity=np.full(n, metallicity))
