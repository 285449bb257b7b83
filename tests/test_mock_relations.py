"""Published relations (sizes, gas, dark-matter references), the halo-response knob and the
dark-matter validation functions of the mock universe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_lib.config import load_config
from analysis_lib.sources.mock import relations as rel
from analysis_lib.sources.mock import validation as val
from analysis_lib.sources.mock.mass_model import halo_response_parameters
from analysis_lib.sources.mock.population import draw_population

MASSES = np.logspace(9.5, 12.0, 60)


def _pop(n: int = 300, *overrides: str):
    cfg = load_config("smoke", [f"data.n_galaxies={n}", *overrides])
    return draw_population(cfg), cfg


def test_every_size_relation_says_whether_it_is_of_light_or_mass():
    assert set(rel.SIZE_RELATIONS) == set(rel.SIZE_RELATION_IS_LIGHT)
    assert not rel.SIZE_RELATION_IS_LIGHT[load_config("smoke")["mock"]["size_relation"]], \
        "the default size relation must give half-MASS radii (issue 12)"


@pytest.mark.parametrize("early", [True, False])
def test_half_mass_sizes_are_szomoru_times_shen(early):
    e = np.full(len(MASSES), early)
    light, sig_l = rel.shen03_size(MASSES, e)
    mass, sig_m = rel.shen03_mass_size(MASSES, e)
    assert np.allclose(mass / light, rel.SZOMORU13_MASS_TO_LIGHT_SIZE)
    assert np.allclose(sig_m, sig_l)


def test_tng100_sizes_grow_with_mass_and_quenched_are_smaller():
    """Genel+2018 (abstract): quenched TNG100 galaxies are smaller than star-forming ones at
    fixed mass; sizes grow with mass, continuously through the table's nodes and ends."""
    m = MASSES[MASSES <= 10**11.8]  # the sample's range (the end slopes cross beyond it)
    r_sf = rel.tng100_size(m, np.zeros(len(m), bool))[0]
    r_q = rel.tng100_size(m, np.ones(len(m), bool))[0]
    assert np.all(np.diff(np.log10(r_sf)) > 0) and np.all(np.diff(np.log10(r_q)) > 0)
    assert np.all(r_q < r_sf)
    assert np.max(np.abs(np.diff(np.log10(r_sf)))) < 0.05  # no jump at nodes or ends


def test_drawn_sizes_follow_the_chosen_relation():
    for name in ("shen03_mass", "tng100"):
        pop, _ = _pop(400, f"mock.size_relation={name}")
        for early in (True, False):
            sel = pop["early"] == early
            med = rel.SIZE_RELATIONS[name](pop.loc[sel, "m_star"], np.full(sel.sum(), early))[0]
            offset = np.median(np.log10(pop.loc[sel, "re_kpc"] / med))
            assert abs(offset) < 0.06, (name, early, offset)


def test_gas_relations_decline_with_mass_and_stay_in_the_tables_range():
    hi = rel.xgass_log_hi_fraction(MASSES)
    h2 = rel.xcoldgass_log_h2_fraction(MASSES)
    assert np.all(np.diff(hi) <= 0)
    # the published H2 table is not monotonic bin to bin (-1.12 at 10^9.65, -1.10 at 10^9.88)
    # but falls by ~0.6 dex from 10^10 to 10^11.1
    assert h2[MASSES > 10**11.1].max() < h2[MASSES < 10**10].min() - 0.4
    assert hi.max() <= -0.242 + 1e-12 and hi.min() >= -1.589 - 1e-12
    # xCOLD GASS main-sequence galaxies hold less H2 than HI at every mass (xGASS: total gas
    # reservoirs remain HI-dominated)
    assert np.all(h2 < hi + 0.35)


def test_lovell_curve_is_above_half_with_a_minimum_near_milky_way_mass():
    """What the (verified) Lovell+2018 abstract says of TNG100's f_DM(<r_half)."""
    lm = np.linspace(10.0, 11.5, 61)
    f = rel.lovell18_fdm_rhalf(10**lm)
    assert f.min() >= rel.LOVELL18_FDM_RHALF_MIN
    assert 10.3 <= lm[np.argmin(f)] <= 10.9
    assert f[0] > f.min() and f[-1] > f.min()


