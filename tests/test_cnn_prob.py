"""The probabilistic CNN: Gaussian NLL head, repeats, deep ensemble + conformal, flow, split."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.models import calibration as cal
from analysis_lib.models import cnn_prob as cp
from analysis_lib.models import cnn_train as ct
from analysis_lib.models.cnn_data import CNNExperimentError, TargetScaler
from analysis_lib.models.experiments import load_experiments
from analysis_lib.results import ResultsStore
from analysis_lib.rng import make_rng

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

TINY = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "image_size": 16, "device": "cpu",
        "cpu_threads": 1, "ensemble_members": 2, "flow_epochs": 15, "flow_samples": 100,
        "flow_context_dims": 4, "flow_hidden": 16, "flow_transforms": 1}


def tiny_cfg(**cnn) -> dict:
    return load_config("smoke", {f"cnn.{k}": v for k, v in {**TINY, **cnn}.items()})


def joint(name: str = "t_pjoint", **extra) -> dict:
    return {"name": name, "section": "4.3", "inputs": ["image_r", "sigma_map"],
            "resolution": 300, "targets": ["log_mstar", "log_mtot"], "aperture": "R_half_3d",
            "derived": ["fdm_from_masses"], "likelihood": "gaussian", "flow": True, **extra}


# --------------------------------------------------------------------------- Gaussian head


def test_gaussian_nll_is_the_gaussian_negative_log_likelihood():
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(7, 4, generator=g), torch.randn(7, 2, generator=g)
    ref = torch.nn.GaussianNLLLoss(full=True, eps=0)(out[:, :2], y, torch.exp(out[:, 2:]))
    assert float(cp.gaussian_nll(out, y)) == pytest.approx(float(ref), rel=1e-5)
    # beta-NLL weights each term by its (detached) variance**beta: the value changes, the
    # gradient of the mean does not get the variance's push-back
    mu, logvar = out[:, :2], out[:, 2:]
    per = 0.5 * (logvar + (y - mu) ** 2 * torch.exp(-logvar) + math.log(2 * math.pi))
    weighted = (per * torch.exp(logvar) ** 0.5).mean()
    assert float(cp.gaussian_nll(out, y, beta=0.5)) == pytest.approx(float(weighted), rel=1e-5)
    with pytest.raises(ValueError, match="outputs for 2 targets"):
        cp.gaussian_nll(out[:, :3], y)


def test_beta_nll_keeps_pulling_the_mean_of_a_galaxy_given_a_large_variance():
    # The pathology beta-NLL removes (Seitzer et al. 2022): under the plain NLL the pull on a
    # galaxy's mean falls as 1/variance, so a network that sets a hard galaxy's variance to
    # its clamp stops fitting that mean (quick-profile members predicted masses 15 dex off).
    # With beta the pull is variance**(beta - 1): 1/sigma at beta = 0.5, the MSE's at 1.
    residual, logvar = 2.0, 1.5  # inside the clamp (cp.LOGVAR_MAX)
    pulls = {}
    for beta in (0.0, 0.5, 1.0):
        mu = torch.zeros(1, 1, requires_grad=True)
        out = torch.cat([mu, torch.full((1, 1), logvar)], dim=1)
        cp.gaussian_nll(out, torch.full((1, 1), residual), beta=beta).backward()
        pulls[beta] = -float(mu.grad)
    assert pulls[0.0] == pytest.approx(residual * math.exp(-logvar), rel=1e-5)
    assert pulls[0.5] == pytest.approx(residual * math.exp(-logvar / 2), rel=1e-5)
    assert pulls[1.0] == pytest.approx(residual, rel=1e-5)


def test_destandardise_returns_dex():
    ts = TargetScaler(["a", "b"], np.array([10.0, 11.0]), np.array([0.5, 0.2]))
    out = torch.tensor([[0.0, 1.0, math.log(4.0), 0.0]])
    mu, sigma = cp.destandardise(out, ts)
    assert mu.tolist() == [[10.0, 11.2]]
    assert sigma == pytest.approx(np.array([[1.0, 0.2]]))


def test_model_doubles_outputs_for_a_gaussian_head():
    from analysis_lib.models.cnn import build_model

    cfg = tiny_cfg()["cnn"]
    m = build_model({"image_r": 16}, ["log_mstar", "log_mtot"], cfg, likelihood="gaussian")
    x = {"image_r": torch.zeros(3, 1, 16, 16)}
    assert m(x).shape == (3, 4) and m.embed(x).shape == (3, 512)
    with pytest.raises(ValueError, match="likelihood"):
        build_model({"image_r": 16}, ["log_mstar"], cfg, likelihood="laplace")


# --------------------------------------------------------------------------- repeats and names


def test_repeat_names_and_seeds():
    exp = joint()
    assert cp.seeded_experiment(exp, 0) is exp  # repeat 0 = the run as it always was
    r2 = cp.seeded_experiment(exp, 2)
    assert r2["name"] == "t_pjoint__s2" and r2["base"] == "t_pjoint" and r2["seed_index"] == 2
    cfg = tiny_cfg()
    legacy = int(make_rng(cfg["seed"], "cnn", "init", "t_pjoint").integers(2**62))
    assert ct.experiment_seed(cfg, "t_pjoint", "init") == legacy
    seeds = {ct.experiment_seed(cfg, "t_pjoint", "init", i) for i in range(4)}
    assert len(seeds) == 4
    p = cp.projsplit_experiment(exp)
    assert p["name"] == "t_pjoint__projsplit" and p["split_by"] == "projection"
    assert p["base"] == "t_pjoint"  # same initialisation as the galaxy-split run


def _fake_run(store, name, sigma, bias, coverage=None, kind="cnn"):
    metrics = {"targets": {"log_mstar": {"all": {"sigma": sigma, "bias": bias, "n": 10}}},
               "derived": {}}
    if coverage is not None:
        metrics["calibration"] = {"log_mstar": {"coverage_68": coverage, "crps": 0.1}}
    store.save(kind, name, "smoke", config={}, metrics=metrics, predictions=pd.DataFrame())


def test_seed_summary_gives_mean_and_spread(tmp_path):
    store = ResultsStore(tmp_path)
    for name, s, b in [("x", 0.10, 0.01), ("x__s1", 0.12, -0.01), ("x__s2", 0.14, 0.03),
                       ("xy", 9.0, 9.0), ("x__projsplit", 9.0, 9.0)]:
        _fake_run(store, name, s, b, coverage=0.7)
    table = cp.seed_summary(store, "smoke", "x").set_index("quantity")
    row = table.loc["log_mstar"]
    assert row["n_seeds"] == 3
    assert row["sigma_mean"] == pytest.approx(0.12) and row["sigma_std"] == pytest.approx(0.02)
    assert row["bias_mean"] == pytest.approx(0.01) and row["bias_std"] == pytest.approx(0.02)
    assert row["coverage_68_mean"] == pytest.approx(0.7)
    assert table.attrs["runs"] == ["x", "x__s1", "x__s2"]
    with pytest.raises(FileNotFoundError, match="no stored cnn run 'zz'"):
        cp.seed_summary(store, "smoke", "zz")


def test_projection_split_flattery(tmp_path):
    store = ResultsStore(tmp_path)
    _fake_run(store, "x", 0.12, 0.0)
    _fake_run(store, "x__projsplit", 0.08, 0.0)
    row = cp.projection_split_flattery(store, "smoke", ["x"]).iloc[0]
    assert row["flattery"] == pytest.approx(1.5) and row["quantity"] == "log_mstar"


# --------------------------------------------------------------------------- mixtures, conformal


def test_mixture_moments_match_samples():
    rng = np.random.default_rng(0)
    mus, sigmas = rng.normal(size=(5, 3)), rng.uniform(0.1, 1.0, size=(5, 3))
    mean, sd = cp.mixture_moments(mus, sigmas)
    pick = rng.integers(0, 5, size=(200_000, 3))
    draws = rng.normal(np.take_along_axis(mus, pick, 0), np.take_along_axis(sigmas, pick, 0))
    assert mean == pytest.approx(draws.mean(axis=0), abs=0.01)
    assert sd == pytest.approx(draws.std(axis=0), abs=0.01)


def test_conformal_factor_repairs_an_overconfident_ensemble():
    rng = np.random.default_rng(1)
    n = 2000
    centre = rng.normal(size=n)
    y_val, y_test = centre + rng.normal(size=n), centre + rng.normal(size=n)
    # members agree closely and claim sigma 0.5: twice too confident
    mus = centre + 0.05 * rng.normal(size=(5, n))
    sigmas = np.full((5, n), 0.5)
    before = cp.mixture_calibration(mus, sigmas, y_test)
    assert before["coverage_68"] < 0.45
    c = cp.conformal_factor(mus, sigmas, y_val)
    assert 1.8 < c < 2.2
    smus, ssig = cp.stretch(mus, sigmas, c)
    after = cp.mixture_calibration(smus, ssig, y_test)
    assert abs(after["coverage_68"] - 0.6827) < 0.03 and abs(after["coverage_95"] - 0.95) < 0.02
    assert after["crps"] < before["crps"]  # a proper score rewards the repair
    # the stretch keeps the mixture mean and multiplies its spread by c
    m0, s0 = cp.mixture_moments(mus, sigmas)
    m1, s1 = cp.mixture_moments(smus, ssig)
    assert m1 == pytest.approx(m0) and s1 == pytest.approx(c * s0)


# --------------------------------------------------------------------------- whole runs


@pytest.mark.slow
def test_sigma_scaling_repairs_over_and_under_confident_ensembles():
    rng = np.random.default_rng(2)
    n = 2000
    centre = rng.normal(size=n)
    y_val, y_test = centre + rng.normal(size=n), centre + rng.normal(size=n)
    mus = centre + 0.05 * rng.normal(size=(5, n))
    for claimed, expect in ((0.5, 2.0), (3.0, 1 / 3)):  # 2x over- and 3x under-confident
        sigmas = np.full((5, n), claimed)
        c = cp.sigma_scaling_factor(mus, sigmas, y_val)
        assert c == pytest.approx(expect, rel=0.06)
        smus, ssig = cp.stretch(mus, sigmas, c)
        after = cp.mixture_calibration(smus, ssig, y_test)
        assert abs(after["coverage_68"] - 0.6827) < 0.03
        assert abs(after["coverage_95"] - 0.95) < 0.02
    with pytest.raises(ValueError, match="finite"):
        cp.sigma_scaling_factor(mus[:, :3], np.ones((5, 3)), np.full(3, np.nan))


def test_gaussian_ensemble_flow_and_projection_split_runs(synthetic_dataset, tmp_path):
    cfg = tiny_cfg()
    store = ResultsStore(tmp_path / "results")
    exp = joint()
    ens = cp.run_cnn_ensemble(cfg, synthetic_dataset, exp, store, progress=False)
    # members are the experiment's repeats (no ensemble_epochs/image_size overrides)
    plain = store.load("cnn", "t_pjoint", "smoke")
    s1 = store.load("cnn", "t_pjoint__s1", "smoke")
    for run in (plain, s1):
        for t in exp["targets"]:
            assert (run.predictions[f"pred_sigma_{t}"] > 0).all()
            assert 0 <= run.metrics["calibration"][t]["coverage_68"] <= 1
        assert {"coverage_68", "coverage_95", "crps"} <= set(run.metrics)
        assert run.metrics["likelihood"] == "gaussian"
        assert (run.path / "extra" / cp.VAL_PREDICTIONS).exists()
    assert plain.metrics["seed_index"] == 0 and s1.metrics["seed_index"] == 1
    assert plain.metrics["seeds"] != s1.metrics["seeds"]
    assert (plain.path / "extra" / cp.EMBEDDING).exists()  # flow: true, repeat 0 only
    assert not (s1.path / "extra" / cp.EMBEDDING).exists()
    e = store.load("cnn_ensemble", "t_pjoint", "smoke")
    assert e.path == ens and e.metrics["members"] == ["t_pjoint", "t_pjoint__s1"]
    for key in ("coverage_68", "coverage_95", "crps", "coverage_68_raw", "crps_raw"):
        assert np.isfinite(e.metrics[key])
    # the conformal factor reaches nominal coverage on the validation galaxies themselves
    val = [pd.read_csv(r.path / "extra" / cp.VAL_PREDICTIONS) for r in (plain, s1)]
    vmus = np.stack([v["pred_log_mstar"] for v in val])
    vsig = np.stack([v["pred_sigma_log_mstar"] for v in val])
    factors = e.metrics["conformal_factor"]["log_mstar"]
    smus, ssig = cp.stretch(vmus, vsig, factors["c_conformal"])
    lo, hi = cal.mixture_quantiles(smus, ssig, cp.LEVELS["68"])
    assert cal.interval_coverage(lo, hi, val[0]["true_log_mstar"]) >= cp.NOMINAL_68
    # the headline is the recalibration cnn.recalibration chose (sigma scaling by default);
    # both are stored, and the predicted sigmas carry the chosen stretch
    assert e.metrics["recalibration"] == factors["method"] == "sigma_scaling"
    assert factors["c"] == factors["c_sigma_scaling"] == pytest.approx(
        cp.sigma_scaling_factor(vmus, vsig, val[0]["true_log_mstar"].to_numpy()))
    assert e.metrics["calibration"] == e.metrics["calibration_sigma_scaling"]
    assert "log_mstar" in e.metrics["calibration_conformal"]
    assert np.allclose(e.predictions["pred_sigma_log_mstar"],
                       factors["c"] * e.predictions["pred_sigma_raw_log_mstar"])
    table = cp.calibration_table(store, "smoke", "t_pjoint")
    assert {"ensemble (raw)", "ensemble (sigma scaling *)", "ensemble (conformal)"} <= set(
        table["model"])
    split = cnn_split(open_dataset(synthetic_dataset).table, cfg)
    assert sorted(e.predictions["row"]) == sorted(split["test"])

    flow = cp.run_cnn_flow(cfg, synthetic_dataset, exp, store, progress=False)
    f = store.load("cnn_flow", "t_pjoint", "smoke")
    assert f.path == flow
    assert {"log_mstar", "log_mtot", "fdm", "mdm_1e10msun"} <= set(f.metrics["calibration"])
    assert np.isfinite(f.metrics["tarp"]["atc"]) and f.metrics["tarp"]["n"] == len(split["test"])
    assert 0 <= f.metrics["fdm_coverage_68"] <= 1
    # recalibrated on the validation galaxies: factors stored, before and after both reported
    factors = f.metrics["conformal_factor"]
    assert set(factors) == set(cp.FLOW_TARGETS)
    assert all(np.isfinite(b["c"]) and b["c"] > 0 for b in factors.values())
    assert set(f.metrics["calibration_raw"]) == set(cp.FLOW_TARGETS)
    assert np.isfinite(f.metrics["tarp_raw"]["atc"]) and np.isfinite(f.metrics["crps_raw"])
    table = cp.calibration_table(store, "smoke", "t_pjoint")
    assert {"flow (raw)", "flow (conformal)"} <= set(table["model"])
    samples = np.load(f.path / "extra" / "posterior_samples.npz")["samples"]
    assert samples.shape == (100, len(split["test"]), 2)
    assert (f.predictions["fdm_lo68"] <= f.predictions["fdm_hi68"]).all()

    # the paper's leaky split, side by side
    cp.run_projection_split(cfg, synthetic_dataset, [], store)  # nothing selected: nothing run
    leaky = cp.projsplit_experiment({**exp, "likelihood": "mse", "flow": False,
                                     "name": "t_mse"})
    path = cp._run_locked(cfg, synthetic_dataset, leaky, store, False, False)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["split_by"] == "projection"
    run = store.load("cnn", "t_mse__projsplit", "smoke")
    assert "pred_sigma_log_mstar" not in run.predictions
    train_gal = set(open_dataset(synthetic_dataset).table.iloc[
        cnn_split(open_dataset(synthetic_dataset).table, cfg, by="projection")["train"]
    ]["galaxy_id"])
    assert set(run.predictions["galaxy_id"]) & train_gal  # the leak the paper's split has


def test_probabilistic_runs_refuse_bad_experiments(synthetic_dataset, tmp_path):
    cfg = tiny_cfg()
    store = ResultsStore(tmp_path)
    with pytest.raises(CNNExperimentError, match="needs `likelihood: gaussian`"):
        cp.run_cnn_ensemble(cfg, synthetic_dataset, joint(likelihood="mse"), store)
    with pytest.raises(CNNExperimentError, match="likelihood 'laplace'"):
        ct.run_cnn_experiment(cfg, synthetic_dataset, joint(likelihood="laplace"), store,
                              progress=False)
    with pytest.raises(CNNExperimentError, match="needs `flow: true`"):
        cp.run_cnn_flow(cfg, synthetic_dataset, joint(flow=False), store)


def test_probabilistic_experiment_in_the_file():
    e = load_experiments("cnn")["p_rmaps_joint"]
    assert e["likelihood"] == "gaussian" and e["flow"] is True
    assert set(cp.FLOW_TARGETS) <= set(e["targets"]) and "probabilistic" in e["tags"]


def test_flow_posterior_is_calibrated_on_a_known_problem():
    """theta = A c + noise (sigma 0.3): the flow's 68 % intervals cover ~68 % of new rows."""
    rng = np.random.default_rng(3)
    n = 900
    context = rng.normal(size=(n, 2)).astype(np.float32)
    theta = context @ np.array([[1.0, 0.5], [0.0, 1.0]]) + 0.3 * rng.normal(size=(n, 2))
    split = np.repeat([0, 1, 2], [500, 150, 250])
    settings = {**cp._flow_settings({}), "transforms": 1, "hidden": 16, "epochs": 60,
                "patience": 10, "lr": 3e-3}
    flow, history, best = cp.train_flow(context, theta, split, settings, seed=0)
    assert history["val_loss"].iloc[best - 1] == history["val_loss"].min()
    test = split == 2
    samples = cp.sample_flow(flow, context[test], 400, seed=1)
    assert samples.shape == (400, test.sum(), 2)
    for d in range(2):
        lo, hi = np.quantile(samples[..., d], cp.LEVELS["68"], axis=0)
        assert 0.58 < cal.interval_coverage(lo, hi, theta[test, d]) < 0.78
        assert np.mean(hi - lo) < 0.9  # sharper than the prior (width ~2.2): it used the context


