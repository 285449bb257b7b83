"""The paper's selection on TNG50-1 and TNG300-1 fixtures: their boxes, particle masses and h."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_lib.sources.tng import TngLocalSource
from analysis_lib.sources.tng.selection import (
    SIMULATIONS,
    catalogue_mass_limits,
    check_simulation_record,
    simulation_facts,
)

from .tng_fixtures import H, make_truth, write_fake_simulation

CFG = {"data": {"min_mstar_30kpc": 1e10, "max_halo_mass": 1e14}}


def test_facts_follow_nelson_2019_table_1():
    # Nelson et al. 2019 Table 1: m_DM 4.5e5 / 7.5e6 / 5.9e7 Msun; L 35 / 75 / 205 Mpc/h
    assert [SIMULATIONS[n].box_ckpc_h for n in ("TNG50-1", "TNG100-1", "TNG300-1")] == \
        [35000.0, 75000.0, 205000.0]
    # the API's mass_dm (1e10 Msun/h) for TNG100-1 is 5.06e-4: same within Table 1's rounding
    assert SIMULATIONS["TNG100-1"].mass_dm_code == pytest.approx(5.06e-4, rel=0.02)
    assert SIMULATIONS["TNG300-1"].n_dm_side ** 3 > 2**32  # needs the header's high word
    # a galaxy at the paper's cut has ~900 star particles in TNG300-1, ~1e5 in TNG50-1
    assert SIMULATIONS["TNG300-1"].star_particles_at(1e10) == pytest.approx(909, rel=0.01)
    assert SIMULATIONS["TNG50-1"].star_particles_at(1e10) > 1e5
    with pytest.raises(ValueError, match="TNG75"):
        simulation_facts("TNG75")
    assert check_simulation_record("TNG300-1", 205000.0, 0.6774, 3.98e-3) == []
    assert check_simulation_record("TNG300-1", 75000.0, 0.6774, 3.98e-3) == \
        ["boxsize 75000 is not TNG300-1's 205000"]


@pytest.mark.parametrize("name", ["TNG50-1", "TNG300-1"])
def test_selection_and_units_in_each_box(tmp_path, name):
    facts = simulation_facts(name)
    box, m_dm = facts.box_ckpc_h, facts.mass_dm_code
    # same catalogue cuts in every run (same h): 1e10 Msun = 0.6774 in 1e10 Msun/h
    assert catalogue_mass_limits(CFG, facts.hubble) == pytest.approx((0.6774, 6774.0))
    edge = (box - 4.0, 3.0, box / 2)  # straddles this run's box edge, not TNG100's
    truths = [make_truth(seed=40, centre=edge),
              make_truth(seed=41, star_mass=1e6, centre=(box / 3, box / 3, box / 3)),
              make_truth(seed=42, centre=(10.0, box - 2.0, box - 6.0))]
    for t in truths:
        t["box"] = box
        t["dm"]["mass"] = np.full(len(t["dm"]["pos"]), m_dm * 1e10 / H)
    base = write_fake_simulation(tmp_path, truths)
    for path in (tmp_path / "output" / "snapdir_099").iterdir():
        with h5py.File(path, "a") as fh:  # this run's particle mass in the header
            fh["Header"].attrs["MassTable"] = np.array([0, m_dm, 0, 0, 0, 0], float)
    src = TngLocalSource(base, cfg=CFG, snap=99)
    assert src.header.box_size == box
    assert src.galaxy_ids() == [0, 2]  # subhalo 1 is below the stellar-mass cut
    for sid in (0, 2):
        gal = src.load(sid)
        np.testing.assert_allclose(gal.stars.pos, truths[sid]["stars"]["pos"], atol=1e-5)
        np.testing.assert_allclose(gal.dm.pos, truths[sid]["dm"]["pos"], atol=1e-5)
        assert np.abs(gal.dm.pos).max() < 500  # wrapped with this box, not 75000
        np.testing.assert_allclose(gal.dm.mass, facts.m_dm_msun, rtol=0.02)
        assert gal.meta["catalogue_check"]["status"] == "ok"
