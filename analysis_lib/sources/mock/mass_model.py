"""Spherical mass components and the total potential a mock galaxy lives in.

Units: kpc, Msun, (km/s)^2 for potentials. Choices:

- Stellar spheroid: Hernquist (1990) profile, scale a (3D half-mass radius (1 + sqrt 2) a).
- Discs (stars and gas): exponential in R, sech^2 in z. SphericalModel holds their monopole
  (M(<r) = M [1 - (1 + r/Rd) e^{-r/Rd}], the razor-thin disc's enclosed mass, used for the
  spheroid's distribution function and halo contraction); `DiscResidual` adds the flattened
  rest, so that `GalaxyPotential` is the exact potential of thick exponential discs
  (`ThickExponentialDisc`, Hankel-transform tables) + bulge + halo.
- Dark matter: NFW (M200c, c), scaled by (1 - M_galaxy / M200c) so that the halo's total mass
  inside r200 stays M200c; optional baryonic contraction (Gnedin+2004 modified adiabatic
  contraction, A = 0.85, w = 0.8; Blumenthal+1986 with A = w = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache

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


# --- flattened discs: the exact potential of a thick exponential disc, on tables -------------
# In units G M = R_d = 1 the potential of rho = e^{-R} sech^2(z/h) / (4 pi h) depends only on
# h = z0 / R_d. Hankel form (Binney & Tremaine 2008, eq. 2.185 with a vertical profile):
#   Phi(R, z) = -int_0^inf J0(kR) S(k) Z(k, z) dk,  S(k) = (1 + k^2)^(-3/2),
#   Z(k, z) = int rho_z(z') e^{-k|z - z'|} dz',  rho_z = sech^2(z'/h) / (2h),
# and F_R = -int k J1(kR) S Z dk, F_z = int J0(kR) S dZ/dz dk. Z depends on (s = k h, u = z/h)
# only; for u > 12 it is e^{-ku} L(s), L(s) = (pi s/2) / sin(pi s/2) (the two-sided Laplace
# transform of sech^2; terms with s > 1.9 are below e^{-22} there). Tables are built once per
# process for a geometric grid of h and interpolated linearly in log h (forces to ~0.5 %).
_K = np.concatenate([np.arange(0.0, 20.0, 0.01), np.arange(20.0, 200.0 + 1e-9, 0.05)])
_K_W = np.gradient(_K)  # trapezoid weights on the two uniform pieces (end halves below)
_K_W[0] *= 0.5
_K_W[-1] *= 0.5
_R_TAB = 0.25 * np.sinh(np.linspace(0.0, np.arcsinh(30.0 / 0.25), 161))  # R / R_d
_U_IN = 2.0 * np.sinh(np.linspace(0.0, np.arcsinh(6.0), 29))  # z / z0 up to 12
_S_TAB = np.geomspace(1e-4, 300.0, 240)
_H_NODES = np.geomspace(0.004, 1.0, 59)  # z0 / R_d, ratio 1.1
_TAB_EDGE = 30.0  # tables reach R, |z| = 30 R_d; beyond, the disc's monopole (error < 0.5 %)


def _sech2(x: np.ndarray) -> np.ndarray:
    e = np.exp(-2.0 * np.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


@lru_cache(maxsize=1)
def _vertical_kernel() -> tuple[np.ndarray, np.ndarray]:
    """A(s, u) = int_0^inf sech^2(u - t) e^{-st} dt and B (with u + t), at (_S_TAB, _U_IN).

    Z(s, u) = (A + B) / 2 and dZ/du = -(s / 2)(A - B).
    """
    t = np.concatenate([[0.0], np.geomspace(1e-6, 60.0, 2500)])
    w = np.gradient(t)
    w[0] *= 0.5
    w[-1] *= 0.5
    e = np.exp(-np.outer(_S_TAB, t)) * w
    a = e @ _sech2(_U_IN[:, None] - t[None, :]).T
    b = e @ _sech2(_U_IN[:, None] + t[None, :]).T
    return a, b


@lru_cache(maxsize=1)
def _bessel_weights() -> tuple[np.ndarray, np.ndarray]:
    from scipy.special import j0, j1

    kr = np.outer(_R_TAB, _K)
    sw = (1.0 + _K**2) ** -1.5 * _K_W
    return j0(kr) * sw, j1(kr) * (_K * sw)


def _table_cache_path(node: int):
    """File of one node's tables under DATA_DIR/cache; the name carries a hash of every grid
    (and of this module's table code version), so a changed grid never reads a stale table."""
    from analysis_lib.io import short_digest
    from analysis_lib.paths import DATA_DIR

    grids = (_K, _R_TAB, _U_IN, _S_TAB, _H_NODES, np.array([_TAB_EDGE, _TABLE_VERSION]))
    key = short_digest((np.ascontiguousarray(a, np.float64).tobytes() for a in grids), 12,
                       "sha1")  # sha1, 12 digits: the names of caches already on disk
    return DATA_DIR / "cache" / "thick_disc" / f"{key}_{node:02d}.npz"


_TABLE_VERSION = 1.0  # raise when _compute_disc_table changes


@cache
def _disc_table(node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(z grid, Phi, F_R, F_z) for node `node`: from the on-disk cache, else computed and saved.

    Building one node takes ~0.05 s and a population touches up to all 59 (~2 s per process,
    which tripled the smoke profile's per-galaxy time); loading one takes ~1 ms. The cache is
    a pure function of the grids (see _table_cache_path), written atomically (parallel workers
    may race: each writes its own temporary file, the last rename wins, all contents equal).
    A cache that cannot be read or written is skipped (the table is computed).
    """
    from analysis_lib.io import atomic_write

    path = _table_cache_path(node)
    try:
        with np.load(path) as f:
            return f["z"], f["phi"], f["fr"], f["fz"]
    except (OSError, KeyError, ValueError):
        pass
    z, phi, fr, fz = _compute_disc_table(node)
    try:
        atomic_write(path, lambda tmp: np.savez(tmp, z=z, phi=phi, fr=fr, fz=fz),
                     suffix=".tmp.npz")
    except OSError:
        pass
    return z, phi, fr, fz


def _compute_disc_table(node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(z grid, Phi, F_R, F_z) on (_R_TAB, z >= 0) for h = _H_NODES[node], units G M = R_d = 1."""
    h = float(_H_NODES[node])
    a, b = _vertical_kernel()
    s = _K * h
    ls, l_tab = np.log(np.maximum(s, _S_TAB[0])), np.log(_S_TAB)
    zin = np.empty((len(_K), len(_U_IN)))
    dzin = np.empty_like(zin)
    for j in range(len(_U_IN)):
        aj, bj = np.interp(ls, l_tab, a[:, j]), np.interp(ls, l_tab, b[:, j])
        zin[:, j] = 0.5 * (aj + bj)
        dzin[:, j] = -0.5 * s * (aj - bj) / h
    z_out = np.geomspace(12.0 * h, _TAB_EDGE, 41)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        lap = np.where(s < 1.9, np.where(s > 0, 0.5 * np.pi * s / np.sin(0.5 * np.pi * s), 1.0),
                       0.0)
    zo = np.exp(-np.outer(_K, z_out)) * lap[:, None]
    z_all = np.concatenate([h * _U_IN, z_out])
    zk = np.concatenate([zin, zo], axis=1)
    dzk = np.concatenate([dzin, -_K[:, None] * zo], axis=1)
    j0w, j1w = _bessel_weights()
    return z_all, -(j0w @ zk), -(j1w @ zk), j0w @ dzk


def _bracket(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index and clamped fractional position of x on a sorted grid (bilinear's weights)."""
    i = np.clip(np.searchsorted(grid, x) - 1, 0, len(grid) - 2)
    return i, np.clip((x - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0)


def bilinear(xg: np.ndarray, yg: np.ndarray, table: np.ndarray, x: np.ndarray,
             y: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of table[xg, yg] at (x, y), clamped to the grid."""
    ix = np.clip(np.searchsorted(xg, x) - 1, 0, len(xg) - 2)
    iy = np.clip(np.searchsorted(yg, y) - 1, 0, len(yg) - 2)
    tx = np.clip((x - xg[ix]) / (xg[ix + 1] - xg[ix]), 0.0, 1.0)
    ty = np.clip((y - yg[iy]) / (yg[iy + 1] - yg[iy]), 0.0, 1.0)
    return ((1 - tx) * (1 - ty) * table[ix, iy] + tx * (1 - ty) * table[ix + 1, iy]
            + (1 - tx) * ty * table[ix, iy + 1] + tx * ty * table[ix + 1, iy + 1])


@dataclass
class ThickExponentialDisc:
    """Exact potential of rho = M / (4 pi R_d^2 z0) e^{-R/R_d} sech^2(z/z0) (see tables above).

    Valid for 0.004 <= z0 / R_d <= 1 (outside, a clear error). Also gives the monopole of the
    razor-thin disc (ExponentialDiscMonopole), which SphericalModel already holds.
    """

    mass: float
    r_d: float
    z0: float

    def __post_init__(self) -> None:
        h = self.z0 / self.r_d
        if not _H_NODES[0] <= h <= _H_NODES[-1]:
            raise ValueError(f"disc z0/R_d = {h:.4g} outside the tabulated range "
                             f"[{_H_NODES[0]}, {_H_NODES[-1]}] (mass {self.mass:.3g} Msun)")
        lh = np.log(_H_NODES)
        self._node = int(np.clip(np.searchsorted(lh, np.log(h)) - 1, 0, len(lh) - 2))
        self._w = float((np.log(h) - lh[self._node]) / (lh[self._node + 1] - lh[self._node]))

    def __getstate__(self) -> dict:
        return {"mass": self.mass, "r_d": self.r_d, "z0": self.z0}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    def _tables(self, r_cyl: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
        """(phi, F_R, F_z) in units G M / R_d (phi) and G M / R_d^2, at R, z in R_d."""
        out = []
        az = np.abs(z)
        for node, w in ((self._node, 1.0 - self._w), (self._node + 1, self._w)):
            zg, phi, fr, fz = _disc_table(node)
            out.append([w * bilinear(_R_TAB, zg, t, r_cyl, az) for t in (phi, fr, fz)])
        phi, fr, fz = (a + b for a, b in zip(*out, strict=True))
        return phi, fr, np.sign(z) * fz

    def _mono(self, r_cyl, z):
        r = np.maximum(np.hypot(r_cyl, z), 1e-9)
        ex = np.exp(-r)
        return -(1.0 - ex) / r, -(1.0 - (1.0 + r) * ex) / r**2, r

    def potential_and_forces(self, r_cyl: np.ndarray, z: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Phi (km/s)^2, F_R, F_z (km/s)^2/kpc) of the thick disc at R, z in kpc."""
        x, y = np.asarray(r_cyl, float) / self.r_d, np.asarray(z, float) / self.r_d
        x, y = np.broadcast_arrays(x, y)
        phi, fr, fz = self._tables(x, y)
        far = (x > _TAB_EDGE) | (np.abs(y) > _TAB_EDGE)
        if np.any(far):
            pm, fm, r = self._mono(x, y)
            phi, fr, fz = (np.where(far, pm, phi), np.where(far, fm * x / r, fr),
                           np.where(far, fm * y / r, fz))
        gm = G * self.mass
        return gm / self.r_d * phi, gm / self.r_d**2 * fr, gm / self.r_d**2 * fz

    def forces(self, r_cyl: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F_R, F_z) (km/s)^2/kpc of the thick disc at R, z in kpc: the same numbers as
        potential_and_forces without the potential, with one R bracket shared by both nodes and
        tables and one z bracket per node (orbit integration spends most of its time here)."""
        x, y = np.asarray(r_cyl, float) / self.r_d, np.asarray(z, float) / self.r_d
        x, y = np.broadcast_arrays(x, y)
        ay = np.abs(y)
        ix, tx = _bracket(_R_TAB, x)
        fr = fz = 0.0
        for node, w in ((self._node, 1.0 - self._w), (self._node + 1, self._w)):
            zg, _, frt, fzt = _disc_table(node)
            iy, ty = _bracket(zg, ay)
            c00, c10 = (1 - tx) * (1 - ty), tx * (1 - ty)
            c01, c11 = (1 - tx) * ty, tx * ty
            fr = fr + w * (c00 * frt[ix, iy] + c10 * frt[ix + 1, iy] + c01 * frt[ix, iy + 1]
                           + c11 * frt[ix + 1, iy + 1])
            fz = fz + w * (c00 * fzt[ix, iy] + c10 * fzt[ix + 1, iy] + c01 * fzt[ix, iy + 1]
                           + c11 * fzt[ix + 1, iy + 1])
        fz = np.sign(y) * fz
        far = (x > _TAB_EDGE) | (ay > _TAB_EDGE)
        if np.any(far):
            _, fm, r = self._mono(x, y)
            fr, fz = np.where(far, fm * x / r, fr), np.where(far, fm * y / r, fz)
        gm = G * self.mass
        return gm / self.r_d**2 * fr, gm / self.r_d**2 * fz

    def monopole_potential_and_forces(self, r_cyl: np.ndarray, z: np.ndarray
                                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same for the razor-thin disc's monopole M(<r) = M [1 - (1 + x) e^{-x}]."""
        x, y = np.asarray(r_cyl, float) / self.r_d, np.asarray(z, float) / self.r_d
        pm, fm, r = self._mono(x, y)
        gm = G * self.mass
        return gm / self.r_d * pm, gm / self.r_d**2 * fm * x / r, gm / self.r_d**2 * fm * y / r


@dataclass
class DiscResidual:
    """Flattened discs minus their monopoles (disc frame): added to a SphericalModel that holds
    the monopoles, it gives the exact potential of bulge + halo + thick exponential discs."""

    discs: list

    def potential(self, r_cyl: np.ndarray, z: np.ndarray) -> np.ndarray:
        out = 0.0
        for d in self.discs:
            out = out + d.potential_and_forces(r_cyl, z)[0] \
                - d.monopole_potential_and_forces(r_cyl, z)[0]
        return out

    def forces(self, r_cyl: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F_R, F_z) = -grad phi, (km/s)^2 / kpc."""
        f_r, f_z = 0.0, 0.0
        for d in self.discs:
            fr, fz = d.forces(r_cyl, z)
            _, mr, mz = d.monopole_potential_and_forces(r_cyl, z)
            f_r, f_z = f_r + fr - mr, f_z + fz - mz
        return f_r, f_z


@dataclass
class GalaxyPotential:
    """Total potential: the spherical model (all monopoles) + the discs' flattened residual."""

    model: SphericalModel
    discs: DiscResidual | None

    def forces(self, r_cyl: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F_R, F_z), (km/s)^2 / kpc, at cylindrical R and height z (kpc, disc frame)."""
        r_cyl, z = np.broadcast_arrays(np.asarray(r_cyl, float), np.asarray(z, float))
        r = np.maximum(np.hypot(r_cyl, z), 1e-9)
        fm = self.model.radial_force(r)
        f_r, f_z = fm * r_cyl / r, fm * z / r
        if self.discs is not None:
            dr, dz = self.discs.forces(r_cyl, z)
            f_r, f_z = f_r + dr, f_z + dz
        return f_r, f_z

    def vcirc(self, r_cyl_kpc: np.ndarray) -> np.ndarray:
        """Circular velocity in the disc plane, sqrt(-R F_R(R, 0)), km/s."""
        r = np.maximum(np.asarray(r_cyl_kpc, float), 1e-9)
        return np.sqrt(np.clip(-r * self.forces(r, np.zeros_like(r))[0], 0.0, None))
# --- Halo response to the baryons (knob mock.halo_response; added by helper "Universes") ---
# (A, w) of contract_halo's orbit-averaged radius rbar = A r200 (r / r200)^w:
# - gnedin04: Gnedin et al. (2004, ApJ 616, 16) modified adiabatic contraction, A = 0.85,
#   w = 0.8, calibrated on hydrodynamical cluster and galaxy simulations (weaker than the
#   classical model because orbits are eccentric);
# - blumenthal86: Blumenthal et al. (1986, ApJ 301, 27) adiabatic contraction of circular
#   orbits, A = w = 1, the classical (strongest) response.
# Used only when mock.contraction is true.
HALO_RESPONSES: dict[str, tuple[float, float]] = {"gnedin04": (0.85, 0.8),
                                                  "blumenthal86": (1.0, 1.0)}


def halo_response_parameters(name: str) -> tuple[float, float]:
    """(A, w) of the named halo-response model; one clear error for an unknown name."""
    if name not in HALO_RESPONSES:
        raise ValueError(f"mock.halo_response '{name}' unknown "
                         f"(choose from {', '.join(HALO_RESPONSES)})")
    return HALO_RESPONSES[name]
