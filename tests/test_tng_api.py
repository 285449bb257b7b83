"""TNG web API client against a local fake server (http.server on 127.0.0.1, in a thread).

The fake behaves as the real service is documented and observed to: Django-REST-style pages
(count/next/results) whose list records are only {id, sfr, mass_log_msun, url}, order_by and
__gt/__lt filters, full records per subhalo, and 406 Not Acceptable when the Accept header
matches none of its renderers.
"""

import json
import logging
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from analysis_lib.sources.tng import TngCutoutSource
from analysis_lib.sources.tng.api import TngApiClient, TngApiError, cutout_fields, fetch_sample
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import BOX, M_DM_CODE, A, H, _half_mass_radius, make_truth, write_cutout

KEY = "s3cr3t-api-key-0123456789abcdef"
CFG = {"data": {"min_mstar_30kpc": 1e10, "max_halo_mass": 1e14},
       "tng": {"simulation": "TNG100-1", "snapshot": 99}}
# (id, mass_stars, mass, subhaloflag) in catalogue units 1e10 Msun/h; 0.6774 = 1e10 Msun
CATALOGUE = [(0, 5.0, 20000.0, 1),  # above the cluster cut (6774 = 1e14 Msun)
             (1, 2.0, 300.0, 1), (2, 0.5, 100.0, 1),  # 2: below the stellar-mass cut
             (3, 1.0, 200.0, 0),  # flagged
             (4, 0.7, 150.0, 1), (5, 3.0, 6000.0, 1), (6, 0.678, 90.0, 1), (7, 8.0, 900.0, 1)]
SELECTED = [1, 4, 5, 6, 7]
BY_MASS_STARS = [6, 4, 1, 5, 7]  # the selection in ascending mass_stars
BY_TOTAL_MASS = [6, 4, 1, 7, 5]  # ... and in ascending total mass (mass_log_msun)
OLD_ACCEPT = "application/x-hdf5, application/octet-stream"  # what the client used to send


def _accepts(accept: str | None, json_endpoint: bool) -> bool:
    """Content negotiation as Django REST framework does it: */* (or no header) matches any
    renderer; JSON endpoints also render application/json; nothing else matches (406)."""
    if not accept:
        return True
    types = [t.split(";")[0].strip() for t in accept.split(",")]
    return "*/*" in types or (json_endpoint and "application/json" in types)


