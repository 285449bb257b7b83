"""A small client for the public IllustrisTNG web API: select the paper's sample, fetch cutouts.

Standard library only (urllib). The API key is read from the environment variable TNG_API_KEY and
sent in the 'api-key' header; it is never printed, logged, written to a file or put in an
exception message, and it is not forwarded when a redirect or a `next` link leaves the API host.

Behaviour, for a service with no published rate limit:
- one request at a time, in sequence;
- HTTP 429 and 5xx, dropped connections and truncated bodies are retried with exponential
  back-off (honouring Retry-After), up to `max_retries` times;
- cutouts are written to `cutout_{id}.hdf5.part`, checked (byte count against Content-Length,
  opens as HDF5 with a Header), then renamed: an interrupted run never leaves a partial
  `cutout_{id}.hdf5`, and a rerun skips every complete file (resumable);
- `subhalos.json` (catalogue.py) records the selection and the simulation's box size, h,
  dark-matter particle mass and the snapshot redshift, which cutout headers may lack.

Selection (paper's cuts, catalogue units 1e10 Msun/h, see selection.py): mass_stars above the
stellar-mass cut, mass (total Subfind mass) below the cluster cut, subhaloflag = 1, at the
configured snapshot (99, z = 0). The exact 30-kpc stellar-mass cut is applied after loading.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from analysis_lib.sources.tng.catalogue import write_catalogue
from analysis_lib.sources.tng.convert import BH, DM, FIELDS, GAS, STARS, tng_settings
from analysis_lib.sources.tng.cutouts import cutout_path
from analysis_lib.sources.tng.selection import catalogue_mass_limits

log = logging.getLogger(__name__)

API_BASE = "https://www.tng-project.org/api/"
API_KEY_ENV = "TNG_API_KEY"
_API_NAMES = {STARS: "stars", GAS: "gas", DM: "dm", BH: "bhs"}
_CHUNK = 1 << 16


class TngApiError(RuntimeError):
    """A request to the TNG API that failed for good (the message never contains the key)."""


def cutout_fields(include_dm_velocities: bool = False) -> dict[str, str]:
    """The cutout query: per particle type, the fields the conversion reads (convert.FIELDS).

    Dark-matter velocities are skipped by default (the targets need only DM positions), which
    roughly halves the download.
    """
    query = {}
    for group, (required, optional) in FIELDS.items():
        names = list(required) + list(optional)
        if group == DM and not include_dm_velocities:
            names = list(required)
        query[_API_NAMES[group]] = ",".join(names)
    return query


def is_complete_cutout(path: Path) -> bool:
    """True if the file opens as HDF5 and has a Header group (what a finished download has)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            return "Header" in fh
    except (OSError, ValueError):
        return False


class _SameHostRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop the api-key header when the redirect leaves the host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != \
                urllib.parse.urlsplit(req.full_url).netloc:
            for key in list(new.headers):
                if key.lower() == "api-key":
                    del new.headers[key]
        return new


