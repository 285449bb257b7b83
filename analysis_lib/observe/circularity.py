"""Orbital circularity of star particles, eps = j_z / j_c(E) (Abadi et al. 2003; Xu et al. 2019).

- j_z: specific angular momentum along the net stellar angular momentum axis of the stars inside
  the aperture (3D radius `radius_kpc`).
- E = v^2/2 + Phi. Circular orbits come from the spherically averaged total mass,
  M(<r) = galaxy.enclosed_mass('total', r) (particles and analytic components alike):
  v_c^2 = G M(<r) / r, Phi(r) = -G M(<r_out)/r_out - int_r^r_out G M(r')/r'^2 dr',
  E_c(r) = Phi(r) + v_c^2/2, j_c(r) = r v_c, and j_c(E) by inverting E_c(r).
  The zero point of Phi cancels between E and E_c, so the outer truncation r_out is harmless.
- If the source gives each star's potential (TNG's Potential field), that potential is used for
  E (it knows the non-spherical structure); its zero point differs from the spherical model's,
  so the median offset between the two at the stars' radii is removed first.
- Particles with E above E_c(r_out) get j_c(r_out); eps is not clipped
  (``|eps|`` slightly above 1 is noise, not an error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis_lib.particles import Galaxy, GalaxyInputError

G_KPC_KMS2_MSUN = 4.30091727e-6  # gravitational constant in kpc (km/s)^2 / Msun
_GRID_POINTS = 2000


@dataclass
class SphericalModel:
    """Circular-orbit relations of the spherically averaged total mass on a log radius grid."""

    r: np.ndarray
    mass: np.ndarray
    phi: np.ndarray

    @property
    def v_circ(self) -> np.ndarray:
        return np.sqrt(G_KPC_KMS2_MSUN * self.mass / self.r)

    @property
    def energy_circ(self) -> np.ndarray:
        return self.phi + 0.5 * self.v_circ**2

    @property
    def j_circ(self) -> np.ndarray:
        return self.r * self.v_circ

    def potential(self, r: np.ndarray) -> np.ndarray:
        """Phi at radius r, (km/s)^2 (clamped to the grid ends, which span all the stars)."""
        return np.interp(r, self.r, self.phi)

    def j_circ_of_energy(self, energy: np.ndarray) -> np.ndarray:
        """Angular momentum of the circular orbit of each energy (kpc km/s)."""
        ec = np.maximum.accumulate(self.energy_circ)  # monotone for np.interp
        return np.interp(energy, ec, self.j_circ)


def spherical_model(galaxy: Galaxy, r_min: float, r_max: float) -> SphericalModel:
    """Mass, potential and circular orbits on a log grid from r_min to 10 r_max (kpc)."""
    r = np.geomspace(r_min, 10.0 * r_max, _GRID_POINTS)
    mass = np.asarray(galaxy.enclosed_mass("total", r), dtype=float)
    integrand = G_KPC_KMS2_MSUN * mass / r**2
    # int_r^r_out by the trapezoid rule from the outside in
    seg = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r)
    outer = np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]])
    phi = -G_KPC_KMS2_MSUN * mass[-1] / r[-1] - outer
    return SphericalModel(r=r, mass=mass, phi=phi)


@dataclass
class Circularity:
    """Circularities of the stars in the aperture, their masses and the spin axis used."""

    eps: np.ndarray
    mass: np.ndarray
    axis: np.ndarray


def circularities(galaxy: Galaxy, radius_kpc: float) -> Circularity:
    """eps = j_z / j_c(E) for stars within a 3D radius; see the module notes for the choices."""
    stars = galaxy.stars
    r = stars.radius
    inside = r < radius_kpc
    if inside.sum() < 2:
        raise GalaxyInputError(
            f"galaxy {galaxy.galaxy_id}: fewer than 2 star particles within {radius_kpc:.3g} kpc "
            "for circularities")
    pos, vel, m = stars.pos[inside], stars.vel[inside], stars.mass[inside]
    j = np.cross(pos, vel)
    total = (m[:, None] * j).sum(axis=0)
    norm = np.linalg.norm(total)
    axis = total / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    positive = r[r > 0]
    r_min = 0.5 * positive.min() if len(positive) else 1e-3 * radius_kpc
    model = spherical_model(galaxy, min(r_min, 1e-3 * radius_kpc), r.max())
    phi_sph = model.potential(np.maximum(r, model.r[0]))
    if stars.potential is not None:
        offset = np.median(stars.potential - phi_sph)
        phi = (stars.potential - offset)[inside]
    else:
        phi = phi_sph[inside]
    energy = 0.5 * np.einsum("ij,ij->i", vel, vel) + phi
    jc = model.j_circ_of_energy(energy)
    eps = np.divide(j @ axis, jc, out=np.zeros(len(jc)), where=jc > 0)
    return Circularity(eps=eps, mass=m, axis=axis)


def orbit_fractions(circ: Circularity, cold: float = 0.8, hot: float = 0.25) -> dict[str, float]:
    """kinetic B/T = 2 x mass fraction with eps < 0; f_cold: eps > cold; f_hot: ``|eps|`` < hot.

    Hot orbits follow Zhu et al. 2018 / Xu et al. 2019 (``|lambda_z|`` < 0.25), so counter-rotating
    orbits (eps < -0.25) are neither cold nor hot.
    """
    mtot = circ.mass.sum()
    return {
        "kinetic_bt": float(2.0 * circ.mass[circ.eps < 0].sum() / mtot),
        "f_cold": float(circ.mass[circ.eps > cold].sum() / mtot),
        "f_hot": float(circ.mass[np.abs(circ.eps) < hot].sum() / mtot),
    }
