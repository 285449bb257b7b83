"""The Eddington inversion reproduces the analytic isotropic Hernquist (1990) distribution."""

from __future__ import annotations

import numpy as np

from analysis_lib.sources.mock import dynamics
from analysis_lib.sources.mock.mass_model import NFW, Hernquist, SphericalModel
from analysis_lib.sources.mock.relations import G_KPC_KMS2_MSUN as G


def test_eddington_df_matches_hernquist_analytic():
    m, a = 5e10, 1.5
    h = Hernquist(m, a)
    no_halo = NFW(1.0, 10.0, 100.0, 0.0)
    model = SphericalModel({"bulge": h}, halo_tail=no_halo)
    q, f = dynamics.eddington_df(model, h.density)
    e = q * a / (G * m)
    vg = np.sqrt(G * m / a)
    # Hernquist 1990, eq. 17
    exact = (m / (a**3 * vg**3) / (8 * np.sqrt(2) * np.pi**3) / (1 - e) ** 2.5
             * (3 * np.arcsin(np.sqrt(e)) + np.sqrt(e * (1 - e)) * (1 - 2 * e)
                * (8 * e**2 - 8 * e - 3)))
    sel = (e > 1e-2) & (e < 0.99)  # r from ~a/100 to ~100 a, away from the grid edges
    np.testing.assert_allclose(f[sel], exact[sel], rtol=0.01)


def test_potential_of_a_hernquist_sphere_is_exact():
    h = Hernquist(1e11, 2.0)
    model = SphericalModel({"bulge": h}, halo_tail=NFW(1.0, 10.0, 100.0, 0.0))
    r = np.geomspace(0.01, 500, 25)
    np.testing.assert_allclose(model.potential(r), -G * h.mass / (r + h.a), rtol=2e-3)


def test_potential_of_an_nfw_halo_is_exact_and_contraction_conserves_mass():
    from analysis_lib.sources.mock.mass_model import contract_halo

    halo = NFW(1e12, 8.0, 200.0, 0.95)
    model = SphericalModel({"dm": halo}, halo_tail=halo)
    r = np.geomspace(0.05, 1000, 25)
    np.testing.assert_allclose(model.potential(r), halo.potential(r), rtol=2e-3)
    galaxy = Hernquist(5e10, 2.0)  # f = 0.05 of M200c
    contracted = contract_halo(NFW(1e12, 8.0, 200.0, 1.0), galaxy.enclosed_mass, galaxy.mass)
    # contraction moves dark mass inwards but keeps (1 - f) M200c inside r200
    np.testing.assert_allclose(contracted.enclosed_mass(np.array([200.0])), 0.95e12, rtol=0.02)
    assert contracted.enclosed_mass(np.array([2.0]))[0] > 1.3 * halo.enclosed_mass(2.0)
