"""The HDF5 dataset: schema in one place, an atomic and resumable writer, a validating reader.

One row per (galaxy, projection). Arrays are stored in physical units (Lsun per pixel, km/s);
normalisation is fitted on the training split at training time, never per image, so absolute
flux survives. Layout:

    /inputs/image_r_{N}, /inputs/image_g_{N}   (rows, N, N) float32  Lsun per pixel
    /inputs/vel_map, /inputs/sigma_map         (rows, M, M) float32  km/s
    /inputs/map_mask                           (rows, M, M) bool     True = valid pixel
    /targets/<name>, /features/<name>, /meta/<name>   (rows,)
    /diagnostics/<name>                        (rows,)  optional, never model inputs
    root attributes: profile, seed, source, code_version, config (JSON), units (JSON)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from analysis_lib import __version__
from analysis_lib.io import atomic_write

TARGETS: dict[str, str] = {
    "log_mstar": "log10 Msun, stars in a 3D sphere of R_half",
    "log_mtot": "log10 Msun, all matter in a 3D sphere of R_half",
    "log_mdm": "log10 Msun, dark matter in a 3D sphere of R_half",
    "log_mgas": "log10 Msun, gas in a 3D sphere of R_half",
    "log_mstar_2rhalf": "log10 Msun, stars in a 3D sphere of 2 R_half",
    "log_mtot_2rhalf": "log10 Msun, all matter in a 3D sphere of 2 R_half",
    "log_mdm_2rhalf": "log10 Msun, dark matter in a 3D sphere of 2 R_half",
    "log_mgas_2rhalf": "log10 Msun, gas in a 3D sphere of 2 R_half",
    "log_mstar_proj": "log10 Msun, stars in a cylinder of projected radius R_half",
    "log_mstar_proj_2rhalf": "log10 Msun, stars in a cylinder of projected radius 2R_half",
    "log_ml_r": "log10 Msun/Lsun, projected M*/L_r (dust-attenuated) within R_half",
    "log_ml_r_2rhalf": "log10 Msun/Lsun, projected M*/L_r (dust-attenuated) within 2 R_half",
    "log_fdm": "log10 of M_dm/M_tot in a 3D sphere of R_half",
    "log_fstar": "log10 of M*/M_tot in a 3D sphere of R_half",
    "log_lum_r_proj": "log10 Lsun, dust-attenuated r luminosity within projected R_half",
    "log_lum_r_fov": "log10 Lsun, dust-attenuated r luminosity inside the image field",
    "rhalf_kpc": "kpc, 3D half-stellar-mass radius",
}
FEATURES: dict[str, str] = {
    "M_r": "AB mag, dust-attenuated absolute r magnitude within projected 2 R_half",
    "g_r": "AB mag, g-r colour within projected 2 R_half",
    "sfr": "Msun/yr, star formation over the last Gyr within projected 2 R_half",
    "sersic_n": "Sersic index of the light within projected 2 R_half",
    "q": "shortest-to-longest axis ratio of the stellar mass (iterative inertia tensor)",
    "sigma_e": "km/s, sqrt(sum F (V^2 + sigma^2) / sum F) of the Voronoi-binned maps inside "
               "the instrument's aperture (ideal: projected R_half; surveys: R_e)",
    "lambda_r": "spin parameter lambda_R (Emsellem+2007) of the Voronoi-binned maps inside the "
                "instrument's aperture; seeing-corrected (Graham+2018) for survey instruments",
    "kinetic_bt": "twice the stellar mass fraction with circularity < 0",
    "f_cold": "stellar mass fraction with circularity > 0.8",
    "f_hot": "stellar mass fraction with |circularity| < 0.25",
}
META: dict[str, str] = {
    "galaxy_id": "integer id within the source",
    "projection": "line of sight: 0 = x, 1 = y, 2 = z",
    "galaxy_type": "0 = late type, 1 = early type",
    "inclination_deg": "deg, angle between the spin axis and the line of sight",
    "pixel_scale_kpc": "kpc per pixel of the rendered (largest) image",
    "A_r": "AB mag, r-band dust attenuation within projected 2 R_half (M_r minus dust-free M_r)",
    "A_g": "AB mag, g-band dust attenuation within projected 2 R_half (A_g - A_r = E(g-r))",
}
# Diagnostics of the source's physics (the mock's shortcut checks, shortcuts.py), never model
# inputs or targets: models read FEATURES / TARGETS only. Optional: written when the records
# carry them (the pipeline always does), read when the file has them (older files do not).
DIAGNOSTICS: dict[str, str] = {
    "log_mstar_total": "log10 Msun, all star particles of the galaxy",
    "g_r_nodust": "AB mag, g-r colour of the dust-free light within projected 2 R_half",
    "log_ml_r_nodust": "log10 Msun/Lsun, projected M*/L_r (dust-free) within R_half",
    "log_ml_r_2rhalf_nodust": "log10 Msun/Lsun, projected M*/L_r (dust-free) within 2 R_half",
    "log_age_r": "log10 yr, dust-free r-light-weighted mean of log age, projected 2 R_half",
    "log_z_r": "log10 of the metal mass fraction Z, dust-free r-light-weighted mean, "
               "projected 2 R_half",
}
# Optional columns for the classical mass estimators and the masses at several radii (issue 14):
# written when the records carry them (the pipeline always does), read when the file has them
# (files made before they existed do not; analysis_lib.models.classical says to rebuild).
RADIUS_TARGETS: dict[str, str] = {
    "log_mstar_0p5rhalf": "log10 Msun, stars in a 3D sphere of R_half / 2",
    "log_mtot_0p5rhalf": "log10 Msun, all matter in a 3D sphere of R_half / 2",
    "log_mdm_0p5rhalf": "log10 Msun, dark matter in a 3D sphere of R_half / 2",
    "log_mtot_wolf": "log10 Msun, all matter in a 3D sphere of 4/3 R_e (Wolf+2010's r_1/2, "
                     "R_e of this line of sight)",
}
CLASSICAL_OBSERVABLES: dict[str, str] = {
    "r_e_kpc": "kpc, projected radius holding half the dust-attenuated r light (circular R_e)",
    "sigma_re": "km/s, sqrt(sum F (V^2 + sigma^2) / sum F) of the Voronoi-binned maps inside "
                "a circle of R_e (Cappellari+2006's sigma_e)",
    "sigma_fov": "km/s, sqrt(sum F (V^2 + sigma^2) / sum F) of every valid binned spaxel of "
                 "the map field (Wolf+2010's luminosity-weighted <sigma_los^2> of the galaxy)",
}
OPTIONAL_COLUMNS = (("targets", RADIUS_TARGETS), ("meta", CLASSICAL_OBSERVABLES))
MAP_INPUTS = ("vel_map", "sigma_map", "map_mask")
ROOT_ATTRS = ("profile", "seed", "source", "code_version", "config", "units")


class DatasetError(ValueError):
    """A dataset file that is missing, corrupt or lacks a field; the message names both."""


def image_names(sizes: Iterable[int]) -> list[str]:
    """Input dataset names for the r and g images at each kept resolution."""
    return [f"image_{band}_{n}" for n in sizes for band in ("r", "g")]


def _record_scalars(record: dict, names: Iterable[str], where: str) -> dict[str, float]:
    missing = [n for n in names if n not in record]
    if missing:
        raise DatasetError(f"{where}: record lacks {', '.join(missing)}")
    return {n: record[n] for n in names}


# --------------------------------------------------------------------------- shards (resumable)


def shard_dir(out_path: Path, key: str = "") -> Path:
    """Per-galaxy results live here until the dataset is assembled, so a run can resume.

    With a key (the dataset key: settings + physics code), `<out>.parts/<key>/`: shards of a
    build with other settings (another seed) live in another folder and are never adopted.
    """
    base = Path(str(out_path) + ".parts")
    return base / key if key else base


def shard_path(out_path: Path, galaxy_id: int, key: str = "") -> Path:
    return shard_dir(out_path, key) / f"galaxy_{int(galaxy_id):07d}.npz"


def write_shard(out_path: Path, galaxy_id: int, records: list[dict], key: str = "") -> Path:
    """Write one galaxy's projections atomically (unique temporary file, then rename)."""
    path = shard_path(out_path, galaxy_id, key)
    arrays: dict[str, np.ndarray] = {}
    for name in records[0]:
        arrays[name] = np.stack([np.asarray(r[name]) for r in records])
    return atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".tmp.npz")


