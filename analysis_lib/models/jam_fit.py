"""Fit one galaxy projection with a Jeans Anisotropic Model and derive the dataset's targets.

The model (Cappellari 2008, jampy's `jam.axi.proj`, cylindrically aligned velocity ellipsoid):

- tracer: the MGE of the r image (`jam_mge`); stars: the same MGE times a constant M*/L_r;
- dark matter: an NFW sphere with free M200 and r_s from a mass-concentration relation
  (`jam_halo`); gas is not modelled, as in JAM practice, so any gas mass is absorbed by the
  stellar M/L and the halo;
- constant anisotropy beta_z = 1 - sigma_z^2 / sigma_R^2 for all Gaussians;
- inclination free, parametrised (Cappellari 2008 eq. 14) by the intrinsic axis ratio of the
  flattest Gaussian, which must lie between `qintr_min` and its observed axis ratio.

It is fitted to v_rms^2 = V^2 + sigma^2 on the valid map pixels (v_rms^2, not v_rms: see
`fit_jam`). v_rms^2 is linear in the potential at fixed anisotropy and inclination, so for each
trial (beta_z, q, M200) the stellar M/L is solved exactly (linear least squares) and scipy's
least_squares searches the other three; a second pass refits with errors taken from the first
model. Cost: ~40-60 JAM evaluations, a few seconds per galaxy on one core.

Known limits, stated rather than hidden: a constant M/L and a smooth, centrally peaked tracer
are assumed, so dusty discs (whose r images have dark centres and lanes) violate the model; near
face-on views leave inclination and beta_z degenerate; without PSF or pixel convolution the
model is evaluated at pixel centres (the maps are NGP averages, a ~1 % effect).

Units: JAM works in arcsec at a nominal distance (`distance_mpc`, any value gives the same
masses: only the pc-per-arcsec conversion uses it); surface brightness in Lsun/pc^2. The targets
use the dataset's definitions: masses inside a 3D sphere of R_half (the dataset's rhalf_kpc,
which also sets the physical pixel scale), f_DM = M_dm / (M* + M_dm), and M*/L_r = the model's
constant M/L (its projected value inside any aperture).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis_lib.models.jam_halo import NFWHalo, halo_mge
from analysis_lib.models.jam_mge import (
    ImageMGE,
    fit_image_mge,
    major_minor_coords,
    pc_per_arcsec,
    pixel_centres,
)

# Bump when the fitting procedure changes in a way settings do not show: stored fits made by an
# older procedure are then redone rather than reused (see jam.settings_fingerprint).
FIT_VERSION = 1
JAMPY_QINTR_MIN = 0.051  # jampy refuses intrinsic axis ratios below 0.05


class JamFitError(ValueError):
    """Inputs a JAM model cannot be fitted to; the message says which and why."""


@dataclass
class JamSettings:
    """Everything a fit depends on (the `jam:` section of profiles.yaml, minus runner keys)."""

    fov_rhalf: float = 3.0            # half-width of image and maps in R_half (dataset's)
    distance_mpc: float = 20.0        # nominal distance that sets arcsec <-> pc
    mge_ngauss: int = 8
    mge_minlevel_frac: float = 1e-4   # photometry threshold, fraction of the peak pixel
    mge_qbounds: tuple[float, float] = (0.06, 0.99)  # observed q of MGE Gaussians
    mge_regularize: float = 1.1       # see jam_mge.fit_image_mge; 0 = off
    halo_ngauss: int = 12
    inclination: str = "fit"          # fit | true (use the dataset's inclination_deg)
    qintr_min: float = 0.1            # flattest intrinsic axis ratio allowed
    beta_bounds: tuple[float, float] = (-0.3, 0.7)
    log_m200_bounds: tuple[float, float] = (9.0, 15.5)
    ml_bounds: tuple[float, float] = (0.05, 30.0)
    error_frac: float = 0.1           # v_rms^2 error scale (weights only; `vrms2_errors`)
    min_pixels: int = 20
    max_nfev: int = 40
    tol: float = 1e-3                 # least_squares ftol = xtol (masses need ~1 %, not 1e-8)
    clip_sigma: float = 0.0           # pass 2 drops pixels this far out (robust sigma); 0 = off
    jam_nang: int = 10
    jam_nrad: int = 10

    @classmethod
    def from_config(cls, section: dict) -> JamSettings:
        """Settings from cfg['jam'] (unknown keys, e.g. the runner's, are ignored)."""
        names = set(cls.__dataclass_fields__)
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items()
                  if k in names}
        return cls(**kwargs)


