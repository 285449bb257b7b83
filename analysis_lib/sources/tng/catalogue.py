"""The subhalo catalogue kept beside downloaded cutouts: subhalos.json (or a subhalos.csv).

The web API's cutout files hold particles but not Subfind's centre, and may lack BoxSize. The API
client therefore writes `subhalos.json` next to the cutouts:

    {"simulation": "TNG100-1", "snapshot": 99, "boxsize": 75000.0, "hubble": 0.6774,
     "mass_dm": ..., "redshift": 0.0,
     "subhalos": [{"id": 12, "sfr": ..., "mass_log_msun": ..., "url": ...}, ...]}

Records use the API's names and code units. The service's subhalo LIST gives only
`{id, sfr, mass_log_msun, url}` (LIST_FIELDS: sfr in Msun/yr, mass_log_msun = log10 of the total
Subfind mass in Msun); `--details` merges in each subhalo's full record (pos_* in ckpc/h, vel_*
peculiar km/s, mass_stars in 1e10 Msun/h, halfmassrad_stars in ckpc/h, ...), which the catalogue
centre and the per-galaxy cross-check (crosscheck.py) need. A user may instead supply
`subhalos.csv` with at least an `id` column (and pos_x..z, vel_x..z for a catalogue centre,
mass_stars / halfmassrad_stars for the cross-check). Both are optional: the default centre is the
stars' potential minimum, found in the cutout itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis_lib.io import atomic_write_text
from analysis_lib.particles import GalaxyInputError

CATALOGUE_JSON = "subhalos.json"
CATALOGUE_CSV = "subhalos.csv"
LIST_FIELDS = ("id", "sfr", "mass_log_msun", "url")  # what the API's subhalo list returns


@dataclass
class SubhaloCatalogue:
    """Subhalo records by id, plus the simulation facts the cutouts may lack."""

    records: dict[int, dict] = field(default_factory=dict)
    simulation: str | None = None
    snapshot: int | None = None
    box_size: float | None = None  # ckpc/h
    hubble: float | None = None
    mass_dm: float | None = None  # dark-matter particle mass, 1e10 Msun/h
    redshift: float | None = None  # of the snapshot
    path: Path | None = None  # the file it was read from, for error messages

    def header_fallback(self) -> dict:
        """Header attributes this catalogue can supply to a cutout that lacks them."""
        out: dict = {"BoxSize": self.box_size, "HubbleParam": self.hubble}
        if self.mass_dm is not None:
            out["MassTable"] = [0.0, self.mass_dm, 0.0, 0.0, 0.0, 0.0]
        if self.redshift is not None:
            out["Time"] = 1.0 / (1.0 + self.redshift)
        return out

    def position(self, subhalo_id: int) -> np.ndarray | None:
        """SubhaloPos (ckpc/h, box coordinates) if the record has pos_x/y/z."""
        return self._vector(subhalo_id, "pos")

    def velocity(self, subhalo_id: int) -> np.ndarray | None:
        """SubhaloVel (peculiar km/s) if the record has vel_x/y/z."""
        return self._vector(subhalo_id, "vel")

    def _vector(self, subhalo_id: int, prefix: str) -> np.ndarray | None:
        rec = self.records.get(int(subhalo_id))
        keys = [f"{prefix}_{c}" for c in "xyz"]
        if rec is None or any(k not in rec or rec[k] is None for k in keys):
            return None
        try:
            vec = np.array([float(rec[k]) for k in keys])
            return vec if np.all(np.isfinite(vec)) else None  # empty CSV cells read as NaN
        except (TypeError, ValueError):
            raise GalaxyInputError(
                f"{self.path}: subhalo {subhalo_id} field '{prefix}_x/y/z' is not numeric "
                f"({[rec[k] for k in keys]})") from None


def read_catalogue(directory: str | Path) -> SubhaloCatalogue | None:
    """The catalogue in `directory` (JSON preferred over CSV), or None if there is none."""
    directory = Path(directory)
    js, csv = directory / CATALOGUE_JSON, directory / CATALOGUE_CSV
    if js.exists():
        try:
            data = json.loads(js.read_text())
            records = {int(r["id"]): r for r in data.get("subhalos", [])}
        except (ValueError, KeyError, TypeError) as exc:
            raise GalaxyInputError(f"{js}: not a valid subhalo catalogue ({exc})") from None
        def num(key: str) -> float | None:
            return None if data.get(key) is None else float(data[key])

        snap = data.get("snapshot")
        return SubhaloCatalogue(records=records, simulation=data.get("simulation"),
                                snapshot=None if snap is None else int(snap),
                                box_size=num("boxsize"), hubble=num("hubble"),
                                mass_dm=num("mass_dm"), redshift=num("redshift"), path=js)
    if csv.exists():
        import pandas as pd

        try:
            table = pd.read_csv(csv)
        except (ValueError, OSError) as exc:
            raise GalaxyInputError(f"{csv}: not a readable CSV catalogue ({exc})") from None
        if "id" not in table.columns:
            raise GalaxyInputError(f"{csv}: column 'id' is missing")
        records = {int(r["id"]): r for r in table.to_dict(orient="records")}
        return SubhaloCatalogue(records=records, path=csv)
    return None


def write_catalogue(directory: str | Path, records: list[dict], *, simulation: str,
                    snapshot: int, box_size: float | None, hubble: float | None,
                    mass_dm: float | None = None, redshift: float | None = None) -> Path:
    """Write subhalos.json atomically (temporary file, then rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"simulation": simulation, "snapshot": int(snapshot), "boxsize": box_size,
               "hubble": hubble, "mass_dm": mass_dm, "redshift": redshift, "subhalos": records}
    return atomic_write_text(directory / CATALOGUE_JSON, json.dumps(payload, indent=1))
