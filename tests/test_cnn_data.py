"""The CNN's inputs: the mask as its own channel, masked velocity 0 km/s, robust colour."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.models import cnn_data as cd
from analysis_lib.models.cnn import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def _exp(inputs):
    return {"name": "t", "section": "4.1", "inputs": inputs, "resolution": 300,
            "targets": ["log_mstar"], "aperture": "R_half_3d"}


def _train_rows(ds):
    return cnn_split(ds.table, load_config("smoke", {"cnn.image_size": 16}))["train"]


def _edit(path, name, fn):
    with h5py.File(path, "r+") as f:
        arr = f[f"inputs/{name}"][...]
        f[f"inputs/{name}"][...] = fn(arr)


def test_masked_velocity_reads_zero_kms_not_minus_vmax(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    row = int(_train_rows(ds)[0])

    def plant(vel):
        vel[row, 0, 0] = -9999.0  # garbage under a masked pixel
        vel[row, 0, 1] = 0.0  # a valid pixel at exactly 0 km/s
        return vel

    _edit(synthetic_dataset, "vel_map", plant)
    _edit(synthetic_dataset, "map_mask", lambda m: (m.__setitem__((row, 0, 0), False), m)[1])
    ds = open_dataset(synthetic_dataset)
    specs = cd.resolve_inputs(ds, _exp(["vel_map", "sigma_map"]), 16)
    scalers = cd.fit_scalers(ds, specs, _train_rows(ds))
    vel = scalers["vel_map"]
    assert vel.hi == -vel.lo > 0 and vel.hi < 9999  # symmetric, masked garbage not fitted
    out = cd.load_scaled_inputs(ds, specs, scalers, np.array([row]))
    v = out["vel_map"][0]
    assert v.shape[0] == 2
    assert float(v[0, 0, 1]) == pytest.approx(0.5)  # 0 km/s
    assert float(v[0, 0, 0]) == pytest.approx(0.5)  # masked: 0 km/s as well, not -v_max (0.0)
    assert float(v[1, 0, 0]) == 0.0 and float(v[1, 0, 1]) == 1.0  # the mask channel says which
    s = out["sigma_map"][0]
    assert float(s[0, 0, 0]) == 0.0 and float(s[1, 0, 0]) == 0.0  # masked sigma: 0 km/s
    assert scalers["sigma_map"].lo == 0.0
    # -v_max and +v_max of the training pixels land on 0 and 1
    train = ds.load_inputs(["vel_map", "map_mask"], _train_rows(ds))
    vmax = np.abs(train["vel_map"][train["map_mask"]]).max()
    np.testing.assert_allclose(vel.scale(np.array([-vmax, vmax])), [0.0, 1.0], atol=1e-6)


def test_mask_channel_reaches_the_model_and_is_used(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    specs = cd.resolve_inputs(ds, _exp(["image_r", "colour_gr", "vel_map", "sigma_map"]), 16)
    assert {s.name: s.channels for s in specs} == {"image_r": 1, "colour_gr": 2, "vel_map": 2,
                                                   "sigma_map": 2}
    assert {n: cd.branch_channels(n) for n in cd.ALL_INPUTS} == {
        "image_r": 1, "image_g": 1, "colour_gr": 2, "vel_map": 2, "sigma_map": 2}
    rows = _train_rows(ds)[:4]
    specs = [s for s in specs if s.name != "colour_gr"]  # the fixture's colour is constant
    out = cd.load_scaled_inputs(ds, specs, cd.fit_scalers(ds, specs, _train_rows(ds)), rows)
    mask = ds.load_inputs(["map_mask"], rows)["map_mask"]
    assert out["image_r"].shape == (4, 1, 16, 16)
    for name in ("vel_map", "sigma_map"):
        assert out[name].shape == (4, 2, 16, 16)
        np.testing.assert_array_equal(out[name][:, 1].numpy(), mask.astype(np.float32))
    torch.manual_seed(0)
    model = build_model({s.name: s.size for s in specs}, ["log_mstar"], {"stem": "small"}).eval()
    assert model.branches["vel_map"].conv1.in_channels == 2
    assert model.branches["image_r"].conv1.in_channels == 1
    x = {k: v.float() for k, v in out.items()}
    masked = {k: v.clone() for k, v in x.items()}
    masked["vel_map"][:, 1, :4, :4] = 0.0  # same values, different mask: a different answer
    with torch.no_grad():
        assert not torch.allclose(model(x), model(masked))


def test_colour_uses_robust_percentiles_and_clips(synthetic_dataset):
    rng = np.random.default_rng(5)

    def colourful(g):
        with h5py.File(synthetic_dataset, "r") as f:
            r = f["inputs/image_r_16"][...]
        c = rng.normal(0.6, 0.08, r.shape)
        c[rng.uniform(size=r.shape) < 0.01] = 12.0  # 1 % faint-outskirt extremes
        g = (r * 10 ** (-0.4 * c)).astype(np.float32)
        g[:, 0, 0] = 0.0  # no g light: no colour
        return g

    _edit(synthetic_dataset, "image_g_16", colourful)
    ds = open_dataset(synthetic_dataset)
    spec = cd.resolve_inputs(ds, _exp(["colour_gr"]), 16)[0]
    train = _train_rows(ds)
    scaler = cd.fit_scalers(ds, [spec], train)["colour_gr"]
    arrays = ds.load_inputs(list(spec.sources), train)
    colour, valid = cd.raw_values(arrays, spec, scaler.floor)
    p1, p50, p99 = np.percentile(colour[valid], [1, 50, 99])
    assert scaler.lo == pytest.approx(p1, abs=0.01)
    assert scaler.hi == pytest.approx(p99, abs=0.01)
    assert scaler.hi < 2.0 < colour[valid].max()  # the extremes do not set the range
    out = cd.load_scaled_inputs(ds, [spec], {"colour_gr": scaler}, train)["colour_gr"].numpy()
    value, ok = out[:, 0], out[:, 1].astype(bool)
    np.testing.assert_array_equal(ok, valid)
    assert value.min() == 0.0 and value.max() == 1.0  # clipped
    lo, hi = np.percentile(value[ok], [1, 99])
    assert lo == pytest.approx(0.0, abs=0.01) and hi == pytest.approx(1.0, abs=0.01)
    # invalid pixels read the median colour, a typical value, not the bluest
    np.testing.assert_allclose(value[~ok], (p50 - scaler.lo) / (scaler.hi - scaler.lo),
                               atol=0.01)
    assert 0.3 < scaler.fill < 0.7
    d = scaler.as_dict()
    assert d["clip"] is True and d["channels"] == 2 and d["fill"] == scaler.fill


def test_images_keep_the_papers_linear_dataset_wide_scaling(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    spec = cd.resolve_inputs(ds, _exp(["image_r"]), 16)[0]
    train = _train_rows(ds)
    scaler = cd.fit_scalers(ds, [spec], train)["image_r"]
    raw = ds.load_inputs(["image_r_16"], train)["image_r_16"]
    assert (scaler.lo, scaler.hi) == (pytest.approx(raw.min()), pytest.approx(raw.max()))
    assert not scaler.clip and scaler.channels == 1


# --------------------------------------------------------------------------- reading (issue 15)


def test_slab_reads_equal_fancy_indexing_in_any_row_order(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    names = ["image_r_32", "vel_map", "map_mask"]
    for rows in (np.arange(10, 30), np.array([40, 3, 4, 5, 17, 0, 71]), np.array([], int)):
        fast = cd.read_rows(ds.path, names, rows)
        slow = ds.load_inputs(names, rows)
        for n in names:
            assert fast[n].dtype == slow[n].dtype and fast[n].shape == slow[n].shape
            np.testing.assert_array_equal(fast[n], slow[n])
    twice = cd.read_rows(ds.path, names, np.array([5, 3, 5]))  # a row asked for twice
    np.testing.assert_array_equal(twice["vel_map"], ds.load_inputs(["vel_map"], np.array(
        [3, 5]))["vel_map"][[1, 0, 1]])
    with pytest.raises(cd.DatasetError, match="no input 'image_u_32'"):
        cd.read_rows(ds.path, ["image_u_32"], np.array([0]))


def test_reading_once_gives_the_same_scalers_and_inputs_as_streaming(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    specs = cd.resolve_inputs(ds, _exp(["image_r", "colour_gr", "vel_map", "sigma_map"]), 32)
    _edit(synthetic_dataset, "image_g_32", lambda g: g * np.linspace(0.5, 1.5, g.shape[-1]))
    train = _train_rows(ds)
    used = np.sort(np.concatenate([train, np.arange(5)]))
    once = cd.prepare_inputs(ds, specs, train, used, block=7, read_once_bytes=2**40)
    streamed = cd.prepare_inputs(ds, specs, train, used, block=7, read_once_bytes=0)
    assert once[2]["read_once"] and not streamed[2]["read_once"]
    assert once[0] == streamed[0]
    for name in once[1]:
        assert torch.equal(once[1][name], streamed[1][name])
    # and the same as the blockwise functions used directly
    scalers = cd.fit_scalers(ds, specs, train)
    assert scalers == once[0]


def test_a_missing_small_size_is_rebinned_like_the_dataset_makes_it(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)  # images 32 and 16 px: 8 px needs a re-bin of 16
    exp = {**_exp(["image_r", "colour_gr"]), "resolution": 8}
    specs = cd.resolve_inputs(ds, exp, 300)
    assert [(s.size, s.rebin, s.sources[-1]) for s in specs] == [(8, 2, "image_r_16"),
                                                                 (8, 2, "image_r_16")]
    rows = np.arange(6)
    arrays = ds.load_inputs(["image_r_16", "image_g_16", "image_r_32"], rows)
    values, _ = cd.raw_values(arrays, specs[0])
    # the dataset's own re-binning (sum of pixel blocks) of its largest image, to 8 px
    from_32 = arrays["image_r_32"].reshape(6, 8, 4, 8, 4).sum(axis=(2, 4))
    np.testing.assert_allclose(values, from_32, rtol=1e-5)
    scalers = cd.fit_scalers(ds, specs[:1], _train_rows(ds))
    out = cd.load_scaled_inputs(ds, specs[:1], scalers, rows)
    assert out["image_r"].shape == (6, 1, 8, 8)
    with pytest.raises(cd.CNNExperimentError, match="nor one that re-bins to 7 px"):
        cd.resolve_inputs(ds, {**exp, "resolution": 7}, 300)
