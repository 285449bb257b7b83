"""A cutout with the structure of a real web-API cutout, checked against units typed here from the
TNG data specifications (not from the reader's own table), and a Potential-less Hernquist sphere.

The file below is written directly in CODE units (what the service sends), and the expected
physical values come from DOC_UNITS, a separate table transcribed from the TNG documentation
(www.tng-project.org/data/docs/specifications, Snapshots: field units): a shared
misunderstanding between the reader and tests/tng_fixtures.py (which goes the other way, from
physical to code units) cannot pass both.

Structure mirrored (real cutouts, as documented and as reported in issue 16):
- Header: Time, Redshift, HubbleParam, BoxSize, MassTable, NumPart_ThisFile, Omega0, OmegaLambda,
  OmegaBaryon, unit attributes and flags; NO NumPart_Total / NumPart_Total_HighWord (a cutout is
  not a snapshot chunk; the exact attribute list of a downloaded cutout is unverified here).
- Coordinates float64 (N, 3); Velocities, Masses, Potential, GFM_* float32; GFM_StellarPhotometrics
  float32 (N, 8); ParticleIDs uint64; PartType1 without Masses.
- Dataset attributes a_scaling, h_scaling, length_scaling, mass_scaling, velocity_scaling, to_cgs.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_lib.observe.targets import spherical_targets
from analysis_lib.sources.tng import TngCutoutSource
from analysis_lib.sources.tng.convert import EXPECTED_SCALING
from analysis_lib.sources.tng.cutouts import cutout_path
from analysis_lib.sources.tng.local import TngLocalSource, total_particle_counts

from .tng_fixtures import make_truth, write_fake_simulation

# Units from the TNG specifications page, typed independently: field -> (unit as documented,
# a exponent, h exponent, cgs factor of the unit without a and h, conversion to physical).
DOC_UNITS = {
    "Coordinates": ("ckpc/h", 1.0, -1.0, 3.085678e21, lambda x, a, h: x * a / h),  # kpc
    "Velocities": ("km sqrt(a)/s", 0.5, 0.0, 1.0e5, lambda v, a, h: v * np.sqrt(a)),  # km/s
    "Masses": ("1e10 Msun/h", 0.0, -1.0, 1.989e43, lambda m, a, h: m * 1e10 / h),  # Msun
    "GFM_InitialMass": ("1e10 Msun/h", 0.0, -1.0, 1.989e43, lambda m, a, h: m * 1e10 / h),
    "Potential": ("(km/s)^2/a", -1.0, 0.0, 1.0e10, lambda p, a, h: p / a),  # (km/s)^2
}
REAL_HEADER_KEYS = ("BoxSize", "Composition_vector_length", "Flag_Cooling",
                    "Flag_DoublePrecision", "Flag_Feedback", "Flag_Metals", "Flag_Sfr",
                    "Flag_StellarAge", "HubbleParam", "MassTable", "NumFilesPerSnapshot",
                    "NumPart_ThisFile", "Omega0", "OmegaBaryon", "OmegaLambda", "Redshift",
                    "Time", "UnitLength_in_cm", "UnitMass_in_g", "UnitVelocity_in_cm_per_s")
A_SNAP, H_SNAP, BOX = 0.9, 0.6774, 75000.0


def _dataset(group, name, data, dtype):
    ds = group.create_dataset(name, data=np.asarray(data, dtype=dtype))
    if name in DOC_UNITS:
        _, a_exp, h_exp, cgs, _ = DOC_UNITS[name]
        ds.attrs.update({"a_scaling": a_exp, "h_scaling": h_exp, "to_cgs": cgs,
                         "length_scaling": 1.0, "mass_scaling": 0.0, "velocity_scaling": 0.0})
    return ds


def write_real_cutout(path, stars: dict, dm_coords=None, m_dm_code=5.0e-4, a=A_SNAP,
                      gas: dict | None = None):
    """A cutout laid out as the service sends one, from arrays already in code units."""
    n4 = len(stars["Masses"])
    n1 = 0 if dm_coords is None else len(dm_coords)
    n0 = 0 if gas is None else len(gas["Masses"])
    with h5py.File(path, "w") as fh:
        hdr = fh.create_group("Header")
        hdr.attrs.update({
            "BoxSize": BOX, "Composition_vector_length": 0, "Flag_Cooling": 1,
            "Flag_DoublePrecision": 1, "Flag_Feedback": 1, "Flag_Metals": 10, "Flag_Sfr": 1,
            "Flag_StellarAge": 1, "HubbleParam": H_SNAP,
            "MassTable": np.array([0.0, m_dm_code, 0.0, 0.0, 0.0, 0.0]),
            "NumFilesPerSnapshot": 1,
            "NumPart_ThisFile": np.array([n0, n1, 0, 0, n4, 0], dtype=np.int32),
            "Omega0": 0.3089, "OmegaBaryon": 0.0486, "OmegaLambda": 0.6911,
            "Redshift": 1.0 / a - 1.0, "Time": a, "UnitLength_in_cm": 3.085678e21,
            "UnitMass_in_g": 1.989e43, "UnitVelocity_in_cm_per_s": 1.0e5})
        g4 = fh.create_group("PartType4")
        for name, dtype in (("Coordinates", np.float64), ("Velocities", np.float32),
                            ("Masses", np.float32), ("GFM_InitialMass", np.float32),
                            ("GFM_StellarFormationTime", np.float32),
                            ("GFM_Metallicity", np.float32),
                            ("GFM_StellarPhotometrics", np.float32), ("Potential", np.float32),
                            ("ParticleIDs", np.uint64)):
            if name in stars:
                _dataset(g4, name, stars[name], dtype)
        if dm_coords is not None:
            g1 = fh.create_group("PartType1")
            _dataset(g1, "Coordinates", dm_coords, np.float64)
            _dataset(g1, "ParticleIDs", np.arange(n1), np.uint64)
        if gas is not None:
            g0 = fh.create_group("PartType0")
            for name, dtype in (("Coordinates", np.float64), ("Masses", np.float32),
                                ("GFM_Metallicity", np.float32),
                                ("StarFormationRate", np.float32)):
                _dataset(g0, name, gas[name], dtype)
    return path


def _code_stars(rng, n, centre, spread=20.0):
    return {
        "Coordinates": np.mod(centre + rng.normal(0.0, spread, (n, 3)), BOX),
        "Velocities": rng.normal(0.0, 150.0, (n, 3)),
        "Masses": rng.uniform(5e-5, 2e-4, n),
        "GFM_InitialMass": rng.uniform(2e-4, 3e-4, n),
        "GFM_StellarFormationTime": np.r_[rng.uniform(0.2, 0.85, n - 3), [0.0, -0.3, -0.01]],
        "GFM_Metallicity": rng.uniform(0.001, 0.04, n),
        "GFM_StellarPhotometrics": rng.uniform(-8.0, 2.0, (n, 8)),
        "Potential": -rng.uniform(1e5, 3e5, n),
        "ParticleIDs": np.arange(n),
    }


def test_reader_table_agrees_with_the_documented_units():
    for name, (_unit, a_exp, h_exp, cgs, _) in DOC_UNITS.items():
        assert EXPECTED_SCALING[name] == pytest.approx((a_exp, h_exp, cgs), rel=1e-6), name


def test_real_structure_cutout_reads_with_documented_units(tmp_path):
    rng = np.random.default_rng(5)
    centre = np.array([BOX - 4.0, 6.0, 30000.0])  # straddles two faces of the box
    stars = _code_stars(rng, 300, centre)
    dm = np.mod(centre + rng.normal(0.0, 60.0, (500, 3)), BOX)
    gas = {"Coordinates": np.mod(centre + rng.normal(0.0, 30.0, (80, 3)), BOX),
           "Masses": rng.uniform(1e-4, 3e-4, 80), "GFM_Metallicity": rng.uniform(0, 0.03, 80),
           "StarFormationRate": rng.uniform(0, 0.1, 80)}
    path = write_real_cutout(cutout_path(tmp_path, 42), stars, dm, gas=gas)
    with h5py.File(path, "r") as fh:  # the structure is what the docstring says
        assert set(fh["Header"].attrs) == set(REAL_HEADER_KEYS)
        assert "NumPart_Total" not in fh["Header"].attrs
        assert fh["PartType4/Coordinates"].dtype == np.float64
        assert fh["PartType4/Masses"].dtype == np.float32
        assert "Masses" not in fh["PartType1"] and "Velocities" not in fh["PartType0"]
    gal = TngCutoutSource(tmp_path).load(42)
    a, h = A_SNAP, H_SNAP
    star = stars["GFM_StellarFormationTime"] > 0
    imin = np.flatnonzero(star)[np.argmin(stars["Potential"][star])]
    to_kpc, to_kms = DOC_UNITS["Coordinates"][4], DOC_UNITS["Velocities"][4]
    to_msun, to_pot = DOC_UNITS["Masses"][4], DOC_UNITS["Potential"][4]
    d = stars["Coordinates"][star] - stars["Coordinates"][imin]
    d -= BOX * np.round(d / BOX)  # periodic box, as documented
    np.testing.assert_allclose(gal.stars.pos, to_kpc(d, a, h), atol=1e-6)
    np.testing.assert_allclose(gal.stars.mass,
                               to_msun(stars["Masses"][star].astype(np.float32), a, h),
                               rtol=1e-6)
    np.testing.assert_allclose(gal.stars.potential,
                               to_pot(stars["Potential"][star].astype(np.float32), a, h),
                               rtol=1e-6)
    v = to_kms(stars["Velocities"][star].astype(np.float32), a, h)
    assert np.ptp(gal.stars.vel - v, axis=0) == pytest.approx(0.0, abs=1e-3)  # v - v_sys
    assert len(gal.stars) == 297 and gal.meta["n_wind_cells"] == 3  # a <= 0: wind, not stars
    np.testing.assert_allclose(gal.dm.mass, 5.0e-4 * 1e10 / h)  # MassTable[1]
    assert np.isnan(gal.gas.vel[:80]).all()  # gas velocities not downloaded
    assert gal.meta["centre_method"] == "potential minimum of the stars"


def test_snapshot_totals_use_the_high_word(tmp_path):
    # TNG300-1: 2500^3 = 15 625 000 000 dark-matter particles = 3 * 2^32 + 2 740 098 112
    attrs = {"NumPart_Total": np.array([0, 2740098112, 0, 0, 0, 0], dtype=np.uint32),
             "NumPart_Total_HighWord": np.array([0, 3, 0, 0, 0, 0], dtype=np.uint32)}
    assert total_particle_counts(attrs)[1] == 2500**3
    assert total_particle_counts({"NumPart_Total": attrs["NumPart_Total"]})[1] == 2740098112
    # a snapshot whose DM total has a zero low word is still read (the high word says 2^32)
    truth = make_truth(seed=31)
    base = write_fake_simulation(tmp_path, [truth])
    with h5py.File(f"{base}/snapdir_099/snap_099.0.hdf5", "a") as fh:
        low = fh["Header"].attrs["NumPart_Total"].astype(np.uint32)
        low[1] = 0
        fh["Header"].attrs["NumPart_Total"] = low
        fh["Header"].attrs["NumPart_Total_HighWord"] = np.array([0, 1, 0, 0, 0, 0], np.uint32)
    src = TngLocalSource(base, subhalo_ids=[0], snap=99)
    assert src.n_particles_total[1] == 2**32
    gal = src.load(0)
    assert gal.dm is not None and len(gal.dm.mass) == len(truth["dm"]["pos"])


# -- a Potential-less cutout of a known sphere -------------------------------------------------
def _hernquist_radii(n, a, r_max):
    """Stratified radii of a Hernquist sphere truncated at r_max: M(<r) = M r^2 / (r + a)^2."""
    f_max = r_max**2 / (r_max + a) ** 2
    q = np.sqrt((np.arange(n) + 0.5) / n * f_max)
    return a * q / (1.0 - q), f_max


def _hernquist_mass(r, m, a):
    return m * r**2 / (r + a) ** 2


def test_potential_less_hernquist_sphere_is_centred_by_the_shrinking_sphere(tmp_path):
    rng = np.random.default_rng(16)
    a, h = A_SNAP, H_SNAP
    m_star, a_star, n_star = 4.0e10, 2.0, 20000  # Msun, kpc
    m_dm, a_dm, n_dm = 8.0e11, 25.0, 20000
    centre = np.array([BOX - 3.0, 2.0, 41000.0])  # ckpc/h, wraps in x

    def directions(n):
        u = rng.normal(size=(n, 3))
        return u / np.linalg.norm(u, axis=1)[:, None]

    r_s, f_s = _hernquist_radii(n_star, a_star, 100.0)
    r_d, f_d = _hernquist_radii(n_dm, a_dm, 300.0)
    pos_s = directions(n_star) * r_s[:, None]
    # a compact satellite at 40 kpc with 10 % of the stars' mass: it drags a plain centre of
    # mass ~4 kpc off, and must not move the shrinking-sphere centre
    n_sat = 2000
    pos_sat = np.array([40.0, 0.0, 0.0]) + rng.normal(0.0, 0.5, (n_sat, 3))
    m_particle = m_star * f_s / n_star
    stars_phys = np.vstack([pos_s, pos_sat])
    n = len(stars_phys)
    stars = _code_stars(rng, n, centre)
    stars["Coordinates"] = np.mod(centre + stars_phys * h / a, BOX)
    stars["Masses"] = np.full(n, m_particle * h / 1e10)
    stars["GFM_StellarFormationTime"] = rng.uniform(0.2, 0.6, n)  # all stars, no wind
    del stars["Potential"]
    m_dm_particle = m_dm * f_d / n_dm
    dm = np.mod(centre + directions(n_dm) * r_d[:, None] * h / a, BOX)
    path = write_real_cutout(cutout_path(tmp_path, 7), stars, dm,
                             m_dm_code=m_dm_particle * h / 1e10)
    with h5py.File(path, "r") as fh:
        assert "Potential" not in fh["PartType4"]
    gal = TngCutoutSource(tmp_path).load(7)  # no Potential, no subhalos.json
    assert gal.meta["centre_method"].startswith("shrinking sphere")
    com_offset = np.linalg.norm(
        np.average(gal.stars.pos, axis=0, weights=gal.stars.mass))  # the plain COM is off ...
    assert com_offset > 2.0
    # ... the shrinking-sphere centre is not: the sphere's own particles are symmetric about it
    core = np.linalg.norm(gal.stars.pos[:n_star], axis=1)
    np.testing.assert_allclose(np.sort(core), np.sort(r_s), atol=0.05)
    targets = spherical_targets(gal, gal.half_mass_radius())
    for suffix, radius in (("", gal.half_mass_radius()), ("_2rhalf", 2 * gal.half_mass_radius())):
        want_s = _hernquist_mass(radius, m_star, a_star) + 0.0  # satellite is outside 2 R_half
        want_d = _hernquist_mass(radius, m_dm, a_dm)
        assert targets[f"log_mstar{suffix}"] == pytest.approx(np.log10(want_s), abs=0.01)
        assert targets[f"log_mdm{suffix}"] == pytest.approx(np.log10(want_d), abs=0.01)
        assert targets[f"log_mtot{suffix}"] == pytest.approx(np.log10(want_s + want_d), abs=0.01)
    for r in (1.0, 3.0, 10.0):
        assert np.log10(gal.enclosed_mass("total", r)) == pytest.approx(
            np.log10(_hernquist_mass(r, m_star, a_star) + _hernquist_mass(r, m_dm, a_dm)),
            abs=0.01)


def test_real_structure_cutout_goes_through_the_observation(tmp_path):
    """Gas without velocities, DM without velocities or masses: the observation needs neither."""
    from analysis_lib.config import load_config
    from analysis_lib.observe import observe_galaxy

    rng = np.random.default_rng(8)
    centre = np.array([100.0, 200.0, 300.0])
    stars = _code_stars(rng, 400, centre, spread=3.0)
    gas = {"Coordinates": np.mod(centre + rng.normal(0.0, 4.0, (100, 3)), BOX),
           "Masses": rng.uniform(1e-4, 3e-4, 100), "GFM_Metallicity": rng.uniform(0, 0.03, 100),
           "StarFormationRate": rng.uniform(0, 0.1, 100)}
    write_real_cutout(cutout_path(tmp_path, 3), stars,
                      np.mod(centre + rng.normal(0.0, 30.0, (600, 3)), BOX), gas=gas)
    cfg = load_config("smoke", {"observe.image_size": 30, "observe.image_sizes": [30]})
    recs = observe_galaxy(TngCutoutSource(tmp_path, cfg).load(3), cfg)
    assert len(recs) == 3
    for rec in recs:
        assert np.isfinite([rec["log_mstar"], rec["log_mtot"], rec["M_r"], rec["g_r"]]).all()
        assert np.isfinite(rec["vel_map"]).any()
