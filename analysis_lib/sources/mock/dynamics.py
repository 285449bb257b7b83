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
  stars and both gas phases) plus the spherical bulge and halo. In-plane velocity moments from
  the Jeans equations (as MakeNewDisk, Springel et al. 2005, but in this potential): the
  mass-weighted vertical Jeans dispersion of the sech^2 layer at each R, sigma_z^2(R) (from
  rho sigma_z^2 = int_z^inf rho (-F_z) dz'); sigma_R = sigma_z / q with q = sigma_z / sigma_R
  drawn per galaxy (DiskMass: mean 0.6, Bershady et al. 2011), raised only where Toomre Q
  would fall below `q_min`; sigma_phi^2 = sigma_R^2 kappa^2 / (4 Omega^2) (epicyclic ratio);
  the mean azimuthal speed from the asymmetric-drift equation vbar_phi^2 = v_c^2(R, z) +
  sigma_R^2 [1 + dln(rho sigma_R^2)/dlnR] - sigma_phi^2 (floored at 0), with v_c^2(R, z) =
  -R F_R(R, z) at the particle's height. Heights and vertical velocities are not Gaussian
  about the Jeans moments but drawn from the exact one-dimensional vertical distribution
  function of the sech^2 layer in the full potential, each star carrying the vertical action
  of its guiding radius (`vertical_df_tables`, `sample_disc_particles`): Gaussian v_z at the
  local dispersion is not stationary where sigma_z varies with height, and stars on their
  epicycles keep their vertical action: with the former Gaussian set-up the rms height grew
  by 8-12 % at 3-5 R_d over three orbits (three of four quick-population discs, finer particle
  mass) and by up to 50 % at 5 R_d in the hottest smoke disc (equilibrium.disc_equilibrium).
  Then every disc star is moved a random time along its own orbit (`phase_mix_disc`, knob
  mock.disc_phase_mix_periods): the Gaussian in-plane set-up is not stationary in hot discs,
  and without this step its outer disc thickens by +8.6 and +14.9 % at 4.5 R_d over three
  orbits in the two hottest test discs (every star, tools/measure_disc_drift.py
  --phase-mix-periods 0), against +1.4 and +2.5 % with it.
- `integrate_orbits`: a kick-drift-kick leapfrog in the same fixed potential, to check
  equilibrium (equilibrium.py).

Velocities in km/s, positions in kpc, time in Gyr (1 km/s = 1.0227 kpc/Gyr).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.interpolate import CubicSpline

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

    Returns callables of (R, ``|z|``) (kpc): 'vphi_mean', 'sigma_z'; of R: 'sigma_r',
    'sigma_phi', 'toomre_q', 'vcirc' (km/s); and 'q_floor_raised' (fraction of 0.5-4 R_d
    where the Toomre floor raised sigma_R above sigma_z / sigma_ratio), and 'vertical': the
    tables of the exact vertical DF (vertical_df_tables) that sample_disc_particles draws from.
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
            "q_floor_raised": float(raised[band].mean()),
            "vertical": vertical_df_tables(pot, r_d, z0)}


# Vertical distribution-function tables: heights z / z0 (fine to 8, where sech^2 ~ 5e-7, then
# geometric to 40 for stars that bring large vertical actions from the hot inner disc) and
# cylindrical radii R / R_d (log-spaced; between nodes, results are blended linearly in log R).
_U_VDF = np.concatenate([np.linspace(0.0, 8.0, 33), np.geomspace(8.0, 40.0, 8)[1:]])
_R_VDF = np.geomspace(0.02, 12.0, 32)
_N_PHASE = 25  # vertical phases tabulated per orbit (quarter orbit, 0 -> z_max)