def test_flow_conformal_stretch_repairs_overconfident_samples():
    """Posteriors half as wide as the truth's scatter: the validation factor is ~2, and the
    stretched test intervals reach nominal coverage where the raw ones cover ~38 %."""
    rng = np.random.default_rng(5)
    n_val, n_test, n_s = 400, 600, 500

    def draw(n):
        mu = rng.normal(size=n)
        y = mu + rng.normal(size=n)  # true posterior: N(mu, 1)
        samples = mu + 0.5 * rng.normal(size=(n_s, n))  # reported: N(mu, 0.5)
        return samples, y

    val_s, val_y = draw(n_val)
    c = cp.samples_conformal_factor(val_s, val_y)
    assert 1.7 < c < 2.3
    test_s, test_y = draw(n_test)
    for samples, lo_cov, hi_cov in ((test_s[..., None], 0.3, 0.46),
                                    (cp.stretch_samples(test_s[..., None], [c]), 0.63, 0.74)):
        lo, hi = np.quantile(samples[..., 0], cp.LEVELS["68"], axis=0)
        assert lo_cov < cal.interval_coverage(lo, hi, test_y) < hi_cov
    stretched = cp.stretch_samples(test_s[..., None], [c])
    assert np.allclose(np.median(stretched, axis=0), np.median(test_s[..., None], axis=0))
    # an under-confident posterior is narrowed
    assert cp.samples_conformal_factor(3.0 * val_s - 2.0 * val_s.mean(axis=0), val_y) < 1.0