def test_curti20_has_the_published_form_and_coefficients():
    """Curti+2020 MZR (coefficients checked against public transcriptions, issue 12): at the
    turnover mass 12 + log O/H = Z0 - (gamma / beta) log 2, at high mass it saturates at Z0,
    and below M0 it rises with slope gamma."""
    z0, log_m0, gamma, beta = 8.793, 10.02, 0.28, 1.2
    at_m0 = rel.curti20_gas_log_z(10**log_m0) + rel.SOLAR_LOG_OH
    assert at_m0 == pytest.approx(z0 - gamma / beta * np.log10(2.0), abs=1e-9)
    assert rel.curti20_gas_log_z(1e13) + rel.SOLAR_LOG_OH == pytest.approx(z0, abs=2e-3)
    low = rel.curti20_gas_log_z(np.array([10**7.5, 10**8.0]))
    assert (low[1] - low[0]) / 0.5 == pytest.approx(gamma, abs=0.01)


def test_zahid16_is_the_broken_power_law_with_its_break():
    lm = np.array([9.76, 10.26, 10.76])
    ls = rel.zahid16_log_sigma(10**lm)
    assert ls[1] == pytest.approx(2.073)
    assert (ls[1] - ls[0]) / 0.5 == pytest.approx(0.403)
    assert (ls[2] - ls[1]) / 0.5 == pytest.approx(0.293)


def test_moustakas13_quiescent_fraction_is_the_published_count_ratio():
    """Moustakas+2013 SDSS bins (authors' data file): ngalQ / ngal at the bin centres."""
    for log_m, n_q, n_all in ((9.5, 316, 2106), (10.5, 4460, 10901), (11.0, 8646, 13361),
                              (11.5, 1258, 1398)):
        assert rel.moustakas13_quiescent_fraction(10**log_m) == pytest.approx(n_q / n_all,
                                                                              abs=1e-9)
    f = rel.moustakas13_quiescent_fraction(10 ** np.linspace(9.8, 11.6, 19))
    assert np.all(np.diff(f) > 0)  # rises monotonically over the well-populated range


def test_bell03_ml_is_shifted_from_diet_salpeter_to_chabrier():
    """-0.093 dex = +0.15 (diet Salpeter -> Salpeter, Bell+2003) - log10(1.75) (Salpeter ->
    Chabrier, Gallazzi+2008), both as quoted in moustakas/impro im_convert_imf.pro."""
    gr = np.array([0.3, 0.6, 0.9])
    shift = rel.bell03_log_ml_r(gr) - (-0.306 + 1.097 * gr)
    assert np.allclose(shift, 0.15 - np.log10(1.75), atol=5e-4)


def test_atlas3d_hi_detection_rate_is_the_serra12_count_within_the_abstracts_range():
    """53 of the 166 ATLAS3D galaxies observed in HI are detected (Serra+2012 Table B1); the
    abstract's ~10 % (Virgo) and ~40 % (outside Virgo) bracket the whole-sample rate."""
    assert rel.ATLAS3D_HI_DETECTED == pytest.approx(53 / 166)
    assert 0.10 < rel.ATLAS3D_HI_DETECTED < 0.40
    # detected H2 reservoirs: Young+2014 (abstract) 'up to M(H2)/M* ~ 0.01' for massive red
    # early types, i.e. log -2 lies within the drawn distribution's upper half
    mean, sd = rel.ATLAS3D_H2_LOG_FRACTION
    assert mean < -2.0 < mean + sd


def test_heavy_imf_uses_the_checked_posacki15_coefficients():
    """galaxy.imf_alpha must use the Posacki+2015 coefficients recorded (and checked) here,
    moved from Salpeter to Chabrier with the recorded mass factor, floored at 1."""
    from analysis_lib.sources.mock.galaxy import imf_alpha

    for sigma in (90.0, 150.0, 200.0, 320.0):
        log_salp = (rel.POSACKI15_IMF_SLOPE * np.log10(sigma / 200.0)
                    + rel.POSACKI15_IMF_INTERCEPT)
        expected = 10 ** max(log_salp - np.log10(rel.MD14_CHABRIER_OVER_SALPETER_MASS), 0.0)
        assert imf_alpha(sigma) == pytest.approx(expected, rel=1e-9), sigma


def test_halo_response_knob():
    assert halo_response_parameters("gnedin04") == (0.85, 0.8)
    assert halo_response_parameters("blumenthal86") == (1.0, 1.0)
    with pytest.raises(ValueError, match="mock.halo_response 'x' unknown"):
        halo_response_parameters("x")


