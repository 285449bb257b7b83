"""Mock galaxies are in equilibrium: orbits in the fixed total potential keep their structure.

Three galaxies (a pure or near-pure spheroid, a disc, and a mixed bulge + disc) are integrated
for 6 dynamical times (t_dyn = sqrt(3 pi / 16 G rho_bar) inside the 3D half-mass radius); their
10/50/90 % Lagrangian radii and velocity dispersion / rms speed in three radial bins must hold
to 5 %. A subsample of 10000 particles keeps the sampling noise of those radii near 2 %.
Known limit, kept visible by a strict xfail below: compact, bulgeless, disc-dominated galaxies
have hot centres (sigma_R ~ v_c / 2, needed for vertical and Toomre stability), where the
epicyclic Gaussian velocities are not an exact equilibrium; hot inner orbits mix outwards and
the outer third's dispersion rises by 5-13 % in 6 t_dyn (Lagrangian radii still hold to ~3 %).
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.sources.mock import MockSource
from analysis_lib.sources.mock.validation import equilibrium_drift


@pytest.fixture(scope="module")
def source():
    return MockSource(load_config("smoke", {"data.n_galaxies": 80,
                                            "mock.star_particle_mass": 1.0e6}))


def _pick(pop, kind):
    if kind == "spheroid":
        return int(pop["bt"].idxmax())
    if kind == "disc":
        # a typical disc: the median scale length among nearly bulgeless late types
        late = pop[~pop["early"] & (pop["bt"] < 0.15)].sort_values("disc_rd_kpc")
        return int(late.index[len(late) // 2])
    mixed = pop[(pop["bt"] > 0.4) & (pop["bt"] < 0.75)]
    return int(mixed.index[0])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["spheroid", "disc", "mixed"])
def test_lagrangian_radii_and_dispersions_hold(source, kind):
    gid = _pick(source.population, kind)
    g = source.load(gid)
    out = equilibrium_drift(g, n_sub=10000, n_tdyn=6.0)
    assert out["n_tdyn"] >= 5
    for name in ("lagrangian_ratio", "sigma_ratio", "vrms_ratio"):
        np.testing.assert_allclose(out[name], 1.0, atol=0.05,
                                   err_msg=f"{kind} galaxy {gid}: {name} {out[name]}")


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="compact bulgeless Jeans discs relax in dispersion")
def test_compact_bulgeless_disc_dispersion_holds(source):
    pop = source.population
    late = pop[~pop["early"] & (pop["bt"] < 0.15)]
    g = source.load(int(late["disc_rd_kpc"].idxmin()))
    out = equilibrium_drift(g, n_sub=10000, n_tdyn=6.0)
    np.testing.assert_allclose(out["lagrangian_ratio"], 1.0, atol=0.05)  # these hold
    np.testing.assert_allclose(out["sigma_ratio"], 1.0, atol=0.05)  # this does not


def test_a_perturbed_galaxy_fails_the_check(source):
    # the check can fail: velocities scaled by 1.3 make the galaxy expand
    g = source.load(_pick(source.population, "disc"))
    g.stars.vel = g.stars.vel * 1.3
    out = equilibrium_drift(g, n_sub=2000, n_tdyn=3.0)
    assert np.max(np.abs(out["lagrangian_ratio"] - 1.0)) > 0.1
