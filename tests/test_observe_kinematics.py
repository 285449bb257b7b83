"""NGP kinematic maps: moments, masks and the antisymmetry of a rotating disc."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.observe import observe_galaxy
from analysis_lib.observe.analytic import cold_disc_galaxy
from analysis_lib.observe.kinematics import ngp_maps


def test_pixel_moments_are_weighted_mean_and_dispersion():
    # three particles in pixel (row 1, col 2) of a 4x4 map over [-2, 2]^2, one elsewhere
    a = np.array([0.2, 0.7, 0.9, -1.5])
    b = np.array([-0.5, -0.2, -0.9, 1.5])
    v = np.array([10.0, 20.0, 40.0, 5.0])
    w = np.array([1.0, 2.0, 1.0, 3.0])
    m = ngp_maps(a, b, v, w, 2.0, 4, min_particles=1)
    mean = np.sum(w[:3] * v[:3]) / w[:3].sum()
    assert m.vel[1, 2] == pytest.approx(mean)
    assert m.sigma[1, 2] == pytest.approx(np.sqrt(np.sum(w[:3] * (v[:3] - mean) ** 2) / 4.0))
    assert m.count[1, 2] == 3 and m.vel[3, 0] == 5.0 and m.sigma[3, 0] == 0.0
    assert m.mask.sum() == 2
    assert np.all(m.vel[~m.mask] == 0) and np.all(m.sigma[~m.mask] == 0)
    strict = ngp_maps(a, b, v, w, 2.0, 4, min_particles=2)
    assert strict.mask.sum() == 1 and strict.vel[3, 0] == 0.0


def test_particles_outside_the_field_are_ignored():
    m = ngp_maps(np.array([5.0, 0.1]), np.array([0.0, 0.1]), np.array([100.0, 1.0]),
                 np.ones(2), 2.0, 4)
    assert m.count.sum() == 1 and m.vel.max() == 1.0


def test_rotating_disc_velocity_map_is_antisymmetric():
    g = cold_disc_galaxy(6000, seed=3, mirror=True)
    cfg = load_config("smoke", {"observe.image_size": 30, "observe.image_sizes": [30],
                                "observe.dust": False})
    recs = {r["projection"]: r for r in observe_galaxy(g, cfg)}
    edge = recs[0]  # line of sight along x: the disc (x-y plane) is edge-on
    vel, mask = edge["vel_map"].astype(float), edge["map_mask"]
    assert vel.shape == (48, 48) and mask.dtype == bool
    both = mask & mask[:, ::-1]
    assert both.sum() > 20
    assert np.max(np.abs(vel + vel[:, ::-1])[both]) < 1e-3 * np.max(np.abs(vel))
    # spin +z seen from +x: the +y side (right, the horizontal axis is y) recedes, v_los > 0
    left, right = vel[:, :24][mask[:, :24]].mean(), vel[:, 24:][mask[:, 24:]].mean()
    assert right > 50 and left < -50
    face = recs[2]
    assert np.abs(face["vel_map"]).max() < 1e-6  # face-on: no line-of-sight motion
    assert edge["lambda_r"] > 0.8
    assert not face["lambda_r"] > 0.05  # V = sigma = 0 face-on: lambda_R is 0/0 (NaN)
