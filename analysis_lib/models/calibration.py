"""Calibration of per-galaxy predictive distributions: coverage, PIT, CRPS, conformal, TARP.

Shared by every probabilistic model of the project (the CNN's Gaussian heads and deep ensembles,
LightGBM's quantile regression), so all of them are scored by the same code:

- `interval_coverage`: the fraction of test galaxies whose truth falls in their interval; a
  calibrated 68 % (95 %) interval covers 68 % (95 %) of galaxies.
- `gaussian_pit` / `mixture_pit` / `samples_pit`: the probability integral transform F(y); it is
  uniform on [0, 1] for a calibrated model, U-shaped when the model is over-confident and
  hump-shaped when it is under-confident.
- `crps_*`: the continuous ranked probability score (Gneiting & Raftery 2007), a proper score in
  the units of the target (dex here) that rewards both sharpness and calibration; it reduces to
  the absolute error for a point forecast.
- `conformal_scale` / `cqr_correction`: split-conformal recalibration (Vovk et al. 2005; Romano
  et al. 2019) on a validation set carved from the training galaxies, with the finite-sample
  quantile ceil((n+1) level)/n that guarantees marginal coverage >= level.
- `tarp_coverage`: the TARP test of a joint (multi-dimensional) posterior from samples
  (Lemos et al. 2023) through the `tarp` package.

Arrays follow one convention: the galaxy axis is the last one; members/samples/levels come first.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from analysis_lib.rng import make_rng

__all__ = ["interval_coverage", "gaussian_pit", "mixture_pit", "samples_pit", "crps_gaussian",
           "crps_mixture", "crps_samples", "crps_quantiles", "mixture_quantiles",
           "conformal_scale", "gaussian_sigma_factor", "cqr_correction", "tarp_coverage",
           "pit_histogram", "calibration_summary"]

_SQRT_PI = math.sqrt(math.pi)


def _arrays(*arrays) -> list[np.ndarray]:
    return [np.asarray(a, dtype=float) for a in arrays]


def _check_sigma(sigma: np.ndarray, what: str = "sigma") -> None:
    if np.any(~(sigma > 0)):
        bad = np.flatnonzero(~(np.ravel(sigma) > 0))[:5]
        raise ValueError(f"{what} must be > 0 and finite; bad entries at flat indices "
                         f"{bad.tolist()}")


def interval_coverage(lo, hi, y) -> float:
    """Fraction of galaxies with lo <= y <= hi (the empirical coverage of the intervals).

    Rows with a non-finite truth or bound are dropped; a calibrated central interval of
    probability p covers a fraction p of galaxies.
    """
    lo, hi, y = _arrays(lo, hi, y)
    if not (lo.shape == hi.shape == y.shape):
        raise ValueError(f"interval_coverage: shapes differ (lo {lo.shape}, hi {hi.shape}, "
                         f"y {y.shape})")
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
    if not ok.any():
        return float("nan")
    return float(np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok])))


def gaussian_pit(mu, sigma, y) -> np.ndarray:
    """PIT values Phi((y - mu) / sigma) of Gaussian predictions; uniform when calibrated."""
    mu, sigma, y = _arrays(mu, sigma, y)
    _check_sigma(sigma)
    return stats.norm.cdf((y - mu) / sigma)


def mixture_pit(mus, sigmas, y) -> np.ndarray:
    """PIT of an equal-weight Gaussian mixture (deep ensemble): mean of the members' CDFs.

    `mus`, `sigmas` have shape (n_members, n); `y` has shape (n,).
    """
    mus, sigmas, y = _arrays(mus, sigmas, y)
    _check_sigma(sigmas, "sigmas")
    return stats.norm.cdf((y[None] - mus) / sigmas).mean(axis=0)


def samples_pit(samples, y) -> np.ndarray:
    """PIT from posterior samples (n_samples, n): the fraction of samples below the truth."""
    samples, y = _arrays(samples, y)
    return (samples < y[None]).mean(axis=0)


def crps_gaussian(mu, sigma, y) -> np.ndarray:
    """Closed-form CRPS of N(mu, sigma^2) at y (Gneiting et al. 2005), per galaxy.

    CRPS = sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (y - mu)/sigma.
    """
    mu, sigma, y = _arrays(mu, sigma, y)
    _check_sigma(sigma)
    z = (y - mu) / sigma
    return sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / _SQRT_PI)


def _abs_normal_mean(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E|X| for X ~ N(m, s^2): the building block of the mixture CRPS."""
    return 2 * s * stats.norm.pdf(m / s) + m * (2 * stats.norm.cdf(m / s) - 1)


