"""TNG web API client against a local fake server (http.server on 127.0.0.1, in a thread)."""

import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from analysis_lib.sources.tng import TngCutoutSource
from analysis_lib.sources.tng.api import TngApiClient, TngApiError, cutout_fields, fetch_sample
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import BOX, M_DM_CODE, H, make_truth, write_cutout

KEY = "s3cr3t-api-key-0123456789abcdef"
CFG = {"data": {"min_mstar_30kpc": 1e10, "max_halo_mass": 1e14},
       "tng": {"simulation": "TNG100-1", "snapshot": 99}}
# (id, mass_stars, mass, subhaloflag) in catalogue units 1e10 Msun/h; 0.6774 = 1e10 Msun
CATALOGUE = [(0, 5.0, 20000.0, 1),  # above the cluster cut (6774 = 1e14 Msun)
             (1, 2.0, 300.0, 1), (2, 0.5, 100.0, 1),  # 2: below the stellar-mass cut
             (3, 1.0, 200.0, 0),  # flagged
             (4, 0.7, 150.0, 1), (5, 3.0, 6000.0, 1), (6, 0.678, 90.0, 1), (7, 8.0, 900.0, 1)]
SELECTED = [1, 4, 5, 6, 7]


class FakeApi:
    """A minimal TNG API: simulation record, filtered and paginated subhalo list, cutouts."""

    def __init__(self, cutout_bytes: bytes, centre=(0.0, 0.0, 0.0), v_sys=(0.0, 0.0, 0.0)):
        self.cutout_bytes = cutout_bytes
        self.centre, self.v_sys = [float(c) for c in centre], [float(v) for v in v_sys]
        self.requests: list[tuple[str, dict]] = []
        self.faults: dict[int, list[str]] = {}  # subhalo id -> actions for its next requests
        self.redirect_to: str | None = None
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
            rec = {"id": sid, **{f"pos_{c}": v for c, v in zip("xyz", self.centre, strict=True)},
                   **{f"vel_{c}": v for c, v in zip("xyz", self.v_sys, strict=True)}}
            return self._send(h, 200, json.dumps(rec).encode())
        return self._send(h, 404, b'{"detail": "Not found."}')

    def _list(self, h, q):
        rows = [dict(id=i, mass_stars=ms, mass=m, subhaloflag=f, sfr=0.1,
                     url=f"{self.base}TNG100-1/snapshots/99/subhalos/{i}/")
                for i, ms, m, f in CATALOGUE]
        if "mass_stars__gt" in q:
            rows = [r for r in rows if r["mass_stars"] > float(q["mass_stars__gt"])]
        if "mass__lt" in q:
            rows = [r for r in rows if r["mass"] < float(q["mass__lt"])]
        if "subhaloflag" in q:
            rows = [r for r in rows if r["subhaloflag"] == int(q["subhaloflag"])]
        limit, offset = int(q.get("limit", 100)), int(q.get("offset", 0))
        nxt = None
        if offset + limit < len(rows):
            nq = urllib.parse.urlencode({**q, "offset": offset + limit})
            nxt = f"{self.base}TNG100-1/snapshots/99/subhalos/?{nq}"
        page = {"count": len(rows), "next": nxt, "previous": None,
                "results": rows[offset:offset + limit]}
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


@pytest.fixture
def api(tmp_path_factory, truth):
    path = write_cutout(tmp_path_factory.mktemp("srv") / "c.hdf5", truth)
    server = FakeApi(path.read_bytes(), truth["centre"], truth["v_sys"])
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
    assert [r["id"] for r in recs] == SELECTED
    list_requests = [p for p, _ in api.requests if p.startswith("/api/TNG100-1/snapshots")]
    assert len(list_requests) == 3  # 5 records, 2 per page
    assert all(hdr.get("api-key") == KEY for _, hdr in api.requests)
    assert "mass_stars__gt=0.6774" in list_requests[0] and "subhaloflag=1" in list_requests[0]
    assert client.select_subhalos(99, 0.6774, 6774.0, page_size=2, limit=3)[-1]["id"] == 5


def test_fetch_sample_downloads_resumes_and_loads(api, sleeps, tmp_path, truth):
    ids = fetch_sample(CFG, tmp_path, client=_client(api, sleeps), progress=False)
    assert ids == SELECTED
    assert len(_cutout_requests(api)) == len(SELECTED)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(_cutout_requests(api)[0]).query)
    assert query["stars"] == [cutout_fields()["stars"]] and query["dm"] == ["Coordinates"]
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
    assert TngCutoutSource(tmp_path).galaxy_ids() == SELECTED[:2]
    monkeypatch.setenv("TNG_API_KEY", "wrong-key")
    assert main(args + ["--set", "tng.simulation=TNG50-1"]) == 1
    out = capsys.readouterr().out
    assert "HTTP 403" in out and "wrong-key" not in out and KEY not in out


def test_details_enable_the_catalogue_centre(api, sleeps, tmp_path, truth):
    fetch_sample(CFG, tmp_path, client=_client(api, sleeps), limit=2, details=True,
                 progress=False)
    cat = json.loads((tmp_path / "subhalos.json").read_text())
    assert [r["id"] for r in cat["subhalos"]] == SELECTED[:2] and "pos_x" in cat["subhalos"][0]
    cfg = {**CFG, "tng": {**CFG["tng"], "centre": "catalogue"}}
    gal = TngCutoutSource(tmp_path, cfg).load(SELECTED[0])
    assert gal.meta["centre_method"] == "catalogue SubhaloPos"
    assert gal.meta["velocity_method"] == "catalogue SubhaloVel"
    ref = TngCutoutSource(tmp_path, CFG).load(SELECTED[0])
    np.testing.assert_allclose(gal.stars.pos, ref.stars.pos, atol=1e-6)
