"""Per-galaxy cross-check against the Subfind catalogue (crosscheck.py), through the build."""

from __future__ import annotations

import json
import logging

import h5py
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.build import build_dataset
from analysis_lib.particles import GalaxyInputError
from analysis_lib.sources.tng import TngCutoutSource, TngLocalSource
from analysis_lib.sources.tng.crosscheck import CHECK_FAILED
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import A, H, _half_mass_radius, make_truth, write_cutout, write_fake_simulation


def _record(sid, truth, mass_factor=1.0, radius_factor=1.0):
    s = truth["stars"]
    return {"id": sid, "mass_stars": mass_factor * float(s["mass"].sum()) * H / 1e10,
            "halfmassrad_stars": radius_factor * _half_mass_radius(s["pos"], s["mass"]) * H / A}


def _catalogue(directory, records):
    (directory / "subhalos.json").write_text(json.dumps(
        {"simulation": "TNG100-1", "snapshot": 99, "subhalos": records}))


def test_mismatch_is_reported_per_galaxy_in_the_dataset_build(tmp_path):
    cut = tmp_path / "cutouts"
    cut.mkdir()
    good, bad = make_truth(seed=1), make_truth(seed=2)
    write_cutout(cutout_path(cut, 11), good)
    write_cutout(cutout_path(cut, 22), bad)
    _catalogue(cut, [_record(11, good), _record(22, bad, mass_factor=1.3)])
    cfg = load_config("smoke", {"data.source": "tng"})
    out = build_dataset(cfg, tmp_path / "tng.h5", {"cutouts_dir": cut}, workers=1,
                        progress=False)
    ds = open_dataset(out)
    assert set(ds.table.galaxy_id) == {11}
    reasons = json.loads(ds.attrs["failures"])
    assert list(reasons) == ["22"]
    assert f"{CHECK_FAILED} for subhalo 22" in reasons["22"]
    assert "mass_stars" in reasons["22"] and "cutout_22.hdf5" in reasons["22"]
    assert "half-mass radius" not in reasons["22"]  # only what is wrong is named
    assert int(ds.attrs["n_failed"]) == 1


def test_radius_mismatch_and_the_three_modes(tmp_path, caplog):
    truth = make_truth(seed=3)
    write_cutout(cutout_path(tmp_path, 5), truth)
    _catalogue(tmp_path, [_record(5, truth, radius_factor=1.5)])
    with pytest.raises(GalaxyInputError, match="half-mass radius") as err:
        TngCutoutSource(tmp_path).load(5)
    assert "mass_stars" not in str(err.value)
    caplog.set_level(logging.WARNING)
    gal = TngCutoutSource(tmp_path, {"tng": {"catalogue_check": "warn"}}).load(5)
    check = gal.meta["catalogue_check"]
    assert check["status"] == "mismatch" and "half-mass radius" in check["reason"]
    assert check["rhalf_catalogue_kpc"] == pytest.approx(1.5 * check["rhalf_kpc"], rel=1e-3)
    assert "subhalo 5" in caplog.text
    off = TngCutoutSource(tmp_path, {"tng": {"catalogue_check": "off"}}).load(5)
    assert off.meta["catalogue_check"]["status"] == "off"
    with pytest.raises(ValueError, match="catalogue_check"):
        TngCutoutSource(tmp_path, {"tng": {"catalogue_check": "maybe"}})


def test_matching_and_absent_records(tmp_path):
    truth = make_truth(seed=4)
    write_cutout(cutout_path(tmp_path, 8), truth)
    assert TngCutoutSource(tmp_path).load(8).meta["catalogue_check"]["status"] == "unchecked"
    _catalogue(tmp_path, [_record(8, truth)])
    check = TngCutoutSource(tmp_path).load(8).meta["catalogue_check"]
    assert check["status"] == "ok" and check["reason"] is None
    assert check["mstar_particles_msun"] == pytest.approx(check["mstar_catalogue_msun"], rel=1e-6)
    json.dumps(check)  # JSON-ready, for whoever stores it


def test_local_simulation_is_checked_against_its_group_catalogue(tmp_path):
    truths = [make_truth(seed=10), make_truth(seed=13, centre=(5.0, 5.0, 5.0))]
    base = write_fake_simulation(tmp_path, truths)
    src = TngLocalSource(base, subhalo_ids=[0, 1], snap=99)
    assert src.load(0).meta["catalogue_check"]["status"] == "ok"
    with h5py.File(f"{base}/groups_099/fof_subhalo_tab_099.0.hdf5", "a") as fh:
        fh["Subhalo/SubhaloMassType"][1, 4] *= 0.5
    with pytest.raises(GalaxyInputError, match=f"subhalo 1: {CHECK_FAILED}"):
        TngLocalSource(base, subhalo_ids=[0, 1], snap=99).load(1)
