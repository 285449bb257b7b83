"""Gain, permutation and SHAP importances, their comparison, and the correlation matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_lib.models import importance as imp
from analysis_lib.models.gbdt import train_booster


@pytest.fixture(scope="module")
def one_feature_model():
    """y depends (non-linearly) on 'a' only; 'b', 'c' are noise; 'const' never varies."""
    rng = np.random.default_rng(1)
    n = 800
    x = pd.DataFrame({"a": rng.uniform(-2, 2, n), "b": rng.normal(size=n),
                      "c": rng.normal(size=n), "const": np.full(n, 3.0)})
    y = np.sin(x["a"].to_numpy()) + 0.5 * x["a"].to_numpy() + rng.normal(0, 0.02, n)
    params = {"objective": "regression", "metric": ["l1", "l2"], "num_leaves": 5,
              "min_data_in_leaf": 20, "seed": 3, "deterministic": True, "force_col_wise": True,
              "num_threads": 1, "verbosity": -1}
    booster, _ = train_booster(x[:600], y[:600], x[600:], y[600:], params, 60)
    return booster, x[600:], y[600:]


def test_the_one_informative_feature_takes_the_importance(one_feature_model):
    booster, x_test, y_test = one_feature_model
    gain = imp.gain_importance(booster)
    values, _ = imp.shap_values(booster, x_test)
    shap = imp.shap_importance(values, x_test.columns)
    perm = imp.permutation_importance(booster, x_test, y_test, n_repeats=3, seed=0)
    assert gain.sum() == pytest.approx(1.0) and shap.sum() == pytest.approx(1.0)
    assert gain["a"] > 0.9 and shap["a"] > 0.9
    assert perm["permutation"].idxmax() == "a"
    assert perm.loc["a", "permutation"] > 10 * perm.drop("a")["permutation"].abs().max()


def test_a_constant_feature_gets_exactly_nothing(one_feature_model):
    booster, x_test, y_test = one_feature_model
    values, _ = imp.shap_values(booster, x_test)
    assert imp.gain_importance(booster)["const"] == 0.0
    assert imp.shap_importance(values, x_test.columns)["const"] == 0.0
    perm = imp.permutation_importance(booster, x_test, y_test, n_repeats=3, seed=0)
    assert perm.loc["const", "permutation"] == 0.0


def test_shap_values_add_up_to_the_prediction(one_feature_model):
    booster, x_test, _ = one_feature_model
    values, expected = imp.shap_values(booster, x_test)
    assert values.shape == x_test.shape
    np.testing.assert_allclose(expected + values.sum(axis=1), booster.predict(x_test),
                               rtol=0, atol=1e-6)


def test_permutation_importance_is_reproducible_for_a_seed(one_feature_model):
    booster, x_test, y_test = one_feature_model
    a = imp.permutation_importance(booster, x_test, y_test, n_repeats=3, seed=7)
    b = imp.permutation_importance(booster, x_test, y_test, n_repeats=3, seed=7)
    c = imp.permutation_importance(booster, x_test, y_test, n_repeats=3, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["permutation"], c["permutation"])


def _table(gain, perm, shap) -> pd.DataFrame:
    feats = ["w", "x", "y", "z"]
    return imp.importance_table(
        pd.Series(gain, index=feats), pd.DataFrame({"permutation": perm,
                                                    "permutation_std": 0.0}, index=feats),
        pd.Series(shap, index=feats))


def test_importance_table_ranks_and_normalises():
    t = _table([0.5, 0.3, 0.15, 0.05], [0.4, -0.1, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4])
    assert list(t["feature"]) == ["w", "x", "y", "z"]  # sorted by gain, the paper's ranking
    assert list(t["rank_shap"]) == [4, 3, 2, 1]
    assert list(t["rank_permutation"]) == [1, 4, 2, 3]
    assert t["permutation_frac"].sum() == pytest.approx(1.0)
    assert t.set_index("feature").loc["x", "permutation_frac"] == 0.0  # negative -> 0


def test_compare_rankings_finds_the_disagreements():
    same = imp.compare_rankings(_table([4, 3, 2, 1], [4, 3, 2, 1], [4, 3, 2, 1]))
    assert same["same_top_feature"] and same["disagreements"] == []
    assert all(v == pytest.approx(1.0) for v in same["spearman"].values())
    diff = imp.compare_rankings(_table([4, 3, 2, 1], [4, 3, 2, 1], [1, 3, 2, 4]))
    assert diff["spearman"]["gain_vs_permutation"] == pytest.approx(1.0)
    assert diff["spearman"]["gain_vs_shap"] == pytest.approx(-0.8)  # 1 - 6*18/(4*15)
    assert [d["feature"] for d in diff["disagreements"]] == ["w", "z"]
    assert diff["top_feature"] == {"gain": "w", "permutation": "w", "shap": "z"}
    assert not diff["same_top_feature"] and "w (1/1/4)" in diff["summary"]


def test_correlation_matrix_is_pearson_and_ignores_non_finite():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    t = pd.DataFrame({"x": x, "twice": 2 * x + 1, "minus": -x, "noise": rng.normal(size=200)})
    t.loc[5, "twice"] = np.inf
    c = imp.correlation_matrix(t, ["x", "twice", "minus", "noise"])
    assert c.loc["x", "twice"] == pytest.approx(1.0)
    assert c.loc["x", "minus"] == pytest.approx(-1.0)
    assert c.loc["x", "noise"] == pytest.approx(np.corrcoef(x, t["noise"])[0, 1])
    assert np.allclose(c.to_numpy(), c.to_numpy().T)
    with pytest.raises(KeyError, match="lacks column.*nope"):
        imp.correlation_matrix(t, ["x", "nope"])
