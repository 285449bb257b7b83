"""Is a mock galaxy in equilibrium? Orbit integration of its discs, and its spheroid's anisotropy.

- `disc_equilibrium(galaxy)`: a sample of the disc's star particles (binned by guiding radius,
  weighted, so that the sample is itself an equilibrium) is integrated in the galaxy's fixed
  total potential (monopoles + flattened discs, the potential their velocities were drawn in)
  for `n_orbits` circular-orbit periods T = 2 pi R / v_c(R) of each annulus at 1-5 R_d. Per
  annulus: the rms height (and the median ``|z|``) of the particles in the annulus at each time
  (Eulerian), and the Lagrangian radius (radius of fixed enclosed disc mass), their drift (mean
  over n_orbits +- 0.25 T, relative to t = 0). Both are stationary for a disc in equilibrium.
- `equilibrium_figure(result)`: rms height and Lagrangian radius against time in orbits.
- `anisotropy_profile(galaxy)`: beta(r) = 1 - sigma_t^2 / (2 sigma_r^2) of the spheroid's
  particles in radial bins (sigma_t^2 = sigma_theta^2 + sigma_phi^2, about the mean rotation).
- `disc_summary(galaxies)`: per disc galaxy, sigma_R / sigma_z measured from the particles at
  1-3 R_d and the Toomre Q recorded by the generator.

Units: kpc, km/s, Gyr.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis_lib.particles import Galaxy, GalaxyInputError
from analysis_lib.sources.mock.dynamics import (
    KMS_TO_KPC_PER_GYR,
    guiding_radius,
    integrate_orbits,
)

DISC, SPHEROID = 1, 0  # Stars.extra['component']


def _disc_frame(g: Galaxy) -> tuple[np.ndarray, np.ndarray]:
    rot = g.meta["orientation_matrix"]
    return g.stars.pos @ rot, g.stars.vel @ rot


def _cylindrical(pos: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, ...]:
    rc = np.maximum(np.hypot(pos[..., 0], pos[..., 1]), 1e-12)
    v_r = (pos[..., 0] * vel[..., 0] + pos[..., 1] * vel[..., 1]) / rc
    v_phi = (pos[..., 0] * vel[..., 1] - pos[..., 1] * vel[..., 0]) / rc
    return rc, v_r, v_phi, vel[..., 2]


def disc_equilibrium(g: Galaxy, annuli_rd: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0),
                     half_width_rd: float = 0.5, n_per_bin: int = 600, bin_rd: float = 0.5,
                     n_orbits: float = 3.0, steps_per_orbit: int = 50,
                     n_snap_per_orbit: int = 8, max_level: int = 3, seed: int = 0,
                     n_boot: int = 40) -> dict[str, pd.DataFrame]:
    """Drift of disc thickness and Lagrangian radii over `n_orbits` orbits, per annulus.

    Returns {'table': one row per annulus, 'series': thickness and Lagrangian radius against
    time}. Both are Eulerian/whole-disc quantities, stationary for a disc in equilibrium:

    - thickness at R_k: rms height of the disc particles that are in ``|R - R_k|`` < half_width_rd
      R_d *at time t* (not of the particles that were there at t = 0: those spread over their
      epicycles, and their median radius drifts inwards by ~ (sigma_R / kappa)^2 dln(Sigma R)/dR
      even in perfect equilibrium, -2 to -4 % at 2-5 R_d for hot discs);
    - Lagrangian radius at R_k: the radius enclosing the disc mass fraction that R_k encloses
      at t = 0 (the standard definition: radii of fixed enclosed mass).

    The sample: disc particles in guiding-radius bins (L_z = R_g v_c(R_g), bin_rd R_d wide), at
    most n_per_bin per bin, weighted by (bin count / bin sample). L_z is conserved in the
    axisymmetric potential, so the weighted sample is an equilibrium whenever the disc is, while
    the outer annuli get as many particles as the inner ones (sampling noise ~ 2 % per annulus).
    The outer annuli's rms height is then heavy-tailed: a few heavily weighted stars of the hot
    inner bins passing at large heights carry it (at 4.5 R_d, +13.5 +- 7.6 % in one disc with
    1000 per bin, +0.9 +- 0.9 % with every star of the same disc at unit weight). With
    n_per_bin above the largest bin's count every star is used at unit weight: the unbiased,
    steadier measurement, affordable at a fine particle mass (tools/measure_disc_drift.py).
    Orbits: leapfrog in the galaxy's fixed model potential, to (n_orbits + 0.25) T of the outermost
    annulus (T_k = 2 pi R_k / v_c(R_k)); the drift of annulus k is the mean over n_orbits +- 0.25
    T_k, relative to t = 0; 'thickness_drift_err' is its sampling error (standard deviation over
    n_boot Poisson-bootstrap replicates of the sample's particles: with a few hundred particles per
    annulus it is 2-5 %, as large as the criterion). Time steps per particle (block steps; the
    particles do not interact): dt = T_1 / steps_per_orbit / 2^level, with the level set by the
    circular period at half the smaller of the particle's present and guiding radius (stars of the
    hot centre on eccentric orbits need it: with one dt = T_1 / 100 for all, their energy errors put
    a few of them at large heights in the outer annuli, +20 % in rms height at 4 R_d in one galaxy,
    measured against dt / 4).
    """
    meta = g.meta
    if "disc_rd_kpc" not in meta or "component" not in g.stars.extra:
        raise GalaxyInputError(f"galaxy {g.galaxy_id}: no stellar disc to integrate")
    r_d = float(meta["disc_rd_kpc"])
    model, discs, vcirc = meta["mass_model"], meta["disc_sheet"], meta["vcirc_kms"]
    pos, vel = _disc_frame(g)
    is_disc = g.stars.extra["component"] == DISC
    pos, vel = pos[is_disc], vel[is_disc]
    mass = g.stars.mass[is_disc]
    if len(pos) < 200:
        raise GalaxyInputError(f"galaxy {g.galaxy_id}: fewer than 200 disc particles")
    r_g = guiding_radius(pos[:, 0] * vel[:, 1] - pos[:, 1] * vel[:, 0], vcirc, r_d)
    rng = np.random.default_rng(seed)
    bins = np.minimum((r_g / (bin_rd * r_d)).astype(int), int(12.0 / bin_rd))
    keep, weight = [], []
    for b in np.unique(bins):
        members = np.flatnonzero(bins == b)
        chosen = rng.choice(members, min(n_per_bin, len(members)), replace=False)
        keep.append(chosen)
        weight.append(np.full(len(chosen), len(members) / len(chosen)))
    keep, weight = np.concatenate(keep), np.concatenate(weight)
    weight = weight * mass[keep]
    annuli = np.asarray(annuli_rd, float)
    v_c = vcirc(annuli * r_d)
    periods = 2 * np.pi * annuli * r_d / v_c / KMS_TO_KPC_PER_GYR  # Gyr
    times = np.unique(np.concatenate([
        np.linspace(0.0, (n_orbits + 0.25) * t_k,
                    int(np.ceil((n_orbits + 0.25) * n_snap_per_orbit)) + 1) for t_k in periods]))
    xs = _integrate_with_levels(model, discs, vcirc, pos[keep], vel[keep], r_g[keep], times,
                                float(periods.min()) / steps_per_orbit, steps_per_orbit,
                                max_level)
    rc = np.hypot(xs[..., 0], xs[..., 1])
    z2 = xs[..., 2] ** 2
    # enclosed disc-mass fraction of each annulus radius at t = 0 (weighted sample)
    order0 = np.argsort(rc[0])
    cum0 = np.cumsum(weight[order0]) / weight.sum()
    fractions = np.interp(annuli * r_d, rc[0][order0], cum0)
    rows, series = [], []
    for r_k, t_k, frac in zip(annuli, periods, fractions, strict=True):
        inside = np.abs(rc / r_d - r_k) < half_width_rd
        w_in = np.where(inside, weight[None, :], 0.0)
        n_in = inside.sum(axis=1)
        if n_in[0] < 50:
            continue
        rms_z = np.sqrt((w_in * z2).sum(axis=1) / np.maximum(w_in.sum(axis=1), 1e-300))
        # sampling error of the drift: Poisson bootstrap over the sample's particles
        boot = rng.poisson(1.0, size=(n_boot, len(weight))).T.astype(float)
        rms_b = np.sqrt(((w_in * z2) @ boot) / np.maximum(w_in @ boot, 1e-300))
        window_b = np.abs(times / t_k - n_orbits) <= 0.25 + 1e-9
        drift_b = rms_b[window_b].mean(axis=0) / rms_b[0] - 1
        z_half = np.array([_weighted_quantile(np.sqrt(z2[i, inside[i]]), weight[inside[i]], 0.5)
                           for i in range(len(times))])
        r_lag = np.array([_weighted_quantile(rc[i], weight, frac) for i in range(len(times))])
        t_orb = times / t_k
        mine = t_orb <= n_orbits + 0.25 + 1e-9
        window = np.abs(t_orb - n_orbits) <= 0.25 + 1e-9
        rows.append({
            "r_over_rd": r_k, "r_kpc": r_k * r_d, "n_particles": int(n_in[0]),
            "mass_fraction": float(frac), "period_gyr": t_k, "n_orbits": n_orbits,
            "rms_z_kpc_start": rms_z[0], "rms_z_kpc_end": float(rms_z[window].mean()),
            "thickness_drift": float(rms_z[window].mean() / rms_z[0] - 1),
            "thickness_drift_err": float(np.std(drift_b)),
            "z_half_kpc_start": z_half[0],
            "half_height_drift": float(z_half[window].mean() / z_half[0] - 1),
            "r_lagrangian_kpc_start": r_lag[0], "r_lagrangian_kpc_end": float(r_lag[window].mean()),
            "lagrangian_drift": float(r_lag[window].mean() / r_lag[0] - 1),
        })
        series.append(pd.DataFrame({"r_over_rd": r_k, "t_orbits": t_orb[mine],
                                    "rms_z_ratio": rms_z[mine] / rms_z[0],
                                    "r_lagrangian_ratio": r_lag[mine] / r_lag[0]}))
    if not rows:
        raise GalaxyInputError(f"galaxy {g.galaxy_id}: too few disc particles in the annuli")
    return {"table": pd.DataFrame(rows), "series": pd.concat(series, ignore_index=True)}


def _integrate_with_levels(model, discs, vcirc, pos: np.ndarray, vel: np.ndarray,
                           r_g: np.ndarray, times: np.ndarray, dt_max: float,
                           steps_per_orbit: int, max_level: int) -> np.ndarray:
    """Positions at `times` (n_t, N, 3); each particle integrated with its level's time step."""
    r_in = 0.5 * np.maximum(np.minimum(np.linalg.norm(pos, axis=1), r_g), 1e-3)
    t_loc = 2 * np.pi * r_in / np.maximum(vcirc(r_in), 1e-3) / KMS_TO_KPC_PER_GYR
    ratio = dt_max / (t_loc / steps_per_orbit)
    level = np.clip(np.ceil(np.log2(np.maximum(ratio, 1.0))), 0, max_level).astype(int)
    out = np.empty((len(times), len(pos), 3))
    for lev in np.unique(level):
        sel = level == lev
        xs, _ = integrate_orbits(model, discs, pos[sel], vel[sel], float(times[-1]),
                                 dt_max / 2**lev, snap_times_gyr=times)
        out[:, sel] = xs
    return out


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    c = np.cumsum(w[order])
    return float(np.interp(q * c[-1], c, x[order]))


