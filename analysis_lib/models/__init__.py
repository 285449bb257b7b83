"""Models that read the dataset and write to the results store: CNN, GBDT, JAM, baselines."""