@dataclass
class JamResult:
    """One fit: the targets (named as in the dataset) and what produced them."""

    log_mstar: float
    log_mtot: float
    log_mdm: float
    log_fdm: float
    log_ml_r: float
    log_mstar_2rhalf: float
    log_mtot_2rhalf: float
    ml_r: float
    beta_z: float
    inclination_deg: float
    qintr_min: float
    log_m200: float
    rs_kpc: float
    chi2_red: float
    n_pixels: int
    n_clipped: int
    nfev: int
    n_jam_calls: int
    mge_ngauss: int
    mge_absdev: float
    mge_lum_lsun: float
    seconds: float
    extra: dict = field(default_factory=dict)
    maps: dict | None = None          # with keep_maps: data and model v_rms (km/s), NaN = unused

    def to_dict(self) -> dict:
        """The scalars (and `extra`), for a JSON record; maps are left out."""
        out = asdict(self)
        out.pop("maps")
        return out


def inclination_from_q(qintr: float, qobs_min: float) -> float:
    """Inclination (deg) at which the flattest Gaussian (observed q) has intrinsic axis ratio q."""
    return float(np.degrees(np.arctan2(np.sqrt(1 - qobs_min**2),
                                       np.sqrt(max(qobs_min**2 - qintr**2, 0.0)))))


def q_from_inclination(inc_deg: float, qobs_min: float) -> float:
    """Intrinsic axis ratio of the flattest Gaussian at inclination inc (Cappellari 2008 eq. 14)."""
    cos2, sin2 = np.cos(np.radians(inc_deg)) ** 2, np.sin(np.radians(inc_deg)) ** 2
    return float(np.sqrt(max(qobs_min**2 - cos2, 0.0) / sin2))


def mge_surface(x: np.ndarray, y: np.ndarray, mge: ImageMGE) -> np.ndarray:
    """MGE surface brightness (Lsun/pc^2) at (major, minor) positions in arcsec."""
    s, q = mge.sigma_arcsec[:, None], mge.qobs[:, None]
    return (mge.surf_lsun_pc2[:, None] * np.exp(-0.5 * (x**2 + (y / q) ** 2) / s**2)).sum(0)


def vrms2_errors(level: np.ndarray | float, surface: np.ndarray, error_frac: float
                 ) -> np.ndarray:
    """Errors of v_rms^2 for a particle map: level * error_frac * sqrt(<S> / S).

    The maps carry no error estimates. v_rms^2 averaged over N particles has an error ~
    v_rms^2 sqrt(2 / N), and N follows the surface brightness S, so the errors scale as
    1/sqrt(S) about the median pixel, clipped to a factor 3 either way so that neither the
    centre nor the outskirts dominate. `level` is v_rms^2 (a constant first, then the model).
    Only relative errors matter for the best fit.
    """
    ratio = np.sqrt(np.median(surface) / np.maximum(surface, 1e-30))
    return error_frac * np.maximum(level, 1.0) * np.clip(ratio, 1 / 3, 3.0)


def best_ml(y: np.ndarray, e: np.ndarray, a: np.ndarray, b: np.ndarray,
            bounds: tuple[float, float]) -> float:
    """M/L minimising sum(((y - ml a - b) / e)^2) within bounds: linear least squares."""
    w = 1 / e**2
    ml = float(np.sum(w * a * (y - b)) / max(np.sum(w * a * a), 1e-300))
    return float(np.clip(ml, *bounds))