def read_shard(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # a torn or foreign file
        raise DatasetError(f"{path}: unreadable shard ({exc}); delete it to regenerate") from exc


def done_galaxies(out_path: Path, key: str = "") -> set[int]:
    """Galaxy ids whose shard already exists (a resumed run skips them)."""
    d = shard_dir(out_path, key)
    if not d.exists():
        return set()
    return {int(p.stem.split("_")[1]) for p in d.glob("galaxy_*.npz") if ".tmp" not in p.name}


def is_project_dataset(path: Path) -> bool:
    """True when `path` is an HDF5 file with the root attributes this project writes.

    What `dataset --out` may replace without --force: never a user's other file.
    """
    try:
        with h5py.File(path, "r") as f:
            return all(a in f.attrs for a in ROOT_ATTRS) and "image_sizes" in f.attrs
    except (OSError, ValueError):
        return False


def assemble(out_path: Path, galaxy_ids: list[int], attrs: dict, image_sizes: list[int],
             keep_shards: bool = False, key: str = "") -> Path:
    """Gather the shards of `galaxy_ids` (in id order) into one HDF5 file, atomically.

    The file is written to a unique temporary name beside `out_path` and renamed over it; the
    caller holds the output's lock (build.build_dataset) when other runs may share `out_path`.
    """
    out_path = Path(out_path)
    shards = [read_shard(shard_path(out_path, g, key)) for g in sorted(galaxy_ids)]
    if not shards:
        raise DatasetError(f"{out_path}: no galaxies to write")
    columns = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    atomic_write(out_path, lambda tmp: _write_h5(tmp, out_path, columns, attrs, image_sizes),
                 suffix=".h5.tmp")
    if not keep_shards:
        for g in galaxy_ids:
            shard_path(out_path, g, key).unlink(missing_ok=True)
        for leftover in ("dataset_key.txt", "failures.json"):
            (shard_dir(out_path, key) / leftover).unlink(missing_ok=True)
        for d in (shard_dir(out_path, key), shard_dir(out_path)):
            try:
                d.rmdir()
            except OSError:
                pass
    return out_path


def _write_h5(tmp: Path, out_path: Path, columns: dict, attrs: dict, image_sizes: list[int]
              ) -> None:
    with h5py.File(tmp, "w") as f:
        for name in image_names(image_sizes) + list(MAP_INPUTS):
            if name not in columns:
                raise DatasetError(f"{out_path}: observations lack input '{name}'")
            arr = columns[name]
            arr = arr.astype(bool) if name == "map_mask" else arr.astype(np.float32)
            f.create_dataset(f"inputs/{name}", data=arr, chunks=(1, *arr.shape[1:]),
                             compression="gzip", compression_opts=4, shuffle=True)
        for group, names in (("targets", TARGETS), ("features", FEATURES), ("meta", META)):
            for name, unit in names.items():
                if name not in columns:
                    raise DatasetError(f"{out_path}: observations lack {group[:-1]} '{name}'")
                dset = f.create_dataset(f"{group}/{name}", data=columns[name])
                dset.attrs["description"] = unit
        for name, unit in DIAGNOSTICS.items():
            if name in columns:
                f.create_dataset(f"diagnostics/{name}", data=columns[name]).attrs[
                    "description"] = unit
        optional = {}
        for group, names in OPTIONAL_COLUMNS:
            for name, unit in names.items():
                if name in columns:
                    f.create_dataset(f"{group}/{name}", data=columns[name]).attrs[
                        "description"] = unit
                    optional[name] = unit
        units = {**TARGETS, **FEATURES, **META, **optional,
                 **{k: v for k, v in DIAGNOSTICS.items() if k in columns},
                 "image": "Lsun per pixel", "map": "km/s"}
        meta_attrs = {"code_version": __version__, "units": json.dumps(units), **attrs}
        for key, value in meta_attrs.items():
            f.attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)
        f.attrs["image_sizes"] = np.asarray(image_sizes, dtype=int)