class FakeApi:
    """A minimal TNG API: simulation record, filtered and paginated subhalo list, cutouts."""

    def __init__(self, cutout_bytes: bytes, centre=(0.0, 0.0, 0.0), v_sys=(0.0, 0.0, 0.0),
                 detail: dict | None = None):
        self.cutout_bytes = cutout_bytes
        self.centre, self.v_sys = [float(c) for c in centre], [float(v) for v in v_sys]
        self.detail = dict(detail or {})  # extra fields of every full subhalo record
        self.requests: list[tuple[str, dict]] = []
        self.faults: dict[int, list[str]] = {}  # subhalo id -> actions for its next requests
        self.detail_faults: set[int] = set()  # subhalo ids whose full record answers 500
        self.redirect_to: str | None = None
        self.ignore_order_by = False
        self.next_link: str | None = None  # replaces the list's `next` link when set
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # noqa: N802
                api.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                api.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h, status, body=b"", ctype="application/json", length=None, extra=None):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h):
        url = urllib.parse.urlsplit(h.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if h.headers.get("api-key") != KEY:
            return self._send(h, 403, b'{"detail": "Invalid API key"}')
        parts = [p for p in url.path.split("/") if p]
        if not _accepts(h.headers.get("Accept"), json_endpoint=parts[-1] != "cutout.hdf5"):
            return self._send(h, 406, b'{"detail": "Could not satisfy the request Accept '
                                         b'header."}')
        if parts == ["api", "TNG100-1"]:
            return self._send(h, 200, json.dumps(
                {"name": "TNG100-1", "boxsize": BOX, "hubble": H, "mass_dm": M_DM_CODE}).encode())
        if parts == ["api", "TNG100-1", "snapshots", "99"]:
            return self._send(h, 200, b'{"number": 99, "redshift": 0.25}')
        if parts == ["api", "TNG100-1", "snapshots", "99", "subhalos"]:
            return self._list(h, q)
        if len(parts) == 7 and parts[-1] == "cutout.hdf5":
            return self._cutout(h, int(parts[5]), q)
        if len(parts) == 6:
            sid = int(parts[5])
            if sid in self.detail_faults:
                return self._send(h, 500, b"{}")
            rec = {"id": sid, **{f"pos_{c}": v for c, v in zip("xyz", self.centre, strict=True)},
                   **{f"vel_{c}": v for c, v in zip("xyz", self.v_sys, strict=True)},
                   **self.detail}
            return self._send(h, 200, json.dumps(rec).encode())
        return self._send(h, 404, b'{"detail": "Not found."}')

    def _list(self, h, q):
        rows = [dict(id=i, mass_stars=ms, mass=m, subhaloflag=f) for i, ms, m, f in CATALOGUE]
        if "mass_stars__gt" in q:
            rows = [r for r in rows if r["mass_stars"] > float(q["mass_stars__gt"])]
        if "mass__lt" in q:
            rows = [r for r in rows if r["mass"] < float(q["mass__lt"])]
        if "subhaloflag" in q:
            rows = [r for r in rows if r["subhaloflag"] == int(q["subhaloflag"])]
        order = q.get("order_by", "id")
        if not self.ignore_order_by:
            rows.sort(key=lambda r: r[order.lstrip("-")], reverse=order.startswith("-"))
        limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        nxt = None
        if offset + limit < len(rows):
            nq = urllib.parse.urlencode({**q, "offset": offset + limit})
            nxt = self.next_link or f"{self.base}TNG100-1/snapshots/99/subhalos/?{nq}"
        results = [{"id": r["id"], "sfr": 0.1,  # the real list's fields, nothing else
                    "mass_log_msun": math.log10(r["mass"] * 1e10 / H),
                    "url": f"{self.base}TNG100-1/snapshots/99/subhalos/{r['id']}/"}
                   for r in rows[offset:offset + limit]]
        page = {"count": len(rows), "next": nxt, "previous": None, "results": results}
        self._send(h, 200, json.dumps(page).encode())

    def _cutout(self, h, sid, q):
        action = self.faults.get(sid, []).pop(0) if self.faults.get(sid) else "ok"
        body = self.cutout_bytes
        if action == "429":
            return self._send(h, 429, b"{}", extra={"Retry-After": "7"})
        if action == "500":
            return self._send(h, 500, b"{}")
        if action == "truncate":  # promise the whole file, send half, hang up
            return self._send(h, 200, body[: len(body) // 2], "application/x-hdf5",
                              length=len(body))
        if action == "html":
            return self._send(h, 200, b"<html>maintenance</html>", "text/html")
        if action == "redirect":
            h.send_response(302)
            h.send_header("Location", self.redirect_to)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        return self._send(h, 200, body, "application/x-hdf5")


@pytest.fixture(scope="module")
def truth():
    return make_truth(seed=21)


def catalogue_values(truth) -> dict:
    """mass_stars (1e10 Msun/h) and halfmassrad_stars (ckpc/h) of the truth, as Subfind has them."""
    s = truth["stars"]
    return {"mass_stars": float(s["mass"].sum()) * H / 1e10,
            "halfmassrad_stars": _half_mass_radius(s["pos"], s["mass"]) * H / A}


@pytest.fixture
def api(tmp_path_factory, truth):
    path = write_cutout(tmp_path_factory.mktemp("srv") / "c.hdf5", truth)
    server = FakeApi(path.read_bytes(), truth["centre"], truth["v_sys"],
                     detail=catalogue_values(truth))
    yield server
    server.close()


@pytest.fixture
def sleeps():
    return []


def _client(api, sleeps, key=KEY, **kw):
    return TngApiClient(base_url=api.base, api_key=key, sleep=sleeps.append, **kw)


def _cutout_requests(api):
    return [p for p, _ in api.requests if "cutout.hdf5" in p]


def test_key_header_pagination_and_selection(api, sleeps):
    client = _client(api, sleeps)
    recs = client.select_subhalos(99, 0.6774, 6774.0, page_size=2)
    assert [r["id"] for r in recs] == BY_MASS_STARS
    assert set(recs[0]) == {"id", "sfr", "mass_log_msun", "url"}  # the real list's records
    list_requests = [p for p, _ in api.requests if p.startswith("/api/TNG100-1/snapshots")]
    assert len(list_requests) == 3  # 5 records, 2 per page
    assert all(hdr.get("api-key") == KEY for _, hdr in api.requests)
    assert "mass_stars__gt=0.6774" in list_requests[0] and "subhaloflag=1" in list_requests[0]
    assert "order_by=mass_stars" in list_requests[0]
    assert client.select_subhalos(99, 0.6774, 6774.0, page_size=2, limit=3)[-1]["id"] == 1


def test_fetch_sample_downloads_resumes_and_loads(api, sleeps, tmp_path, truth):
    ids = fetch_sample(CFG, tmp_path, client=_client(api, sleeps), progress=False)
    assert ids == BY_TOTAL_MASS
    assert len(_cutout_requests(api)) == len(SELECTED)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(_cutout_requests(api)[0]).query)
    assert query["stars"] == [cutout_fields()["stars"]] and query["dm"] == ["Coordinates"]
    assert "Velocities" not in query["gas"][0] and "Coordinates" in query["gas"][0]
    cat = json.loads((tmp_path / "subhalos.json").read_text())
    assert cat["boxsize"] == BOX and cat["mass_dm"] == M_DM_CODE and cat["snapshot"] == 99
    assert cat["redshift"] == 0.25
    src = TngCutoutSource(tmp_path, CFG)
    assert src.galaxy_ids() == SELECTED
    gal = src.load(4)
    assert len(gal.stars) == len(truth["stars"]["mass"])
    # a rerun downloads nothing; a deleted file is fetched again
    cutout_path(tmp_path, 5).unlink()
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), progress=False)
    assert len(_cutout_requests(api)) == len(SELECTED) + 1
    assert _cutout_requests(api)[-1].startswith("/api/TNG100-1/snapshots/99/subhalos/5/")


