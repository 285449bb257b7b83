"""Issue 17's probes, run as tests: bad settings, bad files, overwrites, failures, races.

Every probe asserts one of: a one-line error naming the key or file (and no traceback), or a
correct result; nothing lost or overwritten; no run that claims success over a wrong file.
Races run real processes (`python -m analysis_lib dataset ...`) against each other or against
the test process. Datasets are tiny (smoke profile, 3 galaxies, one worker) and the clean
reference builds are made once per session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from analysis_lib.cli import main
from analysis_lib.config import ConfigError, load_config
from analysis_lib.dataset import DatasetError, build, open_dataset, shard_dir
from analysis_lib.io import OutputBusyError, atomic_write_text, lock_path, output_lock, unique_tmp
from analysis_lib.results import ResultsStore
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import make_truth, write_cutout

N = 3
SMOKE = ["--profile", "smoke", "--set", f"data.n_galaxies={N}", "--workers", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


# --------------------------------------------------------------------------- helpers


def _cfg(*extra: str) -> dict:
    return load_config("smoke", [f"data.n_galaxies={N}", *extra])


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


def _assert_one_line_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert code != 0, err
    assert "Traceback" not in err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


def _same_dataset(a: Path, b: Path) -> None:
    """Same table, same arrays, same key and seed: a file identical in content to `b`."""
    da, db = open_dataset(a), open_dataset(b)
    pd.testing.assert_frame_equal(da.table, db.table)
    for name in db.input_names():
        np.testing.assert_array_equal(da.load_inputs([name])[name], db.load_inputs([name])[name],
                                      err_msg=name)
    for attr in ("dataset_key", "seed", "n_failed", "failures"):
        assert da.attrs[attr] == db.attrs[attr], attr


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial files a run left behind (locks excluded: they are harmless)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.startswith(".") or p.name.endswith((".tmp", ".parts"))
                  or p.name.endswith(".failures.json"))


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "analysis_lib", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_holder(out: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until `proc` holds out's lock (its pid is written in the lock file)."""
    lock = lock_path(out)
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.communicate()
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    raise AssertionError("the first run never took the lock")


