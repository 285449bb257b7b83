"""SPH images: kernel normalisation, flux, re-binning and agreement with pynbody."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.observe.analytic import plummer_galaxy
from analysis_lib.observe.images import (
    projected_kernel_integral,
    projected_kernel_table,
    rebin,
    render_images,
    render_with_pynbody,
    smoothing_support,
)
from analysis_lib.particles import GalaxyInputError


def test_projected_kernel_matches_direct_integral():
    """The tabulated column of the cubic spline equals a direct quadrature of the 3D kernel."""
    from scipy.integrate import quad

    from analysis_lib.observe.images import cubic_spline_3d

    table = projected_kernel_table()
    u = np.linspace(0, 1, len(table))
    for q in (0.0, 0.3, 0.5, 0.8, 0.95):
        direct = 2 * quad(lambda s, q=q: float(cubic_spline_3d(np.hypot(q, s))), 0, 1,
                          points=[np.sqrt(max(0.25 - q * q, 0))] if q < 0.5 else None)[0]
        assert np.interp(q * q, u, table) == pytest.approx(direct, abs=1e-5 * table[0])
    # the 2D integral of the projection equals the 3D integral of the kernel
    r = np.linspace(0, 1, 20001)
    vol = np.trapezoid(4 * np.pi * r**2 * cubic_spline_3d(r), r)
    assert projected_kernel_integral() == pytest.approx(vol, rel=1e-5)


@pytest.mark.parametrize("support_px", [0.3, 1.0, 2.5, 7.0, 11.9, 12.1, 40.0])
def test_single_particle_deposits_its_luminosity(support_px):
    """Any kernel size, inside the field: the image holds exactly the particle's light."""
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-5, 5, 20), rng.uniform(-5, 5, 20)
    img = render_images(a, b, np.full(20, support_px), np.arange(1.0, 21.0), 100.0, 200)
    assert img.shape == (1, 200, 200)
    assert img.sum() == pytest.approx(np.arange(1.0, 21.0).sum(), rel=1e-6)


def test_image_sums_to_luminosity_in_field():
    g = plummer_galaxy(4000, seed=1)
    a, b = g.stars.pos[:, 0], g.stars.pos[:, 1]
    s = smoothing_support(g.stars.pos)
    lum = g.stars.lum["r"]
    # a field holding every kernel entirely: all the light
    big = np.max(np.abs(np.concatenate([a, b])) + np.concatenate([s, s])) * 1.01
    assert render_images(a, b, s, lum, big, 128).sum() == pytest.approx(lum.sum(), rel=1e-9)
    # the paper's field: the light in the field differs from that of the particles inside it
    # only by the light of particles whose kernels cross the border
    hw = 3 * g.half_mass_radius()
    total = render_images(a, b, s, lum, hw, 90).sum()
    inside = (np.abs(a) < hw) & (np.abs(b) < hw)
    crossing = (np.abs(a) + s > hw) | (np.abs(b) + s > hw)
    assert abs(total - lum[inside].sum()) <= lum[crossing].sum()
    assert abs(total - lum[inside].sum()) > 0  # edge effects exist: the bound is not vacuous


def test_two_bands_render_independently():
    g = plummer_galaxy(1000, seed=2)
    a, b = g.stars.pos[:, 0], g.stars.pos[:, 1]
    s = smoothing_support(g.stars.pos)
    both = render_images(a, b, s, np.column_stack([g.stars.lum["r"], g.stars.lum["g"]]), 8, 40)
    assert np.allclose(both[0], render_images(a, b, s, g.stars.lum["r"], 8, 40)[0])
    assert np.allclose(both[1], render_images(a, b, s, g.stars.lum["g"], 8, 40)[0])


def test_rebin_conserves_flux_and_sums_blocks():
    img = np.random.default_rng(0).random((2, 300, 300))
    for n in (150, 60):
        out = rebin(img, n)
        assert out.shape == (2, n, n)
        assert out.sum() == pytest.approx(img.sum(), rel=1e-12)
        f = 300 // n
        assert out[1, 3, 7] == pytest.approx(img[1, 3 * f:4 * f, 7 * f:8 * f].sum())
    with pytest.raises(GalaxyInputError, match="divide"):
        rebin(img, 70)


def test_smoothing_support_is_distance_to_32nd_neighbour():
    pos = np.random.default_rng(5).normal(size=(200, 3))
    s = smoothing_support(pos, 32)
    d = np.sort(np.linalg.norm(pos[:, None] - pos[None], axis=-1), axis=1)
    assert np.allclose(s, d[:, 31])  # self at index 0 counts as one of the 32
    with pytest.raises(GalaxyInputError, match="at least 32"):
        smoothing_support(pos[:20], 32)


def test_agrees_with_pynbody_within_one_percent():
    """Resolved kernels (support >~ 2 px): our flux-conserving render equals pynbody's."""
    g = plummer_galaxy(6000, seed=4)
    pos = g.stars.pos
    s = smoothing_support(pos)
    hw = 3 * g.half_mass_radius()
    n = 100
    assert np.median(s) / (2 * hw / n) > 3
    lum = g.stars.lum["r"]
    ours = render_images(pos[:, 0], pos[:, 1], s, lum, hw, n)[0]
    ref = render_with_pynbody(pos[:, 0], pos[:, 1], pos[:, 2], s, lum, hw, n)
    assert ref.shape == ours.shape
    assert np.abs(ours - ref).sum() / ref.sum() < 0.01
    assert ours.sum() == pytest.approx(ref.sum(), rel=0.01)
    # orientation: the brightest quadrant is the same (rows = vertical axis)
    shifted = render_images(pos[:, 0] + hw / 2, pos[:, 1], s, lum, hw, n)[0]
    ref_shift = render_with_pynbody(pos[:, 0] + hw / 2, pos[:, 1], pos[:, 2], s, lum, hw, n)
    assert np.abs(shifted - ref_shift).sum() / ref_shift.sum() < 0.01
    assert shifted[:, n // 2:].sum() > 3 * shifted[:, : n // 2].sum()


def test_coarse_grid_for_wide_kernels_matches_direct_render():
    """Wide kernels rendered on a coarser grid and interpolated: same image to < 0.1 %."""
    g = plummer_galaxy(3000, seed=6)
    pos = g.stars.pos
    s = smoothing_support(pos)
    hw = 3 * g.half_mass_radius()
    lum = g.stars.lum["r"]
    n = 120
    assert np.mean(s >= 32 * 2 * hw / n) > 0.05  # a share of particles takes the coarse path
    fast = render_images(pos[:, 0], pos[:, 1], s, lum, hw, n, multires=True)[0]
    direct = render_images(pos[:, 0], pos[:, 1], s, lum, hw, n, multires=False)[0]
    assert np.abs(fast - direct).sum() / direct.sum() < 1e-3
    assert fast.sum() == pytest.approx(direct.sum(), rel=1e-5)  # border kernels sample apart
    assert np.all(fast >= 0)
