"""A small client for the public IllustrisTNG web API: select the paper's sample, fetch cutouts.

Standard library only (urllib). The API key is read from the environment variable TNG_API_KEY and
sent in the 'api-key' header; it is never printed, logged, written to a file or put in an
exception message, and it is never sent to another host or over plain http: a base URL must be
https (plain http only to a loopback host, for tests); an `http://` link in a response (the
service's own `next` and `url` fields may use http) is upgraded to https when it points at the
API's own host and refused otherwise; a redirect that changes host or scheme loses the key.
Every request sends `Accept: */*`, as the official examples do (python `requests`' default): the
service behaves like Django REST framework, which answers 406 when no renderer matches the Accept
header, and 406 is not retried.

Behaviour, for a service with no published rate limit:

- one request at a time, in sequence;
- HTTP 429 and 5xx, dropped connections and truncated bodies are retried with exponential
  back-off (honouring Retry-After), up to `max_retries` times;
- cutouts are written to a unique `.cutout_{id}.hdf5.*.part`, checked (byte count against
  Content-Length, opens as HDF5 with a Header), then renamed: an interrupted run never leaves
  a partial `cutout_{id}.hdf5`, and a rerun skips every complete file (resumable);
- `subhalos.json` (catalogue.py) records the selection and the simulation's box size, h,
  dark-matter particle mass and the snapshot redshift, which cutout headers may lack. A rerun
  merges into it (a smaller `--limit` never removes entries that cutouts on disk rely on);
  `--details` fetches only the records still missing and saves them every few records.
- Download order: smallest galaxies first (the list is requested with order_by=mass_stars and
  sorted locally by mass_log_msun, the total mass, which sets a cutout's size), so `--limit 50`
  gives 50 small, quick cutouts rather than the largest groups' centrals (order_by=id).

Volume (fields per particle; Coordinates are float64, the rest float32): stars 88 bytes (all used);
gas 40 bytes (Velocities, 12 bytes per cell, are not requested: nothing uses them); dark matter
24 bytes (Coordinates only; Velocities, 12 bytes, not requested). Dark matter is most of a cutout
(~1e5 particles for a 1e12 Msun subhalo in TNG100-1). A subhalo cutout already holds only the
subhalo's own bound particles (not its FoF group's). Their coordinates are all kept: the targets
need M_DM(<r) at R_half and 2 R_half, and the circularity model (observe/circularity.py) needs
M(<r) out to 10x its 2 R_half aperture; the API documents no radius-limited subhalo cutout. (The
full records' massinhalfrad_dm / massinrad_dm would give the two apertures without particles but
not the profile; not used.)

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
from analysis_lib.sources.tng.selection import catalogue_mass_limits, check_simulation_record

log = logging.getLogger(__name__)

API_BASE = "https://www.tng-project.org/api/"
API_KEY_ENV = "TNG_API_KEY"
_API_NAMES = {STARS: "stars", GAS: "gas", DM: "dm", BH: "bhs"}
_CHUNK = 1 << 16
ACCEPT = "*/*"  # what python requests sends, as in the TNG API documentation's examples
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Fields read when present but not downloaded: nothing downstream uses them (volume, above).
_NOT_DOWNLOADED = {GAS: ("Velocities",), DM: ("Velocities",)}
DETAIL_FIELDS = ("pos_x", "vel_x", "mass_stars", "halfmassrad_stars")  # what --details adds


class TngApiError(RuntimeError):
    """A request to the TNG API that failed for good (the message never contains the key)."""


def cutout_fields(include_dm_velocities: bool = False) -> dict[str, str]:
    """The cutout query: per particle type, the fields the conversion uses (convert.FIELDS).

    As the API's documented syntax, `?stars=Coordinates,Masses,...&gas=...&dm=Coordinates`.
    Gas and dark-matter velocities are left out (nothing uses them; `include_dm_velocities`
    asks for the DM ones).
    """
    query = {}
    for group, (required, optional) in FIELDS.items():
        skip = set(_NOT_DOWNLOADED.get(group, ()))
        if group == DM and include_dm_velocities:
            skip.discard("Velocities")
        names = [n for n in list(required) + list(optional) if n not in skip]
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
    """Follow redirects, but drop the api-key header when the redirect changes host or scheme."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        old_parts, new_parts = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if new is not None and (new_parts.netloc, new_parts.scheme) != \
                (old_parts.netloc, old_parts.scheme):
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
        base = urllib.parse.urlsplit(self.base_url)
        self._host, self._scheme = base.netloc, base.scheme
        if base.scheme != "https" and not (base.scheme == "http"
                                           and base.hostname in _LOOPBACK):
            raise TngApiError(f"refusing to send the API key to {base.scheme}://{base.netloc}: "
                              "the API base URL must be https")
        self._opener = urllib.request.build_opener(_SameHostRedirect())

    def __repr__(self) -> str:
        return f"TngApiClient(simulation={self.simulation!r}, base_url={self.base_url!r})"

    # -- transport ---------------------------------------------------------------------------
    def url(self, path: str, params: Mapping | None = None) -> str:
        """Absolute URL for a path below the base (or an absolute URL on the API host).

        An absolute URL must name the API's host; an `http://` one is upgraded to https when the
        base is https (the service's own links), and any other scheme change is refused.
        """
        url = path if "://" in path else urllib.parse.urljoin(self.base_url, path.lstrip("/"))
        parts = urllib.parse.urlsplit(url)
        if parts.netloc != self._host:
            raise TngApiError(f"refusing to send the API key to another host: {url}")
        if parts.scheme != self._scheme:
            if not (parts.scheme == "http" and self._scheme == "https"):
                raise TngApiError(f"refusing to send the API key over {parts.scheme}: {url}")
            url = urllib.parse.urlunsplit(parts._replace(scheme="https"))
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _open(self, url: str, accept: str = ACCEPT):
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
            with self._open(url) as resp:
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
        """Download to dest atomically: a unique .part file, checked (length, HDF5 Header),
        then renamed."""
        from analysis_lib.io import atomic_write, os_error_line

        url = self.url(path, params)
        dest = Path(dest)

        def fetch(part: Path) -> None:  # part: unique, so two downloads never share one
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

        try:  # the OS errors left are the temporary file's creation and the final rename
            return atomic_write(dest, fetch, suffix=".part")
        except OSError as exc:
            raise TngApiError(f"{dest}: cannot write or store the download "
                              f"({os_error_line(exc)})") from None

    def _download_once(self, url: str, part: Path) -> str | None:
        """One attempt; returns None on success or a description of what went wrong."""
        with self._open(url) as resp:
            expected = resp.headers.get("Content-Length")
            if expected is not None:
                try:
                    expected = int(expected)
                    if expected < 0:
                        raise ValueError
                except ValueError:
                    return f"bad Content-Length {resp.headers.get('Content-Length')!r}"
            received = 0
            try:
                fh = open(part, "wb")  # noqa: SIM115 - closed below
            except OSError as exc:  # not retried: the disk, not the network, is at fault
                raise TngApiError(f"{part}: cannot write the download ({exc.strerror})"
                                  ) from None
            try:
                with fh:
                    while chunk := resp.read(_CHUNK):
                        fh.write(chunk)
                        received += len(chunk)
            except (http.client.HTTPException, OSError) as exc:
                return f"download interrupted ({type(exc).__name__}) after {received} bytes"
        if expected is not None and received != expected:
            return f"truncated download: {received} of {expected} bytes"
        return None

    # -- TNG queries ---------------------------------------------------------------------------
    def simulation_info(self) -> dict:
        """The simulation record (boxsize, hubble, mass_dm, ...)."""
        return self.get_json(f"{self.simulation}/")

    def select_subhalos(self, snapshot: int, mass_stars_min: float, mass_max: float,
                        page_size: int = 1000, limit: int | None = None,
                        order_by: str = "mass_stars") -> list[dict]:
        """Subhalo list records passing the cuts (catalogue units), following `next` links.

        The service's list records are short, `{id, sfr, mass_log_msun, url}`; the full record
        is `subhalo()`. Ordered by `order_by` (ascending stellar mass: small galaxies first).
        """
        params = {"mass_stars__gt": repr(float(mass_stars_min)), "mass__lt": repr(float(mass_max)),
                  "subhaloflag": 1, "limit": int(page_size), "order_by": order_by}
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

        from analysis_lib.io import tqdm_options

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        query = dict(fields) if fields is not None else cutout_fields()
        paths = []
        for sid in tqdm(list(subhalo_ids), desc="TNG cutouts", unit="subhalo",
                        **tqdm_options(progress)):
            dest = cutout_path(out_dir, sid)
            if not (dest.exists() and is_complete_cutout(dest)):
                self.download(f"{self.simulation}/snapshots/{int(snapshot)}/subhalos/{int(sid)}"
                              "/cutout.hdf5", dest, query)
            paths.append(dest)
        return paths


