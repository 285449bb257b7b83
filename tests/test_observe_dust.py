"""Dust: the metal column in front of each star, and what it does to the images."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.observe import dust, observe_galaxy
from analysis_lib.observe.analytic import cold_disc_galaxy, gas_disc
from analysis_lib.particles import Gas


def _cfg(**observe):
    over = {"observe.image_size": 60, "observe.image_sizes": [60, 30]}
    over.update({f"observe.{k}": v for k, v in observe.items()})
    return load_config("smoke", over)


def test_metal_column_equals_brute_force():
    from analysis_lib.observe.images import projected_kernel_integral, projected_kernel_table

    rng = np.random.default_rng(1)
    sa, sb, sd = rng.uniform(-3, 3, (3, 400))
    ga, gb, gd = rng.uniform(-3.5, 3.5, (3, 1500))
    w = rng.uniform(0.5, 2.0, 1500)
    h = rng.uniform(0.2, 1.5, 1500)
    hw = 2.5
    got = dust.metal_column(sa, sb, sd, ga, gb, gd, w, h, hw)
    table = projected_kernel_table()
    u_grid = np.linspace(0, 1, len(table))
    u = ((sa[:, None] - ga[None]) ** 2 + (sb[:, None] - gb[None]) ** 2) / h[None] ** 2
    kern = np.where(u < 1, np.interp(np.minimum(u, 1), u_grid, table), 0.0)
    front = gd[None] > sd[:, None]
    want = (front * kern * w[None] / (h[None] ** 2 * projected_kernel_integral())).sum(axis=1)
    infield = (np.abs(sa) < hw) & (np.abs(sb) < hw)
    want[~infield] = 0.0
    assert np.allclose(got, want, rtol=1e-9, atol=1e-12)
    assert (want > 0).mean() > 0.5 and (~infield).sum() > 10


def test_band_ratios_redden():
    a_g = dust.ccm_extinction_ratio(dust.BAND_WAVELENGTH_ANGSTROM["g"])
    a_r = dust.ccm_extinction_ratio(dust.BAND_WAVELENGTH_ANGSTROM["r"])
    assert dust.ccm_extinction_ratio(5495.0) == pytest.approx(1.0, abs=0.01)  # V band
    assert a_g > 1.0 > a_r > 0.5
    tau = np.array([0.0, 0.5, 2.0])
    assert np.all(dust.transmission(tau, "g") <= dust.transmission(tau, "r"))
    assert dust.transmission(tau, "r")[0] == 1.0


def test_column_units_solar_sheet():
    """A solar-metallicity sheet of 1 Msun/pc^2 in front of a star: tau_V = 0.76 x 1.2486e20 /
    2.1e21 (the SPH column of a regular lattice equals its surface density)."""
    side = np.linspace(-1, 1, 201)
    xx, yy = np.meshgrid(side, side)
    n = xx.size
    pos = np.column_stack([xx.ravel(), yy.ravel(), np.ones(n)])
    area = (2.0 + side[1] - side[0]) ** 2
    gas = Gas(pos=pos, vel=np.zeros((n, 3)), mass=np.full(n, 1e6 * area / n),
              metallicity=np.full(n, 0.0127))
    h = dust.gas_support(gas, 32)
    stars = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.0], [0.0, 0.0, 2.0]])
    tau = dust.optical_depth_v(stars[:, 0], stars[:, 1], stars[:, 2], gas, pos[:, 0], pos[:, 1],
                               pos[:, 2], h, half_width=1.0)
    expected = 0.76 * 1.2486e20 / 2.1e21
    assert tau[:2] == pytest.approx([expected, expected], rel=0.01)
    assert tau[2] == 0.0  # in front of the sheet
    metal_poor = Gas(pos=gas.pos, vel=gas.vel, mass=gas.mass, metallicity=gas.metallicity / 10)
    tau_poor = dust.optical_depth_v(stars[:, 0], stars[:, 1], stars[:, 2], metal_poor,
                                    pos[:, 0], pos[:, 1], pos[:, 2], h, half_width=1.0)
    assert tau_poor[0] == pytest.approx(tau[0] * 10**-1.6, rel=1e-6)


def test_no_gas_means_no_dust():
    g = cold_disc_galaxy(2000, seed=1)
    with_dust = observe_galaxy(g, _cfg(dust=True))
    without = observe_galaxy(g, _cfg(dust=False))
    for a, b in zip(with_dust, without, strict=True):
        assert np.array_equal(a["image_r_60"], b["image_r_60"])
        assert np.array_equal(a["image_g_30"], b["image_g_30"])
        assert a["M_r"] == b["M_r"]


def test_edge_on_gas_disc_dims_and_reddens_more_than_face_on():
    g = cold_disc_galaxy(4000, seed=2)
    g.gas = gas_disc(4000, 3e9, 3.0, 0.15, seed=2)
    clean = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=False))}
    dusty = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=True))}
    dim = {p: clean[p]["log_lum_r_fov"] - dusty[p]["log_lum_r_fov"] for p in (0, 2)}
    redden = {p: dusty[p]["g_r"] - clean[p]["g_r"] for p in (0, 2)}
    assert dim[2] > 0.01 and redden[2] > 0  # face-on (z) still attenuated
    assert dim[0] > dim[2] + 0.1  # edge-on (x) dims much more
    assert redden[0] > redden[2]
    assert dusty[0]["image_g_60"].sum() / dusty[0]["image_r_60"].sum() < \
        clean[0]["image_g_60"].sum() / clean[0]["image_r_60"].sum()


def test_scattering_factor_follows_calzetti_form_with_draine_grains():
    """h sqrt(1 - w) + (1 - h)(1 - w) with w, g of the MW R_V = 3.1 grains: ~0.44 in g and r."""
    for band in ("g", "r"):
        w, h = dust.BAND_ALBEDO[band], 1.0 - dust.BAND_ASYMMETRY[band]
        factor = dust.scattering_factor(band)
        assert factor == pytest.approx(h * np.sqrt(1 - w) + (1 - h) * (1 - w))
        assert 0.4 < factor < 0.5
    tau = np.array([0.0, 1.0, 3.0])
    with_scattering = dust.transmission(tau, "r")
    pure = dust.transmission(tau, "r", scattering=False)
    assert with_scattering[0] == pure[0] == 1.0
    assert np.all(with_scattering[1:] > pure[1:])
    factor = dust.scattering_factor("r")
    assert np.log(with_scattering[2]) == pytest.approx(np.log(pure[2]) * factor)
    with pytest.raises(ValueError, match="band 'u'"):
        dust.scattering_factor("u")


def test_attenuation_column_is_the_dimming_of_the_aperture_light():
    g = cold_disc_galaxy(4000, seed=2)
    g.gas = gas_disc(4000, 3e9, 3.0, 0.15, seed=2)
    clean = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=False))}
    dusty = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=True))}
    for p in clean:
        assert clean[p]["A_r"] == 0.0
        assert dusty[p]["A_r"] == pytest.approx(dusty[p]["M_r"] - clean[p]["M_r"], abs=1e-9)
        reddening = dusty[p]["g_r"] - clean[p]["g_r"]
        assert dusty[p]["A_g"] - dusty[p]["A_r"] == pytest.approx(reddening, abs=1e-9)
        assert reddening > 0  # the same column dims g more than r
    assert dusty[0]["A_r"] > dusty[2]["A_r"] > 0  # edge-on (x) more than face-on (z)
    no_scatter = {r["projection"]: r for r in observe_galaxy(
        g, _cfg(dust=True, dust_scattering=False))}
    assert no_scatter[0]["A_r"] > dusty[0]["A_r"]


def _sheet_gas(**extra):
    side = np.linspace(-1, 1, 201)
    xx, yy = np.meshgrid(side, side)
    n = xx.size
    pos = np.column_stack([xx.ravel(), yy.ravel(), np.ones(n)])
    area = (2.0 + side[1] - side[0]) ** 2
    return Gas(pos=pos, vel=np.zeros((n, 3)), mass=np.full(n, 1e6 * area / n),
               metallicity=np.full(n, 0.0127), extra={k: np.full(n, v) for k, v in extra.items()})


def _tau_at_centre(gas):
    h = dust.gas_support(gas, 32)
    p = gas.pos
    return dust.optical_depth_v(np.zeros(1), np.zeros(1), np.zeros(1), gas, p[:, 0], p[:, 1],
                                p[:, 2], h, half_width=1.0)[0]


def test_only_neutral_gas_makes_dust():
    """The column weighs each gas element by its neutral fraction: ionised gas is dust-free."""
    full = _tau_at_centre(_sheet_gas())
    assert full == pytest.approx(0.76 * 1.2486e20 / 2.1e21, rel=0.01)  # no extra: all neutral
    assert _tau_at_centre(_sheet_gas(neutral_fraction=1.0)) == pytest.approx(full, rel=1e-12)
    assert _tau_at_centre(_sheet_gas(neutral_fraction=0.25)) == pytest.approx(0.25 * full,
                                                                           rel=1e-9)
    assert _tau_at_centre(_sheet_gas(neutral_fraction=0.0)) == 0.0
    with pytest.raises(ValueError, match="neutral_fraction"):
        dust.neutral_fraction(_sheet_gas(neutral_fraction=1.5))


def test_birth_clouds_dim_young_stars_only():
    """Charlot & Fall (2000): tau_V = 0.7 around stars < 10 Myr, scaling as (lambda/5500 A)^-0.7."""
    ages = np.array([0.001, 0.0099, 0.011, 5.0])
    for band in ("g", "r"):
        lam = dust.BAND_WAVELENGTH_ANGSTROM[band]
        tau = dust.birth_cloud_tau(ages, band)
        np.testing.assert_allclose(tau[:2], 0.7 * (lam / 5500.0) ** -0.7)
        assert np.all(tau[2:] == 0.0)
    assert dust.birth_cloud_tau(ages, "g")[0] > dust.birth_cloud_tau(ages, "r")[0]  # reddens
    tau_v = np.array([0.3, 0.3, 0.3, 0.3])
    with_clouds = dust.star_transmission(tau_v, ages, "r")
    without = dust.star_transmission(tau_v, ages, "r", birth_clouds=False)
    np.testing.assert_allclose(without, dust.transmission(tau_v, "r"))
    np.testing.assert_allclose(with_clouds[2:], without[2:])
    np.testing.assert_allclose(with_clouds[:2], without[:2] * np.exp(-dust.birth_cloud_tau(
        ages[:2], "r")))


def test_birth_clouds_in_the_pipeline():
    g = cold_disc_galaxy(4000, seed=3)
    g.gas = gas_disc(4000, 3e9, 3.0, 0.15, seed=3)
    g.stars.age_gyr[:] = 5.0
    old = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=True))}
    old_off = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=True,
                                                                   dust_birth_clouds=False))}
    g.stars.age_gyr[::4] = 0.005  # a quarter of the light is 5 Myr old
    young = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=True))}
    young_off = {r["projection"]: r for r in observe_galaxy(g, _cfg(dust=True,
                                                                     dust_birth_clouds=False))}
    for p in old:
        assert old[p]["A_r"] == old_off[p]["A_r"]  # no young stars, no birth clouds
        assert young_off[p]["A_r"] == pytest.approx(old[p]["A_r"], abs=1e-12)
        assert young[p]["A_r"] > young_off[p]["A_r"] + 0.05
        assert young[p]["A_g"] - young[p]["A_r"] > young_off[p]["A_g"] - young_off[p]["A_r"]


def test_tng_gas_carries_its_neutral_fraction():
    """NeutralHydrogenAbundance per cell; star-forming cells fully neutral; wind cells dust-free."""
    from analysis_lib.sources.tng.convert import TngHeader, subhalo_to_galaxy, tng_settings
    from tests import tng_fixtures as fx

    truth = fx.make_truth(seed=4)
    raw = fx.code_arrays(truth)
    hdr = TngHeader.from_attrs(fx.header_attrs(truth), "fixture")
    gal = subhalo_to_galaxy(raw, hdr, 1, origin="fixture", cfg={"tng": tng_settings(None)})
    g, n = truth["gas"], len(truth["gas"]["mass"])
    f = gal.gas.extra["neutral_fraction"]
    sf = g["sfr"] > 0
    assert 0 < sf.sum() < n
    np.testing.assert_allclose(f[:n][sf], 1.0)
    np.testing.assert_allclose(f[:n][~sf], g["neutral_h"][~sf], rtol=1e-6)
    assert np.all(f[n:] == 0.0) and len(f) - n == len(truth["wind"]["mass"])
    np.testing.assert_array_equal(dust.neutral_fraction(gal.gas), f)
    del raw["PartType0"]["NeutralHydrogenAbundance"]  # an old cutout: star-forming gas only
    gal = subhalo_to_galaxy(raw, hdr, 1, origin="fixture", cfg={"tng": tng_settings(None)})
    np.testing.assert_array_equal(gal.gas.extra["neutral_fraction"][:n], sf.astype(float))


def test_mock_gas_is_neutral():
    """The mock's gas is HI and H2 discs: every particle counts fully in the dust column."""
    from analysis_lib.sources.mock import MockSource

    source = MockSource(load_config("smoke", {"data.n_galaxies": 12}))
    late = source.population.index[~source.population["early"]][:1]
    g = source.load(int(late[0]))
    assert g.gas is not None and len(g.gas) > 1
    np.testing.assert_array_equal(dust.neutral_fraction(g.gas), np.ones(len(g.gas)))
    np.testing.assert_array_equal(g.gas.extra["neutral_fraction"], 1.0)