def test_incomplete_file_is_downloaded_again(api, sleeps, tmp_path):
    cutout_path(tmp_path, 1).write_bytes(b"half a file")
    _client(api, sleeps).download_cutouts([1], tmp_path, 99, progress=False)
    assert len(_cutout_requests(api)) == 1
    assert cutout_path(tmp_path, 1).read_bytes() == api.cutout_bytes


def test_truncated_download_leaves_no_file(api, sleeps, tmp_path):
    api.faults[1] = ["truncate"] * 3
    client = _client(api, sleeps, max_retries=2)
    with pytest.raises(TngApiError, match="truncated|interrupted") as err:
        client.download_cutouts([1], tmp_path, 99, progress=False)
    assert KEY not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither cutout_1.hdf5 nor a .part
    assert len(sleeps) == 2


def test_retry_after_429_and_500(api, sleeps, tmp_path):
    api.faults[4] = ["429", "500", "truncate"]
    _client(api, sleeps, backoff_s=1.0).download_cutouts([4], tmp_path, 99, progress=False)
    assert cutout_path(tmp_path, 4).read_bytes() == api.cutout_bytes
    assert len(_cutout_requests(api)) == 4
    assert sleeps[0] == 7.0  # Retry-After honoured
    assert sleeps[1] == 2.0  # then exponential back-off


def test_not_hdf5_and_http_errors_are_not_kept(api, sleeps, tmp_path):
    api.faults[6] = ["html"]
    with pytest.raises(TngApiError, match="HDF5"):
        _client(api, sleeps).download_cutouts([6], tmp_path, 99, progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TngApiError, match="HTTP 404"):
        _client(api, sleeps).get_json("TNG100-1/nothing/here/")
    assert sleeps == []  # a 404 is not retried


