"""The power-law baseline of the paper's section 4.1: M* from luminosity alone.

The paper asks whether the CNN only learns a mass-luminosity scaling relation: it fits a power
law M* proportional to L^b on the training set and predicts the test set from luminosity alone
(0.16 dex scatter there, against 0.04-0.06 dex for the CNN). Here the fit is ordinary least
squares of log10 M* on log10 L (numpy.polyfit, degree 1) over the CNN's training rows, evaluated
on the CNN's test rows, so the two are compared on the same galaxies.

Which luminosity: the paper says "luminosity" without an aperture. The default is the
dust-attenuated r luminosity within the projected R_half (`log_lum_r_proj`, the observable closest
in aperture to the 3D R_half mass); `cnn.baseline_luminosity: log_lum_r_fov` uses all light in
the image field instead. The projected stellar mass within R_half is fitted too, because it
shares the luminosity's aperture. Only numpy and pandas are needed here (no torch).
`PowerLawEstimator` is the model; `run_power_law_baseline` hands it to the experiment runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.experiments.runner import RunSpec, Split, check_fitted, run_experiment
from analysis_lib.metrics import target_metrics
from analysis_lib.results import ResultsStore

KIND = "baseline"
LUMINOSITIES = ("log_lum_r_proj", "log_lum_r_fov")
BASELINE_TARGETS = ("log_mstar", "log_mstar_proj")
PREDICTION_META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]
PAPER_REF = {"log_mstar": {"section": "4.1", "method": "powerlaw", "inputs": "luminosity",
                           "target": "log_mstar"}}


def fit_power_law(log_l: np.ndarray, log_m: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line log_m = intercept + slope * log_l."""
    log_l, log_m = np.asarray(log_l, float), np.asarray(log_m, float)
    ok = np.isfinite(log_l) & np.isfinite(log_m)
    if ok.sum() < 2 or np.ptp(log_l[ok]) == 0:
        raise ValueError(f"power-law fit needs >= 2 finite points with distinct luminosities "
                         f"(have {int(ok.sum())})")
    slope, intercept = np.polyfit(log_l[ok], log_m[ok], 1)
    return float(slope), float(intercept)


class PowerLawEstimator:
    """log10 M = intercept + slope log10 L, one line per target, by least squares.

    Parameters
    ----------
    luminosity : str
        The dataset column of log10 L (one of LUMINOSITIES).
    targets : tuple of str
        The dataset columns of log10 M to fit, one line each.

    Fitted attributes: ``coef_`` ({target: (slope, intercept)}) and ``fit_stats_`` ({target:
    slope, intercept, train_rms_dex, n_train}), as stored in metrics.json['fit'].
    """

    def __init__(self, luminosity: str = "log_lum_r_proj",
                 targets: tuple[str, ...] = BASELINE_TARGETS) -> None:
        self.luminosity = luminosity
        self.targets = targets

    def fit(self, dataset, rows: dict[str, np.ndarray]) -> PowerLawEstimator:
        """Fit every target's line on rows['train'] of the dataset's table."""
        if self.luminosity not in LUMINOSITIES:
            raise ValueError(f"cnn.baseline_luminosity must be one of {LUMINOSITIES}, "
                             f"not '{self.luminosity}'")
        train = dataset.table.iloc[rows["train"]]
        self.coef_, self.fit_stats_ = {}, {}
        for target in self.targets:
            slope, intercept = fit_power_law(train[self.luminosity], train[target])
            resid = train[target] - (intercept + slope * train[self.luminosity])
            self.coef_[target] = (slope, intercept)
            self.fit_stats_[target] = {"slope": slope, "intercept": intercept,
                                       "train_rms_dex": float(np.sqrt(np.nanmean(resid**2))),
                                       "n_train": int(np.isfinite(resid).sum())}
        return self

    def predict(self, dataset, rows: np.ndarray) -> np.ndarray:
        """log10 M of the given rows from their luminosity alone: (n_rows, n_targets)."""
        check_fitted(self, "coef_")
        log_l = dataset.table[self.luminosity].to_numpy()[np.asarray(rows)]
        return np.column_stack([self.coef_[t][1] + self.coef_[t][0] * log_l
                                for t in self.targets])

    def evaluate(self, dataset, rows: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict]:
        """Test predictions (meta, true luminosity, true_X and pred_X) and their metrics."""
        test = dataset.table.iloc[rows["test"]].reset_index(drop=True)
        pred = self.predict(dataset, rows["test"])
        predictions = test[PREDICTION_META].copy()
        predictions[f"true_{self.luminosity}"] = test[self.luminosity].to_numpy()
        metrics: dict = {"luminosity": self.luminosity, "fit": self.fit_stats_, "targets": {}}
        for j, target in enumerate(self.targets):
            predictions[f"true_{target}"] = test[target].to_numpy()
            predictions[f"pred_{target}"] = pred[:, j]
            metrics["targets"][target] = target_metrics(pred[:, j], test[target].to_numpy(),
                                                         test["galaxy_type"].to_numpy())
        predictions["row"] = np.asarray(rows["test"])
        return predictions, metrics


def run_power_law_baseline(cfg: dict, dataset_path: str | Path,
                           store: ResultsStore | None = None) -> Path:
    """Fit log M* = a + b log L on the CNN training rows; store test predictions and metrics.

    Cheap (seconds), so it is recomputed on every call rather than skipped (no fingerprint).
    """
    lum = str(cfg["cnn"].get("baseline_luminosity", "log_lum_r_proj"))
    if lum not in LUMINOSITIES:
        raise ValueError(f"cnn.baseline_luminosity must be one of {LUMINOSITIES}, not '{lum}'")
    dataset = open_dataset(dataset_path)
    n_rows = {k: int(len(v)) for k, v in cnn_split(dataset.table, cfg).items()}
    config = {**cfg, "baseline": {"luminosity": lum, "targets": list(BASELINE_TARGETS),
                                  "fit": "numpy.polyfit degree 1 on the CNN training rows"}}
    meta = {"dataset": str(dataset_path), "data_source": dataset.attrs.get("source"),
            "split_by": cfg["split"]["by"], "n_rows": n_rows}
    spec = RunSpec(kind=KIND, name=f"powerlaw_{lum.removeprefix('log_')}", cfg=cfg,
                   split=Split("cnn"), config=config, meta=meta, paper=PAPER_REF)
    return run_experiment(PowerLawEstimator(lum), dataset, spec, store)