def _interp_rows(x: np.ndarray, rows: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp(x[i], xp[rows[i]], fp[rows[i]]) for every i, in one call (rows of xp ascending).

    Each row is shifted into its own interval of one long ascending abscissa; queries are
    clamped to their row's range first (np.interp's end behaviour, per row).
    """
    x0 = xp[:, 0]
    span = xp[:, -1] - x0
    s = float(np.max(span)) * 1.5 + 1.0
    off = s * np.arange(len(xp))
    xq = np.clip(x - x0[rows], 0.0, span[rows]) + off[rows]
    return np.interp(xq, (xp - x0[:, None] + off[:, None]).ravel(), fp.ravel())


def vertical_df_tables(pot: GalaxyPotential, r_d: float, z0: float) -> dict[str, np.ndarray]:
    """Exact one-dimensional vertical DF of the sech^2(z/z0) layer at each radius, as tables.

    At each node radius R the vertical potential psi(z) = Phi(R, z) - Phi(R, 0) (the galaxy's
    full potential: discs, bulge and halo; piecewise linear between the height nodes) and the
    density rho ~ sech^2(z/z0) give the distribution function f(E_z) with
    rho(psi) = sqrt(2) int_psi^inf f(E) (E - psi)^(-1/2) dE, inverted as an Abel integral (the
    one-dimensional Eddington formula), f(E) = -(1/(sqrt 2 pi)) int_E^inf rho'(psi)
    (psi - E)^(-1/2) dpsi, with rho' = drho/dpsi constant per segment. Drawing (z, v_z) from f
    reproduces the sech^2 layer and is stationary in the vertical potential, which Gaussian
    velocities at the local Jeans dispersion are not when sigma_z varies with height (bulge
    and halo make the potential non-self-gravitating).
    Tabulated per node, for the orbit of amplitude z_k (energy E_k = psi(z_k)): the vertical
    action 'j' = (1/pi) oint v_z dz, the cumulative distribution 'cdf' of J_z (dN = 2 pi f dJ,
    uniform in the vertical angle), and 'z_phase': the height at _N_PHASE equally spaced
    times over a quarter orbit (dt = dz / v_z, exact per linear psi segment).
    Also 'log_r' (node radii, kpc), 'z' (kpc) and 'psi' ((km/s)^2).
    """
    rr = _R_VDF * r_d
    zz = _U_VDF * z0
    _, f_z = pot.forces(rr[:, None], zz[None, :])
    g = np.maximum(-f_z, 0.0)
    g[:, 0] = 0.0
    dz = np.diff(zz)
    n_r, n_z = len(rr), len(zz)
    psi = np.concatenate([np.zeros((n_r, 1)),
                          np.cumsum(0.5 * (g[:, 1:] + g[:, :-1]) * dz, axis=1)], axis=1)
    # strictly ascending (it is wherever F_z < 0; guards round-off far out)
    psi = np.maximum.accumulate(psi + 1e-9 * np.arange(n_z) * (psi[:, -1:] + 1.0) / n_z, axis=1)
    dpsi = np.diff(psi, axis=1)
    # d[r, k, j] = sqrt(2 |psi_k - psi_j|): the vertical speed at z_j of the orbit reaching z_k
    d = np.sqrt(2.0 * np.abs(psi[:, :, None] - psi[:, None, :]))
    lower = np.tri(n_z, n_z, 0, dtype=bool)  # j <= k
    below = np.where(lower[None], d, 0.0)
    above = np.where(lower[None], 0.0, d)
    above[:, np.arange(n_z), np.arange(n_z)] = 0.0
    # Abel: f(E_k) = -(1/(sqrt 2 pi)) sum_j rho'_j 2 (sqrt(psi_j+1 - E_k) - sqrt(psi_j - E_k))
    drho = np.diff(_sech2_layer(_U_VDF))[None, :] / dpsi  # (n_r, n_z - 1)
    root = above / np.sqrt(2.0)
    f = -(1.0 / (np.sqrt(2.0) * np.pi)) * np.einsum(
        "rj,rkj->rk", drho, 2.0 * (root[:, :, 1:] - root[:, :, :-1]))
    f = np.clip(f, 0.0, None)
    # J_z(E_k) = (2/pi) int_0^{z_k} sqrt(2 (E_k - psi)) dz, exact per linear segment
    slope = dz[None, :] / dpsi  # dz / dpsi per segment
    j = 2.0 / np.pi * np.einsum("rj,rkj->rk", slope / 3.0,
                                below[:, :, :-1] ** 3 - below[:, :, 1:] ** 3)
    j = np.maximum.accumulate(j + 1e-12 * np.arange(n_z) * (j[:, -1:] + 1e-30), axis=1)
    cdf = np.concatenate([np.zeros((n_r, 1)),
                          np.cumsum(0.5 * (f[:, 1:] + f[:, :-1]) * np.diff(j, axis=1), axis=1)],
                         axis=1)
    cdf /= np.maximum(cdf[:, -1:], 1e-300)
    cdf = np.maximum.accumulate(cdf + 1e-9 * np.arange(n_z) / n_z, axis=1)
    # heights at equal time steps of the quarter orbit reaching z_k: the time spent in segment
    # [z_i, z_i+1] is slope_i (w_i - w_i+1), w = sqrt(2 (E_k - psi)); inverted exactly within
    # the segment (w falls linearly with time there)
    t_cum = np.concatenate([np.zeros((n_r, n_z, 1)), np.cumsum(
        slope[:, None, :] * (below[:, :, :-1] - below[:, :, 1:]), axis=2)], axis=2)
    t_tot = t_cum[:, :, -1]
    phases = np.linspace(0.0, 1.0, _N_PHASE)
    target = t_tot[:, :, None] * phases[None, None, :]  # (r, k, p)
    rows = np.repeat(np.arange(n_r * n_z), _N_PHASE)
    seg = _interp_rows(target.ravel(), rows, t_cum.reshape(n_r * n_z, n_z),
                       np.broadcast_to(np.arange(n_z, dtype=float), (n_r * n_z, n_z)))
    rr_i, kk_i = np.meshgrid(np.arange(n_r), np.arange(n_z), indexing="ij")
    rr_i, kk_i = rr_i[..., None], kk_i[..., None]
    seg = np.clip(seg.reshape(target.shape).astype(int), 0, np.maximum(kk_i - 1, 0))
    w_seg = below[rr_i, kk_i, seg] - (target - t_cum[rr_i, kk_i, seg]) / slope[rr_i, seg]
    w_seg = np.clip(w_seg, 0.0, None)
    psi_seg = psi[rr_i, kk_i] - 0.5 * w_seg**2
    z_phase = zz[seg] + (psi_seg - psi[rr_i, seg]) * slope[rr_i, seg]
    z_phase = np.clip(z_phase, 0.0, zz[None, :, None])
    return {"log_r": np.log(rr), "z": zz, "psi": psi, "j": j, "cdf": cdf, "z_phase": z_phase}


def _sech2_layer(u: np.ndarray) -> np.ndarray:
    e = np.exp(-2.0 * np.abs(u))
    return 4.0 * e / (1.0 + e) ** 2


def _bracket(log_r: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index and linear weight of the upper node, clamped to the node range."""
    i = np.clip(np.searchsorted(log_r, x) - 1, 0, len(log_r) - 2)
    w = np.clip((x - log_r[i]) / (log_r[i + 1] - log_r[i]), 0.0, 1.0)
    return i, w


