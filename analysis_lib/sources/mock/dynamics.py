"""Equilibrium velocities for mock star particles in the galaxy's total potential.

- Spheroids: distribution function from an Eddington inversion of the tracer density in the
  spherically averaged total potential (stars + gas + dark matter), computed on a grid (our own
  inversion; measured for a Hernquist sphere: 0.08 s for set-up + 10000 velocities, against
  0.04 s + 0.6 s with galpy's `eddingtondf`, which would also need the total potential wrapped
  as a galpy potential). Optional
  Osipkov-Merritt radial anisotropy (anisotropy radius r_a; isotropic when r_a is None).
- Discs: Jeans equations in the epicyclic approximation (Hernquist 1993, as MakeNewDisk):
  sigma_z^2 = <z dPhi/dz> over the sech^2 layer (vertical virial theorem; pi G Sigma z0 for a
  pure isothermal sheet) for the sheet plus the monopole, with a 10 km/s floor added in
  quadrature (stars are born from gas that warm); sigma_R^2 = f_R sigma_z^2 (f_R = 1), raised to
  keep Toomre Q >= q_min, sigma_phi^2 = sigma_R^2 kappa^2 / (4 Omega^2), and the mean azimuthal
  speed from the asymmetric-drift equation
  vbar_phi^2 = v_c^2 + sigma_R^2 [1 + dln(Sigma sigma_R^2)/dlnR] - sigma_phi^2 (floored at 0),
  with v_c^2 = R <F_R> averaged over the layer (the monopole pulls less off the plane; the
  sheet term pushes outwards).
- `integrate_orbits`: a kick-drift-kick leapfrog in the same fixed potential, to check
  equilibrium.

Velocities in km/s, positions in kpc, time in Gyr (1 km/s = 1.0227 kpc/Gyr).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analysis_lib.sources.mock.mass_model import SheetPotential, SphericalModel
from analysis_lib.sources.mock.relations import G_KPC_KMS2_MSUN as G

KMS_TO_KPC_PER_GYR = 1.0227121650537077


def eddington_df(model: SphericalModel, density: Callable[[np.ndarray], np.ndarray],
                 r_a: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """f(Q) on a grid of Q = E-like relative energy (Psi - v^2/2 for the isotropic case).

    Eddington (1916) / Osipkov-Merritt: f(Q) = 1/(sqrt 8 pi^2) d/dQ int_0^Q drho_Q/dPsi
    dPsi / sqrt(Q - Psi), with rho_Q = (1 + r^2/r_a^2) rho. Substituting Psi = Q - u^2 makes
    the integrand smooth. The Q grid is Psi on the model's radial grid (so every radius, the
    cusp included, is resolved). Returns (Q ascending, f), f clipped at 0.
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
    return q, np.clip(f, 0.0, None)


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


