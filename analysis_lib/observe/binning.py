"""Voronoi-binned stellar kinematic maps, as IFU surveys make them (Cappellari & Copin 2003).

Spaxels (map pixels) are grouped with `vorbin` until each bin reaches the instrument's target
S/N (MaNGA's DAP: S/N 10, Westfall et al. 2019) AND holds at least `min_particles_per_bin` star
particles, so the shot noise of the particles neither biases the moments (a non-rotating bin of
N particles has ``|V| / sigma`` ~ sqrt(2 / (pi N))) nor decides which spaxels are covered: which
spaxels enter the binning is decided by surface brightness (the spectral S/N of each spaxel and
the bundle footprint), never by particle counts. Both requirements are one quantity for vorbin,

    q(bin) = min( S/N(bin), target * N_particles(bin) / N_min ),

with S/N(bin) = sum S / sqrt(sum N^2) (CC03 eq. 2, independent spaxels). The `ideal` instrument
has no spectral noise: q = N_particles / N_min with target 1 (bins on particle counts only).

Per bin, from PSF-convolved NGP sums of the particles' light (kinematics.moment_sums):
V = sum w v / sum w and sigma^2 = sum w v^2 / sum w - V^2, the light-weighted moments. Surveys
measure sigma_obs^2 = sigma^2 + sigma_inst^2; errors dV = dsigma = k sigma_obs / (S/N) are drawn
with a seeded generator, and the dispersion is corrected as the DAP's users do,
sigma = sqrt(sigma_obs^2 - sigma_inst^2), set to 0 where the correction exceeds the measurement
(Westfall et al. 2019, sect. 7.7, warn of exactly this). The bin values are painted back on the
map grid; the mask marks the spaxels inside a bin.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # vorbin 3.2.1 announces its successor
    from vorbin.voronoi_2d_binning import voronoi_2d_binning

from analysis_lib.observe import instrument as instr
from analysis_lib.observe.kinematics import MomentSums, moment_sums

ACCEPT_FRACTION = 0.8  # vorbin accepts a bin once it reaches 0.8 of the target
OVERSAMPLE = 4  # NGP sums are made on a grid this much finer than the map before the PSF


@dataclass
class BinnedMaps:
    """Binned V and sigma painted on the map grid (km/s), with their errors and the bins.

    flux: light per spaxel (Lsun), the F of lambda_R; bin_id: -1 outside every bin; bin_sn: the
    S/N of the spaxel's bin (inf without spectral noise); count: particles per spaxel.
    """

    vel: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray
    bin_id: np.ndarray
    flux: np.ndarray
    vel_err: np.ndarray
    sigma_err: np.ndarray
    bin_sn: np.ndarray
    count: np.ndarray
    pixel_kpc: float
    n_bins: int

    def pixel_radius(self) -> np.ndarray:
        """Projected distance (kpc) of each pixel centre from the galaxy centre."""
        n = self.vel.shape[0]
        c = (np.arange(n) + 0.5 - n / 2) * self.pixel_kpc
        return np.hypot(c[None, :], c[:, None])


def voronoi_bin_ids(x: np.ndarray, y: np.ndarray, signal: np.ndarray, noise: np.ndarray | None,
                    count: np.ndarray, min_particles: int, target_sn: float | None) -> np.ndarray:
    """Bin index (0..n_bins-1) of each spaxel, or all -1 if the spaxels cannot make one bin.

    signal / noise: per-spaxel signal and noise (None: no spectral noise, bins on counts only);
    x, y in pixels. A spaxel that alone meets both requirements stays a bin of its own.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    target = 1.0 if noise is None else float(target_sn)
    count = np.asarray(count, dtype=float)

    def quality(index: np.ndarray, *_args) -> float:
        by_count = target * count[index].sum() / min_particles
        if noise is None:
            return max(float(by_count), 1e-12)
        sn = signal[index].sum() / np.sqrt(np.sum(noise[index] ** 2))
        return max(float(min(sn, by_count)), 1e-12)

    if quality(np.arange(n)) < ACCEPT_FRACTION * target:
        return np.full(n, -1, dtype=int)
    per_spaxel = np.array([quality(np.array([i])) for i in range(n)])
    if per_spaxel.min() >= target:
        return np.arange(n)
    if n == 1:
        return np.zeros(1, dtype=int)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # vorbin's deprecation notice
            ids = voronoi_2d_binning(x.astype(float), y.astype(float),
                                     np.maximum(per_spaxel, 1e-12), np.ones(n), target,
                                     pixelsize=1.0, plot=False, quiet=True, sn_func=quality,
                                     wvt=False)[0]
    except ValueError:  # vorbin's own checks (e.g. not enough S/N overall): one bin
        return np.zeros(n, dtype=int)
    return _merge_poor_bins(np.unique(ids, return_inverse=True)[1].astype(int), x, y, quality,
                            ACCEPT_FRACTION * target)