# --------------------------------------------------------------------------- reader


@dataclass
class GalaxyDataset:
    """A validated dataset file: a table of scalars in memory, image arrays read on demand."""

    path: Path
    table: pd.DataFrame
    attrs: dict
    image_sizes: list[int]

    @property
    def config(self) -> dict:
        return json.loads(self.attrs.get("config", "{}"))

    @property
    def solar_g_r(self) -> float | None:
        """g - r (AB) of the Sun in the bands whose solar units the images use; None if the
        file does not say (datasets made before the attribute existed)."""
        sun = json.loads(self.attrs.get("sun_abs_mag_ab", "null") or "null")
        return None if not sun else float(sun["g"]) - float(sun["r"])

    def identity(self) -> dict:
        """What distinguishes this dataset's content from another's, not where the file lies.

        Results in the store carry it (through their fingerprint), so a run made on a dataset
        with other content is redone rather than reused; a copy of the same dataset elsewhere,
        or one rebuilt identically, keeps its results.
        """
        import hashlib

        scalars = pd.util.hash_pandas_object(self.table, index=False).to_numpy()
        return {"source": str(self.attrs.get("source")), "rows": int(len(self.table)),
                "images": list(self.image_sizes), "code_version": str(self.attrs.get(
                    "code_version")), "scalars_sha1": hashlib.sha1(scalars.tobytes()).hexdigest()}

    def input_names(self) -> list[str]:
        return image_names(self.image_sizes) + list(MAP_INPUTS)

    def load_inputs(self, names: Iterable[str], rows: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
        """Arrays for the named inputs (all rows, or the given row indices, in that order)."""
        try:
            return self._load_inputs(names, rows)
        except OSError as exc:  # a damaged chunk (filter failure), a file gone or unreadable
            raise DatasetError(f"{self.path}: cannot read its inputs "
                               f"({' '.join(str(exc).split())})") from exc

    def _load_inputs(self, names: Iterable[str], rows: np.ndarray | None
                     ) -> dict[str, np.ndarray]:
        out = {}
        with h5py.File(self.path, "r") as f:
            for name in names:
                key = f"inputs/{name}"
                if key not in f:
                    raise DatasetError(f"{self.path}: no input '{name}' (have "
                                       f"{', '.join(self.input_names())})")
                if rows is None:
                    out[name] = f[key][...]
                else:
                    rows = np.asarray(rows)
                    order = np.argsort(rows)
                    data = f[key][np.sort(rows)] if len(rows) else f[key][:0]
                    inv = np.empty_like(order)
                    inv[order] = np.arange(len(order))
                    out[name] = data[inv]
        return out


def open_dataset(path: str | Path) -> GalaxyDataset:
    """Open and validate a dataset; a missing file or field gives one error naming it."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file (make one with "
                           "`python -m analysis_lib dataset`)")
    if path.is_dir():
        raise DatasetError(f"{path}: is a directory, not a dataset file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())})"
                           ) from exc
    try:
        return _read_validated(path, f)
    except OSError as exc:  # a damaged table (filter failure) inside a valid HDF5 file
        raise DatasetError(f"{path}: damaged dataset ({' '.join(str(exc).split())})") from exc
    finally:
        f.close()


def _read_validated(path: Path, f: h5py.File) -> GalaxyDataset:
    groups = (("targets", TARGETS), ("features", FEATURES), ("meta", META))
    missing = [f"{g}/{n}" for g, names in groups for n in names if f"{g}/{n}" not in f]
    missing += [a for a in ROOT_ATTRS if a not in f.attrs]
    if "image_sizes" not in f.attrs:
        missing.append("image_sizes")
    if missing:
        raise DatasetError(f"{path}: missing {', '.join(missing)}")
    sizes = [int(s) for s in f.attrs["image_sizes"]]
    for name in image_names(sizes) + list(MAP_INPUTS):
        if f"inputs/{name}" not in f:
            raise DatasetError(f"{path}: missing inputs/{name}")
    columns = {}
    for group, names in (("meta", META), ("targets", TARGETS), ("features", FEATURES)):
        for name in names:
            columns[name] = f[f"{group}/{name}"][...]
    for name in DIAGNOSTICS:
        if f"diagnostics/{name}" in f:
            columns[name] = f[f"diagnostics/{name}"][...]
    for group, names in OPTIONAL_COLUMNS:
        for name in names:
            if f"{group}/{name}" in f:
                columns[name] = f[f"{group}/{name}"][...]
    attrs = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v)
             for k, v in f.attrs.items()}
    table = pd.DataFrame(columns)
    return GalaxyDataset(path=path, table=table, attrs=attrs, image_sizes=sizes)
