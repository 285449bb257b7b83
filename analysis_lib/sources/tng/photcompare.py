"""This project's TNG magnitudes and colours against the TNG stellar-photometry catalogue.

Nelson et al. (2018, MNRAS 475, 624) computed, for every TNG subhalo above a mass limit, the
absolute AB magnitudes of its stars with resolved dust attenuation ('cf00dust_res_conv':
Charlot & Fall 2000 birth-cloud attenuation plus a resolved dust column from the gas metals),
within 30 physical kpc, seen along many random directions. The catalogue is a public
supplementary data set:

- dataset `Subhalo_StellarPhot_p07c_cf00dust_res_conv_ns1_rad30pkpc`, shape
  (N_subhalos, N_bands, N_projections), bands in its attribute 'bands' (at z ~ 0: sdss_u, sdss_g,
  sdss_r, sdss_i, sdss_z, wfc_acs_f606w, des_y, jwst_f150w), projection directions in 'projVecs';
- in the file the API serves as `/api/TNG100-1/files/stellar_photometry.99.hdf5` and on the TNG
  JupyterLab under sims.TNG/TNG100-1/postprocessing/stellar_light/ (file name carrying the
  dataset name and _099). Public code reads it both with a `subhaloIDs` dataset (rows are those
  subhaloes) and without one (rows are the subhalo ids); both layouts are read here. These
  names and layouts come from public code that uses the file, not from a downloaded copy.

The comparison takes a dataset built by this project from the same subhaloes (source tng) and
compares, per subhalo, the median over projections of M_r and g - r. The apertures differ (here
projected 2 R_half; there 30 pkpc), and so do the dust models (dust.py vs Nelson's), so the
comparison is a consistency check with expected offsets, not an identity: the printed table
says which.

    python -m analysis_lib.sources.tng.photcompare --dataset data/datasets/tng_paper.h5 \\
        --catalogue stellar_photometry.99.hdf5 [--out comparison.csv]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from analysis_lib.particles import GalaxyInputError

CATALOGUE_DATASET = "Subhalo_StellarPhot_p07c_cf00dust_res_conv_ns1_rad30pkpc"
DEFAULT_BANDS = ("sdss_u", "sdss_g", "sdss_r", "sdss_i", "sdss_z", "wfc_acs_f606w", "des_y",
                 "jwst_f150w")


def read_stellar_photometry(path: str | Path, subhalo_ids: Iterable[int],
                            dataset: str = CATALOGUE_DATASET) -> pd.DataFrame:
    """Median over projections of M_r and g - r (AB) for the given subhaloes.

    Returns columns subhalo_id, M_r_n18, g_r_n18, n_proj_n18 (projections with finite values);
    subhaloes absent from the catalogue are left out.
    """
    path = Path(path)
    ids = np.asarray(sorted({int(i) for i in subhalo_ids}), dtype=np.int64)
    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise GalaxyInputError(f"{path}: not a readable HDF5 file ({exc})") from None
    with fh:
        if dataset not in fh:
            raise GalaxyInputError(f"{path}: dataset '{dataset}' is missing "
                                   f"(the file has {sorted(fh.keys())})")
        phot = fh[dataset]
        bands = [b.decode() if isinstance(b, bytes) else str(b)
                 for b in phot.attrs.get("bands", DEFAULT_BANDS)]
        for band in ("sdss_g", "sdss_r"):
            if band not in bands:
                raise GalaxyInputError(f"{path}: '{dataset}' has no band {band} ({bands})")
        if "subhaloIDs" in fh:
            cat_ids = np.asarray(fh["subhaloIDs"][()], dtype=np.int64)
            order = np.argsort(cat_ids)
            pos = np.searchsorted(cat_ids[order], ids)
            pos = np.minimum(pos, len(cat_ids) - 1)
            found = cat_ids[order][pos] == ids
            rows = order[pos[found]]
        else:
            found = ids < phot.shape[0]
            rows = ids[found]
        ids = ids[found]
        take = np.argsort(rows)  # h5py wants increasing indices
        data = np.empty((len(rows),) + phot.shape[1:], dtype=np.float64)
        if len(rows):
            data[take] = phot[np.asarray(rows)[take]]
    data = data.reshape(len(rows), len(bands), -1)
    g, r = data[:, bands.index("sdss_g"), :], data[:, bands.index("sdss_r"), :]
    ok = np.isfinite(g) & np.isfinite(r)
    with np.errstate(all="ignore"):
        m_r = np.nanmedian(np.where(ok, r, np.nan), axis=1) if len(rows) else np.zeros(0)
        g_r = np.nanmedian(np.where(ok, g - r, np.nan), axis=1) if len(rows) else np.zeros(0)
    return pd.DataFrame({"subhalo_id": ids, "M_r_n18": m_r, "g_r_n18": g_r,
                         "n_proj_n18": ok.sum(axis=1)})


def project_photometry(table: pd.DataFrame) -> pd.DataFrame:
    """Per galaxy, the median over this project's projections of M_r, g - r (and dust-free M_r)."""
    cols = {"M_r": "M_r", "g_r": "g_r"}
    frame = table.copy()
    if "A_r" in frame.columns:
        frame["M_r_dustfree"] = frame["M_r"] - frame["A_r"]
        cols["M_r_dustfree"] = "M_r_dustfree"
    out = frame.groupby("galaxy_id")[list(cols)].median().reset_index()
    return out.rename(columns={"galaxy_id": "subhalo_id"})


