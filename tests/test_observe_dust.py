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
