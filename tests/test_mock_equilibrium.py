"""Mock discs are in equilibrium: orbits in the fixed total potential keep thickness and radii.

The criterion of issue 12: disc thickness (rms height of the disc particles in annuli at
1-5 R_d, Eulerian) and Lagrangian radii (radii of fixed enclosed disc mass) drift by < 5 % over
three orbits. The book's measurement is `equilibrium.disc_equilibrium` with its defaults
(600 particles per guiding-radius bin, three orbits of the outermost annulus, 50 steps per
orbit at 1 R_d and finer block steps for the centre, ~30 s per galaxy); here a reduced version
(150 particles per bin, ONE orbit) keeps the module to ~15 s.
Three galaxies: a typical disc (B/T < 0.15, median R_d), a compact disc (smallest R_d) and a
bulge + disc galaxy (0.4 < B/T < 0.7).

Measured state (helper H8, vertical DF set-up of dynamics.sample_disc_particles; numbers with
their Poisson-bootstrap sampling error, equilibrium 'thickness_drift_err'): Lagrangian radii
hold to < 3 % in all three. With 150 particles per guiding-radius bin the rms height of one
annulus has a sampling error of 3-10 %, as large as the criterion, so this reduced check only
catches gross heating (the test with v_z x 1.5 below). Here: typical -2.8 .. +3.7 % (passes);
bulge_disc +6.7 +- 3.1 % at 1 R_d, +5.8 +- 5.8 % at 3 R_d, +5.9 +- 4.4 % at 4 R_d; compact (the
hottest disc of the sample: sigma_R ~ v_c at 0.5-1 R_d) +8 .. +16 % +- 5-10 % at 2-5 R_d. Those
two stay xfail(strict=True): they would XPASS (and alert) once they hold. The full measurement
(finer particle mass, 1000 per bin, three orbits) is in the report of helper H8.
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

REDUCED = {"n_per_bin": 150, "n_orbits": 1.0}


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


@pytest.mark.parametrize("name", [
    "typical",
    pytest.param("compact", marks=pytest.mark.xfail(
        strict=True, reason="hottest disc (sigma_R ~ v_c inside 1 R_d): +8..16 % at 2-5 R_d "
                            "(sampling error 5-10 %)")),
    pytest.param("bulge_disc", marks=pytest.mark.xfail(
        strict=True, reason="+6.7 +- 3.1 % at 1 R_d, ~6 +- 5 % at 3-4 R_d")),
])
def test_thickness_holds_over_one_orbit(drifts, name):
    t = drifts[name]
    assert np.all(np.abs(t["thickness_drift"]) < 0.05), t


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
