"""observe_galaxy: the record schema the dataset expects, and clear errors for bad galaxies."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import DIAGNOSTICS, FEATURES, META, TARGETS, image_names
from analysis_lib.observe import observe_galaxy
from analysis_lib.observe.analytic import cold_disc_galaxy, gas_disc, plummer_galaxy
from analysis_lib.particles import Galaxy, GalaxyInputError, Stars


@pytest.fixture(scope="module")
def cfg():
    return load_config("smoke")


def test_records_have_the_dataset_schema(cfg):
    g = cold_disc_galaxy(3000, seed=1)
    g.gas = gas_disc(1000, 1e9, 3.0, 0.2, seed=1)
    recs = observe_galaxy(g, cfg)
    assert [r["projection"] for r in recs] == [0, 1, 2]
    sizes = cfg["observe"]["image_sizes"]
    m = cfg["observe"]["map_size"]
    for r in recs:
        assert set(TARGETS) | set(FEATURES) | set(META) <= set(r)
        for name in image_names(sizes):
            n = int(name.rsplit("_", 1)[1])
            assert r[name].shape == (n, n) and r[name].dtype == np.float32
        for name in ("vel_map", "sigma_map"):
            assert r[name].shape == (m, m) and r[name].dtype == np.float32
        assert r["map_mask"].dtype == bool
        assert r["galaxy_type"] == 0 and r["galaxy_id"] == g.galaxy_id
        for key in list(TARGETS) + list(FEATURES):
            assert isinstance(r[key], float), key
        # the smaller image is the re-binned larger one
        big, small = r[f"image_r_{sizes[0]}"], r[f"image_r_{sizes[1]}"]
        assert small.sum() == pytest.approx(big.sum(), rel=1e-5)
        assert r["log_lum_r_fov"] == pytest.approx(np.log10(big.astype(float).sum()), abs=1e-5)
        rh = r["rhalf_kpc"]
        assert r["pixel_scale_kpc"] == pytest.approx(6 * rh / sizes[0])
    inc = {r["projection"]: r["inclination_deg"] for r in recs}
    assert inc[2] == pytest.approx(0.0) and inc[0] == pytest.approx(90.0)


def test_spin_axis_defaults_to_stellar_angular_momentum(cfg):
    g = cold_disc_galaxy(2000, seed=2)
    del g.meta["spin_axis"]
    inc = {r["projection"]: r["inclination_deg"] for r in observe_galaxy(g, cfg)}
    assert inc[2] == pytest.approx(0.0, abs=1e-6) and inc[1] == pytest.approx(90.0, abs=1e-6)


def test_projection_choice_is_respected():
    cfg = load_config("smoke", {"data.projections": ["z"]})
    recs = observe_galaxy(plummer_galaxy(500, seed=3), cfg)
    assert len(recs) == 1 and recs[0]["projection"] == 2


def _stars(n, **changes):
    g = plummer_galaxy(n, seed=4)
    st = g.stars
    kw = dict(pos=st.pos, vel=st.vel, mass=st.mass, age_gyr=st.age_gyr,
              metallicity=st.metallicity, lum=dict(st.lum))
    kw.update(changes)
    return Stars(**kw)


@pytest.mark.parametrize("make, message", [
    (lambda: Galaxy(7, _stars(20), meta={"galaxy_type": "late"}), "20 star particles"),
    (lambda: Galaxy(7, _stars(200, lum={"r": np.ones(200)}), meta={"galaxy_type": "late"}),
     "'g'-band"),
    (lambda: Galaxy(7, _stars(200), meta={}), "galaxy_type"),
    (lambda: Galaxy(7, _stars(200, pos=np.full((200, 3), np.nan)), meta={"galaxy_type": "late"}),
     "'pos'"),
    (lambda: Galaxy(7, _stars(200, pos=np.zeros((200, 3))), meta={"galaxy_type": "late"}),
     "half-mass radius"),
])
def test_bad_galaxies_raise_one_clear_error(cfg, make, message):
    with pytest.raises(GalaxyInputError, match=message) as err:
        observe_galaxy(make(), cfg)
    assert "galaxy 7" in str(err.value)


def test_image_sizes_must_divide(cfg):
    bad = load_config("smoke")  # the settings check refuses this at load; the pipeline too
    bad["observe"]["image_sizes"] = [60, 25]
    with pytest.raises(GalaxyInputError, match="25"):
        observe_galaxy(plummer_galaxy(500, seed=5), bad)


def test_records_round_trip_through_the_dataset(cfg, tmp_path):
    from analysis_lib.dataset import assemble, open_dataset, write_shard

    ids = []
    for gid in (3, 4):
        g = plummer_galaxy(600, seed=gid, galaxy_id=gid)
        write_shard(tmp_path / "obs.h5", gid, observe_galaxy(g, cfg))
        ids.append(gid)
    path = assemble(tmp_path / "obs.h5", ids, {"profile": "smoke", "seed": 0,
                                              "source": "analytic", "config": "{}"},
                    cfg["observe"]["image_sizes"])
    ds = open_dataset(path)
    assert len(ds.table) == 6 and set(ds.table["galaxy_id"]) == {3, 4}
    assert set(DIAGNOSTICS) <= set(ds.table.columns)


def test_files_without_diagnostics_still_open(cfg, tmp_path):
    # diagnostics are optional: records (and files) made before them stay valid
    from analysis_lib.dataset import assemble, open_dataset, write_shard

    recs = observe_galaxy(plummer_galaxy(600, seed=3, galaxy_id=3), cfg)
    for rec in recs:
        for name in DIAGNOSTICS:
            del rec[name]
    write_shard(tmp_path / "old.h5", 3, recs)
    path = assemble(tmp_path / "old.h5", [3], {"profile": "smoke", "seed": 0,
                                              "source": "analytic", "config": "{}"},
                    cfg["observe"]["image_sizes"])
    table = open_dataset(path).table
    assert len(table) == 3 and not set(DIAGNOSTICS) & set(table.columns)


def test_dust_free_diagnostics_are_exact(cfg):
    from analysis_lib.observe import geometry

    g = cold_disc_galaxy(3000, seed=1)
    g.gas = gas_disc(1000, 1e9, 3.0, 0.2, seed=1)
    st = g.stars
    rhalf = g.half_mass_radius()
    for r in observe_galaxy(g, cfg):
        assert r["A_r"] > 0.01  # there is dust, so the identities below are not trivial
        # A_r, A_g, g_r and M*/L_r (2 R_half) share one aperture: dust-free values follow
        assert r["g_r_nodust"] == pytest.approx(r["g_r"] - (r["A_g"] - r["A_r"]), abs=1e-9)
        assert r["log_ml_r_2rhalf_nodust"] == pytest.approx(
            r["log_ml_r_2rhalf"] - 0.4 * r["A_r"], abs=1e-9)
        assert r["log_ml_r_nodust"] < r["log_ml_r"]  # dust only dims
        assert r["log_mstar_total"] == pytest.approx(np.log10(st.mass.sum()))
        a, b, _ = geometry.project(st.pos, r["projection"])
        inside = np.hypot(a, b) < 2 * rhalf
        w = st.lum["r"][inside]
        want = np.sum(w * np.log10(st.age_gyr[inside] * 1e9)) / w.sum()
        assert r["log_age_r"] == pytest.approx(want, abs=1e-9)
        assert r["log_z_r"] == pytest.approx(np.log10(0.0127), abs=1e-9)
        assert 9.0 < r["log_age_r"] < np.log10(13e9)


def test_age_diagnostic_weights_by_light():
    from analysis_lib.observe.targets import stellar_population_diagnostics

    r = np.full(4, 0.5)
    mass, lum = np.ones(4), np.array([3.0, 1.0, 0.0, 0.0])
    age, z = np.array([1.0, 10.0, 5.0, 5.0]), np.full(4, 0.02)
    d = stellar_population_diagnostics(r, mass, lum, age, z, rhalf=1.0)
    assert d["log_age_r"] == pytest.approx((3 * 9.0 + 10.0) / 4)  # mean of log, light-weighted
    assert d["log_ml_r_nodust"] == pytest.approx(np.log10(4.0 / 4.0))
    assert d["log_z_r"] == pytest.approx(np.log10(0.02))
    dark = stellar_population_diagnostics(r, mass, np.zeros(4), age, z, rhalf=1.0)
    assert np.isnan(dark["log_age_r"]) and np.isnan(dark["log_ml_r_nodust"])


def test_diagnostics_are_never_model_inputs():
    # models read FEATURES / TARGETS; diagnostics sit in their own group and gbdt refuses them
    import pandas as pd

    from analysis_lib.models.gbdt import GBDTInputError, _check_experiment

    assert not set(DIAGNOSTICS) & (set(FEATURES) | set(TARGETS) | set(META))
    table = pd.DataFrame({c: [0.0] for c in [*DIAGNOSTICS, "log_mstar", "galaxy_id",
                                            "projection", "galaxy_type", "inclination_deg"]})
    with pytest.raises(GBDTInputError, match="unknown feature"):
        _check_experiment({"name": "x", "features": ["g_r_nodust"], "targets": ["log_mstar"]},
                          table, "test")