def _merge_poor_bins(ids: np.ndarray, x: np.ndarray, y: np.ndarray, quality,
                     floor: float) -> np.ndarray:
    """Merge bins below `floor` into the nearest other bin, poorest first, until none is left.

    vorbin's final tessellation (CVT) equalises the bins only approximately; this makes the
    particle and S/N floor hold for every bin.
    """
    ids = ids.copy()
    while True:
        labels = np.unique(ids)
        if len(labels) < 2:
            break
        q = np.array([quality(np.flatnonzero(ids == k)) for k in labels])
        if q.min() >= floor:
            break
        worst = labels[np.argmin(q)]
        cx = np.array([x[ids == k].mean() for k in labels])
        cy = np.array([y[ids == k].mean() for k in labels])
        i = int(np.flatnonzero(labels == worst)[0])
        d = np.hypot(cx - cx[i], cy - cy[i])
        d[i] = np.inf
        ids[ids == worst] = labels[np.argmin(d)]
    return np.unique(ids, return_inverse=True)[1].astype(int)


def bin_kinematics(sums: MomentSums, flux: np.ndarray, selected: np.ndarray,
                   min_particles: int, pixel_kpc: float, sn_pixel: np.ndarray | None = None,
                   target_sn: float | None = None, sigma_inst: float = 0.0,
                   error_coeff: float = 0.0, rng: np.random.Generator | None = None
                   ) -> BinnedMaps:
    """Voronoi-bin the selected spaxels and measure V, sigma per bin (see module docstring).

    sums: moment sums on the map grid (PSF-convolved for a seeing-limited instrument);
    flux: light per spaxel from the image (sets S/N and the lambda_R weights); sn_pixel: S/N
    per map pixel (None: no spectral noise); rng: needed when error_coeff > 0.
    """
    shape = flux.shape
    sel = np.flatnonzero(selected.ravel() & (flux.ravel() > 0))
    iy, ix = np.unravel_index(sel, shape)
    f = flux.ravel()[sel]
    noise = None if sn_pixel is None else f / np.maximum(sn_pixel.ravel()[sel], 1e-30)
    ids = voronoi_bin_ids(ix, iy, f, noise, sums.count.ravel()[sel], min_particles, target_sn)
    keep = ids >= 0
    sel, ids, f = sel[keep], ids[keep], f[keep]
    n_bins = int(ids.max()) + 1 if len(ids) else 0

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.bincount(ids, weights=values, minlength=n_bins)

    s0 = per_bin(sums.s0.ravel()[sel])
    s1 = per_bin(sums.s1.ravel()[sel])
    s2 = per_bin(sums.s2.ravel()[sel])
    good = s0 > 0
    vel = np.divide(s1, s0, out=np.zeros(n_bins), where=good)
    var = np.divide(s2, s0, out=np.zeros(n_bins), where=good) - vel**2
    sigma = np.sqrt(np.clip(var, 0.0, None))
    if noise is None:
        bin_sn = np.full(n_bins, np.inf)
    else:
        bin_sn = per_bin(f) / np.sqrt(per_bin(noise[keep] ** 2))
    vel_err = np.zeros(n_bins)
    sig_err = np.zeros(n_bins)
    if sigma_inst > 0 or error_coeff > 0:
        sig_obs = np.sqrt(sigma**2 + sigma_inst**2)
        err = np.where(np.isfinite(bin_sn), error_coeff * sig_obs / bin_sn, 0.0)
        if error_coeff > 0:
            if rng is None:
                raise ValueError("bin_kinematics: a generator is needed to draw errors")
            draw = rng.standard_normal((2, n_bins))
            vel = vel + err * draw[0]
            sig_obs = np.abs(sig_obs + err * draw[1])
        sigma = np.sqrt(np.clip(sig_obs**2 - sigma_inst**2, 0.0, None))
        vel_err, sig_err = err, err

    def paint(values: np.ndarray, fill: float = 0.0, dtype=float) -> np.ndarray:
        out = np.full(shape[0] * shape[1], fill, dtype=dtype)
        out[sel] = values[ids]
        out[sel[~good[ids]]] = fill
        return out.reshape(shape)

    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[sel] = good[ids]
    return BinnedMaps(vel=paint(vel), sigma=paint(sigma), mask=mask.reshape(shape),
                      bin_id=paint(np.arange(n_bins), -1, int), flux=flux.copy(),
                      vel_err=paint(vel_err), sigma_err=paint(sig_err),
                      bin_sn=paint(bin_sn, 0.0), count=sums.count.copy(), pixel_kpc=pixel_kpc,
                      n_bins=n_bins)


