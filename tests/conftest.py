"""Shared fixtures: a small synthetic dataset with the real schema, so model tests are fast."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.dataset import FEATURES, META, TARGETS, assemble, write_shard


def make_synthetic_dataset(path, n_galaxies: int = 24, image_sizes=(32, 16), map_size: int = 16,
                           seed: int = 0):
    """Gaussian-blob galaxies whose masses follow their luminosity and dispersion, with noise.

    Not physics: a fixture with learnable structure and the exact schema of the real file.
    """
    rng = np.random.default_rng(seed)
    n0 = image_sizes[0]
    yy, xx = np.mgrid[:n0, :n0] - (n0 - 1) / 2
    my, mx = np.mgrid[:map_size, :map_size] - (map_size - 1) / 2
    ids = []
    for gid in range(n_galaxies):
        log_l = rng.uniform(9.5, 11.0)
        width = rng.uniform(2.0, 6.0)
        sigma0 = 10 ** (0.3 * (log_l - 10) + 2.1)
        records = []
        for proj in range(3):
            blob = np.exp(-0.5 * (xx**2 + yy**2) / width**2)
            img_r = (10**log_l * blob / blob.sum()).astype(np.float32)
            rec = {}
            for n in image_sizes:
                f = n0 // n
                r = img_r.reshape(n, f, n, f).sum(axis=(1, 3))
                rec[f"image_r_{n}"] = r
                rec[f"image_g_{n}"] = 0.8 * r
            rec["vel_map"] = (50 * np.tanh(mx / 3) * rng.uniform(0, 1)).astype(np.float32)
            rec["sigma_map"] = (sigma0 * np.exp(-(mx**2 + my**2) / 50)).astype(np.float32)
            rec["map_mask"] = np.ones((map_size, map_size), bool)
            for k in TARGETS:
                rec[k] = float(rng.normal())
            rec["log_mstar"] = log_l + 0.3 + rng.normal(0, 0.03)
            rec["log_mtot"] = rec["log_mstar"] + 0.3 + rng.normal(0, 0.05)
            rec["log_lum_r_proj"] = log_l
            for k in FEATURES:
                rec[k] = float(rng.normal())
            rec["M_r"] = 4.65 - 2.5 * log_l
            rec["sigma_e"] = sigma0
            rec.update(galaxy_id=gid, projection=proj, galaxy_type=int(gid % 2),
                       inclination_deg=float(rng.uniform(0, 90)), pixel_scale_kpc=0.1,
                       A_r=float(rng.uniform(0, 1)))
            rec["A_g"] = 1.4 * rec["A_r"]
            assert set(META) <= set(rec)
            records.append(rec)
        write_shard(path, gid, records)
        ids.append(gid)
    attrs = {"profile": "test", "seed": seed, "source": "synthetic", "config": "{}"}
    return assemble(path, ids, attrs, list(image_sizes))


@pytest.fixture
def one_torch_thread():
    """Tests share two cores with other jobs: one torch thread avoids OpenMP spin contention.

    Modules that train or run networks use it for every test (pytest.mark.usefixtures)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def synthetic_dataset(tmp_path):
    return make_synthetic_dataset(tmp_path / "synthetic.h5")


@pytest.fixture(scope="session")
def smoke_data_dir(tmp_path_factory):
    """The session's smoke-profile data folder (ANALYSIS_LIB_DATA for smoke runs).

    One folder for the smoke book build, the JupyterLab test and nbval (notebooks/conftest.py
    uses the same <basetemp>/smoke-data), so later runs reuse the stored smoke results instead of
    training again. ANALYSIS_TEST_SMOKE_DATA names a folder to keep between sessions instead."""
    import os
    from pathlib import Path

    kept = os.environ.get("ANALYSIS_TEST_SMOKE_DATA")
    path = Path(kept) if kept else tmp_path_factory.getbasetemp() / "smoke-data"
    path.mkdir(parents=True, exist_ok=True)
    return path
