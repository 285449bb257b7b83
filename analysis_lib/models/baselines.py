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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis_lib.config import store_label
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.metrics import target_metrics
from analysis_lib.paper import paper_row
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


def run_power_law_baseline(cfg: dict, dataset_path: str | Path,
                           store: ResultsStore | None = None) -> Path:
    """Fit log M* = a + b log L on the CNN training rows; store test predictions and metrics.

    Cheap (seconds), so it is recomputed on every call rather than skipped.
    """
    store = store or ResultsStore()
    lum = str(cfg["cnn"].get("baseline_luminosity", "log_lum_r_proj"))
    if lum not in LUMINOSITIES:
        raise ValueError(f"cnn.baseline_luminosity must be one of {LUMINOSITIES}, not '{lum}'")
    dataset = open_dataset(dataset_path)
    table = dataset.table.copy()
    table["row"] = np.arange(len(table))
    splits = cnn_split(table, cfg)
    test = table.iloc[splits["test"]].reset_index(drop=True)
    train = table.iloc[splits["train"]]
    predictions = test[PREDICTION_META].copy()
    predictions[f"true_{lum}"] = test[lum].to_numpy()
    metrics: dict = {"luminosity": lum, "fit": {}, "targets": {}}
    for target in BASELINE_TARGETS:
        slope, intercept = fit_power_law(train[lum], train[target])
        resid = train[target] - (intercept + slope * train[lum])
        pred = intercept + slope * test[lum].to_numpy()
        predictions[f"true_{target}"] = test[target].to_numpy()
        predictions[f"pred_{target}"] = pred
        metrics["fit"][target] = {"slope": slope, "intercept": intercept,
                                  "train_rms_dex": float(np.sqrt(np.nanmean(resid**2))),
                                  "n_train": int(np.isfinite(resid).sum())}
        metrics["targets"][target] = target_metrics(pred, test[target].to_numpy(),
                                                     test["galaxy_type"].to_numpy())
    for target, ref in PAPER_REF.items():
        row = paper_row(**ref)
        if row is not None:
            metrics["targets"][target]["paper"] = row
    predictions["row"] = test["row"].to_numpy()
    name = f"powerlaw_{lum.removeprefix('log_')}"
    config = {**cfg, "baseline": {"luminosity": lum, "targets": list(BASELINE_TARGETS),
                                  "fit": "numpy.polyfit degree 1 on the CNN training rows"}}
    meta = {"dataset": str(dataset_path), "data_source": dataset.attrs.get("source"),
            "split_by": cfg["split"]["by"],
            "n_rows": {k: int(len(v)) for k, v in splits.items()}}
    return store.save(KIND, name, store_label(cfg), config=config, metrics=metrics,
                      predictions=predictions, meta=meta)