class _Model:
    """v_rms^2 basis maps (stars at M/L = 1, halo) with a cache of the stellar one."""

    def __init__(self, mge: ImageMGE, x: np.ndarray, y: np.ndarray, settings: JamSettings,
                 pc_arcsec: float) -> None:
        self.mge, self.x, self.y, self.s = mge, x, y, settings
        self.pc_arcsec = pc_arcsec
        self.qmin = float(mge.qobs.min())
        self.calls = 0
        self._stars: dict[tuple, np.ndarray] = {}

    def _jam(self, pot: tuple[np.ndarray, np.ndarray, np.ndarray], beta: float, inc: float
             ) -> np.ndarray:
        import jampy

        m = self.mge
        self.calls += 1
        out = jampy.axi.proj(
            m.surf_lsun_pc2, m.sigma_arcsec, m.qobs, *pot, inc, 0.0, self.s.distance_mpc,
            self.x, self.y, align="cyl", beta=np.full(m.n_gauss, beta), ml=1.0, plot=False,
            quiet=True, nang=self.s.jam_nang, nrad=self.s.jam_nrad)
        return np.asarray(out.model, float) ** 2

    def basis(self, beta: float, inc: float, log_m200: float) -> tuple[np.ndarray, np.ndarray]:
        key = (round(beta, 12), round(inc, 12))
        if key not in self._stars:
            m = self.mge
            self._stars[key] = self._jam((m.surf_lsun_pc2, m.sigma_arcsec, m.qobs), beta, inc)
        halo = NFWHalo.from_m200(10**log_m200)
        b = self._jam(halo_mge(halo, self.pc_arcsec, self.s.halo_ngauss), beta, inc)
        return self._stars[key], b


@dataclass
class _Problem:
    """The data of one fit and the parameter layout: p = (beta_z, q_intr, log M200)."""

    model: _Model
    y: np.ndarray                  # v_rms^2 data
    e: np.ndarray                  # its errors
    sel: np.ndarray                # pixels in the fit
    q_fixed: float | None          # intrinsic q when the inclination is not fitted

    def unpack(self, p: np.ndarray) -> tuple[float, float, float]:
        if self.q_fixed is None:
            return float(p[0]), float(p[1]), float(p[2])
        return float(p[0]), self.q_fixed, float(p[1])

    def predict(self, p: np.ndarray) -> tuple[np.ndarray, float]:
        """Model v_rms^2 on all pixels and the profiled M/L."""
        beta, q, log_m200 = self.unpack(p)
        a, b = self.model.basis(beta, inclination_from_q(q, self.model.qmin), log_m200)
        ml = best_ml(self.y[self.sel], self.e[self.sel], a[self.sel], b[self.sel],
                     self.model.s.ml_bounds)
        return ml * a + b, ml


def _least_squares(prob: _Problem, p0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   max_nfev: int, tol: float) -> tuple[np.ndarray, int]:
    from scipy.optimize import least_squares

    def residuals(p: np.ndarray) -> np.ndarray:
        mu, _ = prob.predict(p)
        return ((prob.y - mu) / prob.e)[prob.sel]

    res = least_squares(residuals, p0, bounds=(lo, hi), diff_step=1e-3, x_scale="jac",
                        max_nfev=max_nfev, ftol=tol, xtol=tol, gtol=tol)
    return res.x, int(res.nfev)


