"""CNN training: scaling fitted on train rows, best-epoch keeping, resuming, the results store."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from analysis_lib.config import load_config
from analysis_lib.dataset import TARGETS, open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.models import cnn_data as cd
from analysis_lib.models import cnn_train as ct
from analysis_lib.models.cnn import MultiBranchResNet
from analysis_lib.models.experiments import load_experiments, select_experiments
from analysis_lib.paths import REFERENCE_DIR
from analysis_lib.results import ResultsStore

TINY = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "image_size": 16, "device": "cpu",
        "cpu_threads": 1}


def tiny_cfg(**cnn) -> dict:
    return load_config("smoke", {f"cnn.{k}": v for k, v in {**TINY, **cnn}.items()})


def r_only(name: str = "t_r_mstar", **extra) -> dict:
    return {"name": name, "section": "4.1", "inputs": ["image_r"], "resolution": 300,
            "targets": ["log_mstar"], "aperture": "R_half_3d", **extra}



pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

# --------------------------------------------------------------------------- experiments file


def test_experiment_file_is_complete_and_consistent():
    exps = load_experiments("cnn")
    for name, e in exps.items():
        assert set(e["inputs"]) <= set(cd.ALL_INPUTS), name
        assert set(e["targets"]) <= set(TARGETS), name
        assert isinstance(e["section"], str) and e["section"] in ("4.1", "4.2", "4.3", "4.4")
        for d in e.get("derived", []):
            assert set(ct.DERIVED[d][0]) <= set(e["targets"]), name
        # every paper reference resolves to exactly one row of paper_results.csv
        refs = ct.paper_reference(e)
        assert set(refs) == set(e.get("paper", {})), name
        outputs = set(e["targets"]) | {q for d in e.get("derived", [])
                                       for q in ("log_fdm_derived", "log_ml_r_derived")}
        assert {k.partition("@")[0] for k in refs} <= outputs, name
    assert len(select_experiments("cnn", "smoke")) == 1
    headline = {e["name"] for e in select_experiments("cnn", "headline")}
    assert {"s41_rmaps_mstar", "s41_r_mstar", "s42_rmaps_mtot", "s43_rmaps_mstar_mtot",
            "s44_grmaps_ml"} == headline
    # every CNN row of the paper's table has an experiment pointing at it
    paper = pd.read_csv(REFERENCE_DIR / "paper_results.csv", dtype={"section": str})
    paper = paper[paper["method"] == "cnn"]
    cited = {(r["section"], r["inputs"], r["target"]) for e in exps.values()
             for r in (e.get("paper") or {}).values()}
    assert cited == set(zip(paper["section"], paper["inputs"], paper["target"], strict=True))


def test_resolution_is_capped_by_the_profile():
    assert cd.choose_resolution(300, [300, 150, 60], 300) == 300
    assert cd.choose_resolution(150, [300, 150, 60], 300) == 150
    assert cd.choose_resolution(300, [120, 60], 60) == 60
    assert cd.choose_resolution(150, [120, 60], 300) == 120
    # nothing small enough: re-binned from the smallest integer multiple (60 -> 30)
    assert cd.resolution_source(300, [120, 60], 30) == (30, 60)
    assert cd.resolution_source(30, [300, 150, 60], 300) == (30, 60)
    with pytest.raises(cd.CNNExperimentError, match="no image of <= 25 px"):
        cd.choose_resolution(300, [120, 60], 25)


def test_inputs_resolve_to_dataset_arrays(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)  # images 32 and 16 px, maps 16 px
    specs = cd.resolve_inputs(ds, r_only(inputs=["image_g", "colour_gr", "vel_map"]), 300)
    assert [(s.name, s.kind, s.size) for s in specs] == [
        ("image_g", "image", 32), ("colour_gr", "colour", 32), ("vel_map", "map", 16)]
    assert specs[1].sources == ("image_g_32", "image_r_32")
    maps_only = cd.resolve_inputs(ds, r_only(inputs=["sigma_map"], resolution=None), 8)
    assert maps_only[0].size == 16  # no image, so the image cap does not apply


# --------------------------------------------------------------------------- scaling


def _plant(path, name, row, index, value):
    with h5py.File(path, "r+") as f:
        arr = f[f"inputs/{name}"][row]
        arr[index] = value
        f[f"inputs/{name}"][row] = arr


def test_pixel_scaling_is_fitted_on_training_rows_only(synthetic_dataset):
    cfg = tiny_cfg()
    ds = open_dataset(synthetic_dataset)
    split = cnn_split(ds.table, cfg)
    test_row = int(split["test"][0])
    _plant(synthetic_dataset, "image_r_16", test_row, (8, 8), 1e15)   # far above any galaxy
    _plant(synthetic_dataset, "vel_map", test_row, (3, 3), -1e4)
    ds = open_dataset(synthetic_dataset)
    specs = cd.resolve_inputs(ds, r_only(inputs=["image_r", "vel_map"]), 16)
    scalers = cd.fit_scalers(ds, specs, split["train"])
    train = ds.load_inputs(["image_r_16", "vel_map", "map_mask"], split["train"])
    assert scalers["image_r"].hi == pytest.approx(train["image_r_16"].max())
    assert scalers["image_r"].lo == pytest.approx(train["image_r_16"].min())
    assert scalers["vel_map"].lo == pytest.approx(train["vel_map"][train["map_mask"]].min())
    assert scalers["image_r"].hi < 1e14
    scaled = cd.load_scaled_inputs(ds, specs, scalers, split["train"])
    assert float(scaled["image_r"].min()) == 0.0 and float(scaled["image_r"].max()) == 1.0
    # the planted test pixel is scaled with the training numbers, not clipped
    out = cd.load_scaled_inputs(ds, specs, scalers, np.array([test_row]))
    assert float(out["image_r"].max()) > 1e3


def test_masked_map_pixels_are_zero_and_excluded_from_the_fit(synthetic_dataset):
    cfg = tiny_cfg()
    ds = open_dataset(synthetic_dataset)
    train_row = int(cnn_split(ds.table, cfg)["train"][0])
    _plant(synthetic_dataset, "sigma_map", train_row, (0, 0), 1e6)
    _plant(synthetic_dataset, "map_mask", train_row, (0, 0), False)
    ds = open_dataset(synthetic_dataset)
    specs = cd.resolve_inputs(ds, r_only(inputs=["sigma_map"]), 16)
    rows = cnn_split(ds.table, cfg)["train"]
    scaler = cd.fit_scalers(ds, specs, rows)["sigma_map"]
    assert scaler.hi < 1e5
    scaled = cd.load_scaled_inputs(ds, specs, {"sigma_map": scaler}, np.array([train_row]))
    assert float(scaled["sigma_map"][0, 0, 0, 0]) == 0.0


def test_log_scaling_and_colour_map(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    rows = cnn_split(ds.table, tiny_cfg())["train"]
    specs = cd.resolve_inputs(ds, r_only(inputs=["image_r", "colour_gr"]), 16)
    scalers = cd.fit_scalers(ds, specs[:1], rows, mode="log", log_floor_rel=1e-6)
    raw = ds.load_inputs(["image_r_16"], rows)["image_r_16"]
    assert scalers["image_r"].hi == pytest.approx(np.log10(raw.max()))
    assert scalers["image_r"].lo >= np.log10(float(raw.max())) - 6 - 1e-6
    scaled = cd.load_scaled_inputs(ds, specs[:1], scalers, rows)
    assert 0.0 <= float(scaled["image_r"].min()) and float(scaled["image_r"].max()) == 1.0
    # the fixture's g image is 0.8 r everywhere: one colour, so the colour map is constant
    with pytest.raises(cd.CNNExperimentError, match="'colour_gr' is constant"):
        cd.fit_scalers(ds, specs[1:], rows)
    with pytest.raises(cd.CNNExperimentError, match="pixel_scaling"):
        cd.fit_scalers(ds, specs, rows, mode="sqrt")
    # colour = -2.5 log10(g / r) where both fluxes exceed the floor; elsewhere invalid
    spec = specs[1]
    arrays = {spec.sources[0]: np.array([[10.0, 1.0, 0.0]]),
              spec.sources[1]: np.array([[1.0, 10.0, 5.0]])}
    colour, valid = cd.raw_values(arrays, spec, floor=0.5)
    np.testing.assert_allclose(colour, [[-2.5, 2.5, 0.0]])
    np.testing.assert_array_equal(valid, [[True, True, False]])


# --------------------------------------------------------------------------- training loop


def _tiny_data(path, n_train=16, n_val=8):
    ds = open_dataset(path)
    x = ds.load_inputs(["image_r_16"])["image_r_16"]
    x = torch.from_numpy(x / x.max()).float()[:, None]
    y = ds.table["log_mstar"].to_numpy()
    y = torch.from_numpy((y - y.mean()) / y.std()).float()[:, None]
    return ct.TrainData(inputs={"image_r": x}, targets=y, train=torch.arange(n_train),
                        val=torch.arange(n_train, n_train + n_val))


def _fresh_model(seed=0):
    torch.manual_seed(seed)
    return MultiBranchResNet({"image_r": 16}, 1)


PLAN = ct.DevicePlan(torch.device("cpu"), None, False, torch.float32, False)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_batches_fold_a_single_last_sample():
    sizes = [len(b) for b in ct.batches(torch.arange(17), 8)]
    assert sizes == [8, 9]
    assert [len(b) for b in ct.batches(torch.arange(18), 8)] == [8, 8, 2]


def test_best_validation_epoch_is_kept(synthetic_dataset):
    data = _tiny_data(synthetic_dataset)
    cfg = {**TINY}
    scripted = {1: 0.5, 2: 0.9, 3: 1.2}  # validation loss rises after epoch 1
    res = ct.train_model(_fresh_model(), data, cfg, PLAN, seed=3, progress=False,
                         val_loss_fn=lambda model, epoch: scripted[epoch])
    assert res.best_epoch == 1 and res.best_val_loss == 0.5
    assert list(res.history["val_loss"]) == [0.5, 0.9, 1.2]
    # the kept weights are those after epoch 1, not the last ones
    once = ct.train_model(_fresh_model(), data, cfg, PLAN, seed=3, progress=False,
                          stop_after=1, val_loss_fn=lambda model, epoch: scripted[epoch])
    assert _same(res.best_state, once.best_state)
    model = _fresh_model()
    ct.train_model(model, data, cfg, PLAN, seed=3, progress=False,
                   val_loss_fn=lambda m, e: scripted[e])
    assert not _same(res.best_state, ct._state_to_cpu(model.state_dict()))
    # cosine schedule per epoch, T_max = epochs
    lr = res.history["lr"].to_numpy()
    assert lr[0] == pytest.approx(1e-3)
    assert lr[1] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi / 3)))


def test_bf16_channels_last_path_runs_on_cpu(synthetic_dataset):
    """The GPU recipe (bf16 storage and autocast, channels_last) exercised with CPU autocast."""
    data = _tiny_data(synthetic_dataset)
    data.inputs = {k: v.to(torch.bfloat16) for k, v in data.inputs.items()}
    plan = ct.DevicePlan(torch.device("cpu"), torch.bfloat16, True, torch.bfloat16, False)
    model = _fresh_model()
    res = ct.train_model(model, data, {**TINY, "epochs": 1}, plan, seed=0, progress=False)
    assert np.isfinite(res.history["train_loss"]).all() and res.best_epoch == 1
    out = ct.predict_standardised(model, data, data.val, plan, 4)
    assert out.dtype == torch.float32 and out.shape == (len(data.val), 1)


@pytest.mark.slow
def test_training_reduces_the_loss(synthetic_dataset):
    """32 samples, learning rate 1e-3: the per-epoch training loss falls by a large factor."""
    data = _tiny_data(synthetic_dataset, n_train=32, n_val=8)
    res = ct.train_model(_fresh_model(), data, {**TINY, "epochs": 8, "batch_size": 32}, PLAN,
                         seed=1, progress=False)
    first, last = res.history["train_loss"].iloc[0], res.history["train_loss"].iloc[-1]
    assert last < first / 10


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_weights(synthetic_dataset, tmp_path):
    data = _tiny_data(synthetic_dataset)
    full = ct.train_model(_fresh_model(), data, TINY, PLAN, seed=5, progress=False,
                          checkpoint_path=tmp_path / "a.pt", run_hash="h")
    part = ct.train_model(_fresh_model(), data, TINY, PLAN, seed=5, progress=False,
                          checkpoint_path=tmp_path / "b.pt", run_hash="h", stop_after=1)
    assert not part.finished and len(part.history) == 1
    torch.manual_seed(12345)  # the RNG state must come from the checkpoint, not from here
    model = _fresh_model(seed=99)  # initial weights are replaced by the checkpoint's
    rest = ct.train_model(model, data, TINY, PLAN, seed=5, progress=False,
                          checkpoint_path=tmp_path / "b.pt", run_hash="h")
    assert rest.finished and rest.resumed_from == 1 and rest.epochs_run == 2
    assert _same(full.best_state, rest.best_state)
    pd.testing.assert_frame_equal(full.history.drop(columns="epoch_s"),
                                  rest.history.drop(columns="epoch_s"))
    # a checkpoint of another configuration is not resumed
    other = ct.train_model(_fresh_model(), data, TINY, PLAN, seed=5, progress=False,
                           checkpoint_path=tmp_path / "b.pt", run_hash="other", stop_after=1)
    assert other.resumed_from == 0


# --------------------------------------------------------------------------- whole experiments


def test_run_writes_store_entry_and_skips_existing(synthetic_dataset, tmp_path):
    cfg = tiny_cfg(epochs=1)
    store = ResultsStore(tmp_path / "results")
    exp = {"name": "t_joint", "section": "4.3", "inputs": ["image_r", "sigma_map"],
           "resolution": 300, "targets": ["log_mstar", "log_mtot"], "aperture": "R_half_3d",
           "derived": ["fdm_from_masses"],
           "paper": {"log_mstar": {"section": "4.3", "inputs": "r_image+vmaps",
                                   "target": "log_mstar (joint with log_mtot)"}}}
    path = ct.run_cnn_experiment(cfg, synthetic_dataset, exp, store, progress=False)
    run = store.load("cnn", "t_joint", "smoke")
    for t in ("log_mstar", "log_mtot"):
        assert {"all", "late", "early"} <= set(run.metrics["targets"][t])
        assert run.metrics["targets"][t]["all"]["n"] == len(run.predictions)
        assert {f"true_{t}", f"pred_{t}"} <= set(run.predictions.columns)
    assert "log_fdm_derived" in run.metrics["derived"]
    assert run.metrics["targets"]["log_mstar"]["paper"]["sigma"] == pytest.approx(0.04)
    assert {"galaxy_id", "projection", "galaxy_type", "inclination_deg"} <= set(
        run.predictions.columns)
    assert list(run.history.columns[:4]) == ["epoch", "train_loss", "val_loss", "lr"]
    assert run.meta["resolution_used"] == 16 and run.meta["resolution_requested"] == 300
    assert run.meta["device"] == "cpu" and run.meta["timings"]["train_samples_per_s"] > 0
    assert run.config["experiment"]["name"] == "t_joint"
    assert not (path / "extra" / ct.CHECKPOINT).exists()
    # test rows are the split's test rows, and no galaxy is in both train and test
    ds = open_dataset(synthetic_dataset)
    split = cnn_split(ds.table, cfg)
    assert sorted(run.predictions["row"]) == sorted(split["test"])
    mtime = (path / "metrics.json").stat().st_mtime_ns
    ct.run_cnn_experiment(cfg, synthetic_dataset, exp, store, progress=False)
    assert (path / "metrics.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_metrics(synthetic_dataset, tmp_path, monkeypatch):
    cfg = tiny_cfg(epochs=2)
    exp = r_only()
    a = ct.run_cnn_experiment(cfg, synthetic_dataset, exp, ResultsStore(tmp_path / "a"),
                              progress=False)
    original = ct.train_model

    def killed_after_first_epoch(*args, **kwargs):
        def kill(epoch, row):
            raise KeyboardInterrupt

        return original(*args, **kwargs, on_epoch_end=kill)

    store_b = ResultsStore(tmp_path / "b")
    monkeypatch.setattr(ct, "train_model", killed_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        ct.run_cnn_experiment(cfg, synthetic_dataset, exp, store_b, progress=False)
    assert (store_b.run_dir("cnn", exp["name"], "smoke") / "extra" / ct.CHECKPOINT).exists()
    assert not store_b.exists("cnn", exp["name"], "smoke")
    monkeypatch.setattr(ct, "train_model", original)
    b = ct.run_cnn_experiment(cfg, synthetic_dataset, exp, store_b, progress=False)
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert ma["targets"] == mb["targets"] and ma["best_epoch"] == mb["best_epoch"]
    assert json.loads((b / "meta.json").read_text())["resumed_from_epoch"] == 1


def test_derived_quantities():
    table = pd.DataFrame({"log_mstar": [10.0, 10.0], "log_mtot": [10.3, 10.0],
                          "log_fdm": [np.log10(0.45), -1.0], "galaxy_type": [0, 1],
                          "log_lum_r_proj": [9.5, 9.8], "log_ml_r": [0.4, 0.3]})
    pred = pd.DataFrame({"pred_log_mstar": [10.0, 10.1], "pred_log_mtot": [10.3, 10.0],
                         "pred_log_mstar_proj": [9.9, 10.1]})
    quantities, notes = ct.derive_fdm(pred, table)
    p, t = quantities["log_fdm_derived"]
    assert p[0] == pytest.approx(np.log10(1 - 10**-0.3))
    assert np.isnan(p[1])  # predicted M* > M_tot: no f_DM
    assert t[0] == pytest.approx(np.log10(0.45))  # scored against the particle f_DM
    assert quantities["log_fdm_derived_vs_true_masses"][1][0] == pytest.approx(p[0])
    assert notes["log_fdm_derived_n_undefined"] == 1
    quantities, _ = ct.derive_ml_r(pred, table)
    np.testing.assert_allclose(quantities["log_ml_r_derived"][0], [0.4, 0.3])


def test_evaluate_layout_and_paper_numbers_beside_ours():
    rng = np.random.default_rng(0)
    n = 10
    table = pd.DataFrame({"row": np.arange(n), "galaxy_id": np.arange(n), "projection": 0,
                          "galaxy_type": np.arange(n) % 2, "inclination_deg": 30.0,
                          "log_mstar": rng.normal(10, 0.3, n), "log_fdm": -0.3})
    table["log_mtot"] = table["log_mstar"] + 0.4
    exp = load_experiments("cnn")["s43_rmaps_mstar_mtot"]
    pred_log = table[["log_mstar", "log_mtot"]].to_numpy() + rng.normal(0, 0.01, (n, 2))
    pred, metrics = ct.evaluate(pred_log, table, exp)
    assert list(pred.columns[:4]) == ["galaxy_id", "projection", "galaxy_type",
                                      "inclination_deg"]
    assert {"true_log_mstar", "pred_log_mtot", "pred_log_fdm_derived",
            "true_log_fdm_derived", "true_log_fdm"} <= set(pred.columns)
    np.testing.assert_array_equal(pred["true_log_fdm"], table["log_fdm"])
    block = metrics["targets"]["log_mstar"]
    assert {"all", "early", "late", "paper"} <= set(block)
    assert block["paper"]["sigma"] == pytest.approx(0.04) and block["all"]["sigma"] < 0.02
    fdm = metrics["derived"]["log_fdm_derived"]
    assert fdm["paper"]["bias"] == pytest.approx(0.02)
    assert fdm["early"]["paper"]["bias"] == pytest.approx(-0.02)  # the ETG-only row


def test_bad_experiments_give_one_clear_error(synthetic_dataset, tmp_path):
    cfg = tiny_cfg(epochs=1)
    store = ResultsStore(tmp_path)
    with pytest.raises(cd.CNNExperimentError, match="unknown: \\['image_u'\\]"):
        ct.run_cnn_experiment(cfg, synthetic_dataset, r_only(inputs=["image_u"]), store)
    with pytest.raises(cd.CNNExperimentError, match="targets \\['log_nope'\\]"):
        ct.run_cnn_experiment(cfg, synthetic_dataset, r_only(targets=["log_nope"]), store)
    with pytest.raises(cd.CNNExperimentError, match="needs targets \\['log_mtot'\\]"):
        ct.run_cnn_experiment(cfg, synthetic_dataset, r_only(derived=["fdm_from_masses"]),
                              store)


# --------------------------------------------------------------------------- issue 15: paper scale


def test_checkpoint_keeps_one_rolling_file_and_the_best_weights_once(synthetic_dataset,
                                                                     tmp_path):
    data = _tiny_data(synthetic_dataset)
    scripted = {1: 0.5, 2: 0.9, 3: 1.2}
    ckpt = tmp_path / "c.pt"

    def seen(epoch, row):
        payload = ct.load_checkpoint(ckpt)
        assert "best_state" not in payload  # never the best weights twice
        files = sorted(p.name for p in ct.checkpoint_files(ckpt) if p.exists())
        if epoch == 1:  # the latest epoch is the best: the checkpoint's model is the best
            assert payload["best"] == "model" and files == ["c.pt"]
        else:  # moved past the best epoch: one side file with its weights
            assert payload["best"] == "c.best_e0001.pt"
            assert files == ["c.best_e0001.pt", "c.pt"]

    full = ct.train_model(_fresh_model(), data, TINY, PLAN, seed=3, progress=False,
                          val_loss_fn=lambda m, e: scripted[e])
    part = ct.train_model(_fresh_model(), data, TINY, PLAN, seed=3, progress=False,
                          checkpoint_path=ckpt, run_hash="h", stop_after=2, on_epoch_end=seen,
                          val_loss_fn=lambda m, e: scripted[e])
    assert part.extra["checkpoint_bytes"] > part.extra["best_file_bytes"] > 0
    rest = ct.train_model(_fresh_model(seed=9), data, TINY, PLAN, seed=3, progress=False,
                          checkpoint_path=ckpt, run_hash="h", val_loss_fn=lambda m, e: scripted[e])
    assert rest.resumed_from == 2 and rest.best_epoch == 1
    assert _same(full.best_state, rest.best_state)
    ct.remove_checkpoint(ckpt)
    assert not any(p.exists() for p in ct.checkpoint_files(ckpt))


def test_dihedral_augmentation_is_consistent_and_seeded(synthetic_dataset):
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(1, 2, 4, 4).repeat(8, 1, 1, 1)
    out = ct.dihedral(x, torch.arange(8))
    assert torch.equal(out[0], x[0])  # code 0: unchanged
    assert torch.equal(out[1], torch.rot90(x[1], 1, dims=(1, 2)))
    assert torch.equal(out[4], torch.flip(x[4], dims=(2,)))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8  # the 8 symmetries differ
    # every branch (and channel) of a sample gets the same transform
    data = _tiny_data(synthetic_dataset)
    data.inputs["copy"] = data.inputs["image_r"].clone()
    codes = torch.randint(0, 8, (5,), generator=torch.Generator().manual_seed(0))
    xb = ct._batch_inputs(data, torch.arange(5), PLAN, codes)
    assert torch.equal(xb["copy"], xb["image_r"])
    assert not torch.equal(xb["image_r"], ct._batch_inputs(data, torch.arange(5), PLAN)[
        "image_r"])
    # training with it is reproducible and differs from training without it
    del data.inputs["copy"]
    cfg = {**TINY, "epochs": 1, "augment": "dihedral"}
    runs = [ct.train_model(_fresh_model(), data, cfg, PLAN, seed=2, progress=False)
            for _ in range(2)]
    plain = ct.train_model(_fresh_model(), data, {**cfg, "augment": "none"}, PLAN, seed=2,
                           progress=False)
    assert _same(runs[0].best_state, runs[1].best_state)
    assert not _same(runs[0].best_state, plain.best_state)
    with pytest.raises(cd.CNNExperimentError, match="cnn.augment"):
        ct.train_model(_fresh_model(), data, {**cfg, "augment": "mirror"}, PLAN, seed=2)
    # part of the run's fingerprint
    ds = open_dataset(synthetic_dataset)
    assert ct._run_hash(tiny_cfg(augment="dihedral"), r_only(), ds) != ct._run_hash(
        tiny_cfg(augment="none"), r_only(), ds)


def test_experiments_are_checked_against_profile_or_dataset(synthetic_dataset):
    cfg = load_config("paper")
    s41_r30 = load_experiments("cnn")["s41_r30_mstar"]
    check = ct.check_experiment(cfg, s41_r30)  # the paper profile makes 300/150/60 px
    assert check.runnable and "image_r@30 (re-binned 2x from 60 px)" in check.detail
    bad = ct.check_experiment(cfg, r_only(resolution=7))
    assert not bad.runnable and "re-bins to 7 px" in bad.detail
    assert not ct.check_experiment(cfg, r_only(targets=["log_nope"])).runnable
    ds = open_dataset(synthetic_dataset)
    small = tiny_cfg()
    assert ct.check_experiment(small, r_only(), ds).runnable
    no_target = ct.check_experiment(small, r_only(targets=["log_nope"]), ds)
    assert not no_target.runnable and "log_nope" in no_target.detail
    checks, against = ct.check_selection(cfg, "all", None)
    assert "no dataset file" in against and all(c.runnable for c in checks)
    assert "SKIP" in ct.format_checks([bad])


def test_paper_selection_dry_run_exits_zero(capsys):
    from analysis_lib.cli import main

    assert main(["train-cnn", "--profile", "paper", "--dry-run",
                 "--dataset", "/nonexistent/paper.h5"]) == 0
    out = capsys.readouterr().out
    assert "s41_r30_mstar" in out and "SKIP" not in out.split("\n", 2)[2]
    assert main(["train-cnn", "--profile", "paper", "--dry-run", "--dataset",
                 "/nonexistent/paper.h5", "--set", "observe.image_sizes=[280]",
                 "--set", "observe.image_size=280"]) == 1  # no 150 or 60 px from 280 px
    assert "SKIP" in capsys.readouterr().out


def test_one_failure_never_stops_the_rest(synthetic_dataset, tmp_path, monkeypatch):
    cfg = tiny_cfg(epochs=1)
    store = ResultsStore(tmp_path / "results")
    boom, skip, good = r_only("t_boom"), r_only("t_skip", resolution=7), r_only("t_good")
    monkeypatch.setattr(ct, "select_experiments", lambda kind, sel: [boom, skip, good])
    original = ct.run_cnn_experiment

    def flaky(cfg, path, exp, *args, **kwargs):
        if exp["name"] == "t_boom":
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(cfg, path, exp, *args, **kwargs)

    monkeypatch.setattr(ct, "run_cnn_experiment", flaky)
    with pytest.raises(ct.CNNSelectionError, match="1 of 3 CNN experiments failed") as err:
        ct.run_cnn_experiments(cfg, synthetic_dataset, "x", store, progress=False)
    assert [p.name for p in err.value.paths] == ["t_good"]
    summary = json.loads(ct.selection_summary_path(store, cfg).read_text())
    status = {o["name"]: (o["status"], o.get("reason", "")) for o in summary["experiments"]}
    assert status["t_good"][0] == "done" and status["t_boom"][0] == "failed"
    assert "out of memory" in status["t_boom"][1]
    assert status["t_skip"][0] == "skipped" and "7 px" in status["t_skip"][1]


@pytest.mark.slow
def test_compiled_training_has_one_graph_and_marks_its_warmup(synthetic_dataset, monkeypatch):
    """Full batches compiled (the uneven last one eager), a fresh Dynamo per run."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compile_(m, backend="eager", **kw))
    data = _tiny_data(synthetic_dataset, n_train=18)  # batches 8, 8, 2
    plan = ct.DevicePlan(torch.device("cpu"), None, False, torch.float32, True)
    for _ in range(2):  # a second run in the same process compiles afresh
        res = ct.train_model(_fresh_model(), data, {**TINY, "epochs": 2}, plan, seed=0,
                             progress=False)
        assert res.extra["compile"]["used"] and res.extra["compile"]["unique_graphs"] == 1
        assert list(res.history["warmup"]) == [True, False]
    eager = ct.train_model(_fresh_model(), data, {**TINY, "epochs": 2}, PLAN, seed=0,
                           progress=False)
    np.testing.assert_allclose(res.history["train_loss"], eager.history["train_loss"],
                               rtol=1e-4)


