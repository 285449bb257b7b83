"""Spherical mass components and the total potential a mock galaxy lives in.

Units: kpc, Msun, (km/s)^2 for potentials. Choices:
- Stellar spheroid: Hernquist (1990) profile, scale a (3D half-mass radius (1 + sqrt 2) a).
- Discs (stars and gas): exponential in R. For the potential we use their monopole, which for a
  razor-thin disc is exact in the enclosed-mass sense: M(<r) = M [1 - (1 + r/Rd) e^{-r/Rd}].
  The non-spherical part of the disc potential is neglected, except the stellar disc's vertical
  self-gravity, which galaxy.py adds as an isothermal sheet (see `SheetPotential`).
- Dark matter: NFW (M200c, c), scaled by (1 - M_galaxy / M200c) so that the halo's total mass
  inside r200 stays M200c; optional baryonic contraction (Gnedin+2004 modified adiabatic
  contraction, A = 0.85, w = 0.8; Blumenthal+1986 with A = w = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis_lib.sources.mock.relations import G_KPC_KMS2_MSUN as G


def stratified_uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniform deviates in [0, 1), one in each of n equal strata, in random order.

    Used for the radial CDF so that the particles' enclosed mass follows the model to within
    one particle at every radius (no Poisson noise in the profile, e.g. in M*(<30 kpc)).
    """
    return (rng.permutation(n) + rng.uniform(size=n)) / max(n, 1)


def exponential_disc_radii(u: np.ndarray, r_d: float) -> np.ndarray:
    """Inverse of the exponential disc's M(<R)/M = 1 - (1 + x) e^{-x}, x = R / R_d (Lambert W)."""
    from scipy.special import lambertw

    u = np.clip(np.asarray(u, float), 0.0, 1 - 1e-15)
    return r_d * (-1.0 - np.real(lambertw(-(1.0 - u) / np.e, k=-1)))


@dataclass
class Hernquist:
    """Hernquist (1990) sphere: rho = M a / (2 pi r (r + a)^3)."""

    mass: float
    a: float

    def enclosed_mass(self, r_kpc: np.ndarray) -> np.ndarray:
        r = np.asarray(r_kpc, float)
        return self.mass * r**2 / (r + self.a) ** 2

    def density(self, r_kpc: np.ndarray) -> np.ndarray:
        r = np.maximum(np.asarray(r_kpc, float), 1e-12)
        return self.mass * self.a / (2 * np.pi * r * (r + self.a) ** 3)

    def sample_radii(self, rng: np.random.Generator, n: int, m_frac_max: float = 0.995
                     ) -> np.ndarray:
        """Radii by inverse CDF (stratified), truncated at enclosed fraction m_frac_max."""
        u = stratified_uniform(rng, n) * m_frac_max
        s = np.sqrt(u)
        return self.a * s / (1 - s)


@dataclass
class ExponentialDiscMonopole:
    """Monopole (spherical enclosed mass) of an exponential disc of scale length r_d."""

    mass: float
    r_d: float

    def enclosed_mass(self, r_kpc: np.ndarray) -> np.ndarray:
        x = np.asarray(r_kpc, float) / self.r_d
        return self.mass * (1 - (1 + x) * np.exp(-x))

    def surface_density(self, r_cyl_kpc: np.ndarray) -> np.ndarray:
        """Msun / kpc^2."""
        return self.mass / (2 * np.pi * self.r_d**2) * np.exp(-np.asarray(r_cyl_kpc) / self.r_d)


@dataclass
class NFW:
    """NFW halo of M200c (Msun), concentration c, r200 (kpc), scaled by `norm` (<= 1)."""

    m200: float
    c: float
    r200: float
    norm: float = 1.0

    @property
    def r_s(self) -> float:
        return self.r200 / self.c

    @property
    def m_s(self) -> float:
        """4 pi rho_s r_s^3 (before `norm`)."""
        return self.m200 / (np.log1p(self.c) - self.c / (1 + self.c))

    def enclosed_mass(self, r_kpc: np.ndarray) -> np.ndarray:
        x = np.asarray(r_kpc, float) / self.r_s
        return self.norm * self.m_s * (np.log1p(x) - x / (1 + x))

    def potential(self, r_kpc: np.ndarray) -> np.ndarray:
        r = np.maximum(np.asarray(r_kpc, float), 1e-12)
        return -G * self.norm * self.m_s * np.log1p(r / self.r_s) / r


