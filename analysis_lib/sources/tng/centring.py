"""A galaxy centre from the stars alone: the shrinking sphere of Power et al. (2003, MNRAS 338, 14).

Used when a cutout has no `PartType4/Potential` (the default centre, the stars' potential minimum)
and no catalogue position (SubhaloPos in subhalos.json). The algorithm is the one pynbody's
`analysis.halo.shrink_sphere_center` implements: start from the centre of mass of all particles
and a radius of half the particles' extent, then repeatedly take the centre of mass of the
particles within the current radius and shrink the radius by `shrink_factor` (0.7), until no more
than `min_particles` (100) remain inside (or the radius falls below `min_radius`). It converges
on the densest concentration of stellar mass, which for a galaxy is the bulge/nucleus, without
being pulled by satellites or tidal debris the way a plain centre of mass is.

Positions are TNG box coordinates (ckpc/h) in a periodic box: the particles are first unwrapped
about a reference particle, so a galaxy that straddles the box edge is handled.
"""

from __future__ import annotations

import numpy as np

SHRINK_FACTOR = 0.7  # pynbody's default (Power et al. 2003 use a 2.5 % shrink per step)
MIN_PARTICLES = 100  # pynbody's default stopping criterion
SHRINKING_SPHERE_METHOD = "shrinking sphere on the stars (Power et al. 2003; factor 0.7, 100 stars)"


def shrinking_sphere_centre(pos: np.ndarray, mass: np.ndarray, box_size: float | None = None, *,
                            shrink_factor: float = SHRINK_FACTOR,
                            min_particles: int = MIN_PARTICLES,
                            min_radius: float = 0.0) -> np.ndarray:
    """Centre (same units and frame as `pos`) by the shrinking-sphere method.

    Parameters
    ----------
    pos, mass
        (N, 3) positions and N masses of the particles to centre on (the stars).
    box_size
        Periodic box length in the units of `pos` (None: not periodic). The returned centre is
        wrapped into [0, box_size).
    shrink_factor, min_particles, min_radius
        Radius factor per iteration, and the stopping criteria (pynbody's defaults).
    """
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    mass = np.asarray(mass, dtype=np.float64).reshape(-1)
    if len(pos) == 0 or len(pos) != len(mass):
        raise ValueError(f"need matching positions and masses, got {len(pos)} and {len(mass)}")
    if not 0.0 < shrink_factor < 1.0:
        raise ValueError(f"shrink_factor must lie in (0, 1), not {shrink_factor}")
    ref = pos[0].copy()
    d = pos - ref
    if box_size:
        d -= box_size * np.round(d / box_size)
    radius = 0.5 * float(np.max(d.max(axis=0) - d.min(axis=0)))
    centre = _centre_of_mass(d, mass, np.ones(len(d), dtype=bool))
    # as pynbody: the centre returned is that of the last sphere holding more than min_particles
    while True:
        radius *= shrink_factor
        off = d - centre
        inside = np.einsum("ij,ij->i", off, off) <= radius * radius
        if inside.sum() <= min_particles or radius < min_radius:
            break
        centre = _centre_of_mass(d, mass, inside)
    out = ref + centre
    if box_size:
        out = np.mod(out, box_size)
    return out


def _centre_of_mass(d: np.ndarray, mass: np.ndarray, inside: np.ndarray) -> np.ndarray:
    w = mass[inside]
    return (d[inside] * w[:, None]).sum(axis=0) / w.sum()
