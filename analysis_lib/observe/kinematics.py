"""IFU-like stellar kinematic maps: nearest-grid-point moments of the line-of-sight velocity.

Every star particle inside the field is assigned to the one map pixel that contains it (NGP, as
the paper did instead of Voronoi binning). Per pixel, with weights w (r-band luminosity after
dust by default, the light an IFU would see, or mass):

    V = sum w v / sum w,   sigma = sqrt(sum w (v - V)^2 / sum w)

i.e. the first and second moments of the weighted line-of-sight velocity distribution, exact
from the particles (no spectral fitting). A pixel holding fewer than `min_particles` particles
(or no weight) is invalid: mask False and V = sigma = 0, so nothing downstream reads noise.

moment_sums gives the per-pixel sums (sum w, sum w v, sum w v^2, count) instead, which can be
convolved with a PSF and added over Voronoi bins (binning.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KinematicMaps:
    """Mean velocity and dispersion maps (km/s), validity mask, weight and particle count."""

    vel: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray
    weight: np.ndarray
    count: np.ndarray
    pixel_kpc: float

    def pixel_radius(self) -> np.ndarray:
        """Projected distance (kpc) of each pixel centre from the galaxy centre."""
        n = self.vel.shape[0]
        c = (np.arange(n) + 0.5 - n / 2) * self.pixel_kpc
        return np.hypot(c[None, :], c[:, None])


def _pixel_index(a: np.ndarray, b: np.ndarray, half_width: float, n_pixels: int
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """(pixel size, flat pixel index of each particle inside the field, the inside mask)."""
    pix = 2.0 * half_width / n_pixels
    ia = np.floor((a + half_width) / pix).astype(np.int64)
    ib = np.floor((b + half_width) / pix).astype(np.int64)
    inside = (ia >= 0) & (ia < n_pixels) & (ib >= 0) & (ib < n_pixels)
    return pix, ib[inside] * n_pixels + ia[inside], inside


def ngp_maps(a: np.ndarray, b: np.ndarray, v_los: np.ndarray, weight: np.ndarray,
             half_width: float, n_pixels: int, min_particles: int = 1) -> KinematicMaps:
    """NGP moment maps over [-half_width, half_width]^2 kpc, indexed [vertical, horizontal]."""
    pix, idx, inside = _pixel_index(a, b, half_width, n_pixels)
    w, v = weight[inside], v_los[inside]
    size = n_pixels * n_pixels
    count = np.bincount(idx, minlength=size)
    sw = np.bincount(idx, weights=w, minlength=size)
    swv = np.bincount(idx, weights=w * v, minlength=size)
    mask = (count >= max(min_particles, 1)) & (sw > 0)
    mean = np.zeros(size)
    mean[mask] = swv[mask] / sw[mask]
    dv = v - mean[idx]
    swvv = np.bincount(idx, weights=w * dv * dv, minlength=size)
    var = np.zeros(size)
    var[mask] = swvv[mask] / sw[mask]
    shape = (n_pixels, n_pixels)
    return KinematicMaps(vel=mean.reshape(shape), sigma=np.sqrt(var).reshape(shape),
                         mask=mask.reshape(shape), weight=sw.reshape(shape),
                         count=count.reshape(shape), pixel_kpc=pix)


@dataclass
class MomentSums:
    """Per-pixel sums of the weight w, w v and w v^2, and the particle count, on a grid."""

    s0: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    count: np.ndarray


def moment_sums(a: np.ndarray, b: np.ndarray, v_los: np.ndarray, weight: np.ndarray,
                half_width: float, n_pixels: int) -> MomentSums:
    """NGP sums over [-half_width, half_width]^2 kpc, indexed [vertical, horizontal].

    Sums (not means) can be convolved with a PSF and added over Voronoi bins: the moments of a
    bin are V = sum s1 / sum s0 and sigma^2 = sum s2 / sum s0 - V^2, the light-weighted moments
    of the particles it holds (seen through the PSF when the sums were convolved).
    """
    _, idx, inside = _pixel_index(a, b, half_width, n_pixels)
    w, v = weight[inside], v_los[inside]
    size = n_pixels * n_pixels
    shape = (n_pixels, n_pixels)

    def total(x):
        return np.bincount(idx, weights=x, minlength=size).reshape(shape)

    return MomentSums(s0=total(w), s1=total(w * v), s2=total(w * v * v),
                      count=np.bincount(idx, minlength=size).reshape(shape))