def test_augmentation_twin_has_the_same_seeds_and_is_compared(synthetic_dataset, tmp_path):
    cfg = tiny_cfg()
    store = ResultsStore(tmp_path / "results")
    exp = {**joint("t_mse"), "likelihood": "mse", "flow": False}
    twin = cp.augmented_experiment(exp)
    assert twin["name"] == "t_mse__dihedral" and twin["base"] == "t_mse"
    acfg = tiny_cfg(augment="dihedral")
    cp._run_locked(cfg, synthetic_dataset, exp, store, False, False)
    cp._run_locked(acfg, synthetic_dataset, twin, store, False, False)
    plain, aug = (store.load("cnn", n, "smoke") for n in ("t_mse", "t_mse__dihedral"))
    assert plain.metrics["seeds"] == aug.metrics["seeds"]  # same initialisation and shuffling
    table = cp.augmentation_effect(store, "smoke", ["t_mse"]).set_index("quantity")
    assert set(table.index) >= {"log_mstar", "log_mtot"}
    row = table.loc["log_mstar"]
    assert row["ratio"] == pytest.approx(row["sigma_none"] / row["sigma_dihedral"])
    assert row["sigma_none"] != row["sigma_dihedral"]  # the turns and flips changed training
    with pytest.raises(CNNExperimentError, match="augment"):
        cp.run_augmentation(acfg, synthetic_dataset, [], store)



