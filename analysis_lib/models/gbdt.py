"""LightGBM on the Table-1 summary statistics (the paper's section 5, Table 6).

One model per target, all with the paper's hyper-parameters (Table 3): objective 'regression'
(L2), num_leaves 5, 500 rounds, min_data_in_leaf 20, no depth limit, and MAE (l1) and MSE (l2)
recorded on the training and test sets every round (the learning curves of Fig. 4). The test set
is only watched, never used to pick a round, so the curves do not leak into the model.

Split: by galaxy by default (no projection of a test galaxy is trained on), with the paper's
18833/9277 proportions; `split_by='projection'` (or an experiment's `split_by`) reproduces the
paper's sample-level split, and `leakage_comparison` runs both. The split is drawn on all rows
and the paper's exclusions (Sersic n > 100 or kinetic B/T > 1) are applied afterwards, because
18833 + 9277 = 28110 is the sample count before the exclusions. Rows whose target is not finite
(e.g. log of a zero dark-matter mass) are dropped too; both are counted in the metrics. A
missing (NaN or infinite) feature value is kept and left to LightGBM's missing-value handling,
and the number of such rows is reported.

Training is deterministic: a per-experiment seed from analysis_lib.rng, deterministic=True,
force_col_wise, and a fixed thread count (cfg['gbdt']['num_threads'], 0 = os.cpu_count()).
lightgbm and shap are imported inside functions.

One experiment is a `GBDTEstimator` (select_rows -> fit -> predict / evaluate); the experiment
runner (`analysis_lib.experiments.run_experiment`) takes it from the dataset to the store, and
`fit_gbdt` runs the same steps on an in-memory table without the store.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.config import store_label
from analysis_lib.dataset import FEATURES, open_dataset
from analysis_lib.dataset.splits import gbdt_split  # noqa: F401  (tests patch it here)
from analysis_lib.experiments.runner import RunSpec, Split, check_fitted, run_experiment
from analysis_lib.metrics import log_ratio_stats, target_metrics
from analysis_lib.models import importance as imp
from analysis_lib.models.experiments import select_experiments
from analysis_lib.results import ResultsStore, run_fingerprint
from analysis_lib.rng import make_rng

KIND = "gbdt"
GBDT_TARGETS = ("log_mstar", "log_mdm", "log_mtot", "log_fstar", "log_fdm", "log_ml_r")
HISTORY_COLUMNS = ["round", "train_l1", "train_l2", "test_l1", "test_l2"]
PREDICTION_META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]


class GBDTInputError(ValueError):
    """An experiment or dataset that cannot be trained on; the message names the field."""


@dataclass
class GBDTFit:
    """Everything one experiment produces, before it is written to the store."""

    booster: object
    history: pd.DataFrame
    predictions: pd.DataFrame
    metrics: dict
    importances: pd.DataFrame
    agreement: dict
    shap_values: pd.DataFrame
    correlations: pd.DataFrame
    params: dict
    timings: dict


# --------------------------------------------------------------------------- configuration


def experiment_seed(cfg: dict, name: str, purpose: str = "lightgbm") -> int:
    """An integer seed for one experiment and purpose, derived from the profile seed."""
    return int(make_rng(cfg["seed"], "gbdt", purpose, name).integers(2**31 - 1))


def lightgbm_params(cfg: dict, seed: int) -> dict:
    """The paper's Table-3 set-up plus what makes LightGBM bitwise reproducible."""
    g = cfg["gbdt"]
    threads = int(g.get("num_threads", 0)) or (os.cpu_count() or 1)
    return {"objective": "regression", "metric": ["l1", "l2"],
            "num_leaves": int(g["num_leaves"]), "min_data_in_leaf": int(g["min_data_in_leaf"]),
            "max_depth": -1, "learning_rate": float(g.get("learning_rate", 0.1)),
            "seed": int(seed), "deterministic": True, "force_col_wise": True,
            "num_threads": threads, "verbosity": -1}


