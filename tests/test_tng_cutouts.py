"""TNG cutout reader: known particles written in TNG format are read back to the same truths."""

import json

import h5py
import numpy as np
import pytest

from analysis_lib.particles import GalaxyInputError
from analysis_lib.sources.tng import TngCutoutSource, build_tng_source
from analysis_lib.sources.tng.cosmology import cosmic_time_gyr
from analysis_lib.sources.tng.cutouts import cutout_path
from analysis_lib.sources.tng.selection import passes_sample_cuts

from .tng_fixtures import BOX, M_DM_CODE, A, H, code_arrays, make_truth, write_cutout

SID = 123


@pytest.fixture(scope="module")
def truth():
    return make_truth(seed=1)


@pytest.fixture
def cutdir(tmp_path, truth):
    write_cutout(cutout_path(tmp_path, SID), truth)
    return tmp_path


def _load(directory, cfg=None, sid=SID):
    return TngCutoutSource(directory, cfg).load(sid)


def test_fixture_really_straddles_the_box_edge(truth):
    raw = code_arrays(truth)
    for grp in ("PartType4", "PartType1"):
        x = raw[grp]["Coordinates"]
        assert (x > BOX - 1000).any() and (x < 1000).any(), grp  # wrapping is exercised


def test_stars_read_back_to_truth(cutdir, truth):
    gal = _load(cutdir)
    s = truth["stars"]
    assert len(gal.stars) == len(s["mass"])  # every wind cell excluded
    np.testing.assert_allclose(gal.stars.pos, s["pos"], atol=1e-6)
    np.testing.assert_allclose(gal.stars.vel, s["vel"], atol=2e-3)
    np.testing.assert_allclose(gal.stars.mass, s["mass"], rtol=1e-6)
    np.testing.assert_allclose(gal.stars.extra["initial_mass"], s["initial_mass"], rtol=1e-6)
    np.testing.assert_allclose(gal.stars.metallicity, s["Z"], rtol=1e-6)
    np.testing.assert_allclose(gal.stars.potential, s["potential"], rtol=1e-6)
    for band, col, msun in (("g", 4, 5.11), ("r", 5, 4.65)):
        np.testing.assert_allclose(gal.stars.lum[band], 10 ** (-0.4 * (s["mags"][:, col] - msun)),
                                   rtol=1e-5)
    assert gal.stars.radius[0] == pytest.approx(0.0, abs=1e-9)  # centre = star 0


def test_stellar_ages_from_formation_scale_factor(cutdir, truth):
    gal = _load(cutdir)
    expect = cosmic_time_gyr(A) - cosmic_time_gyr(truth["stars"]["a_form"])
    np.testing.assert_allclose(gal.stars.age_gyr, expect, rtol=1e-5, atol=1e-6)
    assert (gal.stars.age_gyr >= 0).all() and (gal.stars.age_gyr < cosmic_time_gyr(A)).all()


def test_gas_dm_and_bh(cutdir, truth):
    gal = _load(cutdir)
    g, w, d = truth["gas"], truth["wind"], truth["dm"]
    ng = len(g["mass"])
    assert len(gal.gas) == ng + len(w["mass"])  # wind cells join the gas
    np.testing.assert_allclose(gal.gas.pos[:ng], g["pos"], atol=1e-6)
    np.testing.assert_allclose(gal.gas.pos[ng:], w["pos"], atol=1e-6)
    np.testing.assert_allclose(gal.gas.vel[:ng], g["vel"], atol=2e-3)
    np.testing.assert_allclose(gal.gas.mass[:ng], g["mass"], rtol=1e-6)
    np.testing.assert_allclose(gal.gas.extra["sfr"][:ng], g["sfr"], rtol=1e-6)
    assert gal.gas.extra["is_wind"].sum() == len(w["mass"])
    np.testing.assert_allclose(gal.dm.pos, d["pos"], atol=1e-6)
    assert np.all(np.abs(gal.dm.pos) < 200)  # wrapped: nothing a box length away
    np.testing.assert_allclose(gal.dm.mass, M_DM_CODE * 1e10 / H)
    np.testing.assert_allclose(gal.dm.vel, d["vel"], atol=2e-3)
    assert gal.meta["bh_mass_msun"] == pytest.approx(2.0e8, rel=1e-6)
    assert gal.meta["wind_mass_msun"] == pytest.approx(w["mass"].sum(), rel=1e-6)
    r = 5.0
    total = sum(float((np.linalg.norm(p, axis=1) <= r) @ m) for p, m in (
        (truth["stars"]["pos"], truth["stars"]["mass"]), (g["pos"], g["mass"]),
        (w["pos"], w["mass"]), (d["pos"], d["mass"])))
    assert float(gal.enclosed_mass("total", r)) == pytest.approx(total, rel=1e-6)