@pytest.fixture
def other_process_holds():
    """Start a process that holds the lock of a path until killed; yields a starter."""
    procs = []

    def start(path: Path) -> subprocess.Popen:
        code = ("import sys, time\nfrom analysis_lib.io import output_lock\n"
                "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n"
                "    time.sleep(120)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)], env=ENV,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- reference builds


@pytest.fixture(scope="session")
def clean(tmp_path_factory) -> Path:
    """A clean build of the smoke profile with N galaxies (the reference for every race)."""
    out = tmp_path_factory.mktemp("clean") / "clean.h5"
    return build.build_dataset(_cfg(), out, workers=1, progress=False)


@pytest.fixture(scope="session")
def clean_other_seed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean2") / "clean2.h5"
    seed = load_config("smoke")["seed"] + 1
    return build.build_dataset(_cfg(f"seed={seed}"), out, workers=1, progress=False)


# --------------------------------------------------------------------------- settings (type, range)

BAD_SETTINGS = [
    ("data.n_galaxies=2.5", "data.n_galaxies"),
    ("data.n_galaxies=abc", "data.n_galaxies"),
    ("data.n_galaxies=0", "data.n_galaxies"),
    ("data.n_galaxies=-5", "data.n_galaxies"),
    ("data.n_galaxies=true", "data.n_galaxies"),
    ("data.n_galaxies=[3]", "data.n_galaxies"),
    ("data.n_galaxies=.nan", "data.n_galaxies"),
    ("data.workers=-1", "data.workers"),
    ("data.source=simulation", "data.source"),
    ("data.projections=[q]", "data.projections"),
    ("data.projections=[x,x]", "data.projections"),
    ("data.projections=[]", "data.projections"),
    ("data.projections=x", "data.projections"),
    ("data.min_mstar_30kpc=-1.0", "data.min_mstar_30kpc"),
    ("data.max_halo_mass=0", "data.max_halo_mass"),
    ("seed=-1", "seed"),
    ("seed=1.5", "seed"),
    ("seed=abc", "seed"),
    ("mock.star_particle_mass=0", "mock.star_particle_mass"),
    ("mock.star_particle_mass=heavy", "mock.star_particle_mass"),
    ("mock.shmr_scatter_dex=-0.1", "mock.shmr_scatter_dex"),
    ("mock.contraction=maybe", "mock.contraction"),
    ("mock.contraction=1", "mock.contraction"),
    ("jam.clip_sigma=-1", "jam.clip_sigma"),
    ("cnn.head_hidden=-1", "cnn.head_hidden"),
    ("observe.image_size=0", "observe.image_size"),
    ("observe.image_size=-60", "observe.image_size"),
    ("observe.image_size=60.5", "observe.image_size"),
    ("observe.image_sizes=[0]", "observe.image_sizes"),
    ("observe.image_sizes=[60,45]", "observe.image_sizes"),
    ("observe.image_sizes=[]", "observe.image_sizes"),
    ("observe.image_sizes=[60,60]", "observe.image_sizes"),
    ("observe.image_sizes=60", "observe.image_sizes"),
    ("observe.image_sizes=[a]", "observe.image_sizes"),
    ("observe.map_size=0", "observe.map_size"),
    ("observe.fov_rhalf=0", "observe.fov_rhalf"),
    ("observe.sph_neighbours=0", "observe.sph_neighbours"),
    ("observe.map_weighting=volume", "observe.map_weighting"),
    ("observe.dust=yesplease", "observe.dust"),
    ("observe.sersic_bins=1", "observe.sersic_bins"),
    ("split.by=sample", "split.by"),
    ("split.gbdt_test_fraction=1.5", "split.gbdt_test_fraction"),
    ("split.gbdt_test_fraction=0", "split.gbdt_test_fraction"),
    ("split.gbdt_test_fraction=1", "split.gbdt_test_fraction"),
    ("split.cnn_fractions=[0.5,0.5,0.5]", "split.cnn_fractions"),
    ("split.cnn_fractions=[0.5,0.5]", "split.cnn_fractions"),
    ("split.cnn_fractions=[1.5,-0.25,-0.25]", "split.cnn_fractions"),
    ("cnn.epochs=0", "cnn.epochs"),
    ("cnn.epochs=-3", "cnn.epochs"),
    ("cnn.epochs=2.5", "cnn.epochs"),
    ("cnn.batch_size=0", "cnn.batch_size"),
    ("cnn.lr=0", "cnn.lr"),
    ("cnn.lr=fast", "cnn.lr"),
    ("cnn.pixel_scaling=sqrt", "cnn.pixel_scaling"),
    ("cnn.amp=fp8", "cnn.amp"),
    ("cnn.stem=huge", "cnn.stem"),
    ("cnn.resident_fraction=2", "cnn.resident_fraction"),
    ("cnn.checkpoint_every=0", "cnn.checkpoint_every"),
    ("cnn.compile=sometimes", "cnn.compile"),
    ("cnn.experiments=[1,2]", "cnn.experiments"),
    ("gbdt.num_leaves=1", "gbdt.num_leaves"),
    ("gbdt.num_boost_round=0", "gbdt.num_boost_round"),
    ("gbdt.learning_rate=-0.1", "gbdt.learning_rate"),
    ("jam.n_galaxies=0", "jam.n_galaxies"),
    ("jam.inclination=guess", "jam.inclination"),
    ("jam.beta_bounds=[0.7,-0.3]", "jam.beta_bounds"),
    ("jam.ml_bounds=[0,30]", "jam.ml_bounds"),
    ("jam.qintr_min=1.2", "jam.qintr_min"),
    ("book.budget_minutes=-5", "book.budget_minutes"),
    ("book.budget_minutes=soon", "book.budget_minutes"),
    ("tng.centre=middle", "tng.centre"),
    ("tng.snapshot=-1", "tng.snapshot"),
    ("tng.cutouts_dir=5", "tng.cutouts_dir"),
    ("observe", "section.key=value"),
    ("observe=3", "observe"),
    ("nonsense.key=1", "nonsense"),
    ("mock.universe=nowhere", "mock.universe"),
    ("observe.instrument=hubble9", "observe.instrument"),
]


@pytest.mark.parametrize("override, key", BAD_SETTINGS, ids=[b[0] for b in BAD_SETTINGS])
def test_bad_setting_is_one_error_naming_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config("smoke", [override])
    message = str(info.value)
    assert key in message and "\n" not in message


GOOD_SETTINGS = [
    ("mock.star_particle_mass=2e7", ("mock", "star_particle_mass"), 2e7),  # YAML reads a str
    ("data.n_galaxies=3.0", ("data", "n_galaxies"), 3),
    ("data.n_galaxies=1e3", ("data", "n_galaxies"), 1000),
    ("observe.fov_rhalf=4", ("observe", "fov_rhalf"), 4),
    ("cnn.experiments=[headline,resolution]", ("cnn", "experiments"), ["headline", "resolution"]),
    ("tng.cutouts_dir=/data/cutouts", ("tng", "cutouts_dir"), "/data/cutouts"),
    ("book.budget_minutes=12", ("book", "budget_minutes"), 12),
    ("book.budget_minutes=null", ("book", "budget_minutes"), None),
    ("observe.image_sizes=[60,20]", ("observe", "image_sizes"), [60, 20]),
]


@pytest.mark.parametrize("override, where, value", GOOD_SETTINGS,
                         ids=[g[0] for g in GOOD_SETTINGS])
def test_good_setting_is_accepted_and_typed(override, where, value):
    cfg = load_config("smoke", [override])
    got = cfg[where[0]][where[1]]
    assert got == value and type(got) is type(value)


def test_every_profile_universe_and_instrument_passes_the_check():
    from analysis_lib.config import instruments, universes

    for profile in ("smoke", "quick", "paper"):
        for universe in universes():
            for instrument in instruments():
                try:
                    load_config(profile, {"mock.universe": universe,
                                          "observe.instrument": instrument})
                except ConfigError as exc:  # a universe knob another change has not added yet
                    assert "unknown configuration key" in str(exc), exc


def test_new_keys_are_checked_from_their_defaults_without_code():
    from analysis_lib.settings_check import check_settings

    defaults = {"mock": {"new_int": 3, "new_float": 0.5, "new_flag": True, "new_name": "a",
                         "new_list": [1, 2], "new_null": None}}
    for bad in ({"new_int": 2.5}, {"new_float": "x"}, {"new_flag": "no"}, {"new_name": 3},
                {"new_list": ["a"]}, {"new_null": "text"}):
        key = next(iter(bad))
        with pytest.raises(ConfigError, match=f"mock.{key}"):
            check_settings({"mock": {**defaults["mock"], **bad}}, defaults)
    ok = check_settings({"mock": {**defaults["mock"], "new_null": 1.5, "new_float": 2}},
                        defaults)
    assert ok["mock"]["new_null"] == 1.5


@pytest.mark.parametrize("override", ["observe.image_size=0", "observe.image_sizes=[60,45]",
                                      "data.projections=[q]", "data.n_galaxies=2.5",
                                      "cnn.batch_size=0", "observe.image_sizes=[0]"])
def test_cli_checks_settings_before_any_work(override, tmp_path, capsys):
    out = tmp_path / "d.h5"
    code = main(["dataset", *SMOKE, "--out", str(out), "--set", override])
    _assert_one_line_error(capsys, code, override.split("=")[0])
    assert list(tmp_path.iterdir()) == []  # no file, no lock, no shards


@pytest.mark.parametrize("sub", ["train-cnn", "train-gbdt", "jam"])
def test_training_settings_refused_before_the_dataset_is_read(sub, tmp_path, capsys):
    code = main([sub, "--profile", "smoke", "--dataset", str(tmp_path / "none.h5"),
                 "--set", "cnn.epochs=0", "--set", "split.gbdt_test_fraction=1.5"])
    line = _assert_one_line_error(capsys, code, "cnn.epochs", "split.gbdt_test_fraction")
    assert "none.h5" not in line


def test_negative_workers_is_one_line(tmp_path, capsys):
    code = main(["dataset", "--profile", "smoke", "--workers", "-2", "--out",
                 str(tmp_path / "d.h5")])
    _assert_one_line_error(capsys, code, "--workers")


# --------------------------------------------------------------------------- --out


def test_out_is_an_existing_directory_fails_before_work(tmp_path, capsys):
    target = tmp_path / "adir"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code = main(["dataset", *SMOKE, "--out", str(target)])
    _assert_one_line_error(capsys, code, str(target), "directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("content", [b"my notes\n", b"", b"\x89HDF\r\n\x1a\n garbage"])
def test_out_that_is_not_a_dataset_is_not_replaced(content, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_bytes(content)
    code = main(["dataset", *SMOKE, "--out", str(target)])
    _assert_one_line_error(capsys, code, str(target), "--force")
    assert target.read_bytes() == content


def test_out_that_is_another_hdf5_file_is_not_replaced(tmp_path, capsys):
    target = tmp_path / "theirs.h5"
    with h5py.File(target, "w") as f:
        f["x"] = np.arange(3)
    before = target.read_bytes()
    code = main(["dataset", *SMOKE, "--out", str(target)])
    _assert_one_line_error(capsys, code, "not a dataset of this project")
    assert target.read_bytes() == before


def test_force_replaces_a_foreign_file_with_a_correct_dataset(tmp_path, capsys, clean):
    target = tmp_path / "notes.h5"
    target.write_text("old notes")
    assert main(["dataset", *SMOKE, "--out", str(target), "--force"]) == 0
    assert "dataset written" in capsys.readouterr().out
    _same_dataset(target, clean)
    assert _leftovers(tmp_path) == []


def test_out_over_a_project_dataset_is_rebuilt(tmp_path, capsys, clean, clean_other_seed):
    target = tmp_path / "d.h5"
    target.write_bytes(clean_other_seed.read_bytes())
    assert main(["dataset", *SMOKE, "--out", str(target)]) == 0
    _same_dataset(target, clean)


def test_out_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["dataset", *SMOKE, "--out", str(tmp_path / "file" / "d.h5")])
    _assert_one_line_error(capsys, code, "not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_in_a_read_only_folder_is_one_line(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code = main(["dataset", *SMOKE, "--out", str(folder / "d.h5")])
        _assert_one_line_error(capsys, code, str(folder))
    finally:
        folder.chmod(0o700)


# --------------------------------------------------------------------------- OS and HDF5 errors

OS_ERRORS = [
    PermissionError(13, "Permission denied", "/data/x.h5"),
    NotADirectoryError(20, "Not a directory", "/data/file/x.h5"),
    IsADirectoryError(21, "Is a directory", "/data/adir"),
    BlockingIOError(11, "Resource temporarily unavailable", "/data/x.h5"),
    FileNotFoundError(2, "No such file or directory", "/data/none.h5"),
    OSError(28, "No space left on device", "/data/x.h5"),
    OSError(5, "Can't read data (inflate() failed)", "/data/x.h5"),
]


@pytest.mark.parametrize("exc", OS_ERRORS, ids=[type(e).__name__ + str(e.errno)
                                               for e in OS_ERRORS])
def test_os_errors_are_one_line_naming_the_file(exc, monkeypatch, tmp_path, capsys):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(build, "build_dataset", fail)
    code = main(["dataset", *SMOKE, "--out", str(tmp_path / "d.h5")])
    _assert_one_line_error(capsys, code, exc.filename)


def test_write_failure_leaves_the_old_file_and_no_temporary(tmp_path, clean, monkeypatch,
                                                            capsys):
    target = tmp_path / "d.h5"
    target.write_bytes(clean.read_bytes())
    before = target.read_bytes()
    real = os.replace

    def deny(src, dst, *a, **k):
        if str(dst) == str(target):
            raise PermissionError(13, "Permission denied", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", deny)
    code = main(["dataset", *SMOKE, "--out", str(target)])
    _assert_one_line_error(capsys, code, str(target), "Permission denied")
    assert target.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.h5.")]


@pytest.mark.parametrize("sub", ["train-gbdt", "train-cnn", "jam"])
def test_dataset_that_is_a_directory_is_one_line(sub, tmp_path, capsys):
    code = main([sub, "--profile", "smoke", "--dataset", str(tmp_path)])
    _assert_one_line_error(capsys, code, str(tmp_path), "directory")


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x89HDF\r\n\x1a\n" + b"\0" * 64])
def test_unreadable_dataset_is_one_line(content, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    code = main(["train-gbdt", "--profile", "smoke", "--dataset", str(bad)])
    _assert_one_line_error(capsys, code, str(bad))


def test_damaged_chunk_is_one_error_naming_the_file(tmp_path, clean):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(clean.read_bytes())
    with h5py.File(damaged, "r") as f:
        info = f["inputs/image_r_60"].id.get_chunk_info(0)
    with open(damaged, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(b"\xff" * min(64, info.size // 3))
    ds = open_dataset(damaged)  # the table is intact
    with pytest.raises(DatasetError) as err:
        ds.load_inputs(["image_r_60"])
    assert str(damaged) in str(err.value) and "\n" not in str(err.value)


class _FakeResponse:
    def __init__(self, length: str | None, body: bytes):
        self.headers = {} if length is None else {"Content-Length": length}
        self._body = [body, b""]

    def read(self, n=-1):
        return self._body.pop(0) if self._body else b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("length", ["abc", "-5", "12.5", "999999"])
def test_bad_content_length_is_one_line(length, tmp_path, monkeypatch):
    from analysis_lib.sources.tng.api import TngApiClient, TngApiError

    client = TngApiClient(api_key="k", max_retries=1, sleep=lambda s: None)
    monkeypatch.setattr(client, "_open",
                        lambda url, accept=None: _FakeResponse(length, b"x" * 10))
    with pytest.raises(TngApiError) as err:
        client.download("TNG100-1/snapshots/99/subhalos/1/cutout.hdf5", tmp_path / "c.hdf5")
    assert "\n" not in str(err.value) and ("Content-Length" in str(err.value)
                                           or "truncated" in str(err.value))
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_download_into_a_missing_folder_is_one_line(tmp_path, monkeypatch):
    from analysis_lib.sources.tng.api import TngApiClient, TngApiError

    (tmp_path / "file").write_text("x")
    client = TngApiClient(api_key="k", max_retries=0, sleep=lambda s: None)
    monkeypatch.setattr(client, "_open", lambda url, accept=None: _FakeResponse("3", b"abc"))
    with pytest.raises(TngApiError, match="file"):
        client.download("x/cutout.hdf5", tmp_path / "file" / "c.hdf5")


# --------------------------------------------------------------------------- failures


@pytest.fixture
def tng_cutouts(tmp_path) -> Path:
    """Two good galaxies and five bad files: garbage, empty, no stars, no header, wrong units."""
    cut = tmp_path / "cutouts"
    cut.mkdir()
    write_cutout(cutout_path(cut, 1), make_truth(seed=1))
    write_cutout(cutout_path(cut, 2), make_truth(seed=2))
    cutout_path(cut, 3).write_bytes(b"not hdf5 at all")
    cutout_path(cut, 4).write_bytes(b"")
    write_cutout(cutout_path(cut, 5), make_truth(seed=5), drop=("PartType4",))
    write_cutout(cutout_path(cut, 6), make_truth(seed=6), drop_header=("HubbleParam",))
    write_cutout(cutout_path(cut, 7), make_truth(seed=7),
                 set_attrs={"PartType4/Coordinates": {"a_scaling": 7.0}})
    return cut


def test_failed_galaxies_are_summarised_and_fail_the_run(tng_cutouts, tmp_path, capsys):
    out = tmp_path / "tng.h5"
    args = ["dataset", "--profile", "smoke", "--source", "tng", "--cutouts", str(tng_cutouts),
            "--workers", "1", "--out", str(out)]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    failures = build.dataset_failures(out)
    failed = {g for g, r in failures.items() if not r.startswith(build.EXCLUDED)}
    assert {"3", "4", "5"} <= failed  # what is certainly broken
    assert set(open_dataset(out).table.galaxy_id) == {1, 2} | {int(g) for g in
                                                              {"6", "7"} - set(failures)}
    assert f"{len(failed)} galaxies failed" in err
    for gid in failed:
        assert gid in err  # the first galaxies of each reason are listed
    assert "--allow-failures" in _error_lines(err)[0]
    assert main([*args, "--allow-failures"]) == 0
    assert "dataset written" in capsys.readouterr().out


def test_all_galaxies_failing_is_one_error_with_the_reasons(tmp_path, capsys):
    cut = tmp_path / "cut"
    cut.mkdir()
    cutout_path(cut, 9).write_bytes(b"junk")
    code = main(["dataset", "--profile", "smoke", "--source", "tng", "--cutouts", str(cut),
                 "--workers", "1", "--out", str(tmp_path / "t.h5")])
    line = _assert_one_line_error(capsys, code, "no galaxies to write", "1 galaxies failed")
    assert "9" in line
    assert not (tmp_path / "t.h5").exists()


def test_failure_summary_groups_reasons():
    failures = {str(i): f"galaxy {i}: half-mass radius {i}.5 is not positive" for i in range(8)}
    failures["20"] = "galaxy 20: no PartType4"
    failures["30"] = "excluded: M*(<30 kpc) = 1e9 Msun is not above the cut 1e10 Msun"
    lines = build.failure_summary(failures, limit=3)
    assert lines[0] == "9 galaxies failed:"
    assert lines[1].startswith("  8 x") and "galaxies 0, 1, 2, ..." in lines[1]
    assert lines[2].startswith("  1 x") and "20" in lines[2]
    assert "1 galaxies outside the sample cut" in lines[3]


def test_repaired_cutout_is_retried_and_unchanged_failure_is_not(tng_cutouts, tmp_path,
                                                                 monkeypatch):
    cfg = load_config("smoke", ["data.source=tng"])
    opts = {"cutouts_dir": tng_cutouts}
    out = tmp_path / "r.h5"
    source = build.make_source(cfg, opts)
    key = build.prepare_shards(cfg, out, opts)
    failures: dict = {}
    path = shard_dir(out, key) / "failures.json"
    for gid in (3, 4):  # as if an interrupted run had recorded them
        build._record(failures, path, gid, f"galaxy {gid}: unreadable", source)
    write_cutout(cutout_path(tng_cutouts, 3), make_truth(seed=3))  # repaired
    tried = []
    real = build._observe_one
    monkeypatch.setattr(build, "_observe_one",
                        lambda gid, o, k="": tried.append(gid) or real(gid, o, k))
    build.build_dataset(cfg, out, opts, workers=1, progress=False)
    assert 3 in tried and 4 not in tried
    assert 3 in set(open_dataset(out).table.galaxy_id)


def test_tng_dataset_key_covers_tng_settings_and_the_cutouts_dir(tmp_path):
    cfg = load_config("smoke", ["data.source=tng"])
    a = build.dataset_key(cfg, {"cutouts_dir": tmp_path / "a"})
    assert a != build.dataset_key(cfg, {"cutouts_dir": tmp_path / "b"})
    other = load_config("smoke", ["data.source=tng", "tng.quenched_ssfr_per_yr=1.0e-10"])
    assert a != build.dataset_key(other, {"cutouts_dir": tmp_path / "a"})
    instrument = load_config("smoke", ["instrument.description=changed"])
    assert build.dataset_key(instrument) != build.dataset_key(load_config("smoke"))


def test_ensure_dataset_does_not_reuse_an_out_of_date_tng_dataset(tmp_path):
    cut = tmp_path / "cut"
    cut.mkdir()
    write_cutout(cutout_path(cut, 1), make_truth(seed=1))
    cfg = load_config("smoke", ["data.source=tng"])
    opts = {"cutouts_dir": cut}
    path = tmp_path / "t.h5"
    build.ensure_dataset(cfg, path, opts, progress=False)
    stamp = path.stat().st_mtime_ns
    assert build.ensure_dataset(cfg, path, opts, progress=False) == path
    assert path.stat().st_mtime_ns == stamp  # same settings and cutouts: reused
    write_cutout(cutout_path(cut, 2), make_truth(seed=2))  # a new cutout
    build.ensure_dataset(cfg, path, opts, progress=False)
    assert set(open_dataset(path).table.galaxy_id) == {1, 2}
    changed = load_config("smoke", ["data.source=tng", "tng.quenched_ssfr_per_yr=1.0e-10"])
    stamp = path.stat().st_mtime_ns
    build.ensure_dataset(changed, path, opts, progress=False)
    assert path.stat().st_mtime_ns != stamp
    assert json.loads(open_dataset(path).attrs["config"])["tng"]["quenched_ssfr_per_yr"] == 1e-10


# --------------------------------------------------------------------------- races


def test_second_build_on_the_same_out_is_refused_naming_the_first(tmp_path, clean, capsys):
    out = tmp_path / "race.h5"
    first = _cli("dataset", *SMOKE, "--out", str(out))
    _wait_for_holder(out, first)
    code = main(["dataset", *SMOKE, "--out", str(out)])  # while the first is observing
    line = _assert_one_line_error(capsys, code, str(out), f"pid {first.pid}", "dataset")
    assert "started" in line
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    _same_dataset(out, clean)
    assert _leftovers(tmp_path) == []


def test_build_with_another_seed_cannot_touch_a_live_build(tmp_path, clean, clean_other_seed,
                                                          capsys):
    out = tmp_path / "seeds.h5"
    first = _cli("dataset", *SMOKE, "--out", str(out))
    _wait_for_holder(out, first)
    seed = load_config("smoke")["seed"] + 1
    code = main(["dataset", *SMOKE, "--set", f"seed={seed}", "--out", str(out)])
    _assert_one_line_error(capsys, code, f"pid {first.pid}")
    first.communicate(timeout=300)
    assert first.returncode == 0
    _same_dataset(out, clean)  # labelled with its seed, and really of its seed
    assert main(["dataset", *SMOKE, "--set", f"seed={seed}", "--out", str(out)]) == 0
    _same_dataset(out, clean_other_seed)


def test_shards_of_another_seed_are_never_adopted(tmp_path, clean):
    out = tmp_path / "k.h5"
    other = _cfg(f"seed={load_config('smoke')['seed'] + 1}")
    key_other = build.prepare_shards(other, out)
    build._init_worker(other, {})
    build._observe_one(0, str(out), key_other)  # an interrupted build with another seed
    build.build_dataset(_cfg(), out, workers=1, progress=False)
    _same_dataset(out, clean)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_build_and_the_build_resumes(tmp_path, clean):
    out = tmp_path / "killed.h5"
    args = ["dataset", "--profile", "smoke", "--set", f"data.n_galaxies={N}", "--workers", "2",
            "--out", str(out)]
    parent = _cli(*args)
    _wait_for_holder(out, parent)
    workers: list[int] = []
    end = time.time() + 60
    while len(workers) < 2 and time.time() < end and parent.poll() is None:
        workers = _children(parent.pid)
        time.sleep(0.005)
    assert workers, "the build never started its workers"
    time.sleep(0.3)  # let their initialisers run
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    end = time.time() + 15
    while any(_alive(w) for w in workers) and time.time() < end:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers outlived their parent"
    # The dead parent's lock does not block; the build resumes to the clean file.
    build.build_dataset(_cfg(), out, workers=1, progress=False)
    _same_dataset(out, clean)


def test_lock_of_a_killed_holder_does_not_block(tmp_path, other_process_holds):
    target = tmp_path / "x.h5"
    holder = other_process_holds(target)
    with pytest.raises(OutputBusyError, match=f"pid {holder.pid}"), output_lock(target):
        pass
    holder.kill()
    holder.wait()
    with output_lock(target):  # the kernel released it
        pass


def test_lock_excludes_many_processes_at_once(tmp_path):
    """Processes racing for one lock (taken, held briefly, released, removed): never two in."""
    target, log = tmp_path / "x.h5", tmp_path / "log"
    code = ("import os, sys, time\nfrom analysis_lib.io import OutputBusyError, output_lock\n"
            "fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
            "done = 0\nwhile done < 15:\n    try:\n        with output_lock(sys.argv[1]):\n"
            "            os.write(fd, b'in\\n'); time.sleep(0.002); os.write(fd, b'out\\n')\n"
            "            done += 1\n    except OutputBusyError:\n        time.sleep(0.001)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), str(log)], env=ENV)
             for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    lines = log.read_text().split()
    assert len(lines) == 4 * 15 * 2
    assert lines == ["in", "out"] * (4 * 15)  # strictly alternating: mutual exclusion held
    assert not lock_path(target).exists()


# --------------------------------------------------------------------------- the results store


def _save(store: ResultsStore, metrics: dict, extra=None, **kw) -> Path:
    return store.save("gbdt", "m", "smoke", config={}, metrics=metrics,
                      predictions=pd.DataFrame({"a": [1]}), extra=extra, **kw)


def test_store_entry_is_replaced_whole(tmp_path):
    store = ResultsStore(tmp_path)

    def two(entry):
        (entry / "extra" / "model.txt").write_text("old model")
        (entry / "extra" / "old_only.csv").write_text("x")

    _save(store, {"v": 1}, two)
    d = _save(store, {"v": 2}, lambda e: (e / "extra" / "model.txt").write_text("new model"))
    assert json.loads((d / "metrics.json").read_text()) == {"v": 2}
    assert (d / "extra" / "model.txt").read_text() == "new model"
    assert not (d / "extra" / "old_only.csv").exists()  # nothing of the old run survives
    assert sorted(p.name for p in d.parent.iterdir()) == ["m"]


def test_crash_while_saving_leaves_the_old_entry_intact(tmp_path):
    store = ResultsStore(tmp_path)
    d = _save(store, {"v": 1}, lambda e: (e / "extra" / "model.txt").write_text("old model"))

    def crash(entry):
        (entry / "extra" / "model.txt").write_text("new model")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _save(store, {"v": 2}, crash)
    assert json.loads((d / "metrics.json").read_text()) == {"v": 1}
    assert (d / "extra" / "model.txt").read_text() == "old model"
    assert sorted(p.name for p in d.parent.iterdir()) == ["m"]


def test_store_keeps_only_named_caches(tmp_path):
    store = ResultsStore(tmp_path)
    d = _save(store, {"v": 1})
    (d / "extra" / "fits").mkdir(parents=True)
    (d / "extra" / "fits" / "g1.json").write_text("{}")
    _save(store, {"v": 2}, keep=("extra/fits",))
    assert (d / "extra" / "fits" / "g1.json").exists()


def test_store_entry_held_by_another_process_is_refused(tmp_path, other_process_holds):
    store = ResultsStore(tmp_path)
    d = _save(store, {"v": 1})
    holder = other_process_holds(d)
    with pytest.raises(OutputBusyError, match=f"pid {holder.pid}"):
        _save(store, {"v": 2})
    assert json.loads((d / "metrics.json").read_text()) == {"v": 1}


def test_gbdt_save_writes_extras_inside_the_new_entry(tmp_path, monkeypatch):
    from analysis_lib.models import gbdt

    store = ResultsStore(tmp_path)
    d = _save(store, {"v": "old"}, lambda e: (e / "extra" / "model.txt").write_text("old"))

    class Boom(Exception):
        pass

    class Fit:
        metrics = {"run": "m", "split_by": "galaxy"}
        importances = pd.DataFrame({"f": [1]})
        agreement = {}
        correlations = pd.DataFrame({"x": [1.0]})
        shap_values = pd.DataFrame({"s": [1.0]})
        params = {"num_threads": 1}
        timings = {"total_s": 1.0}
        predictions = pd.DataFrame({"a": [1]})
        history = None

        class booster:  # noqa: N801
            @staticmethod
            def model_to_string():
                raise Boom  # a crash after some extras were written

    monkeypatch.setattr(gbdt, "_versions", lambda: {})
    with pytest.raises(Boom):
        gbdt.save_fit(Fit(), {"profile": "smoke"}, {}, store, Path("x.h5"), "mock")
    assert (d / "extra" / "model.txt").read_text() == "old"
    assert not (d / "extra" / "importance.csv").exists()  # no new extra beside old metrics
    assert json.loads((d / "metrics.json").read_text()) == {"v": "old"}


# --------------------------------------------------------------------------- temporary files


def test_concurrent_atomic_writes_never_collide(tmp_path):
    target = tmp_path / "f.json"
    texts = [json.dumps({"writer": i, "pad": "x" * 5000}) for i in range(8)]
    errors: list[BaseException] = []

    def write(text):
        try:
            for _ in range(40):
                atomic_write_text(target, text)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_unique_temporary_names_differ(tmp_path):
    names = {unique_tmp(tmp_path / "d.h5").name for _ in range(20)}
    assert len(names) == 20 and all(n.startswith(".d.h5.") for n in names)


def test_checkpoints_use_unique_temporary_files(tmp_path):
    torch = pytest.importorskip("torch")
    from analysis_lib.models.cnn_train import load_checkpoint, save_checkpoint

    path = tmp_path / "ckpt.pt"
    (tmp_path / "ckpt.pt.tmp").mkdir()  # a fixed temporary name would fail on this
    save_checkpoint(path, {"w": torch.ones(2)})
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))