def test_key_never_leaks(api, sleeps, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    api.faults[7] = ["500", "truncate"]
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), progress=False)
    for f in tmp_path.iterdir():
        assert KEY.encode() not in f.read_bytes(), f
    wrong = KEY[::-1]
    with pytest.raises(TngApiError, match="HTTP 403.*TNG_API_KEY") as err:
        _client(api, sleeps, key=wrong).simulation_info()
    assert wrong not in str(err.value) and wrong not in repr(err.value)
    client = _client(api, sleeps)
    assert KEY not in repr(client) and KEY not in str(vars(client).get("base_url"))
    assert KEY not in caplog.text and "retrying" in caplog.text
    monkeypatch.delenv("TNG_API_KEY", raising=False)
    with pytest.raises(TngApiError, match="TNG_API_KEY"):
        TngApiClient(base_url=api.base)
    monkeypatch.setenv("TNG_API_KEY", KEY)
    assert TngApiClient(base_url=api.base).simulation_info()["boxsize"] == BOX


def test_key_not_sent_to_other_hosts(api, sleeps, tmp_path, truth):
    other = FakeApi(api.cutout_bytes)
    try:
        with pytest.raises(TngApiError, match="another host"):
            _client(api, sleeps).get_json(other.base + "TNG100-1/")
        api.redirect_to = other.base + "TNG100-1/snapshots/99/subhalos/1/cutout.hdf5"
        api.faults[1] = ["redirect"]
        with pytest.raises(TngApiError, match="HTTP 403"):  # other host saw no key
            _client(api, sleeps).download_cutouts([1], tmp_path, 99, progress=False)
        assert other.requests and all("api-key" not in hdr for _, hdr in other.requests)
    finally:
        other.close()


def test_command_line_entry_point(api, tmp_path, monkeypatch, capsys):
    from analysis_lib.sources.tng.api import main

    monkeypatch.setenv("TNG_API_KEY", KEY)
    args = ["--out", str(tmp_path), "--profile", "smoke", "--limit", "2",
            "--set", f"tng.api_base={api.base}"]
    assert main(args) == 0
    assert TngCutoutSource(tmp_path).galaxy_ids() == sorted(BY_MASS_STARS[:2])
    monkeypatch.setenv("TNG_API_KEY", "wrong-key")
    args[1] = str(tmp_path / "other")
    assert main(args + ["--set", "tng.simulation=TNG50-1"]) == 1
    out = capsys.readouterr().out
    assert "HTTP 403" in out and "wrong-key" not in out and KEY not in out


def test_details_enable_the_catalogue_centre(api, sleeps, tmp_path, truth):
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), limit=2, details=True,
                 progress=False)
    cat = json.loads((tmp_path / "subhalos.json").read_text())
    assert [r["id"] for r in cat["subhalos"]] == BY_MASS_STARS[:2]
    assert all("pos_x" in r and "halfmassrad_stars" in r for r in cat["subhalos"])
    cfg = {**CFG, "tng": {**CFG["tng"], "centre": "catalogue"}}
    gal = TngCutoutSource(tmp_path, cfg).load(BY_MASS_STARS[0])
    assert gal.meta["centre_method"] == "catalogue SubhaloPos"
    assert gal.meta["velocity_method"] == "catalogue SubhaloVel"
    assert gal.meta["catalogue_check"]["status"] == "ok"  # the records enable the cross-check
    ref = TngCutoutSource(tmp_path, CFG).load(BY_MASS_STARS[0])
    np.testing.assert_allclose(gal.stars.pos, ref.stars.pos, atol=1e-6)


# -- issue 16: Accept header, scheme, order, resumption --------------------------------------------
def test_fake_server_answers_406_to_a_bad_accept_and_the_client_sends_star(api, sleeps, tmp_path):
    url = api.base + "TNG100-1/snapshots/99/subhalos/1/cutout.hdf5"
    req = urllib.request.Request(url, headers={"api-key": KEY, "Accept": OLD_ACCEPT})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 406
    err.value.close()
    client = _client(api, sleeps)
    with pytest.raises(TngApiError, match="HTTP 406"):  # what the old client got; no retry
        client._open(url, OLD_ACCEPT)
    assert sleeps == []
    api.requests.clear()
    fetch_sample(CFG, tmp_path, client=client, details=True, progress=False)
    sent = [hdr.get("accept") for _, hdr in api.requests]
    assert sent and all(a == "*/*" for a in sent)