def test_contraction_raises_central_dark_matter_in_order_of_response_strength():
    """No contraction < Gnedin+2004 < Blumenthal+1986, galaxy by galaxy."""
    pop, cfg = _pop(60)
    fdm = {}
    for name, over in (("none", {"contraction": False}),
                       ("gnedin04", {"contraction": True, "halo_response": "gnedin04"}),
                       ("blumenthal86", {"contraction": True, "halo_response": "blumenthal86"})):
        fdm[name] = val.population_mass_fractions(pop, {**cfg["mock"], **over})["fdm_rhalf"]
    assert np.all(fdm["gnedin04"] > fdm["none"])
    assert np.all(fdm["blumenthal86"] > fdm["gnedin04"])


def test_population_fractions_equal_the_built_galaxys_truth():
    from analysis_lib.sources.mock.galaxy import build_galaxy

    pop, cfg = _pop(2, "mock.universe=tng_like")
    frame = val.population_mass_fractions(pop, cfg["mock"])
    g = build_galaxy(pop.iloc[0], cfg)
    assert frame["fdm_rhalf"].iloc[0] == pytest.approx(g.meta["fdm_rhalf_model"], rel=1e-6)
    assert frame["r_half_kpc"].iloc[0] == pytest.approx(g.meta["r_half_3d_model"], rel=1e-6)


def test_fractions_are_physical_and_typed():
    pop, cfg = _pop(120)
    f = val.population_mass_fractions(pop, cfg["mock"])
    assert len(f) == 120
    assert f["fdm_rhalf"].between(0, 1).all() and f["fdm_re"].between(0, 1).all()
    late = ~f["early"]
    assert f.loc[late, "disc_fraction_2p2rd"].between(0, 1).all()
    assert f.loc[f["early"], "disc_fraction_2p2rd"].isna().all()


def test_median_by_mass_and_dataset_fractions():
    frame = pd.DataFrame({"log_mstar": [10.1, 10.1, 10.2, 10.6, 10.6, 10.7, 11.9],
                          "fdm_rhalf": [0.1, 0.3, 0.2, 0.5, 0.7, 0.6, 0.9]})
    m = val.median_by_mass(frame, "fdm_rhalf", np.array([10.0, 10.5, 11.0]))
    assert list(m["n"]) == [3, 3] and np.allclose(m["median"], [0.2, 0.6])
    table = pd.DataFrame({"galaxy_id": [0, 0, 0, 1, 1, 1], "galaxy_type": [1, 1, 1, 0, 0, 0],
                          "log_mstar": [10.0] * 3 + [10.5] * 3,
                          "log_fdm": [np.log10(0.4)] * 3 + [np.log10(0.2)] * 3,
                          "rhalf_kpc": [3.0] * 3 + [5.0] * 3})
    d = val.dataset_mass_fractions(table)
    assert list(d["galaxy_id"]) == [0, 1] and list(d["early"]) == [True, False]
    assert np.allclose(d["log_mstar"], [10.0 + np.log10(2), 10.5 + np.log10(2)])
    assert np.allclose(d["fdm_rhalf"], [0.4, 0.2])
    with pytest.raises(ValueError, match="log_fdm"):
        val.dataset_mass_fractions(table.drop(columns="log_fdm"))


def test_comparison_table_and_figures():
    import matplotlib

    matplotlib.use("Agg")
    frames, pops = {}, {}
    for name in ("observed", "tng_like"):
        pops[name], cfg = _pop(150, f"mock.universe={name}")
        frames[name] = val.population_mass_fractions(pops[name], cfg["mock"])
    table = val.fdm_comparison_table(frames)
    assert set(table["universe"]) == {"observed", "tng_like"}
    assert np.allclose(table["minus_tng100"], table["fdm_rhalf"] - table["fdm_rhalf_tng100"])
    # contracted haloes and larger sizes hold more central dark matter than the observed ones
    both = table.pivot(index="log_mstar", columns="universe", values="fdm_rhalf").dropna()
    assert (both["tng_like"] > both["observed"]).all()
    fig = val.fdm_figure(frames)
    assert len(fig.axes) == 3 and all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    summary = pd.DataFrame({"galaxy_type": ["early", "late"] * 3, "log_mstar": [10.2] * 6,
                            "sigma_e_kms": [150.0] * 6, "v80_kms": [180.0] * 6,
                            "g_minus_r": [0.7, 0.5] * 3, "log_ml_r": [0.3, 0.1] * 3})
    fig = val.universe_relation_figure(pops, {"observed": summary})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 11 and all(ax.get_xlabel() and ax.get_ylabel() for ax in visible)
