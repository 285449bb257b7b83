"""Multi-Gaussian Expansion of a galaxy image: the tracer (and stellar-mass shape) of a JAM model.

The image is the dataset's r-band image in Lsun per pixel over +-fov R_half, centred on the galaxy
by construction (the observe stage renders it about the galaxy centre), so the centre is the
field centre, not a noisy centroid. mgefit measures photometry along sectors about an integer
pixel; an even-sized image has its centre on a pixel corner, so the image is first shifted by half
a pixel (bilinear), which smooths it by a two-pixel box per axis, i.e. a Gaussian of sigma 0.5 px,
and that is the PSF handed to the MGE fit so the Gaussians describe the unsmoothed galaxy; the
outermost pixel ring, which the shift mixes with the outside, is left out of the photometry. The
projected images have no other PSF (SPH smoothing is part of the galaxy as rendered).

Conventions (mgefit's): array index 0 is "x", index 1 is "y"; `theta_deg` is find_galaxy's angle
and `major_minor_coords` turns (x, y) offsets into (major-axis, minor-axis) coordinates exactly
as mgefit's sectors photometry does, so image and kinematic maps share one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PC_PER_ARCSEC_AT_1MPC = np.pi / 0.648  # pc per arcsec at 1 Mpc (jampy's own conversion)


class MGEFitError(ValueError):
    """An image that cannot be described by an MGE (empty, non-finite, too few bright pixels)."""


@dataclass
class ImageMGE:
    """An MGE in JAM units plus the geometry it was measured with."""

    surf_lsun_pc2: np.ndarray   # peak surface brightness of each Gaussian
    sigma_arcsec: np.ndarray    # dispersion along the major axis
    qobs: np.ndarray            # observed axis ratio of each Gaussian
    theta_deg: float            # find_galaxy angle of the major axis (mgefit convention)
    eps: float                  # find_galaxy ellipticity (moments of the brightest pixels)
    absdev: float               # mean absolute fractional deviation of the fit
    total_lsun: float           # luminosity of the MGE (all Gaussians, to infinity)

    @property
    def n_gauss(self) -> int:
        return int(self.surf_lsun_pc2.size)


def pc_per_arcsec(distance_mpc: float) -> float:
    """Physical size of one arcsec at the nominal distance (small-angle, as jampy assumes)."""
    return distance_mpc * PC_PER_ARCSEC_AT_1MPC


def pixel_centres(n: int, half_width: float) -> np.ndarray:
    """Coordinates of the n pixel centres spanning [-half_width, +half_width]."""
    step = 2 * half_width / n
    return (np.arange(n) + 0.5) * step - half_width


def major_minor_coords(dx: np.ndarray, dy: np.ndarray, theta_deg: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Offsets along array index 0 (dx) and 1 (dy) -> (major, minor) axis coordinates."""
    ang = np.radians(90 - theta_deg)
    return dx * np.cos(ang) - dy * np.sin(ang), dx * np.sin(ang) + dy * np.cos(ang)


def _fit_sectors(sectors, good: np.ndarray, eps: float, ngauss: int, psf_pix: float,
                 pixel_arcsec: float, qbounds: tuple[float, float]):
    import mgefit

    return mgefit.fit_sectors(sectors.radius[good], sectors.angle[good], sectors.counts[good],
                              eps, ngauss=ngauss, sigmapsf=psf_pix, scale=pixel_arcsec,
                              qbounds=list(qbounds), plot=False, quiet=True)


def fit_image_mge(image: np.ndarray, pixel_arcsec: float, pixel_pc: float, *,
                  ngauss: int = 8, n_sectors: int = 19, minlevel_frac: float = 1e-4,
                  qbounds: tuple[float, float] = (0.06, 0.99), regularize: float = 1.1,
                  q_step: float = 0.05) -> ImageMGE:
    """Fit an MGE (Cappellari 2002) to a centred image in Lsun per pixel.

    minlevel_frac: photometry stops where the surface brightness falls below this fraction of
    the peak (empty SPH outskirts carry no information, and sectors need positive counts).
    regularize: an unconstrained MGE often contains one needlessly flat Gaussian, which would
    forbid every inclination below arccos(q_flattest). As in ATLAS3D (Scott et al. 2013, the
    method of mgefit's fit_sectors_regularized, here only on the lower bound, which is the one
    that limits the inclination), the lower q bound is raised in steps of q_step while the mean
    absolute deviation stays within a factor `regularize` of the best; 0 turns this off.
    """
    import mgefit
    from scipy import ndimage

    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise MGEFitError(f"image must be square 2-D, got shape {img.shape}")
    if not np.all(np.isfinite(img)):
        raise MGEFitError("image has non-finite pixels")
    peak = img.max()
    if not peak > 0:
        raise MGEFitError("image is empty (no positive pixels)")
    n = img.shape[0]
    if n % 2 == 0:  # move the centre from a pixel corner onto pixel n/2
        img = ndimage.shift(img, (0.5, 0.5), order=1, mode="nearest")
        psf_pix = 0.5
    else:
        psf_pix = 0.0
    xc = yc = n // 2
    if np.count_nonzero(img > minlevel_frac * peak) < 9:
        raise MGEFitError("image has fewer than 9 pixels above the photometry threshold")

    found = mgefit.find_galaxy(img, fraction=0.1, quiet=True, plot=False)
    eps = float(np.clip(found.eps, 0.0, 0.95))
    # The shift mixes the outermost row and column with what lies beyond the field: skip them.
    inside = np.zeros((n, n), bool)
    inside[1:-1, 1:-1] = True
    sectors = mgefit.sectors_photometry(img, eps, found.theta, xc, yc, n_sectors=n_sectors,
                                        minlevel=minlevel_frac * peak, mask=inside, plot=False)
    good = sectors.counts > 0
    if np.count_nonzero(good) < 6:
        raise MGEFitError("sector photometry gave fewer than 6 positive measurements")
    q_lo, q_hi = qbounds
    fit = _fit_sectors(sectors, good, eps, ngauss, psf_pix, pixel_arcsec, (q_lo, q_hi))
    best = fit.absdev
    if regularize > 0:
        trial_lo = float(np.min(fit.sol[2])) + q_step
        while trial_lo < min(q_hi, 1 - eps + 0.2):
            trial = _fit_sectors(sectors, good, eps, ngauss, psf_pix, pixel_arcsec,
                                 (trial_lo, q_hi))
            if trial.absdev > regularize * best:
                break
            fit, best = trial, min(best, trial.absdev)
            trial_lo = float(np.min(fit.sol[2])) + q_step
    total_counts, sigma_pix, qobs = (np.asarray(a, float) for a in fit.sol)
    keep = total_counts > 0
    total_counts, sigma_pix, qobs = total_counts[keep], sigma_pix[keep], qobs[keep]
    if total_counts.size == 0:
        raise MGEFitError("MGE fit returned no positive Gaussians")
    surf = total_counts / (2 * np.pi * qobs * sigma_pix**2) / pixel_pc**2
    return ImageMGE(surf_lsun_pc2=surf, sigma_arcsec=sigma_pix * pixel_arcsec, qobs=qobs,
                    theta_deg=float(found.theta), eps=eps, absdev=float(fit.absdev),
                    total_lsun=float(total_counts.sum()))
