"""The dark halo of the JAM models: an NFW sphere tied to a mass-concentration relation.

Why this shape: inside +-3 R_half the kinematics cannot separate a halo's normalisation from its
scale radius, so, as dynamical-modelling surveys do (e.g. Zhu et al. 2023 for MaNGA), the halo has
one free parameter, M200 (mass inside the radius enclosing 200 times the critical density), and
its scale radius follows the Dutton & Maccio (2014, MNRAS 441, 3359) z = 0 relation for NFW
haloes in a Planck cosmology. This is deliberately *not* the relation the mock universe draws its
haloes from (Diemer & Joyce 2019 with scatter): a JAM user would not know it either.

JAM needs the halo as a Multi-Gaussian Expansion of its projected density; the NFW shape is
universal in r / r_s, so it is fitted once (mgefit's 1-D fitter) in those units and rescaled.
Units: kpc, Msun, Msun/kpc^3 unless a name says pc or arcsec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# G in kpc (km/s)^2 / Msun, and the z = 0 critical density for TNG's Planck15 cosmology
# (H0 = 67.74 km/s/Mpc): rho_crit = 3 H0^2 / (8 pi G).
G_KPC_KMS2_MSUN = 4.30091e-6
HUBBLE_H = 0.6774
H0_KMS_KPC = 0.1 * HUBBLE_H
RHO_CRIT_MSUN_KPC3 = 3 * H0_KMS_KPC**2 / (8 * np.pi * G_KPC_KMS2_MSUN)
DELTA = 200.0


def concentration_dm14(m200_msun: float | np.ndarray) -> float | np.ndarray:
    """Median NFW c200 at z = 0 from Dutton & Maccio (2014): log c = 0.905 - 0.101 log(M/1e12/h)."""
    m = np.asarray(m200_msun, dtype=float)
    return 10 ** (0.905 - 0.101 * np.log10(m * HUBBLE_H / 1e12))


def _mu(x: np.ndarray | float) -> np.ndarray | float:
    """NFW enclosed-mass shape: ln(1 + x) - x / (1 + x)."""
    return np.log1p(x) - x / (1 + x)


@dataclass(frozen=True)
class NFWHalo:
    """A spherical NFW halo: rho(r) = rho_s / [(r/r_s) (1 + r/r_s)^2]."""

    m200_msun: float
    r200_kpc: float
    rs_kpc: float
    rho_s_msun_kpc3: float

    @classmethod
    def from_m200(cls, m200_msun: float) -> NFWHalo:
        """The halo of mass M200 with its scale radius from the Dutton & Maccio relation."""
        r200 = (3 * m200_msun / (4 * np.pi * DELTA * RHO_CRIT_MSUN_KPC3)) ** (1 / 3)
        c = float(concentration_dm14(m200_msun))
        rs = r200 / c
        rho_s = m200_msun / (4 * np.pi * rs**3 * _mu(c))
        return cls(float(m200_msun), float(r200), float(rs), float(rho_s))

    def enclosed_mass(self, r_kpc: float | np.ndarray) -> float | np.ndarray:
        """Mass (Msun) inside a sphere of radius r (exact, not the MGE approximation)."""
        return 4 * np.pi * self.rho_s_msun_kpc3 * self.rs_kpc**3 * _mu(
            np.asarray(r_kpc) / self.rs_kpc)


# The unit halo is represented from 1e-3 r_s (inside the central map pixel for R_half / r_s > 0.01)
# to 30 r_s (beyond r200 for c < 30); 12 Gaussians then match the NFW enclosed mass to 0.5 %
# from 3e-3 r_s outwards.
_X_MIN, _X_MAX, _N_SAMPLES = 1e-3, 30.0, 300


@lru_cache(maxsize=4)
def unit_nfw_mge(ngauss: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """MGE of rho / rho_s = 1 / [x (1 + x)^2] in x = r / r_s: (total_counts, sigma_x).

    For a fit to an intrinsic density, mgefit's total_counts is the peak surface density of each
    projected spherical Gaussian (in rho_s * r_s units).
    """
    import contextlib
    import io

    import mgefit

    x = np.geomspace(_X_MIN, _X_MAX, _N_SAMPLES)
    rho = 1 / (x * (1 + x) ** 2)
    with contextlib.redirect_stdout(io.StringIO()):  # fit_1d prints even when quiet
        fit = mgefit.fit_1d(x, rho, ngauss=ngauss, quiet=True, plot=False)
    counts, sigma = (np.asarray(a, float) for a in fit.sol)
    model = (counts[:, None] / (np.sqrt(2 * np.pi) * sigma[:, None])
             * np.exp(-0.5 * (x / sigma[:, None]) ** 2)).sum(0)
    worst = float(np.max(np.abs(model / rho - 1)[x > 3 * _X_MIN]))
    if worst > 0.1:
        raise ValueError(f"NFW MGE with {ngauss} Gaussians is off by {worst:.0%}; use more")
    return counts, sigma


def halo_mge(halo: NFWHalo, pc_per_arcsec: float, ngauss: int = 12
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The halo as a JAM mass MGE: (surf Msun/pc^2, sigma arcsec, qobs = 1)."""
    counts, sigma_x = unit_nfw_mge(ngauss)
    rs_pc = halo.rs_kpc * 1e3
    rho_s_pc3 = halo.rho_s_msun_kpc3 * 1e-9
    surf = counts * rho_s_pc3 * rs_pc
    sigma = sigma_x * rs_pc / pc_per_arcsec
    return surf, sigma, np.ones_like(surf)