def fit_jam(image: np.ndarray, vel_map: np.ndarray, sigma_map: np.ndarray,
            map_mask: np.ndarray, rhalf_kpc: float, settings: JamSettings | None = None,
            inclination_deg: float | None = None, keep_maps: bool = False) -> JamResult:
    """Fit one projection: image (Lsun/pixel) and maps (km/s) over +-fov_rhalf R_half.

    inclination_deg is used only when settings.inclination == 'true'. keep_maps: also return the
    data and best-model v_rms maps (for figures), in `result.maps`.
    """
    s = settings or JamSettings()
    t0 = time.perf_counter()
    vel, sig, mask = _check_inputs(vel_map, sigma_map, map_mask, rhalf_kpc, s, inclination_deg)
    # V^2 + sigma^2 of a pixel is the weighted mean of v_los^2 over its particles: an unbiased
    # estimate of <v_los^2> even from one particle (sigma = 0), whereas its square root is
    # biased low where particles are few. So the fit is made to v_rms^2.
    y_all = (vel**2 + sig**2).ravel()
    good = (mask & np.isfinite(vel) & np.isfinite(sig)).ravel()
    if good.sum() < s.min_pixels:
        raise JamFitError(f"only {int(good.sum())} valid kinematic pixels (need "
                          f"{s.min_pixels})")

    pc_as = pc_per_arcsec(s.distance_mpc)
    half_arcsec = s.fov_rhalf * rhalf_kpc * 1e3 / pc_as
    pix_arcsec = 2 * half_arcsec / np.shape(image)[0]
    mge = fit_image_mge(image, pix_arcsec, pix_arcsec * pc_as, ngauss=s.mge_ngauss,
                        minlevel_frac=s.mge_minlevel_frac, qbounds=s.mge_qbounds,
                        regularize=s.mge_regularize)
    t_mge = time.perf_counter() - t0

    # Map pixels in the image's frame (index 0 = mgefit x), rotated onto the major axis.
    c = pixel_centres(vel.shape[0], half_arcsec)
    dx, dy = np.meshgrid(c, c, indexing="ij")
    x, y_minor = major_minor_coords(dx.ravel()[good], dy.ravel()[good], mge.theta_deg)
    y = y_all[good]
    surface = mge_surface(x, y_minor, mge)
    model = _Model(mge, x, y_minor, s, pc_as)
    q_fixed, p0, lo, hi = _parameter_box(model.qmin, s, inclination_deg)
    prob = _Problem(model, y, vrms2_errors(np.median(y), surface, s.error_frac),
                    np.ones(y.size, bool), q_fixed)
    p, nfev, n_clipped = _two_pass_fit(prob, y, surface, s, p0, lo, hi)

    mu, ml = prob.predict(p)
    maps = None
    if keep_maps:
        data_map, model_map = np.full(y_all.size, np.nan), np.full(y_all.size, np.nan)
        data_map[good], model_map[good] = np.sqrt(y), np.sqrt(mu)
        maps = {"vrms_data": data_map.reshape(vel.shape),
                "vrms_model": model_map.reshape(vel.shape)}
    r = ((y - mu) / prob.e)[prob.sel]
    fit = {"p": p, "ml": ml, "lo": lo, "hi": hi, "q_fixed": q_fixed, "nfev": nfev,
           "n_clipped": n_clipped, "r": r}
    return _result(fit, prob, mge, model, s, rhalf_kpc, pc_as, t0, t_mge, maps)


