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
- sigma_e and lambda_r: from the Voronoi-binned maps, see "As surveys measure them" below (the
  pipeline's choice). Kept for comparison: aperture_dispersion, the particles' light-weighted
  LOS dispersion about the aperture mean, and spin_lambda_r, lambda_R of per-pixel NGP maps
  (the paper's maps; biased high by particle shot noise, issue 13).

As surveys measure them (binned_lambda_r, binned_sigma_e): from Voronoi-binned maps (binning.py),
summing over the spaxels of valid bins whose centres lie inside a circle of the instrument's
aperture (projected R_half for `ideal`, the projected r-band half-light radius R_e for survey
instruments; a circle, not the half-light ellipse of Emsellem et al. 2011 and Graham et al.
2018), each spaxel carrying its bin's V and sigma and its own flux F:
lambda_R = ``sum F R |V| / sum F R sqrt(V^2 + sigma^2)`` (Emsellem et al. 2007, 2011) and
sigma_e = sqrt(sum F (V^2 + sigma^2) / sum F) (Cappellari et al. 2013, ATLAS3D XV eq. 29).
For seeing-limited data lambda_R is corrected with Graham et al. (2018) eq. 5 (graham18).
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


def half_light_radius(r_proj: np.ndarray, lum: np.ndarray) -> float:
    """Projected radius (kpc) enclosing half the light of the given particles (circular R_e)."""
    order = np.argsort(r_proj)
    cum = np.cumsum(lum[order])
    if cum[-1] <= 0:
        return float("nan")
    return float(r_proj[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _aperture_spaxels(maps, aperture: float):
    radius = maps.pixel_radius()
    sel = maps.mask & (radius < aperture)
    return sel, radius


def binned_lambda_r(maps, aperture: float) -> float:
    """lambda_R from binned maps (binning.BinnedMaps) inside a circle of radius `aperture` (kpc).

    NaN where no valid spaxel lies inside the aperture or V = sigma = 0 everywhere.
    """
    sel, radius = _aperture_spaxels(maps, aperture)
    f, r = maps.flux[sel], radius[sel]
    v, s = maps.vel[sel], maps.sigma[sel]
    den = np.sum(f * r * np.sqrt(v**2 + s**2))
    if not den > 0:
        return float("nan")
    return float(np.sum(f * r * np.abs(v)) / den)


def binned_sigma_e(maps, aperture: float) -> float:
    """sigma_e = sqrt(sum F (V^2 + sigma^2) / sum F) inside a circle of radius `aperture` (kpc)."""
    sel, _ = _aperture_spaxels(maps, aperture)
    f = maps.flux[sel]
    if not f.sum() > 0:
        return float("nan")
    v, s = maps.vel[sel], maps.sigma[sel]
    return float(np.sqrt(np.sum(f * (v**2 + s**2)) / f.sum()))


GRAHAM18_N_RANGE = (0.5, 6.5)  # Sersic indices of the models behind the correction


def graham18(lambda_obs: float, sigma_psf: float, semi_major: float, sersic_n: float) -> float:
    """Seeing-corrected lambda_Re, Graham et al. (2018, MNRAS 477, 4711) eq. 5.

    lambda_true = lambda_obs [1 + (n - 2) 0.26 x] [1 + (x / 0.47)^1.76]^0.84 with
    x = sigma_PSF / semi-major axis of the half-light ellipse (here the circle's radius R_e),
    sigma_PSF = FWHM / 2.355. As in the authors' code (github.com/marktgraham/lambdaR_e_calc),
    no correction is made when x > 1. The Sersic index is clipped to the range of the models
    that calibrated it, 0.5 <= n <= 6.5 (the authors' code only warns outside it); an undefined
    index is taken as n = 2, where the Sersic term vanishes (our choice, not the paper's).
    """
    if not np.isfinite(lambda_obs) or not semi_major > 0:
        return float(lambda_obs)
    x = sigma_psf / semi_major
    if x > 1:
        return float(lambda_obs)
    n = float(np.clip(sersic_n, *GRAHAM18_N_RANGE)) if np.isfinite(sersic_n) else 2.0
    return float(lambda_obs * (1 + (n - 2) * 0.26 * x) * (1 + (x / 0.47) ** 1.76) ** 0.84)