def run_name(experiment: dict, split_by: str) -> str:
    """Store name: the experiment's, with '__by_projection' for the leaky split."""
    return experiment["name"] + ("" if split_by == "galaxy" else f"__by_{split_by}")


def _resolve(experiment: dict | str) -> dict:
    if isinstance(experiment, str):
        return select_experiments(KIND, [experiment])[0]
    return experiment


def _check_experiment(experiment: dict, table: pd.DataFrame, where: str) -> tuple[list, str]:
    name = experiment.get("name", "?")
    features, targets = list(experiment.get("features") or []), experiment.get("targets")
    if not features or not isinstance(targets, list) or len(targets) != 1:
        raise GBDTInputError(f"gbdt experiment '{name}': needs 'features' (a list) and "
                             f"'targets' (a list of exactly one target; got {targets!r})")
    target = targets[0]
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise GBDTInputError(f"gbdt experiment '{name}': unknown feature(s) {', '.join(unknown)}"
                             f" (Table-1 features are {', '.join(FEATURES)})")
    missing = [c for c in [*features, target, *PREDICTION_META] if c not in table.columns]
    if missing:
        raise GBDTInputError(f"{where}: experiment '{name}' needs column(s) "
                             f"{', '.join(missing)}, which the dataset lacks")
    return features, target


# --------------------------------------------------------------------------- exclusions


def exclusion_mask(table: pd.DataFrame, cfg: dict) -> tuple[np.ndarray, dict]:
    """True for rows the paper excludes (Sersic n above, or kinetic B/T above, the cuts).

    The cuts are per sample (sersic_n is measured per projection); counts are of rows and of
    the distinct galaxies those rows belong to. A NaN feature is not excluded (LightGBM treats it
    as missing).
    """
    g = cfg["gbdt"]
    n_cut, bt_cut = float(g["exclude_sersic_n_above"]), float(g["exclude_kinetic_bt_above"])
    bad_n = (table["sersic_n"].to_numpy(dtype=float) > n_cut)
    bad_bt = (table["kinetic_bt"].to_numpy(dtype=float) > bt_cut)
    mask = bad_n | bad_bt
    counts = {"sersic_n_cut": n_cut, "kinetic_bt_cut": bt_cut,
              "rows_sersic_n": int(bad_n.sum()), "rows_kinetic_bt": int(bad_bt.sum()),
              "rows_excluded": int(mask.sum()),
              "galaxies_affected": int(table.loc[mask, "galaxy_id"].nunique()),
              "fraction_excluded": float(mask.mean()) if len(mask) else 0.0}
    return mask, counts


