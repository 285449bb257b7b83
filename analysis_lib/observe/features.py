"""Table-1 summary statistics of the paper (inputs of the gradient-boosted trees).

Per line of sight (projected apertures): M_r, g_r, sfr, sersic_n (see sersic.py), sigma_e,
lambda_r. Intrinsic (3D, the same for every projection): q (shape.py) and the circularity-based
kinetic_bt, f_cold, f_hot (circularity.py).

- M_r, g_r: absolute AB magnitudes of the dust-attenuated light of stars within projected
  2 R_half, M = M_sun,band - 2.5 log10(L / Lsun). The solar absolute magnitudes must be those the
  source used to express luminosities in Lsun: galaxy.meta['sun_abs_mag_ab'] if the source gives
  it, otherwise Willmer (2018) SDSS values, g 5.11, r 4.65.
- sfr: stellar mass formed in the last 1 Gyr (particles younger than 1 Gyr, their initial mass
  if the source provides extra['initial_mass'], else current mass) within projected 2 R_half,
  divided by 1 Gyr, in Msun/yr.
- sigma_e: luminosity-weighted second moment of the line-of-sight velocity about the aperture
  mean, for stars within projected R_half: sqrt(sum L (v - <v>)^2 / sum L), the dispersion an
  integrated (single-aperture) spectrum would measure, rotation included (Cappellari+2013).
- lambda_r (Emsellem et al. 2007): sum F R |V| / sum F R sqrt(V^2 + sigma^2) over the valid
  pixels of the kinematic maps whose centres lie within projected R_half; F = the map weight
  (r light by default), R = the pixel centre's projected (circular) radius.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from analysis_lib.observe.kinematics import KinematicMaps

LOG = logging.getLogger(__name__)
SUN_ABS_MAG_AB_SDSS: dict[str, float] = {"g": 5.11, "r": 4.65}  # Willmer 2018, ApJS 236, 47


def photometry(r_proj: np.ndarray, lum_r: np.ndarray, lum_g: np.ndarray, aperture: float,
               sun_abs_mag: dict[str, float] | None = None) -> dict[str, float]:
    """M_r and g - r (AB) of the attenuated light within a projected aperture (kpc)."""
    sun = sun_abs_mag or SUN_ABS_MAG_AB_SDSS
    inside = r_proj < aperture
    lr, lg = lum_r[inside].sum(), lum_g[inside].sum()
    if lr <= 0 or lg <= 0:
        return {"M_r": float("nan"), "g_r": float("nan")}
    m_r = sun["r"] - 2.5 * np.log10(lr)
    m_g = sun["g"] - 2.5 * np.log10(lg)
    return {"M_r": float(m_r), "g_r": float(m_g - m_r)}


def attenuation(r_proj: np.ndarray, lum_obs: np.ndarray, lum_intrinsic: np.ndarray,
                aperture: float) -> float:
    """Magnitudes of dust attenuation of the light within a projected aperture (0 without dust).

    Kept as a diagnostic, not a model input: it lets the book check the dust against the
    observed dimming of inclined discs (Masters et al. 2010).
    """
    inside = r_proj < aperture
    lo, li = lum_obs[inside].sum(), lum_intrinsic[inside].sum()
    if lo <= 0 or li <= 0:
        return float("nan")
    return float(-2.5 * np.log10(lo / li))


def star_formation_rate(r_proj: np.ndarray, age_gyr: np.ndarray, mass_formed: np.ndarray,
                        aperture: float, window_gyr: float = 1.0) -> float:
    """Msun/yr formed over the last `window_gyr` within a projected aperture (kpc)."""
    young = (r_proj < aperture) & (age_gyr < window_gyr)
    return float(mass_formed[young].sum() / (window_gyr * 1e9))


def aperture_dispersion(r_proj: np.ndarray, v_los: np.ndarray, lum: np.ndarray,
                        aperture: float) -> float:
    """Light-weighted LOS velocity dispersion (km/s) about the aperture mean within `aperture`."""
    inside = (r_proj < aperture) & (lum > 0)
    w, v = lum[inside], v_los[inside]
    if w.sum() <= 0:
        return float("nan")
    mean = np.sum(w * v) / w.sum()
    return float(np.sqrt(np.sum(w * (v - mean) ** 2) / w.sum()))


def spin_lambda_r(maps: KinematicMaps, aperture: float) -> float:
    """Emsellem et al. (2007) lambda_R from the map pixels within a projected aperture (kpc)."""
    radius = maps.pixel_radius()
    sel = maps.mask & (radius < aperture)
    f, r = maps.weight[sel], radius[sel]
    v, s = maps.vel[sel], maps.sigma[sel]
    den = np.sum(f * r * np.sqrt(v**2 + s**2))
    if den <= 0:
        return float("nan")
    return float(np.sum(f * r * np.abs(v)) / den)


def paper_exclusions(table: pd.DataFrame) -> np.ndarray:
    """True for rows the paper excluded: Sersic n > 100 or kinetic B/T > 1 (its section 2.3).

    Logs how many rows (and what fraction) are excluded; NaN values are not excluded here.
    """
    for col in ("sersic_n", "kinetic_bt"):
        if col not in table:
            raise KeyError(f"paper_exclusions needs the column '{col}'")
    mask = (table["sersic_n"].to_numpy() > 100) | (table["kinetic_bt"].to_numpy() > 1)
    n = int(mask.sum())
    LOG.info("paper exclusions: %d of %d rows (%.2f %%) have n > 100 or kinetic B/T > 1",
             n, len(mask), 100.0 * n / max(len(mask), 1))
    return mask
