"""Local simulation reader (illustris_python) on fake simulation directories (one or several
chunks)."""

import h5py
import numpy as np
import pytest

from analysis_lib.particles import GalaxyInputError
from analysis_lib.sources.tng import TngCutoutSource, TngLocalSource, build_tng_source
from analysis_lib.sources.tng.cutouts import cutout_path

from .tng_fixtures import make_truth, write_cutout, write_fake_simulation

CFG = {"data": {"min_mstar_30kpc": 1e10, "max_halo_mass": 1e14}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    truths = [
        make_truth(seed=10),  # ~2e10 Msun of stars: selected
        make_truth(seed=11, star_mass=1e6, centre=(10.0, 74995.0, 3.0)),  # too small
        make_truth(seed=12, centre=(30000.0, 100.0, 74900.0)),  # SubhaloFlag 0
        make_truth(seed=13, young_fraction=0.0, centre=(5.0, 5.0, 5.0)),  # selected, early
    ]
    base = write_fake_simulation(root, truths, flags=[1, 1, 0, 1])
    return base, truths, root


def test_selection_uses_catalogue_cuts(sim):
    base, _, _ = sim
    assert TngLocalSource(base, cfg=CFG, snap=99).galaxy_ids() == [0, 3]
    loose = {"data": {"min_mstar_30kpc": 1e8, "max_halo_mass": 1e14}}
    assert TngLocalSource(base, cfg=loose, snap=99).galaxy_ids() == [0, 1, 3]


@pytest.mark.parametrize("sid", [0, 1, 3])
def test_local_galaxies_match_truth(sim, sid):
    base, truths, _ = sim
    t = truths[sid]
    gal = TngLocalSource(base, subhalo_ids=[sid], snap=99).load(sid)
    assert len(gal.stars) == len(t["stars"]["mass"])
    np.testing.assert_allclose(gal.stars.pos, t["stars"]["pos"], atol=1e-6)
    np.testing.assert_allclose(gal.stars.vel, t["stars"]["vel"], atol=2e-3)
    np.testing.assert_allclose(gal.stars.mass, t["stars"]["mass"], rtol=1e-6)
    np.testing.assert_allclose(gal.dm.pos, t["dm"]["pos"], atol=1e-6)
    assert len(gal.gas) == len(t["gas"]["mass"]) + len(t["wind"]["mass"])
    assert gal.meta["subhalo_id"] == sid and gal.meta["snapshot"] == 99
    assert gal.meta["galaxy_type"] == ("early" if sid == 3 else "late")


def test_local_equals_cutout_route(sim, tmp_path):
    base, truths, _ = sim
    write_cutout(cutout_path(tmp_path, 3), truths[3])
    a = TngCutoutSource(tmp_path).load(3)
    b = TngLocalSource(base, subhalo_ids=[3], snap=99).load(3)
    for x, y in ((a.stars.pos, b.stars.pos), (a.stars.vel, b.stars.vel),
                 (a.stars.age_gyr, b.stars.age_gyr), (a.stars.lum["r"], b.stars.lum["r"]),
                 (a.gas.pos, b.gas.pos), (a.dm.pos, b.dm.pos)):
        np.testing.assert_array_equal(x, y)


def test_catalogue_centre(sim):
    base, truths, _ = sim
    cfg = {**CFG, "tng": {"centre": "catalogue"}}
    gal = TngLocalSource(base, subhalo_ids=[0], cfg=cfg, snap=99).load(0)
    assert gal.meta["centre_method"] == "catalogue SubhaloPos"
    np.testing.assert_allclose(gal.stars.pos, truths[0]["stars"]["pos"], atol=1e-6)
    np.testing.assert_allclose(gal.stars.vel, truths[0]["stars"]["vel"], atol=2e-3)


def test_build_and_errors(sim, tmp_path):
    base, _, _ = sim
    src = build_tng_source({**CFG, "tng": {"snapshot": 99}}, base_path=base)
    assert isinstance(src, TngLocalSource) and src.galaxy_ids() == [0, 3]
    with pytest.raises(GalaxyInputError, match="subhalo 17"):
        TngLocalSource(base, subhalo_ids=[17], snap=99).load(17)
    with pytest.raises(GalaxyInputError, match="snapshot file not found"):
        TngLocalSource(str(tmp_path), subhalo_ids=[0], snap=99)
    with pytest.raises(ValueError, match="subhalo_ids or a cfg"):
        TngLocalSource(base, snap=99)


def test_multi_file_simulation_reads_the_same_galaxies(sim, tmp_path):
    """TNG snapshots come in hundreds of chunks and a subhalo can straddle two of them: the
    reader (illustris_python under our source) must give the same particles as one chunk."""
    _, truths, _ = sim
    base = write_fake_simulation(tmp_path, truths, flags=[1, 1, 0, 1], chunks=3)
    with h5py.File(tmp_path / "postprocessing" / "offsets" / "offsets_099.hdf5", "r") as f:
        starts, first = f["FileOffsets/SnapByType"][1:, 4], f["Subhalo/SnapByType"][:, 4]
    lengths = np.array([len(t["stars"]["mass"]) for t in truths])
    straddles = [(a < starts) & (starts < a + n) for a, n in zip(first, lengths, strict=True)]
    assert np.any(straddles)  # some subhalo's stars lie in two files
    assert TngLocalSource(base, cfg=CFG, snap=99).galaxy_ids() == [0, 3]
    one = TngLocalSource(sim[0], subhalo_ids=[0, 1, 3], snap=99)
    many = TngLocalSource(base, subhalo_ids=[0, 1, 3], snap=99)
    for sid in (0, 1, 3):
        a, b = one.load(sid), many.load(sid)
        for x, y in ((a.stars.pos, b.stars.pos), (a.stars.mass, b.stars.mass),
                     (a.gas.pos, b.gas.pos), (a.dm.pos, b.dm.pos)):
            np.testing.assert_array_equal(x, y)


def test_workers_do_not_rescan_the_group_catalogue(tmp_path, monkeypatch):
    """A build makes one source per worker and only the parent asks for galaxy_ids(): building
    the source must not scan the group catalogue, and a process scans it at most once."""
    import illustris_python as il

    base = write_fake_simulation(tmp_path, [make_truth(seed=10), make_truth(seed=13)])
    calls = []
    real = il.groupcat.loadSubhalos
    monkeypatch.setattr(il.groupcat, "loadSubhalos",
                        lambda *a, **k: calls.append(k.get("fields")) or real(*a, **k))
    worker = TngLocalSource(base, cfg=CFG, snap=99)  # what every build worker does
    worker.load(1)
    assert calls == []
    assert TngLocalSource(base, cfg=CFG, snap=99).galaxy_ids() == [0, 1]
    n_scan = len(calls)
    assert n_scan > 0
    assert TngLocalSource(base, cfg=CFG, snap=99).galaxy_ids() == [0, 1]  # cached
    assert len(calls) == n_scan
