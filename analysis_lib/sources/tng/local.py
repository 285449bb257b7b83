"""TNG galaxies from a local copy of the simulation, read with illustris_python.

For users who have the simulation on disk (as on the TNG project's hosted JupyterLab): the group
catalogue (groups_099/), the snapshot chunks (snapdir_099/) and the offsets file
(../postprocessing/offsets/offsets_099.hdf5), laid out as illustris_python expects. The particles
of one subhalo are read with `illustris_python.snapshot.loadSubhalo` and converted by the same
function as the cutouts (convert.subhalo_to_galaxy). Without explicit `subhalo_ids`, the sample is
selected from the group catalogue with the paper's cuts in catalogue units (selection.py) and
SubhaloFlag == 1; the 30-kpc stellar-mass cut is then `selection.passes_sample_cuts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from analysis_lib.particles import Galaxy, GalaxyInputError
from analysis_lib.sources.tng.convert import (
    FIELDS,
    RawSubhalo,
    TngHeader,
    check_units,
    subhalo_to_galaxy,
    tng_settings,
)
from analysis_lib.sources.tng.photometry import SUN_ABS_MAG_AB
from analysis_lib.sources.tng.selection import catalogue_mass_limits


def _il():
    import illustris_python as il

    return il


class TngLocalSource:
    """Galaxies of one snapshot of a simulation on disk (see module docstring)."""

    sun_abs_mag_ab = SUN_ABS_MAG_AB  # luminosities are in SDSS solar units

    def __init__(self, base_path: str | Path, subhalo_ids: Iterable[int] | None = None,
                 cfg: Mapping | None = None, snap: int | None = None) -> None:
        self.base_path = str(base_path)
        self.cfg = cfg
        self.settings = tng_settings(cfg)
        self.snap = int(snap if snap is not None else self.settings["snapshot"])
        self._where = f"{self.base_path} (snapshot {self.snap})"
        self._snap_file = Path(_il().snapshot.snapPath(self.base_path, self.snap))
        if not self._snap_file.exists():
            raise GalaxyInputError(f"{self._snap_file}: snapshot file not found")
        try:
            with h5py.File(self._snap_file, "r") as fh:
                attrs = dict(fh["Header"].attrs.items())
        except (OSError, KeyError) as exc:
            raise GalaxyInputError(
                f"{self._snap_file}: cannot read group 'Header' ({exc})") from None
        self.header = TngHeader.from_attrs(attrs, str(self._snap_file))
        self._n_files = int(attrs.get("NumFilesPerSnapshot", 1))
        self._fields = self._available_fields()
        if subhalo_ids is None:
            if cfg is None:
                raise ValueError("TngLocalSource needs subhalo_ids or a cfg with the sample cuts")
            self._ids = self.select_sample(cfg)
        else:
            self._ids = sorted(int(i) for i in subhalo_ids)

    def _available_fields(self) -> dict[str, set[str]]:
        """Datasets per particle type, from the first snapshot chunk holding that type.

        Also checks each dataset's unit attributes (convert.check_units).
        """
        il = _il()
        found: dict[str, set[str]] = {}
        for chunk in range(self._n_files):
            path = il.snapshot.snapPath(self.base_path, self.snap, chunk)
            with h5py.File(path, "r") as fh:
                for group in FIELDS:
                    if group in found or group not in fh or len(fh[group].keys()) == 0:
                        continue
                    found[group] = set(fh[group].keys())
                    for name in found[group]:
                        check_units(path, group, name, fh[group][name].attrs)
            if len(found) == len(FIELDS):
                break
        return found

    def select_sample(self, cfg: Mapping) -> list[int]:
        """Subhalo ids passing the catalogue cuts (stellar mass, total mass, SubhaloFlag)."""
        il = _il()
        mstar_min, mass_max = catalogue_mass_limits(cfg, self.header.hubble)
        try:
            cat = il.groupcat.loadSubhalos(self.base_path, self.snap,
                                           fields=["SubhaloMassType", "SubhaloMass"])
            try:
                flag = il.groupcat.loadSubhalos(self.base_path, self.snap, fields=["SubhaloFlag"])
            except Exception:  # older catalogues have no SubhaloFlag: keep every subhalo
                flag = np.ones(len(cat["SubhaloMass"]), dtype=bool)
        except Exception as exc:
            raise GalaxyInputError(f"{self._where}: cannot read the group catalogue ({exc})") \
                from None
        keep = ((cat["SubhaloMassType"][:, 4] > mstar_min) & (cat["SubhaloMass"] < mass_max)
                & (np.asarray(flag) == 1))
        return [int(i) for i in np.flatnonzero(keep)]

    def galaxy_ids(self) -> list[int]:
        return list(self._ids)

    def load(self, galaxy_id: int) -> Galaxy:
        """The subhalo's galaxy, centred and at rest, in the units of particles.py."""
        il = _il()
        gid = int(galaxy_id)
        origin = f"{self._where} subhalo {gid}"
        raw: RawSubhalo = {}
        for group, (required, optional) in FIELDS.items():
            if group not in self._fields:
                continue
            names = [n for n in required + optional if n in self._fields[group]]
            missing = [n for n in required if n not in self._fields[group]]
            if missing:
                raise GalaxyInputError(f"{origin}: field '{group}/{missing[0]}' is missing")
            if not names:
                continue
            try:
                data = il.snapshot.loadSubhalo(self.base_path, self.snap, gid, int(group[-1]),
                                               fields=names)
            except Exception as exc:
                raise GalaxyInputError(f"{origin}: cannot read '{group}' ({exc})") from None
            if isinstance(data, np.ndarray):  # illustris_python returns a bare array for 1 field
                data = {names[0]: data}
            if int(data.get("count", len(data[names[0]]))) == 0:
                continue
            raw[group] = {n: data[n] for n in names}
        centre = velocity = None
        if self.settings["centre"] == "catalogue":
            try:
                sub = il.groupcat.loadSingle(self.base_path, self.snap, subhaloID=gid)
            except Exception as exc:
                raise GalaxyInputError(f"{origin}: cannot read its catalogue entry ({exc})") \
                    from None
            centre, velocity = np.asarray(sub["SubhaloPos"]), np.asarray(sub["SubhaloVel"])
        return subhalo_to_galaxy(raw, self.header, gid, origin=origin, cfg=self.cfg,
                                 snapshot=self.snap, centre_ckpc_h=centre,
                                 bulk_velocity_kms=velocity)
