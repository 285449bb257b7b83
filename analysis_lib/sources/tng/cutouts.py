"""TNG subhalo cutouts on disk (one HDF5 file per subhalo, as the web API saves them).

`TngCutoutSource(directory, cfg)` has the interface of every source: `.galaxy_ids()` and
`.load(galaxy_id) -> particles.Galaxy`. Files are named `cutout_{id}.hdf5`, the API's own name.
Unit conversion, centring and the galaxy type are in convert.py (shared with the local-copy
reader). The centre comes from the cutout's star Potential unless cfg tng.centre is 'catalogue'
or the Potential was not downloaded; then from `subhalos.json`/`subhalos.csv` (catalogue.py).
A cutout header without BoxSize (or MassTable) takes it from the catalogue's `boxsize` (`mass_dm`).
Without Potential and catalogue position the centre is the stars' shrinking sphere (centring.py).
Each galaxy is cross-checked against its catalogue record when that has `mass_stars` /
`halfmassrad_stars` (crosscheck.py; `--details` downloads fetch them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from analysis_lib.particles import Galaxy, GalaxyInputError
from analysis_lib.sources.tng.catalogue import SubhaloCatalogue, read_catalogue
from analysis_lib.sources.tng.convert import (
    FIELDS,
    STARS,
    RawSubhalo,
    TngHeader,
    check_units,
    subhalo_to_galaxy,
    tng_settings,
)
from analysis_lib.sources.tng.crosscheck import apply_catalogue_check, check_mode
from analysis_lib.sources.tng.photometry import SUN_ABS_MAG_AB

CUTOUT_NAME = "cutout_{id}.hdf5"
_CUTOUT_RE = re.compile(r"^cutout_(\d+)\.hdf5$")


def cutout_path(directory: str | Path, subhalo_id: int) -> Path:
    """Where the cutout of one subhalo lives in a cutout directory."""
    return Path(directory) / CUTOUT_NAME.format(id=int(subhalo_id))


def read_cutout(path: str | Path) -> tuple[RawSubhalo, dict]:
    """Raw arrays of the fields the conversion uses, and the Header attributes.

    Checks the unit attributes of each dataset (convert.check_units). Groups with no datasets
    (no particles of that type) are left out, as if absent.
    """
    path = Path(path)
    origin = str(path)
    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise GalaxyInputError(f"{origin}: not a readable HDF5 file ({exc})") from None
    with fh:
        if "Header" not in fh:
            raise GalaxyInputError(f"{origin}: group 'Header' is missing")
        attrs = dict(fh["Header"].attrs.items())
        raw: RawSubhalo = {}
        for group, (required, optional) in FIELDS.items():
            if group not in fh or len(fh[group].keys()) == 0:
                continue
            raw[group] = {}
            for name in required + optional:
                if name not in fh[group]:
                    continue
                dset = fh[group][name]
                check_units(origin, group, name, dset.attrs)
                try:
                    raw[group][name] = dset[()]
                except (OSError, ValueError) as exc:
                    raise GalaxyInputError(
                        f"{origin}: field '{group}/{name}' cannot be read ({exc})") from None
    return raw, attrs


class TngCutoutSource:
    """Galaxies from a directory of TNG cutout files (see module docstring)."""

    sun_abs_mag_ab = SUN_ABS_MAG_AB  # luminosities are in SDSS solar units

    def __init__(self, directory: str | Path, cfg: Mapping | None = None,
                 subhalo_ids: Iterable[int] | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise GalaxyInputError(f"{self.directory}: cutout directory does not exist")
        self.cfg = cfg
        self.settings = tng_settings(cfg)
        if self.settings["centre"] not in ("potential", "catalogue"):
            raise ValueError(f"tng.centre must be 'potential' or 'catalogue', "
                             f"not {self.settings['centre']!r}")
        check_mode(cfg)  # a bad tng.catalogue_check fails here, not in every galaxy
        self.catalogue: SubhaloCatalogue | None = read_catalogue(self.directory)
        self._ids = None if subhalo_ids is None else sorted(int(i) for i in subhalo_ids)

    def galaxy_ids(self) -> list[int]:
        """Subhalo ids of the cutout files present (`.part` downloads are ignored), or the ids
        given to the constructor."""
        if self._ids is not None:
            return list(self._ids)
        ids = []
        for p in self.directory.iterdir():
            m = _CUTOUT_RE.match(p.name)
            if m and p.is_file():
                ids.append(int(m.group(1)))
        return sorted(ids)

    def load(self, galaxy_id: int) -> Galaxy:
        """The subhalo's galaxy, centred and at rest, in the units of particles.py."""
        path = cutout_path(self.directory, galaxy_id)
        if not path.exists():
            raise GalaxyInputError(f"{path}: no cutout file for subhalo {galaxy_id}")
        raw, attrs = read_cutout(path)
        cat = self.catalogue
        header = TngHeader.from_attrs(attrs, str(path),
                                      fallback=cat.header_fallback() if cat is not None else None)
        centre, velocity = self._catalogue_centre(raw, galaxy_id, path)
        snapshot = cat.snapshot if cat is not None and cat.snapshot is not None else None
        galaxy = subhalo_to_galaxy(raw, header, galaxy_id, origin=str(path), cfg=self.cfg,
                                   snapshot=snapshot, centre_ckpc_h=centre,
                                   bulk_velocity_kms=velocity)
        record = cat.records.get(int(galaxy_id)) if cat is not None else None
        return apply_catalogue_check(galaxy, record, header.scale_factor, header.hubble,
                                     self.cfg, str(path))

    def _catalogue_centre(self, raw: RawSubhalo, galaxy_id: int,
                          path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Catalogue position/velocity when asked for, or when the cutout has no Potential."""
        want = self.settings["centre"] == "catalogue"
        lacks_potential = STARS in raw and "Potential" not in raw[STARS]
        if not (want or lacks_potential):
            return None, None
        cat = self.catalogue
        pos = cat.position(galaxy_id) if cat is not None else None
        if pos is None:
            if want:
                raise GalaxyInputError(
                    f"{path}: tng.centre is 'catalogue' but {self.directory} has no subhalos.json "
                    f"or subhalos.csv record with pos_x/pos_y/pos_z for subhalo {galaxy_id}")
            return None, None  # the conversion reports the missing Potential
        return pos, cat.velocity(galaxy_id)
