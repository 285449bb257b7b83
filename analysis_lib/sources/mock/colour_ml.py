"""M*/L at fixed colour for a whole mock population, from its stellar populations alone.

Why: the dataset's shortcut check (shortcuts.shortcut_table) measures the early types' dust-free
M*/L_r scatter about a line in g - r on the few hundred galaxies a quick build makes, with a
bootstrap error of ~0.003 dex; whether a change of the metallicity model moves it cannot be told
apart from sampling noise there. This module measures the same statistic on thousands of
population rows in seconds: each galaxy's star particles get their ages, metallicities, masses
and dust-free g and r light exactly as `galaxy.build_galaxy` gives them (same functions, same
history), but no velocities, no phase mixing and no images. Positions are drawn as the builder
draws them (Hernquist spheroid, exponential disc with sech^2 heights), seen along a random line
of sight; M*/L_r is summed within the projected stellar half-mass radius R_half (2 R_half for
the colour), the apertures of the dataset's log_ml_r_nodust and g_r_nodust. With
``mock.imf: varying`` the stellar mass carries the galaxy's IMF factor alpha and the light stays
that of the Chabrier mass, as in the builder.

`ml_colour_lever_table` runs it with several `stellar_pops.MetallicityModel` variants on the same
galaxies and random numbers (common random numbers), so differences between rows are the
variants' effect, not sampling noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis_lib.config import load_config
from analysis_lib.rng import galaxy_rng
from analysis_lib.sources.mock import population, stellar_pops
from analysis_lib.sources.mock.galaxy import (
    _disc_positions,
    _isotropic_positions,
    _mass_model_with_imf,
)
from analysis_lib.sources.mock.mass_model import Hernquist
from analysis_lib.sources.mock.shortcuts import fit_residual_scatter, galaxy_bootstrap_std
from analysis_lib.sources.mock.ssp import (
    SUN_ABS_MAG_SDSS_AB,
    particle_luminosities,
    particle_masses,
)

HERNQUIST_RE_OVER_A = 1.8153  # projected half-mass radius of a Hernquist sphere / a

# Metallicity-model variants with a published basis (ml_colour_lever_table's default rows).
LEVERS: dict[str, stellar_pops.MetallicityModel] = {
    "as built (defaults)": stellar_pops.DEFAULT_METALLICITY,
    # Pagel (1981, ARA&A 19, 77, section 2.2): solar-neighbourhood [Fe/H] Gaussian with sd ~0.2
    "particle scatter 0.2 dex (Pagel 1981)": stellar_pops.MetallicityModel(
        particle_scatter_dex=0.2),
    # Kobayashi & Arimoto (1999, astro-ph/9907091): gradients differ between ellipticals of the
    # same mass; Tamura & Ohta (2003, astro-ph/0304404): -0.3 +- 0.1 in Abell 2199 (the +- read as
    # the galaxy-to-galaxy spread)
    "bulge gradient spread 0.1 between galaxies (Tamura & Ohta 2003)":
        stellar_pops.MetallicityModel(bulge_gradient_scatter=0.1),
    # Haywood (2006, astro-ph/0609523): mean Z of the solar-neighbourhood disc rises by about a
    # factor of 2 (0.3 dex) over the disc's age
    "age-metallicity relation 0.3 dex (Haywood 2006)": stellar_pops.MetallicityModel(
        enrichment_dex=0.3),
    "all three": stellar_pops.MetallicityModel(
        particle_scatter_dex=0.2, bulge_gradient_scatter=0.1, enrichment_dex=0.3),
}


def _projected(rng: np.random.Generator, pos: np.ndarray) -> np.ndarray:
    """Distances of points from a random line of sight through the centre (kpc)."""
    los = rng.normal(size=3)
    los /= np.linalg.norm(los)
    return np.linalg.norm(pos - np.outer(pos @ los, los), axis=1)


def galaxy_colour_ml(row: pd.Series | dict, cfg: dict, n_particles: int = 4000,
                     zmodel: stellar_pops.MetallicityModel = stellar_pops.DEFAULT_METALLICITY
                     ) -> dict[str, float]:
    """Dust-free g - r (2 R_half) and log M*/L_r (R_half, 2 R_half) of one population row.

    Parameters
    ----------
    row : pandas.Series or dict
        A population row (population.draw_population).
    cfg : dict
        The profile (``seed``, ``mock.sfh_burstiness``).
    n_particles : int
        Star particles per galaxy, split between bulge and disc by B/T.
    zmodel : stellar_pops.MetallicityModel
        The metallicity model.

    Returns
    -------
    dict
        galaxy_id, log_mstar, g_r, log_ml_r, log_ml_r_2rhalf.
    """
    if n_particles < 100:
        raise ValueError(f"n_particles must be >= 100, got {n_particles}")
    gid = int(row["galaxy_id"])
    alpha = 1.0 if cfg["mock"]["imf"] == "chabrier" else _mass_model_with_imf(row, cfg["mock"])[3]
    rng = galaxy_rng(int(cfg["seed"]), gid, "colour-ml")
    m_star, bt = float(row["m_star"]), float(row["bt"])
    history = stellar_pops.draw_history(rng, bool(row["early"]), m_star, float(row["m_h2"]),
                                        float(cfg["mock"]["sfh_burstiness"]))
    n_b = int(round(n_particles * bt))
    pos, mass, lum_g, lum_r = [], [], [], []
    if n_b > 0:
        a = float(row["bulge_a_kpc"])
        p = _isotropic_positions(rng, Hernquist(m_star * bt, a).sample_radii(rng, n_b))
        age, z = stellar_pops.bulge_populations(rng, np.linalg.norm(p, axis=1),
                                                HERNQUIST_RE_OVER_A * a, m_star,
                                                float(row["log_z_zsun"]), history, zmodel)
        pos.append(p)
        mass.append(particle_masses(m_star * bt, age, z)[0])
        lum = particle_luminosities(mass[-1], age, z, ("g", "r"))
        lum_g.append(lum["g"])
        lum_r.append(lum["r"])
    if n_particles - n_b > 0:
        r_d = float(row["disc_rd_kpc"])
        p = _disc_positions(rng, n_particles - n_b, r_d, float(row["disc_z0_kpc"]))
        age, z = stellar_pops.disc_populations(rng, np.hypot(p[:, 0], p[:, 1]), r_d, m_star,
                                               float(row["log_z_zsun"]), history, zmodel)
        pos.append(p)
        mass.append(particle_masses(m_star * (1 - bt), age, z)[0])
        lum = particle_luminosities(mass[-1], age, z, ("g", "r"))
        lum_g.append(lum["g"])
        lum_r.append(lum["r"])
    r_proj = _projected(rng, np.concatenate(pos))
    m, lg, lr = np.concatenate(mass), np.concatenate(lum_g), np.concatenate(lum_r)
    order = np.argsort(r_proj)
    cum = np.cumsum(m[order])
    r_half = float(r_proj[order][np.searchsorted(cum, 0.5 * cum[-1])])
    in1, in2 = r_proj <= r_half, r_proj <= 2 * r_half
    sun_gr = SUN_ABS_MAG_SDSS_AB["g"] - SUN_ABS_MAG_SDSS_AB["r"]
    return {"galaxy_id": gid, "log_mstar": float(np.log10(m_star)),
            "g_r": float(-2.5 * np.log10(lg[in2].sum() / lr[in2].sum()) + sun_gr),
            "log_ml_r": float(np.log10(alpha * m[in1].sum() / lr[in1].sum())),
            "log_ml_r_2rhalf": float(np.log10(alpha * m[in2].sum() / lr[in2].sum()))}


def early_type_colour_ml(cfg: dict, n_population: int, n_particles: int = 4000,
                         zmodel: stellar_pops.MetallicityModel = stellar_pops.DEFAULT_METALLICITY,
                         progress: bool = True) -> pd.DataFrame:
    """`galaxy_colour_ml` for every early type among the first n_population population rows.

    The population is the profile's (same seed, universe knobs), drawn at n_population rows.
    """
    if n_population < 1:
        raise ValueError(f"n_population must be positive, got {n_population}")
    pop_cfg = {**cfg, "data": {**cfg["data"], "n_galaxies": int(n_population)}}
    pop = population.draw_population(pop_cfg)
    early = pop[pop["early"]]
    rows = [galaxy_colour_ml(row, cfg, n_particles, zmodel)
            for _, row in tqdm(early.iterrows(), total=len(early), disable=not progress,
                               desc="early-type populations")]
    return pd.DataFrame(rows)


def scatter_summary(table: pd.DataFrame, n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Scatter of log M*/L_r about a line in g - r, its bootstrap error, slope and median g - r."""
    gr, ml = table["g_r"].to_numpy(float), table["log_ml_r"].to_numpy(float)
    ml2 = table["log_ml_r_2rhalf"].to_numpy(float)
    gid = table["galaxy_id"].to_numpy()
    return {"n_early": len(table),
            "scatter_rhalf": fit_residual_scatter(gr, ml),
            "uncertainty_rhalf": galaxy_bootstrap_std(fit_residual_scatter, gid, gr, ml,
                                                      n_boot=n_boot, seed=seed),
            "scatter_2rhalf": fit_residual_scatter(gr, ml2),
            "slope_rhalf": float(np.polyfit(gr, ml, 1)[0]),
            "median_g_r": float(np.median(gr))}


