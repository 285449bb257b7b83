"""The mock universe: a population of particle galaxies drawn from published z ~ 0 relations.

Modules: relations (published curves), population (the galaxy table), mass_model (spherical
components, total potential), dynamics (equilibrium velocities, orbit check), stellar_pops
(ages, metallicities), ssp (g, r luminosities), galaxy (one Galaxy from a row), source
(MockSource), validation (relations and degeneracies, tables and figures).
"""

from analysis_lib.sources.mock.source import MockSource

__all__ = ["MockSource"]