@pytest.mark.slow
def test_two_process_gloo_run_trains_and_stores(synthetic_dataset, tmp_path):
    """torchrun, 2 CPU processes (gloo): one stored run, like a one-process run's."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ANALYSIS_LIB_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "analysis_lib", "train-cnn", "--profile", "smoke", "--dataset",
           str(synthetic_dataset), "--experiments", "s41_r_mstar", "--set", "cnn.epochs=1",
           "--set", "cnn.batch_size=8", "--set", "cnn.image_size=16", "--set",
           "cnn.device=cpu", "--set", "cnn.cpu_threads=1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = ResultsStore(tmp_path / "data" / "results")
    run = store.load("cnn", "s41_r_mstar", "smoke")
    assert run.meta["training"]["world_size"] == 2
    assert len(run.predictions) == run.meta["n_rows"]["test"]
    assert np.isfinite(run.predictions["pred_log_mstar"]).all()
    assert proc.stdout.count("results: ") == 2  # rank 0 alone reports (the run + baseline)


@pytest.mark.slow
def test_device_check_runs_on_the_cpu(tmp_path):
    import importlib.util

    from analysis_lib.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("device_check",
                                                  REPO_ROOT / "scripts" / "device_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    result = mod.main(["--tiny", "--galaxies", "8", "--out", str(tmp_path)])
    assert result["ok"] and result["resume"]["resumed_from_epoch"] == 1
    assert (tmp_path / "cnn_device_check_tiny.json").exists()


def test_precise_batchnorm_uses_the_exact_statistics_of_the_current_weights(synthetic_dataset):
    """After precise_batchnorm the first BatchNorm's running mean and (unbiased) variance are
    those of its inputs over the chosen rows, computed with the present weights; no parameter
    moves, the moving-average momentum is restored, and evaluation then differs from the
    stale-statistics model."""
    data = _tiny_data(synthetic_dataset)
    model = _fresh_model()
    ct.train_model(model, data, {**TINY, "epochs": 1}, PLAN, seed=0, progress=False)
    params = {k: v.clone() for k, v in model.named_parameters()}
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    seen = []
    hook = norms[0].register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    before = ct.predict_standardised(model, data, data.val, PLAN, 4)
    seen.clear()
    rows = data.train[:8]
    ct.precise_batchnorm(model, data, PLAN, rows, batch_size=8)  # one batch of 8
    hook.remove()
    x = torch.cat(seen)
    assert x.shape[0] == 8
    assert torch.allclose(norms[0].running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    var = x.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(norms[0].running_var, var, rtol=1e-4, atol=1e-6)
    assert all(m.momentum == 0.1 for m in norms)
    assert all(torch.equal(params[k], v) for k, v in model.named_parameters())
    after = ct.predict_standardised(model, data, data.val, PLAN, 4)
    assert not torch.allclose(before, after)


def test_precise_batchnorm_rows_are_fixed_by_the_seed(synthetic_dataset):
    data = _tiny_data(synthetic_dataset)
    a = ct._precise_bn_rows(data, 5, seed=3)
    assert torch.equal(a, ct._precise_bn_rows(data, 5, seed=3)) and len(a) == 5
    assert set(a.tolist()) <= set(data.train.tolist())
    assert ct._precise_bn_rows(data, 0, seed=3) is None