def compare_photometry(table: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Per subhalo in both: this project's values, Nelson+18's, and the differences (ours -
    theirs)."""
    ours = project_photometry(table)
    both = ours.merge(catalogue, on="subhalo_id", how="inner")
    both["dM_r"] = both["M_r"] - both["M_r_n18"]
    both["dg_r"] = both["g_r"] - both["g_r_n18"]
    return both


def summarise(comparison: pd.DataFrame) -> dict[str, float]:
    """Median difference and 16-84 % half-width, per quantity; the number of subhaloes."""
    out: dict[str, float] = {"n": int(len(comparison))}
    for col in ("dM_r", "dg_r"):
        vals = comparison[col].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            lo, med, hi = np.percentile(vals, [16, 50, 84])
            out[f"{col}_median"], out[f"{col}_scatter"] = float(med), float(0.5 * (hi - lo))
        else:
            out[f"{col}_median"] = out[f"{col}_scatter"] = float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: compare a dataset's TNG photometry with the stellar-photometry catalogue."""
    import argparse

    from analysis_lib.dataset import open_dataset

    parser = argparse.ArgumentParser(description=(
        "Compare this project's M_r and g-r (per subhalo, median over projections) with the "
        "TNG stellar-photometry catalogue of Nelson et al. 2018 (dust-attenuated, 30 pkpc)."))
    parser.add_argument("--dataset", required=True, help="dataset file built with --source tng")
    parser.add_argument("--catalogue", required=True,
                        help="the stellar-photometry HDF5 file (e.g. stellar_photometry.99.hdf5)")
    parser.add_argument("--field", default=CATALOGUE_DATASET, help="dataset name in that file")
    parser.add_argument("--out", default=None, help="write the per-subhalo table as CSV")
    args = parser.parse_args(argv)
    try:
        ds = open_dataset(args.dataset)
        if str(ds.attrs.get("source")) != "tng":
            raise GalaxyInputError(f"{args.dataset}: source is {ds.attrs.get('source')!r}, not "
                                   "'tng': there is no TNG subhalo to compare")
        table = ds.table
        cat = read_stellar_photometry(args.catalogue, table["galaxy_id"].unique(), args.field)
    except (GalaxyInputError, OSError) as exc:
        print(f"error: {exc}")
        return 1
    comparison = compare_photometry(table, cat)
    if args.out:
        comparison.to_csv(args.out, index=False)
    s = summarise(comparison)
    print(f"{s['n']} subhaloes in both; ours minus Nelson+18 (ours: projected 2 R_half, "
          "dust.py; theirs: 30 pkpc, resolved dust)")
    print(f"  M_r : median {s['dM_r_median']:+.3f} mag, 16-84% half-width "
          f"{s['dM_r_scatter']:.3f} mag")
    print(f"  g-r : median {s['dg_r_median']:+.3f} mag, 16-84% half-width "
          f"{s['dg_r_scatter']:.3f} mag")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
