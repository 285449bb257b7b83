"""TNG cutouts through the whole dataset stage, with the paper's exact 30-kpc sample cut."""

from __future__ import annotations

import json

import numpy as np

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.build import build_dataset
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import make_truth, write_cutout


def test_tng_cutouts_become_a_dataset_and_small_galaxies_are_excluded(tmp_path):
    cut = tmp_path / "cutouts"
    cut.mkdir()
    write_cutout(cutout_path(cut, 11), make_truth(seed=1))                       # 2e10 Msun
    write_cutout(cutout_path(cut, 22), make_truth(seed=2, star_mass=1.0e7))     # 4e9 Msun
    cfg = load_config("smoke", {"data.source": "tng"})
    out = build_dataset(cfg, tmp_path / "tng.h5", {"cutouts_dir": cut}, workers=1,
                        progress=False)
    ds = open_dataset(out)
    assert set(ds.table.galaxy_id) == {11}
    assert len(ds.table) == 3 and ds.attrs["source"] == "tng"
    assert int(ds.attrs["n_excluded"]) == 1 and int(ds.attrs["n_failed"]) == 0
    reasons = json.loads(ds.attrs["failures"])
    assert reasons["22"].startswith("excluded: M*(<30 kpc)")
    assert np.isfinite(ds.table.log_mstar).all()
    image = ds.load_inputs(["image_r_60"])["image_r_60"]
    assert (image.sum(axis=(1, 2)) > 0).all()
