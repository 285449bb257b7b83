"""The one particle container that every source returns and every observation reads.

Sources (the mock universe, TNG cutouts, a local TNG copy) differ in where the particles come
from; the observation, target and feature code must not care. Units are fixed here, once:
positions in kpc (physical, galaxy centre at the origin), velocities in km/s (peculiar, galaxy
systemic velocity removed), masses in Msun, ages in Gyr, metallicity as a mass fraction Z,
luminosities in Lsun in the band named (dust-free; dust is applied per line of sight by the
observation step), specific potential energy in (km/s)^2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SOLAR_METALLICITY = 0.0127  # TNG's convention (Asplund+2009 bulk), used by both sources


class GalaxyInputError(ValueError):
    """A galaxy or particle set that cannot be observed; the message names the galaxy and field."""


class AnalyticProfile(Protocol):
    """A spherical mass component known in closed form (e.g. an NFW halo)."""

    def enclosed_mass(self, r_kpc: np.ndarray) -> np.ndarray:
        """Mass in Msun inside 3D radius r (kpc)."""
        ...


@dataclass
class ParticleSet:
    """Particles of one kind. `extra` holds optional per-particle arrays (e.g. `sfr`, `hsml`)."""

    pos: np.ndarray  # (N, 3) kpc
    vel: np.ndarray  # (N, 3) km/s
    mass: np.ndarray  # (N,) Msun
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pos = np.asarray(self.pos, dtype=np.float64).reshape(-1, 3)
        self.vel = np.asarray(self.vel, dtype=np.float64).reshape(-1, 3)
        self.mass = np.asarray(self.mass, dtype=np.float64).reshape(-1)
        n = len(self.mass)
        if len(self.pos) != n or len(self.vel) != n:
            raise GalaxyInputError(
                f"particle arrays disagree in length: pos {len(self.pos)}, vel {len(self.vel)}, "
                f"mass {n}"
            )
        for name, arr in self.extra.items():
            if len(arr) != n:
                raise GalaxyInputError(f"field '{name}' has {len(arr)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.mass)

    @property
    def radius(self) -> np.ndarray:
        """3D distance from the galaxy centre, kpc."""
        return np.sqrt(np.einsum("ij,ij->i", self.pos, self.pos))

    def enclosed_mass(self, r_kpc: np.ndarray | float) -> np.ndarray:
        """Mass in Msun inside each 3D radius."""
        r_sorted_idx = np.argsort(self.radius)
        r_sorted = self.radius[r_sorted_idx]
        cum = np.concatenate([[0.0], np.cumsum(self.mass[r_sorted_idx])])
        return cum[np.searchsorted(r_sorted, np.asarray(r_kpc, dtype=float), side="right")]


@dataclass
class Stars(ParticleSet):
    """Star particles with their stellar populations and (dust-free) band luminosities."""

    age_gyr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    metallicity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mass fraction Z
    lum: dict[str, np.ndarray] = field(default_factory=dict)  # band -> Lsun, e.g. 'g', 'r'
    potential: np.ndarray | None = None  # (km/s)^2, total potential at each star, if known

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.mass)
        self.age_gyr = np.asarray(self.age_gyr, dtype=np.float64).reshape(-1)
        self.metallicity = np.asarray(self.metallicity, dtype=np.float64).reshape(-1)
        for name, arr in (("age_gyr", self.age_gyr), ("metallicity", self.metallicity)):
            if len(arr) != n:
                raise GalaxyInputError(f"stars field '{name}' has {len(arr)} rows, expected {n}")
        for band, arr in self.lum.items():
            if len(arr) != n:
                raise GalaxyInputError(
                    f"stars luminosity '{band}' has {len(arr)} rows, expected {n}")
        if self.potential is not None and len(self.potential) != n:
            raise GalaxyInputError("stars field 'potential' has the wrong length")


@dataclass
class Gas(ParticleSet):
    """Gas cells or particles: dust comes from their metal column, SFR may be kept in `extra`."""

    metallicity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.metallicity = np.asarray(self.metallicity, dtype=np.float64).reshape(-1)
        if len(self.metallicity) != len(self.mass):
            raise GalaxyInputError("gas field 'metallicity' has the wrong length")


@dataclass
class Galaxy:
    """One galaxy, centred and at rest, as every observation sees it.

    `dm` and `gas` may be particles or analytic profiles (exact enclosed mass); `meta` carries
    source-specific facts that the targets need: at least `galaxy_type` ('early' or 'late') and
    `source` ('mock' or 'tng').
    """

    galaxy_id: int
    stars: Stars
    gas: Gas | None = None
    dm: ParticleSet | AnalyticProfile | None = None
    gas_profile: AnalyticProfile | None = None  # analytic gas beyond the particles, if any
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.stars) == 0:
            raise GalaxyInputError(f"galaxy {self.galaxy_id}: no star particles")

    def enclosed_mass(self, component: str, r_kpc: np.ndarray | float) -> np.ndarray:
        """Mass in Msun inside 3D radius r for 'stars', 'gas', 'dm' or 'total'."""
        r = np.asarray(r_kpc, dtype=float)
        if component == "total":
            return sum(self.enclosed_mass(c, r) for c in ("stars", "gas", "dm"))
        if component == "stars":
            return self.stars.enclosed_mass(r)
        if component == "gas":
            m = self.gas.enclosed_mass(r) if self.gas is not None else np.zeros_like(r)
            if self.gas_profile is not None:
                m = m + self.gas_profile.enclosed_mass(r)
            return m
        if component == "dm":
            return self.dm.enclosed_mass(r) if self.dm is not None else np.zeros_like(r)
        raise ValueError(f"unknown mass component '{component}'")

    def half_mass_radius(self) -> float:
        """3D radius (kpc) enclosing half the stellar mass, from the particles."""
        r = self.stars.radius
        order = np.argsort(r)
        cum = np.cumsum(self.stars.mass[order])
        return float(np.interp(0.5 * cum[-1], cum, r[order]))
