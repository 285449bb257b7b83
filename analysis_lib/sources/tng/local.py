"""TNG galaxies from a local copy of the simulation, read with illustris_python.

For users who have the simulation on disk (as on the TNG project's hosted JupyterLab): the group
catalogue (groups_099/), the snapshot chunks (snapdir_099/) and the offsets file
(../postprocessing/offsets/offsets_099.hdf5), laid out as illustris_python expects. The particles
of one subhalo are read with `illustris_python.snapshot.loadSubhalo` and converted by the same
function as the cutouts (convert.subhalo_to_galaxy). Without explicit `subhalo_ids`, the sample is
selected from the group catalogue with the paper's cuts in catalogue units (selection.py) and
SubhaloFlag == 1; the 30-kpc stellar-mass cut is then `selection.passes_sample_cuts`.

On the TNG project's JupyterLab the base path of TNG100-1 is /home/tnguser/sims.TNG/TNG100-1/output
(the offsets live in /home/tnguser/sims.TNG/TNG100-1/postprocessing/offsets/).

Cost: the dataset build makes one source per worker process. The constructor reads only the
first snapshot chunk's header (and the chunks needed to list each particle type's fields); the
group-catalogue scan for the sample happens in `galaxy_ids()`, which workers never call, and is
cached per process (`_scan_sample`), as are the header and fields (`_snapshot_facts`).
Each `load` reads its subhalo's catalogue entry (one record) for the cross-check (crosscheck.py).
"""

from __future__ import annotations

import functools
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
from analysis_lib.sources.tng.crosscheck import apply_catalogue_check, check_mode
from analysis_lib.sources.tng.photometry import SUN_ABS_MAG_AB
from analysis_lib.sources.tng.selection import catalogue_mass_limits


def _il():
    import illustris_python as il

    return il


def total_particle_counts(attrs: Mapping) -> np.ndarray:
    """Particles per type in the whole snapshot: NumPart_Total + 2**32 NumPart_Total_HighWord.

    The header stores the totals as 32-bit words; TNG300-1 (2500^3 = 1.6e10 dark-matter
    particles) and TNG50-1 (2160^3 = 1.0e10) need the high word. None of each: zeros.
    """
    low = np.asarray(attrs.get("NumPart_Total", np.zeros(6)), dtype=np.uint64)
    high = np.asarray(attrs.get("NumPart_Total_HighWord", np.zeros_like(low)), dtype=np.uint64)
    return (low + (high << np.uint64(32))).astype(np.int64)


@functools.lru_cache(maxsize=8)
def _snapshot_facts(base_path: str, snap: int) -> tuple[dict, dict[str, frozenset[str]]]:
    """Header attributes of chunk 0 and the datasets per particle type (cached per process).

    Fields come from the first chunk holding each type present in the snapshot (totals with the
    high word); each dataset's unit attributes are checked (convert.check_units).
    """
    il = _il()
    snap_file = Path(il.snapshot.snapPath(base_path, snap))
    if not snap_file.exists():
        raise GalaxyInputError(f"{snap_file}: snapshot file not found")
    try:
        with h5py.File(snap_file, "r") as fh:
            attrs = dict(fh["Header"].attrs.items())
    except (OSError, KeyError) as exc:
        raise GalaxyInputError(f"{snap_file}: cannot read group 'Header' ({exc})") from None
    totals = total_particle_counts(attrs)
    wanted = [g for g in FIELDS if "NumPart_Total" not in attrs or totals[int(g[-1])] > 0]
    found: dict[str, frozenset[str]] = {}
    for chunk in range(int(attrs.get("NumFilesPerSnapshot", 1))):
        path = il.snapshot.snapPath(base_path, snap, chunk)
        with h5py.File(path, "r") as fh:
            for group in wanted:
                if group in found or group not in fh or len(fh[group].keys()) == 0:
                    continue
                found[group] = frozenset(fh[group].keys())
                for name in found[group]:
                    check_units(path, group, name, fh[group][name].attrs)
        if len(found) == len(wanted):
            break
    return attrs, found


