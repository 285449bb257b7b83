"""Particles in, the paper's inputs and truths out: one record per line of sight.

The same code serves every source (mock universe, TNG cutouts): it reads only the particle
container. Per galaxy the 3D quantities (R_half, smoothing lengths, circularities, shape, sphere
masses) are computed once; per projection the dust, images, maps, projected targets and
features. Settings come from cfg['observe'] and the projections from cfg['data']['projections'].

The observing set-up is cfg['instrument'] (instruments.yaml, validated by instrument.py), the
same code path for every source:

- images: rendered on a field padded for the PSF, then (survey instruments) convolved with the
  band's PSF, cropped and given sky + photon noise (seeded: galaxy_rng(seed, id, 'noise-<los>'));
  `ideal` keeps the noiseless, unconvolved render (the paper);
- kinematics: Voronoi bins (binning.py) from the IFU's S/N (surface brightness) and a floor of
  star particles per bin; lambda_R and sigma_e always come from these binned maps, inside the
  instrument's aperture, lambda_R seeing-corrected (Graham et al. 2018) where the instrument
  says so. The CNN's maps are the binned maps, or for `ideal` the paper's per-pixel NGP maps.
- targets and the other Table-1 features are truths from the particles, whatever the instrument.
"""

from __future__ import annotations

import numpy as np

from analysis_lib.observe import (
    binning,
    dust,
    features,
    geometry,
    images,
    instrument,
    kinematics,
    targets,
)
from analysis_lib.observe.circularity import circularities, orbit_fractions
from analysis_lib.observe.sersic import sersic_index
from analysis_lib.observe.shape import axis_ratios
from analysis_lib.particles import Galaxy, GalaxyInputError
from analysis_lib.rng import galaxy_rng

_TYPE_CODES = {"late": 0, "early": 1, 0: 0, 1: 1}


def _check(galaxy: Galaxy, n_neighbours: int) -> None:
    gid = galaxy.galaxy_id
    st = galaxy.stars
    for band in ("r", "g"):
        if band not in st.lum:
            raise GalaxyInputError(f"galaxy {gid}: stars have no '{band}'-band luminosity")
        if np.any(~np.isfinite(st.lum[band])) or np.any(st.lum[band] < 0):
            raise GalaxyInputError(
                f"galaxy {gid}: stars' '{band}' luminosity is negative or not finite")
    for name in ("pos", "vel", "mass"):
        if not np.all(np.isfinite(getattr(st, name))):
            raise GalaxyInputError(f"galaxy {gid}: stars field '{name}' is not finite")
    if np.any(st.mass <= 0):
        raise GalaxyInputError(f"galaxy {gid}: stars field 'mass' has non-positive values")
    if len(st) < n_neighbours + 1:
        raise GalaxyInputError(f"galaxy {gid}: {len(st)} star particles, need more than "
                               f"{n_neighbours} for SPH smoothing")
    if len(st.age_gyr) != len(st):
        raise GalaxyInputError(f"galaxy {gid}: stars field 'age_gyr' is missing")
    if galaxy.meta.get("galaxy_type") not in _TYPE_CODES:
        raise GalaxyInputError(f"galaxy {gid}: meta 'galaxy_type' is "
                               f"{galaxy.meta.get('galaxy_type')!r}, expected 'early' or 'late'")
    if galaxy.gas is not None and len(galaxy.gas) and not np.all(
            np.isfinite(galaxy.gas.pos) & np.isfinite(galaxy.gas.metallicity)[:, None]):
        raise GalaxyInputError(f"galaxy {gid}: gas 'pos' or 'metallicity' is not finite")


def _map_vrms(maps, aperture: float) -> float:
    """sqrt(sum F (V^2 + sigma^2) / sum F) over valid map pixels inside a circle (kpc).

    F is the binned maps' flux or the per-pixel maps' weight (r light for the ideal instrument).
    """
    flux = getattr(maps, "flux", None)
    flux = maps.weight if flux is None else flux
    sel = maps.mask & (maps.pixel_radius() < aperture)
    f = flux[sel]
    if not f.sum() > 0:
        return float("nan")
    v, s = maps.vel[sel], maps.sigma[sel]
    return float(np.sqrt(np.sum(f * (v**2 + s**2)) / f.sum()))


