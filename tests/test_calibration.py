"""Calibration metrics against known cases (closed forms, numerical integrals, true models)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from analysis_lib.models import calibration as cal
from analysis_lib.rng import make_rng


def _crps_numeric(cdf, y: float, lo: float, hi: float) -> float:
    """CRPS = int (F(x) - 1{x >= y})^2 dx by quadrature: the definition, independent of the code."""
    left = integrate.quad(lambda x: cdf(x) ** 2, lo, y, limit=200)[0]
    right = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, hi, limit=200)[0]
    return left + right


def test_crps_gaussian_matches_definition_and_point_limit():
    mu, sigma = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.3, 2.5])
    y = np.array([0.4, 2.0, -2.0])
    got = cal.crps_gaussian(mu, sigma, y)
    for i in range(3):
        want = _crps_numeric(lambda x, i=i: stats.norm.cdf(x, mu[i], sigma[i]), y[i],
                             mu[i] - 15 * sigma[i], mu[i] + 15 * sigma[i])
        assert got[i] == pytest.approx(want, rel=1e-6)
    # known value: CRPS of N(0,1) at its mean is (sqrt(2) - 1)/sqrt(pi)
    assert cal.crps_gaussian([0.0], [1.0], [0.0])[0] == pytest.approx(
        (np.sqrt(2) - 1) / np.sqrt(np.pi))
    # a very sharp forecast scores the absolute error
    assert cal.crps_gaussian([0.0], [1e-6], [0.7])[0] == pytest.approx(0.7, abs=1e-5)


def test_crps_mixture_matches_definition_and_reduces_to_gaussian():
    mus = np.array([[0.0, 1.0], [1.5, 1.2], [-0.5, 0.8]])
    sigmas = np.array([[0.5, 0.2], [0.7, 0.1], [1.0, 0.3]])
    y = np.array([0.3, 1.0])
    got = cal.crps_mixture(mus, sigmas, y)
    for i in range(2):
        def cdf(x, i=i):
            return stats.norm.cdf(x, mus[:, i], sigmas[:, i]).mean()
        want = _crps_numeric(cdf, y[i], -10.0, 10.0)
        assert got[i] == pytest.approx(want, rel=1e-6)
    same = cal.crps_mixture(np.repeat(mus[:1], 4, 0), np.repeat(sigmas[:1], 4, 0), y)
    np.testing.assert_allclose(same, cal.crps_gaussian(mus[0], sigmas[0], y), rtol=1e-10)


def test_crps_samples_and_quantiles_converge_to_closed_form():
    rng = make_rng(1, "test_crps")
    mu, sigma = np.array([0.0, 2.0]), np.array([1.0, 0.5])
    y = np.array([0.5, 1.0])
    samples = rng.normal(mu, sigma, size=(40000, 2))
    want = cal.crps_gaussian(mu, sigma, y)
    np.testing.assert_allclose(cal.crps_samples(samples, y), want, rtol=0.02)
    # small exact case: samples {0, 1}, y = 0 -> E|X-y| = 0.5, E|X-X'| = 0.5 -> 0.25
    assert cal.crps_samples(np.array([[0.0], [1.0]]), np.array([0.0]))[0] == pytest.approx(0.25)
    levels = np.linspace(0.005, 0.995, 199)
    q = stats.norm.ppf(levels[:, None], mu, sigma)
    np.testing.assert_allclose(cal.crps_quantiles(levels, q, y), want, rtol=0.02)
    with pytest.raises(ValueError, match="increasing"):
        cal.crps_quantiles([0.5, 0.2], q[:2], y)


def test_mixture_quantiles_invert_the_mixture_cdf():
    mus = np.array([[0.0, 3.0], [2.0, 3.1]])
    sigmas = np.array([[1.0, 0.1], [0.5, 0.2]])
    probs = np.array([0.025, 0.16, 0.5, 0.84, 0.975])
    q = cal.mixture_quantiles(mus, sigmas, probs)
    assert q.shape == (5, 2)
    cdf = stats.norm.cdf((q[:, None, :] - mus[None]) / sigmas[None]).mean(axis=1)
    np.testing.assert_allclose(cdf, np.repeat(probs[:, None], 2, 1), atol=1e-9)
    one = cal.mixture_quantiles(mus[:1], sigmas[:1], probs)
    np.testing.assert_allclose(one, stats.norm.ppf(probs[:, None], mus[0], sigmas[0]), atol=1e-9)


def test_true_model_is_calibrated_and_overconfident_one_is_not():
    rng = make_rng(2, "test_cov")
    n = 4000
    mu = rng.normal(size=n)
    sigma = rng.uniform(0.1, 0.5, size=n)
    y = rng.normal(mu, sigma)
    z68, z95 = stats.norm.ppf(0.84135), stats.norm.ppf(0.975)
    assert cal.interval_coverage(mu - z68 * sigma, mu + z68 * sigma, y) == pytest.approx(0.6827,
                                                                                          abs=0.03)
    assert cal.interval_coverage(mu - z95 * sigma, mu + z95 * sigma, y) == pytest.approx(0.95,
                                                                                          abs=0.015)
    pit = cal.gaussian_pit(mu, sigma, y)
    assert stats.kstest(pit, "uniform").pvalue > 1e-3
    hist = cal.pit_histogram(pit)
    assert len(hist) == 10 and sum(hist) == pytest.approx(1.0)
    assert max(abs(h - 0.1) for h in hist) < 0.025
    # over-confident (sigma halved): U-shaped PIT, low coverage
    pit_bad = cal.gaussian_pit(mu, sigma / 2, y)
    hist_bad = cal.pit_histogram(pit_bad)
    assert hist_bad[0] > 0.15 and hist_bad[-1] > 0.15
    summary = cal.calibration_summary(mu - z68 * sigma / 2, mu + z68 * sigma / 2,
                                      mu - z95 * sigma / 2, mu + z95 * sigma / 2,
                                      cal.crps_gaussian(mu, sigma / 2, y), pit_bad, y)
    assert summary["coverage_68"] < 0.45 and summary["coverage_95"] < 0.75
    assert summary["pit_ks_pvalue"] < 1e-6 and summary["coverage_from"] == "intervals"
    # the true sigma scores a better (lower) CRPS than the over-confident one: CRPS is proper
    assert cal.crps_gaussian(mu, sigma, y).mean() < summary["crps"]
    # without truths the coverage comes from the PIT and agrees for central Gaussian intervals
    from_pit = cal.calibration_summary(None, None, None, None, [0.1], pit_bad)
    assert from_pit["coverage_68"] == pytest.approx(summary["coverage_68"], abs=1e-3)
    # a mixture of identical members has the member's PIT
    np.testing.assert_allclose(cal.mixture_pit(np.stack([mu, mu]), np.stack([sigma, sigma]), y),
                               pit)


def test_conformal_scale_restores_coverage_with_finite_sample_quantile():
    rng = make_rng(3, "test_conf")
    n_val, n_test = 500, 20000
    true_sigma = 0.3
    reported = 0.1  # over-confident by a factor 3
    z_val = rng.normal(0, true_sigma, n_val) / reported
    for level in (0.68, 0.95):
        q = cal.conformal_scale(z_val, level)
        y_test = rng.normal(0, true_sigma, n_test)
        cover = cal.interval_coverage(-q * reported * np.ones(n_test),
                                      q * reported * np.ones(n_test), y_test)
        assert cover == pytest.approx(level, abs=0.03)
        factor = cal.gaussian_sigma_factor(z_val, level)
        assert factor == pytest.approx(3.0, rel=0.15)
    # the finite-sample rank: n = 9, level 0.8 -> ceil(10*0.8) = 8th smallest score
    assert cal.conformal_scale(np.arange(1, 10), 0.8) == 8.0
    assert cal.conformal_scale(np.arange(1, 10), 0.95) == float("inf")
    with pytest.raises(ValueError, match="level"):
        cal.conformal_scale([1.0], 1.5)


def test_cqr_correction_widens_too_narrow_intervals():
    rng = make_rng(4, "test_cqr")
    y_val = rng.normal(size=2000)
    q = cal.cqr_correction(-0.5 * np.ones(2000), 0.5 * np.ones(2000), y_val, 0.9)
    assert q == pytest.approx(stats.norm.ppf(0.95) - 0.5, abs=0.1)
    y_test = rng.normal(size=20000)
    cover = cal.interval_coverage(np.full(20000, -0.5 - q), np.full(20000, 0.5 + q), y_test)
    assert cover == pytest.approx(0.9, abs=0.02)


def test_tarp_flags_biased_posteriors():
    rng = make_rng(5, "test_tarp")
    n, m = 300, 400
    truth_mean = rng.normal(size=(n, 2))
    theta = truth_mean + 0.3 * rng.normal(size=(n, 2))
    good = truth_mean[None] + 0.3 * rng.normal(size=(m, n, 2))
    res = cal.tarp_coverage(good, theta, n_refs=3, seed=0)
    assert res["alpha"].shape == res["ecp"].shape and res["n"] == n
    assert abs(res["atc"]) < 0.05 and res["ks_pvalue"] > 1e-3
    narrow = truth_mean[None] + 0.05 * rng.normal(size=(m, n, 2))
    bad = cal.tarp_coverage(narrow, theta, n_refs=3, seed=0)
    assert bad["ks_pvalue"] < 1e-4
    assert abs(bad["atc"]) > abs(res["atc"])
    one_d = cal.tarp_coverage(good[..., 0], theta[:, 0], n_refs=2, seed=1)
    assert np.isfinite(one_d["atc"])