@functools.lru_cache(maxsize=8)
def _scan_sample(base_path: str, snap: int, mstar_min: float, mass_max: float) -> tuple[int, ...]:
    """Subhalo ids passing the catalogue cuts: one group-catalogue scan per process and cuts."""
    il = _il()
    where = f"{base_path} (snapshot {snap})"
    try:
        cat = il.groupcat.loadSubhalos(base_path, snap, fields=["SubhaloMassType", "SubhaloMass"])
        try:
            flag = il.groupcat.loadSubhalos(base_path, snap, fields=["SubhaloFlag"])
        except Exception:  # older catalogues have no SubhaloFlag: keep every subhalo
            flag = np.ones(len(cat["SubhaloMass"]), dtype=bool)
    except Exception as exc:
        raise GalaxyInputError(f"{where}: cannot read the group catalogue ({exc})") from None
    keep = ((cat["SubhaloMassType"][:, 4] > mstar_min) & (cat["SubhaloMass"] < mass_max)
            & (np.asarray(flag) == 1))
    return tuple(int(i) for i in np.flatnonzero(keep))


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
        check_mode(cfg)  # a bad tng.catalogue_check fails here, not in every galaxy
        attrs, self._fields = _snapshot_facts(self.base_path, self.snap)
        self._snap_file = Path(_il().snapshot.snapPath(self.base_path, self.snap))
        self.header = TngHeader.from_attrs(attrs, str(self._snap_file))
        self.n_particles_total = total_particle_counts(attrs)
        if subhalo_ids is None and cfg is None:
            raise ValueError("TngLocalSource needs subhalo_ids or a cfg with the sample cuts")
        self._ids = None if subhalo_ids is None else sorted(int(i) for i in subhalo_ids)

    def select_sample(self, cfg: Mapping) -> list[int]:
        """Subhalo ids passing the catalogue cuts (stellar mass, total mass, SubhaloFlag)."""
        mstar_min, mass_max = catalogue_mass_limits(cfg, self.header.hubble)
        return list(_scan_sample(self.base_path, self.snap, float(mstar_min), float(mass_max)))

    def galaxy_ids(self) -> list[int]:
        """The ids given, or the catalogue selection (scanned on first use, once per process)."""
        if self._ids is None:
            self._ids = self.select_sample(self.cfg)
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
        centre = velocity = sub = None
        want_centre = self.settings["centre"] == "catalogue"
        if want_centre or check_mode(self.cfg) != "off":
            try:
                sub = il.groupcat.loadSingle(self.base_path, self.snap, subhaloID=gid)
            except Exception as exc:
                raise GalaxyInputError(f"{origin}: cannot read its catalogue entry ({exc})") \
                    from None
        if want_centre:
            centre, velocity = np.asarray(sub["SubhaloPos"]), np.asarray(sub["SubhaloVel"])
        galaxy = subhalo_to_galaxy(raw, self.header, gid, origin=origin, cfg=self.cfg,
                                   snapshot=self.snap, centre_ckpc_h=centre,
                                   bulk_velocity_kms=velocity)
        return apply_catalogue_check(galaxy, _api_record(sub), self.header.scale_factor,
                                     self.header.hubble, self.cfg, origin)


def _api_record(sub: Mapping | None) -> dict:
    """The cross-check's quantities from a group-catalogue entry, under the API's names."""
    if sub is None:
        return {}
    rec = {}
    if "SubhaloMassType" in sub:
        rec["mass_stars"] = float(np.asarray(sub["SubhaloMassType"])[4])
    if "SubhaloHalfmassRadType" in sub:
        rec["halfmassrad_stars"] = float(np.asarray(sub["SubhaloHalfmassRadType"])[4])
    return rec