def test_http_links_upgraded_on_the_api_host_and_refused_elsewhere(api, sleeps):
    client = TngApiClient(api_key=KEY, sleep=sleeps.append)  # the real https base, no request
    upgraded = client.url("http://www.tng-project.org/api/TNG100-1/snapshots/99/subhalos/?o=2")
    assert upgraded == "https://www.tng-project.org/api/TNG100-1/snapshots/99/subhalos/?o=2"
    for bad in ("http://evil.example.org/api/TNG100-1/", "ftp://www.tng-project.org/api/",
                "https://www.tng-project.org.evil.example/api/"):
        with pytest.raises(TngApiError, match="refusing"):
            client.url(bad)
    with pytest.raises(TngApiError, match="must be https"):
        TngApiClient(base_url="http://www.tng-project.org/api/", api_key=KEY)
    # a plain-http `next` link in a response, to a host that is not the API's: refused, unsent
    api.next_link = "http://evil.example.org/api/TNG100-1/snapshots/99/subhalos/?offset=2"
    with pytest.raises(TngApiError, match="another host"):
        _client(api, sleeps).select_subhalos(99, 0.6774, 6774.0, page_size=2)
    assert len([p for p, _ in api.requests if "subhalos/?" in p]) == 1


def test_download_order_starts_with_small_galaxies(api, sleeps, tmp_path):
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), progress=False)
    order = [int(p.split("/subhalos/")[1].split("/")[0]) for p in _cutout_requests(api)]
    assert order == BY_TOTAL_MASS  # ascending total mass: the smallest cutouts first
    # a service that ignored order_by still gives small galaxies first (sorted locally) ...
    api.requests.clear()
    api.ignore_order_by = True
    other = tmp_path / "again"
    fetch_sample(CFG, other, client=_client(api, sleeps), progress=False)
    order = [int(p.split("/subhalos/")[1].split("/")[0]) for p in _cutout_requests(api)]
    assert order == BY_TOTAL_MASS


def test_rerun_with_a_smaller_limit_keeps_the_catalogue(api, sleeps, tmp_path):
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), limit=4, details=True,
                 progress=False)
    first = json.loads((tmp_path / "subhalos.json").read_text())["subhalos"]
    assert len(first) == 4
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), limit=2, progress=False)
    again = json.loads((tmp_path / "subhalos.json").read_text())["subhalos"]
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in first)
    assert all("pos_x" in r for r in again)  # details fetched earlier survive the rerun
    assert not list(tmp_path.glob(".subhalos.*"))  # atomic writes leave no temporary file
    cfg = {**CFG, "tng": {**CFG["tng"], "centre": "catalogue"}}
    src = TngCutoutSource(tmp_path, cfg)
    assert len(src.galaxy_ids()) == 4
    for sid in src.galaxy_ids():  # every cutout on disk still finds its catalogue centre
        assert src.load(sid).meta["centre_method"] == "catalogue SubhaloPos"
    with pytest.raises(TngApiError, match="TNG50-1"):  # another simulation: not merged
        fetch_sample(CFG, tmp_path, client=_client(api, sleeps, simulation="TNG50-1"),
                     progress=False)


def test_details_fetch_only_missing_records_and_save_as_they_come(api, sleeps, tmp_path):
    def detail_requests():
        return [p for p, _ in api.requests
                if p.rstrip("/").split("/")[-1].isdigit() and "subhalos/" in p]

    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), limit=2, details=True,
                 progress=False)
    assert len(detail_requests()) == 2
    api.requests.clear()
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), limit=4, details=True,
                 progress=False)
    assert len(detail_requests()) == 2  # only the two new subhalos
    # a record that fails for good: those before it are on disk, the run reports the error
    fresh = tmp_path / "fresh"
    api.detail_faults.add(7)  # details go in download order: 6, 4, 1, then 7 fails
    with pytest.raises(TngApiError, match="HTTP 500"):
        fetch_sample(CFG, fresh, client=_client(api, sleeps, max_retries=0), details=True,
                     progress=False, flush_every=1)
    recs = {r["id"]: r for r in json.loads((fresh / "subhalos.json").read_text())["subhalos"]}
    assert all("pos_x" in recs[i] for i in (6, 4, 1))
    assert "pos_x" not in recs[7] and "pos_x" not in recs[5]
