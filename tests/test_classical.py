"""Classical estimators (Wolf 2010, virial beta = 5), LightGBM by radius, method x radius."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.models import classical
from analysis_lib.results import ResultsStore
from tests.conftest import make_synthetic_dataset

G = 4.30091727e-6  # kpc (km/s)^2 / Msun


def test_estimators_follow_their_published_formulas():
    assert classical.gravitational_constant() == pytest.approx(G, rel=1e-6)
    # Wolf: 3 sigma^2 (4/3 R_e) / G = 4 sigma^2 R_e / G (their eq. 2's second form)
    sigma, r_e = np.array([100.0, 250.0]), np.array([2.0, 5.0])
    np.testing.assert_allclose(classical.wolf_log_mass(sigma, r_e),
                               np.log10(4 * sigma**2 * r_e / G))
    np.testing.assert_allclose(classical.virial_log_mass(sigma, r_e),
                               np.log10(5 * sigma**2 * r_e / G))
    # a 200 km/s, 5 kpc galaxy: 5 sigma^2 R_e / G = 2.3e11 Msun
    assert 10 ** classical.virial_log_mass([200.0], [5.0])[0] == pytest.approx(2.325e11, rel=1e-3)
    assert np.isnan(classical.wolf_log_mass([np.nan], [1.0])[0])
    assert np.isnan(classical.virial_log_mass([100.0], [0.0])[0])


def _dataset(path, with_columns: bool = True):
    """The synthetic fixture plus the classical columns, with truths set so that Wolf is exact
    at its own radius and the virial mass is 0.2 dex above M_tot(< R_half)."""
    make_synthetic_dataset(path, n_galaxies=30)
    if not with_columns:
        return path
    with h5py.File(path, "a") as f:
        n = len(f["meta/galaxy_id"])
        rng = np.random.default_rng(3)
        sigma = 10 ** rng.uniform(1.8, 2.4, n)
        r_e = 10 ** rng.uniform(0.0, 0.8, n)
        f["meta/sigma_fov"] = sigma
        f["meta/sigma_re"] = sigma
        f["meta/r_e_kpc"] = r_e
        f["targets/log_mtot_wolf"] = np.log10(4 * sigma**2 * r_e / G)
        f["targets/log_mtot"][...] = np.log10(5 * sigma**2 * r_e / G) - 0.2
        f["targets/log_mtot_0p5rhalf"] = f["targets/log_mtot"][...] - 0.3
        f["targets/log_mtot_2rhalf"][...] = f["targets/log_mtot"][...] + 0.25
        f["targets/log_mstar_0p5rhalf"] = f["targets/log_mstar"][...] - 0.3
    return path


@pytest.fixture
def cfg():
    return load_config("smoke", {"gbdt.num_boost_round": 20, "gbdt.num_threads": 1,
                                 "gbdt.exclude_kinetic_bt_above": 10.0})


def test_estimators_are_stored_and_scored_on_the_cnn_test_galaxies(tmp_path, cfg):
    from analysis_lib.dataset import open_dataset
    from analysis_lib.dataset.splits import cnn_split

    path = _dataset(tmp_path / "d.h5")
    store = ResultsStore(tmp_path / "results")
    paths = classical.run_classical_estimators(cfg, path, store)
    assert "wolf" in paths["wolf"].name and "virial" in paths["virial"].name
    wolf = store.load("classical", paths["wolf"].name, "smoke")
    virial = store.load("classical", paths["virial"].name, "smoke")
    table = open_dataset(path).table
    test_rows = np.sort(cnn_split(table, cfg)["test"])
    assert sorted(wolf.predictions["row"]) == test_rows.tolist()
    own = wolf.metrics["targets"]["log_mtot_wolf"]["all"]
    assert abs(own["bias"]) < 1e-9 and own["sigma"] < 1e-9
    at_rhalf = virial.metrics["targets"]["log_mtot"]["all"]
    assert at_rhalf["bias"] == pytest.approx(0.2, abs=1e-9)
    at_2 = virial.metrics["targets"]["log_mtot_2rhalf"]["all"]
    assert at_2["bias"] == pytest.approx(-0.05, abs=1e-9)
    assert set(virial.metrics["targets"]["log_mtot"]) == {"all", "early", "late"}


def test_radius_table_and_figure_cover_every_method_on_the_same_galaxies(tmp_path, cfg):
    path = _dataset(tmp_path / "d.h5")
    store = ResultsStore(tmp_path / "results")
    classical.run_classical_estimators(cfg, path, store)
    lgbm = classical.run_lightgbm_radii(cfg, path, store)
    assert classical.run_lightgbm_radii(cfg, path, store) == lgbm  # stored: reused
    runs = classical.default_runs(cfg, store)
    assert set(runs) == {"Wolf+2010", "virial (beta=5)", "LightGBM"}
    # a method predicting only some galaxies restricts everyone to those galaxies
    partial = store.load("classical", "wolf2010", "smoke")
    partial.predictions = partial.predictions.iloc[:6]
    table = classical.method_radius_table({**runs, "subset": partial})
    assert set(table["n"][table.group == "all"]) == {6}
    full = classical.method_radius_table(runs)
    assert (full["n"][full.group == "all"] > 6).all()
    lg = full[(full.method == "LightGBM") & (full.group == "all")]
    assert set(lg.radius_rhalf) == {0.5, 1.0, 2.0} and set(lg.family) == {"mtot", "mstar"}
    wolf_own = full[(full.target == "log_mtot_wolf") & (full.group == "all")]
    assert wolf_own.radius_label.tolist() == ["4/3 R_e (Wolf)"]
    fig = classical.method_radius_figure(full)
    ax0, ax1 = fig.axes[:2]
    assert "R_{1/2}" in ax0.get_xlabel() and "[dex]" in ax0.get_ylabel()
    assert "[dex]" in ax1.get_ylabel()


def test_old_datasets_get_one_clear_error(tmp_path, cfg):
    path = _dataset(tmp_path / "old.h5", with_columns=False)
    with pytest.raises(ValueError, match="rebuild it"):
        classical.run_classical_estimators(cfg, path, ResultsStore(tmp_path / "r"))


def test_pipeline_columns_measure_an_isotropic_plummer_sphere():
    """The map-based columns against the particles and the Plummer sphere's closed forms:
    R_e = a (= r_1/2 / 1.305), <v_rms^2> over the field within 6 % of the luminosity-weighted
    LOS second moment of all the stars (the field of 3 R_half either side misses the outer,
    colder light), and a dispersion falling outwards (sigma within R_e above the field's)."""
    from analysis_lib.observe import observe_galaxy
    from analysis_lib.observe.analytic import plummer_galaxy

    galaxy = plummer_galaxy(6000, a=2.0, seed=5)
    recs = observe_galaxy(galaxy, load_config("smoke"))
    lum = galaxy.stars.lum["r"]
    for r in recs:
        v_los = galaxy.stars.vel[:, r["projection"]]
        global_rms = np.sqrt(np.sum(lum * v_los**2) / lum.sum())
        assert r["sigma_fov"] == pytest.approx(global_rms, rel=0.06)
        assert r["log_mtot_0p5rhalf"] < r["log_mtot"] < r["log_mtot_2rhalf"]
        assert r["log_mstar_0p5rhalf"] == pytest.approx(r["log_mtot_0p5rhalf"])  # stars only
        assert r["r_e_kpc"] == pytest.approx(2.0, rel=0.05)
        assert r["rhalf_kpc"] == pytest.approx(1.305 * 2.0, rel=0.05)
        assert 0 < r["sigma_fov"] < r["sigma_re"]
        # truth of Wolf's radius: the Plummer mass inside 4/3 R_e
        x = 4.0 / 3.0 * r["r_e_kpc"] / 2.0
        plummer = np.log10(1e10 * x**3 / (1 + x**2) ** 1.5)
        assert r["log_mtot_wolf"] == pytest.approx(plummer, abs=0.03)
