"""CNN cells of the transfer matrix: training-universe scalers, store layout, reuse, the hook."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_lib.config import ConfigError, load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.models import transfer, transfer_cnn
from analysis_lib.models.cnn_data import CNNExperimentError
from analysis_lib.results import ResultsStore
from tests.conftest import make_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = {"transfer.cnn_epochs": 1, "transfer.cnn_image_size": 16, "cnn.batch_size": 8,
            "cnn.cpu_threads": 1, "cnn.device": "cpu"}


@pytest.fixture(scope="module")
def universes(tmp_path_factory):
    """'a'; 'shifted': a's galaxies with every M* 0.3 dex higher; 'bright': a's galaxies with
    r images twice as bright (same masses): a network that rescaled B's pixels with B's own
    min/max would see no difference at all."""
    tmp = tmp_path_factory.mktemp("transfer_cnn")
    paths = {}
    for name in ("a", "shifted", "bright"):
        path = make_synthetic_dataset(tmp / f"{name}.h5", n_galaxies=30, seed=0)
        with h5py.File(path, "a") as f:
            if name == "shifted":
                f["targets/log_mstar"][...] = f["targets/log_mstar"][...] + 0.3
            if name == "bright":
                for n in (32, 16):
                    f[f"inputs/image_r_{n}"][...] = 2.0 * f[f"inputs/image_r_{n}"][...]
        paths[name] = path
    return paths


def test_validation_part_is_split_by_galaxy_and_seeded():
    keys = [(u, g) for u in ("a", "b") for g in range(20) for _ in range(3)]
    val = transfer_cnn.galaxy_val_mask(keys, 5, 0.2)
    assert val.sum() == 3 * 8  # 20 % of 40 (universe, galaxy) pairs, all their projections
    for i in range(0, len(keys), 3):
        assert len(set(val[i:i + 3].tolist())) == 1
    assert np.array_equal(val, transfer_cnn.galaxy_val_mask(keys, 5, 0.2))
    assert not np.array_equal(val, transfer_cnn.galaxy_val_mask(keys, 6, 0.2))
    with pytest.raises(CNNExperimentError, match="training galaxies"):
        transfer_cnn.galaxy_val_mask([("a", 1)] * 3, 5, 0.2)


def test_profile_settings_and_checks():
    quick = load_config("quick", {"transfer.cnn_epochs": 5})
    tcfg = transfer_cnn.transfer_cnn_config(quick)
    # the transfer networks take transfer.cnn_epochs, not cnn.epochs
    assert tcfg["cnn"]["epochs"] == 5 != quick["cnn"]["epochs"]
    assert tcfg["cnn"]["image_size"] == quick["transfer"]["cnn_image_size"]
    assert quick["transfer"]["cnn_train_universes"] == ["observed"]
    paper = load_config("paper")
    assert transfer_cnn.transfer_cnn_config(paper)["cnn"] == paper["cnn"]  # null = full
    with pytest.raises(ConfigError, match="transfer.cnn_epochs"):
        load_config("smoke", {"transfer.cnn_epochs": 0})


@pytest.mark.slow
def test_cells_use_training_scalers_store_and_reuse(universes, tmp_path):
    cfg = load_config("smoke", SETTINGS)
    store = ResultsStore(tmp_path / "results")
    table = transfer_cnn.cnn_transfer_cells(cfg, universes, train_universes=["a"],
                                            test_universes=["a", "shifted", "bright"],
                                            mixture=False, store=store, progress=False)
    runs = store.list_runs("transfer", "smoke")
    assert sorted(runs["name"]) == ["cnn__a__on__a", "cnn__a__on__bright", "cnn__a__on__shifted"]
    assert all("/smoke/transfer/" in p for p in runs["path"])
    m = store.load("transfer", "cnn__a__on__shifted", "smoke").metrics
    assert m["test_galaxies_trained_on"] == 0 and m["epochs"] == 1
    assert m["inputs"] == {"image_r": 16, "vel_map": 16, "sigma_map": 16}
    assert m["n_val_rows"] > 0 and m["n_train_rows"] > m["n_val_rows"]
    bias = transfer.matrix_pivot(table, "log_mstar", "bias")
    # same inputs, M* 0.3 dex higher: the same predictions, 0.3 dex lower relative to truth
    assert bias.loc["a", "shifted"] == pytest.approx(bias.loc["a", "a"] - 0.3, abs=1e-6)
    # brighter images go through a's scalers, so the network sees (and predicts) a difference
    pa = store.load("transfer", "cnn__a__on__a", "smoke").predictions
    pb = store.load("transfer", "cnn__a__on__bright", "smoke").predictions
    assert np.array_equal(pa["galaxy_id"], pb["galaxy_id"])
    assert np.abs(pa["pred_log_mstar"] - pb["pred_log_mstar"]).max() > 1e-4
    assert table.equals(transfer.load_matrix(cfg, "cnn", store))
    fig = transfer.transfer_figure(table)
    assert any("universe" in ax.get_xlabel() for ax in fig.axes)
    # a stored cell with the same fingerprint is not retrained; a changed setting retrains
    entry = store.run_dir("transfer", "cnn__a__on__bright", "smoke") / "metrics.json"
    stamp = entry.stat().st_mtime_ns
    transfer_cnn.cnn_transfer_cells(cfg, universes, train_universes=["a"],
                                    test_universes=["bright"], mixture=False, store=store,
                                    progress=False)
    assert entry.stat().st_mtime_ns == stamp
    cfg2 = load_config("smoke", {**SETTINGS, "cnn.lr": 2e-4})
    transfer_cnn.cnn_transfer_cells(cfg2, universes, train_universes=["a"],
                                    test_universes=["bright"], mixture=False, store=store,
                                    progress=False)
    assert entry.stat().st_mtime_ns != stamp


@pytest.mark.slow
def test_hook_fills_transfer_matrix_with_a_mixture(universes, tmp_path):
    cfg = load_config("smoke", SETTINGS)
    paths = {k: universes[k] for k in ("a", "shifted")}
    store = ResultsStore(tmp_path / "results")
    table = transfer.transfer_matrix(cfg, paths, fit=transfer_cnn.cnn_fitter(cfg),
                                     method="cnn", store=store)
    sigma = transfer.matrix_pivot(table, "log_mtot", "sigma")
    assert list(sigma.index) == ["a", "shifted", "mixture"]
    assert np.isfinite(sigma.to_numpy()).all()
    m = store.load("transfer", "cnn__mixture__on__a", "smoke").metrics
    assert set(m["train_rows_per_universe"]) == {"a", "shifted"}
    assert m["test_galaxies_trained_on"] == 0


def test_other_image_sizes_in_the_test_universe_are_refused(universes, tmp_path):
    cfg = load_config("smoke", SETTINGS)
    odd = make_synthetic_dataset(tmp_path / "odd.h5", n_galaxies=6, image_sizes=(30, 15))
    fit = transfer_cnn.cnn_fitter(cfg)
    ds = open_dataset(universes["a"])
    predict = fit({"a": (ds, np.arange(0, 45))}, ("log_mstar", "log_mtot"), {})
    out = predict(ds, np.arange(45, 50))
    assert out["log_mstar"].shape == (5,) and np.isfinite(out["log_mtot"]).all()
    assert predict(ds, np.arange(0))["log_mstar"].shape == (0,)
    with pytest.raises(CNNExperimentError, match="odd.h5.*same sizes"):
        predict(open_dataset(odd), np.arange(3))
    with pytest.raises(CNNExperimentError, match="unknown CNN experiment"):
        transfer_cnn.cnn_fitter(cfg, "nope")({"a": (ds, np.arange(45))}, ("log_mstar",), {})
