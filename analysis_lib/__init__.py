"""Galaxy stellar and total mass estimation with machine learning: a reproducible study.

Data flows one way: sources (mock universe, TNG) -> observe (images, maps, targets, features)
-> dataset (HDF5, splits) -> models (CNN, GBDT, JAM, baselines) -> results store -> book.
"""

__version__ = "0.1.0"