def crps_mixture(mus, sigmas, y) -> np.ndarray:
    """Closed-form CRPS of an equal-weight Gaussian mixture (Grimit et al. 2006), per galaxy.

    CRPS = ``E|X - y| - E|X - X'|/2`` with X, X' independent draws of the mixture; both terms
    are sums of ``E|N(m, s^2)|`` over members (pairs). `mus`, `sigmas`: (n_members, n); `y`: (n,).
    """
    mus, sigmas, y = _arrays(mus, sigmas, y)
    if mus.ndim != 2 or mus.shape != sigmas.shape or mus.shape[1:] != y.shape:
        raise ValueError(f"crps_mixture: mus/sigmas must be (n_members, n) and y (n,); have "
                         f"{mus.shape}, {sigmas.shape}, {y.shape}")
    _check_sigma(sigmas, "sigmas")
    term1 = _abs_normal_mean(y[None] - mus, sigmas).mean(axis=0)
    dm = mus[:, None, :] - mus[None, :, :]
    ds = np.sqrt(sigmas[:, None, :] ** 2 + sigmas[None, :, :] ** 2)
    term2 = _abs_normal_mean(dm, ds).mean(axis=(0, 1))
    return term1 - 0.5 * term2


def crps_samples(samples, y) -> np.ndarray:
    """CRPS of the empirical distribution of samples (n_samples, n) at y (n,), per galaxy.

    The energy form ``E|X - y| - E|X - X'|/2`` over the samples (the 'ensemble CRPS' of
    properscoring.crps_ensemble); ``E|X - X'|`` in O(m log m) from the sorted samples.
    """
    samples, y = _arrays(samples, y)
    if samples.ndim != 2 or samples.shape[1:] != y.shape:
        raise ValueError(f"crps_samples: samples must be (n_samples, n) and y (n,); have "
                         f"{samples.shape}, {y.shape}")
    m = samples.shape[0]
    term1 = np.abs(samples - y[None]).mean(axis=0)
    xs = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, m + 1) - m - 1)[:, None]
    term2 = 2 * (weights * xs).sum(axis=0) / m**2
    return term1 - 0.5 * term2


def crps_quantiles(levels, qvalues, y) -> np.ndarray:
    """CRPS approximated from predicted quantiles: 2 x the level-weighted mean pinball loss.

    CRPS = 2 int_0^1 QS_tau(q_tau, y) d tau (Gneiting & Raftery 2007, eq. 22). The integral is
    a Riemann sum in which each level stands for the interval between the mid-points to its
    neighbours (the first and last reach 0 and 1), so a few uneven levels (e.g. 0.025, 0.16,
    0.5, 0.84, 0.975) are weighted sensibly; with many even levels it converges to the CRPS.
    `levels`: (k,); `qvalues`: (k, n); `y`: (n,).
    """
    levels, qvalues, y = _arrays(levels, qvalues, y)
    if levels.ndim != 1 or qvalues.shape != (len(levels), *y.shape):
        raise ValueError(f"crps_quantiles: levels (k,), qvalues (k, n), y (n,); have "
                         f"{levels.shape}, {qvalues.shape}, {y.shape}")
    if np.any((levels <= 0) | (levels >= 1)) or np.any(np.diff(levels) <= 0):
        raise ValueError(f"crps_quantiles: levels must be increasing inside (0, 1): "
                         f"{levels.tolist()}")
    mids = np.concatenate([[0.0], 0.5 * (levels[1:] + levels[:-1]), [1.0]])
    weights = np.diff(mids)[:, None]
    diff = y[None] - qvalues
    pinball = np.maximum(levels[:, None] * diff, (levels[:, None] - 1) * diff)
    return 2 * (weights * pinball).sum(axis=0)