def equilibrium_figure(result: dict[str, pd.DataFrame], title: str = "mock disc"):
    """Two panels: rms height and median radius of each annulus' particles against time."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    s = result["series"]
    for r_k, part in s.groupby("r_over_rd"):
        axes[0].plot(part["t_orbits"], part["rms_z_ratio"], label=f"R = {r_k:g} R_d")
        axes[1].plot(part["t_orbits"], part["r_lagrangian_ratio"], label=f"R = {r_k:g} R_d")
    for ax, name in zip(axes, ("rms height z_rms(t) / z_rms(0)",
                               "Lagrangian radius R_f(t) / R_f(0)"), strict=True):
        ax.axhspan(0.95, 1.05, color="0.9", zorder=0)
        ax.set_xlabel("time (orbital periods 2 pi R / v_c at the annulus)")
        ax.set_ylabel(name)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{title}: orbits integrated in the fixed model potential (mock universe)")
    fig.tight_layout()
    return fig


def anisotropy_profile(g: Galaxy, n_bins: int = 6, r_range_rhalf: tuple[float, float] = (0.2, 4)
                       ) -> pd.DataFrame:
    """beta(r) of the spheroid particles in log-spaced radial bins (in units of r_half, 3D).

    sigma_t^2 = var(v_theta) + var(v_phi) (the mean rotation removed), beta = 1 - sigma_t^2 /
    (2 sigma_r^2); r_half is the spheroid particles' 3D half-mass radius.
    """
    sph = g.stars.extra.get("component", np.zeros(len(g.stars.mass))) == SPHEROID
    if sph.sum() < 100:
        raise GalaxyInputError(f"galaxy {g.galaxy_id}: fewer than 100 spheroid particles")
    pos, vel = g.stars.pos[sph], g.stars.vel[sph]
    r = np.linalg.norm(pos, axis=1)
    r_half = float(np.median(r))
    rhat = pos / r[:, None]
    v_r = np.einsum("ij,ij->i", vel, rhat)
    spin = np.asarray(g.meta.get("spin_axis", [0, 0, 1]), float)
    e_phi = np.cross(spin, rhat)
    norm = np.linalg.norm(e_phi, axis=1, keepdims=True)
    e_phi = e_phi / np.maximum(norm, 1e-12)
    e_theta = np.cross(e_phi, rhat)
    v_phi, v_theta = np.einsum("ij,ij->i", vel, e_phi), np.einsum("ij,ij->i", vel, e_theta)
    edges = np.geomspace(*r_range_rhalf, n_bins + 1) * r_half
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (r >= lo) & (r < hi)
        if sel.sum() < 30:
            continue
        s_r2 = np.var(v_r[sel])
        s_t2 = np.var(v_theta[sel]) + np.var(v_phi[sel])
        rows.append({"r_over_rhalf": np.sqrt(lo * hi) / r_half, "n": int(sel.sum()),
                     "beta": 1 - s_t2 / (2 * s_r2)})
    return pd.DataFrame(rows)


def disc_summary(galaxies) -> pd.DataFrame:
    """Per disc galaxy: sigma_R / sigma_z of disc particles at 1-3 R_d, Toomre Q (generator)."""
    rows = []
    for g in galaxies:
        m = g.meta
        if "disc_rd_kpc" not in m:
            continue
        pos, vel = _disc_frame(g)
        d = g.stars.extra["component"] == DISC
        rc, v_r, _, v_z = _cylindrical(pos[d], vel[d])
        sel = (rc > m["disc_rd_kpc"]) & (rc < 3 * m["disc_rd_kpc"])
        if sel.sum() < 50:
            continue
        rows.append({"galaxy_id": g.galaxy_id, "galaxy_type": m["galaxy_type"], "bt": m["bt"],
                     "sigma_r_over_sigma_z": float(np.std(v_r[sel]) / np.std(v_z[sel])),
                     "sigma_z_over_sigma_r_drawn": m["sigma_z_over_sigma_r"],
                     "toomre_q_min": m["toomre_q_min"],
                     "toomre_q_floor_fraction": m["toomre_q_floor_fraction"]})
    return pd.DataFrame(rows)
