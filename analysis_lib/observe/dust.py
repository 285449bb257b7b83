"""Dust attenuation of each star particle along one line of sight, from the gas in front of it.

Recipe (the resolved-dust model of Nelson et al. 2018, sec. 3.3, in the spirit of the
semi-analytic treatment of Xu et al. 2017), with the same code for every source:

    tau_band = (A_band / A_V) * (Z_gas / Z_sun)^s * N_H / (2.1e21 cm^-2)

- N_H: hydrogen column of the gas between the star and the observer (observer at +infinity on
  the line of sight), hydrogen mass fraction X_H = 0.76. Each gas particle is smoothed over the
  image plane with the same projected cubic-spline kernel as the star light, its support being
  the 3D distance to its 32nd nearest gas neighbour (resolution-adaptive, no grid), and counts
  for a star when its centre lies in front of the star (depth greater). The column a star sees
  is sum_j w_j W2D(|R_star - R_j|; support_j) over those gas particles.
- (Z/Z_sun)^s: the column is weighted particle by particle, w = m_gas (Z_gas/Z_sun)^s, i.e. the
  dust-to-gas ratio scales with metallicity to the power s = 1.6 (lambda > 2000 A; Guiderdoni &
  Rocca-Volmerange 1987, as adopted by Nelson et al. 2018); Z_sun from analysis_lib.particles.
- A_band / A_V from the Cardelli, Clayton & Mathis (1989) law, R_V = 3.1, at the SDSS effective
  wavelengths (g 4686 A, r 6165 A): A_g/A_V = 1.22, A_r/A_V = 0.88, so g is dimmed more than r
  and dust reddens g - r.
- Scattering (Nelson et al. 2018, following Calzetti, Kinney & Storchi-Bergmann 1994): part of
  the light scattered out of the line of sight is scattered back into it, so the effective
  optical depth is tau_band = tau_a [h sqrt(1 - omega) + (1 - h)(1 - omega)], with omega the
  albedo and h the weight of isotropic against forward scattering. We take omega and the
  scattering asymmetry g = <cos theta> from the Milky-Way R_V = 3.1 grain model of Weingartner &
  Draine (2001; Draine 2003 tables) at the band wavelengths, and h = 1 - g (g = 0 isotropic, g = 1
  purely forward): the factor is 0.44 in g and r. `scattering=False` keeps pure extinction.
- Each star is seen through a foreground screen: L_obs = L exp(-tau_band). No gas (or fewer than
  2 gas particles, which cannot define a smoothing length), no dust.
- Only stars inside the image field get a column (all outputs - images, maps, apertures of at
  most 2 R_half - lie inside the field); the others keep tau = 0.
"""

from __future__ import annotations

import numba
import numpy as np

from analysis_lib.observe.images import (
    projected_kernel_integral,
    projected_kernel_table,
    smoothing_support,
)
from analysis_lib.particles import SOLAR_METALLICITY, Gas

X_HYDROGEN = 0.76
# H atoms per cm^2 for 1 Msun of hydrogen spread over 1 kpc^2 (Msun / m_p / kpc^2)
_ATOMS_PER_CM2_PER_MSUN_KPC2 = 1.98841e33 / 1.67262e-24 / (3.08568e21) ** 2
N_H_REFERENCE = 2.1e21  # cm^-2 per unit tau_V at solar metallicity (Nelson+2018, eq. 3)
BAND_WAVELENGTH_ANGSTROM = {"g": 4686.0, "r": 6165.0}
# Weingartner & Draine (2001) Milky-Way R_V = 3.1 dust (Draine 2003 tables) at the SDSS bands:
# albedo omega and scattering asymmetry g = <cos theta>
BAND_ALBEDO = {"g": 0.661, "r": 0.676}
BAND_ASYMMETRY = {"g": 0.560, "r": 0.513}
_MAX_CELLS = 512


def ccm_extinction_ratio(wavelength_angstrom: float, r_v: float = 3.1) -> float:
    """A_lambda / A_V of Cardelli, Clayton & Mathis (1989), optical/near-IR branch (0.3-1.1 um)."""
    x = 1.0e4 / wavelength_angstrom  # inverse microns
    if not 1.1 <= x <= 3.3:
        raise ValueError(f"wavelength {wavelength_angstrom} A is outside the CCM optical branch")
    y = x - 1.82
    a = (1 + 0.17699 * y - 0.50447 * y**2 - 0.02427 * y**3 + 0.72085 * y**4 + 0.01979 * y**5
         - 0.77530 * y**6 + 0.32999 * y**7)
    b = (1.41338 * y + 2.28305 * y**2 + 1.07233 * y**3 - 5.38434 * y**4 - 0.62251 * y**5
         + 5.30260 * y**6 - 2.09002 * y**7)
    return float(a + b / r_v)


def gas_support(gas: Gas, n_neighbours: int = 32) -> np.ndarray:
    """Kernel support (kpc) of each gas particle: distance to its n-th nearest gas neighbour."""
    if len(gas) < 2:
        return np.zeros(len(gas))
    return smoothing_support(gas.pos, min(n_neighbours, len(gas)))


