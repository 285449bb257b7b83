"""A galaxy whose true mass model is inside JAM's family, observed like a dataset sample.

Used to validate the JAM pipeline (tests, benchmark, book): an axisymmetric MGE stellar body
with known M*/L, an NFW halo on the same mass-concentration relation the fit assumes, a known
constant anisotropy beta_z and inclination. Its r image is the projected MGE in Lsun per pixel
over +-fov R_half (R_half = its 3D half-mass radius); its v_rms map comes from jampy itself on the
map grid, with seeded Gaussian noise, split into a rotation and a dispersion map. The galaxy's
major axis is placed at an angle `pa_deg` in the array frame, defined here independently of
mgefit's conventions, so a fit must find the orientation itself.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from analysis_lib.models.jam_halo import NFWHalo, halo_mge
from analysis_lib.models.jam_mge import pc_per_arcsec, pixel_centres
from analysis_lib.rng import make_rng

# A flattened stellar body in kpc: intrinsic Gaussians (luminosity Lsun, sigma kpc, axis ratio).
DEFAULT_LUM = (2.0e9, 6.0e9, 1.2e10, 8.0e9)
DEFAULT_SIGMA_KPC = (0.3, 1.0, 2.5, 6.0)
DEFAULT_QINTR = (0.75, 0.6, 0.5, 0.45)


def projected_mge(lum: np.ndarray, sigma_kpc: np.ndarray, qintr: np.ndarray, inc_deg: float,
                  pc_arcsec: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intrinsic oblate Gaussians seen at inclination inc: (surf Lsun/pc^2, sigma arcsec, qobs)."""
    i = np.radians(inc_deg)
    qobs = np.sqrt((qintr * np.sin(i)) ** 2 + np.cos(i) ** 2)
    sigma_pc = sigma_kpc * 1e3
    surf = lum / (2 * np.pi * qobs * sigma_pc**2)
    return surf, sigma_pc / pc_arcsec, qobs


def synthetic_galaxy(seed: int = 0, *, inc_deg: float = 60.0, beta_z: float = 0.2,
                     ml: float = 2.5, log_m200: float = 12.3, pa_deg: float = 30.0,
                     noise_frac: float = 0.02, image_size: int = 60, map_size: int = 48,
                     fov_rhalf: float = 3.0, distance_mpc: float = 20.0,
                     lum: tuple = DEFAULT_LUM, sigma_kpc: tuple = DEFAULT_SIGMA_KPC,
                     qintr: tuple = DEFAULT_QINTR) -> dict:
    """Inputs (image, maps, rhalf_kpc, inclination) and true targets of a JAM-family galaxy."""
    import jampy

    lum, sigma_kpc, qintr = (np.asarray(v, float) for v in (lum, sigma_kpc, qintr))
    pc_as = pc_per_arcsec(distance_mpc)
    surf, sig_as, qobs = projected_mge(lum, sigma_kpc, qintr, inc_deg, pc_as)

    def lum_inside(r_kpc: float) -> float:
        return float(jampy.mge.radial_mass(surf, sig_as, qobs, inc_deg, r_kpc * 1e3 / pc_as,
                                           distance=distance_mpc))

    total = lum.sum()
    rhalf = brentq(lambda r: lum_inside(r) - 0.5 * total, 1e-3, 1e3, xtol=1e-6)
    half_as = fov_rhalf * rhalf * 1e3 / pc_as
    pa = np.radians(pa_deg)

    def frame(n: int, sub: int = 1) -> tuple[np.ndarray, np.ndarray]:
        c = pixel_centres(n * sub, half_as)
        d0, d1 = np.meshgrid(c, c, indexing="ij")
        return d0 * np.cos(pa) + d1 * np.sin(pa), -d0 * np.sin(pa) + d1 * np.cos(pa)

    # Image: surface brightness on a 5x supersampled grid, summed into Lsun per pixel.
    sub = 5
    xm, ym = frame(image_size, sub)
    sb = (surf[:, None, None] * np.exp(-0.5 * (xm**2 + (ym / qobs[:, None, None]) ** 2)
                                       / sig_as[:, None, None] ** 2)).sum(0)
    pix_pc = 2 * half_as * pc_as / (image_size * sub)
    image = (sb * pix_pc**2).reshape(image_size, sub, image_size, sub).sum(axis=(1, 3))

    # Kinematics: v_rms from JAM (stars at M/L + NFW halo), then noise, then V / sigma split.
    halo = NFWHalo.from_m200(10**log_m200)
    h_surf, h_sig, h_q = halo_mge(halo, pc_as)
    xk, yk = frame(map_size)
    out = jampy.axi.proj(surf, sig_as, qobs, np.append(surf * ml, h_surf),
                         np.append(sig_as, h_sig), np.append(qobs, h_q), inc_deg, 0.0,
                         distance_mpc, xk.ravel(), yk.ravel(), align="cyl",
                         beta=np.full(surf.size, beta_z), ml=1.0, plot=False, quiet=True)
    rng = make_rng(seed, "jam_synthetic")
    vrms = out.model.reshape(map_size, map_size) * (1 + noise_frac * rng.standard_normal(
        (map_size, map_size)))
    rot = 0.6 * np.tanh(xk / (0.5 * rhalf * 1e3 / pc_as))  # V / v_rms along the major axis
    vel = vrms * rot
    sigma = np.sqrt(vrms**2 - vel**2)

    mstar = ml * np.array([lum_inside(rhalf), lum_inside(2 * rhalf)])
    mdm = np.asarray(halo.enclosed_mass(np.array([1.0, 2.0]) * rhalf))
    mtot = mstar + mdm
    truth = {"log_mstar": np.log10(mstar[0]), "log_mtot": np.log10(mtot[0]),
             "log_mdm": np.log10(mdm[0]), "log_fdm": np.log10(mdm[0] / mtot[0]),
             "log_ml_r": np.log10(ml), "log_mstar_2rhalf": np.log10(mstar[1]),
             "log_mtot_2rhalf": np.log10(mtot[1]), "beta_z": beta_z, "log_m200": log_m200}
    return {"image": image.astype(np.float32), "vel_map": vel.astype(np.float32),
            "sigma_map": sigma.astype(np.float32), "map_mask": np.ones_like(vel, bool),
            "rhalf_kpc": float(rhalf), "inclination_deg": float(inc_deg),
            "truth": {k: float(v) for k, v in truth.items()}}
