"""The metallicity model's variants and the population-level M*/L-colour measurement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_lib.config import load_config
from analysis_lib.sources.mock import colour_ml
from analysis_lib.sources.mock import stellar_pops as sp


def _history(seed: int = 0) -> sp.GalaxyHistory:
    return sp.draw_history(np.random.default_rng(seed), True, 5e10, 0.0, 0.2)


def test_default_metallicity_model_is_the_documented_profile():
    # the defaults must give, draw for draw, the formula the module docstring states
    r = np.geomspace(0.05, 20.0, 5000)
    hist = _history()
    age, z = sp.bulge_populations(np.random.default_rng(1), r, 2.0, 5e10, 0.1, hist)
    rng = np.random.default_rng(1)
    age_ref = sp.sample_ages(rng, sp.spheroid_tau_gyr(5e10) * hist.tau_factor,
                             hist.spheroid_start_gyr, len(r), hist)
    log_z = 0.1 + 0.05 - 0.3 * np.log10(r / 2.0) + rng.normal(0, 0.1, len(r))
    np.testing.assert_array_equal(age, age_ref)
    np.testing.assert_array_equal(z, 0.02 * 10**np.clip(log_z, -2.5, 0.6))
    rc = np.linspace(0.1, 15.0, 5000)
    _, zd = sp.disc_populations(np.random.default_rng(2), rc, 3.0, 5e10, -0.1, hist)
    rng = np.random.default_rng(2)
    sp.sample_ages(rng, sp.disc_tau_gyr(5e10) * hist.tau_factor * (0.7 + 0.3 * rc / 3.0),
                   hist.disc_start_gyr, len(rc), hist)
    log_zd = -0.1 - 0.1 * (rc / (1.678 * 3.0) - 1.0) + rng.normal(0, 0.1, len(rc))
    np.testing.assert_array_equal(zd, 0.02 * 10**np.clip(log_zd, -2.5, 0.6))


def test_enrichment_makes_young_stars_metal_rich_and_keeps_the_mean():
    r = np.full(40000, 2.0)
    hist = _history(3)  # log Z stays inside the table's clip range below
    model = sp.MetallicityModel(enrichment_dex=0.3, particle_scatter_dex=0.0)
    age, z = sp.bulge_populations(np.random.default_rng(4), r, 2.0, 5e10, 0.0, hist, model)
    log_z = np.log10(z / 0.02) - 0.05
    assert np.mean(log_z) == pytest.approx(0.0, abs=1e-9)
    formed = (hist.spheroid_start_gyr - age) / hist.spheroid_start_gyr
    slope = np.polyfit(formed, log_z, 1)[0]
    assert slope == pytest.approx(0.3, rel=1e-6)


def test_gradient_scatter_varies_between_galaxies_only_when_asked():
    r = np.geomspace(0.2, 20.0, 2000)
    model = sp.MetallicityModel(bulge_gradient=-0.4, bulge_gradient_scatter=0.1,
                                particle_scatter_dex=0.0)
    slopes = []
    for seed in range(60):
        _, z = sp.bulge_populations(np.random.default_rng(seed), r, 2.0, 5e10, 0.0, _history(),
                                    model)
        slopes.append(np.polyfit(np.log10(r / 2.0), np.log10(z), 1)[0])
    assert np.mean(slopes) == pytest.approx(-0.4, abs=0.04)
    assert np.std(slopes) == pytest.approx(0.1, rel=0.3)
    fixed = sp.MetallicityModel(particle_scatter_dex=0.0)
    _, z = sp.bulge_populations(np.random.default_rng(0), r, 2.0, 5e10, 0.0, _history(), fixed)
    assert np.polyfit(np.log10(r / 2.0), np.log10(z), 1)[0] == pytest.approx(-0.3, abs=1e-9)


def test_scatter_summary_recovers_a_known_scatter():
    rng = np.random.default_rng(5)
    gr = rng.uniform(0.6, 0.9, 3000)
    table = pd.DataFrame({"galaxy_id": np.arange(3000), "log_mstar": 10.5, "g_r": gr,
                          "log_ml_r": 1.2 * gr - 0.5 + rng.normal(0, 0.05, 3000),
                          "log_ml_r_2rhalf": 1.2 * gr - 0.5})
    out = colour_ml.scatter_summary(table, n_boot=50)
    assert out["scatter_rhalf"] == pytest.approx(0.05, rel=0.05)
    assert out["uncertainty_rhalf"] == pytest.approx(0.05 / np.sqrt(2 * 3000), rel=0.4)
    assert out["slope_rhalf"] == pytest.approx(1.2, abs=0.05)
    assert out["scatter_2rhalf"] < 1e-12


def test_population_colours_are_reproducible_and_physical():
    cfg = load_config("smoke")
    a = colour_ml.early_type_colour_ml(cfg, 40, 500, progress=False)
    b = colour_ml.early_type_colour_ml(cfg, 40, 500, progress=False)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) >= 5
    # old, metal-rich composite populations: red and with M*/L_r of order 1-4
    assert a["g_r"].between(0.5, 1.0).all()
    assert a["log_ml_r"].between(-0.3, 0.7).all()
    # common random numbers: the same model on the same galaxies gives the same rows
    levers = {"one": sp.DEFAULT_METALLICITY, "two": sp.MetallicityModel()}
    table = colour_ml.ml_colour_lever_table(cfg, 40, 500, levers, progress=False)
    assert table["scatter_rhalf"].iloc[0] == table["scatter_rhalf"].iloc[1]
    with pytest.raises(ValueError, match="n_particles"):
        colour_ml.galaxy_colour_ml(a.iloc[0].to_dict(), cfg, n_particles=10)
    with pytest.raises(ValueError, match="n_population"):
        colour_ml.early_type_colour_ml(cfg, 0)


def test_a_heavier_imf_raises_mstar_over_light():
    light = colour_ml.universe_ml_scatter_table("smoke", ["observed", "heavy_imf"], 40, 500,
                                                progress=False)
    assert light["median_g_r"].iloc[0] == pytest.approx(light["median_g_r"].iloc[1], abs=0.02)
    cfg = load_config("smoke")
    obs = colour_ml.early_type_colour_ml(cfg, 40, 500, progress=False)
    heavy = colour_ml.early_type_colour_ml(load_config("smoke", ["mock.universe=heavy_imf"]),
                                           40, 500, progress=False)
    assert (heavy["log_ml_r"] - obs["log_ml_r"]).median() > 0.05
