"""Truths the models learn: aperture masses, M*/L and luminosities, from the particles.

3D apertures are spheres of R_half and 2 R_half (R_half = 3D half-stellar-mass radius) around the
centre, using galaxy.enclosed_mass so analytic components are exact. Projected apertures are
cylinders of projected radius R_half / 2 R_half along the line of sight, through the whole
galaxy. Luminosities are the dust-attenuated r band of that line of sight. A log of an empty
aperture (e.g. no gas) is NaN (undefined), never an invented floor.
"""

from __future__ import annotations

import numpy as np

from analysis_lib.particles import Galaxy


def _log10(x: float) -> float:
    return float(np.log10(x)) if x > 0 else float("nan")


def spherical_targets(galaxy: Galaxy, rhalf: float) -> dict[str, float]:
    """Masses in 3D spheres of R_half / 2, R_half and 2 R_half, dark and stellar fractions, R_half.

    The R_half / 2 sphere ('_0p5rhalf') lets the book ask at which radius each mass estimator
    is best (issue 14).
    """
    out: dict[str, float] = {"rhalf_kpc": float(rhalf)}
    for suffix, radius in (("", rhalf), ("_2rhalf", 2.0 * rhalf), ("_0p5rhalf", 0.5 * rhalf)):
        masses = {c: float(galaxy.enclosed_mass(c, radius)) for c in ("stars", "gas", "dm")}
        mtot = sum(masses.values())
        out[f"log_mstar{suffix}"] = _log10(masses["stars"])
        out[f"log_mgas{suffix}"] = _log10(masses["gas"])
        out[f"log_mdm{suffix}"] = _log10(masses["dm"])
        out[f"log_mtot{suffix}"] = _log10(mtot)
        if suffix == "":
            out["log_fdm"] = _log10(masses["dm"] / mtot)
            out["log_fstar"] = _log10(masses["stars"] / mtot)
    return out


def log_total_mass_within(galaxy: Galaxy, radius: float) -> float:
    """log10 of all matter (stars, gas, dark matter) in a 3D sphere of `radius` (kpc).

    Used for the truth of Wolf et al. (2010)'s estimator, M(< 4/3 R_e), whose radius depends
    on the line of sight through the projected half-light radius R_e.
    """
    if not radius > 0:
        return float("nan")
    return _log10(sum(float(galaxy.enclosed_mass(c, radius)) for c in ("stars", "gas", "dm")))


def projected_targets(r_proj: np.ndarray, mass: np.ndarray, lum_r: np.ndarray, rhalf: float,
                      lum_r_fov: float) -> dict[str, float]:
    """Cylinder masses, M*/L_r (attenuated) in R_half and 2 R_half, and the r luminosities.

    r_proj: projected radius of each star (kpc); lum_r: its dust-attenuated r luminosity (Lsun);
    lum_r_fov: the r luminosity inside the image field (the rendered image's sum).
    """
    out: dict[str, float] = {}
    for suffix, radius in (("", rhalf), ("_2rhalf", 2.0 * rhalf)):
        inside = r_proj < radius
        m, lum = float(mass[inside].sum()), float(lum_r[inside].sum())
        out[f"log_mstar_proj{suffix}"] = _log10(m)
        out[f"log_ml_r{suffix}"] = _log10(m / lum) if lum > 0 else float("nan")
        if suffix == "":
            out["log_lum_r_proj"] = _log10(lum)
    out["log_lum_r_fov"] = _log10(lum_r_fov)
    return out


def stellar_population_diagnostics(r_proj: np.ndarray, mass: np.ndarray, lum_r: np.ndarray,
                                   age_gyr: np.ndarray, metallicity: np.ndarray, rhalf: float
                                   ) -> dict[str, float]:
    """Dust-free M*/L_r and r-light-weighted age and metallicity of one line of sight.

    Diagnostics for the mock's checks (analysis_lib.sources.mock.shortcuts), never model
    inputs or targets: log_ml_r_nodust / log_ml_r_2rhalf_nodust are M*/L_r of the dust-free
    light (lum_r = the stars' intrinsic r luminosity, Lsun) in the same cylinders as log_ml_r /
    log_ml_r_2rhalf. log_age_r and log_z_r are, within projected 2 R_half, the r-light-weighted
    means of log10(age / yr) and of log10 Z (metal mass fraction): means of the logarithm,
    which is how we read Gallazzi et al. (2005)'s r-light-weighted age (their equation was not
    checked here). Their estimates come from the spectrum of a 3'' SDSS fibre; here the weights
    are the dust-free light in 2 R_half (a different aperture: the centre of a massive galaxy
    is older and more metal-rich than its 2 R_half average, so a fibre reads slightly higher).
    """
    out: dict[str, float] = {}
    for suffix, radius in (("", rhalf), ("_2rhalf", 2.0 * rhalf)):
        inside = r_proj < radius
        m, lum = float(mass[inside].sum()), float(lum_r[inside].sum())
        out[f"log_ml_r{suffix}_nodust"] = _log10(m / lum) if lum > 0 else float("nan")
    inside = (r_proj < 2.0 * rhalf) & (lum_r > 0)
    w = lum_r[inside]
    if w.sum() > 0 and np.all(age_gyr[inside] > 0):
        out["log_age_r"] = float(np.sum(w * np.log10(age_gyr[inside] * 1e9)) / w.sum())
    else:
        out["log_age_r"] = float("nan")
    if w.sum() > 0 and np.all(metallicity[inside] > 0):
        out["log_z_r"] = float(np.sum(w * np.log10(metallicity[inside])) / w.sum())
    else:
        out["log_z_r"] = float("nan")
    return out
