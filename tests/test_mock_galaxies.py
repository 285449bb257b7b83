"""Particle galaxies: masses, light, colours, dynamics truths and relations measured from them."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.particles import Galaxy
from analysis_lib.sources.mock import MockSource, dynamics, ssp
from analysis_lib.sources.mock import relations as rel
from analysis_lib.sources.mock.galaxy import build_mass_model
from analysis_lib.sources.mock.validation import (
    degeneracy_table,
    relation_figures,
    relation_table,
    summarise_galaxies,
)

N_GAL = 40


@pytest.fixture(scope="module")
def source():
    return MockSource(load_config("smoke", {"data.n_galaxies": N_GAL}))


@pytest.fixture(scope="module")
def galaxies(source):
    return [source.load(i) for i in source.galaxy_ids()]


@pytest.fixture(scope="module")
def summary(galaxies):
    return summarise_galaxies(galaxies)


def test_galaxies_pass_the_paper_cut_from_their_particles(galaxies):
    for g in galaxies:
        assert isinstance(g, Galaxy)
        assert g.stars.enclosed_mass(30.0) > 1e10, f"galaxy {g.galaxy_id} below the cut"


def test_particle_masses_add_up_to_the_population_truths(source, galaxies):
    pop = source.population
    for g in galaxies:
        row = pop.iloc[g.galaxy_id]
        assert g.stars.mass.sum() + g.meta["m_star_dropped"] == pytest.approx(row["m_star"],
                                                                              rel=1e-9)
        assert g.meta["m_star_dropped"] < float(source.cfg["mock"]["star_particle_mass"])
        if g.gas is not None:
            # a phase below half a gas particle is dropped (and recorded as such)
            assert g.gas.mass.sum() + g.meta["m_gas_dropped"] == pytest.approx(row["m_gas"],
                                                                               rel=1e-9)
        # the analytic halo keeps M200c inside r200 (DM + galaxy, up to the outer stellar tail)
        m_r200 = g.enclosed_mass("total", row["r200c_kpc"])
        assert m_r200 == pytest.approx(row["m200c"], rel=0.02)


def test_meta_carries_the_truths(galaxies):
    for g in galaxies:
        m = g.meta
        assert m["source"] == "mock" and m["galaxy_type"] in ("early", "late")
        assert np.linalg.norm(m["spin_axis"]) == pytest.approx(1.0)
        for key in ("m200c", "r200c_kpc", "concentration", "vcirc_kms", "imf_alpha"):
            assert key in m
        assert np.all(np.isfinite(g.stars.potential)) and np.all(g.stars.potential < 0)


def test_discs_rotate_about_the_recorded_spin_axis(galaxies):
    late = [g for g in galaxies if g.meta["galaxy_type"] == "late"]
    assert late
    for g in late:
        j = np.sum(g.stars.mass[:, None] * np.cross(g.stars.pos, g.stars.vel), axis=0)
        assert np.dot(j / np.linalg.norm(j), g.meta["spin_axis"]) > 0.95


def test_potential_and_vcirc_agree(galaxies):
    g = galaxies[0]
    model = g.meta["mass_model"]
    r = np.geomspace(0.3, 50, 30)
    eps = 0.01
    # vcirc_kms: in-plane v_c of the total potential (monopoles + flattened discs, disc frame)

    def phi_plane(rr):
        return dynamics.total_potential(model, g.meta["disc_sheet"],
                                        np.column_stack([rr, 0 * rr, 0 * rr]))

    dphi = (phi_plane(r * (1 + eps)) - phi_plane(r * (1 - eps))) / (2 * eps * r)
    np.testing.assert_allclose(np.sqrt(r * dphi), g.meta["vcirc_kms"](r), rtol=0.01)
    # stars' potential = monopoles + flattened discs, evaluated in the disc frame
    pos_disc = g.stars.pos @ g.meta["orientation_matrix"]
    expected = dynamics.total_potential(model, g.meta["disc_sheet"], pos_disc)
    np.testing.assert_allclose(g.stars.potential, expected, rtol=1e-12)


def test_spheroid_velocities_match_the_isotropic_jeans_solution(source):
    row = source.population.iloc[int(np.argmax(source.population["bt"]))]
    model, comps = build_mass_model(row, source.cfg["mock"])
    bulge = comps["bulge"]
    rng = np.random.default_rng(1)
    r = bulge.sample_radii(rng, 60000)
    d = rng.normal(size=(len(r), 3))
    pos = r[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)
    q, f = dynamics.eddington_df(model, bulge.density)
    vel = dynamics.sample_spheroid_velocities(rng, pos, model, q, f)
    v_r = np.einsum("ij,ij->i", vel, pos) / r
    grid = np.geomspace(1e-3, 1e4, 20000)
    for lo, hi in ((0.3, 0.6), (1.0, 2.0), (3.0, 6.0)):
        lo, hi = lo * bulge.a, hi * bulge.a
        sel = (r > lo) & (r < hi)
        rc = np.sqrt(lo * hi)
        out = grid > rc
        jeans = np.sqrt(np.trapezoid(bulge.density(grid[out]) * rel.G_KPC_KMS2_MSUN
                                     * model.enclosed_mass(grid[out]) / grid[out] ** 2,
                                     grid[out]) / bulge.density(rc))
        assert np.std(v_r[sel]) == pytest.approx(jeans, rel=0.04)


def test_osipkov_merritt_anisotropy(source):
    row = source.population.iloc[int(np.argmax(source.population["bt"]))]
    model, comps = build_mass_model(row, source.cfg["mock"])
    bulge = comps["bulge"]
    r_a = 2 * bulge.a
    rng = np.random.default_rng(2)
    r = bulge.sample_radii(rng, 40000)
    d = rng.normal(size=(len(r), 3))
    pos = r[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)
    q, f = dynamics.eddington_df(model, bulge.density, r_a=r_a)
    vel = dynamics.sample_spheroid_velocities(rng, pos, model, q, f, r_a=r_a)
    v_r = np.einsum("ij,ij->i", vel, pos) / r
    v_t2 = np.sum(vel**2, axis=1) - v_r**2
    for rc in (0.5 * r_a, 2 * r_a):
        sel = (r > rc / 1.3) & (r < rc * 1.3)
        beta = 1 - np.mean(v_t2[sel]) / (2 * np.mean(v_r[sel] ** 2))
        assert beta == pytest.approx(rc**2 / (rc**2 + r_a**2), abs=0.08)


def test_ssp_light_behaves(summary):
    # older populations: redder and higher M/L at fixed Z (more in tests/test_mock_ssp.py)
    lum = ssp.particle_luminosities(np.ones(3), np.array([1.0, 4.0, 11.0]), np.full(3, 0.006))
    ml = 1 / lum["r"]
    sun = ssp.SUN_ABS_MAG_SDSS_AB
    gr = -2.5 * np.log10(lum["g"] / lum["r"]) + sun["g"] - sun["r"]
    assert np.all(np.diff(ml) > 0) and np.all(np.diff(gr) > 0)
    assert 1.5 < ml[-1] < 4.0  # BC03 Chabrier, ~11 Gyr, 0.3 Zsun: M*/L_r of a few


def test_mass_to_light_rises_with_colour_near_bell03(summary):
    slope = np.polyfit(summary["g_minus_r"], summary["log_ml_r"], 1)[0]
    assert slope > 0.5, f"M/L-colour slope {slope:.2f}"
    delta = summary["log_ml_r"] - rel.bell03_log_ml_r(summary["g_minus_r"])
    assert abs(np.median(delta)) < 0.15


def test_colour_bimodality(summary):
    early = summary["galaxy_type"] == "early"
    assert summary.loc[early, "g_minus_r"].median() > summary.loc[~early, "g_minus_r"].median() \
        + 0.15


def test_tully_fisher_and_dark_fractions(summary):
    late = summary["galaxy_type"] == "late"
    delta = np.log10(summary.loc[late, "v80_kms"]) - rel.reyes11_log_v80(
        10 ** summary.loc[late, "log_mstar"])
    assert abs(np.median(delta)) < 0.1
    assert ((summary["fdm_rhalf"] > 0) & (summary["fdm_rhalf"] < 1)).all()
    # dark fraction inside the 3D half-mass radius exceeds that inside the (smaller) R_e
    assert (summary["fdm_rhalf"] >= summary["fdm_re"] - 0.05).mean() > 0.8


def test_late_types_form_stars_and_early_types_barely_do(galaxies):
    """Late types form stars; quenched early types keep at most a little residual star
    formation (from their molecular gas, or the tail of a recent quench)."""
    young_early, late_sfr = [], []
    for g in galaxies:
        young = g.stars.mass[g.stars.age_gyr < 1.0].sum() / g.stars.mass.sum()
        if g.meta["galaxy_type"] == "late":
            assert young > 0.005 and g.gas is not None
            late_sfr.append(g.gas.extra["sfr"].sum())
        else:
            young_early.append(young)
    assert young_early and np.median(young_early) < 0.01 and max(young_early) < 0.1
    # bursty histories and 2e7 Msun particles: a few late types formed no particle in 100 Myr
    assert np.mean(np.array(late_sfr) > 0) > 0.8


def test_options_change_the_physics_in_the_right_direction(source):
    row = source.population.iloc[0]
    base = source.cfg["mock"]
    plain, _ = build_mass_model(row, base)
    contracted, _ = build_mass_model(row, {**base, "contraction": True})
    r = np.array([1.0, 3.0])
    assert np.all(contracted.enclosed_mass(r, "dm") > plain.enclosed_mass(r, "dm"))
    big = int(np.argmax(source.population["m_star"]))  # high sigma: a heavier IMF
    heavy = MockSource({**source.cfg, "mock": {**base, "imf": "varying"}}).load(big)
    light = source.load(big)
    assert heavy.meta["imf_alpha"] > 1.0
    # stellar mass scaled by alpha at (statistically) the same light
    assert heavy.stars.mass.sum() == pytest.approx(heavy.meta["imf_alpha"]
                                                   * light.stars.mass.sum(), rel=1e-9)
    assert heavy.stars.lum["r"].sum() == pytest.approx(light.stars.lum["r"].sum(), rel=0.05)


def test_validation_outputs(source, summary):
    import matplotlib

    matplotlib.use("Agg")
    table = relation_table(source.population, summary)
    assert {"relation", "offset_dex", "scatter_dex"} <= set(table.columns)
    assert len(table) >= 12
    figs = relation_figures(source.population, summary)
    assert {"shmr", "size_mass", "ml_colour", "tully_fisher", "fdm_rhalf"} <= set(figs)
    for fig in figs.values():
        assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()
    deg = degeneracy_table(summary, min_count=3)
    assert (deg["std_log_ml_r"] > 0).all()
