"""Experiments: one runner that takes any model from a dataset to a stored run.

The data flow of every model run (CNN, LightGBM, the power-law baseline, JAM) is the same, so it
is written once, in `runner.run_experiment`:

    fingerprint -> skip if stored / resume -> split -> fit -> evaluate -> paper numbers -> store

A model takes part through an estimator (scikit-learn habits: hyper-parameters in `__init__`,
`fit` returns self, fitted state ends in `_`) and a `RunSpec` naming its store entry, its
fingerprint's parts and its `Split`. The estimators live beside their models:
`models.baselines.PowerLawEstimator`, `models.gbdt.GBDTEstimator`,
`models.cnn_estimator.CNNEstimator` and `models.jam.JAMEstimator`.
"""

from analysis_lib.experiments.runner import (
    NotFittedError,
    RunSpec,
    Split,
    attach_paper,
    check_fitted,
    paper_numbers,
    run_experiment,
)

__all__ = ["NotFittedError", "RunSpec", "Split", "attach_paper", "check_fitted",
           "paper_numbers", "run_experiment"]