def mixture_quantiles(mus, sigmas, probs, iterations: int = 60) -> np.ndarray:
    """Quantiles (n_probs, n) of equal-weight Gaussian mixtures by vectorised bisection.

    The mixture CDF has no closed-form inverse; bisection on [min(mu - 10 sigma),
    max(mu + 10 sigma)] reaches 1e-15 of that bracket in 60 steps.
    """
    mus, sigmas = _arrays(mus, sigmas)
    probs = np.atleast_1d(np.asarray(probs, dtype=float))
    if mus.ndim != 2 or mus.shape != sigmas.shape:
        raise ValueError(f"mixture_quantiles: mus/sigmas must be (n_members, n); have "
                         f"{mus.shape}, {sigmas.shape}")
    if np.any((probs <= 0) | (probs >= 1)):
        raise ValueError(f"mixture_quantiles: probs must lie inside (0, 1): {probs.tolist()}")
    _check_sigma(sigmas, "sigmas")
    n = mus.shape[1]
    lo = np.broadcast_to((mus - 10 * sigmas).min(axis=0), (len(probs), n)).copy()
    hi = np.broadcast_to((mus + 10 * sigmas).max(axis=0), (len(probs), n)).copy()
    p = probs[:, None]
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cdf = stats.norm.cdf((mid[:, None, :] - mus[None]) / sigmas[None]).mean(axis=1)
        below = cdf < p
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def conformal_scale(z_val, level: float) -> float:
    """Split-conformal half-width, in units of the model's own scale, for coverage >= level.

    `z_val` are normalised residuals (y - mu)/s of validation galaxies (s: the model's sigma or
    any per-galaxy scale); the score is ``|z|``. The returned q is the ceil((n+1) level)-th smallest
    score, so the interval mu +- q s covers a new exchangeable galaxy with probability >= level
    (Vovk et al. 2005; Lei et al. 2018). Returns inf when n is too small for the level.
    For a Gaussian model, `gaussian_sigma_factor` turns q into a multiplier of sigma.
    """
    scores = np.abs(np.asarray(z_val, dtype=float))
    scores = np.sort(scores[np.isfinite(scores)])
    if not 0 < level < 1:
        raise ValueError(f"conformal level must lie in (0, 1), not {level}")
    n = len(scores)
    if n == 0:
        raise ValueError("conformal_scale needs at least one finite validation residual")
    k = math.ceil((n + 1) * level)
    if k > n:
        return float("inf")
    return float(scores[k - 1])


def gaussian_sigma_factor(z_val, level: float) -> float:
    """Multiplier of a Gaussian sigma so that its central `level` interval is conformal.

    q / Phi^-1((1 + level)/2) with q = conformal_scale(z_val, level): 1 when the validation
    residuals already match the model's sigma, > 1 when the model is over-confident.
    """
    return conformal_scale(z_val, level) / float(stats.norm.ppf(0.5 * (1 + level)))


def cqr_correction(lo_val, hi_val, y_val, level: float) -> float:
    """Conformalized quantile regression (Romano, Patterson & Candes 2019): the additive widening.

    Scores E = max(lo - y, y - hi) on validation galaxies; the correction is their
    ceil((n+1) level)-th smallest value, and [lo - Q, hi + Q] covers >= level of new
    galaxies. Q < 0 narrows intervals that were too wide. Returns inf when n is too small.
    """
    lo, hi, y = _arrays(lo_val, hi_val, y_val)
    if not 0 < level < 1:
        raise ValueError(f"conformal level must lie in (0, 1), not {level}")
    scores = np.maximum(lo - y, y - hi)
    scores = np.sort(scores[np.isfinite(scores)])
    n = len(scores)
    if n == 0:
        raise ValueError("cqr_correction needs at least one finite validation galaxy")
    k = math.ceil((n + 1) * level)
    return float("inf") if k > n else float(scores[k - 1])