def test_meta_and_galaxy_type(tmp_path, truth):
    write_cutout(cutout_path(tmp_path, 1), truth)
    write_cutout(cutout_path(tmp_path, 2), make_truth(seed=2, young_fraction=0.0))
    src = TngCutoutSource(tmp_path)
    late, early = src.load(1), src.load(2)
    assert late.meta["galaxy_type"] == "late" and late.meta["ssfr_per_yr"] > 1e-11
    g = truth["gas"]
    in2 = np.linalg.norm(g["pos"], axis=1) <= 2 * late.meta["rhalf_kpc"]
    m2 = late.stars.enclosed_mass(2 * late.meta["rhalf_kpc"])
    assert late.meta["ssfr_gas_per_yr"] == pytest.approx(g["sfr"][in2].sum() / m2, rel=1e-5)
    assert early.meta["galaxy_type"] == "early" and early.meta["ssfr_per_yr"] == 0.0
    m = late.meta
    assert m["source"] == "tng" and m["subhalo_id"] == 1 and m["snapshot"] == 99
    assert m["scale_factor"] == pytest.approx(A) and "spin_axis" not in m
    assert m["rhalf_kpc"] == pytest.approx(late.half_mass_radius())
    assert m["n_wind_cells"] == len(truth["wind"]["mass"])
    # threshold is configuration: above every galaxy's sSFR, everything is early
    cfg = {"tng": {"quenched_ssfr_per_yr": 1.0}}
    assert TngCutoutSource(tmp_path, cfg).load(1).meta["galaxy_type"] == "early"


def test_systemic_velocity_removed(tmp_path):
    t = make_truth(seed=3, v_sys=(900.0, -700.0, 300.0))
    write_cutout(cutout_path(tmp_path, 5), t)
    gal = TngCutoutSource(tmp_path).load(5)
    np.testing.assert_allclose(gal.stars.vel, t["stars"]["vel"], atol=3e-3)


def _write_catalogue(directory, truth, sid=SID, **extra):
    rec = {"id": sid}
    for prefix, vec in (("pos", truth["centre"]), ("vel", truth["v_sys"])):
        rec.update({f"{prefix}_{c}": float(v) for c, v in zip("xyz", vec, strict=True)})
    payload = {"simulation": "TNG100-1", "snapshot": 99, "subhalos": [rec], **extra}
    (directory / "subhalos.json").write_text(json.dumps(payload))


def test_catalogue_centre_gives_same_galaxy(cutdir, truth):
    _write_catalogue(cutdir, truth)
    ref = _load(cutdir)
    cat = _load(cutdir, {"tng": {"centre": "catalogue"}})
    assert cat.meta["centre_method"] == "catalogue SubhaloPos"
    np.testing.assert_allclose(cat.stars.pos, ref.stars.pos, atol=1e-6)
    np.testing.assert_allclose(cat.stars.vel, ref.stars.vel, atol=2e-3)


