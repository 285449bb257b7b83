"""The coverage check (issue 13) and the same-galaxy-per-instrument figure."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from analysis_lib.observe.coverage_check import (
    build_pair,
    coverage_check,
    coverage_ratio,
    scatter_reduction,
)

matplotlib.use("Agg")


def test_scatter_reduction_sees_information_in_coverage():
    rng = np.random.default_rng(0)
    m_r = rng.uniform(-23, -19, 400)
    extra = rng.normal(0, 0.2, 400)  # what M_r misses about M*
    logm = 10 - 0.4 * (m_r + 21) + extra
    informative = pd.DataFrame({"M_r": m_r, "log_mstar": logm,
                                "coverage": 300 + 500 * extra + rng.normal(0, 5, 400)})
    assert scatter_reduction(informative)["scatter_reduction"] > 0.5
    blind = informative.assign(coverage=rng.normal(300, 30, 400))
    out = scatter_reduction(blind)
    assert 0 <= out["scatter_reduction"] < 0.02 and out["rows"] == 400
    assert out["rms_lum_dex"] == pytest.approx(0.2, rel=0.1)


def test_coverage_ratio_matches_rows():
    fine = pd.DataFrame({"galaxy_id": [1, 1, 2], "projection": [0, 1, 0],
                         "coverage": [100, 90, 0], "M_r": -20.0, "log_mstar": 10.0})
    coarse = pd.DataFrame({"galaxy_id": [1, 1, 3], "projection": [0, 1, 0],
                           "coverage": [50, 90, 10], "M_r": -20.0, "log_mstar": 10.0})
    both = coverage_ratio(fine, coarse)
    assert list(both["ratio"]) == [2.0, 1.0]


def test_coverage_check_end_to_end(tmp_path):
    """Tiny run of the issue's measurement (the real one: 80 galaxies, see the module)."""
    fine, coarse = build_pair(tmp_path, n_galaxies=3, extra=["observe.image_size=30",
                                                              "observe.image_sizes=[30]",
                                                              "data.projections=[x]"])
    out = coverage_check(fine, coarse)
    assert out["rows_matched"] >= 2
    assert out["instrument"] == "manga_like"
    assert out["star_particle_mass_fine"] == 5e6 and out["star_particle_mass_coarse"] == 2e7
    assert 0.5 < out["median_ratio"] < 2.0


def test_same_galaxy_under_each_instrument():
    from analysis_lib.config import load_config
    from analysis_lib.observe.analytic import cold_disc_galaxy
    from analysis_lib.observe.showcase import instrument_panels, plot_instruments

    cfg = load_config("smoke", {"observe.image_size": 30, "observe.image_sizes": [30],
                                "observe.dust": False})
    g = cold_disc_galaxy(8000, seed=2)
    recs = instrument_panels(g, cfg, "x")
    assert [r["instrument"] for r in recs] == ["ideal", "manga_like"]
    assert all(r["projection"] == 0 for r in recs)
    fig = plot_instruments(recs, source="analytic cold disc")
    axes = fig.get_axes()
    assert "manga_like" in " ".join(a.get_title() for a in axes)
    assert all(a.get_xlabel() for a in axes if a.get_title())