def tarp_coverage(samples, truths, n_refs: int = 10, seed: int = 0,
                  n_bins: int | None = None) -> dict:
    """TARP expected-coverage test of (joint) posterior samples, through the `tarp` package.

    Parameters
    ----------
    samples : (n_samples, n, n_dims) or (n_samples, n) for one dimension
    truths : (n, n_dims) or (n,)
    n_refs : number of independent sets of random reference points (drawn in the unit cube
        of the truths' range, seeded); the curve is averaged over them so that it does not hinge
        on one draw of references.
    seed : seed of `analysis_lib.rng.make_rng` for the references.
    n_bins : credibility bins of the curve (default min(n, 200), at least 10).

    Returns
    -------
    dict with 'alpha' (credibility level grid on [0, 1]), 'ecp' (expected coverage, averaged
    over reference sets), 'atc' (signed area ECP - alpha over [0, 1]: 0 calibrated, < 0
    over-confident, > 0 under-confident), 'ks_stat' and 'ks_pvalue' (the KS test of the
    per-galaxy credibility levels against U(0, 1), median over the reference sets: the ECP is
    their empirical CDF), and 'n'.
    """
    from tarp import get_tarp_coverage

    samples = np.asarray(samples, dtype=float)
    truths = np.asarray(truths, dtype=float)
    if samples.ndim == 2:
        samples = samples[..., None]
    if truths.ndim == 1:
        truths = truths[:, None]
    if samples.ndim != 3 or truths.shape != samples.shape[1:]:
        raise ValueError(f"tarp_coverage: samples (n_samples, n, d) and truths (n, d); have "
                         f"{samples.shape}, {truths.shape}")
    n, dims = truths.shape
    if n < 10:
        raise ValueError(f"tarp_coverage needs >= 10 galaxies, have {n}")
    n_bins = int(n_bins or max(10, min(n, 200)))
    grid = np.linspace(0.0, 1.0, n_bins + 1)
    rng = make_rng(seed, "tarp")
    curves, ks_stats, ks_ps = [], [], []
    for _ in range(int(n_refs)):
        refs = rng.uniform(size=(n, dims))
        # tarp bins the credibility levels over their own range: at the edges its ECP is the
        # exact empirical CDF of those levels, which we carry onto a common [0, 1] grid.
        ecp, alpha = get_tarp_coverage(samples.copy(), truths.copy(), references=refs,
                                       metric="euclidean", num_alpha_bins=max(n, 10),
                                       norm=True, bootstrap=False, seed=seed)
        curve = np.interp(grid, alpha, ecp, left=0.0, right=1.0)
        curves.append(curve)
        d_stat = float(max(np.max(np.abs(ecp - alpha)), alpha[0], 1 - alpha[-1]))
        ks_stats.append(d_stat)
        ks_ps.append(float(stats.kstwo.sf(d_stat, n)))
    ecp_mean = np.mean(curves, axis=0)
    atc = float(np.trapezoid(ecp_mean - grid, grid))
    return {"alpha": grid, "ecp": ecp_mean, "atc": atc, "ks_stat": float(np.median(ks_stats)),
            "ks_pvalue": float(np.median(ks_ps)), "n": int(n), "n_refs": int(n_refs)}


def pit_histogram(pit, bins: int = 10) -> list[float]:
    """Fraction of galaxies in each of `bins` equal PIT bins (each 1/bins when calibrated)."""
    pit = np.asarray(pit, dtype=float)
    pit = pit[np.isfinite(pit)]
    counts, _ = np.histogram(np.clip(pit, 0, 1), bins=bins, range=(0.0, 1.0))
    return (counts / max(len(pit), 1)).tolist()


def calibration_summary(lo68, hi68, lo95, hi95, crps, pit, y=None) -> dict:
    """The calibration block of a probabilistic run's metrics.json.

    Parameters
    ----------
    lo68, hi68, lo95, hi95 : per-galaxy bounds of the central 68 % and 95 % intervals
    crps : per-galaxy CRPS (dex)
    pit : per-galaxy PIT values
    y : per-galaxy truths. Give them: the coverages are then counted from the intervals. Without
        them the coverages are read off the PIT (fraction inside [0.16, 0.84] and
        [0.025, 0.975]), which is the same thing only when the intervals are the central
        quantiles of the distribution that gave the PIT; 'coverage_from' says which was used.

    Returns
    -------
    dict with coverage_68, coverage_95, crps (mean, dex), pit_hist (10 bins, fractions summing
    to 1; 0.1 each when calibrated), pit_ks_pvalue (KS test of the PIT against U(0, 1)),
    coverage_from and n.
    """
    crps = np.asarray(crps, dtype=float)
    pit = np.asarray(pit, dtype=float)
    finite_pit = pit[np.isfinite(pit)]
    ks_p = float(stats.kstest(finite_pit, "uniform").pvalue) if len(finite_pit) else float("nan")
    if y is not None:
        cov68 = interval_coverage(lo68, hi68, y)
        cov95 = interval_coverage(lo95, hi95, y)
        source = "intervals"
    else:
        cov68 = float(np.mean((finite_pit >= 0.15865) & (finite_pit <= 0.84135)))
        cov95 = float(np.mean((finite_pit >= 0.025) & (finite_pit <= 0.975)))
        source = "pit"
    return {"coverage_68": cov68, "coverage_95": cov95,
            "crps": float(np.nanmean(crps)) if crps.size else float("nan"),
            "pit_hist": pit_histogram(pit), "pit_ks_pvalue": ks_p, "coverage_from": source,
            "n": int(len(finite_pit))}