def download_order(records: list[dict]) -> list[dict]:
    """Records smallest first: by mass_log_msun (total mass, which sets a cutout's size) when
    every record has it, else in the order given (the list's own order_by)."""
    if records and all(r.get("mass_log_msun") is not None for r in records):
        return sorted(records, key=lambda r: float(r["mass_log_msun"]))
    return list(records)


def fetch_sample(cfg: Mapping, out_dir: str | Path, client: TngApiClient | None = None,
                 limit: int | None = None, details: bool = False,
                 progress: bool = True, flush_every: int = 25) -> list[int]:
    """Select the paper's sample from the API and download its cutouts into out_dir.

    Writes subhalos.json (selection plus simulation facts) first, merged with what is already
    there (a rerun never drops entries), then the cutouts, smallest galaxies first; rerunning
    resumes. With `details`, each subhalo's full record (SubhaloPos/Vel, mass_stars,
    halfmassrad_stars) is fetched too, one request per galaxy that lacks it, saved every
    `flush_every` records: this enables tng.centre = 'catalogue' and the per-galaxy catalogue
    cross-check (crosscheck.py). Returns the selected ids in download order.
    """
    settings = tng_settings(cfg)
    client = client or TngApiClient(simulation=settings["simulation"],
                                    base_url=settings.get("api_base", API_BASE))
    snapshot = int(settings["snapshot"])
    out_dir = Path(out_dir)
    known = _existing_records(out_dir, client.simulation, snapshot)
    sim = client.simulation_info()
    redshift = client.get_json(f"{client.simulation}/snapshots/{snapshot}/").get("redshift")
    hubble = float(sim.get("hubble", 0.6774))
    for problem in check_simulation_record(client.simulation, sim.get("boxsize"),
                                           sim.get("hubble"), sim.get("mass_dm")):
        log.warning("TNG API simulation record: %s", problem)
    mstar_min, mass_max = catalogue_mass_limits(cfg, hubble)
    selected = download_order(client.select_subhalos(snapshot, mstar_min, mass_max, limit=limit))
    ids = [int(r["id"]) for r in selected]
    for rec in selected:  # list fields refresh, fields fetched earlier (details) stay
        known[int(rec["id"])] = {**known.get(int(rec["id"]), {}), **rec}

    def save() -> None:
        write_catalogue(out_dir, list(known.values()), simulation=client.simulation,
                        snapshot=snapshot, box_size=sim.get("boxsize"), hubble=hubble,
                        mass_dm=sim.get("mass_dm"), redshift=redshift)

    save()
    if details:
        missing = [i for i in ids if any(known[i].get(k) is None for k in DETAIL_FIELDS)]
        try:
            for n, sid in enumerate(missing, start=1):
                known[sid] = {**known[sid], **client.subhalo(snapshot, sid)}
                if n % flush_every == 0:
                    save()
        finally:
            save()  # what arrived is kept, even when a request fails for good
    client.download_cutouts(ids, out_dir, snapshot, progress=progress)
    return ids


def _existing_records(out_dir: Path, simulation: str, snapshot: int) -> dict[int, dict]:
    """Records of the subhalos.json already in out_dir (by id), refusing another simulation's."""
    from analysis_lib.particles import GalaxyInputError
    from analysis_lib.sources.tng.catalogue import CATALOGUE_JSON, read_catalogue

    if not (out_dir / CATALOGUE_JSON).exists():
        return {}
    try:
        cat = read_catalogue(out_dir)
    except GalaxyInputError as exc:
        raise TngApiError(f"{exc}; move it away to start afresh") from None
    if (cat.simulation, cat.snapshot) != (simulation, snapshot):
        raise TngApiError(f"{cat.path} holds {cat.simulation} snapshot {cat.snapshot}, not "
                          f"{simulation} snapshot {snapshot}: use another --out directory")
    return {int(k): dict(v) for k, v in cat.records.items()}


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
                        help="also fetch each subhalo's full record (SubhaloPos/Vel, mass_stars, "
                             "halfmassrad_stars: catalogue centre and cross-check); only the "
                             "missing ones are fetched")
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