@dataclass
class TabulatedProfile:
    """Enclosed mass on a log-radius grid (e.g. a contracted halo), log-log interpolated."""

    r_grid: np.ndarray
    m_grid: np.ndarray
    outer: NFW  # beyond the grid

    def enclosed_mass(self, r_kpc: np.ndarray) -> np.ndarray:
        r = np.asarray(r_kpc, float)
        lr = np.log(np.maximum(r, 1e-12))
        m = np.exp(np.interp(lr, np.log(self.r_grid), np.log(np.maximum(self.m_grid, 1e-30))))
        inner = r < self.r_grid[0]
        m = np.where(inner, self.m_grid[0] * (r / self.r_grid[0]) ** 3, m)
        return np.where(r > self.r_grid[-1], self.outer.enclosed_mass(r), m)


def contract_halo(halo: NFW, baryons_enclosed, m_baryon_total: float,
                  a_gnedin: float = 0.85, w_gnedin: float = 0.8,
                  r_grid: np.ndarray | None = None) -> TabulatedProfile:
    """Dark-matter profile after adiabatic contraction by the galaxy's baryons.

    Solves r_f [M_b(rbar_f) + (1 - f) M_i(rbar_i)] = r_i M_i(rbar_i) for each initial radius,
    with M_i the uncontracted NFW (all mass, f = M_b / M200c) and rbar = A r200 (r/r200)^w
    (Gnedin+2004 eq. 4; A = w = 1 is Blumenthal+1986). Dark mass in r_f is (1 - f) M_i(r_i).
    """
    if r_grid is None:
        r_grid = np.logspace(-3, np.log10(5 * halo.r200), 300)
    full = NFW(halo.m200, halo.c, halo.r200, 1.0)
    f = m_baryon_total / halo.m200

    def rbar(r):
        return a_gnedin * halo.r200 * (r / halo.r200) ** w_gnedin

    lhs_i = r_grid * full.enclosed_mass(rbar(r_grid))
    lo, hi = np.full_like(r_grid, 1e-3), np.full_like(r_grid, 1.5)
    for _ in range(60):  # bisection on y = r_f / r_i, vectorised over the grid
        y = np.sqrt(lo * hi)
        rf = y * r_grid
        val = rf * (baryons_enclosed(rbar(rf)) + (1 - f) * full.enclosed_mass(rbar(r_grid)))
        too_big = val > lhs_i
        hi = np.where(too_big, y, hi)
        lo = np.where(too_big, lo, y)
    r_f = np.sqrt(lo * hi) * r_grid
    m_dm = (1 - f) * full.enclosed_mass(r_grid)
    order = np.argsort(r_f)
    r_f, m_dm = np.maximum.accumulate(r_f[order]), m_dm[order]
    keep = np.concatenate([[True], np.diff(r_f) > 0])
    return TabulatedProfile(r_f[keep], m_dm[keep], NFW(halo.m200, halo.c, halo.r200, 1 - f))