def test_csv_catalogue_used_when_potential_missing(tmp_path, truth):
    write_cutout(cutout_path(tmp_path, SID), truth, drop=("PartType4/Potential",))
    alone = TngCutoutSource(tmp_path).load(SID)  # no catalogue: shrinking sphere on the stars
    assert alone.meta["centre_method"].startswith("shrinking sphere")
    cols = "id,pos_x,pos_y,pos_z,vel_x,vel_y,vel_z"
    vals = [SID, *truth["centre"], *truth["v_sys"]]
    row = ",".join(str(float(v)) for v in vals)
    (tmp_path / "subhalos.csv").write_text(f"{cols}\n{row}\n")
    gal = TngCutoutSource(tmp_path).load(SID)
    assert gal.stars.potential is None and gal.meta["centre_method"] == "catalogue SubhaloPos"
    np.testing.assert_allclose(gal.stars.pos, truth["stars"]["pos"], atol=1e-6)


def test_catalogue_centre_requested_but_absent(cutdir):
    with pytest.raises(GalaxyInputError, match="subhalos.json"):
        _load(cutdir, {"tng": {"centre": "catalogue"}})


def test_header_facts_from_catalogue(tmp_path, truth):
    write_cutout(cutout_path(tmp_path, SID), truth,
                 drop_header=("BoxSize", "MassTable", "Time", "HubbleParam"))
    with pytest.raises(GalaxyInputError, match="Header/Time"):
        TngCutoutSource(tmp_path).load(SID)
    _write_catalogue(tmp_path, truth, boxsize=BOX, hubble=H, mass_dm=M_DM_CODE,
                     redshift=1 / A - 1)
    gal = TngCutoutSource(tmp_path).load(SID)
    assert gal.meta["scale_factor"] == pytest.approx(A)
    np.testing.assert_allclose(gal.dm.pos, truth["dm"]["pos"], atol=1e-6)
    np.testing.assert_allclose(gal.stars.vel, truth["stars"]["vel"], atol=2e-3)


def test_optional_groups(tmp_path, truth):
    write_cutout(cutout_path(tmp_path, SID), truth,
                 drop=("PartType0", "PartType1", "PartType5", "PartType4/GFM_InitialMass"))
    gal = TngCutoutSource(tmp_path).load(SID)
    assert gal.gas is None and gal.dm is None and gal.meta["bh_mass_msun"] == 0.0
    assert "initial_mass" not in gal.stars.extra
    assert len(gal.stars) == len(truth["stars"]["mass"])


# -- bad input: one clear error naming the file and the field ------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    ({"drop": ("PartType4",)}, "PartType4"),
    ({"drop": ("PartType4/Masses",)}, "PartType4/Masses"),
    ({"drop": ("PartType4/GFM_StellarFormationTime",)}, "PartType4/GFM_StellarFormationTime"),
    ({"drop": ("PartType0/GFM_Metallicity",)}, "PartType0/GFM_Metallicity"),
    ({"drop_header": ("Time",)}, "Header/Time"),
    ({"set_attrs": {"PartType4/Masses": {"h_scaling": 0.0}}}, "PartType4/Masses"),
    ({"set_attrs": {"PartType1/Coordinates": {"to_cgs": 3.085678e24}}}, "PartType1/Coordinates"),
    ({"set_attrs": {"PartType4/Velocities": {"a_scaling": 0.0}}}, "PartType4/Velocities"),
])
def test_bad_input_names_file_and_field(tmp_path, truth, kwargs, field):
    path = write_cutout(cutout_path(tmp_path, SID), truth, **kwargs)
    with pytest.raises(GalaxyInputError) as err:
        TngCutoutSource(tmp_path).load(SID)
    assert str(path) in str(err.value) and field in str(err.value)


def test_no_stars_only_wind(tmp_path):
    t = make_truth(seed=4)
    t["stars"] = {k: v[:0] for k, v in t["stars"].items()}
    path = write_cutout(cutout_path(tmp_path, SID), t)
    with pytest.raises(GalaxyInputError, match="no star particles") as err:
        TngCutoutSource(tmp_path).load(SID)
    assert str(path) in str(err.value) and "PartType4" in str(err.value)


def test_non_finite_values_refused(tmp_path, truth):
    path = write_cutout(cutout_path(tmp_path, SID), truth)
    with h5py.File(path, "a") as fh:
        fh["PartType4/Masses"][3] = np.nan
    with pytest.raises(GalaxyInputError, match="PartType4/Masses"):
        TngCutoutSource(tmp_path).load(SID)