def psf_moment_sums(a: np.ndarray, b: np.ndarray, v_los: np.ndarray, weight: np.ndarray,
                    half_width: float, n_map: int, inst: instr.Instrument) -> MomentSums:
    """Moment sums on the map grid, seen through the IFU's PSF (counts are not convolved).

    With a PSF the sums are made on a grid 4 times finer than the map, over a field padded by
    1.5 FWHM (light from just outside is scattered in), convolved with the PSF, cropped and
    summed in 4 x 4 blocks: the light-weighted moments of the PSF-smeared line-of-sight
    velocity distribution. The particle count per spaxel is always the unsmoothed NGP count.
    """
    plain = moment_sums(a, b, v_los, weight, half_width, n_map)
    if inst.ifu_psf is None:
        return plain
    pix_f = 2.0 * half_width / (n_map * OVERSAMPLE)
    fwhm_kpc = inst.ifu_psf.fwhm_arcsec * inst.kpc_per_arcsec
    pad = int(np.ceil(instr.PAD_FWHM * fwhm_kpc / pix_f))
    n_f = n_map * OVERSAMPLE + 2 * pad
    fine = moment_sums(a, b, v_los, weight, half_width + pad * pix_f, n_f)
    kernel = instr.psf_kernel(inst.ifu_psf, pix_f / inst.kpc_per_arcsec)
    stack = instr.crop(instr.convolve(np.stack([fine.s0, fine.s1, fine.s2]), kernel), pad)
    blocks = stack.reshape(3, n_map, OVERSAMPLE, n_map, OVERSAMPLE).sum(axis=(2, 4))
    s0 = np.clip(blocks[0], 0.0, None)
    return MomentSums(s0=s0, s1=blocks[1], s2=np.clip(blocks[2], 0.0, None), count=plain.count)


def observe_kinematics(a: np.ndarray, b: np.ndarray, v_los: np.ndarray, weight: np.ndarray,
                       flux: np.ndarray, half_width: float, inst: instr.Instrument,
                       r_e: float, select_radius: float | None, sun_abs_mag_r: float,
                       rng: np.random.Generator | None) -> BinnedMaps:
    """Binned V, sigma maps of one line of sight as the instrument measures them.

    flux: r light per map pixel (instrument.ifu_light). Spaxels enter the binning when

    - with a spectral S/N model: their S/N per spaxel is at least min_spaxel_sn and they lie
      inside the bundle footprint (footprint_re R_e, if set);
    - without (ideal): they receive light and lie within select_radius (kpc; None = anywhere).
    """
    n_map = flux.shape[0]
    pix = 2.0 * half_width / n_map
    sums = psf_moment_sums(a, b, v_los, weight, half_width, n_map, inst)
    c = (np.arange(n_map) + 0.5 - n_map / 2) * pix
    radius = np.hypot(c[None, :], c[:, None])
    selected = flux > 0
    sn_pixel = None
    if inst.sn_model is not None:
        sn_spaxel, sn_pixel = instr.map_pixel_sn(flux, pix, inst, sun_abs_mag_r)
        selected &= sn_spaxel >= inst.min_spaxel_sn
    if inst.footprint_re is not None:
        selected &= radius < inst.footprint_re * r_e
    if select_radius is not None:
        selected &= radius < select_radius
    return bin_kinematics(sums, flux, selected, inst.min_particles_per_bin, pix, sn_pixel,
                          inst.target_bin_sn, inst.sigma_inst_kms, inst.kinematic_error_coeff,
                          rng)