@dataclass
class SphericalModel:
    """Total enclosed mass and potential of a set of spherical components on a log grid.

    phi(r) = -G [M(r)/r + int_r^inf dM / r'], with the halo's analytic NFW tail beyond the
    grid. `components` maps a name ('bulge', 'disc', 'gas', 'dm') to an object with
    enclosed_mass(r).
    """

    components: dict
    halo_tail: NFW
    r_min: float = 1e-3
    r_max: float = 3e3
    n_grid: int = 600
    r_grid: np.ndarray = field(init=False)
    m_grid: np.ndarray = field(init=False)
    phi_grid: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        r = np.logspace(np.log10(self.r_min), np.log10(self.r_max), self.n_grid)
        m = sum(np.asarray(c.enclosed_mass(r)) for c in self.components.values())
        dm = np.diff(m)
        r_mid = np.sqrt(r[1:] * r[:-1])
        outer = -self.halo_tail.potential(self.r_max) / G - \
            self.halo_tail.enclosed_mass(self.r_max) / self.r_max
        tail = np.concatenate([np.cumsum((dm / r_mid)[::-1])[::-1], [0.0]]) + outer
        self.r_grid, self.m_grid = r, m
        self.phi_grid = -G * (m / r + tail)

    def enclosed_mass(self, r_kpc: np.ndarray, component: str | None = None) -> np.ndarray:
        r = np.asarray(r_kpc, float)
        if component is not None:
            return np.asarray(self.components[component].enclosed_mass(r))
        return sum(np.asarray(c.enclosed_mass(r)) for c in self.components.values())

    def potential(self, r_kpc: np.ndarray) -> np.ndarray:
        """Total potential (km/s)^2, zero at infinity."""
        r = np.asarray(r_kpc, float)
        lr = np.log(np.clip(r, self.r_min, None))
        phi = np.interp(lr, np.log(self.r_grid), self.phi_grid)
        far = r > self.r_max
        if np.any(far):
            phi = np.where(far, -G * self.enclosed_mass(np.maximum(r, self.r_max)) / r, phi)
        return phi

    def vcirc(self, r_kpc: np.ndarray) -> np.ndarray:
        """Circular velocity sqrt(G M(<r) / r) in km/s."""
        r = np.maximum(np.asarray(r_kpc, float), 1e-12)
        return np.sqrt(G * self.enclosed_mass(r) / r)

    def radial_force(self, r_kpc: np.ndarray) -> np.ndarray:
        """-dphi/dr = -G M(<r) / r^2, (km/s)^2 / kpc, from the tabulated enclosed mass."""
        r = np.maximum(np.asarray(r_kpc, float), self.r_min)
        m = np.exp(np.interp(np.log(r), np.log(self.r_grid), np.log(self.m_grid)))
        return -G * m / r**2

    def half_mass_radius(self, component_names: tuple[str, ...]) -> float:
        """3D radius enclosing half the summed mass of the named components (within r_max)."""
        m = sum(np.asarray(self.components[c].enclosed_mass(self.r_grid))
                for c in component_names)
        return float(np.exp(np.interp(0.5 * m[-1], m, np.log(self.r_grid))))


@dataclass
class SheetPotential:
    """Vertical self-gravity of the stellar disc as a local isothermal sheet (disc frame).

    Near the plane phi = 2 sigma_z^2(R) ln cosh(z / z0), sigma_z^2 = pi G Sigma(R) z0: the
    potential of a sech^2 sheet of surface density Sigma(R), added to the monopole (whose own
    vertical force near the plane is much weaker). An infinite sheet's potential grows without
    bound with |z|, while far from the disc its mass is already in the monopole, so the term
    saturates: phi = 2 sigma_z^2 c tanh(ln cosh(z/z0) / c), c = ln cosh(`saturation`), i.e. the
    sheet's vertical force fades beyond ~`saturation` z0. It vanishes in the plane, so v_c(R)
    is the monopole's.
    """

    sigma0: float  # central surface density, Msun / kpc^2
    r_d: float
    z0: float
    saturation: float = 2.5

    @property
    def _c(self) -> float:
        return float(np.log(np.cosh(self.saturation)))

    def sigma_z2(self, r_cyl: np.ndarray) -> np.ndarray:
        return np.pi * G * self.sigma0 * np.exp(-np.asarray(r_cyl) / self.r_d) * self.z0

    @staticmethod
    def _lncosh(u: np.ndarray) -> np.ndarray:
        a = np.abs(u)
        return a + np.log1p(np.exp(-2 * a)) - np.log(2.0)

    def potential(self, r_cyl: np.ndarray, z: np.ndarray) -> np.ndarray:
        c = self._c
        return 2 * self.sigma_z2(r_cyl) * c * np.tanh(self._lncosh(np.asarray(z) / self.z0) / c)

    def forces(self, r_cyl: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F_R, F_z) = -grad phi, (km/s)^2 / kpc."""
        c = self._c
        u = np.asarray(z) / self.z0
        s2 = self.sigma_z2(r_cyl)
        t = np.tanh(self._lncosh(u) / c)
        f_r = 2 * s2 / self.r_d * c * t
        f_z = -2 * s2 / self.z0 * (1 - t**2) * np.tanh(u)
        return f_r, f_z