class TngApiClient:
    """Sequential, retrying access to one simulation of the TNG web API."""

    def __init__(self, simulation: str = "TNG100-1", base_url: str = API_BASE,
                 api_key: str | None = None, timeout_s: float = 120.0, max_retries: int = 6,
                 backoff_s: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not key:
            raise TngApiError(f"no TNG API key: set the environment variable {API_KEY_ENV} "
                              "(your key from https://www.tng-project.org/users/profile/)")
        self._key = key
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.simulation = simulation
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._host = urllib.parse.urlsplit(self.base_url).netloc
        self._opener = urllib.request.build_opener(_SameHostRedirect())

    def __repr__(self) -> str:
        return f"TngApiClient(simulation={self.simulation!r}, base_url={self.base_url!r})"

    # -- transport ---------------------------------------------------------------------------
    def url(self, path: str, params: Mapping | None = None) -> str:
        """Absolute URL for a path below the base (or an absolute URL on the API host)."""
        url = path if "://" in path else urllib.parse.urljoin(self.base_url, path.lstrip("/"))
        if urllib.parse.urlsplit(url).netloc != self._host:
            raise TngApiError(f"refusing to send the API key to another host: {url}")
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _open(self, url: str, accept: str):
        """Open a URL with retries on 429/5xx and connection errors; returns the response."""
        request = urllib.request.Request(url, headers={"api-key": self._key, "Accept": accept})
        for attempt in range(self.max_retries + 1):
            wait = self.backoff_s * 2**attempt
            try:
                return self._opener.open(request, timeout=self.timeout_s)
            except urllib.error.HTTPError as exc:
                status, reason = exc.code, exc.reason
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                exc.close()
                if status != 429 and status < 500:
                    hint = " (check TNG_API_KEY)" if status in (401, 403) else ""
                    raise TngApiError(f"HTTP {status} {reason} for {url}{hint}") from None
                if retry_after and retry_after.strip().isdigit():
                    wait = max(wait, float(retry_after))
                problem = f"HTTP {status} {reason}"
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt == self.max_retries:
                raise TngApiError(f"{problem} for {url}, after {attempt + 1} attempts") from None
            log.warning("TNG API: %s for %s; retrying in %.0f s", problem, url, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def get_json(self, path: str, params: Mapping | None = None) -> dict:
        """GET a JSON document (retried as in _open)."""
        url = self.url(path, params)
        for attempt in range(self.max_retries + 1):
            with self._open(url, "application/json") as resp:
                try:
                    body = resp.read()
                except (http.client.HTTPException, OSError) as exc:
                    if attempt == self.max_retries:
                        raise TngApiError(f"{type(exc).__name__} reading {url}") from None
                    self._sleep(self.backoff_s * 2**attempt)
                    continue
            try:
                return json.loads(body)
            except ValueError:
                raise TngApiError(f"{url} did not return JSON") from None
        raise AssertionError("unreachable")

    def download(self, path: str, dest: Path, params: Mapping | None = None) -> Path:
        """Download to dest atomically: dest.part, verify (length, HDF5 Header), rename."""
        url = self.url(path, params)
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        try:
            for attempt in range(self.max_retries + 1):
                problem = self._download_once(url, part)
                if problem is None:
                    break
                if attempt == self.max_retries:
                    raise TngApiError(f"{problem} for {url}, after {attempt + 1} attempts")
                log.warning("TNG API: %s for %s; retrying", problem, url)
                self._sleep(self.backoff_s * 2**attempt)
            if not is_complete_cutout(part):
                raise TngApiError(f"{url} did not return an HDF5 file with a Header group")
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    def _download_once(self, url: str, part: Path) -> str | None:
        """One attempt; returns None on success or a description of what went wrong."""
        with self._open(url, "application/x-hdf5, application/octet-stream") as resp:
            expected = resp.headers.get("Content-Length")
            received = 0
            try:
                with open(part, "wb") as fh:
                    while chunk := resp.read(_CHUNK):
                        fh.write(chunk)
                        received += len(chunk)
            except (http.client.HTTPException, OSError) as exc:
                return f"download interrupted ({type(exc).__name__}) after {received} bytes"
        if expected is not None and received != int(expected):
            return f"truncated download: {received} of {expected} bytes"
        return None

    # -- TNG queries ---------------------------------------------------------------------------
    def simulation_info(self) -> dict:
        """The simulation record (boxsize, hubble, mass_dm, ...)."""
        return self.get_json(f"{self.simulation}/")

    def select_subhalos(self, snapshot: int, mass_stars_min: float, mass_max: float,
                        page_size: int = 1000, limit: int | None = None) -> list[dict]:
        """Subhalo list records passing the cuts (catalogue units), following `next` links."""
        params = {"mass_stars__gt": repr(float(mass_stars_min)), "mass__lt": repr(float(mass_max)),
                  "subhaloflag": 1, "limit": int(page_size), "order_by": "id"}
        page = self.get_json(f"{self.simulation}/snapshots/{int(snapshot)}/subhalos/", params)
        records = list(page.get("results", []))
        while page.get("next") and (limit is None or len(records) < limit):
            page = self.get_json(page["next"])
            records.extend(page.get("results", []))
        return records if limit is None else records[:limit]

    def subhalo(self, snapshot: int, subhalo_id: int) -> dict:
        """The full record of one subhalo (pos_*, vel_*, masses, radii, ...)."""
        return self.get_json(f"{self.simulation}/snapshots/{int(snapshot)}/subhalos/"
                             f"{int(subhalo_id)}/")

    def download_cutouts(self, subhalo_ids: Iterable[int], out_dir: str | Path, snapshot: int,
                         fields: Mapping[str, str] | None = None,
                         progress: bool = True) -> list[Path]:
        """Fetch one cutout per subhalo into out_dir, skipping complete files already there."""
        from tqdm.auto import tqdm

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        query = dict(fields) if fields is not None else cutout_fields()
        paths = []
        for sid in tqdm(list(subhalo_ids), desc="TNG cutouts", unit="subhalo",
                        disable=not progress):
            dest = cutout_path(out_dir, sid)
            if not (dest.exists() and is_complete_cutout(dest)):
                self.download(f"{self.simulation}/snapshots/{int(snapshot)}/subhalos/{int(sid)}"
                              "/cutout.hdf5", dest, query)
            paths.append(dest)
        return paths


def fetch_sample(cfg: Mapping, out_dir: str | Path, client: TngApiClient | None = None,
                 limit: int | None = None, details: bool = False,
                 progress: bool = True) -> list[int]:
    """Select the paper's sample from the API and download its cutouts into out_dir.

    Writes subhalos.json (selection plus simulation facts) first, then the cutouts; rerunning
    resumes. With `details`, each subhalo's full record (SubhaloPos/Vel, ...) is fetched too (one
    more request per galaxy), enabling tng.centre = 'catalogue'. Returns the selected ids.
    """
    settings = tng_settings(cfg)
    client = client or TngApiClient(simulation=settings["simulation"],
                                    base_url=settings.get("api_base", API_BASE))
    snapshot = int(settings["snapshot"])
    sim = client.simulation_info()
    redshift = client.get_json(f"{client.simulation}/snapshots/{snapshot}/").get("redshift")
    hubble = float(sim.get("hubble", 0.6774))
    mstar_min, mass_max = catalogue_mass_limits(cfg, hubble)
    records = client.select_subhalos(snapshot, mstar_min, mass_max, limit=limit)
    if details:
        records = [client.subhalo(snapshot, int(r["id"])) for r in records]
    write_catalogue(out_dir, records, simulation=client.simulation, snapshot=snapshot,
                    box_size=sim.get("boxsize"), hubble=hubble, mass_dm=sim.get("mass_dm"),
                    redshift=redshift)
    ids = [int(r["id"]) for r in records]
    client.download_cutouts(ids, out_dir, snapshot, progress=progress)
    return ids


def main(argv: list[str] | None = None) -> int:
    """`python -m analysis_lib.sources.tng.api --out DIR [--profile P] [--limit N] [--details]`."""
    import argparse

    from analysis_lib.config import load_config

    parser = argparse.ArgumentParser(
        description="Download the paper's TNG sample as cutouts (needs TNG_API_KEY); resumable.")
    parser.add_argument("--out", required=True, help="directory for cutout_{id}.hdf5 files")
    parser.add_argument("--profile", default="paper", help="configuration profile (sample cuts)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="configuration override, e.g. tng.simulation=TNG50-1")
    parser.add_argument("--limit", type=int, default=None, help="at most this many subhalos")
    parser.add_argument("--details", action="store_true",
                        help="also fetch each subhalo's record (SubhaloPos/Vel)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = load_config(args.profile, args.set)
    try:
        ids = fetch_sample(cfg, args.out, limit=args.limit, details=args.details)
    except TngApiError as exc:
        print(f"error: {exc}")
        return 1
    print(f"{len(ids)} cutouts in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
