"""Equilibrium velocities for mock star particles in the galaxy's total potential.

- Spheroids: distribution function from an Eddington (isotropic) or Osipkov-Merritt (OM,
  Osipkov 1979, Merritt 1985; beta(r) = r^2 / (r^2 + r_a^2)) inversion of the tracer density in
  the spherically averaged total potential (stars + gas monopoles + dark matter), computed on a
  grid (our own inversion; checked against galpy's analytic `osipkovmerrittHernquistdf` in
  tests/test_mock_dynamics.py; measured for a Hernquist sphere: 0.08 s for set-up + 10000
  velocities, against 0.04 s + 0.6 s with galpy's `eddingtondf`, which would also need the total
  potential wrapped as a galpy potential). `spheroid_anisotropy_radius` turns the knob
  mock.spheroid_anisotropy (observed | isotropic | radial) into r_a and makes sure the DF is
  non-negative (r_a is raised until it is; the raise is recorded).
- Discs: in the flattened potential of thick exponential discs (mass_model.ThickExponentialDisc:
  stars and both gas phases) plus the spherical bulge and halo. Velocity moments from the Jeans
  equations (as MakeNewDisk, Springel et al. 2005, but in this potential):
  sigma_z^2(R, z) = (1/rho) int_z^inf rho (-F_z) dz' (vertical Jeans, exact for the sech^2 layer
  in the full potential, so the drawn thickness is an equilibrium); sigma_R = sigma_z / q with
  q = sigma_z / sigma_R drawn per galaxy (DiskMass: mean 0.6, Bershady et al. 2011), raised
  only where Toomre Q would fall below `q_min`; sigma_phi^2 = sigma_R^2 kappa^2 / (4 Omega^2)
  (epicyclic ratio); the mean azimuthal speed from the asymmetric-drift equation
  vbar_phi^2 = v_c^2(R, z) + sigma_R^2 [1 + dln(rho sigma_R^2)/dlnR] - sigma_phi^2 (floored at
  0), with v_c^2(R, z) = -R F_R(R, z) at the particle's height.
- `integrate_orbits`: a kick-drift-kick leapfrog in the same fixed potential, to check
  equilibrium (equilibrium.py).

Velocities in km/s, positions in kpc, time in Gyr (1 km/s = 1.0227 kpc/Gyr).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analysis_lib.sources.mock.mass_model import (
    DiscResidual,
    GalaxyPotential,
    SphericalModel,
    ThickExponentialDisc,
    bilinear,
)
from analysis_lib.sources.mock.relations import G_KPC_KMS2_MSUN as G

KMS_TO_KPC_PER_GYR = 1.0227121650537077
HERNQUIST_RHALF_OVER_A = 1.0 + np.sqrt(2.0)  # 3D half-mass radius of a Hernquist sphere / a
# Spheroid anisotropy (spherical beta at the 3D half-mass radius): round ellipticals are
# "isotropic to slightly radially anisotropic, typical beta <~ 0.3, in a few cases <~ 0.5"
# (Kronawitter et al. 2000, A&AS 144, 53; Gerhard et al. 2001). The population draws
# beta_rhalf ~ U(0, 0.3) for fast rotators and bulges and U(0.1, 0.5) for slow rotators
# (uniform shapes are our choice). `radial`: beta(r_half) = 0.6 (r_a = 0.82 r_half).
RADIAL_BETA_RHALF = 0.6
# Disc velocity ellipsoid: sigma_z / sigma_R ~ U(0.5, 0.7) per galaxy, around the DiskMass
# mean 0.6 (Bershady et al. 2011, ApJ 739, L47); the width is our choice (unverified).
SIGMA_Z_OVER_R_RANGE = (0.5, 0.7)


def om_radius_for_beta(beta_rhalf: float, r_half: float) -> float | None:
    """OM anisotropy radius with beta(r_half) = beta_rhalf; None (isotropic) for beta <= 0."""
    if beta_rhalf <= 0:
        return None
    return float(r_half * np.sqrt(1.0 / min(beta_rhalf, 0.999) - 1.0))


def spheroid_anisotropy_radius(model: SphericalModel, density: Callable, r_half: float,
                               mode: str, beta_rhalf: float | None = None
                               ) -> tuple[float | None, np.ndarray, np.ndarray, bool]:
    """(r_a or None, Q grid, f(Q), raised) for mock.spheroid_anisotropy = mode.

    observed: beta(r_half) = beta_rhalf (the population column); isotropic: r_a = None;
    radial: beta(r_half) = RADIAL_BETA_RHALF. An OM DF turns negative when r_a is too small
    (for a Hernquist sphere alone below r_a = 0.2 a); r_a is then raised by 20 % steps until
    f >= 0 everywhere, and `raised` says so.
    """
    if mode == "isotropic":
        r_a = None
    elif mode == "observed":
        if beta_rhalf is None or not np.isfinite(beta_rhalf):
            raise ValueError("mock.spheroid_anisotropy 'observed' needs the population column "
                             "beta_rhalf")
        r_a = om_radius_for_beta(float(beta_rhalf), r_half)
    elif mode == "radial":
        r_a = om_radius_for_beta(RADIAL_BETA_RHALF, r_half)
    else:
        raise ValueError(f"mock.spheroid_anisotropy '{mode}' unknown "
                         "(observed | isotropic | radial)")
    raised = False
    for _ in range(40):
        q, f = eddington_df(model, density, r_a=r_a, clip=False)
        if r_a is None or np.all(f >= -1e-6 * np.max(np.abs(f))):
            return r_a, q, np.clip(f, 0.0, None), raised
        r_a, raised = 1.2 * r_a, True
    raise RuntimeError(f"no non-negative OM distribution function up to r_a = {r_a:.3g} kpc")


def eddington_df(model: SphericalModel, density: Callable[[np.ndarray], np.ndarray],
                 r_a: float | None = None, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """f(Q) on a grid of Q = E-like relative energy (Psi - v^2/2 for the isotropic case).

    Eddington (1916) / Osipkov-Merritt: f(Q) = 1/(sqrt 8 pi^2) d/dQ int_0^Q drho_Q/dPsi
    dPsi / sqrt(Q - Psi), with rho_Q = (1 + r^2/r_a^2) rho. Substituting Psi = Q - u^2 makes
    the integrand smooth. The Q grid is Psi on the model's radial grid (so every radius, the
    cusp included, is resolved). Returns (Q ascending, f), f clipped at 0 unless clip=False.
    """
    r = model.r_grid
    psi = -model.phi_grid  # relative potential, decreasing outwards
    rho = density(r)
    if r_a is not None:
        rho = rho * (1 + (r / r_a) ** 2)
    # d rho / d psi by finite differences in log r (psi is monotonic in r)
    drho_dpsi = np.gradient(rho, r) / np.gradient(psi, r)
    # ascending in psi for interpolation
    psi_asc, drho_asc = psi[::-1], drho_dpsi[::-1]
    q = psi_asc
    u_frac = np.linspace(0.0, 1.0, 200)
    u = np.sqrt(q)[:, None] * u_frac[None, :]
    integrand = 2.0 * np.interp(q[:, None] - u**2, psi_asc, drho_asc, left=0.0)
    g = np.trapezoid(integrand, u, axis=1)
    f = np.gradient(g, q) / (np.sqrt(8.0) * np.pi**2)
    return q, (np.clip(f, 0.0, None) if clip else f)


def sample_spheroid_velocities(rng: np.random.Generator, pos: np.ndarray, model: SphericalModel,
                               q_grid: np.ndarray, f_grid: np.ndarray,
                               r_a: float | None = None, n_v: int = 64) -> np.ndarray:
    """Velocities (N, 3) from f(Q): speed in the OM-scaled space from p(w) ~ w^2 f(Psi - w^2/2).

    For Osipkov-Merritt, Q = Psi - (v_r^2 + v_t^2 (1 + r^2/r_a^2)) / 2, so the tangential part
    of an isotropic draw in w-space is divided by sqrt(1 + r^2/r_a^2).
    """
    n = len(pos)
    r = np.sqrt(np.einsum("ij,ij->i", pos, pos))
    psi = -model.potential(r)
    w_esc = np.sqrt(2.0 * psi)
    t = np.linspace(0.0, 1.0, n_v)
    w = w_esc[:, None] * t[None, :]
    qq = psi[:, None] - 0.5 * w**2
    pdf = w**2 * np.interp(qq, q_grid, f_grid, left=0.0)
    cdf = np.concatenate([np.zeros((n, 1)), np.cumsum(0.5 * (pdf[:, 1:] + pdf[:, :-1]), axis=1)],
                         axis=1)
    cdf /= np.maximum(cdf[:, -1:], 1e-300)
    x = rng.uniform(size=n)
    k = np.clip((cdf < x[:, None]).sum(axis=1), 1, n_v - 1)
    c0, c1 = cdf[np.arange(n), k - 1], cdf[np.arange(n), k]
    frac = np.where(c1 > c0, (x - c0) / np.maximum(c1 - c0, 1e-300), 0.5)
    speed = w_esc * (t[k - 1] + frac * (t[k] - t[k - 1]))
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    vel = speed[:, None] * direction
    if r_a is not None:
        rhat = pos / np.maximum(r, 1e-12)[:, None]
        v_r = np.einsum("ij,ij->i", vel, rhat)[:, None] * rhat
        vel = v_r + (vel - v_r) / np.sqrt(1 + (r / r_a) ** 2)[:, None]
    return vel


def flattened_potential(model: SphericalModel, comps: dict, z0_star_kpc: float,
                        z0_gas_kpc: float) -> GalaxyPotential:
    """The galaxy's total potential: `model` (monopoles) + its discs' flattened residual.

    comps: the mass components of build_mass_model; 'disc' (stars) has thickness z0_star_kpc,
    'gas_hi' and 'gas_h2' have z0_gas_kpc (sech^2 z0). A disc thinner than 0.004 R_d (a wide
    HI disc) gets the potential of z0 = 0.004 R_d, i.e. of a razor-thin disc to 0.5 %.
    """
    discs = []
    for name, z0 in (("disc", z0_star_kpc), ("gas_hi", z0_gas_kpc), ("gas_h2", z0_gas_kpc)):
        c = comps.get(name)
        if c is None or c.mass <= 0:
            continue
        discs.append(ThickExponentialDisc(c.mass, c.r_d, float(np.clip(z0, 0.004 * c.r_d,
                                                                        c.r_d))))
    return GalaxyPotential(model, DiscResidual(discs) if discs else None)


def draw_sigma_ratio(rng: np.random.Generator) -> float:
    """sigma_z / sigma_R of a stellar disc (see SIGMA_Z_OVER_R_RANGE)."""
    return float(rng.uniform(*SIGMA_Z_OVER_R_RANGE))


def disc_kinematics(pot: GalaxyPotential, mass: float, r_d: float, z0: float,
                    sigma_ratio: float, q_min: float = 1.0, r_max_factor: float = 12.0,
                    u_max: float = 8.0) -> dict[str, Callable]:
    """Jeans moments of a sech^2 exponential stellar disc (mass, r_d, z0) in the potential `pot`.

    Returns callables of (R, |z|) (kpc): 'vphi_mean', 'sigma_z'; of R: 'sigma_r',
    'sigma_phi', 'toomre_q', 'vcirc' (km/s); and 'q_floor_raised' (fraction of 0.5-4 R_d
    where the Toomre floor raised sigma_R above sigma_z / sigma_ratio).
    """
    rr = np.geomspace(1e-2 * r_d, r_max_factor * r_d, 240)
    uu = np.linspace(0.0, u_max, 65)
    zz = z0 * uu
    f_r, f_z = pot.forces(rr[:, None], zz[None, :])
    # vertical Jeans: rho sigma_z^2 = int_z^inf rho (-F_z) dz', rho ~ sech^2(z/z0) at each R
    w = np.cosh(uu) ** -2
    g = w[None, :] * (-f_z)
    seg = 0.5 * (g[:, 1:] + g[:, :-1]) * np.diff(zz)[None, :]
    tail = g[:, -1] * z0 / 2  # beyond u_max: w ~ e^{-2u}, F_z ~ constant
    cum = np.concatenate([np.cumsum(seg[:, ::-1], axis=1)[:, ::-1], np.zeros((len(rr), 1))],
                         axis=1) + tail[:, None]
    sz2 = np.maximum(cum / w[None, :], 0.0)
    sz2_mean = np.trapezoid(w * sz2, uu, axis=1) / np.trapezoid(w, uu)
    vc2 = np.maximum(-rr * f_r[:, 0], 1e-6)
    omega2 = vc2 / rr**2
    kappa2 = np.maximum(np.gradient(vc2, rr) / rr + 2 * vc2 / rr**2, 1e-12)
    sigma_surface = mass / (2 * np.pi * r_d**2) * np.exp(-rr / r_d)
    sr2 = sz2_mean / sigma_ratio**2
    sr_toomre2 = (q_min * 3.36 * G * sigma_surface / np.sqrt(kappa2)) ** 2
    raised = sr_toomre2 > sr2
    sr2 = np.maximum(sr2, sr_toomre2)
    dln = -rr / r_d + np.gradient(np.log(sr2), np.log(rr))
    sphi2 = sr2 * kappa2 / (4 * omega2)
    vphi2 = -rr[:, None] * f_r + (sr2 * (1 + dln) - sphi2)[:, None]
    toomre = np.sqrt(sr2 * kappa2) / (3.36 * G * sigma_surface)
    band = (rr > 0.5 * r_d) & (rr < 4 * r_d)

    def of_r(y):
        return lambda r: np.interp(np.asarray(r, float), rr, y)

    def of_rz(y):
        return lambda r, z: bilinear(rr, zz, y, np.asarray(r, float), np.abs(np.asarray(z)))

    nu2 = np.maximum(-f_z[:, 1] / zz[1], 1e-12)  # vertical frequency^2 in the mid-plane
    return {"vphi_mean": of_rz(np.sqrt(np.clip(vphi2, 0, None))), "sigma_z": of_rz(np.sqrt(sz2)),
            "sigma_z2_mean": of_r(sz2_mean), "nu": of_r(np.sqrt(nu2)),
            "sigma_r": of_r(np.sqrt(sr2)), "sigma_phi": of_r(np.sqrt(sphi2)),
            "toomre_q": of_r(toomre), "vcirc": of_r(np.sqrt(vc2)),
            "q_floor_raised": float(raised[band].mean())}


def sample_disc_velocities(rng: np.random.Generator, pos_disc_frame: np.ndarray,
                           moments: dict[str, Callable], guiding_vertical: bool = True,
                           n_bins: int = 40) -> np.ndarray:
    """Gaussian velocities about the Jeans moments, in the disc frame (z = spin axis).

    guiding_vertical: the vertical velocity dispersion of a star follows its guiding radius R_g
    (R_g v_c(R_g) = L_z), not only its present radius. In an equilibrium disc the vertical
    action J_z ~ E_z / nu is carried along the epicycle (adiabatic invariant), so a star now at
    R with R_g < R brings the vertical energy of the hotter inner disc, sigma_z^2(R_g) nu(R) /
    nu(R_g) (the quasi-isothermal DF of Binney 2010, MNRAS 401, 2318, and Binney & McMillan
    2011 evaluates sigma_z at R_g for the same reason). Without it, stars that wander outwards
    keep their J_z and the outer disc thickens by 10-15 % within three orbits in hot discs
    (measured, equilibrium.disc_equilibrium). The per-star factor s = sigma_z^2(R_g) nu(R) /
    (nu(R_g) sigma_z^2(R)) is normalised to mean 1 in n_bins radial bins of equal counts, so the
    local second moments still solve the vertical Jeans equation at every R.
    """
    x, y, z = pos_disc_frame[:, 0], pos_disc_frame[:, 1], pos_disc_frame[:, 2]
    rc = np.maximum(np.hypot(x, y), 1e-9)
    n = len(rc)
    v_r = rng.normal(size=n) * moments["sigma_r"](rc)
    v_phi = moments["vphi_mean"](rc, z) + rng.normal(size=n) * moments["sigma_phi"](rc)
    sig_z = moments["sigma_z"](rc, z)
    if guiding_vertical and n >= 2 * n_bins:
        grid = np.geomspace(1e-3, 1.0, 300) * float(np.max(rc)) * 1.5
        lz_grid = np.maximum.accumulate(grid * moments["vcirc"](grid))
        r_g = np.interp(np.maximum(rc * v_phi, 0.0), lz_grid, grid)
        r_g = np.maximum(r_g, grid[0])
        s = (moments["sigma_z2_mean"](r_g) * moments["nu"](rc)
             / (moments["nu"](r_g) * moments["sigma_z2_mean"](rc)))
        s = np.clip(s, 0.1, 10.0)
        edges = np.quantile(rc, np.linspace(0, 1, n_bins + 1))
        b = np.clip(np.searchsorted(edges, rc, side="right") - 1, 0, n_bins - 1)
        s = s / (np.bincount(b, s, n_bins) / np.maximum(np.bincount(b, None, n_bins), 1))[b]
        sig_z = sig_z * np.sqrt(s)
    v_z = rng.normal(size=n) * sig_z
    cos, sin = x / rc, y / rc
    return np.column_stack([v_r * cos - v_phi * sin, v_r * sin + v_phi * cos, v_z])


def total_potential(model: SphericalModel, discs: DiscResidual | None,
                    pos_disc_frame: np.ndarray) -> np.ndarray:
    """Model potential (km/s)^2 at positions in the disc frame: monopoles + flattened discs."""
    r = np.sqrt(np.einsum("ij,ij->i", pos_disc_frame, pos_disc_frame))
    phi = model.potential(r)
    if discs is not None:
        phi = phi + discs.potential(np.hypot(pos_disc_frame[:, 0], pos_disc_frame[:, 1]),
                                    pos_disc_frame[:, 2])
    return phi


def _acceleration(model: SphericalModel, discs: DiscResidual | None,
                  pos: np.ndarray) -> np.ndarray:
    r = np.maximum(np.sqrt(np.einsum("ij,ij->i", pos, pos)), 1e-9)
    acc = (model.radial_force(r) / r)[:, None] * pos
    if discs is not None:
        rc = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-9)
        f_r, f_z = discs.forces(rc, pos[:, 2])
        acc[:, 0] += f_r * pos[:, 0] / rc
        acc[:, 1] += f_r * pos[:, 1] / rc
        acc[:, 2] += f_z
    return acc


def integrate_orbits(model: SphericalModel, discs: DiscResidual | None, pos: np.ndarray,
                     vel: np.ndarray, t_end_gyr: float, dt_gyr: float, n_snap: int = 10,
                     snap_times_gyr: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Leapfrog (kick-drift-kick) in the fixed model potential; positions in the disc frame.

    Returns (pos, vel) snapshots of shape (n_snap, N, 3): by default evenly spaced over the last
    half of the integration (for time-averaged statistics), or at the steps nearest to
    `snap_times_gyr` (then n_snap = len(snap_times_gyr)).
    """
    n_steps = int(np.ceil(t_end_gyr / dt_gyr))
    if snap_times_gyr is None:
        snap_list = np.linspace(n_steps // 2, n_steps, n_snap).astype(int)
    else:
        snap_list = np.clip(np.round(np.asarray(snap_times_gyr) / dt_gyr).astype(int), 0,
                            n_steps)
    x = pos.copy()
    v = vel * KMS_TO_KPC_PER_GYR  # kpc/Gyr
    conv = KMS_TO_KPC_PER_GYR**2  # (km/s)^2/kpc -> kpc/Gyr^2
    a = _acceleration(model, discs, x) * conv
    snaps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if 0 in snap_list:
        snaps[0] = (x.copy(), v / KMS_TO_KPC_PER_GYR)
    for step in range(1, n_steps + 1):
        v += 0.5 * dt_gyr * a
        x += dt_gyr * v
        a = _acceleration(model, discs, x) * conv
        v += 0.5 * dt_gyr * a
        if step in snap_list:
            snaps[step] = (x.copy(), v / KMS_TO_KPC_PER_GYR)
    out_x = np.array([snaps[s][0] for s in snap_list])
    out_v = np.array([snaps[s][1] for s in snap_list])
    return out_x, out_v
