"""The mock population reproduces the published relations it is drawn from (population table)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.sources.mock import relations as rel
from analysis_lib.sources.mock.population import concentration_median, draw_population


@pytest.fixture(scope="module")
def population():
    return draw_population(load_config("smoke", {"data.n_galaxies": 3000}))


def _binned_medians(x, y, edges, min_count=30):
    idx = np.digitize(x, edges)
    out = []
    for k in range(1, len(edges)):
        sel = idx == k
        if sel.sum() >= min_count:
            out.append((0.5 * (edges[k - 1] + edges[k]), np.median(y[sel]), sel.sum()))
    return out


def test_population_passes_the_paper_cuts(population):
    cfg = load_config("smoke")
    assert (population["mstar_30kpc"] > float(cfg["data"]["min_mstar_30kpc"])).all()
    assert (population["m200c"] < float(cfg["data"]["max_halo_mass"])).all()
    assert list(population["galaxy_id"]) == list(range(len(population)))


def test_shmr_median_follows_moster13(population):
    # above M200c ~ 1e12 the M*(<30 kpc) > 1e10 cut is > 3 sigma below the median: unbiased
    pop = population[population["log_m200c"] >= 12.0]
    delta = pop["log_mstar"] - np.log10(rel.moster13_mstar(pop["m200c"]))
    bins = _binned_medians(pop["log_m200c"].to_numpy(), delta.to_numpy(),
                           np.array([12.0, 12.3, 12.6, 13.0, 14.0]))
    assert len(bins) >= 3
    for centre, med, _n in bins:
        assert abs(med) < 0.1, f"SHMR median off by {med:.3f} dex at log M200c {centre}"
    scatter = 0.5 * np.diff(np.percentile(delta, [16, 84]))[0]
    assert abs(scatter - 0.15) < 0.03


def test_size_mass_medians_follow_the_configured_relation(population):
    from analysis_lib.sources.mock.population import SIZE_SPLIT_BY_STRUCTURE

    name = load_config("smoke")["mock"]["size_relation"]
    size_fn = rel.SIZE_RELATIONS[name]
    # Shen+2003 split early/late by structure (Sersic n), the mock by B/T >= 0.5
    kind = (population["bt"] >= 0.5) if name in SIZE_SPLIT_BY_STRUCTURE else population["early"]
    for is_early in (True, False):
        pop = population[kind == is_early]
        ref, _ = size_fn(pop["m_star"], np.full(len(pop), is_early))
        delta = np.log10(pop["re_kpc"] / ref)
        for centre, med, _n in _binned_medians(pop["log_mstar"].to_numpy(), delta.to_numpy(),
                                              np.arange(10.0, 11.6, 0.3)):
            assert abs(med) < 0.15, f"size median off by {med:.3f} dex at {centre} ({is_early})"
    # early types are more compact than late types at low mass, as in Shen+2003
    lo = population["log_mstar"] < 10.3
    assert population.loc[lo & kind, "re_kpc"].median() < \
        population.loc[lo & ~kind, "re_kpc"].median()


def test_quenched_fraction_rises_with_mass_as_moustakas13(population):
    bins = np.array([10.0, 10.3, 10.6, 11.0, 11.8])
    idx = np.digitize(population["log_mstar"], bins)
    counts = np.array([(idx == k).sum() for k in range(1, len(bins))])
    assert np.all(counts >= 30)
    frac = np.array([population.loc[idx == k, "early"].mean() for k in range(1, len(bins))])
    assert np.all(np.diff(frac) > 0), f"quenched fraction not rising: {frac}"
    # the HMF puts most galaxies of a wide bin near its low edge: compare with the published
    # fraction averaged over the bin's own galaxies, within 3 binomial standard errors
    f_each = rel.moustakas13_quiescent_fraction(10 ** population["log_mstar"].to_numpy())
    expected = np.array([f_each[idx == k].mean() for k in range(1, len(bins))])
    tol = 3 * np.sqrt(expected * (1 - expected) / counts)
    assert np.all(np.abs(frac - expected) < tol), (frac, expected, tol)


def test_concentrations_scatter_about_diemer19(population):
    med = concentration_median(population["m200c"].to_numpy(), "diemer19")
    delta = np.log10(population["concentration"] / med)
    assert abs(np.median(delta)) < 0.02
    assert abs(np.std(delta) - 0.13) < 0.02


def test_halo_mass_function_is_steep(population):
    # Tinker+2008 at z = 0: about 2-3x fewer haloes per dex from 1e12 to 1e13 Msun
    m = population["log_m200c"]
    n12 = ((m > 12.0) & (m < 12.5)).sum()
    n13 = ((m > 13.0) & (m < 13.5)).sum()
    assert n12 > 4 * n13


def test_gas_fractions_lower_for_quenched(population):
    f = population["m_gas"] / population["m_star"]  # zero for early types without cold gas
    assert f[population["early"]].median() < 0.2 * f[~population["early"]].median()
    assert f[population["early"]].mean() < 0.2 * f[~population["early"]].mean()


def test_van_der_wel_size_option_follows_its_relation():
    pop = draw_population(load_config("smoke", {"data.n_galaxies": 1500,
                                                "mock.size_relation": "vdw14"}))
    for is_early in (True, False):
        sel = pop[pop["early"] == is_early]
        ref, _ = rel.vdw14_size(sel["m_star"], np.full(len(sel), is_early))
        assert abs(np.median(np.log10(sel["re_kpc"] / ref))) < 0.05


def test_types_and_structure_overlap_at_observed_rates(population):
    """Red discs and blue bulges exist (B/T no longer gives the type), at the rates drawn."""
    from analysis_lib.sources.mock.population import BLUE_EARLY_TYPE_FRACTION, RED_DISC_FRACTION

    early, bt = population["early"], population["bt"]
    q_fast = population[early & ~population["slow_rotator"]]
    red_disc = (q_fast["bt"] < 0.5).mean()
    assert red_disc == pytest.approx(RED_DISC_FRACTION, abs=0.04)
    # blue bulge-dominated galaxies: 5.7 % of all bulge-dominated ones (Schawinski+2009),
    # up to the cap at high mass; counted here below it (log M* < 10.6)
    low = population[population["log_mstar"] < 10.6]
    bulgy = low["bt"] >= 0.5
    blue_share = (bulgy & ~low["early"]).sum() / bulgy.sum()
    assert blue_share == pytest.approx(BLUE_EARLY_TYPE_FRACTION, abs=0.02)
    assert bt[early].min() < 0.3 and bt[~early].max() > 0.6