@numba.njit(cache=True, nogil=True)
def _scatter_columns(sa, sb, sd, order, cell_start, ncell, x0, cell, ga, gb, gd, gw, gh,
                     table, integral):  # pragma: no cover - compiled
    out = np.zeros(sa.shape[0])
    nt = table.shape[0] - 1
    for j in range(ga.shape[0]):
        h = gh[j]
        if h <= 0.0 or gw[j] == 0.0:
            continue
        ca0 = max(int(np.floor((ga[j] - h - x0) / cell)), 0)
        ca1 = min(int(np.floor((ga[j] + h - x0) / cell)), ncell - 1)
        cb0 = max(int(np.floor((gb[j] - h - x0) / cell)), 0)
        cb1 = min(int(np.floor((gb[j] + h - x0) / cell)), ncell - 1)
        inv_h2 = 1.0 / (h * h)
        norm = gw[j] * inv_h2 / integral
        for cb in range(cb0, cb1 + 1):
            for ca in range(ca0, ca1 + 1):
                c = cb * ncell + ca
                for k in range(cell_start[c], cell_start[c + 1]):
                    i = order[k]
                    if gd[j] <= sd[i]:
                        continue
                    da = sa[i] - ga[j]
                    db = sb[i] - gb[j]
                    u = (da * da + db * db) * inv_h2
                    if u < 1.0:
                        t = u * nt
                        m = int(t)
                        out[i] += norm * (table[m] + (t - m) * (table[m + 1] - table[m]))
    return out


def metal_column(star_a: np.ndarray, star_b: np.ndarray, star_depth: np.ndarray,
                 gas_a: np.ndarray, gas_b: np.ndarray, gas_depth: np.ndarray,
                 gas_weight: np.ndarray, gas_h: np.ndarray, half_width: float) -> np.ndarray:
    """Kernel-smoothed sum of gas_weight in front of each star, per kpc^2 (0 outside the field).

    Stars in the field are binned on a grid (cells about half the median gas support) so that
    each gas particle visits only the stars under its kernel.
    """
    out = np.zeros(len(star_a))
    infield = (np.abs(star_a) < half_width) & (np.abs(star_b) < half_width)
    if len(gas_a) == 0 or not infield.any():
        return out
    h_med = float(np.median(gas_h[gas_h > 0])) if np.any(gas_h > 0) else 2.0 * half_width
    ncell = int(np.clip(np.ceil(4.0 * half_width / h_med), 1, _MAX_CELLS))
    cell = 2.0 * half_width / ncell
    idx = np.flatnonzero(infield)
    sa, sb, sd = star_a[idx], star_b[idx], star_depth[idx]
    ka = np.clip(np.floor((sa + half_width) / cell).astype(np.int64), 0, ncell - 1)
    kb = np.clip(np.floor((sb + half_width) / cell).astype(np.int64), 0, ncell - 1)
    key = kb * ncell + ka
    order = np.argsort(key, kind="stable")
    cell_start = np.searchsorted(key[order], np.arange(ncell * ncell + 1))
    f64 = np.float64
    col = _scatter_columns(sa.astype(f64), sb.astype(f64), sd.astype(f64), order, cell_start,
                           ncell, -half_width, cell, np.ascontiguousarray(gas_a, f64),
                           np.ascontiguousarray(gas_b, f64), np.ascontiguousarray(gas_depth, f64),
                           np.ascontiguousarray(gas_weight, f64), np.ascontiguousarray(gas_h, f64),
                           projected_kernel_table(), projected_kernel_integral())
    out[idx] = col
    return out


def optical_depth_v(star_a: np.ndarray, star_b: np.ndarray, star_depth: np.ndarray,
                    gas: Gas | None, gas_a: np.ndarray | None, gas_b: np.ndarray | None,
                    gas_depth: np.ndarray | None, gas_h: np.ndarray | None, half_width: float,
                    metallicity_index: float = 1.6) -> np.ndarray:
    """tau_V of each star for this line of sight (zero without gas or outside the field)."""
    if gas is None or len(gas) < 2:
        return np.zeros(len(star_a))
    weight = gas.mass * np.clip(gas.metallicity / SOLAR_METALLICITY, 0.0, None) ** metallicity_index
    sigma = metal_column(star_a, star_b, star_depth, gas_a, gas_b, gas_depth, weight, gas_h,
                         half_width)
    n_h = X_HYDROGEN * sigma * _ATOMS_PER_CM2_PER_MSUN_KPC2
    return n_h / N_H_REFERENCE


def scattering_factor(band: str) -> float:
    """tau_effective / tau_extinction in `band`: h sqrt(1 - omega) + (1 - h)(1 - omega).

    h = 1 - g, the weight of isotropic scattering from the asymmetry parameter g.
    """
    if band not in BAND_ALBEDO:
        raise ValueError(f"no albedo for band '{band}'")
    omega, h = BAND_ALBEDO[band], 1.0 - BAND_ASYMMETRY[band]
    return float(h * np.sqrt(1.0 - omega) + (1.0 - h) * (1.0 - omega))


def transmission(tau_v: np.ndarray, band: str, scattering: bool = True) -> np.ndarray:
    """Fraction of a star's light in `band` that reaches the observer, exp(-tau_band)."""
    if band not in BAND_WAVELENGTH_ANGSTROM:
        raise ValueError(f"no effective wavelength for band '{band}'")
    tau = ccm_extinction_ratio(BAND_WAVELENGTH_ANGSTROM[band]) * tau_v
    if scattering:
        tau = tau * scattering_factor(band)
    return np.exp(-tau)