def ml_colour_lever_table(cfg: dict, n_population: int, n_particles: int = 4000,
                          levers: dict[str, stellar_pops.MetallicityModel] | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """The early types' dust-free M*/L_r scatter at fixed g - r under metallicity variants.

    Why: to say whether the mock's scatter (dataset check: >= 0.05 dex asked) is held down by a
    metallicity choice, every variant with a published basis (LEVERS) is run on the same
    galaxies with the same random numbers.

    Returns
    -------
    pandas.DataFrame
        One row per variant: variant, n_early, scatter_rhalf (dex) with its galaxy-bootstrap
        uncertainty, scatter_2rhalf, slope_rhalf (dex per mag), median_g_r (mag).
    """
    rows = []
    for name, zmodel in (levers or LEVERS).items():
        table = early_type_colour_ml(cfg, n_population, n_particles, zmodel, progress)
        rows.append({"variant": name, **scatter_summary(table)})
    return pd.DataFrame(rows)


def universe_ml_scatter_table(profile: str, universes: list[str], n_population: int,
                              n_particles: int = 4000, overrides: list[str] | None = None,
                              progress: bool = True) -> pd.DataFrame:
    """`scatter_summary` of the default metallicity model in each universe.

    Why: the universes change histories (``bursty``) and the IMF (``heavy_imf``), the other
    levers on M*/L at fixed colour; the same seed draws the same haloes in each.
    """
    rows = []
    for name in universes:
        cfg = load_config(profile, [*(overrides or []), f"mock.universe={name}"])
        if cfg["data"]["source"] != "mock":
            raise ValueError(f"universe table needs the mock source, not {cfg['data']['source']!r}")
        table = early_type_colour_ml(cfg, n_population, n_particles, progress=progress)
        rows.append({"universe": name, **scatter_summary(table)})
    return pd.DataFrame(rows)
