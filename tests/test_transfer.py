"""Transfer matrix: galaxies held out by id in every universe, cells, mixture, store, hook."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.models import transfer
from analysis_lib.results import ResultsStore
from tests.conftest import make_synthetic_dataset


def test_held_out_galaxies_do_not_depend_on_which_others_exist():
    ids = np.repeat(np.arange(200), 3)
    mask = transfer.galaxy_test_mask(ids, 7, 0.3)
    held = set(ids[mask].tolist())
    assert 0.2 < len(held) / 200 < 0.4
    assert all(mask[ids == g].all() or not mask[ids == g].any() for g in range(200))
    fewer = ids[ids % 5 != 0]  # a universe in which some galaxies failed
    held_fewer = set(fewer[transfer.galaxy_test_mask(fewer, 7, 0.3)].tolist())
    assert held_fewer == {g for g in held if g % 5 != 0}
    assert set(ids[transfer.galaxy_test_mask(ids, 8, 0.3)].tolist()) != held
    with pytest.raises(ValueError, match="fraction"):
        transfer.galaxy_test_mask(ids, 7, 1.0)


@pytest.fixture
def universes(tmp_path):
    """Three synthetic 'universes' with the same galaxy ids; in 'shifted' every M* is 0.3 dex
    higher at the same observables (a physics shift a model trained elsewhere cannot know)."""
    paths = {}
    for i, name in enumerate(("a", "b", "shifted")):
        path = make_synthetic_dataset(tmp_path / f"{name}.h5", n_galaxies=60, seed=i)
        if name == "shifted":
            with h5py.File(path, "a") as f:
                f["targets/log_mstar"][...] = f["targets/log_mstar"][...] + 0.3
        paths[name] = path
    return paths


def test_matrix_cells_mixture_and_store(universes, tmp_path):
    cfg = load_config("smoke", {"gbdt.num_boost_round": 200, "gbdt.num_threads": 1,
                                "gbdt.min_data_in_leaf": 5, "gbdt.exclude_kinetic_bt_above": 10.0})
    store = ResultsStore(tmp_path / "results")
    table = transfer.transfer_matrix(cfg, universes, store=store)
    cells = table[(table.group == "all")]
    assert len(cells) == 4 * 3 * 2  # (3 universes + mixture) x 3 tests x 2 targets
    runs = store.list_runs("transfer", "smoke")
    assert len(runs) == 12 and all("__on__" in n for n in runs["name"])
    assert all("/smoke/transfer/" in p for p in runs["path"])
    for name in runs["name"]:
        m = store.load("transfer", name, "smoke").metrics
        assert m["test_galaxies_trained_on"] == 0
    sigma = transfer.matrix_pivot(table, "log_mstar", "sigma")
    bias = transfer.matrix_pivot(table, "log_mstar", "bias")
    assert list(bias.index) == ["a", "b", "shifted", "mixture"]
    # trained where M* is 0.3 dex lower, a model under-predicts the shifted universe by ~0.3
    assert bias.loc["a", "shifted"] == pytest.approx(-0.3, abs=0.08)
    assert bias.loc["shifted", "a"] == pytest.approx(0.3, abs=0.08)
    assert abs(bias.loc["a", "b"]) < 0.08
    assert sigma.loc["mixture", "shifted"] > sigma.loc["shifted", "shifted"]
    # conformal intervals calibrated in one universe cover there, not where M* is shifted
    cover = transfer.matrix_pivot(table, "log_mstar", "coverage_95")
    assert cover.loc["a", "a"] > 0.8 and cover.loc["a", "shifted"] < cover.loc["a", "a"] - 0.3
    assert np.isfinite(transfer.matrix_pivot(table, "log_mtot", "crps").to_numpy()).all()
    # the mixture: equal, disjoint shares of the training galaxies of each universe
    m = store.load("transfer", "lightgbm__mixture__on__a", "smoke").metrics
    per = m["train_rows_per_universe"]
    assert len(set(per.values())) == 1
    fig = transfer.transfer_figure(table)
    assert all("universe" in ax.get_xlabel() for ax in fig.axes[:4:2] if ax.get_xlabel())
    # stored cells are reused
    stamp = (store.run_dir("transfer", "lightgbm__a__on__b", "smoke") / "metrics.json"
             ).stat().st_mtime_ns
    transfer.transfer_matrix(cfg, universes, store=store)
    assert (store.run_dir("transfer", "lightgbm__a__on__b", "smoke") / "metrics.json"
            ).stat().st_mtime_ns == stamp


def test_any_fitted_predictor_can_fill_a_cell(universes):
    ds = open_dataset(universes["a"])
    rows = np.arange(30)

    def predictor(d, r):
        return {t: d.table[t].to_numpy()[r] + 0.1 for t in transfer.TRANSFER_TARGETS}

    preds, metrics = transfer.score_cell(predictor, ds, rows)
    assert metrics["log_mtot"]["all"]["bias"] == pytest.approx(0.1)
    assert metrics["log_mtot"]["all"]["sigma"] == pytest.approx(0.0, abs=1e-12)
    assert len(preds) == 30
    with pytest.raises(ValueError, match="rows"):
        transfer.score_cell(lambda d, r: {t: np.zeros(3) for t in transfer.TRANSFER_TARGETS},
                            ds, rows)