def _check_inputs(vel_map: np.ndarray, sigma_map: np.ndarray, map_mask: np.ndarray,
                  rhalf_kpc: float, s: JamSettings, inclination_deg: float | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maps as arrays, or one clear JamFitError for inputs no fit can use."""
    vel, sig = np.asarray(vel_map, float), np.asarray(sigma_map, float)
    mask = np.asarray(map_mask, bool)
    if vel.shape != sig.shape or vel.shape != mask.shape or vel.ndim != 2:
        raise JamFitError(f"maps disagree in shape: vel {vel.shape}, sigma {sig.shape}, "
                          f"mask {mask.shape}")
    if not (np.isfinite(rhalf_kpc) and rhalf_kpc > 0):
        raise JamFitError(f"rhalf_kpc must be positive, got {rhalf_kpc}")
    if s.inclination not in ("fit", "true"):
        raise JamFitError(f"jam.inclination must be 'fit' or 'true', not '{s.inclination}'")
    if s.inclination == "true" and (inclination_deg is None or not np.isfinite(inclination_deg)):
        raise JamFitError("inclination='true' needs the dataset's inclination_deg")
    return vel, sig, mask


def _parameter_box(qmin: float, s: JamSettings, inclination_deg: float | None
                   ) -> tuple[float | None, np.ndarray, np.ndarray, np.ndarray]:
    """(q_fixed, p0, lo, hi): the free parameters (beta_z, [qintr_min,] log M200), their
    start and bounds. The intrinsic flattening is fixed when the MGE is edge-on, or from the
    true inclination (kept deprojectable) when jam.inclination is 'true'."""
    q_hi = qmin * (1 - 1e-4)
    q_lo = max(min(s.qintr_min, 0.5 * qmin), JAMPY_QINTR_MIN)
    q_fixed = None
    if q_hi <= q_lo:  # the flattest Gaussian is as flat as jampy allows: edge-on
        q_fixed = q_hi
    elif s.inclination == "true":
        inc_true = float(np.degrees(np.arccos(abs(np.cos(np.radians(inclination_deg))))))
        # kept deprojectable when the MGE is flatter than the true inclination allows
        q_fixed = float(np.clip(q_from_inclination(max(inc_true, 1.0), qmin), q_lo, q_hi))

    (b_lo, b_hi), (m_lo, m_hi) = s.beta_bounds, s.log_m200_bounds
    if q_fixed is None:
        p0 = np.array([0.1, 0.5 * (q_lo + q_hi), 12.0])
        lo, hi = np.array([b_lo, q_lo, m_lo]), np.array([b_hi, q_hi, m_hi])
    else:
        p0, lo, hi = np.array([0.1, 12.0]), np.array([b_lo, m_lo]), np.array([b_hi, m_hi])
    return q_fixed, np.clip(p0, lo + 1e-6, hi - 1e-6), lo, hi


def _two_pass_fit(prob: _Problem, y: np.ndarray, surface: np.ndarray, s: JamSettings,
                  p0: np.ndarray, lo: np.ndarray, hi: np.ndarray
                  ) -> tuple[np.ndarray, int, int]:
    """Pass 1: errors from the median v_rms^2. Pass 2: errors from the pass-1 model (smooth,
    unlike the data), optionally without > clip_sigma outliers, refitted from pass 1.
    Returns the parameters, the function evaluations and the number of clipped pixels."""
    p, nfev = _least_squares(prob, p0, lo, hi, s.max_nfev, s.tol)
    mu, _ = prob.predict(p)
    prob.e = vrms2_errors(mu, surface, s.error_frac)
    n_clipped = 0
    if s.clip_sigma > 0:
        r = (y - mu) / prob.e
        dev = np.abs(r - np.median(r))
        keep = dev < s.clip_sigma * 1.4826 * np.median(dev)  # robust (MAD) sigma
        if keep.sum() >= s.min_pixels:
            prob.sel, n_clipped = keep, int((~keep).sum())
    p, nfev2 = _least_squares(prob, p, lo, hi, max(s.max_nfev // 2, 1), s.tol)
    return p, nfev + nfev2, n_clipped


def _result(fit: dict, prob: _Problem, mge, model: _Model, s: JamSettings, rhalf_kpc: float,
            pc_as: float, t0: float, t_mge: float, maps: dict | None) -> JamResult:
    """Masses within 1 and 2 R_half (stars: M/L x deprojected light; dark matter: the NFW
    halo), the fitted parameters, and the fit's diagnostics."""
    import jampy

    p, ml, lo, hi, q_fixed, r = (fit[k] for k in ("p", "ml", "lo", "hi", "q_fixed", "r"))
    beta, q, log_m200 = prob.unpack(p)
    inc = inclination_from_q(q, model.qmin)
    halo = NFWHalo.from_m200(10**log_m200)
    radii = np.array([1.0, 2.0]) * rhalf_kpc
    lum = jampy.mge.radial_mass(mge.surf_lsun_pc2, mge.sigma_arcsec, mge.qobs, inc,
                                radii * 1e3 / pc_as, distance=s.distance_mpc)
    mstar = ml * np.asarray(lum)
    mdm = np.asarray(halo.enclosed_mass(radii))
    mtot = mstar + mdm
    n_free = 4 if q_fixed is None else 3
    names = ["beta_z", "qintr_min", "log_m200"] if q_fixed is None else ["beta_z", "log_m200"]
    at_bounds = [n for n, v, a, b in zip(names, p, lo, hi, strict=True)
                 if min(v - a, b - v) < 1e-3 * (b - a)]
    if min(ml - s.ml_bounds[0], s.ml_bounds[1] - ml) <= 0:
        at_bounds.append("ml_r")
    return JamResult(
        log_mstar=float(np.log10(mstar[0])), log_mtot=float(np.log10(mtot[0])),
        log_mdm=float(np.log10(mdm[0])), log_fdm=float(np.log10(mdm[0] / mtot[0])),
        log_ml_r=float(np.log10(ml)), log_mstar_2rhalf=float(np.log10(mstar[1])),
        log_mtot_2rhalf=float(np.log10(mtot[1])), ml_r=float(ml), beta_z=float(beta),
        inclination_deg=float(inc), qintr_min=float(q), log_m200=float(log_m200),
        rs_kpc=halo.rs_kpc, chi2_red=float(r @ r / max(r.size - n_free, 1)),
        n_pixels=int(r.size), n_clipped=fit["n_clipped"], nfev=fit["nfev"],
        n_jam_calls=model.calls, mge_ngauss=mge.n_gauss, mge_absdev=mge.absdev,
        mge_lum_lsun=mge.total_lsun, seconds=time.perf_counter() - t0,
        extra={"seconds_mge": t_mge, "at_bounds": ",".join(at_bounds)}, maps=maps)