def kept_rows(table: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The table without the paper's excluded rows (for correlation plots in the notebooks)."""
    return table.loc[~exclusion_mask(table, cfg)[0]]


def correlation_matrix(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Pearson R between the Table-1 features and the Table-6 targets (the paper's Fig. 10).

    Computed on the rows given (pass `kept_rows(table, cfg)` for the paper's sample); `columns`
    overrides the default set.
    """
    if columns is None:
        columns = [c for c in [*FEATURES, *GBDT_TARGETS] if c in table.columns]
    return imp.correlation_matrix(table, columns)


# --------------------------------------------------------------------------- training


def train_booster(x_train: pd.DataFrame, y_train: np.ndarray, x_test: pd.DataFrame,
                  y_test: np.ndarray, params: dict, num_boost_round: int
                  ) -> tuple[object, pd.DataFrame]:
    """Fit LightGBM for exactly `num_boost_round` rounds; return it and the learning curves.

    history.csv columns: round (1-based), train_l1, train_l2, test_l1, test_l2 (MAE and MSE,
    dex and dex^2 for log targets).
    """
    import lightgbm as lgb

    train_set = lgb.Dataset(x_train, label=np.asarray(y_train, dtype=float),
                            free_raw_data=False)
    test_set = lgb.Dataset(x_test, label=np.asarray(y_test, dtype=float), reference=train_set,
                           free_raw_data=False)
    evals: dict = {}
    booster = lgb.train(params, train_set, num_boost_round=int(num_boost_round),
                        valid_sets=[train_set, test_set], valid_names=["train", "test"],
                        callbacks=[lgb.record_evaluation(evals)])
    history = pd.DataFrame({"round": np.arange(1, int(num_boost_round) + 1)})
    for split in ("train", "test"):
        for metric in ("l1", "l2"):
            history[f"{split}_{metric}"] = evals[split][metric]
    return booster, history[HISTORY_COLUMNS]


class GBDTEstimator:
    """LightGBM for one experiment's target from its Table-1 features (the paper's Table 3).

    Parameters
    ----------
    experiment : dict
        The experiment (features, one target, name, section, optional `probabilistic`).
    cfg : dict
        The profile; its `gbdt` section holds the hyper-parameters (num_leaves,
        min_data_in_leaf, learning_rate, num_boost_round, exclusion cuts, permutation_repeats)
        and its seed the per-experiment seeds.
    split_by : str
        'galaxy' or 'projection', recorded in the metrics.
    where : str
        Names the data in error messages (the dataset file).

    Fitted attributes: ``booster_``, ``history_`` (learning curves, the test set watched, never
    used to choose a round), ``params_``, ``counts_`` (exclusions), ``timings_``, ``meta_``.
    """

    def __init__(self, experiment: dict, cfg: dict, split_by: str = "galaxy",
                 where: str = "table") -> None:
        self.experiment = experiment
        self.cfg = cfg
        self.split_by = split_by
        self.where = where

    # -- rows
    def select_rows(self, dataset, split: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The split without the paper's exclusions and rows of non-finite target (counted).

        The split is drawn on all rows and the exclusions applied afterwards, as the paper's
        18833 + 9277 = 28110 counts the samples before them.
        """
        self._t0 = time.perf_counter()
        table = dataset.table.reset_index(drop=True)
        self.features_, self.target_ = _check_experiment(self.experiment, table, self.where)
        self.excluded_, counts = exclusion_mask(table, self.cfg)
        finite = np.isfinite(table[self.target_].to_numpy(dtype=float))
        counts["rows_nonfinite_target"] = int((~finite & ~self.excluded_).sum())
        keep = ~self.excluded_ & finite
        rows = {s: idx[keep[idx]] for s, idx in split.items()}
        for s in ("train", "test"):
            counts[f"rows_excluded_{s}"] = int((~keep[split[s]]).sum())
            if len(rows[s]) == 0:
                raise GBDTInputError(f"{self.where}: experiment '{self.experiment['name']}' has "
                                     f"no {s} rows left after exclusions and non-finite "
                                     f"'{self.target_}' values")
        x = table[self.features_].astype(float).replace([np.inf, -np.inf], np.nan)
        counts["rows_with_missing_feature"] = int(x[keep].isna().any(axis=1).sum())  # kept
        self.counts_ = counts
        self._selected = rows
        return rows

    def _xy(self, dataset, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        table = dataset.table.reset_index(drop=True)
        x = table[self.features_].astype(float).replace([np.inf, -np.inf], np.nan)
        return x.iloc[rows], table[self.target_].to_numpy(dtype=float)[rows]

    # -- fit / predict
    def fit(self, dataset, rows: dict[str, np.ndarray]) -> GBDTEstimator:
        """Train for exactly cfg['gbdt']['num_boost_round'] rounds on rows['train'], recording
        the train and test curves (rows['test'] is watched only). A split that did not come
        from `select_rows` goes through it first."""
        if rows is not getattr(self, "_selected", None):  # a raw split: apply the row rules
            rows = self.select_rows(dataset, rows)
        x_train, y_train = self._xy(dataset, rows["train"])
        x_test, y_test = self._xy(dataset, rows["test"])
        self.params_ = lightgbm_params(self.cfg, experiment_seed(self.cfg,
                                                                 self.experiment["name"]))
        self.booster_, self.history_ = train_booster(x_train, y_train, x_test, y_test,
                                                     self.params_,
                                                     self.cfg["gbdt"]["num_boost_round"])
        return self

    def predict(self, dataset, rows: np.ndarray) -> np.ndarray:
        """The target (log10) of the given rows: (n_rows, 1)."""
        check_fitted(self, "booster_")
        return self.booster_.predict(self._xy(dataset, rows)[0])[:, None]

    # -- evaluate
    def evaluate(self, dataset, rows: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict]:
        """Test predictions and metrics, importances (gain, permutation, SHAP), and for a
        probabilistic experiment the conformalized quantile intervals."""
        check_fitted(self, "booster_")
        table = dataset.table.reset_index(drop=True)
        target, features = self.target_, self.features_
        x_train, y_train = self._xy(dataset, rows["train"])
        x_test, y_test = self._xy(dataset, rows["test"])
        pred_test, pred_train = self.booster_.predict(x_test), self.booster_.predict(x_train)
        t_fit = time.perf_counter() - self._t0
        self._explain(x_test, y_test)
        t_imp = time.perf_counter() - self._t0 - t_fit
        test_meta = table.loc[rows["test"], PREDICTION_META].reset_index(drop=True)
        predictions = test_meta.assign(**{f"true_{target}": y_test, f"pred_{target}": pred_test})
        self.shap_frame_ = pd.concat([test_meta[["galaxy_id", "projection"]],
                                      pd.DataFrame(self.shap_[0], columns=features)], axis=1)
        metrics = self._metrics(table, rows, pred_test, y_test, pred_train, y_train)
        if self.experiment.get("probabilistic"):
            t_q = time.perf_counter()
            intervals, calib = quantile_intervals(table, self.cfg, self.experiment, features,
                                                  target, rows["train"], rows["test"])
            predictions = pd.concat([predictions, intervals], axis=1)
            metrics.update(calib)
            metrics["timings_quantile_s"] = time.perf_counter() - t_q
        self.correlations_ = correlation_matrix(table.loc[~self.excluded_])
        self.timings_ = {"fit_s": t_fit, "importance_s": t_imp,
                         "total_s": time.perf_counter() - self._t0}
        self.meta_ = {"wall_s": self.timings_["total_s"], "timings": self.timings_}
        return predictions, metrics

    def _explain(self, x_test: pd.DataFrame, y_test: np.ndarray) -> None:
        name = self.experiment["name"]
        gain = imp.gain_importance(self.booster_)
        perm = imp.permutation_importance(self.booster_, x_test, y_test,
                                          int(self.cfg["gbdt"].get("permutation_repeats", 5)),
                                          experiment_seed(self.cfg, name, "permutation"))
        self.shap_ = imp.shap_values(self.booster_, x_test)
        self.importances_ = imp.importance_table(gain, perm,
                                                 imp.shap_importance(self.shap_[0],
                                                                     self.features_))
        self.agreement_ = imp.compare_rankings(self.importances_)

    def _metrics(self, table: pd.DataFrame, rows: dict, pred_test: np.ndarray,
                 y_test: np.ndarray, pred_train: np.ndarray, y_train: np.ndarray) -> dict:
        types_test = table["galaxy_type"].to_numpy()[rows["test"]]
        train_gal = set(table["galaxy_id"].to_numpy()[rows["train"]])
        test_gal = set(table["galaxy_id"].to_numpy()[rows["test"]])
        agreement = self.agreement_
        return {
            "experiment": self.experiment["name"],
            "run": run_name(self.experiment, self.split_by),
            "section": str(self.experiment.get("section", "")), "target": self.target_,
            "features": self.features_, "split_by": self.split_by,
            "n_train": int(len(rows["train"])), "n_test": int(len(rows["test"])),
            "n_galaxies_train": len(train_gal), "n_galaxies_test": len(test_gal),
            "test_galaxies_also_in_train": len(train_gal & test_gal),
            "targets": {self.target_: target_metrics(pred_test, y_test, types_test)},
            "train": {"all": log_ratio_stats(pred_train, y_train)},
            "final_round": {k: float(v) for k, v in self.history_.iloc[-1].items()
                            if k != "round"},
            "exclusions": self.counts_,
            "importance": {"top_feature": agreement["top_feature"],
                           "spearman": agreement["spearman"], "summary": agreement["summary"]},
            "shap_expected_value": self.shap_[1],
        }

    # -- store
    def write_extra(self, entry: Path) -> None:
        """Importances, their agreement, the correlation matrix, SHAP values and the model."""
        _write_extras(entry / "extra", self.importances_, self.agreement_, self.correlations_,
                      self.shap_frame_, self.booster_)

    def as_fit(self, predictions: pd.DataFrame, metrics: dict) -> GBDTFit:
        """The fitted state as a GBDTFit (what `fit_gbdt` returns)."""
        return GBDTFit(booster=self.booster_, history=self.history_, predictions=predictions,
                       metrics=metrics, importances=self.importances_,
                       agreement=self.agreement_, shap_values=self.shap_frame_,
                       correlations=self.correlations_, params=self.params_,
                       timings=self.timings_)


@dataclass
class _Table:
    """An in-memory table where the estimators expect a dataset (they read `.table`)."""

    table: pd.DataFrame


def fit_gbdt(table: pd.DataFrame, cfg: dict, experiment: dict | str,
             split_by: str | None = None, where: str = "table") -> GBDTFit:
    """Split, exclude, train, predict, and explain one experiment on an in-memory table.

    The same steps as the runner's (`GBDTEstimator` on `Split('gbdt')`), without the store.
    """
    experiment = _resolve(experiment)
    split_by = split_by or experiment.get("split_by") or cfg["split"]["by"]
    data = _Table(table.reset_index(drop=True))
    est = GBDTEstimator(experiment, cfg, split_by, where)
    rows = est.select_rows(data, Split("gbdt", split_by).rows(data.table, cfg))
    predictions, metrics = est.fit(data, rows).evaluate(data, rows)
    return est.as_fit(predictions, metrics)


# --------------------------------------------------------------------------- probabilistic

QUANTILE_LEVELS = (0.025, 0.16, 0.5, 0.84, 0.975)
INTERVALS = {"68": (0.16, 0.84), "95": (0.025, 0.975)}


def quantile_params(cfg: dict, seed: int, alpha: float) -> dict:
    """The paper's Table-3 set-up with LightGBM's pinball (quantile) objective at level alpha."""
    return {**lightgbm_params(cfg, seed), "objective": "quantile", "alpha": float(alpha),
            "metric": ["quantile"]}


def fit_quantile_boosters(x_train: pd.DataFrame, y_train: np.ndarray, cfg: dict, seed: int,
                          levels: tuple[float, ...] = QUANTILE_LEVELS) -> list:
    """One LightGBM model per quantile level (cfg['gbdt'] hyper-parameters and rounds)."""
    import lightgbm as lgb

    boosters = []
    for alpha in levels:
        data = lgb.Dataset(x_train, label=np.asarray(y_train, dtype=float))
        boosters.append(lgb.train(quantile_params(cfg, seed, alpha), data,
                                  num_boost_round=int(cfg["gbdt"]["num_boost_round"])))
    return boosters


def predict_quantiles(boosters: list, x: pd.DataFrame) -> np.ndarray:
    """Quantiles (n_levels, n) with crossings removed by sorting along the levels.

    Separately fitted quantile models can cross; sorting is the rearrangement of
    Chernozhukov, Fernandez-Val & Galichon (2010), which never worsens the pinball loss.
    """
    return np.sort(np.stack([b.predict(x) for b in boosters]), axis=0)


def quantile_pit(levels: np.ndarray, q: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PIT from quantiles: the level at y by linear interpolation between predicted quantiles.

    Beyond the outermost quantiles the PIT is put in the middle of the tail (e.g. 0.0125 below
    the 2.5 % quantile), which is all a 10-bin PIT histogram needs.
    """
    levels = np.asarray(levels, dtype=float)
    left, right = levels[0] / 2, (1 + levels[-1]) / 2
    return np.array([np.interp(y[i], q[:, i], levels, left=left, right=right)
                     for i in range(len(y))])


def interval_summary(levels: np.ndarray, q: np.ndarray, y: np.ndarray) -> dict:
    """calibration.calibration_summary of quantile predictions (levels x rows) against y."""
    from analysis_lib.models import calibration as cal

    lv = list(np.round(levels, 6))
    i = {k: (lv.index(lo), lv.index(hi)) for k, (lo, hi) in INTERVALS.items()}
    return cal.calibration_summary(q[i["68"][0]], q[i["68"][1]], q[i["95"][0]], q[i["95"][1]],
                                   cal.crps_quantiles(levels, q, y), quantile_pit(levels, q, y),
                                   y)


def conformalize(levels: np.ndarray, q: np.ndarray, corrections: dict[str, float]
                 ) -> np.ndarray:
    """Widen each central interval by its CQR correction (Romano et al. 2019); re-sort."""
    q = q.copy()
    lv = list(np.round(levels, 6))
    for key, (lo, hi) in INTERVALS.items():
        q[lv.index(lo)] -= corrections[key]
        q[lv.index(hi)] += corrections[key]
    return np.sort(q, axis=0)


def quantile_intervals(table: pd.DataFrame, cfg: dict, experiment: dict, features: list[str],
                       target: str, train_rows: np.ndarray, test_rows: np.ndarray
                       ) -> tuple[pd.DataFrame, dict]:
    """Conformalized quantile regression (CQR) of one target: test quantiles and calibration.

    The training galaxies are split again by galaxy (seeded, cfg['gbdt']['calibration_fraction']
    of them) into a fitting part, on which one quantile model per level is trained, and a
    calibration part, on which the CQR corrections of the 68 % and 95 % intervals are measured
    (finite-sample quantile, calibration.cqr_correction). Returns the test quantile columns
    (q<level>_X before and cq<level>_X after conformal) and the metrics block: coverage_68,
    coverage_95, crps (after conformal) and 'calibration': {'before', 'after', corrections}.
    """
    from analysis_lib.dataset.splits import split_rows
    from analysis_lib.models import calibration as cal

    name = experiment["name"]
    levels = np.asarray(experiment["probabilistic"].get("levels", QUANTILE_LEVELS)
                        if isinstance(experiment["probabilistic"], dict) else QUANTILE_LEVELS,
                        dtype=float)
    for lo, hi in INTERVALS.values():
        if not (np.isclose(levels, lo).any() and np.isclose(levels, hi).any()):
            raise GBDTInputError(f"gbdt experiment '{name}': probabilistic levels "
                                 f"{levels.tolist()} must include {lo} and {hi}")
    frac = float(cfg["gbdt"].get("calibration_fraction", 0.2))
    train_table = table.iloc[train_rows]
    inner = split_rows(train_table, [1 - frac, frac],
                       experiment_seed(cfg, name, "calibration-split"), by="galaxy")
    fit_rows, cal_rows = train_rows[inner["train"]], train_rows[inner["test"]]
    if len(cal_rows) < 19:  # ceil((n + 1) 0.95) <= n: a finite 95 % correction
        raise GBDTInputError(f"gbdt experiment '{name}': only {len(cal_rows)} calibration rows "
                             f"(gbdt.calibration_fraction {frac}); the 95 % conformal "
                             f"correction needs >= 19")
    x = table[features].astype(float).replace([np.inf, -np.inf], np.nan)
    y = table[target].to_numpy(dtype=float)
    boosters = fit_quantile_boosters(x.iloc[fit_rows], y[fit_rows], cfg,
                                     experiment_seed(cfg, name, "quantile"), tuple(levels))
    q_cal, q_test = predict_quantiles(boosters, x.iloc[cal_rows]), predict_quantiles(
        boosters, x.iloc[test_rows])
    lv = list(np.round(levels, 6))
    corrections = {k: cal.cqr_correction(q_cal[lv.index(lo)], q_cal[lv.index(hi)], y[cal_rows],
                                         float(hi - lo))
                   for k, (lo, hi) in INTERVALS.items()}
    q_after = conformalize(levels, q_test, corrections)
    y_test = y[test_rows]
    before, after = interval_summary(levels, q_test, y_test), interval_summary(levels, q_after,
                                                                             y_test)
    cols = {}
    for j, level in enumerate(levels):
        tag = f"{round(level * 1000):03d}"  # per mille: q025, q160, q500, q840, q975
        cols[f"q{tag}_{target}"] = q_test[j]
        cols[f"cq{tag}_{target}"] = q_after[j]
    block = {"coverage_68": after["coverage_68"], "coverage_95": after["coverage_95"],
             "crps": after["crps"],
             "calibration": {"method": "CQR (Romano+2019), LightGBM quantile objective",
                             "levels": levels.tolist(), "before": before, "after": after,
                             "corrections_dex": corrections,
                             "n_fit": int(len(fit_rows)), "n_calibration": int(len(cal_rows)),
                             "calibration_fraction": frac}}
    return pd.DataFrame(cols), block


# --------------------------------------------------------------------------- store


def _versions() -> dict:
    import warnings

    import lightgbm
    import sklearn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    return {"lightgbm": lightgbm.__version__, "shap": shap.__version__,
            "scikit-learn": sklearn.__version__}


def _write_extras(extra: Path, importances: pd.DataFrame, agreement: dict,
                  correlations: pd.DataFrame, shap_values: pd.DataFrame, booster) -> None:
    """The files a GBDT store entry holds besides its metrics (one writer for the estimator
    and `save_fit`, so the two cannot drift apart): importances, their agreement, the
    feature correlation matrix, SHAP values and the LightGBM model text."""
    importances.to_csv(extra / "importance.csv", index=False)
    (extra / "importance_agreement.json").write_text(
        json.dumps(agreement, indent=2, sort_keys=True))
    correlations.rename_axis("column").reset_index().to_csv(
        extra / "correlation.csv", index=False)
    shap_values.to_csv(extra / "shap_values.csv", index=False)
    (extra / "model.txt").write_text(booster.model_to_string())


def save_fit(fit: GBDTFit, cfg: dict, experiment: dict, store: ResultsStore,
             dataset_path: Path, dataset_source: str, fingerprint: str | None = None) -> Path:
    """Write the run as one new store entry: the extras go into the same temporary entry as
    the metrics, so a crash never leaves an older run's metrics.json beside a new model."""
    name = fit.metrics["run"]

    def write_extras(entry: Path) -> None:
        _write_extras(entry / "extra", fit.importances, fit.agreement, fit.correlations,
                      fit.shap_values, fit.booster)

    config = {**cfg, "experiment": experiment, "split_by": fit.metrics["split_by"],
              "lightgbm_params": fit.params}
    meta = {"dataset": str(dataset_path), "data_source": dataset_source,
            "wall_s": fit.timings["total_s"], "device": "cpu", "timings": fit.timings,
            "num_threads": fit.params["num_threads"], **_versions()}
    return store.save(KIND, name, store_label(cfg), config=config, metrics=fit.metrics,
                      predictions=fit.predictions, history=fit.history, meta=meta,
                      fingerprint=fingerprint, extra=write_extras)


def load_extras(run_path: str | Path) -> dict:
    """A stored run's extras: importance table, ranking agreement, correlation matrix, SHAP."""
    extra = Path(run_path) / "extra"
    if not (extra / "importance.csv").exists():
        raise FileNotFoundError(f"{extra}: no importance.csv; is this a complete gbdt run?")
    return {"importance": pd.read_csv(extra / "importance.csv"),
            "agreement": json.loads((extra / "importance_agreement.json").read_text()),
            "correlation": pd.read_csv(extra / "correlation.csv", index_col="column"),
            "shap_values": pd.read_csv(extra / "shap_values.csv")}


def run_gbdt_experiment(cfg: dict, dataset_path: str | Path, experiment: dict | str,
                        store: ResultsStore | None = None, force: bool = False,
                        split_by: str | None = None) -> Path:
    """Train one named experiment on a dataset file and store it; skip if already stored."""
    experiment = _resolve(experiment)
    split_by = split_by or experiment.get("split_by") or cfg["split"]["by"]
    ds = open_dataset(dataset_path)
    params = lightgbm_params(cfg, experiment_seed(cfg, experiment["name"]))
    spec = RunSpec(
        kind=KIND, name=run_name(experiment, split_by), cfg=cfg, split=Split("gbdt", split_by),
        config={**cfg, "experiment": experiment, "split_by": split_by, "lightgbm_params": params},
        meta={"dataset": str(ds.path), "data_source": str(ds.attrs.get("source", "")),
              "device": "cpu", "num_threads": params["num_threads"], **_versions()},
        fingerprint=fingerprint_parts(cfg, experiment, split_by, ds))
    return run_experiment(GBDTEstimator(experiment, cfg, split_by, str(ds.path)), ds, spec,
                          store, force)


def fingerprint_parts(cfg: dict, experiment: dict, split_by: str, ds) -> dict:
    """What a stored run must share with this one to be reused (threads do not matter)."""
    gbdt = {k: v for k, v in cfg["gbdt"].items() if k not in ("num_threads", "experiments")}
    return dict(kind=KIND, gbdt=gbdt, seed=cfg["seed"], split=cfg["split"], split_by=split_by,
                experiment=experiment, dataset=ds.identity())


def run_fingerprint_for(cfg: dict, experiment: dict, split_by: str, ds) -> str:
    """The stored fingerprint of a run (`fingerprint_parts` hashed)."""
    return run_fingerprint(**fingerprint_parts(cfg, experiment, split_by, ds))


def run_gbdt_experiments(cfg: dict, dataset_path: str | Path, selection: str | list[str],
                         store: ResultsStore | None = None, force: bool = False) -> list[Path]:
    """Every selected experiment ('all', a tag, or names), with a progress bar."""
    from tqdm.auto import tqdm

    from analysis_lib.io import tqdm_options

    experiments = select_experiments(KIND, selection)
    paths = []
    for exp in tqdm(experiments, desc="LightGBM experiments", unit="model", **tqdm_options(True)):
        paths.append(run_gbdt_experiment(cfg, dataset_path, exp, store=store, force=force))
    return paths


def leakage_comparison(cfg: dict, dataset_path: str | Path, experiment: dict | str,
                       store: ResultsStore | None = None, force: bool = False) -> pd.DataFrame:
    """The same experiment split by galaxy and by projection (the paper's), side by side.

    Both runs are stored (the leaky one as '<name>__by_projection'). One row per split: test
    bias and scatter (dex) for all rows and per galaxy type, sizes, and how many test galaxies
    also have a projection in the training set.
    """
    store = store or ResultsStore()
    experiment = _resolve(experiment)
    rows = []
    for split_by in ("galaxy", "projection"):
        path = run_gbdt_experiment(cfg, dataset_path, experiment, store=store, force=force,
                                   split_by=split_by)
        m = json.loads((Path(path) / "metrics.json").read_text())
        row = {"split_by": split_by, "run": m["run"], "n_train": m["n_train"],
               "n_test": m["n_test"],
               "test_galaxies_also_in_train": m["test_galaxies_also_in_train"]}
        for group, stats in m["targets"][m["target"]].items():
            row[f"bias_{group}"], row[f"sigma_{group}"] = stats["bias"], stats["sigma"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("split_by")
