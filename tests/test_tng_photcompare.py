"""The comparison command with the TNG stellar-photometry catalogue, on a fixture catalogue."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.build import build_dataset
from analysis_lib.particles import GalaxyInputError
from analysis_lib.sources.tng.cutouts import cutout_path
from analysis_lib.sources.tng.photcompare import (
    CATALOGUE_DATASET,
    compare_photometry,
    main,
    read_stellar_photometry,
)

from .tng_fixtures import make_truth, write_cutout

BANDS = [b"sdss_u", b"sdss_g", b"sdss_r", b"sdss_i", b"sdss_z", b"wfc_acs_f606w", b"des_y",
         b"jwst_f150w"]


def write_catalogue(path, ids, g, r, with_ids=True, n_rows=None):
    """A stellar-photometry file: (N, 8 bands, N_proj) AB magnitudes, 'bands' attribute."""
    g, r = np.atleast_2d(g), np.atleast_2d(r)
    n_proj = g.shape[1]
    rows = n_rows if n_rows is not None else len(ids)
    data = np.full((rows, len(BANDS), n_proj), np.nan, dtype=np.float32)
    where = np.arange(len(ids)) if with_ids else np.asarray(ids)
    data[where, 1, :], data[where, 2, :] = g, r
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset(CATALOGUE_DATASET, data=data)
        ds.attrs["bands"] = BANDS
        ds.attrs["projVecs"] = np.eye(3)[np.arange(n_proj) % 3]
        if with_ids:
            fh["subhaloIDs"] = np.asarray(ids, dtype=np.int64)
    return path


def test_reader_takes_medians_over_projections_in_both_layouts(tmp_path):
    g = np.array([[-20.0, -20.2, -20.4, np.nan], [-21.0, -21.0, -21.0, -21.0]])
    r = np.array([[-20.5, -20.9, -21.1, np.nan], [-21.8, -21.6, -21.7, -21.9]])
    for with_ids in (True, False):
        path = write_catalogue(tmp_path / f"c{with_ids}.hdf5", [30, 12], g, r, with_ids,
                               n_rows=None if with_ids else 40)
        cat = read_stellar_photometry(path, [12, 30, 999]).set_index("subhalo_id")
        assert list(cat.index) == [12, 30]  # 999 is not in the catalogue
        assert cat.loc[30, "M_r_n18"] == pytest.approx(-20.9, abs=1e-5)  # median of 3 finite values
        assert cat.loc[30, "g_r_n18"] == pytest.approx(0.7, abs=1e-5)  # median of 0.5, 0.7, 0.7
        assert cat.loc[30, "n_proj_n18"] == 3
        assert cat.loc[12, "M_r_n18"] == pytest.approx(-21.75, abs=1e-5)
        assert cat.loc[12, "g_r_n18"] == pytest.approx(0.75, abs=1e-5)  # of 0.8, 0.6, 0.7, 0.9
    with pytest.raises(GalaxyInputError, match="Subhalo_StellarPhot"):
        read_stellar_photometry(path, [12], dataset="Subhalo_StellarPhot_nodust")


def test_comparison_per_subhalo():
    table = pd.DataFrame({"galaxy_id": [5, 5, 5, 9, 9, 9], "projection": [0, 1, 2] * 2,
                          "M_r": [-21.0, -21.2, -21.1, -19.0, -19.1, -19.2],
                          "g_r": [0.7, 0.75, 0.72, 0.4, 0.45, 0.5],
                          "A_r": [0.1, 0.2, 0.1, 0.0, 0.0, 0.0]})
    cat = pd.DataFrame({"subhalo_id": [5, 7], "M_r_n18": [-21.5, -20.0],
                        "g_r_n18": [0.70, 0.6], "n_proj_n18": [12, 12]})
    out = compare_photometry(table, cat).set_index("subhalo_id")
    assert list(out.index) == [5]
    assert out.loc[5, "dM_r"] == pytest.approx(-21.1 + 21.5)
    assert out.loc[5, "dg_r"] == pytest.approx(0.02)
    assert out.loc[5, "M_r_dustfree"] == pytest.approx(-21.2)  # median of -21.1, -21.4, -21.2


def test_command_on_a_built_tng_dataset(tmp_path, capsys):
    cut = tmp_path / "cutouts"
    cut.mkdir()
    write_cutout(cutout_path(cut, 11), make_truth(seed=1))
    cfg = load_config("smoke", {"data.source": "tng"})
    out = build_dataset(cfg, tmp_path / "tng.h5", {"cutouts_dir": cut}, workers=1,
                        progress=False)
    ours = open_dataset(out).table
    m_r, g_r = float(ours.M_r.median()), float(ours.g_r.median())
    # the catalogue says 0.3 mag brighter and 0.05 mag redder, in every projection
    path = write_catalogue(tmp_path / "stellar_photometry.99.hdf5", [11, 12],
                           np.array([[m_r - 0.3 + g_r + 0.05] * 4, [0.0] * 4]),
                           np.array([[m_r - 0.3] * 4, [0.0] * 4]))
    csv = tmp_path / "cmp.csv"
    assert main(["--dataset", str(out), "--catalogue", str(path), "--out", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "1 subhaloes in both" in text and "+0.300 mag" in text and "-0.050 mag" in text
    row = pd.read_csv(csv).iloc[0]
    assert row.subhalo_id == 11 and row.dM_r == pytest.approx(0.3, abs=1e-5)
    assert main(["--dataset", str(out), "--catalogue", str(tmp_path / "none.hdf5")]) == 1