def observe_galaxy(galaxy: Galaxy, cfg: dict) -> list[dict]:
    """Images, kinematic maps, targets and Table-1 features for each projection of one galaxy.

    Returns one dict per line of sight with the dataset's keys (see analysis_lib.dataset):
    galaxy_id, projection, galaxy_type, inclination_deg, A_r, A_g, image_r_N / image_g_N
    (float32, Lsun per pixel), vel_map / sigma_map (float32, km/s), map_mask (bool),
    pixel_scale_kpc, and every target and feature as a float. Raises GalaxyInputError naming
    the galaxy for bad input.
    """
    obs = cfg["observe"]
    gid = int(galaxy.galaxy_id)
    n_nb = int(obs["sph_neighbours"])
    _check(galaxy, n_nb)
    stars = galaxy.stars
    rhalf = galaxy.half_mass_radius()
    if not np.isfinite(rhalf) or rhalf <= 0:
        raise GalaxyInputError(f"galaxy {gid}: half-mass radius {rhalf} is not positive")
    half_width = float(obs["fov_rhalf"]) * rhalf
    n_img = int(obs["image_size"])
    sizes = [int(s) for s in obs["image_sizes"]]
    for s in sizes:
        if n_img % s:
            raise GalaxyInputError(f"image size {s} does not divide the rendered size {n_img}")

    try:
        support = images.smoothing_support(stars.pos, n_nb)
        circ = circularities(galaxy, float(obs["circularity_radius_rhalf"]) * rhalf)
        _, c_over_a, _ = axis_ratios(stars.pos, stars.mass,
                                     float(obs["shape_radius_rhalf"]) * rhalf)
    except GalaxyInputError as exc:
        raise GalaxyInputError(f"galaxy {gid}: {exc}") from exc
    intrinsic = {"q": c_over_a, **orbit_fractions(circ), **targets.spherical_targets(galaxy, rhalf)}
    intrinsic["log_mstar_total"] = float(np.log10(stars.mass.sum()))  # diagnostic: all stars
    spin = galaxy.meta.get("spin_axis")
    spin = circ.axis if spin is None else np.asarray(spin, dtype=float)
    mass_formed = stars.extra.get("initial_mass", stars.mass)
    sun = galaxy.meta.get("sun_abs_mag_ab")
    use_dust = bool(obs["dust"]) and galaxy.gas is not None and len(galaxy.gas) > 1
    gas_h = dust.gas_support(galaxy.gas, n_nb) if use_dust else None

    inst = instrument.parse_instrument(cfg["instrument"])
    seed = int(cfg["seed"])
    sun_mags = dict(sun or features.SUN_ABS_MAG_AB_SDSS)
    records = []
    for name in cfg["data"]["projections"]:
        los = geometry.projection_index(name)
        a, b, depth = geometry.project(stars.pos, los)
        if use_dust:
            ga, gb, gd = geometry.project(galaxy.gas.pos, los)
            tau_v = dust.optical_depth_v(a, b, depth, galaxy.gas, ga, gb, gd, gas_h, half_width,
                                         float(obs["dust_metallicity_index"]))
            scatter = bool(obs["dust_scattering"])
            clouds = bool(obs.get("dust_birth_clouds", True))  # Charlot & Fall (2000)
            lum_r = stars.lum["r"] * dust.star_transmission(tau_v, stars.age_gyr, "r", scatter,
                                                            clouds)
            lum_g = stars.lum["g"] * dust.star_transmission(tau_v, stars.age_gyr, "g", scatter,
                                                            clouds)
        else:
            lum_r, lum_g = stars.lum["r"], stars.lum["g"]
        pix_img = 2.0 * half_width / n_img
        pad = instrument.pad_pixels(inst, pix_img)
        rendered_pad = images.render_images(a, b, support, np.column_stack([lum_r, lum_g]),
                                            half_width + pad * pix_img, n_img + 2 * pad)
        rendered = instrument.crop(rendered_pad, pad)  # the truth: no PSF, no noise
        seen = instrument.observe_images(rendered_pad, pad, pix_img, inst, sun_mags,
                                         galaxy_rng(seed, gid, f"noise-{name}"))
        rec: dict = {"galaxy_id": gid, "projection": los,
                     "galaxy_type": _TYPE_CODES[galaxy.meta["galaxy_type"]],
                     "inclination_deg": geometry.inclination_deg(spin, los),
                     "pixel_scale_kpc": 2.0 * half_width / n_img}
        for s in sizes:
            binned = images.rebin(seen, s)
            rec[f"image_r_{s}"] = binned[0].astype(np.float32)
            rec[f"image_g_{s}"] = binned[1].astype(np.float32)

        v_los = geometry.los_velocity(stars.vel, los)
        weighting = obs["map_weighting"]
        if weighting not in ("luminosity_r", "mass"):
            raise GalaxyInputError(f"observe.map_weighting '{weighting}' is not luminosity_r/mass")
        weight = lum_r if weighting == "luminosity_r" else stars.mass
        r_proj = np.hypot(a, b)
        n_map = int(obs["map_size"])
        r_e = features.half_light_radius(r_proj, lum_r)
        aperture = rhalf if inst.aperture == "rhalf" else r_e
        binned_maps = binning.observe_kinematics(
            a, b, v_los, weight, instrument.ifu_light(rendered_pad[0], pad, pix_img, inst, n_map),
            half_width, inst, r_e, aperture if inst.maps == "ngp" else None, sun_mags["r"],
            galaxy_rng(seed, gid, f"kinematics-{name}"))
        if inst.maps == "ngp":  # the paper's per-pixel maps for the CNN
            maps = kinematics.ngp_maps(a, b, v_los, weight, half_width, n_map,
                                       int(obs["min_particles_per_map_pixel"]))
        else:
            maps = binned_maps
        rec["vel_map"] = maps.vel.astype(np.float32)
        rec["sigma_map"] = maps.sigma.astype(np.float32)
        rec["map_mask"] = maps.mask.copy()

        rec.update(targets.projected_targets(r_proj, stars.mass, lum_r, rhalf,
                                             float(rendered[0].sum())))
        ap2 = 2.0 * rhalf
        rec.update(features.photometry(r_proj, lum_r, lum_g, ap2, sun))
        rec["A_r"] = features.attenuation(r_proj, lum_r, stars.lum["r"], ap2)
        rec["A_g"] = features.attenuation(r_proj, lum_g, stars.lum["g"], ap2)
        # diagnostics (dataset.DIAGNOSTICS: dust-free colour and M*/L, light-weighted age, Z)
        rec["g_r_nodust"] = features.photometry(r_proj, stars.lum["r"], stars.lum["g"], ap2,
                                                sun)["g_r"]
        rec.update(targets.stellar_population_diagnostics(
            r_proj, stars.mass, stars.lum["r"], stars.age_gyr, stars.metallicity, rhalf))
        rec["sfr"] = features.star_formation_rate(r_proj, stars.age_gyr, mass_formed, ap2,
                                                  float(obs["sfr_window_gyr"]))
        rec["sersic_n"] = sersic_index(a, b, lum_r, float(obs["sersic_rmin_rhalf"]) * rhalf, ap2,
                                       int(obs["sersic_bins"]))
        rec["sigma_e"] = features.binned_sigma_e(binned_maps, aperture)
        # the classical estimators' inputs and truths (models/classical.py): v_rms within R_e
        # and over the whole map field, R_e, and the total mass inside Wolf's r_1/2 = 4/3 R_e.
        # From the CNN's maps (ideal: per-pixel maps over the whole field; surveys: the binned
        # maps), because the ideal instrument's binned maps stop at R_half.
        rec["r_e_kpc"] = r_e
        rec["sigma_re"] = _map_vrms(maps, r_e)
        rec["sigma_fov"] = _map_vrms(maps, np.inf)
        rec["log_mtot_wolf"] = targets.log_total_mass_within(galaxy, 4.0 / 3.0 * r_e)
        lam = features.binned_lambda_r(binned_maps, aperture)
        if inst.lambda_r_seeing_correction:
            lam = features.graham18(lam, inst.ifu_psf.sigma_arcsec * inst.kpc_per_arcsec,
                                    aperture, rec["sersic_n"])
        rec["lambda_r"] = lam
        rec.update(intrinsic)
        records.append(rec)
    return records