def _vertical_draw(vt: dict, node: np.ndarray, j_z: np.ndarray, x: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """|z| and |v_z| at node radii of stars with vertical action j_z, at time fraction x of the
    quarter orbit (tables of vertical_df_tables, linear in amplitude index and phase)."""
    n_z = len(vt["z"])
    idx = np.broadcast_to(np.arange(n_z, dtype=float), vt["j"].shape)
    kf = _interp_rows(j_z, node, vt["j"], idx)
    k = np.minimum(kf.astype(int), n_z - 2)
    fk = kf - k
    mf = x * (_N_PHASE - 1)
    m = np.minimum(mf.astype(int), _N_PHASE - 2)
    fm = mf - m
    zp = vt["z_phase"]
    z = ((1 - fk) * ((1 - fm) * zp[node, k, m] + fm * zp[node, k, m + 1])
         + fk * ((1 - fm) * zp[node, k + 1, m] + fm * zp[node, k + 1, m + 1]))
    psi = vt["psi"]
    e = (1 - fk) * psi[node, k] + fk * psi[node, k + 1]
    psi_z = _interp_rows(z, node, np.broadcast_to(vt["z"], psi.shape), psi)
    return z, np.sqrt(2.0 * np.clip(e - psi_z, 0.0, None))


def sample_disc_particles(rng: np.random.Generator, r_cyl: np.ndarray, phi: np.ndarray,
                          moments: dict) -> tuple[np.ndarray, np.ndarray]:
    """Heights and velocities of disc stars at radii r_cyl and azimuths phi (disc frame).

    In-plane: v_R Gaussian (sigma_R), v_phi Gaussian about the asymmetric-drift mean
    (sigma_phi), as before. Vertical: each star carries the vertical action J_z of its guiding
    radius R_g (R_g v_c(R_g) = L_z): J_z is drawn from the exact vertical DF of the sech^2 layer
    at R_g (vertical_df_tables), and the star is placed on that vertical orbit in the vertical
    potential at its own radius R, at a uniformly random phase. J_z is an adiabatic invariant
    while the star moves along its epicycle (the vertical oscillation is faster than the
    radial one), so this is the adiabatic-approximation analogue of an action-based DF
    f(J_R, L_z, J_z) whose vertical part depends on (J_z, R_g) only, like the quasi-isothermal
    DF of Binney & McMillan (2011), but with the exact vertical DF instead of the isothermal
    one: in a radially cold disc it gives the sech^2 layer exactly at every R; in a hot disc
    the stars reaching the outer disc from the hotter inner disc keep their vertical action
    and make the disc thicker than z0 from the start (rms height up to ~15 % above the sech^2
    value in the hottest discs) rather than over the first orbits (equilibrium.py measures
    the drift). The in-plane part stays Gaussian (epicyclic): in the hottest discs
    (sigma_R ~ v_c inside 1 R_d) some stars of the centre go on orbits to > 10 R_d.
    Returns (pos (N, 3), vel (N, 3)) in the disc frame (kpc, km/s).
    """
    n = len(r_cyl)
    rc = np.maximum(np.asarray(r_cyl, float), 1e-9)
    v_r = rng.normal(size=n) * moments["sigma_r"](rc)
    dev_phi = rng.normal(size=n) * moments["sigma_phi"](rc)
    vphi0 = moments["vphi_mean"](rc, np.zeros(n)) + dev_phi
    grid = np.geomspace(1e-3, 1.0, 300) * float(np.max(rc)) * 1.5
    lz_grid = np.maximum.accumulate(grid * moments["vcirc"](grid))
    r_g = np.maximum(np.interp(np.maximum(rc * vphi0, 0.0), lz_grid, grid), grid[0])
    vt = moments["vertical"]
    x_j, x_t = rng.uniform(size=n), rng.uniform(size=n)
    i, w = _bracket(vt["log_r"], np.log(r_g))
    jz = ((1 - w) * _interp_rows(x_j, i, vt["cdf"], vt["j"])
          + w * _interp_rows(x_j, i + 1, vt["cdf"], vt["j"]))
    i, w = _bracket(vt["log_r"], np.log(rc))
    z_lo, vz_lo = _vertical_draw(vt, i, jz, x_t)
    z_hi, vz_hi = _vertical_draw(vt, i + 1, jz, x_t)
    z = ((1 - w) * z_lo + w * z_hi) * rng.choice([-1.0, 1.0], n)
    v_z = ((1 - w) * vz_lo + w * vz_hi) * rng.choice([-1.0, 1.0], n)
    v_phi = moments["vphi_mean"](rc, z) + dev_phi
    cos, sin = np.cos(phi), np.sin(phi)
    pos = np.column_stack([rc * cos, rc * sin, z])
    vel = np.column_stack([v_r * cos - v_phi * sin, v_r * sin + v_phi * cos, v_z])
    return pos, vel


def guiding_radius(lz: np.ndarray, vcirc: Callable, r_d: float) -> np.ndarray:
    """R_g with R_g v_c(R_g) = L_z (in-plane v_c of the model), on a grid to 30 R_d (kpc)."""
    grid = np.geomspace(1e-3, 30.0, 400) * r_d
    lgrid = np.maximum.accumulate(grid * vcirc(grid))
    return np.interp(np.maximum(lz, 0.0), lgrid, grid)


def radial_periods(pot: GalaxyPotential, r_cyl: np.ndarray, v_r: np.ndarray, lz: np.ndarray,
                   r_d: float, n_nodes: int = 24) -> np.ndarray:
    """Radial period (Gyr) of each star's orbit in the mid-plane of `pot` (its planar motion).

    T_R = 2 int_{R_p}^{R_a} dR / sqrt(2 [E - Phi_eff(R)]), Phi_eff = Phi(R, 0) + L_z^2 / 2R^2,
    E = Phi_eff(R) + v_R^2 / 2 at the star's present radius; the turning points by bisection on a
    tabulated Phi(R, 0), the integral by Gauss-Legendre in theta with R = c + h sin(theta) (regular
    at both turning points). Orbits of a hot disc are far from epicycles: for one at
    pericentre with v_phi = 1.25 v_c, T_R is 1.27 times 2 pi / kappa(R_g). Nearly circular
    orbits (R_a - R_p < 1e-3 R_g) get the epicyclic 2 pi / kappa(R_g). Phi(R, 0) is the
    integral of the mid-plane force F_R(R, 0) that orbit integrations use (a cubic spline of
    R F_R in log R): with the tabulated potential itself, nearly circular orbits came out
    2.7-5 % short, as its curvature is not quite that of the forces; now every period is within
    0.1 % of the integrated orbits' (tests/test_mock_dynamics.py).
    """
    grid = np.geomspace(1e-3, 40.0, 800) * r_d
    # Phi(R, 0) as the integral of the mid-plane force the orbits feel, so that the periods
    # belong to the same dynamics as the integration (the tabulated disc potentials and
    # forces agree to ~0.2 %, but that is a few per cent in curvature)
    f_r = pot.forces(grid, np.zeros_like(grid))[0]
    phi_out = pot.model.potential(grid[-1:])
    if pot.discs is not None:
        phi_out = phi_out + pot.discs.potential(grid[-1:], np.zeros(1))
    log_grid = np.log(grid)
    integral = CubicSpline(log_grid, -f_r * grid).antiderivative()  # dPhi / dlnR = -R F_R
    offset = float(phi_out[0] - integral(log_grid[-1]))

    def phi_of_log_r(log_r):
        return integral(log_r) + offset
    lz2 = np.asarray(lz, float) ** 2
    rc = np.clip(np.asarray(r_cyl, float), grid[0], grid[-1])

    phi_eff_now = phi_of_log_r(np.log(rc)) + 0.5 * lz2 / rc**2
    energy = phi_eff_now + 0.5 * np.asarray(v_r, float) ** 2

    def forbidden(r):  # Phi_eff(R) > E
        return phi_of_log_r(np.log(r)) + 0.5 * lz2 / r**2 > energy

    r_g = np.clip(guiding_radius(np.sqrt(lz2), pot.vcirc, r_d), grid[0], grid[-1])
    # pericentre in [grid start, min(R, R_g)], apocentre in [max(R, R_g), grid end]
    lo_p, hi_p = np.full_like(rc, grid[0]), np.minimum(rc, r_g)
    lo_a, hi_a = np.maximum(rc, r_g), np.full_like(rc, grid[-1])
    for _ in range(50):  # bisection in log R
        mid = np.sqrt(lo_p * hi_p)
        out = forbidden(mid)
        lo_p, hi_p = np.where(out, mid, lo_p), np.where(out, hi_p, mid)
        mid = np.sqrt(lo_a * hi_a)
        out = forbidden(mid)
        lo_a, hi_a = np.where(out, lo_a, mid), np.where(out, mid, hi_a)
    r_p, r_a = np.sqrt(lo_p * hi_p), np.sqrt(lo_a * hi_a)
    theta, weight = np.polynomial.legendre.leggauss(n_nodes)
    theta = 0.5 * np.pi * theta
    centre, half = 0.5 * (r_a + r_p), 0.5 * (r_a - r_p)
    r_nodes = centre[:, None] + half[:, None] * np.sin(theta)[None, :]
    kin = np.maximum(-2.0 * (phi_of_log_r(np.log(r_nodes))
                             + 0.5 * lz2[:, None] / r_nodes**2 - energy[:, None]), 1e-30)
    # dR = h cos(theta) dtheta, Gauss-Legendre nodes scaled by pi / 2, both halves of the orbit
    t_exact = np.pi * np.sum(weight * half[:, None] * np.cos(theta) / np.sqrt(kin), axis=1)
    eps = 1e-3
    vc, vc_p, vc_m = (pot.vcirc(r_g * f) for f in (1.0, 1.0 + eps, 1.0 - eps))
    kappa2 = np.maximum((vc_p**2 - vc_m**2) / (2 * eps * r_g**2) + 2 * vc**2 / r_g**2, 1e-12)
    t_epicycle = 2 * np.pi / np.sqrt(kappa2)
    use_exact = (r_a - r_p > 1e-3 * r_g) & np.isfinite(t_exact)
    # no bound orbit takes longer than the circular orbit at its apocentre (radial orbits: 1/2
    # of it in a harmonic core, 2^-1.5 around a point mass); the cap catches the few stars whose
    # turning point the tabulated potential puts a rounding error away from a quadrature node
    t_cap = 2 * np.pi * r_a / np.maximum(pot.vcirc(r_a), 1e-3)
    return np.minimum(np.where(use_exact, t_exact, t_epicycle), t_cap) / KMS_TO_KPC_PER_GYR


class ForceTable:
    """(F_R, F_z) of a GalaxyPotential tabulated once on a mesh uniform in asinh(R / s_R) and
    asinh(|z| / s_z), for integrating many orbits in one galaxy's fixed potential.

    Why: the exact forces interpolate each disc's (stars, HI, H2) tables at two thickness nodes
    and add three monopoles and the spherical model; one bilinear step on a per-galaxy mesh
    with arithmetic indices is 3-8 times cheaper and, with s_R = 0.05 R_d, s_z = z0 / 4 and
    300 x 160 nodes, within 1.5e-3 of the exact forces where the stars are (tested in
    tests/test_mock_dynamics.py). Points beyond the mesh get the exact forces.
    """

    def __init__(self, pot: GalaxyPotential, r_d: float, z0: float, r_max: float,
                 z_max: float, n_r: int = 300, n_z: int = 160) -> None:
        self.pot = pot
        self.s_r, self.s_z = 0.05 * r_d, 0.25 * z0
        self.n_r, self.n_z = n_r, n_z
        self.du_r = np.arcsinh(r_max / self.s_r) / (n_r - 1)
        self.du_z = np.arcsinh(z_max / self.s_z) / (n_z - 1)
        r_mesh = self.s_r * np.sinh(np.arange(n_r) * self.du_r)
        z_mesh = self.s_z * np.sinh(np.arange(n_z) * self.du_z)
        self.f_r, self.f_z = pot.forces(r_mesh[:, None], z_mesh[None, :])

    def forces(self, r_cyl: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F_R, F_z), (km/s)^2 / kpc, at cylindrical R and height z (kpc, disc frame)."""
        u = np.arcsinh(r_cyl / self.s_r) / self.du_r
        w = np.arcsinh(np.abs(z) / self.s_z) / self.du_z
        i = np.minimum(u.astype(int), self.n_r - 2)
        j = np.minimum(w.astype(int), self.n_z - 2)
        t, s = u - i, w - j
        c00, c10, c01, c11 = (1 - t) * (1 - s), t * (1 - s), (1 - t) * s, t * s
        fr = (c00 * self.f_r[i, j] + c10 * self.f_r[i + 1, j] + c01 * self.f_r[i, j + 1]
              + c11 * self.f_r[i + 1, j + 1])
        fz = np.sign(z) * (c00 * self.f_z[i, j] + c10 * self.f_z[i + 1, j]
                           + c01 * self.f_z[i, j + 1] + c11 * self.f_z[i + 1, j + 1])
        beyond = (u > self.n_r - 1) | (w > self.n_z - 1)
        if np.any(beyond):
            ex_r, ex_z = self.pot.forces(r_cyl[beyond], z[beyond])
            fr[beyond], fz[beyond] = ex_r, ex_z
        return fr, fz

    def acceleration(self, pos: np.ndarray) -> np.ndarray:
        """-grad Phi at positions (N, 3) in the disc frame, (km/s)^2 / kpc."""
        rc = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-9)
        fr, fz = self.forces(rc, pos[:, 2])
        return np.column_stack([fr * pos[:, 0] / rc, fr * pos[:, 1] / rc, fz])


def phase_mix_disc(rng: np.random.Generator, pot: GalaxyPotential, pos: np.ndarray,
                   vel: np.ndarray, r_d: float, z0: float, n_radial_periods: float,
                   steps_per_radial_period: int = 32, steps_per_vertical_period: int = 20,
                   max_steps: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Move every disc star along its own orbit for a random time (the disc's phase mixing).

    Why: the Jeans/epicyclic set-up (Gaussian v_R, v_phi about the asymmetric drift) puts the
    stars of a hot disc at radial phases no stationary distribution has; left alone, such a disc
    re-arranges itself over its first orbits (rms height +8.6 and +14.9 % at 4.5 R_d over three
    orbits in hot_compact0 and hot_compact2, every star at 2e5 Msun with
    tools/measure_disc_drift.py --per-bin 0 --phase-mix-periods 0). A stationary distribution
    is a function of the integrals of motion only; following each star for a random time spreads
    it over its own orbit while keeping its energy, L_z and actions: the phase-mixed version of
    the same disc, with the surface density and vertical actions the set-up gave it. Integrating
    the whole disc for a fixed time does the same, but the centre's short periods make that ~50
    times dearer (~10 s against ~0.2 s per quick-mass disc).

    The time: triangular on [0, K T_R] (the mean of two uniforms; K = n_radial_periods, 0 returns
    the input), T_R the star's own radial period in the mid-plane (`radial_periods`). For whole
    K that is uniform in radial phase; where T_R is off by a fraction d (the vertical motion
    couples), the phase ripple is ~ sinc^2(1 + d), not sinc(2 + 2d) as for a uniform time.
    Tested: 1500 copies of one eccentric orbit take its time-averaged radius distribution
    (tests/test_mock_dynamics.py).

    Leapfrog in the fixed potential `pot` (disc frame; its forces tabulated once, `ForceTable`,
    with z0 the disc's sech^2 scale height), per star dt = min(T_R / s_R, T_z / s_z,
    T_c / s_R): T_z the vertical period in the mid-plane and T_c the circular period, both at
    half the smaller of the star's radius and R_g (where an eccentric orbit of the hot centre
    goes). Stars whose orbit would need more than `max_steps` steps (plunging orbits of a hot
    centre, ~0.3 %) keep the set-up's phase. Returns (pos, vel) in the disc frame (kpc, km/s).
    """
    n = len(pos)
    if n == 0 or n_radial_periods <= 0:
        return pos, vel
    lz = np.abs(pos[:, 0] * vel[:, 1] - pos[:, 1] * vel[:, 0])
    r_g = np.maximum(guiding_radius(lz, pot.vcirc, r_d), 1e-3 * r_d)
    r_cyl = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-9)
    v_r = (pos[:, 0] * vel[:, 0] + pos[:, 1] * vel[:, 1]) / r_cyl
    t_radial = radial_periods(pot, r_cyl, v_r, lz, r_d)
    r_in = np.maximum(0.5 * np.minimum(np.hypot(pos[:, 0], pos[:, 1]), r_g), 1e-3 * r_d)
    dz = 1e-3 * r_d
    nu2 = np.maximum(-pot.forces(r_in, np.full(n, dz))[1] / dz, 1e-12)
    t_vertical = 2 * np.pi / np.sqrt(nu2) / KMS_TO_KPC_PER_GYR
    t_circ = 2 * np.pi * r_in / np.maximum(pot.vcirc(r_in), 1e-3) / KMS_TO_KPC_PER_GYR
    dt_max = np.minimum.reduce([t_radial / steps_per_radial_period,
                                t_vertical / steps_per_vertical_period,
                                t_circ / steps_per_radial_period])
    # triangular on [0, K T_R] (the sum of two uniforms): uniform in radial phase for whole K,
    # and forgiving where T_R is off (vertical motion): phase ripple ~ sinc^2, not sinc
    t_end = 0.5 * (rng.uniform(size=n) + rng.uniform(size=n)) * n_radial_periods * t_radial
    # plunging orbits of a hot centre (~0.3 % of stars) would need thousands of small steps:
    # they keep the set-up's phase
    t_end = np.where(n_radial_periods * t_radial / dt_max > max_steps, 0.0, t_end)
    k = np.ceil(t_end / dt_max).astype(int)
    order = np.argsort(-k, kind="stable")  # the stars still moving are always a prefix
    k = k[order]
    dt = (t_end[order] / np.maximum(k, 1))[:, None]
    x = pos[order].copy()
    v = vel[order] * KMS_TO_KPC_PER_GYR
    conv = KMS_TO_KPC_PER_GYR**2
    table = ForceTable(pot, r_d, z0, 30.0 * r_d, 15.0 * r_d)
    a = table.acceleration(x) * conv
    for step in range(1, int(k[0]) + 1):
        m = int(np.searchsorted(-k, -step, side="right"))  # stars with k >= step
        v[:m] += 0.5 * dt[:m] * a[:m]
        x[:m] += dt[:m] * v[:m]
        a[:m] = table.acceleration(x[:m]) * conv
        v[:m] += 0.5 * dt[:m] * a[:m]
    out_x, out_v = np.empty_like(x), np.empty_like(v)
    out_x[order], out_v[order] = x, v / KMS_TO_KPC_PER_GYR
    return out_x, out_v


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
