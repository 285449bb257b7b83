"""The shortcut checks find a lookup where there is one, and not where there is none; the star
formation histories behind them keep residual star formation, quenching and bursts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_lib.sources.mock import stellar_pops as sp
from analysis_lib.sources.mock.shortcuts import (
    age_metallicity_table,
    dust_free_colour,
    dust_free_log_ml_r,
    fit_residual_scatter,
    galaxy_bootstrap_std,
    overlap_fractions,
    red_sequence_medians,
    shortcut_table,
)


def _table(rng, n, separated: bool) -> pd.DataFrame:
    early = rng.uniform(size=n) < 0.5
    if separated:  # the old mock: SFR = 0 and bulgy early types, star-forming discs
        sfr = np.where(early, 0.0, 10 ** rng.normal(0.0, 0.3, n))
        kbt = np.where(early, rng.uniform(0.2, 0.7, n), rng.uniform(0.0, 0.1, n))
    else:  # overlapping: residual SF in some early types, bulgy late types, discy early types
        sfr = np.where(early, np.where(rng.uniform(size=n) < 0.3, 10 ** rng.normal(-1, 0.6, n),
                                       0.0), 10 ** rng.normal(-0.5, 0.5, n))
        kbt = np.clip(np.where(early, rng.normal(0.35, 0.2, n), rng.normal(0.12, 0.12, n)), 0, 1)
    g_r = np.where(early, rng.normal(0.75, 0.04, n), rng.normal(0.5, 0.1, n))
    ml = -0.3 + 1.1 * g_r + rng.normal(0, 0.1, n)
    a_r = rng.uniform(0, 0.3, n)
    return pd.DataFrame({"galaxy_id": np.arange(n) // 3, "galaxy_type": early.astype(int),
                         "sfr": sfr, "kinetic_bt": kbt, "g_r": g_r + 0.2 * a_r,
                         "A_r": a_r, "A_g": 1.2 * a_r, "log_ml_r": ml + 0.4 * a_r,
                         "log_ml_r_2rhalf": ml + 0.4 * a_r - 0.02, "g_r_nodust": g_r,
                         "log_ml_r_nodust": ml, "log_ml_r_2rhalf_nodust": ml - 0.02,
                         "log_mstar_total": rng.uniform(10, 11.5, n)})


def test_a_lookup_is_flagged_and_an_overlap_is_not():
    rng = np.random.default_rng(0)
    bad = shortcut_table(_table(rng, 900, separated=True)).set_index("check")
    good = shortcut_table(_table(rng, 900, separated=False)).set_index("check")
    tree = "depth-2 tree accuracy, type from (SFR, kinetic B/T), grouped CV"
    sfr0 = "early types with SFR > 0 over the last Gyr (fraction)"
    assert bad.loc[tree, "value"] > 0.99 and not bad.loc[tree, "met"]
    assert bad.loc[sfr0, "value"] == 0 and not bad.loc[sfr0, "met"]
    assert bad.loc["early types inside the late types' 5-95 % kinetic B/T range", "value"] == 0
    assert good.loc[tree, "value"] < 0.95 and good.loc[tree, "met"]
    assert good.loc[sfr0, "value"] == pytest.approx(0.3, abs=0.06)
    # red sequence: not judged without a reference, judged against one
    rows = good[good.index.str.startswith("median g-r of early types")]
    assert len(rows) >= 4 and rows["met"].isna().all()
    ref = shortcut_table(_table(rng, 900, separated=False),
                         red_sequence_reference=lambda lm: 0.75 + 0 * lm).set_index("check")
    judged = ref[ref.index.str.startswith("median g-r of early types minus SDSS")]
    assert len(judged) >= 4 and judged["met"].all()
    off = shortcut_table(_table(rng, 900, separated=False),
                         red_sequence_reference=lambda lm: 0.65 + 0 * lm).set_index("check")
    assert not off[off.index.str.startswith("median g-r of early types minus")]["met"].any()


def test_dust_free_columns_and_scatter():
    rng = np.random.default_rng(1)
    t = _table(rng, 3000, separated=False)
    np.testing.assert_array_equal(dust_free_colour(t), t["g_r_nodust"])
    np.testing.assert_array_equal(dust_free_log_ml_r(t, "2rhalf"), t["log_ml_r_2rhalf_nodust"])
    with pytest.raises(ValueError, match="aperture"):
        dust_free_log_ml_r(t, "3rhalf")
    # the synthetic M*/L has 0.1 dex scatter about its colour line without dust
    assert fit_residual_scatter(dust_free_colour(t), dust_free_log_ml_r(t)) == pytest.approx(
        0.1, abs=0.01)
    table = shortcut_table(t).set_index("check")
    row = "scatter of log M*/L_r (2 R_half) about a line in g-r, dust-free, early types [dex]"
    assert table.loc[row, "value"] == pytest.approx(0.1, abs=0.015) and table.loc[row, "met"]
    # ~1500 early rows, drawn independently (also within a galaxy): a Gaussian scatter's
    # standard error is 0.1 / sqrt(2 x 1500) ~ 0.0018
    n_early = int(np.sum(t["galaxy_type"] == 1))
    assert table.loc[row, "uncertainty"] == pytest.approx(0.1 / np.sqrt(2 * n_early), rel=0.3)
    x = np.linspace(0, 1, 50)
    assert fit_residual_scatter(x, 2 * x + 1) == pytest.approx(0.0, abs=1e-12)
    assert overlap_fractions(np.zeros(10), np.ones(10)) == (0.0, 0.0)
    rs = red_sequence_medians(t)
    assert len(rs) >= 2
    assert np.allclose(rs["g_r_dust_free"], 0.75, atol=0.02)
    off = red_sequence_medians(t, reference=lambda lm: 0.70 + 0.0 * lm)
    np.testing.assert_allclose(off["offset_dust_free"], off["g_r_dust_free"] - 0.70)
    np.testing.assert_allclose(off["offset_attenuated"], off["g_r_attenuated"] - 0.70)


def test_galaxy_bootstrap_resamples_whole_galaxies():
    """Rows of one galaxy move together: with identical rows per galaxy the bootstrap error of
    a mean is that of the galaxies, not sqrt(rows per galaxy) smaller."""
    rng = np.random.default_rng(3)
    per_galaxy = rng.normal(0, 1, 400)
    groups = np.repeat(np.arange(400), 5)
    err = galaxy_bootstrap_std(np.mean, groups, np.repeat(per_galaxy, 5), n_boot=400)
    assert err == pytest.approx(1 / np.sqrt(400), rel=0.15)
    # the same seed gives the same number
    assert err == galaxy_bootstrap_std(np.mean, groups, np.repeat(per_galaxy, 5), n_boot=400)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="kinetic_bt"):
        shortcut_table(pd.DataFrame({"galaxy_id": [0], "galaxy_type": [1]}))
    old = _table(np.random.default_rng(0), 30, separated=True).drop(columns=["g_r_nodust"])
    with pytest.raises(ValueError, match="g_r_nodust.*rebuild"):
        shortcut_table(old)


def test_metallicity_uses_the_bc03_solar_scale():
    # Gallazzi+2005 log Z/Zsun = 0 is Z = 0.02 (BC03), not the TNG 0.0127
    rng = np.random.default_rng(2)
    hist = sp.draw_history(rng, False, 3e10, 1e9, 0.0)
    _, z = sp.disc_populations(rng, np.full(20000, 1.678), 1.0, 3e10, 0.0, hist)
    assert np.median(z) == pytest.approx(0.02, rel=0.02)


def test_residual_star_formation_follows_the_molecular_gas():
    rng = np.random.default_rng(3)
    m_star, m_h2 = 5e10, 10**-2.5 * 5e10
    hist = sp.draw_history(rng, True, m_star, m_h2, 0.3)
    assert hist.quench_gyr >= sp.QUENCH_LOOKBACK_GYR[0]
    expected = m_h2 / (sp.ETG_H2_DEPLETION_GYR * 1e9) * hist.quench_gyr * 1e9 / m_star
    assert hist.residual_fraction == pytest.approx(expected)
    dry = sp.draw_history(rng, True, m_star, 0.0, 0.3)
    assert dry.residual_fraction == 0.0
    fixed = sp.GalaxyHistory(True, 1.0, 12.5, 11.0, quench_gyr=4.0, quench_tau_gyr=0.1,
                             burst_log_factor=np.zeros(70), residual_fraction=0.01)
    age = sp.sample_ages(rng, 2.0, 12.5, 200000, fixed)
    # residual stars: uniform since quenching; the quench's own tail is gone after ~1 Gyr
    assert np.mean(age < 3.0) == pytest.approx(0.01 * 3.0 / 4.0, abs=0.001)
    fixed.residual_fraction = 0.0
    age_dry = sp.sample_ages(rng, 2.0, 12.5, 200000, fixed)
    assert np.mean(age_dry < 3.0) < 1e-4 and np.mean(age_dry > 4.0) > 0.99


def test_burstiness_makes_histories_stochastic():
    rng = np.random.default_rng(4)
    edges = np.arange(0, 11, 0.2)

    def recent_sfr_scatter(b):
        vals = []
        for _ in range(40):
            hist = sp.draw_history(rng, False, 3e10, 1e9, b)
            hist.tau_factor = 1.0
            age = sp.sample_ages(rng, 5.0, 11.0, 20000, hist)
            vals.append(np.log10(np.mean(age < 0.2) + 1e-6))
        return np.std(vals)

    quiet, bursty = recent_sfr_scatter(0.0), recent_sfr_scatter(0.6)
    assert quiet < 0.05 and bursty > 0.3
    assert len(edges) > 10
    with pytest.raises(ValueError, match="sfh_burstiness"):
        sp.draw_history(rng, False, 3e10, 1e9, -1.0)


def test_age_metallicity_table_reads_the_diagnostics_and_gallazzi():
    from analysis_lib.sources.mock import relations as rel

    rng = np.random.default_rng(5)
    n_gal = 60
    age = rng.uniform(9.3, 10.0, n_gal)
    log_z = rng.uniform(-0.3, 0.2, n_gal)  # log Z / Zsun on the BC03 scale
    t = pd.DataFrame({"galaxy_id": np.repeat(np.arange(n_gal), 3),
                      "galaxy_type": np.repeat(np.arange(n_gal) % 2, 3),
                      "log_mstar_total": 10.6,
                      "log_age_r": np.repeat(age, 3) + rng.normal(0, 0.01, 3 * n_gal),
                      "log_z_r": np.repeat(log_z + np.log10(0.02), 3)})
    table = age_metallicity_table(t)
    assert len(table) == 1 and table["n"].iloc[0] == n_gal  # one value per galaxy
    row = table.iloc[0]
    assert row["mock_age_p50"] == pytest.approx(np.median(age), abs=0.02)
    assert row["mock_z_p16"] == pytest.approx(np.percentile(log_z, 16), abs=1e-9)
    p16, p50, p84 = rel.gallazzi05_log_age(10**10.51)
    assert (p16, p50, p84) == (pytest.approx(9.34), pytest.approx(9.73), pytest.approx(9.98))
    assert row["g05_age_p50"] == pytest.approx(float(rel.gallazzi05_log_age(10**10.6)[1]))
    assert row["g05_z_p50"] == pytest.approx(float(rel.gallazzi05_logz_split(10**10.6)[0]))
    assert abs(row["early_age_z_correlation"]) < 0.5  # drawn independently
    with pytest.raises(ValueError, match="log_age_r"):
        age_metallicity_table(t.drop(columns=["log_age_r"]))
