"""The dataset stage on the mock universe: deterministic, worker-independent, resumable."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import build, done_galaxies, open_dataset, shard_dir, shard_path

N_GAL = 4


@pytest.fixture(scope="module")
def cfg():
    return load_config("smoke", {"data.n_galaxies": N_GAL})


@pytest.fixture(scope="module")
def serial_dataset(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "d.h5"
    return build.build_dataset(cfg, out, workers=1, progress=False)


def _all_arrays(path):
    ds = open_dataset(path)
    arrays = ds.load_inputs(ds.input_names())
    return ds.table, arrays


def test_same_seed_same_arrays_whatever_the_workers(cfg, serial_dataset, tmp_path):
    parallel = build.build_dataset(cfg, tmp_path / "p.h5", workers=2, progress=False)
    t1, a1 = _all_arrays(serial_dataset)
    t2, a2 = _all_arrays(parallel)
    assert len(t1) == N_GAL * 3
    np.testing.assert_array_equal(t1.to_numpy(), t2.to_numpy())
    for name in a1:
        np.testing.assert_array_equal(a1[name], a2[name], err_msg=name)


def test_different_seed_different_data(cfg, serial_dataset, tmp_path):
    other = load_config("smoke", {"data.n_galaxies": N_GAL, "seed": cfg["seed"] + 1})
    path = build.build_dataset(other, tmp_path / "o.h5", workers=1, progress=False)
    assert not np.array_equal(open_dataset(path).table.log_mstar,
                              open_dataset(serial_dataset).table.log_mstar)


def test_interrupted_run_resumes_to_the_same_file(cfg, serial_dataset, tmp_path, monkeypatch):
    out = tmp_path / "r.h5"
    key = build.prepare_shards(cfg, out)
    build._init_worker(cfg, {})
    for gid in (0, 2):  # as if a run had stopped after these galaxies
        build._observe_one(gid, str(out), key)
    assert done_galaxies(out, key) == {0, 2}
    before = shard_path(out, 0, key).stat().st_mtime_ns
    observed = []
    real = build._observe_one
    monkeypatch.setattr(build, "_observe_one",
                        lambda gid, path, k="": observed.append(gid) or real(gid, path, k))
    build.build_dataset(cfg, out, workers=1, progress=False)
    assert observed == [1, 3]  # the finished galaxies were not redone
    t1, a1 = _all_arrays(serial_dataset)
    t2, a2 = _all_arrays(out)
    np.testing.assert_array_equal(t1.to_numpy(), t2.to_numpy())
    for name in a1:
        np.testing.assert_array_equal(a1[name], a2[name])
    assert not shard_path(out, 0, key).exists() and before > 0  # shards cleaned after assembly
    assert not shard_dir(out).exists()


def test_dataset_records_provenance(cfg, serial_dataset):
    ds = open_dataset(serial_dataset)
    assert ds.attrs["source"] == "mock" and ds.attrs["profile"] == "smoke"
    assert int(ds.attrs["seed"]) == cfg["seed"]
    assert ds.config["data"]["n_galaxies"] == N_GAL


def test_shards_and_datasets_of_other_physics_code_are_not_reused(cfg, serial_dataset, tmp_path,
                                                                  monkeypatch):
    """A code change makes an interrupted build start afresh and a stored dataset stale."""
    out = tmp_path / "c.h5"
    key = build.prepare_shards(cfg, out)
    build._init_worker(cfg, {})
    build._observe_one(0, str(out), key)
    assert done_galaxies(out, key) == {0}
    monkeypatch.setattr(build, "physics_code_hash", lambda: "other-code")
    other = build.prepare_shards(cfg, out)
    assert other != key and done_galaxies(out, other) == set()
    assert not shard_dir(out, key).exists()  # no live run holds it: an old key's shards go
    path = tmp_path / "e.h5"
    path.write_bytes(serial_dataset.read_bytes())
    monkeypatch.undo()
    assert build.ensure_dataset(cfg, path, progress=False) == path  # same code: reused
    stamp = path.stat().st_mtime_ns
    monkeypatch.setattr(build, "physics_code_hash", lambda: "other-code")
    build.ensure_dataset(cfg, path, progress=False)
    assert path.with_name(path.name + ".stale").exists()
    assert open_dataset(path).attrs["dataset_key"].endswith("other-code")
    assert path.stat().st_mtime_ns != stamp
