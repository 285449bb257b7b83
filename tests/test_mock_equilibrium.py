"""Mock discs are in equilibrium: orbits in the fixed total potential keep thickness and radii.

The criterion of issue 12: disc thickness (rms height of the disc particles in annuli at
1-5 R_d, Eulerian) and Lagrangian radii (radii of fixed enclosed disc mass) drift by < 5 % over
three orbits. The book's measurement is `equilibrium.disc_equilibrium` with its defaults
(600 particles per guiding-radius bin, three orbits of the outermost annulus); here ONE orbit
with the same 600 particles per bin (~25 s for the module). Three galaxies: a typical disc
(B/T < 0.15, median R_d), a compact disc (smallest R_d, the hottest of the sample) and a
bulge + disc galaxy (0.4 < B/T < 0.7).

The rms height of one annulus has a sampling error of 2-5 % here (Poisson bootstrap,
'thickness_drift_err'), as large as the criterion, so the test asks for |drift| < 5 % + 2 errors
per annulus: it catches heating of ~10 % and more (the test with v_z x 1.5 below: +20 % or
more). Measured (phase-mixed discs, smoke population at 2e6 Msun, commit 4f0e711): typical
-4.2 .. +2.4 %, compact -0.9 .. +3.9 +- 4.7 %, bulge_disc -2.7 .. +5.3 +- 2.4 %; Lagrangian
radii within 2.4 %. Before the discs were phase-mixed
(dynamics.phase_mix_disc), the compact and bulge + disc galaxies failed (xfail): +8 .. +16 %
and up to +25 +- 6 %. The fine measurement (2e5 Msun, every disc star, three orbits: all
annuli of six discs within 2.5 %) is tools/measure_disc_drift.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.sources.mock import MockSource
from analysis_lib.sources.mock.equilibrium import (
    anisotropy_profile,
    disc_equilibrium,
    disc_summary,
)

REDUCED = {"n_per_bin": 600, "n_orbits": 1.0}


@pytest.fixture(scope="module")
def source():
    return MockSource(load_config("smoke", {"data.n_galaxies": 80,
                                            "mock.star_particle_mass": 2.0e6}))


def _typical_disc(pop) -> int:
    late = pop[~pop["early"] & (pop["bt"] < 0.15)].sort_values("disc_rd_kpc")
    return int(late.index[len(late) // 2])


def _compact_disc(pop) -> int:
    return int(pop[pop["bt"] < 0.2]["disc_rd_kpc"].idxmin())


def _bulge_disc(pop) -> int:
    sel = pop[(pop["bt"] > 0.4) & (pop["bt"] < 0.7)]
    return int((sel["m_star"] * (1 - sel["bt"])).idxmax())  # the most disc particles


@pytest.fixture(scope="module")
def drifts(source):
    pop = source.population
    return {name: disc_equilibrium(source.load(pick(pop)), **REDUCED)["table"]
            for name, pick in (("typical", _typical_disc), ("compact", _compact_disc),
                               ("bulge_disc", _bulge_disc))}


@pytest.mark.parametrize("name", ["typical", "compact", "bulge_disc"])
def test_lagrangian_radii_hold_over_one_orbit(drifts, name):
    t = drifts[name]
    assert list(t["r_over_rd"]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.all(np.abs(t["lagrangian_drift"]) < 0.05), t


@pytest.mark.parametrize("name", ["typical", "compact", "bulge_disc"])
def test_thickness_holds_over_one_orbit(drifts, name):
    t = drifts[name]
    assert np.all(np.abs(t["thickness_drift"]) < 0.05 + 2 * t["thickness_drift_err"]), t


def test_a_vertically_hot_disc_fails_the_check(source):
    g = source.load(_typical_disc(source.population))
    g.stars.vel = g.stars.vel.copy()
    rot = g.meta["orientation_matrix"]
    v = g.stars.vel @ rot
    v[:, 2] *= 1.5  # vertical kinetic energy x 2.25: the disc must thicken
    g.stars.vel = v @ rot.T
    t = disc_equilibrium(g, annuli_rd=(2.0,), n_per_bin=150, n_orbits=1.0)["table"]
    assert t["thickness_drift"].iloc[0] > 0.15
    assert t["thickness_drift"].iloc[0] > 3 * t["thickness_drift_err"].iloc[0] > 0  # significant


def test_disc_velocity_ellipsoid_as_observed(source):
    gals = [source.load(int(i)) for i in source.population.index[:12]]
    s = disc_summary(gals)
    assert len(s) >= 5
    assert 1.4 < s["sigma_r_over_sigma_z"].median() < 2.0
    assert (s["toomre_q_min"] >= 0.99).all()


def test_spheroid_anisotropy_follows_the_knob():
    base = {"data.n_galaxies": 40, "mock.star_particle_mass": 2.0e6}
    betas = {}
    for mode in ("isotropic", "radial"):
        src = MockSource(load_config("smoke", {**base, "mock.spheroid_anisotropy": mode}))
        gid = int(src.population["bt"].idxmax())
        prof = anisotropy_profile(src.load(gid))
        betas[mode] = float(np.interp(1.0, prof["r_over_rhalf"], prof["beta"]))
    assert abs(betas["isotropic"]) < 0.1
    assert 0.45 < betas["radial"] < 0.75  # OM with beta(r_half) = 0.6
