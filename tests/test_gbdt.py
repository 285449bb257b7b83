"""LightGBM experiments: importances, determinism, learning curves, exclusions, splits, store."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import FEATURES
from analysis_lib.models import gbdt
from analysis_lib.models.experiments import load_experiments, select_experiments
from analysis_lib.paths import REFERENCE_DIR
from analysis_lib.results import ResultsStore

ROUNDS = 40


def _cfg(**over) -> dict:
    base = {"gbdt.num_boost_round": ROUNDS, "gbdt.min_data_in_leaf": 20, "gbdt.num_threads": 1,
            "gbdt.permutation_repeats": 2}
    return load_config("smoke", {**base, **over})


def _table(n_galaxies: int = 200, seed: int = 0) -> pd.DataFrame:
    """Three projections per galaxy; log_mstar depends on sigma_e only; q is constant."""
    rng = np.random.default_rng(seed)
    n = 3 * n_galaxies
    t = pd.DataFrame({f: rng.normal(size=n) for f in FEATURES})
    t["sersic_n"] = rng.uniform(0.5, 8, n)
    t["kinetic_bt"] = rng.uniform(0.0, 0.9, n)
    t["q"] = 0.7
    t["sigma_e"] = 10 ** rng.uniform(1.7, 2.5, n)
    t["log_mstar"] = 7.0 + 1.6 * np.log10(t["sigma_e"]) + rng.normal(0, 0.01, n)
    t["log_mtot"] = t["log_mstar"] + 0.3
    t["galaxy_id"] = np.repeat(np.arange(n_galaxies), 3)
    t["projection"] = np.tile([0, 1, 2], n_galaxies)
    t["galaxy_type"] = t["galaxy_id"] % 2
    t["inclination_deg"] = rng.uniform(0, 90, n)
    return t


EXPERIMENT = {"name": "sigma_only", "features": list(FEATURES), "targets": ["log_mstar"]}


@pytest.fixture(scope="module")
def fit():
    return gbdt.fit_gbdt(_table(), _cfg(), EXPERIMENT)


def test_the_only_informative_feature_gets_nearly_all_importance(fit):
    imp = fit.importances.set_index("feature")
    assert imp.loc["sigma_e", "gain"] > 0.9
    assert imp.loc["sigma_e", "shap"] > 0.9
    assert fit.agreement["top_feature"] == {"gain": "sigma_e", "permutation": "sigma_e",
                                            "shap": "sigma_e"}
    assert imp.loc["q", "gain"] == 0.0  # constant: never split on
    assert imp["gain"].sum() == pytest.approx(1.0) and imp["shap"].sum() == pytest.approx(1.0)


def test_same_seed_gives_bitwise_identical_predictions(fit):
    again = gbdt.fit_gbdt(_table(), _cfg(), EXPERIMENT)
    col = "pred_log_mstar"
    assert np.array_equal(fit.predictions[col].to_numpy(), again.predictions[col].to_numpy())
    assert fit.booster.model_to_string() == again.booster.model_to_string()
    pd.testing.assert_frame_equal(fit.importances, again.importances)
    # force_col_wise sums each histogram in one thread: the thread count does not matter either
    two = gbdt.fit_gbdt(_table(), _cfg(**{"gbdt.num_threads": 2}), EXPERIMENT)
    assert np.array_equal(fit.predictions[col].to_numpy(), two.predictions[col].to_numpy())


def test_learning_curves_have_one_row_per_round_and_track_the_test_set(fit):
    h = fit.history
    assert list(h.columns) == gbdt.HISTORY_COLUMNS
    assert len(h) == ROUNDS and list(h["round"]) == list(range(1, ROUNDS + 1))
    assert h["train_l2"].iloc[-1] < h["train_l2"].iloc[0]
    p = fit.predictions
    resid = p["pred_log_mstar"] - p["true_log_mstar"]
    assert h["test_l2"].iloc[-1] == pytest.approx(np.mean(resid**2), rel=1e-4)  # float32 labels
    assert h["test_l1"].iloc[-1] == pytest.approx(np.mean(np.abs(resid)), rel=1e-4)


def test_metrics_are_the_log_ratio_statistics_of_the_test_predictions(fit):
    p, stats = fit.predictions, fit.metrics["targets"]["log_mstar"]
    resid = p["pred_log_mstar"] - p["true_log_mstar"]
    assert stats["all"]["bias"] == pytest.approx(resid.mean())
    assert stats["all"]["sigma"] == pytest.approx(resid.std(ddof=1))
    early = p["galaxy_type"] == 1
    assert stats["early"]["n"] == early.sum() and stats["late"]["n"] == (~early).sum()
    assert stats["all"]["sigma"] < 0.05  # learnable: sigma_e fixes the target to 0.01 dex


def test_by_galaxy_split_keeps_every_galaxy_on_one_side(fit):
    cfg = _cfg()
    split = gbdt.gbdt_split(_table(), cfg)
    t = _table()
    assert not set(t["galaxy_id"].iloc[split["train"]]) & set(t["galaxy_id"].iloc[split["test"]])
    assert fit.metrics["test_galaxies_also_in_train"] == 0
    assert fit.metrics["n_train"] + fit.metrics["n_test"] == len(t)
    leaky = gbdt.fit_gbdt(_table(), cfg, EXPERIMENT, split_by="projection")
    assert leaky.metrics["test_galaxies_also_in_train"] > 0
    assert leaky.metrics["run"] == "sigma_only__by_projection"


def test_exclusions_are_applied_and_counted():
    t = _table(n_galaxies=100)
    t.loc[[0, 1, 2], "sersic_n"] = 150.0           # one whole galaxy
    t.loc[[10, 20], "kinetic_bt"] = 1.2            # two galaxies, one projection each
    t.loc[30, ["sersic_n", "kinetic_bt"]] = [101.0, 1.01]  # both reasons, counted once
    t.loc[40, "log_mstar"] = -np.inf               # log of a zero mass
    t.loc[50, "g_r"] = np.nan                      # missing feature: kept, counted
    res = gbdt.fit_gbdt(t, _cfg(), EXPERIMENT)
    ex = res.metrics["exclusions"]
    assert (ex["rows_sersic_n"], ex["rows_kinetic_bt"], ex["rows_excluded"]) == (4, 3, 6)
    assert ex["galaxies_affected"] == 4 and ex["rows_nonfinite_target"] == 1
    assert ex["rows_with_missing_feature"] == 1
    assert ex["rows_excluded_train"] + ex["rows_excluded_test"] == 7
    assert res.metrics["n_train"] + res.metrics["n_test"] == len(t) - 7
    kept = set(zip(res.predictions["galaxy_id"], res.predictions["projection"], strict=True))
    for row in (0, 1, 2, 10, 20, 30, 40):
        assert (t.loc[row, "galaxy_id"], t.loc[row, "projection"]) not in kept
    assert np.isfinite(res.predictions["true_log_mstar"]).all()


def test_bad_experiments_name_the_problem():
    t = _table(n_galaxies=20)
    with pytest.raises(gbdt.GBDTInputError, match="unknown feature.*luminosity"):
        gbdt.fit_gbdt(t, _cfg(), {"name": "x", "features": ["luminosity"],
                                  "targets": ["log_mstar"]})
    with pytest.raises(gbdt.GBDTInputError, match=r"ds\.h5: .*needs column\(s\) log_mdm"):
        gbdt.fit_gbdt(t, _cfg(), {"name": "x", "features": ["M_r"], "targets": ["log_mdm"]},
                      where="ds.h5")
    with pytest.raises(gbdt.GBDTInputError, match="exactly one target"):
        gbdt.fit_gbdt(t, _cfg(), {"name": "x", "features": ["M_r"],
                                  "targets": ["log_mstar", "log_mtot"]})
    t["log_mstar"] = np.nan
    with pytest.raises(gbdt.GBDTInputError, match="no train rows"):
        gbdt.fit_gbdt(t, _cfg(), EXPERIMENT)


def test_correlation_matrix_covers_features_and_targets():
    c = gbdt.correlation_matrix(_table(n_galaxies=50))
    assert list(c.columns) == [*FEATURES, "log_mstar", "log_mtot"]
    assert c.loc["log_mstar", "log_mtot"] == pytest.approx(1.0)
    assert c["q"].isna().all()  # a constant column has no defined correlation


def test_store_holds_metrics_importances_correlations_and_predictions(synthetic_dataset,
                                                                    tmp_path):
    with h5py.File(synthetic_dataset, "a") as f:  # the fixture's features are N(0, 1)
        f["features/kinetic_bt"][...] = np.clip(f["features/kinetic_bt"][...], -1, 0.5)
        bt = f["features/kinetic_bt"][...]
        bt[:3] = 1.5
        f["features/kinetic_bt"][...] = bt
    cfg = load_config("smoke", {"gbdt.num_threads": 1, "gbdt.permutation_repeats": 2})
    store = ResultsStore(tmp_path / "results")
    path = gbdt.run_gbdt_experiment(cfg, synthetic_dataset, "mstar_default", store=store)
    run = store.load("gbdt", "mstar_default", "smoke")
    assert run.path == path
    assert run.metrics["exclusions"]["rows_excluded"] == 3
    assert {"bias", "sigma", "n"} <= set(run.metrics["targets"]["log_mstar"]["all"])
    assert {"all", "early", "late"} == set(run.metrics["targets"]["log_mstar"])
    assert len(run.history) == cfg["gbdt"]["num_boost_round"]
    assert {"galaxy_id", "projection", "galaxy_type", "true_log_mstar",
            "pred_log_mstar"} <= set(run.predictions.columns)
    assert len(run.predictions) == run.metrics["n_test"]
    extras = gbdt.load_extras(path)
    imp = extras["importance"]
    assert {"feature", "gain", "permutation", "shap", "rank_gain"} <= set(imp.columns)
    assert len(imp) == len(FEATURES)
    corr = extras["correlation"]
    assert list(corr.index) == list(corr.columns) and "log_mstar" in corr.index
    assert len(extras["shap_values"]) == run.metrics["n_test"]
    assert extras["agreement"]["summary"] == run.metrics["importance"]["summary"]
    assert (path / "extra" / "model.txt").read_text().startswith("tree")
    assert run.config["lightgbm_params"]["num_leaves"] == cfg["gbdt"]["num_leaves"]

    stamp = (path / "metrics.json").stat().st_mtime_ns  # stored: not retrained
    gbdt.run_gbdt_experiment(cfg, synthetic_dataset, "mstar_default", store=store)
    assert (path / "metrics.json").stat().st_mtime_ns == stamp


def test_leakage_comparison_runs_both_splits(synthetic_dataset, tmp_path):
    cfg = load_config("smoke", {"gbdt.num_threads": 1, "gbdt.permutation_repeats": 1,
                                "gbdt.exclude_kinetic_bt_above": 10.0})
    store = ResultsStore(tmp_path / "results")
    table = gbdt.leakage_comparison(cfg, synthetic_dataset, "mstar_default", store=store)
    assert list(table.index) == ["galaxy", "projection"]
    assert table.loc["galaxy", "test_galaxies_also_in_train"] == 0
    assert table.loc["projection", "test_galaxies_also_in_train"] > 0
    assert {"sigma_all", "bias_all", "sigma_early", "sigma_late"} <= set(table.columns)
    assert store.exists("gbdt", "mstar_default__by_projection", "smoke")


def test_every_table6_row_is_a_named_experiment():
    with open(REFERENCE_DIR / "paper_results.csv") as f:
        paper = [r for r in csv.DictReader(f) if r["method"] == "lightgbm"]
    experiments = load_experiments("gbdt")
    # probabilistic rows (issue 14) repeat a Table-6 row with intervals: not paper rows
    experiments = {n: e for n, e in experiments.items() if not e.get("probabilistic")}
    refs = {name: ref for name, e in experiments.items() for ref in e["paper"].values()}
    for row in paper:
        key = {"section": row["section"], "inputs": row["inputs"], "target": row["target"]}
        match = [name for name, ref in refs.items() if ref == key]
        assert len(match) == 1, f"Table-6 row {key}"
        assert experiments[match[0]]["targets"] == [row["target"]]
        assert experiments[match[0]]["section"] == row["section"]
    for e in experiments.values():
        assert set(e["features"]) <= set(FEATURES)
        (ref,) = e["paper"].values()
        assert ("M_r" in e["features"]) == ("w/o" not in ref["inputs"])
    assert len(select_experiments("gbdt", "smoke")) == 1
    headline = select_experiments("gbdt", "headline")
    assert {e["targets"][0] for e in headline} == set(gbdt.GBDT_TARGETS)
    assert json.dumps(experiments)  # plain data, storable in config.json


def test_a_stored_run_of_other_data_is_redone(synthetic_dataset, tmp_path):
    """The store's fingerprint holds the dataset's content: new content, new run."""
    cfg = load_config("smoke", {"gbdt.num_threads": 1, "gbdt.permutation_repeats": 1,
                                "gbdt.exclude_kinetic_bt_above": 10.0})
    store = ResultsStore(tmp_path / "results")
    path = gbdt.run_gbdt_experiment(cfg, synthetic_dataset, "mstar_default", store=store)
    stamp = (path / "metrics.json").stat().st_mtime_ns
    gbdt.run_gbdt_experiment(cfg, synthetic_dataset, "mstar_default", store=store)
    assert (path / "metrics.json").stat().st_mtime_ns == stamp  # same data: reused
    with h5py.File(synthetic_dataset, "a") as f:
        f["targets/log_mstar"][...] = f["targets/log_mstar"][...] + 0.1
    gbdt.run_gbdt_experiment(cfg, synthetic_dataset, "mstar_default", store=store)
    redone = (path / "metrics.json").stat().st_mtime_ns
    assert redone != stamp  # other data: redone
    assert not store.exists("gbdt", "mstar_default", "smoke", "not-this-fingerprint")
    other = {**cfg, "gbdt": {**cfg["gbdt"], "num_threads": 2}}  # threads change nothing
    gbdt.run_gbdt_experiment(other, synthetic_dataset, "mstar_default", store=store)
    assert (path / "metrics.json").stat().st_mtime_ns == redone


def _noisy_table(n_galaxies: int = 300, seed: int = 1) -> pd.DataFrame:
    """log_mtot = f(sigma_e) + Gaussian noise whose width grows with sigma_e (0.05-0.2 dex)."""
    t = _table(n_galaxies, seed)
    rng = np.random.default_rng(seed + 10)
    x = (np.log10(t["sigma_e"]) - 1.7) / 0.8
    t["log_mtot"] = 7.3 + 1.6 * np.log10(t["sigma_e"]) + rng.normal(0, 0.05 + 0.15 * x)
    return t


def test_probabilistic_run_is_conformally_calibrated_on_test_galaxies():
    exp = {**select_experiments("gbdt", ["mtot_probabilistic"])[0]}
    assert {e["name"] for e in select_experiments("gbdt", "probabilistic")} == {
        "mstar_probabilistic", "mtot_probabilistic"}
    fit = gbdt.fit_gbdt(_noisy_table(), _cfg(**{"gbdt.min_data_in_leaf": 10}), exp)
    m = fit.metrics
    for key in ("coverage_68", "coverage_95", "crps"):
        assert np.isfinite(m[key])
    assert m["coverage_68"] == pytest.approx(0.68, abs=0.1)
    assert m["coverage_95"] == pytest.approx(0.95, abs=0.05)
    cal = m["calibration"]
    assert set(cal) >= {"before", "after", "corrections_dex", "n_fit", "n_calibration"}
    assert len(cal["after"]["pit_hist"]) == 10
    # the calibration galaxies are training galaxies, never test ones; the CRPS is in dex and
    # of the order of the noise (0.05-0.2 dex), far below the target's spread (~0.4 dex)
    assert cal["n_fit"] + cal["n_calibration"] == m["n_train"]
    assert 0.02 < m["crps"] < 0.15
    p = fit.predictions
    for level in ("025", "160", "500", "840", "975"):
        assert f"q{level}_log_mtot" in p and f"cq{level}_log_mtot" in p
    width = p["cq840_log_mtot"] - p["cq160_log_mtot"]
    raw = p["q840_log_mtot"] - p["q160_log_mtot"]
    np.testing.assert_allclose(width - raw, 2 * cal["corrections_dex"]["68"], atol=1e-9)
    # heteroscedastic noise: the intervals are wider where the noise (sigma_e) is larger
    sigma_e = _noisy_table()["sigma_e"].to_numpy()[3 * p["galaxy_id"] + p["projection"]]
    assert np.corrcoef(width, np.log10(sigma_e))[0, 1] > 0.3


def test_conformalize_widens_each_interval_by_its_correction():
    levels = np.array(gbdt.QUANTILE_LEVELS)
    q = np.array([[-2.0], [-1.0], [0.0], [1.0], [2.0]])
    out = gbdt.conformalize(levels, q, {"68": 0.5, "95": 0.1})
    np.testing.assert_allclose(out[:, 0], [-2.1, -1.5, 0.0, 1.5, 2.1])
    pit = gbdt.quantile_pit(levels, q, np.array([0.0]))
    assert pit[0] == pytest.approx(0.5)
