"""The paper's sample cuts, in physical units and in TNG catalogue units.

The paper keeps z = 0 galaxies with stellar mass within 30 kpc above 1e10 Msun and total subhalo
mass (Subfind) below a cluster-scale cut (cfg data.min_mstar_30kpc, data.max_halo_mass). Catalogue
masses are in 1e10 Msun/h, so 1e10 Msun is 0.6774 there. The catalogues hold the total bound
stellar mass, not the 30 kpc one; selecting on it is a superset of the 30-kpc cut (the total is at
least the 30 kpc mass), so the exact cut is applied after loading, with `passes_sample_cuts`.

`SIMULATIONS` holds the box and particle masses of TNG50-1, TNG100-1 and TNG300-1 (the same cuts
apply to each; TNG300-1's galaxies at the 1e10 Msun cut have only ~900 star particles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analysis_lib.particles import Galaxy


def catalogue_mass_limits(cfg: Mapping, hubble: float) -> tuple[float, float]:
    """(lower stellar-mass limit, upper total-mass limit) in catalogue units, 1e10 Msun/h."""
    data = cfg["data"]
    return (float(data["min_mstar_30kpc"]) * hubble / 1e10,
            float(data["max_halo_mass"]) * hubble / 1e10)


def passes_sample_cuts(galaxy: Galaxy, cfg: Mapping) -> bool:
    """True if the loaded galaxy has M*(< 30 kpc, 3D) above the paper's lower cut."""
    return float(galaxy.stars.enclosed_mass(30.0)) > float(cfg["data"]["min_mstar_30kpc"])


@dataclass(frozen=True)
class SimulationFacts:
    """What differs between the TNG runs the paper's selection can be applied to.

    From Nelson et al. (2019, Comput. Astrophys. Cosmol. 6, 2), Table 1 (rounded there): box side
    L in comoving Mpc/h, dark-matter particle mass m_DM and target baryonic mass m_b in Msun.
    Every TNG run shares the Planck-2015 h = 0.6774, so the catalogue cuts (1e10 Msun/h units)
    are the same numbers in all of them; what changes is the box (periodic wrapping) and the
    resolution: how many star particles a galaxy at the mass cut has.
    """

    name: str
    box_ckpc_h: float
    m_dm_msun: float
    m_baryon_msun: float
    n_dm_side: int  # N_DM = n^3 (above 2^32 needs the header's NumPart_Total_HighWord)
    hubble: float = 0.6774

    @property
    def mass_dm_code(self) -> float:
        """m_DM in catalogue/header units (1e10 Msun/h), what Header/MassTable[1] holds."""
        return self.m_dm_msun * self.hubble / 1e10

    def star_particles_at(self, mstar_msun: float) -> float:
        """Roughly how many star particles a galaxy of this stellar mass has (M* / m_b)."""
        return float(mstar_msun) / self.m_baryon_msun


SIMULATIONS: dict[str, SimulationFacts] = {
    "TNG50-1": SimulationFacts("TNG50-1", 35000.0, 4.5e5, 8.5e4, 2160),
    "TNG100-1": SimulationFacts("TNG100-1", 75000.0, 7.5e6, 1.4e6, 1820),
    "TNG300-1": SimulationFacts("TNG300-1", 205000.0, 5.9e7, 1.1e7, 2500),
}


def simulation_facts(name: str) -> SimulationFacts:
    """The facts of one TNG run (a clear error for an unknown name)."""
    try:
        return SIMULATIONS[name]
    except KeyError:
        raise ValueError(f"unknown TNG simulation {name!r}; known: {sorted(SIMULATIONS)}") \
            from None


def check_simulation_record(name: str, box_size: float | None, hubble: float | None,
                            mass_dm: float | None, rtol: float = 0.02) -> list[str]:
    """Disagreements between a simulation record (API / header, code units) and the facts.

    Table 1's masses are rounded to two digits, hence the 2 % tolerance. An empty list means the
    record is the simulation it claims to be (or the name is not one of SIMULATIONS).
    """
    facts = SIMULATIONS.get(name)
    if facts is None:
        return []
    problems = []
    for what, got, want in (("boxsize", box_size, facts.box_ckpc_h),
                            ("hubble", hubble, facts.hubble),
                            ("mass_dm", mass_dm, facts.mass_dm_code)):
        if got is not None and abs(float(got) / want - 1.0) > rtol:
            problems.append(f"{what} {float(got):.6g} is not {name}'s {want:.6g}")
    return problems