def disc_kinematics(model: SphericalModel, sheet: SheetPotential, f_r: float = 1.0,
                    q_min: float = 1.2, sigma_floor: float = 10.0, r_max_factor: float = 12.0
                    ) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Jeans moments of the stellar disc as functions of cylindrical radius R (kpc).

    Returns callables 'vphi_mean', 'sigma_r', 'sigma_phi', 'sigma_z' (km/s) and 'toomre_q'.
    """
    rr = np.geomspace(1e-3 * sheet.r_d, r_max_factor * sheet.r_d, 400)
    vc = model.vcirc(rr)
    sig_surface = sheet.sigma0 * np.exp(-rr / sheet.r_d)
    # vertical Jeans (virial form): sigma_z^2 = <z dPhi/dz> over the sech^2 layer, for the
    # (saturated) sheet plus the monopole; <z dPhi/dz> = sigma_z^2 for an unsaturated sheet
    u = np.linspace(0.0, 6.0, 97)
    zz = sheet.z0 * u
    r3 = np.sqrt(rr[:, None] ** 2 + zz[None, :] ** 2)
    w = np.cosh(u) ** -2
    f_r_sheet, f_z_sheet = sheet.forces(rr[:, None], zz[None, :])
    zf = zz[None, :] ** 2 * G * model.enclosed_mass(r3) / r3**3 - zz[None, :] * f_z_sheet
    sz2 = np.trapezoid(w * zf, u, axis=1) / np.trapezoid(w, u)
    # effective v_c^2 = R <F_R> averaged over the layer: off the plane the monopole pulls less
    # in R (G M(r) R / r^3) and the sheet term pushes outwards
    f_r_total = G * model.enclosed_mass(r3) * rr[:, None] / r3**3 - f_r_sheet
    vc2_eff = rr * np.trapezoid(w * f_r_total, u, axis=1) / np.trapezoid(w, u)
    vc = np.sqrt(np.clip(vc2_eff, 1e-6, None))
    omega2 = (vc / rr) ** 2
    dvc = np.gradient(vc, rr)
    kappa2 = np.maximum(2 * (vc / rr) * (vc / rr + dvc), 1e-12)
    # stars are born from gas with sigma ~ 10 km/s and are never colder than that
    sz2 = sz2 + sigma_floor**2
    sr2 = f_r * sz2
    sr_toomre = q_min * 3.36 * G * sig_surface / np.sqrt(kappa2)
    sr2 = np.maximum(sr2, sr_toomre**2)
    dln = np.gradient(np.log(sig_surface * sr2), np.log(rr))
    sphi2 = sr2 * kappa2 / (4 * omega2)
    vphi2 = vc**2 + sr2 * (1 + dln) - sphi2
    toomre = np.sqrt(sr2) * np.sqrt(kappa2) / (3.36 * G * sig_surface)

    def interp(y):
        return lambda r: np.interp(np.asarray(r), rr, y)

    return {"vphi_mean": interp(np.sqrt(np.clip(vphi2, 0, None))), "sigma_r": interp(np.sqrt(sr2)),
            "sigma_phi": interp(np.sqrt(sphi2)), "sigma_z": interp(np.sqrt(sz2)),
            "toomre_q": interp(toomre)}


def sample_disc_velocities(rng: np.random.Generator, pos_disc_frame: np.ndarray,
                           moments: dict[str, Callable]) -> np.ndarray:
    """Gaussian velocities about the Jeans moments, in the disc frame (z = spin axis)."""
    x, y = pos_disc_frame[:, 0], pos_disc_frame[:, 1]
    rc = np.maximum(np.hypot(x, y), 1e-9)
    n = len(rc)
    v_r = rng.normal(size=n) * moments["sigma_r"](rc)
    v_phi = moments["vphi_mean"](rc) + rng.normal(size=n) * moments["sigma_phi"](rc)
    v_z = rng.normal(size=n) * moments["sigma_z"](rc)
    cos, sin = x / rc, y / rc
    return np.column_stack([v_r * cos - v_phi * sin, v_r * sin + v_phi * cos, v_z])


def total_potential(model: SphericalModel, sheet: SheetPotential | None,
                    pos_disc_frame: np.ndarray) -> np.ndarray:
    """Model potential (km/s)^2 at positions given in the disc frame: monopole + sheet."""
    r = np.sqrt(np.einsum("ij,ij->i", pos_disc_frame, pos_disc_frame))
    phi = model.potential(r)
    if sheet is not None:
        phi = phi + sheet.potential(np.hypot(pos_disc_frame[:, 0], pos_disc_frame[:, 1]),
                                    pos_disc_frame[:, 2])
    return phi


def _acceleration(model: SphericalModel, sheet: SheetPotential | None,
                  pos: np.ndarray) -> np.ndarray:
    r = np.maximum(np.sqrt(np.einsum("ij,ij->i", pos, pos)), 1e-9)
    acc = (model.radial_force(r) / r)[:, None] * pos
    if sheet is not None:
        rc = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-9)
        f_r, f_z = sheet.forces(rc, pos[:, 2])
        acc[:, 0] += f_r * pos[:, 0] / rc
        acc[:, 1] += f_r * pos[:, 1] / rc
        acc[:, 2] += f_z
    return acc


def integrate_orbits(model: SphericalModel, sheet: SheetPotential | None, pos: np.ndarray,
                     vel: np.ndarray, t_end_gyr: float, dt_gyr: float, n_snap: int = 10
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Leapfrog (kick-drift-kick) in the fixed model potential; positions in the disc frame.

    Returns (pos, vel) snapshots of shape (n_snap, N, 3), evenly spaced over the last half of
    the integration, for time-averaged statistics.
    """
    n_steps = int(np.ceil(t_end_gyr / dt_gyr))
    snap_steps = set(np.linspace(n_steps // 2, n_steps, n_snap).astype(int).tolist())
    x = pos.copy()
    v = vel * KMS_TO_KPC_PER_GYR  # kpc/Gyr
    conv = KMS_TO_KPC_PER_GYR**2  # (km/s)^2/kpc -> kpc/Gyr^2
    a = _acceleration(model, sheet, x) * conv
    out_x, out_v = [], []
    for step in range(1, n_steps + 1):
        v += 0.5 * dt_gyr * a
        x += dt_gyr * v
        a = _acceleration(model, sheet, x) * conv
        v += 0.5 * dt_gyr * a
        if step in snap_steps:
            out_x.append(x.copy())
            out_v.append(v / KMS_TO_KPC_PER_GYR)
    return np.array(out_x), np.array(out_v)
