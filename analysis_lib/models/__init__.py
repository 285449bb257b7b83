"""Models that read the dataset and, through the one experiment runner, write to the store.

Each kind of model is an estimator in the scikit-learn sense: hyper-parameters in ``__init__``,
``fit`` returns ``self``, fitted state ends in ``_``, ``predict`` before ``fit`` raises:

- `baselines.PowerLawEstimator`: log M* from luminosity, the paper's power law.
- `gbdt.GBDTEstimator`: LightGBM on the Table-1 features (with `importance`).
- `cnn_estimator.CNNEstimator`: the multi-branch ResNet-18 (`cnn`, `cnn_data`, `cnn_train`).
- `jam.JAMEstimator`: Jeans anisotropic models fitted per galaxy (`jam_fit`, `jam_mge`,
  `jam_halo`).

`analysis_lib.experiments.run_experiment` turns any of them into a stored run; the
``run_*`` functions in these modules are its thin entry points per kind. Beyond the paper:
`cnn_prob` (likelihood heads, ensembles, flows), `calibration`, `classical` (Wolf, virial)
and `transfer` / `transfer_cnn` (train in one universe, test in another).
"""
