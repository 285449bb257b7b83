"""The dataset stage: observations of many galaxies -> one HDF5 file -> leakage-free splits.

Modules, in the order the data flows:

- `schema`: the HDF5 layout in one place (targets, features, meta, diagnostics), the atomic
  per-galaxy shard writer, `assemble`, and the validating reader `open_dataset`.
- `build`: builds a dataset for a profile/universe/instrument (local processes), resumable from
  its shards; `dataset_key` names a dataset by its settings and the physics code that made it.
- `cluster`: the same build on a Dask cluster (local, scheduler address or scheduler file).
- `splits`: train/validation/test splits by galaxy (never by projection) or, as the paper did,
  by projection.

The schema's names are re-exported here, so `from analysis_lib.dataset import open_dataset` works.
"""

from analysis_lib.dataset.schema import (
    CLASSICAL_OBSERVABLES,
    DIAGNOSTICS,
    FEATURES,
    MAP_INPUTS,
    META,
    OPTIONAL_COLUMNS,
    RADIUS_TARGETS,
    ROOT_ATTRS,
    TARGETS,
    DatasetError,
    GalaxyDataset,
    assemble,
    done_galaxies,
    image_names,
    is_project_dataset,
    open_dataset,
    read_shard,
    shard_dir,
    shard_path,
    write_shard,
)

__all__ = [
    "CLASSICAL_OBSERVABLES", "DIAGNOSTICS", "FEATURES", "MAP_INPUTS", "META", "OPTIONAL_COLUMNS",
    "RADIUS_TARGETS", "ROOT_ATTRS", "TARGETS", "DatasetError", "GalaxyDataset", "assemble",
    "done_galaxies", "image_names", "is_project_dataset", "open_dataset", "read_shard",
    "shard_dir", "shard_path", "write_shard",
]
