"""Build one mock galaxy (particles + analytic halo) from its population row.

Everything random is drawn from per-galaxy, per-purpose generators (rng.galaxy_rng), so a
galaxy depends only on (seed, galaxy_id, its row) and not on load order or worker count.
The galaxy is first built in its disc frame (spin axis = z) and then given a random
orientation, since the observation step projects along the box axes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from analysis_lib.particles import Galaxy, GalaxyInputError, Gas, Stars
from analysis_lib.rng import galaxy_rng
from analysis_lib.sources.mock import dynamics, stellar_pops
from analysis_lib.sources.mock.mass_model import (
    NFW,
    ExponentialDiscMonopole,
    Hernquist,
    SphericalModel,
    contract_halo,
    exponential_disc_radii,
    halo_response_parameters,
    stratified_uniform,
)
from analysis_lib.sources.mock.relations import G_KPC_KMS2_MSUN as G
from analysis_lib.sources.mock.ssp import (
    SUN_ABS_MAG_SDSS_AB,
    particle_luminosities,
    particle_masses,
)

GAS_SIGMA_KMS = 10.0  # velocity dispersion of the cold gas disc
SALPETER_OVER_CHABRIER_DEX = -np.log10(0.61)  # Madau & Dickinson 2014: M_Chab = 0.61 M_Salp
GAS_PHASES = ("hi", "h2")  # atomic and molecular discs (population columns m_hi, hi_rd_kpc, ...)


def imf_alpha(sigma_kms: float) -> float:
    """Stellar mass excess over Chabrier at fixed light, ATLAS3D-like (Posacki+2015 fit).

    Posacki et al. (2015) fit the ATLAS3D + SLACS IMF mismatch relative to SALPETER,
    log alpha_Salpeter = 0.38 log(sigma / 200 km/s) - 0.06 (coefficients as previously in this
    code; not re-checked against the paper here). The base IMF of the light (the SSP table) is
    Chabrier, and a Salpeter IMF has 1 / 0.61 times the Chabrier stellar mass at fixed light
    (log 0.21 dex; the conversion factor 0.61 of Madau & Dickinson 2014, sec. 3.1, as we
    recall it), so log alpha_Chabrier = 0.38 log(sigma/200) - 0.06 + 0.21, floored at 0 (never
    lighter than Chabrier).
    """
    log_alpha_salp = 0.38 * np.log10(max(sigma_kms, 1.0) / 200.0) - 0.06
    return float(10 ** max(log_alpha_salp + SALPETER_OVER_CHABRIER_DEX, 0.0))


def build_mass_model(row: pd.Series | dict, mcfg: dict, alpha: float = 1.0
                     ) -> tuple[SphericalModel, dict]:
    """Spherical components and total model for a population row (stellar mass x alpha)."""
    m_star = float(row["m_star"]) * alpha
    bt = float(row["bt"])
    comps: dict = {}
    if bt > 0:
        comps["bulge"] = Hernquist(m_star * bt, float(row["bulge_a_kpc"]))
    if bt < 1:
        comps["disc"] = ExponentialDiscMonopole(m_star * (1 - bt), float(row["disc_rd_kpc"]))
    for phase in GAS_PHASES:
        if float(row[f"m_{phase}"]) > 0:
            comps[f"gas_{phase}"] = ExponentialDiscMonopole(float(row[f"m_{phase}"]),
                                                            float(row[f"{phase}_rd_kpc"]))
    m_gas = float(row["m_gas"])
    m_bar = m_star + m_gas
    m200, conc, r200 = float(row["m200c"]), float(row["concentration"]), float(row["r200c_kpc"])
    if m_bar >= m200:
        raise GalaxyInputError(f"galaxy {row['galaxy_id']}: baryon mass exceeds M200c")
    halo = NFW(m200, conc, r200, 1 - m_bar / m200)
    if mcfg.get("contraction"):
        baryons = dict(comps)

        def m_b(r):
            return sum(c.enclosed_mass(r) for c in baryons.values())

        comps["dm"] = contract_halo(halo, m_b, m_bar, *halo_response_parameters(
            mcfg.get("halo_response", "gnedin04")))
    else:
        comps["dm"] = halo
    return SphericalModel(comps, halo_tail=halo), comps


def _random_orientation(rng: np.random.Generator, spin: np.ndarray) -> np.ndarray:
    """Rotation matrix taking the disc frame (z = spin) to the box frame, random about spin."""
    spin = spin / np.linalg.norm(spin)
    helper = np.array([1.0, 0.0, 0.0]) if abs(spin[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(spin, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(spin, e1)
    about = Rotation.from_rotvec(spin * rng.uniform(0, 2 * np.pi)).as_matrix()
    return about @ np.column_stack([e1, e2, spin])


def _disc_positions(rng: np.random.Generator, n: int, r_d: float, z0: float) -> np.ndarray:
    """Exponential-disc radii (stratified inverse CDF), uniform azimuth, sech^2 heights."""
    r = exponential_disc_radii(stratified_uniform(rng, n), r_d)
    phi = rng.uniform(0, 2 * np.pi, n)
    z = z0 * np.arctanh(np.clip(rng.uniform(-1, 1, n), -1 + 1e-12, 1 - 1e-12))
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def _gas_particles(row, comps: dict, model, particle_mass: float, rng: np.random.Generator,
                   sfr_total: float) -> Gas | None:
    """Cold gas particles of the HI and H2 discs, in circular rotation with 10 km/s dispersion.

    Each phase gets round(mass / particle_mass) particles (none below half a particle); both
    discs are half as thick as the stellar disc and share its metallicity gradient. Star
    formation follows the molecular gas (Bigiel et al. 2008: constant H2 depletion time), so
    the galaxy's recent SFR is spread over the H2 particles in proportion to their mass.
    """
    pos_parts, phase_parts = [], []
    masses = []
    for k, phase in enumerate(GAS_PHASES):
        disc = comps.get(f"gas_{phase}")
        n = _n_particles(disc.mass, particle_mass) if disc is not None else 0
        if n == 0:
            continue
        pos_parts.append(_disc_positions(rng, n, disc.r_d, 0.5 * float(row["disc_z0_kpc"])))
        phase_parts.append(np.full(n, k, np.int8))
        masses.append(np.full(n, disc.mass / n))
    if not pos_parts:
        return None
    pos = np.concatenate(pos_parts)
    phase = np.concatenate(phase_parts)
    mass = np.concatenate(masses)
    rc = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-9)
    vc = model.vcirc(rc)  # in-plane v_c of the flattened total potential (GalaxyPotential)
    vel = np.column_stack([-vc * pos[:, 1] / rc, vc * pos[:, 0] / rc, np.zeros(len(pos))])
    vel = vel + rng.normal(0, GAS_SIGMA_KMS, (len(pos), 3))
    molecular = phase == GAS_PHASES.index("h2")
    sfr = np.zeros(len(pos))
    if molecular.any():
        sfr[molecular] = sfr_total * mass[molecular] / mass[molecular].sum()
    metallicity = stellar_pops.gas_metallicity(rc, float(row["disc_rd_kpc"]),
                                               float(row["log_zgas_zsun"]))
    # extra['phase']: 0 = atomic (HI), 1 = molecular (H2); both neutral, so the dust column
    # (observe/dust.py) counts all of it: 'neutral_fraction' 1
    return Gas(pos, vel, mass, metallicity=metallicity,
               extra={"sfr": sfr, "phase": phase, "neutral_fraction": np.ones(len(pos))})


def _isotropic_positions(rng: np.random.Generator, r: np.ndarray) -> np.ndarray:
    d = rng.normal(size=(len(r), 3))
    return r[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)


def _flip_to_prograde(rng: np.random.Generator, pos: np.ndarray, vel: np.ndarray,
                      fraction: float) -> np.ndarray:
    """Reverse v_phi of a random `fraction` of retrograde stars (keeps E and |L|: equilibrium)."""
    lz = pos[:, 0] * vel[:, 1] - pos[:, 1] * vel[:, 0]
    flip = (lz < 0) & (rng.uniform(size=len(lz)) < fraction)
    rc = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-12)
    e_phi = np.column_stack([-pos[:, 1] / rc, pos[:, 0] / rc, np.zeros(len(rc))])
    v_phi = np.einsum("ij,ij->i", vel, e_phi)
    out = vel.copy()
    out[flip] -= 2 * v_phi[flip, None] * e_phi[flip]
    return out


def _n_particles(mass: float, particle_mass: float) -> int:
    return int(np.round(mass / particle_mass))


class _StellarPart(NamedTuple):
    """Particle arrays of one stellar component (bulge or disc), in the disc frame."""

    pos: np.ndarray
    vel: np.ndarray
    age: np.ndarray
    metallicity: np.ndarray
    mass: np.ndarray
    initial_mass: np.ndarray
    component: np.ndarray  # 0 = spheroid (bulge), 1 = disc


def _mass_model_with_imf(row: pd.Series | dict, mcfg: dict
                         ) -> tuple[SphericalModel, dict, float, float]:
    """Mass model, components, sigma proxy and IMF factor alpha of one population row.

    With ``mock.imf: varying`` alpha depends on the dispersion of the Chabrier model, so the
    model is built twice (once to measure sigma_proxy, once with alpha).

    Parameters
    ----------
    row : pandas.Series or dict
        The galaxy's population row.
    mcfg : dict
        The profile's ``mock`` section.

    Returns
    -------
    tuple
        (model, comps, sigma_proxy_kms, alpha); sigma_proxy = sqrt(G M(<r_half) / 3 r_half)
        of the Chabrier model.

    Raises
    ------
    ValueError
        If ``mock.imf`` is neither 'chabrier' nor 'varying'.
    """
    model, comps = build_mass_model(row, mcfg)
    r_half_base = model.half_mass_radius(tuple(c for c in ("bulge", "disc") if c in comps))
    sigma_proxy = float(np.sqrt(G * model.enclosed_mass(r_half_base) / (3 * r_half_base)))
    alpha = 1.0
    if mcfg["imf"] == "varying":
        alpha = imf_alpha(sigma_proxy)
        model, comps = build_mass_model(row, mcfg, alpha)
    elif mcfg["imf"] != "chabrier":
        raise ValueError(f"mock.imf '{mcfg['imf']}' unknown (chabrier | varying)")
    return model, comps, sigma_proxy, alpha


def _galaxy_rngs(seed: int, gid: int) -> dict[str, np.random.Generator]:
    """One seeded generator per purpose, so a galaxy depends only on (seed, id), not on order.

    Parameters
    ----------
    seed : int
        The profile's root seed.
    gid : int
        The galaxy id.

    Returns
    -------
    dict
        Generators keyed 'positions', 'velocities', 'phase_mix', 'populations', 'gas',
        'orientation'.
    """
    return {purpose: galaxy_rng(seed, gid, purpose)
            for purpose in ("positions", "velocities", "phase_mix", "populations", "gas",
                            "orientation")}


def _bulge_particles(row: pd.Series | dict, model: SphericalModel, bulge: Hernquist,
                     particle_mass: float, anisotropy, rngs: dict, m_star_total: float,
                     history) -> tuple[_StellarPart, dict]:
    """Spheroid particles: isotropic positions, anisotropic velocities, bulge populations.

    At least one particle. A fraction ``rotation_flip`` of the retrograde stars is turned
    prograde, which gives net rotation without leaving equilibrium.

    Parameters
    ----------
    row : pandas.Series or dict
        The population row (beta_rhalf, rotation_flip, log_z_zsun).
    model : SphericalModel
        The total mass model the velocities are in equilibrium with.
    bulge : Hernquist
        The bulge component.
    particle_mass : float
        Target star particle mass, Msun.
    anisotropy : object
        ``mock.spheroid_anisotropy`` (dynamics.spheroid_anisotropy_radius).
    rngs : dict
        The galaxy's generators (`_galaxy_rngs`).
    m_star_total : float
        Stellar mass including the IMF factor, Msun.
    history : object
        The star-formation history (stellar_pops.draw_history).

    Returns
    -------
    tuple
        (particles, meta); meta holds anisotropy_ra_kpc and anisotropy_ra_raised.
    """
    rng_pos, rng_vel, rng_pop = rngs["positions"], rngs["velocities"], rngs["populations"]
    n_b = max(_n_particles(bulge.mass, particle_mass), 1)
    pos_b = _isotropic_positions(rng_pos, bulge.sample_radii(rng_pos, n_b))
    r_a_kpc, q, f, raised = dynamics.spheroid_anisotropy_radius(
        model, bulge.density, dynamics.HERNQUIST_RHALF_OVER_A * bulge.a,
        anisotropy, row.get("beta_rhalf"))
    vel_b = dynamics.sample_spheroid_velocities(rng_vel, pos_b, model, q, f, r_a=r_a_kpc)
    vel_b = _flip_to_prograde(rng_vel, pos_b, vel_b, float(row["rotation_flip"]))
    age_b, z_b = stellar_pops.bulge_populations(
        rng_pop, np.linalg.norm(pos_b, axis=1), 1.8153 * bulge.a, m_star_total,
        float(row["log_z_zsun"]), history)
    m_now, m_init = particle_masses(bulge.mass, age_b, z_b)
    part = _StellarPart(pos_b, vel_b, age_b, z_b, m_now, m_init, np.zeros(n_b, np.int8))
    return part, {"anisotropy_ra_kpc": r_a_kpc, "anisotropy_ra_raised": raised}


def _disc_particles(row: pd.Series | dict, galpot, disc, particle_mass: float, rngs: dict,
                    m_star_total: float, history, phase_mix_periods: float = 0.0
                    ) -> tuple[_StellarPart | None, dict]:
    """Disc particles: drawn radii and azimuths, heights and velocities from the vertical DF,
    then each star moved a random time along its orbit (dynamics.phase_mix_disc).

    Parameters
    ----------
    row : pandas.Series or dict
        The population row (disc_z0_kpc, log_z_zsun).
    galpot : object
        The flattened total potential (dynamics.flattened_potential).
    disc : object
        The stellar disc component (mass, r_d).
    particle_mass : float
        Target star particle mass, Msun.
    rngs : dict
        The galaxy's generators (`_galaxy_rngs`).
    m_star_total : float
        Stellar mass including the IMF factor, Msun.
    history : object
        The star-formation history (stellar_pops.draw_history).
    phase_mix_periods : float
        mock.disc_phase_mix_periods: each star's random time is drawn over this many of its
        radial periods (0: the Jeans set-up as drawn, not phase-mixed).

    Returns
    -------
    tuple
        (particles or None when the disc is below half a particle, meta); meta holds
        disc_rd_kpc, disc_z0_kpc, sigma_z_over_sigma_r, toomre_q_min (0.5-4 R_d, after the
        floor) and toomre_q_floor_fraction.
    """
    n_d = _n_particles(disc.mass, particle_mass)
    if n_d <= 0:
        return None, {}
    rng_vel, rng_pop = rngs["velocities"], rngs["populations"]
    z0 = float(row["disc_z0_kpc"])
    pos_d = _disc_positions(rngs["positions"], n_d, disc.r_d, z0)
    ratio = dynamics.draw_sigma_ratio(rng_vel)
    moments = dynamics.disc_kinematics(galpot, disc.mass, disc.r_d, z0, ratio)
    q_band = moments["toomre_q"](np.linspace(0.5, 4, 20) * disc.r_d)
    meta = dict(disc_rd_kpc=disc.r_d, disc_z0_kpc=z0, sigma_z_over_sigma_r=ratio,
                toomre_q_min=float(np.min(q_band)),  # 0.5-4 R_d, after the floor
                toomre_q_floor_fraction=moments["q_floor_raised"])
    # radii and azimuths as drawn; heights and velocities from the vertical DF
    pos_d, vel_d = dynamics.sample_disc_particles(
        rng_vel, np.hypot(pos_d[:, 0], pos_d[:, 1]), np.arctan2(pos_d[:, 1], pos_d[:, 0]),
        moments)
    # each star a random time along its orbit: the stationary, phase-mixed disc
    pos_d, vel_d = dynamics.phase_mix_disc(rngs["phase_mix"], galpot, pos_d, vel_d, disc.r_d,
                                           z0, phase_mix_periods)
    age_d, z_d = stellar_pops.disc_populations(
        rng_pop, np.hypot(pos_d[:, 0], pos_d[:, 1]), disc.r_d, m_star_total,
        float(row["log_z_zsun"]), history)
    m_now, m_init = particle_masses(disc.mass, age_d, z_d)
    return _StellarPart(pos_d, vel_d, age_d, z_d, m_now, m_init, np.ones(n_d, np.int8)), meta


def _join_parts(parts: list[_StellarPart], gid: int) -> _StellarPart:
    """Concatenate the components' particles (bulge first), refusing a galaxy without stars.

    Raises
    ------
    GalaxyInputError
        If no component has a particle (stellar mass below one particle).
    """
    if not parts:
        raise GalaxyInputError(f"galaxy {gid}: stellar mass below one particle")
    return _StellarPart(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))


def _oriented(rot: np.ndarray, joined: _StellarPart, lum: dict, potential: np.ndarray,
              gas: Gas | None) -> tuple[Stars, Gas | None]:
    """Stars and gas rotated from the disc frame into the box frame (x_box = rot @ x_disc).

    Parameters
    ----------
    rot : numpy.ndarray
        (3, 3) orientation matrix.
    joined : _StellarPart
        All star particles, disc frame.
    lum : dict
        Band luminosities of the stars, Lsun.
    potential : numpy.ndarray
        Each star's potential, (km/s)^2 (frame-independent).
    gas : Gas or None
        Gas particles, disc frame.

    Returns
    -------
    tuple
        (Stars, Gas or None) in the box frame.
    """
    # extra['component']: 0 = spheroid (bulge) particle, 1 = disc particle
    stars = Stars(joined.pos @ rot.T, joined.vel @ rot.T, joined.mass,
                  extra={"component": joined.component, "initial_mass": joined.initial_mass},
                  age_gyr=joined.age, metallicity=joined.metallicity, lum=lum,
                  potential=potential)
    if gas is not None:
        gas = Gas(gas.pos @ rot.T, gas.vel @ rot.T, gas.mass, metallicity=gas.metallicity,
                  extra=gas.extra)
    return stars, gas


def _galaxy_meta(row: pd.Series | dict, mcfg: dict, model: SphericalModel, comps: dict,
                 galpot, rot: np.ndarray, *, m_star_total: float, m_star_particles: float,
                 m_gas_particles: float, sigma_proxy: float, alpha: float,
                 sfr_total: float) -> dict:
    """Galaxy.meta of a mock galaxy: the model's truths beside what the particles carry.

    Parameters
    ----------
    row : pandas.Series or dict
        The population row.
    mcfg : dict
        The profile's ``mock`` section.
    model : SphericalModel
        The total mass model (monopoles).
    comps : dict
        Its components.
    galpot : object
        The flattened total potential (vcirc, discs).
    rot : numpy.ndarray
        Orientation matrix, disc frame -> box frame.
    m_star_total, m_star_particles, m_gas_particles : float
        Model stellar mass and the star and gas particles' masses, Msun.
    sigma_proxy, alpha, sfr_total : float
        Dispersion proxy (km/s), IMF factor and SFR over the last 100 Myr (Msun/yr).

    Returns
    -------
    dict
        The keys listed in `build_galaxy` except the dynamics' (added by the caller).
    """
    m_gas = float(row["m_gas"])
    r_half_3d = model.half_mass_radius(tuple(c for c in ("bulge", "disc") if c in comps))
    m_in = model.enclosed_mass(r_half_3d)
    return {
        "galaxy_type": "early" if bool(row["early"]) else "late", "source": "mock",
        "spin_axis": rot[:, 2].copy(), "m200c": float(row["m200c"]),
        "r200c_kpc": float(row["r200c_kpc"]), "concentration": float(row["concentration"]),
        "m_star_model": m_star_total, "m_gas_model": m_gas, "bt": float(row["bt"]),
        "m_star_dropped": m_star_total - m_star_particles,
        "m_gas_dropped": m_gas - m_gas_particles,
        "re_kpc_drawn": float(row["re_kpc"]), "r_half_3d_model": r_half_3d,
        "fdm_rhalf_model": float(model.enclosed_mass(r_half_3d, "dm") / m_in),
        "sigma_proxy_kms": sigma_proxy, "imf_alpha": alpha,
        "contraction": bool(mcfg.get("contraction")), "slow_rotator": bool(row["slow_rotator"]),
        "sfr_100myr": sfr_total,
        "vcirc_kms": galpot.vcirc, "potential_kms2": model.potential,
        "mass_model": model, "disc_sheet": galpot.discs,  # the exact model potential (disc frame)
        "orientation_matrix": rot,
        "sun_abs_mag_ab": dict(SUN_ABS_MAG_SDSS_AB),  # luminosities are in SDSS solar units
    }


def build_galaxy(row: pd.Series | dict, cfg: dict) -> Galaxy:
    """Particles, populations, equilibrium velocities and truths for one population row.

    Galaxy.meta holds: galaxy_type, source='mock', spin_axis (unit vector, box frame), m200c,
    r200c_kpc, concentration, bt, re_kpc_drawn, m_star_model / m_gas_model (Msun, the model's
    masses; m_star_dropped / m_gas_dropped: component mass below half a particle, absent from
    the particles but present in the potential), r_half_3d_model, fdm_rhalf_model,
    sigma_proxy_kms (sqrt(G M(<r_half) / 3 r_half)), imf_alpha, contraction, slow_rotator,
    sfr_100myr (Msun/yr), toomre_q_min, toomre_q_floor_fraction and sigma_z_over_sigma_r
    (discs), anisotropy_ra_kpc and anisotropy_ra_raised (spheroids; None = isotropic),
    vcirc_kms (callable of cylindrical R in kpc: in-plane v_c of the flattened total potential),
    potential_kms2 (callable of 3D r: the monopole), mass_model (monopoles) and disc_sheet (the
    discs' flattened residual; mass_model + disc_sheet = the exact model potential, disc frame),
    orientation_matrix (disc frame -> box frame: x_box = M @ x_disc).

    Steps: mass model and IMF (`_mass_model_with_imf`), star-formation history, bulge and
    disc particles in the disc frame (`_bulge_particles`, `_disc_particles`), potential and
    light, gas (`_gas_particles`), a random orientation (`_oriented`) and the truths
    (`_galaxy_meta`). Each step draws from its own seeded generator (`_galaxy_rngs`).

    Parameters
    ----------
    row : pandas.Series or dict
        The galaxy's population row.
    cfg : dict
        The profile (``seed`` and the ``mock`` section).

    Returns
    -------
    Galaxy
        Stars, gas and the analytic dark-matter halo, box frame.
    """
    gid = int(row["galaxy_id"])
    mcfg = cfg["mock"]
    m_p = float(mcfg["star_particle_mass"])
    model, comps, sigma_proxy, alpha = _mass_model_with_imf(row, mcfg)
    rngs = _galaxy_rngs(cfg["seed"], gid)
    history = stellar_pops.draw_history(rngs["populations"], bool(row["early"]),
                                        float(row["m_star"]), float(row["m_h2"]),
                                        float(mcfg["sfh_burstiness"]))
    # total potential: monopoles + thick stellar and gas discs (flattened residual, disc frame)
    galpot = dynamics.flattened_potential(model, comps, float(row["disc_z0_kpc"]),
                                          0.5 * float(row["disc_z0_kpc"]))
    m_star_total = float(row["m_star"]) * alpha
    parts: list[_StellarPart] = []
    dyn_meta: dict = {}
    if "bulge" in comps:
        part, meta = _bulge_particles(row, model, comps["bulge"], m_p,
                                      mcfg["spheroid_anisotropy"], rngs, m_star_total, history)
        parts.append(part)
        dyn_meta.update(meta)
    if "disc" in comps:
        part, meta = _disc_particles(row, galpot, comps["disc"], m_p, rngs, m_star_total,
                                     history, float(mcfg["disc_phase_mix_periods"]))
        if part is not None:
            parts.append(part)
        dyn_meta.update(meta)
    joined = _join_parts(parts, gid)
    potential = dynamics.total_potential(model, galpot.discs, joined.pos)
    # light is that of the Chabrier-IMF mass (mass / alpha); the extra alpha is dark stellar mass
    lum = particle_luminosities(joined.mass / alpha, joined.age, joined.metallicity, ("g", "r"))
    # SFR over the last 100 Myr (Msun/yr), from the mass the young particles formed with
    sfr_total = float(np.sum(joined.initial_mass[joined.age < 0.1]) / 1e8)
    gas = _gas_particles(row, comps, galpot, float(mcfg["gas_particle_mass"]), rngs["gas"],
                         sfr_total)
    rot = _random_orientation(rngs["orientation"], np.array([row["spin_x"], row["spin_y"],
                                                             row["spin_z"]], float))
    stars, gas = _oriented(rot, joined, lum, potential, gas)
    meta = _galaxy_meta(row, mcfg, model, comps, galpot, rot, m_star_total=m_star_total,
                        m_star_particles=float(joined.mass.sum()),
                        m_gas_particles=float(gas.mass.sum()) if gas is not None else 0.0,
                        sigma_proxy=sigma_proxy, alpha=alpha, sfr_total=sfr_total)
    meta.update(dyn_meta)
    return Galaxy(gid, stars, gas=gas, dm=comps["dm"], meta=meta)