def test_flow_point_predictions_keep_a_collapsed_posterior():
    """A flow can put an out-of-distribution galaxy on a near-delta posterior (the smoke
    profile did, after a mock change): its 68 % half-width is 0, which has no Gaussian CRPS.
    The point predictions keep the galaxy (median, half-width 0) instead of stopping the run."""
    rng = np.random.default_rng(0)
    n, targets = 6, ["log_mstar", "log_mtot"]
    truth = rng.normal(10.5, 0.3, (n, 2))
    samples = truth[None] + rng.normal(0, 0.1, (500, n, 2))
    samples[:, 2, 0] = 9.0  # a collapsed marginal
    table = pd.DataFrame({"galaxy_id": np.arange(n), "projection": 0,
                          "galaxy_type": n // 2 * [0, 1], "inclination_deg": 60.0,
                          "log_mstar": truth[:, 0], "log_mtot": truth[:, 1],
                          "row": np.arange(n)})
    pred, metrics = cp.flow_point_predictions(samples, table, {"name": "f", "targets": targets})
    assert list(pred.columns[:8]) == ["galaxy_id", "projection", "galaxy_type", "inclination_deg",
                                      "true_log_mstar", "pred_log_mstar", "pred_sigma_log_mstar",
                                      "true_log_mtot"]
    assert pred.loc[2, "pred_sigma_log_mstar"] == 0.0 and pred.loc[2, "pred_log_mstar"] == 9.0
    np.testing.assert_allclose(pred["pred_log_mtot"], np.median(samples[..., 1], axis=0))
    assert np.all(pred.drop(index=2)["pred_sigma_log_mstar"].between(0.07, 0.13))
    assert set(metrics["targets"]) == set(targets) and "calibration" not in metrics
