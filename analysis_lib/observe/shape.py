"""Axis ratios of the stellar mass from the iterative inertia tensor (Allgood et al. 2006).

Start with the stars in a sphere of radius r0 (the paper's Table 1 starts "within a 3D radius";
we take r0 = 2 R_half, configurable). Each iteration computes the mass-weighted (non-reduced)
second-moment tensor S_ij = sum m x_i x_j / sum m of the stars inside the current ellipsoid,
takes axis ratios b/a = sqrt(l2/l1), c/a = sqrt(l3/l1) from its eigenvalues, and reselects the
stars inside the ellipsoid with those axis ratios and orientation whose major axis is kept at r0
(Allgood et al. 2006 keep the longest axis equal to the initial radius). It stops when both
ratios change by less than `tol`.
"""

from __future__ import annotations

import numpy as np

from analysis_lib.particles import GalaxyInputError

MIN_PARTICLES = 10


def axis_ratios(pos: np.ndarray, mass: np.ndarray, r0: float, tol: float = 1e-3,
                max_iter: int = 100) -> tuple[float, float, np.ndarray]:
    """(b/a, c/a, eigenvectors as columns major..minor) of the stars' mass distribution."""
    ba, ca = 1.0, 1.0
    vecs = np.eye(3)
    for _ in range(max_iter):
        xp = pos @ vecs  # coordinates along the current principal axes
        ell = xp[:, 0] ** 2 + (xp[:, 1] / ba) ** 2 + (xp[:, 2] / ca) ** 2
        sel = ell < r0**2
        if sel.sum() < MIN_PARTICLES:
            raise GalaxyInputError(
                f"only {int(sel.sum())} star particles inside the shape ellipsoid (r0 = "
                f"{r0:.3g} kpc); need {MIN_PARTICLES}")
        x, m = pos[sel], mass[sel]
        tensor = (m[:, None, None] * x[:, :, None] * x[:, None, :]).sum(axis=0) / m.sum()
        vals, v = np.linalg.eigh(tensor)
        vals, v = vals[::-1], v[:, ::-1]  # major first
        if vals[0] <= 0:
            raise GalaxyInputError("degenerate stellar mass distribution for the shape tensor")
        new_ba = float(np.sqrt(max(vals[1], 0.0) / vals[0]))
        new_ca = float(np.sqrt(max(vals[2], 0.0) / vals[0]))
        converged = abs(new_ba - ba) < tol and abs(new_ca - ca) < tol
        ba, ca, vecs = max(new_ba, 1e-3), max(new_ca, 1e-3), v
        if converged:
            break
    return ba, ca, vecs
