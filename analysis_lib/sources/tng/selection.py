"""The paper's sample cuts, in physical units and in TNG catalogue units.

The paper keeps z = 0 galaxies with stellar mass within 30 kpc above 1e10 Msun and total subhalo
mass (Subfind) below a cluster-scale cut (cfg data.min_mstar_30kpc, data.max_halo_mass). Catalogue
masses are in 1e10 Msun/h, so 1e10 Msun is 0.6774 there. The catalogues hold the total bound
stellar mass, not the 30 kpc one; selecting on it is a superset of the 30-kpc cut (the total is at
least the 30 kpc mass), so the exact cut is applied after loading, with `passes_sample_cuts`.
"""

from __future__ import annotations

from collections.abc import Mapping

from analysis_lib.particles import Galaxy


def catalogue_mass_limits(cfg: Mapping, hubble: float) -> tuple[float, float]:
    """(lower stellar-mass limit, upper total-mass limit) in catalogue units, 1e10 Msun/h."""
    data = cfg["data"]
    return (float(data["min_mstar_30kpc"]) * hubble / 1e10,
            float(data["max_halo_mass"]) * hubble / 1e10)


def passes_sample_cuts(galaxy: Galaxy, cfg: Mapping) -> bool:
    """True if the loaded galaxy has M*(< 30 kpc, 3D) above the paper's lower cut."""
    return float(galaxy.stars.enclosed_mass(30.0)) > float(cfg["data"]["min_mstar_30kpc"])
