"""MockSource: the default data source, a generated population of particle galaxies."""

from __future__ import annotations

import pandas as pd

from analysis_lib.particles import Galaxy
from analysis_lib.sources.mock.galaxy import build_galaxy
from analysis_lib.sources.mock.population import draw_population
from analysis_lib.sources.mock.ssp import SUN_ABS_MAG_SDSS_AB


class MockSource:
    """Population table plus on-demand particle galaxies, deterministic from cfg['seed'].

    `population` has one row per galaxy (galaxy_id 0..n-1) with the drawn properties (truths
    of the generator); `load(galaxy_id)` builds that galaxy's particles, independent of the
    order in which galaxies are loaded.
    """

    sun_abs_mag_ab = SUN_ABS_MAG_SDSS_AB  # luminosities are in SDSS solar units

    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self._population: pd.DataFrame | None = None

    @property
    def population(self) -> pd.DataFrame:
        if self._population is None:
            self._population = draw_population(self.cfg)
        return self._population

    def galaxy_ids(self) -> list[int]:
        return [int(i) for i in self.population["galaxy_id"]]

    def load(self, galaxy_id: int) -> Galaxy:
        pop = self.population
        if not 0 <= int(galaxy_id) < len(pop):
            raise KeyError(f"mock galaxy {galaxy_id} not in the population (0..{len(pop) - 1})")
        return build_galaxy(pop.iloc[int(galaxy_id)], self.cfg)
