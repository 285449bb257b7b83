"""JAM: halo and MGE pieces, recovery of a galaxy inside JAM's own family, and the runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import FEATURES, META, TARGETS, assemble, write_shard
from analysis_lib.models import jam
from analysis_lib.models.jam_fit import (
    JamFitError,
    JamSettings,
    fit_jam,
    inclination_from_q,
    q_from_inclination,
)
from analysis_lib.models.jam_halo import RHO_CRIT_MSUN_KPC3, NFWHalo, halo_mge
from analysis_lib.models.jam_mge import MGEFitError, fit_image_mge, pc_per_arcsec
from analysis_lib.models.jam_synthetic import DEFAULT_LUM, synthetic_galaxy

DIST = 20.0


@pytest.fixture(scope="module")
def galaxy() -> dict:
    """Inclined (60 deg), rotating, beta_z = 0.2, f_DM(<R_half) ~ 0.14, major axis at 30 deg."""
    return synthetic_galaxy(seed=1, inc_deg=60.0, beta_z=0.2, ml=2.5, log_m200=12.3,
                            pa_deg=30.0, noise_frac=0.02)


def test_nfw_halo_definition_and_mge() -> None:
    import jampy

    halo = NFWHalo.from_m200(1e12)
    # M200 is the mass inside the radius of mean density 200 rho_crit
    assert halo.enclosed_mass(halo.r200_kpc) == pytest.approx(1e12, rel=1e-10)
    mean_rho = 1e12 / (4 / 3 * np.pi * halo.r200_kpc**3)
    assert mean_rho == pytest.approx(200 * RHO_CRIT_MSUN_KPC3, rel=1e-10)
    assert 5 < halo.r200_kpc / halo.rs_kpc < 15  # a Milky-Way halo's concentration
    # the MGE JAM uses carries the NFW enclosed mass where the galaxy lives
    pc = pc_per_arcsec(DIST)
    surf, sigma, q = halo_mge(halo, pc)
    r_kpc = np.array([0.5, 2.0, 8.0, 30.0, 100.0])
    m_mge = jampy.mge.radial_mass(surf, sigma, q, 89.9, r_kpc * 1e3 / pc, distance=DIST)
    np.testing.assert_allclose(m_mge, halo.enclosed_mass(r_kpc), rtol=0.01)


def test_vrms2_is_linear_in_the_mass_model() -> None:
    """The fit solves M/L exactly because v_rms^2(stars * ml + halo) = ml v*^2 + v_halo^2."""
    import jampy

    from analysis_lib.models.jam_synthetic import projected_mge

    pc = pc_per_arcsec(DIST)
    lum = projected_mge(np.array([1e10, 2e10]), np.array([1.0, 4.0]), np.array([0.5, 0.4]),
                        70.0, pc)
    halo = halo_mge(NFWHalo.from_m200(3e12), pc)
    x, y = np.array([1.0, 5.0, 20.0, 3.0]), np.array([0.5, 10.0, 2.0, -7.0])

    def vrms2(*pot):
        out = jampy.axi.proj(*lum, *pot, 70.0, 0.0, DIST, x, y, align="cyl",
                             beta=np.full(2, 0.2), ml=1.0, plot=False, quiet=True)
        return out.model**2

    ml = 2.7
    both = vrms2(*(np.append(a, b) for a, b in zip((lum[0] * ml, *lum[1:]), halo, strict=True)))
    np.testing.assert_allclose(both, ml * vrms2(*lum) + vrms2(*halo), rtol=1e-6)


def test_mge_recovers_light_and_orientation(galaxy: dict) -> None:
    pc = pc_per_arcsec(DIST)
    pix = 6 * galaxy["rhalf_kpc"] * 1e3 / pc / galaxy["image"].shape[0]
    mge = fit_image_mge(galaxy["image"], pix, pix * pc)
    # the MGE extrapolates beyond the field: compare with the body's total light
    assert mge.total_lsun == pytest.approx(sum(DEFAULT_LUM), rel=0.03)
    # the synthetic major axis lies at 30 deg from array axis 0: mgefit's theta = 90 + 30
    assert abs((mge.theta_deg - 120.0 + 90) % 180 - 90) < 2.0
    # flattest observed Gaussian near the true one (0.634 at 60 deg), so 60 deg is reachable
    assert 0.55 < mge.qobs.min() < 0.66


def test_fit_recovers_total_mass_within_5_percent(galaxy: dict) -> None:
    res = fit_jam(galaxy["image"], galaxy["vel_map"], galaxy["sigma_map"], galaxy["map_mask"],
                  galaxy["rhalf_kpc"], JamSettings(distance_mpc=DIST), keep_maps=True)
    truth = galaxy["truth"]
    data, model = res.maps["vrms_data"], res.maps["vrms_model"]
    np.testing.assert_allclose(data, np.hypot(galaxy["vel_map"], galaxy["sigma_map"]), rtol=1e-5)
    assert np.median(np.abs(model / data - 1)) < 0.03  # 2 % noise
    assert "maps" not in res.to_dict()
    d_mtot = res.log_mtot - truth["log_mtot"]
    d_mstar = res.log_mstar - truth["log_mstar"]
    print(f"\nJAM recovery: dlog M_tot = {d_mtot:+.4f}, dlog M* = {d_mstar:+.4f}, "
          f"dlog M/L = {res.log_ml_r - truth['log_ml_r']:+.4f}, "
          f"f_DM {10**res.log_fdm:.3f} vs {10**truth['log_fdm']:.3f}, "
          f"inc {res.inclination_deg:.1f} vs 60, beta_z {res.beta_z:.2f} vs 0.2, "
          f"{res.seconds:.1f} s, {res.n_jam_calls} JAM calls")
    assert abs(d_mtot) < np.log10(1.05)
    assert abs(d_mstar) < np.log10(1.10)  # stars vs halo is the known JAM degeneracy
    assert res.chi2_red < 1.0  # 2 % noise against 5 % nominal errors


def test_inclination_parametrisation_round_trips() -> None:
    for qobs in (0.3, 0.7, 0.95):
        for inc in (40.0, 75.0, 89.0):
            if np.cos(np.radians(inc)) < qobs:  # deprojectable
                q = q_from_inclination(inc, qobs)
                assert 0 < q < qobs
                assert inclination_from_q(q, qobs) == pytest.approx(inc, abs=1e-8)


def test_fit_with_true_inclination(galaxy: dict) -> None:
    res = fit_jam(galaxy["image"], galaxy["vel_map"], galaxy["sigma_map"], galaxy["map_mask"],
                  galaxy["rhalf_kpc"], JamSettings(inclination="true"),
                  inclination_deg=180.0 - galaxy["inclination_deg"])  # either sense of the spin
    assert res.inclination_deg == pytest.approx(galaxy["inclination_deg"], abs=0.5)
    assert abs(res.log_mtot - galaxy["truth"]["log_mtot"]) < np.log10(1.05)


def test_distance_is_only_a_unit(galaxy: dict) -> None:
    """Masses must not depend on the nominal distance that converts kpc to arcsec."""
    kw = dict(max_nfev=8, clip_sigma=0.0)
    near = fit_jam(galaxy["image"], galaxy["vel_map"], galaxy["sigma_map"], galaxy["map_mask"],
                   galaxy["rhalf_kpc"], JamSettings(distance_mpc=10.0, **kw))
    far = fit_jam(galaxy["image"], galaxy["vel_map"], galaxy["sigma_map"], galaxy["map_mask"],
                  galaxy["rhalf_kpc"], JamSettings(distance_mpc=40.0, **kw))
    assert near.log_mtot == pytest.approx(far.log_mtot, abs=0.005)


def test_razor_thin_edge_on_disc_is_fitted_not_crashed() -> None:
    """An MGE as flat as jampy allows leaves no inclination range: the fit goes edge-on."""
    g = synthetic_galaxy(seed=2, inc_deg=90.0, qintr=(0.3, 0.1, 0.06, 0.06), pa_deg=45.0)
    res = fit_jam(g["image"], g["vel_map"], g["sigma_map"], g["map_mask"], g["rhalf_kpc"],
                  JamSettings(max_nfev=4))
    assert res.inclination_deg > 80
    assert np.isfinite([res.log_mtot, res.log_mstar, res.log_fdm]).all()


def test_bad_inputs_give_one_clear_error(galaxy: dict) -> None:
    empty = np.zeros_like(galaxy["map_mask"])
    with pytest.raises(JamFitError, match="valid kinematic pixels"):
        fit_jam(galaxy["image"], galaxy["vel_map"], galaxy["sigma_map"], empty,
                galaxy["rhalf_kpc"])
    with pytest.raises(JamFitError, match="shape"):
        fit_jam(galaxy["image"], galaxy["vel_map"][:10], galaxy["sigma_map"],
                galaxy["map_mask"], galaxy["rhalf_kpc"])
    with pytest.raises(MGEFitError, match="empty"):
        fit_image_mge(np.zeros((60, 60)), 0.1, 10.0)
    with pytest.raises(JamFitError, match="inclination"):
        fit_jam(galaxy["image"], galaxy["vel_map"], galaxy["sigma_map"], galaxy["map_mask"],
                galaxy["rhalf_kpc"], JamSettings(inclination="sideways"))


def _dataset(path, galaxy: dict, n_galaxies: int, broken: set[int]):
    """A dataset in the real schema whose samples are the synthetic galaxy (some with no maps)."""
    img = galaxy["image"]
    for gid in range(n_galaxies):
        rec = {"image_r_60": img, "image_g_60": 0.7 * img,
               "image_r_30": img.reshape(30, 2, 30, 2).sum(axis=(1, 3)),
               "vel_map": galaxy["vel_map"], "sigma_map": galaxy["sigma_map"],
               "map_mask": galaxy["map_mask"] & (gid not in broken)}
        rec["image_g_30"] = 0.7 * rec["image_r_30"]
        rec.update({k: 0.0 for k in (*TARGETS, *FEATURES)})
        rec.update({k: v for k, v in galaxy["truth"].items() if k in TARGETS})
        rec.update(rhalf_kpc=galaxy["rhalf_kpc"], galaxy_id=gid, projection=0,
                   galaxy_type=gid % 2, inclination_deg=galaxy["inclination_deg"],
                   pixel_scale_kpc=6 * galaxy["rhalf_kpc"] / 60, A_r=0.0, A_g=0.0)
        assert set(META) <= set(rec)
        write_shard(path, gid, [rec])
    attrs = {"profile": "test", "seed": 0, "source": "synthetic_jam",
             "config": json.dumps({"observe": {"fov_rhalf": 3.0}})}
    return assemble(path, list(range(n_galaxies)), attrs, [60, 30])


def test_runner_records_failures_and_resumes(tmp_path, galaxy: dict) -> None:
    path = _dataset(tmp_path / "jam.h5", galaxy, n_galaxies=2, broken={1})
    cfg = load_config("smoke", {"jam.max_nfev": 6, "jam.clip_sigma": 0.0})
    out = tmp_path / "fits"
    table = jam.run_jam(path, cfg, rows=[0, 1], out_dir=out, workers=1, progress=False)
    assert list(table["status"]) == ["ok", "failed"]
    assert "valid kinematic pixels" in table.loc[1, "error"]
    assert abs(table.loc[0, "log_mtot"] - table.loc[0, "true_log_mtot"]) < 0.05
    assert table.loc[0, "seconds"] > 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert len(stamps) == 2
    # a second run finds both samples done (failures included) and refits nothing
    again = jam.run_jam(path, cfg, rows=[0, 1], out_dir=out, workers=1, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps
    assert again["status"].tolist() == ["ok", "failed"]
    # other settings make other fits: the stale record is redone, not reused
    cfg2 = load_config("smoke", {"jam.max_nfev": 5, "jam.clip_sigma": 0.0})
    jam.run_jam(path, cfg2, rows=[1], out_dir=out, workers=1, progress=False)
    assert (out / "g0000001_p0.json").stat().st_mtime_ns != stamps["g0000001_p0.json"]
    assert (out / "g0000000_p0.json").stat().st_mtime_ns == stamps["g0000000_p0.json"]


def test_runner_parallel_and_results_store(tmp_path, galaxy: dict) -> None:
    """Worker processes (failures are fast), then the store run with metrics and predictions."""
    path = _dataset(tmp_path / "jam.h5", galaxy, n_galaxies=3, broken={0, 1, 2})
    cfg = load_config("smoke", {"jam.n_galaxies": 3, "split.cnn_fractions": [0.0, 0.0, 1.0]})
    run_dir = jam.run_jam_for_config(cfg, path, store_root=tmp_path / "results", workers=2)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_samples"] == 3 and metrics["n_failed"] == 3
    assert all("valid kinematic pixels" in f["error"] for f in metrics["failures"])
    assert (run_dir / "predictions.csv").exists()
