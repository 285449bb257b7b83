"""Observing set-ups: PSF, sky and photon noise, and the IFU's spectral S/N, from instruments.yaml.

An instrument (cfg['instrument'], see analysis_lib/instruments.yaml) is read once into an
`Instrument`, whose fields are validated with one clear error naming the field. The geometry of
the dataset never changes: images and maps span +-fov_rhalf R_half with the profile's pixel
counts. What the instrument sets, in those pixels, follows from the angular scale at its
redshift (TNG's Planck 2015 cosmology, analysis_lib.offline.colossus_cosmology):

- PSF: Gaussian or Moffat (Moffat 1969; beta = 4.765 for atmospheric seeing, Trujillo et al.
  2001), sampled at pixel centres with 7 x 7 sub-samples per pixel, truncated at 3 FWHM and
  renormalised to sum to one, so the convolution conserves flux. Images are rendered on a field
  padded by 1.5 FWHM (light from just outside scatters in) and cropped after convolution.
- Image noise: sky-limited photometry. A band is described by its sky surface brightness and its
  5 sigma point-source depth m_lim in PSF photometry. With P the normalised PSF, the
  noise-equivalent area is NEA = 1 / int P^2 dA (arcsec^2), so the sky noise per arcsec^2 is
  s1 = F_lim / (5 sqrt(NEA)) (fluxes in AB maggies). The number of photo-electrons per maggie is
  then kappa = F_sky / s1^2 (Poisson sky), and a pixel of area A holding source flux F gets
  Gaussian noise of variance (F_sky A + F) / kappa: sky and photon noise. Luminosities become
  fluxes with the luminosity distance, D_L = (1 + z)^2 D_A; K-corrections are neglected (z <~
  0.03). Images stay in Lsun per pixel, sky-subtracted, with the noise in the same units.
- IFU S/N per spaxel from surface brightness: S/N = S/N_ref h(mu) / h(mu_ref) with
  h = f / sqrt(f + f_sky), f = 10^(-0.4 mu) (source plus sky photon noise), calibrated to the
  survey's S/N at a reference surface brightness (MaNGA: 5 per Angstrom per 2" fibre at 23 mag
  arcsec^-2, Law et al. 2015). The fibre value is converted to a spaxel and a spectral pixel by
  S/N ~ sqrt(area) sqrt(pixel width) (independent noise; the spatial covariance of MaNGA cubes,
  Law et al. 2016, is not modelled). A map pixel covering n spaxels has S/N sqrt(n) times that.
  The observed surface brightness includes the (1 + z)^4 cosmological dimming.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve

from analysis_lib.config import ConfigError

ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi
MU_LSUN_PC2 = 21.572  # mu = M_sun + 21.572 - 2.5 log10(I / (Lsun pc^-2)), mag arcsec^-2
_PSF_SHAPES = ("gaussian", "moffat")
_SUBSAMPLE = 7  # PSF sub-samples per pixel side
_PSF_TRUNCATE_FWHM = 3.0  # kernel radius in FWHM
PAD_FWHM = 1.5  # padding of the rendered field, in FWHM of the widest PSF


@dataclass(frozen=True)
class PSF:
    """A circular PSF: shape 'gaussian' or 'moffat' (with beta), FWHM in arcsec."""

    shape: str
    fwhm_arcsec: float
    beta: float | None = None

    @property
    def sigma_arcsec(self) -> float:
        """Dispersion of the Gaussian of the same FWHM (what Graham et al. 2018 call sigma_PSF)."""
        return self.fwhm_arcsec / (2.0 * np.sqrt(2.0 * np.log(2.0)))

    def profile(self, r: np.ndarray, fwhm: float) -> np.ndarray:
        """Unnormalised radial profile at radius r, in the units of fwhm."""
        if self.shape == "gaussian":
            sig = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
            return np.exp(-0.5 * (r / sig) ** 2)
        alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / self.beta) - 1.0))
        return (1.0 + (r / alpha) ** 2) ** (-self.beta)


@dataclass(frozen=True)
class BandDepth:
    """Imaging depth of one band: PSF FWHM, sky and 5-sigma point-source depth (AB)."""

    psf_fwhm_arcsec: float
    sky_mag_arcsec2: float
    depth_5sigma_mag: float


@dataclass(frozen=True)
class SNModel:
    """Spectral S/N of the IFU versus surface brightness (see the module docstring)."""

    ref_sn_per_angstrom_fibre: float
    ref_mag_arcsec2: float
    fibre_diameter_arcsec: float
    pixel_angstrom: float
    sky_mag_arcsec2: float

    def spaxel_sn(self, mu: np.ndarray, spaxel_arcsec: float) -> np.ndarray:
        """S/N per spectral pixel of one spaxel of side spaxel_arcsec at surface brightness mu."""
        fibre_area = np.pi * (0.5 * self.fibre_diameter_arcsec) ** 2
        ref = (self.ref_sn_per_angstrom_fibre * np.sqrt(self.pixel_angstrom)
               * np.sqrt(spaxel_arcsec**2 / fibre_area))
        sky = 10.0 ** (-0.4 * self.sky_mag_arcsec2)

        def h(m):
            f = 10.0 ** (-0.4 * np.asarray(m, dtype=float))
            return f / np.sqrt(f + sky)

        return ref * h(mu) / h(self.ref_mag_arcsec2)


@dataclass(frozen=True)
class Instrument:
    """A validated observing set-up (see instruments.yaml for each field's source)."""

    name: str
    redshift: float | None
    image_psf: PSF | None
    bands: dict[str, BandDepth] | None
    maps: str
    ifu_psf: PSF | None
    spaxel_arcsec: float | None
    sn_model: SNModel | None
    min_spaxel_sn: float | None
    target_bin_sn: float | None
    footprint_re: float | None
    sigma_inst_kms: float
    kinematic_error_coeff: float
    min_particles_per_bin: int
    aperture: str
    lambda_r_seeing_correction: bool

    @property
    def kpc_per_arcsec(self) -> float | None:
        return None if self.redshift is None else kpc_per_arcsec(self.redshift)

    @property
    def luminosity_distance_mpc(self) -> float | None:
        return None if self.redshift is None else luminosity_distance_mpc(self.redshift)

    def widest_psf_fwhm_kpc(self) -> float:
        """FWHM (kpc) of the widest PSF the images or maps need (0 without any)."""
        fw = [p.fwhm_arcsec for p in (self.ifu_psf,) if p is not None]
        fw += [b.psf_fwhm_arcsec for b in (self.bands or {}).values()]
        if not fw:
            return 0.0
        return max(fw) * self.kpc_per_arcsec

    def band_psf(self, band: str) -> PSF | None:
        if self.bands is None or self.image_psf is None:
            return None
        return PSF(self.image_psf.shape, self.bands[band].psf_fwhm_arcsec, self.image_psf.beta)


# --------------------------------------------------------------------------- validation


def _field(section: dict, key: str, where: str, kind: str = "number", allow_none: bool = False,
           positive: bool = False):
    name = f"instrument.{where}{key}"
    if not isinstance(section, dict) or key not in section:
        raise ConfigError(f"{name} is missing")
    value = section[key]
    if value is None:
        if allow_none:
            return None
        raise ConfigError(f"{name} must be set (got null)")
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise ConfigError(f"{name} must be a number (got {value!r})")
        if positive and value <= 0:
            raise ConfigError(f"{name} must be positive (got {value!r})")
        if not positive and value < 0:
            raise ConfigError(f"{name} must not be negative (got {value!r})")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false (got {value!r})")
        return value
    if kind == "section":
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a section (got {value!r})")
        return value
    return value


def _psf(section: dict | None, where: str, fwhm_key: str | None) -> PSF | None:
    if section is None:
        return None
    shape = section.get("shape")
    if shape not in _PSF_SHAPES:
        raise ConfigError(f"instrument.{where}shape must be one of {', '.join(_PSF_SHAPES)} "
                          f"(got {shape!r})")
    beta = None
    if shape == "moffat":
        beta = _field(section, "beta", where, positive=True)
        if beta <= 1.0:
            raise ConfigError(f"instrument.{where}beta must exceed 1 (got {beta})")
    fwhm = _field(section, fwhm_key, where, positive=True) if fwhm_key else 1.0
    return PSF(shape, fwhm, beta)


def parse_instrument(spec: dict) -> Instrument:
    """Validate cfg['instrument'] and return it as an Instrument; ConfigError names the field."""
    if not isinstance(spec, dict):
        raise ConfigError(f"cfg['instrument'] must be a section (got {spec!r})")
    name = str(spec.get("name", "?"))
    z = _field(spec, "redshift", "", allow_none=True, positive=True)
    imaging = _field(spec, "imaging", "", "section", allow_none=True)
    ifu = _field(spec, "ifu", "", "section")
    image_psf, bands = None, None
    if imaging is not None:
        if z is None:
            raise ConfigError("instrument.imaging needs instrument.redshift (angular scale)")
        image_psf = _psf(_field(imaging, "psf", "imaging.", "section"), "imaging.psf.", None)
        raw = _field(imaging, "bands", "imaging.", "section")
        bands = {}
        for band in ("r", "g"):
            b = _field(raw, band, "imaging.bands.", "section")
            w = f"imaging.bands.{band}."
            bands[band] = BandDepth(_field(b, "psf_fwhm_arcsec", w, positive=True),
                                    _field(b, "sky_mag_arcsec2", w, positive=True),
                                    _field(b, "depth_5sigma_mag", w, positive=True))
    maps = _field(ifu, "maps", "ifu.", "text")
    if maps not in ("ngp", "binned"):
        raise ConfigError(f"instrument.ifu.maps must be 'ngp' or 'binned' (got {maps!r})")
    psf_spec = _field(ifu, "psf", "ifu.", "section", allow_none=True)
    ifu_psf = _psf(psf_spec, "ifu.psf.", "fwhm_arcsec")
    sn_spec = _field(ifu, "sn_model", "ifu.", "section", allow_none=True)
    sn_model = None
    if sn_spec is not None:
        w = "ifu.sn_model."
        sn_model = SNModel(*(_field(sn_spec, k, w, positive=True) for k in (
            "ref_sn_per_angstrom_fibre", "ref_mag_arcsec2", "fibre_diameter_arcsec",
            "pixel_angstrom", "sky_mag_arcsec2")))
    spaxel = _field(ifu, "spaxel_arcsec", "ifu.", allow_none=True, positive=True)
    min_sn = _field(ifu, "min_spaxel_sn", "ifu.", allow_none=True)
    target = _field(ifu, "target_bin_sn", "ifu.", allow_none=True, positive=True)
    if (ifu_psf is not None or sn_model is not None) and z is None:
        raise ConfigError("instrument.ifu.psf / sn_model need instrument.redshift")
    if sn_model is not None and (spaxel is None or target is None or min_sn is None):
        raise ConfigError("instrument.ifu.sn_model needs ifu.spaxel_arcsec, ifu.min_spaxel_sn "
                          "and ifu.target_bin_sn")
    if maps == "ngp" and (ifu_psf is not None or sn_model is not None):
        raise ConfigError("instrument.ifu.maps: 'ngp' maps cannot carry a PSF or S/N model; "
                          "use 'binned'")
    n_min = _field(spec, "min_particles_per_bin", "", positive=True)
    if n_min != int(n_min):
        raise ConfigError(f"instrument.min_particles_per_bin must be an integer (got {n_min})")
    aperture = _field(spec, "aperture", "", "text")
    if aperture not in ("rhalf", "re_light"):
        raise ConfigError(f"instrument.aperture must be 'rhalf' or 're_light' (got {aperture!r})")
    correct = _field(spec, "lambda_r_seeing_correction", "", "bool")
    if correct and ifu_psf is None:
        raise ConfigError("instrument.lambda_r_seeing_correction needs instrument.ifu.psf")
    return Instrument(
        name=name, redshift=z, image_psf=image_psf, bands=bands, maps=maps, ifu_psf=ifu_psf,
        spaxel_arcsec=spaxel, sn_model=sn_model, min_spaxel_sn=min_sn, target_bin_sn=target,
        footprint_re=_field(ifu, "footprint_re", "ifu.", allow_none=True, positive=True),
        sigma_inst_kms=_field(ifu, "sigma_inst_kms", "ifu."),
        kinematic_error_coeff=_field(ifu, "kinematic_error_coeff", "ifu."),
        min_particles_per_bin=int(n_min), aperture=aperture, lambda_r_seeing_correction=correct)


# --------------------------------------------------------------------------- cosmology


@lru_cache(maxsize=16)
def kpc_per_arcsec(redshift: float) -> float:
    """Proper kpc per arcsec at a redshift (angular-diameter distance, Planck 2015 / TNG)."""
    from analysis_lib.offline import colossus_cosmology

    cosmo = colossus_cosmology()
    d_a_kpc = float(cosmo.angularDiameterDistance(redshift)) / cosmo.h * 1e3
    return d_a_kpc / ARCSEC_PER_RAD


@lru_cache(maxsize=16)
def luminosity_distance_mpc(redshift: float) -> float:
    """Luminosity distance (Mpc), (1 + z)^2 times the angular-diameter distance."""
    return kpc_per_arcsec(redshift) * ARCSEC_PER_RAD / 1e3 * (1.0 + redshift) ** 2


# --------------------------------------------------------------------------- PSF


def psf_kernel(psf: PSF, pixel_arcsec: float) -> np.ndarray:
    """The PSF integrated over pixels of side pixel_arcsec, truncated at 3 FWHM, summing to one.

    Gaussian: exact pixel integrals (error functions, separable). Moffat: the mean of s x s
    sub-samples per pixel, s = 7 for PSFs narrower than 3 pixels, 3 below 10 pixels, else 1
    (a smooth profile sampled finely enough). A PSF far below a pixel is a single 1.
    """
    from scipy.special import erf

    fwhm_px = psf.fwhm_arcsec / pixel_arcsec
    radius = int(np.ceil(_PSF_TRUNCATE_FWHM * fwhm_px))
    centres = np.arange(-radius, radius + 1, dtype=float)
    if psf.shape == "gaussian":
        sig = fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        edges = np.append(centres - 0.5, centres[-1] + 0.5) / (np.sqrt(2.0) * sig)
        one = np.diff(erf(edges))
        kernel = np.outer(one, one)
    else:
        sub_n = _SUBSAMPLE if fwhm_px < 3 else (3 if fwhm_px < 10 else 1)
        sub = (np.arange(sub_n) + 0.5) / sub_n - 0.5
        x = (centres[:, None] + sub[None, :]).ravel()
        fine = psf.profile(np.hypot(x[:, None], x[None, :]), fwhm_px)
        n = 2 * radius + 1
        kernel = fine.reshape(n, sub_n, n, sub_n).sum(axis=(1, 3))
    kernel[np.hypot(centres[:, None], centres[None, :]) > _PSF_TRUNCATE_FWHM * fwhm_px + 0.5] = 0
    total = kernel.sum()
    if not total > 0:
        return np.ones((1, 1))
    return kernel / total


def convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Image (..., n, n) convolved with a normalised kernel; zero outside the image.

    Flux leaves only across the border (the caller renders a padded field and crops it).
    Negative round-off of the FFT is clipped to zero for non-negative input.
    """
    if kernel.shape == (1, 1):
        return image * kernel[0, 0]
    out = fftconvolve(image, kernel.reshape((1,) * (image.ndim - 2) + kernel.shape),
                      mode="same", axes=(-2, -1))
    if np.all(image >= 0):
        out = np.clip(out, 0.0, None)
    return out


def pad_pixels(inst: Instrument, pixel_kpc: float) -> int:
    """Pixels to pad the rendered field by on each side, 1.5 FWHM of the widest PSF."""
    fwhm = inst.widest_psf_fwhm_kpc()
    return int(np.ceil(PAD_FWHM * fwhm / pixel_kpc)) if fwhm > 0 else 0


# --------------------------------------------------------------------------- image noise


def noise_equivalent_area(psf: PSF) -> float:
    """NEA = 1 / int P^2 dA (arcsec^2) of a normalised PSF (4 pi sigma^2 for a Gaussian)."""
    pix = psf.fwhm_arcsec / 20.0
    k = psf_kernel(psf, pix)
    return float(pix**2 / np.sum(k**2))


def maggies_per_lsun(sun_abs_mag: float, redshift: float) -> float:
    """AB flux (maggies) of 1 Lsun at the luminosity distance of `redshift` (no K-correction)."""
    dm = 5.0 * np.log10(luminosity_distance_mpc(redshift) * 1e5)  # D_L / 10 pc
    return float(10.0 ** (-0.4 * (sun_abs_mag + dm)))


def sky_noise_per_arcsec(depth: BandDepth, psf: PSF) -> tuple[float, float]:
    """(sky flux, sky noise) per arcsec^2 in maggies, from the 5 sigma point-source depth."""
    f_lim = 10.0 ** (-0.4 * depth.depth_5sigma_mag)
    s1 = f_lim / (5.0 * np.sqrt(noise_equivalent_area(psf)))
    return 10.0 ** (-0.4 * depth.sky_mag_arcsec2), float(s1)


def add_noise(image_lsun: np.ndarray, pixel_kpc: float, inst: Instrument, band: str,
              sun_abs_mag: float, rng: np.random.Generator) -> np.ndarray:
    """Sky-subtracted image with sky and photon noise, Lsun per pixel (see module docstring)."""
    depth = inst.bands[band]
    psf = inst.band_psf(band)
    f_sky, s1 = sky_noise_per_arcsec(depth, psf)
    kappa = f_sky / s1**2  # photo-electrons per maggie
    area = (pixel_kpc / inst.kpc_per_arcsec) ** 2
    to_flux = maggies_per_lsun(sun_abs_mag, inst.redshift)
    flux = np.clip(image_lsun, 0.0, None) * to_flux
    sigma = np.sqrt((f_sky * area + flux) / kappa)
    return image_lsun + rng.standard_normal(image_lsun.shape) * sigma / to_flux


def sky_rms_lsun(pixel_kpc: float, inst: Instrument, band: str, sun_abs_mag: float) -> float:
    """The expected noise rms (Lsun per pixel) of an empty pixel: the sky's alone."""
    f_sky, s1 = sky_noise_per_arcsec(inst.bands[band], inst.band_psf(band))
    area = (pixel_kpc / inst.kpc_per_arcsec) ** 2
    return float(s1 * np.sqrt(area) / maggies_per_lsun(sun_abs_mag, inst.redshift))


# --------------------------------------------------------------------------- IFU S/N


def surface_brightness(flux_lsun: np.ndarray, pixel_kpc: float, sun_abs_mag: float,
                       redshift: float | None) -> np.ndarray:
    """Observed surface brightness (mag arcsec^-2) of pixels holding flux_lsun (Lsun).

    Includes the (1 + z)^4 cosmological dimming when a redshift is given; +inf where empty.
    """
    intensity = np.asarray(flux_lsun, dtype=float) / (pixel_kpc * 1e3) ** 2  # Lsun / pc^2
    with np.errstate(divide="ignore"):
        mu = sun_abs_mag + MU_LSUN_PC2 - 2.5 * np.log10(intensity)
    mu = np.where(intensity > 0, mu, np.inf)
    if redshift is not None:
        mu = mu + 10.0 * np.log10(1.0 + redshift)
    return mu


def map_pixel_sn(flux_lsun: np.ndarray, pixel_kpc: float, inst: Instrument,
                 sun_abs_mag: float) -> tuple[np.ndarray, np.ndarray]:
    """(S/N per spaxel, S/N per map pixel) of the IFU from the light in each map pixel."""
    mu = surface_brightness(flux_lsun, pixel_kpc, sun_abs_mag, inst.redshift)
    spx = inst.sn_model.spaxel_sn(mu, inst.spaxel_arcsec)
    n_spaxels = (pixel_kpc / inst.kpc_per_arcsec / inst.spaxel_arcsec) ** 2
    return spx, spx * np.sqrt(n_spaxels)


def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) overlap fractions between two pixel grids over the same interval.

    M @ image @ M.T resamples a flux image (per pixel) from n_in to n_out pixels per side and
    conserves its total: each input pixel's flux is shared by area.
    """
    e_in = np.linspace(0.0, 1.0, n_in + 1)
    e_out = np.linspace(0.0, 1.0, n_out + 1)
    lo = np.maximum(e_out[:-1, None], e_in[None, :-1])
    hi = np.minimum(e_out[1:, None], e_in[None, 1:])
    return np.clip(hi - lo, 0.0, None) * n_in


def resample(image: np.ndarray, n_out: int) -> np.ndarray:
    """Flux-conserving resampling of a (..., n, n) image to n_out pixels per side."""
    m = resample_matrix(image.shape[-1], n_out)
    return m @ image @ m.T


# --------------------------------------------------------------------------- whole images


def crop(image: np.ndarray, pad: int) -> np.ndarray:
    """Remove `pad` pixels from each side of the last two axes."""
    return image[..., pad:image.shape[-2] - pad, pad:image.shape[-1] - pad] if pad else image


def observe_images(rendered_padded: np.ndarray, pad: int, pixel_kpc: float, inst: Instrument,
                   sun_abs_mag: dict[str, float], rng: np.random.Generator | None
                   ) -> np.ndarray:
    """(r, g) images as the instrument sees them, Lsun per pixel, on the unpadded field.

    rendered_padded: (2, n + 2 pad, n + 2 pad) noiseless images (r, g) of a field padded by
    `pad` pixels on each side. Without imaging (the `ideal` instrument) the crop is returned
    unchanged; otherwise each band is convolved with its PSF, cropped, and given sky and photon
    noise drawn from `rng`.
    """
    if inst.bands is None:
        return crop(rendered_padded, pad)
    if rng is None:
        raise ValueError("observe_images: a generator is needed to draw the noise")
    pixel_arcsec = pixel_kpc / inst.kpc_per_arcsec
    out = []
    for i, band in enumerate(("r", "g")):
        blurred = crop(convolve(rendered_padded[i], psf_kernel(inst.band_psf(band),
                                                               pixel_arcsec)), pad)
        out.append(add_noise(blurred, pixel_kpc, inst, band, sun_abs_mag[band], rng))
    return np.stack(out)


def ifu_light(rendered_r_padded: np.ndarray, pad: int, pixel_kpc: float, inst: Instrument,
              n_map: int) -> np.ndarray:
    """Noiseless r light per map pixel (Lsun) as the IFU sees it: seeing-convolved, resampled.

    The surface brightness of this map sets each spaxel's S/N; it comes from the smooth SPH
    image, not from particle counts, so coverage does not depend on the particle mass.
    """
    image = rendered_r_padded
    if inst.ifu_psf is not None:
        image = convolve(image, psf_kernel(inst.ifu_psf, pixel_kpc / inst.kpc_per_arcsec))
    return resample(crop(image, pad), n_map)
