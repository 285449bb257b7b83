"""The mock's cold gas: an HI disc sized by the HI size-mass relation, an H2 disc that follows
the stars and carries the star formation."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.sources.mock import MockSource
from analysis_lib.sources.mock import relations as rel
from analysis_lib.sources.mock.population import HE_FACTOR


def test_wang16_radius_follows_the_published_fit():
    # log D_HI = 0.506 log M_HI - 3.293 (kpc): 1e10 Msun of HI -> D = 10^1.767 kpc
    assert rel.wang16_hi_radius_kpc(1e10) == pytest.approx(0.5 * 10**1.767, rel=1e-9)
    assert rel.wang16_hi_radius_kpc(1e9) < rel.wang16_hi_radius_kpc(1e10)


@pytest.fixture(scope="module")
def population():
    return MockSource(load_config("smoke", {"data.n_galaxies": 40})).population


def test_hi_disc_reaches_one_msun_per_pc2_at_the_hi_radius(population):
    """Sigma_HI(R_HI) of the exponential disc is ~1 Msun/pc^2 (hydrogen), as Wang+2016 define
    R_HI; the mass-size relation fixes it to within the relation's implied mean density."""
    with_hi = population[population["m_hi"] > 0]
    m_h = with_hi["m_hi"] / HE_FACTOR
    r_hi = rel.wang16_hi_radius_kpc(m_h)
    rs = with_hi["hi_rd_kpc"]
    sigma_at_r_hi = m_h / (2 * np.pi * rs**2) * np.exp(-r_hi / rs) / 1e6  # Msun/pc^2
    assert np.all((sigma_at_r_hi > 0.7) & (sigma_at_r_hi < 1.5))
    central = with_hi["m_hi"] / (2 * np.pi * rs**2) / 1e6
    assert np.all((central > 3) & (central < 15))  # near the observed HI saturation


def test_gas_particles_split_into_phases_and_sfr_follows_h2(population):
    source = MockSource(load_config("smoke", {"data.n_galaxies": 40}))
    late = population.index[~population["early"]][:3]
    for gid in late:
        g = source.load(int(gid))
        row = population.loc[gid]
        phase = g.gas.extra["phase"]
        assert set(np.unique(phase)) <= {0, 1}
        assert g.gas.mass.sum() + g.meta["m_gas_dropped"] == pytest.approx(row["m_gas"])
        sfr = g.gas.extra["sfr"]
        assert np.all(sfr[phase == 0] == 0)
        if (phase == 1).any():
            assert sfr.sum() == pytest.approx(g.meta["sfr_100myr"])
        radius = np.linalg.norm(g.gas.pos, axis=1)
        if (phase == 0).sum() > 10 and (phase == 1).sum() > 10:
            assert np.median(radius[phase == 0]) > np.median(radius[phase == 1])


def test_dust_table_measures_edge_on_minus_face_on_of_late_types():
    import pandas as pd

    from analysis_lib.sources.mock.validation import (
        dust_figure,
        dust_table,
        screen_reddening_ratio,
    )

    rng = np.random.default_rng(0)
    inc = np.degrees(np.arccos(rng.uniform(0, 1, 4000)))
    late = rng.uniform(size=4000) < 0.5
    a_r = np.where(late, 0.2 + 0.8 * (inc / 90) ** 4, 0.05)
    table = pd.DataFrame({"galaxy_type": np.where(late, 0, 1), "inclination_deg": inc,
                          "A_r": a_r, "A_g": 1.2 * a_r,
                          "g_r": rng.normal(0.5, 0.1, 4000)})  # stellar colours, not dust
    dust = dust_table(table).set_index("check")["mock [mag]"]
    dim = dust["r dimming edge-on minus face-on, late types"]
    face, edge = 0.2 + 0.8 * (np.array([15.0, 85.0]) / 90) ** 4
    assert dim == pytest.approx(edge - face, abs=0.05)
    assert dust["E(g-r) reddening edge-on minus face-on, late types"] == \
        pytest.approx(0.2 * dim, abs=0.01)
    assert dust["E(g-r) / A_r of edge-on late types (greyness; no unit)"] == pytest.approx(0.2)
    assert dust["median A_r, early types (all inclinations)"] == pytest.approx(0.05)
    # a foreground screen of the library's dust: A_g/A_r from CCM and the scattering factors
    assert 0.3 < screen_reddening_ratio() < 0.5
    fig = dust_figure(table)
    assert "inclination" in fig.axes[0].get_xlabel()


def test_gas_metallicity_follows_the_curti20_relation(population):
    """Gas Z at R_e from the Curti+2020 MZR (near solar at 1e10.5, saturating above), with its
    small scatter; stellar Z keeps the skewed Gallazzi+2005 range (few stars above +0.3 dex)."""
    assert rel.curti20_gas_log_z(1e9) < rel.curti20_gas_log_z(1e10) < rel.curti20_gas_log_z(1e11)
    assert abs(rel.curti20_gas_log_z(1e11)) < 0.15
    offset = population["log_zgas_zsun"] - rel.curti20_gas_log_z(population["m_star"])
    assert abs(offset.mean()) < 0.05 and 0.03 < offset.std() < 0.15
    med, below, above = rel.gallazzi05_logz_split(population["m_star"])
    assert np.all(below > above)  # the metal-poor tail is the longer one
    assert population["log_z_zsun"].max() < 0.6


def test_early_types_follow_atlas3d_gas_detection_rates():
    pop = MockSource(load_config("smoke", {"data.n_galaxies": 400})).population
    early, late = pop[pop["early"]], pop[~pop["early"]]
    assert len(early) > 100
    assert (late["m_h2"] > 0).all() and (late["m_hi"] > 0).all()
    assert (early["m_h2"] > 0).mean() == pytest.approx(rel.ATLAS3D_H2_DETECTED, abs=0.08)
    assert (early["m_hi"] > 0).mean() == pytest.approx(rel.ATLAS3D_HI_DETECTED, abs=0.08)
    detected = early[early["m_h2"] > 0]
    log_f = np.log10(detected["m_h2"] / HE_FACTOR / detected["m_star"])
    assert log_f.median() == pytest.approx(rel.ATLAS3D_H2_LOG_FRACTION[0], abs=0.25)


def test_stellar_metallicity_percentiles_follow_gallazzi05_table():
    """The drawn log Z/Zsun reproduce Gallazzi+2005 Table 2's P16 / P50 / P84 per mass bin
    (10.51: -0.41 / -0.01 / 0.20; 11.11: -0.09 / 0.10 / 0.25, BC03 scale Zsun = 0.02)."""
    from analysis_lib.sources.mock.population import draw_population

    pop = draw_population(load_config("smoke", {"data.n_galaxies": 8000}))
    # tolerance ~2x the sampling error of the percentiles (~1400 and ~200 galaxies per bin)
    for centre, (p16, p50, p84), tol in ((10.51, (-0.41, -0.01, 0.20), 0.03),
                                         (11.11, (-0.09, 0.10, 0.25), 0.06)):
        sel = np.abs(pop["log_mstar"] - centre) < 0.08
        assert sel.sum() > 150
        got = np.percentile(pop.loc[sel, "log_z_zsun"], [16, 50, 84])
        np.testing.assert_allclose(got, [p16, p50, p84], atol=tol)