def test_corrupt_and_truncated_files(tmp_path, truth):
    bad = cutout_path(tmp_path, 7)
    bad.write_bytes(b"<html>502 Bad Gateway</html>")
    with pytest.raises(GalaxyInputError, match="not a readable HDF5") as err:
        TngCutoutSource(tmp_path).load(7)
    assert str(bad) in str(err.value)
    good = write_cutout(cutout_path(tmp_path, 8), truth).read_bytes()
    cutout_path(tmp_path, 9).write_bytes(good[: len(good) // 2])
    with pytest.raises(GalaxyInputError, match="cutout_9.hdf5"):
        TngCutoutSource(tmp_path).load(9)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(GalaxyInputError, match="cutout_5.hdf5"):
        TngCutoutSource(tmp_path).load(5)
    with pytest.raises(GalaxyInputError, match="does not exist"):
        TngCutoutSource(tmp_path / "nope")


def test_galaxy_ids_ignores_partial_downloads(tmp_path, truth):
    write_cutout(cutout_path(tmp_path, 30), truth)
    write_cutout(cutout_path(tmp_path, 4), truth)
    (tmp_path / "cutout_99.hdf5.part").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("x")
    assert TngCutoutSource(tmp_path).galaxy_ids() == [4, 30]
    assert TngCutoutSource(tmp_path, subhalo_ids=[30]).galaxy_ids() == [30]


def test_build_tng_source_and_sample_cut(cutdir, tmp_path):
    cfg = {"data": {"min_mstar_30kpc": 1e10, "max_halo_mass": 1e14}}
    src = build_tng_source(cfg, cutouts_dir=cutdir)
    assert isinstance(src, TngCutoutSource) and src.galaxy_ids() == [SID]
    gal = src.load(SID)
    assert gal.meta["mstar_30kpc_msun"] == pytest.approx(float(gal.stars.enclosed_mass(30.0)))
    assert passes_sample_cuts(gal, cfg)  # ~2e10 Msun of stars
    assert not passes_sample_cuts(gal, {"data": {"min_mstar_30kpc": 1e12}})
    with pytest.raises(ValueError, match="exactly one"):
        build_tng_source(cfg)
    with pytest.raises(ValueError, match="exactly one"):
        build_tng_source(cfg, cutouts_dir=cutdir, base_path=tmp_path)


def test_make_source_builds_tng_from_config(cutdir):
    from analysis_lib.config import load_config
    from analysis_lib.sources import make_source

    cfg = load_config("smoke", {"data.source": "tng", "tng.cutouts_dir": str(cutdir)})
    src = make_source(cfg)
    assert isinstance(src, TngCutoutSource) and src.galaxy_ids() == [SID]
    assert src.load(SID).meta["sun_abs_mag_ab"] == {"g": 5.11, "r": 4.65}


def test_tng_galaxy_runs_through_the_observation_pipeline(tmp_path, truth):
    """The same observation code as the mock: TNG galaxies need nothing source-specific."""
    from analysis_lib.config import load_config
    from analysis_lib.observe import observe_galaxy

    write_cutout(cutout_path(tmp_path, SID), truth, drop=("PartType1/Velocities",))
    cfg = load_config("smoke", {"observe.image_size": 30, "observe.image_sizes": [30]})
    gal = TngCutoutSource(tmp_path, cfg).load(SID)
    assert np.isnan(gal.dm.vel).all()  # DM velocities not downloaded
    recs = observe_galaxy(gal, cfg)
    assert [r["projection"] for r in recs] == [0, 1, 2]
    s = truth["stars"]
    r_half = gal.half_mass_radius()
    m_in = s["mass"][np.linalg.norm(s["pos"], axis=1) <= r_half].sum()
    assert recs[0]["log_mstar"] == pytest.approx(np.log10(m_in), abs=1e-3)
    assert recs[0]["galaxy_type"] == 0  # late (young stars)
