import h5py
import numpy as np
import pytest

from analysis_lib.dataset import DatasetError, done_galaxies, open_dataset
from analysis_lib.dataset.splits import split_rows

from .conftest import make_synthetic_dataset


def test_roundtrip_schema_and_row_order(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    assert len(ds.table) == 24 * 3
    assert ds.image_sizes == [32, 16]
    rows = np.array([5, 0, 17])
    arrs = ds.load_inputs(["image_r_32", "image_r_16"], rows)
    full = ds.load_inputs(["image_r_32"])
    np.testing.assert_array_equal(arrs["image_r_32"], full["image_r_32"][rows])
    # re-binning in the fixture conserves flux, and the file keeps physical units (no scaling)
    np.testing.assert_allclose(arrs["image_r_16"].sum((1, 2)), arrs["image_r_32"].sum((1, 2)),
                               rtol=1e-5)
    assert arrs["image_r_32"].sum((1, 2)).max() > 1e9


def test_missing_field_is_named(tmp_path):
    path = make_synthetic_dataset(tmp_path / "d.h5", n_galaxies=3)
    with h5py.File(path, "a") as f:
        del f["targets/log_mtot"]
    with pytest.raises(DatasetError, match="targets/log_mtot"):
        open_dataset(path)


def test_missing_and_corrupt_file(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        open_dataset(tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="bad.h5"):
        open_dataset(bad)


def test_shards_removed_after_assembly(tmp_path):
    path = make_synthetic_dataset(tmp_path / "d.h5", n_galaxies=3)
    assert path.exists() and done_galaxies(path) == set()


@pytest.mark.parametrize("by", ["galaxy", "projection"])
def test_split_is_seeded_and_partitions(synthetic_dataset, by):
    table = open_dataset(synthetic_dataset).table
    a = split_rows(table, [0.5, 0.25, 0.25], seed=1, by=by)
    b = split_rows(table, [0.5, 0.25, 0.25], seed=1, by=by)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    allrows = np.concatenate(list(a.values()))
    assert sorted(allrows) == list(range(len(table)))
    c = split_rows(table, [0.5, 0.25, 0.25], seed=2, by=by)
    assert not np.array_equal(a["test"], c["test"])


def test_galaxy_split_has_no_leakage(synthetic_dataset):
    table = open_dataset(synthetic_dataset).table
    s = split_rows(table, [0.5, 0.25, 0.25], seed=3, by="galaxy")
    gal = {k: set(table.galaxy_id.to_numpy()[v]) for k, v in s.items()}
    assert not (gal["train"] & gal["test"]) and not (gal["train"] & gal["val"])
    leaky = split_rows(table, [0.5, 0.25, 0.25], seed=3, by="projection")
    gal2 = {k: set(table.galaxy_id.to_numpy()[v]) for k, v in leaky.items()}
    assert gal2["train"] & gal2["test"]  # the paper's split shares galaxies


def test_only_files_of_this_project_count_as_datasets(tmp_path, synthetic_dataset):
    from analysis_lib.dataset import is_project_dataset

    assert is_project_dataset(synthetic_dataset)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["profile"] = "smoke"  # one attribute is not enough
    text = tmp_path / "notes.h5"
    text.write_text("notes")
    assert not is_project_dataset(other) and not is_project_dataset(text)
    assert not is_project_dataset(tmp_path) and not is_project_dataset(tmp_path / "none.h5")


def test_short_hashes_keep_the_keys_already_stored():
    """Why: stored datasets, caches and runs are named by these hashes; moving their code into
    analysis_lib.io must not rename them (same algorithm, input bytes and length)."""
    import hashlib
    import json

    from analysis_lib.config import config_hash
    from analysis_lib.io import short_digest, short_hash

    entries = [("cutout_1.hdf5", 120, 17), ("cutout_2.hdf5", 3, 4)]
    assert short_hash(entries, 16) == hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
    cfg = {"b": 1, "a": {"d": [1, 2], "c": None}}
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    assert config_hash(cfg) == hashlib.sha256(blob).hexdigest()[:12]
    assert short_digest([b"ab", b"c"], 12, "sha1") == hashlib.sha1(b"abc").hexdigest()[:12]
