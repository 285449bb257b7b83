"""Dataset generation on Dask (issue 15): the same file as the local pool, resumable, clear errors.

The identity test runs a real LocalCluster of 2 worker *processes* (fresh interpreters, so the
galaxies really are observed elsewhere and their arrays shipped back); the others use a cheap
in-process cluster or no cluster at all.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_lib.cli import main
from analysis_lib.config import ConfigError, load_config
from analysis_lib.dataset import DatasetError, build, cluster, done_galaxies, shard_dir
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import make_truth, write_cutout

N_GAL = 4


@pytest.fixture(scope="module")
def cfg():
    return load_config("smoke", {"data.n_galaxies": N_GAL})


@pytest.fixture(scope="module")
def default_build(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "d.h5"
    return build.build_dataset(cfg, out, workers=1, progress=False)


def _contents(path) -> tuple[dict, dict, dict]:
    """(root attrs, dataset name -> array, dataset name -> attrs) of an HDF5 file."""
    arrays: dict = {}
    attrs: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            arrays[name] = obj[()]
            attrs[name] = {k: _plain(v) for k, v in obj.attrs.items()}

    with h5py.File(path, "r") as f:
        root = {k: _plain(v) for k, v in f.attrs.items()}
        f.visititems(visit)
    return root, arrays, attrs


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


def assert_same_file(a, b) -> None:
    """Every dataset of `a` is in `b` with the same dtype, shape, values and attributes, and
    the root attributes (settings, seed, dataset key, failures, ...) are the same."""
    root_a, arrays_a, attrs_a = _contents(a)
    root_b, arrays_b, attrs_b = _contents(b)
    assert root_a == root_b
    assert sorted(arrays_a) == sorted(arrays_b)
    assert len(arrays_a) > 20  # inputs, targets, features, meta: not a near-empty file
    for name, x in arrays_a.items():
        y = arrays_b[name]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)  # bit for bit (NaN == NaN)
        assert attrs_a[name] == attrs_b[name], name


@pytest.mark.slow
def test_two_dask_worker_processes_build_the_default_file(cfg, default_build, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc:
        out = build.build_dataset(cfg, tmp_path / "dask.h5", progress=False,
                                  scheduler=lc.scheduler_address)
    assert_same_file(default_build, out)
    assert not shard_dir(out).exists()  # shards written by the client, then cleaned up


@pytest.fixture
def threads_cluster():
    """An in-process cluster (threads): cheap to start, and the workers see monkeypatches."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as lc:
        yield lc


def test_a_build_interrupted_locally_is_finished_on_dask_by_the_client(
        cfg, default_build, tmp_path, threads_cluster, monkeypatch):
    out = tmp_path / "r.h5"
    key = build.prepare_shards(cfg, out)
    build._init_worker(cfg, {})
    for gid in (0, 2):  # a local build stopped after these galaxies
        build._observe_one(gid, str(out), key)
    written = []
    import analysis_lib.dataset as dataset_module

    real = dataset_module.write_shard
    monkeypatch.setattr(dataset_module, "write_shard",
                        lambda o, gid, rec, k="": written.append(gid) or real(o, gid, rec, k))
    build.build_dataset(cfg, out, progress=False, scheduler=threads_cluster.scheduler_address)
    assert sorted(written) == [1, 3]  # only the missing galaxies, and their shards by the client
    assert_same_file(default_build, out)


def test_a_lost_cluster_stops_the_build_in_one_error_and_a_rerun_resumes(
        cfg, default_build, tmp_path, threads_cluster, monkeypatch):
    out = tmp_path / "lost.h5"
    import analysis_lib.dataset as dataset_module

    real = dataset_module.write_shard

    def write_then_lose_the_cluster(o, gid, rec, k=""):
        path = real(o, gid, rec, k)
        threads_cluster.close()  # the scheduler and its workers go away mid-build
        return path

    monkeypatch.setattr(dataset_module, "write_shard", write_then_lose_the_cluster)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)  # how long the client tries to reconnect
    with pytest.raises(DatasetError, match=r"lost\.h5.*rerun to resume"):
        build.build_dataset(cfg, out, progress=False,
                            scheduler=threads_cluster.scheduler_address)
    monkeypatch.undo()
    key = build.dataset_key(cfg)
    kept = done_galaxies(out, key)
    assert 1 <= len(kept) < N_GAL  # what arrived is kept ...
    assert not out.exists()
    build.build_dataset(cfg, out, workers=1, progress=False)  # ... and a local rerun finishes
    assert_same_file(default_build, out)


@pytest.mark.slow
def test_failed_galaxies_are_recorded_as_with_the_local_pool(tmp_path, threads_cluster):
    """A worker reports a bad cutout as a failure of that galaxy; the build goes on."""
    cut = tmp_path / "cutouts"
    cut.mkdir()
    for gid in (1, 2):
        write_cutout(cutout_path(cut, gid), make_truth(seed=gid))
    cutout_path(cut, 3).write_bytes(b"not hdf5 at all")
    write_cutout(cutout_path(cut, 5), make_truth(seed=5), drop=("PartType4",))
    tng = load_config("smoke", ["data.source=tng"])
    opts = {"cutouts_dir": cut}
    local = build.build_dataset(tng, tmp_path / "local.h5", opts, workers=1, progress=False)
    dask = build.build_dataset(tng, tmp_path / "dask.h5", opts, progress=False,
                               scheduler=threads_cluster.scheduler_address)
    failures = build.dataset_failures(dask)
    assert {"3", "5"} <= set(failures) and "1" not in failures and "2" not in failures
    assert_same_file(local, dask)  # the same galaxies, failures and reasons


def test_a_worker_with_other_physics_code_is_refused_naming_it(cfg):
    with pytest.raises(DatasetError, match="physics code .* differs"):
        cluster.observe_remote(0, cfg, {}, key="abc-not-this-code")


def test_the_scheduler_does_not_change_the_dataset_key(cfg):
    other = load_config("smoke", {"data.n_galaxies": N_GAL, "data.scheduler": "local:3"})
    assert build.dataset_key(other) == build.dataset_key(cfg)


@pytest.mark.parametrize("value", ["local:0", "local:two", "", "8786", "somewhere:8786",
                                   "missing.json"])
def test_a_bad_scheduler_setting_is_one_error_naming_it(value):
    with pytest.raises(ConfigError, match="data.scheduler="):
        load_config("smoke", {"data.scheduler": value})


@pytest.mark.parametrize("value", [None, "local:2", "tcp://10.0.0.5:8786", "tls://h:8786"])
def test_good_scheduler_settings_are_accepted(value):
    assert cluster.scheduler_problem(value) is None
    assert load_config("smoke", {"data.scheduler": value})["data"]["scheduler"] == value


def test_cli_rejects_a_bad_scheduler_and_workers_with_a_scheduler(tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert main(["dataset", "--profile", "smoke", "--scheduler", "local:0",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --scheduler 'local:0'") and "\n" not in err
    assert main(["dataset", "--profile", "smoke", "--scheduler", "local:2", "--workers", "2",
                 "--out", str(out)]) == 2
    assert "--workers" in capsys.readouterr().err
    assert not out.exists()


def test_an_unreachable_scheduler_is_one_error_naming_it(cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(DatasetError, match=r"cannot reach the Dask scheduler tcp://127\.0\.0\.1:9"):
        build.build_dataset(cfg, tmp_path / "u.h5", progress=False,
                            scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "u.h5").exists()
    assert not (tmp_path / "u.h5.lock").exists()
