"""Which features a fitted LightGBM model leans on: gain, permutation and SHAP importances.

The paper ranks features by LightGBM's 'gain' importance only. Gain is measured on the training
set and is known to favour features that offer many split points, and correlated features (M_r,
sigma_e, lambda_R, f_cold, ... are strongly inter-correlated here) share credit arbitrarily. Two
other rankings are computed beside it so the book can show where the story depends on the method:
permutation importance (the increase in test-set MSE when one feature's values are shuffled:
what the model *needs* to predict unseen galaxies) and mean ``|SHAP|`` value on the test set
(how much each feature moves the predictions). The Pearson correlation matrix of features and
targets is the paper's Fig. 10 companion to these rankings.

Heavy packages (lightgbm, shap, scikit-learn, scipy) are imported inside the functions.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

METHODS = ("gain", "permutation", "shap")
RANK_GAP = 2  # a feature whose rank differs by at least this much between methods is reported


def _normalise(values: np.ndarray) -> np.ndarray:
    """Fractions summing to 1 (negative values count as 0); all zeros stays all zeros."""
    v = np.clip(np.asarray(values, dtype=float), 0.0, None)
    total = v.sum()
    return v / total if total > 0 else v


def gain_importance(booster) -> pd.Series:
    """LightGBM total split gain per feature on the training set, normalised to sum to 1.

    A feature that is never used for a split has exactly zero gain.
    """
    gain = booster.feature_importance(importance_type="gain")
    return pd.Series(_normalise(gain), index=booster.feature_name(), name="gain")


class _FittedBooster:
    """scikit-learn's permutation_importance asks for an estimator with fit(); a trained
    lightgbm.Booster only predicts, so this adapter offers predict() and refuses to refit."""

    def __init__(self, booster) -> None:
        self.booster = booster

    def fit(self, *args, **kwargs):
        raise TypeError("the booster is already trained; permutation importance never refits")

    def predict(self, x) -> np.ndarray:
        return self.booster.predict(x)


def permutation_importance(booster, x_test: pd.DataFrame, y_test: np.ndarray, n_repeats: int,
                           seed: int) -> pd.DataFrame:
    """Mean and std (over `n_repeats` shuffles) of the test MSE increase per feature, dex^2.

    Uses sklearn.inspection.permutation_importance with a seeded integer random_state and one
    job, so the result is reproducible. Shuffling a constant feature changes nothing: exactly 0.
    """
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    def neg_mse(model, x, y) -> float:
        return -float(np.mean((model.predict(x) - y) ** 2))

    res = sk_permutation_importance(_FittedBooster(booster), x_test,
                                    np.asarray(y_test, dtype=float), scoring=neg_mse,
                                    n_repeats=n_repeats, random_state=seed, n_jobs=1)
    return pd.DataFrame({"permutation": res.importances_mean,
                         "permutation_std": res.importances_std}, index=list(x_test.columns))


def shap_values(booster, x: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Per-sample SHAP values (rows x features) and the expected value, from shap.TreeExplainer.

    TreeSHAP is exact for trees: expected value + sum of a row's SHAP values = its prediction.
    """
    with warnings.catch_warnings():  # shap's colour maps use a soon-deprecated matplotlib API
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    explainer = shap.TreeExplainer(booster)
    values = np.asarray(explainer.shap_values(x), dtype=float)
    expected = float(np.ravel(explainer.expected_value)[0])
    return values, expected


def shap_importance(values: np.ndarray, features: Sequence[str]) -> pd.Series:
    """Mean ``|SHAP|`` per feature, normalised to sum to 1."""
    mean_abs = np.abs(np.asarray(values, dtype=float)).mean(axis=0)
    return pd.Series(_normalise(mean_abs), index=list(features), name="shap")


def rank(values: pd.Series) -> pd.Series:
    """1 = most important; ties share the best (smallest) rank."""
    return values.rank(ascending=False, method="min").astype(int)


def importance_table(gain: pd.Series, permutation: pd.DataFrame, shap: pd.Series
                     ) -> pd.DataFrame:
    """One row per feature: the three importances, the permutation one also as a fraction, ranks.

    Sorted by gain, the paper's ranking.
    """
    table = pd.DataFrame({"gain": gain})
    table["permutation"] = permutation["permutation"]
    table["permutation_std"] = permutation["permutation_std"]
    table["permutation_frac"] = _normalise(table["permutation"].to_numpy())
    table["shap"] = shap
    for method in METHODS:
        table[f"rank_{method}"] = rank(table[method])
    table = table.sort_values(["rank_gain", "rank_shap"]).rename_axis("feature").reset_index()
    return table


def compare_rankings(table: pd.DataFrame, gap: int = RANK_GAP) -> dict:
    """Where the three rankings agree and where they do not, as data plus one sentence.

    Returns Spearman rank correlations for each pair of methods, each method's top feature, and
    the features whose rank differs by >= `gap` between any two methods.
    """
    from scipy.stats import spearmanr

    spearman = {}
    for a, b in itertools.combinations(METHODS, 2):
        ra, rb = table[f"rank_{a}"].to_numpy(), table[f"rank_{b}"].to_numpy()
        if np.ptp(ra) == 0 or np.ptp(rb) == 0:  # a constant ranking has no defined correlation
            spearman[f"{a}_vs_{b}"] = float("nan")
        else:
            spearman[f"{a}_vs_{b}"] = float(spearmanr(ra, rb).statistic)
    top = {m: str(table.loc[table[f"rank_{m}"].idxmin(), "feature"]) for m in METHODS}
    ranks = table[[f"rank_{m}" for m in METHODS]].to_numpy()
    spread = ranks.max(axis=1) - ranks.min(axis=1)
    disagree = [{"feature": str(table["feature"].iloc[i]),
                 **{m: int(table[f"rank_{m}"].iloc[i]) for m in METHODS}}
                for i in np.flatnonzero(spread >= gap)]
    same_top = len(set(top.values())) == 1
    text = ("All three methods rank " + top["gain"] + " first" if same_top else
            "Top feature: " + ", ".join(f"{m} -> {f}" for m, f in top.items()))
    text += "; Spearman " + ", ".join(f"{k.replace('_vs_', '/')} {v:.2f}"
                                       for k, v in spearman.items())
    if disagree:
        text += f"; rank differs by >= {gap} for " + ", ".join(
            f"{d['feature']} ({'/'.join(str(d[m]) for m in METHODS)})" for d in disagree)
    else:
        text += f"; no feature's rank differs by >= {gap}"
    return {"spearman": spearman, "top_feature": top, "same_top_feature": same_top,
            "rank_gap": gap, "disagreements": disagree, "summary": text + "."}


def correlation_matrix(table: pd.DataFrame, columns: Sequence[str] | None = None
                       ) -> pd.DataFrame:
    """Pearson correlation coefficients between the given columns (default: every numeric one).

    Non-finite entries (e.g. log of a zero mass) are treated as missing and each pair uses the
    rows where both are finite. Pearson R measures only linear association: SFR, for instance,
    spans decades and is used as stored (linear), as the paper's Fig. 10 did.
    """
    if columns is None:
        columns = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"correlation_matrix: table lacks column(s) {', '.join(missing)}")
    data = table[list(columns)].astype(float).replace([np.inf, -np.inf], np.nan)
    return data.corr(method="pearson")