def _ml_colour_rows(reddening_ratio: float, seed: int = 0, n: int = 400):
    """Rows on Bell+2003 (with scatter) attenuated by A_r with E(g-r) = ratio x A_r."""
    import pandas as pd

    from analysis_lib.observe import dust_check as dc

    rng = np.random.default_rng(seed)
    late = np.arange(n) % 2 == 0
    gr0 = np.where(late, rng.uniform(0.2, 0.55, n), rng.uniform(0.65, 0.85, n))
    ml0 = dc.bell03_log_ml_r(gr0) + rng.normal(0, 0.03, n)
    a_r = np.where(late, rng.uniform(0.0, 1.5, n), 0.0)
    table = pd.DataFrame({"galaxy_id": np.arange(n), "projection": 0,
                          "galaxy_type": np.where(late, 0, 1), "A_r": a_r,
                          "A_g": a_r * (1 + reddening_ratio), "g_r": gr0 + reddening_ratio * a_r,
                          "log_ml_r_2rhalf": ml0 + 0.4 * a_r, "log_ml_r": ml0 + 0.5 * a_r})
    return table, gr0, ml0


def test_dust_check_table_measures_correlations_medians_and_the_dust_vector():
    from analysis_lib.observe import dust_check as dc

    screen = dc.screen_reddening_ratio()
    assert 0.35 < screen < 0.45
    along, gr0, ml0 = _ml_colour_rows(screen)
    grey, _, _ = _ml_colour_rows(0.0)
    t_along = dc.ml_colour_table(along).set_index("group")
    t_grey = dc.ml_colour_table(grey).set_index("group")
    # dust-free columns are recovered exactly in the 2 R_half aperture
    full = dc.with_dust_free(along)
    np.testing.assert_allclose(full["g_r_0"], gr0, atol=1e-12)
    np.testing.assert_allclose(full["ml_0"], ml0, atol=1e-12)
    assert t_along.loc["all", "corr_dust_free"] == pytest.approx(
        np.corrcoef(gr0, ml0)[0, 1], abs=1e-12)
    # a screen moves galaxies nearly along Bell's relation; grey dust moves them off it
    assert t_along.loc["all", "corr"] > 0.9
    assert t_grey.loc["all", "corr"] < t_along.loc["all", "corr"] - 0.2
    assert t_along.loc["late", "vector_slope"] == pytest.approx(0.4 / screen)
    assert t_along.loc["late", "E_over_A"] == pytest.approx(screen)
    assert np.isnan(t_grey.loc["late", "vector_slope"])  # no reddening: vertical vector
    late = along["galaxy_type"] == 0
    assert t_along.loc["late", "median_ml"] == pytest.approx(
        along.loc[late, "log_ml_r_2rhalf"].median())
    assert t_along.loc["late", "median_A_r"] == pytest.approx(along.loc[late, "A_r"].median())
    assert t_along.loc["early", "n"] == (~late).sum()
    assert abs(t_along.loc["early", "bell_offset"]) < 0.02  # dust-free early types on Bell
    assert dc.dust_vector(0.5, screen) == pytest.approx((0.5 * screen, 0.2))
    # another aperture needs a dust-free build of the same rows
    with pytest.raises(ValueError, match="intrinsic"):
        dc.ml_colour_table(along, "log_ml_r")
    intrinsic = along.assign(g_r=gr0, log_ml_r=ml0)
    other = dc.ml_colour_table(along, "log_ml_r", intrinsic=intrinsic).set_index("group")
    assert other.loc["all", "corr_dust_free"] == pytest.approx(
        np.corrcoef(gr0, ml0)[0, 1], abs=1e-12)
    with pytest.raises(ValueError, match="every"):
        dc.ml_colour_table(along, "log_ml_r", intrinsic=intrinsic.iloc[:-1])


def test_dust_check_figure_draws_bell_and_the_dust_vectors():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis_lib.observe import dust_check as dc

    table, _, _ = _ml_colour_rows(0.2)
    fig = dc.ml_colour_figure(table, source="synthetic rows", n_arrows=10)
    try:
        ax = fig.axes[0]
        assert "g $-$ r [mag]" in ax.get_xlabel() and "M$_\\odot$/L$_\\odot$" in ax.get_ylabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("Bell+2003" in s for s in labels)
        assert any("mean dust vector" in s for s in labels)
        assert any("screen" in s for s in labels)
        assert "synthetic rows" in ax.get_title()
        assert len([c for c in ax.get_children()
                    if isinstance(c, matplotlib.text.Annotation)]) == 12  # 10 rows + 2 vectors
    finally:
        plt.close(fig)
