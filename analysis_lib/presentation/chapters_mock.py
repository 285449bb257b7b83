"""What the mock-universe and observation chapters run, so their notebooks stay a few lines.

Each function gathers one section's tables and figures from the tested modules of
`sources/mock` (populations, dynamics, stellar populations, universes) and `observe`
(instruments, binning, dust); nothing here computes physics of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.config import load_config


@dataclass
class UniverseOverview:
    """Populations, built-galaxy summaries and central dark-matter fractions per universe."""

    populations: dict[str, pd.DataFrame]
    summaries: dict[str, pd.DataFrame]
    mass_fractions: dict[str, pd.DataFrame]
    descriptions: pd.DataFrame
    galaxies: dict[str, list] = field(default_factory=dict)
    size_relations: dict[str, str] = field(default_factory=dict)

    def fdm_table(self) -> pd.DataFrame:
        from analysis_lib.sources.mock import validation as val

        return val.fdm_comparison_table(self.mass_fractions)

    def fdm_figure(self):
        from analysis_lib.sources.mock import validation as val

        return val.fdm_figure(self.mass_fractions)

    def relation_table(self, universe: str = "observed", size_relation: str | None = None
                       ) -> pd.DataFrame:
        """Offsets and scatters of one universe's galaxies about the published relations."""
        from analysis_lib.sources.mock import validation as val

        relation = size_relation or self.size_relations.get(universe, "shen03_mass")
        return val.relation_table(self.populations[universe], self.summaries.get(universe),
                                  size_relation=relation)

    def degeneracy_table(self, universe: str = "observed") -> pd.DataFrame:
        """At fixed r luminosity, the scatter left in M*/L, f_DM and M_tot (built galaxies)."""
        from analysis_lib.sources.mock import validation as val

        if universe not in self.summaries:
            return pd.DataFrame()
        return val.degeneracy_table(self.summaries[universe])

    def relation_figure(self):
        from analysis_lib.sources.mock import validation as val

        return val.universe_relation_figure(self.populations, self.summaries or None)


def universe_overview(profile: str, universes: list[str], n_population: int, n_built: int,
                      overrides: list[str] | None = None, progress: bool = True
                      ) -> UniverseOverview:
    """Draw each universe's population (n_population rows, exact mass models, cheap) and build
    its first n_built galaxies with particles (for dynamics and light, ~0.2 s each).

    The same seed and profile for every universe: the universes differ only by their knobs, so
    differences between them are differences of physics, not of sampling.
    """
    from tqdm.auto import tqdm

    from analysis_lib.config import universes as universe_table
    from analysis_lib.io import tqdm_options
    from analysis_lib.sources.mock import MockSource
    from analysis_lib.sources.mock import validation as val

    table = universe_table()
    pops, sums, fracs, gals, sizes = {}, {}, {}, {}, {}
    for name in universes:
        cfg = load_config(profile, [*(overrides or []), f"mock.universe={name}",
                                    f"data.n_galaxies={max(int(n_population), 1)}"])
        source = MockSource(cfg)
        pops[name] = source.population
        sizes[name] = cfg["mock"]["size_relation"]
        fracs[name] = val.population_mass_fractions(source.population, cfg["mock"])
        ids = source.galaxy_ids()[: max(int(n_built), 0)]
        bar = tqdm(ids, desc=f"{name} galaxies", **tqdm_options(progress))
        built = [source.load(i) for i in bar]
        gals[name] = built
        if built:
            sums[name] = val.summarise_galaxies(built)
    descriptions = pd.DataFrame([{"universe": n, "knobs": ", ".join(
        f"{k}={v}" for k, v in (table[n].get("knobs") or {}).items()) or "(defaults)",
        "what it is": " ".join(str(table[n].get("description", "")).split())}
        for n in universes])
    return UniverseOverview(populations=pops, summaries=sums, mass_fractions=fracs,
                            descriptions=descriptions, galaxies=gals, size_relations=sizes)


def shortcut_checks(table: pd.DataFrame) -> pd.DataFrame:
    """The shortcut checks of the mock (type vs SFR and kinetic B/T, M*/L vs colour) on a
    dataset's table, values and uncertainties to 3 decimals; see sources/mock/shortcuts.py."""
    from analysis_lib.sources.mock import shortcuts

    return shortcuts.shortcut_table(table).round({"value": 3, "uncertainty": 3})


def disc_dynamics(galaxies: list, n_orbits: float = 3.0) -> tuple[pd.DataFrame, dict | None]:
    """sigma_R/sigma_z and Toomre Q of every disc, and the orbit-integration equilibrium test of
    the most massive disc-dominated galaxy (thickness and Lagrangian radii over n_orbits)."""
    from analysis_lib.sources.mock import equilibrium as eq

    summary = eq.disc_summary(galaxies)
    discs = [g for g in galaxies if g.meta.get("disc_sheet") is not None
             and g.meta.get("bt", 1.0) < 0.5]
    if not discs:
        return summary, None
    best = max(discs, key=lambda g: float(g.stars.mass.sum()))
    return summary, eq.disc_equilibrium(best, n_orbits=n_orbits)


def anisotropy_profiles(overview: UniverseOverview,
                        universes: tuple[str, ...] = ("observed", "radial")) -> pd.DataFrame:
    """beta(r) of the most spheroid-dominated built galaxy of each universe."""
    from analysis_lib.sources.mock import equilibrium as eq

    frames = []
    for name in universes:
        gals = [g for g in overview.galaxies.get(name, []) if g.meta.get("bt", 0.0) >= 0.5]
        if not gals:
            continue
        g = max(gals, key=lambda g: (g.meta.get("bt", 0.0), float(g.stars.mass.sum())))
        prof = eq.anisotropy_profile(g)
        prof.insert(0, "galaxy_id", g.galaxy_id)
        prof.insert(0, "universe", name)
        frames.append(prof)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def stellar_population_checks(galaxies: list) -> pd.DataFrame:
    """Where the built galaxies' star particles sit on the SSP table's metallicity grid."""
    from analysis_lib.sources.mock import ssp

    if not galaxies:
        return pd.DataFrame()
    z = np.concatenate([g.stars.metallicity for g in galaxies])
    out = ssp.fraction_outside_z(z)
    lo, hi = ssp.z_range()
    return pd.DataFrame([{"star particles": len(z), "table Z range": f"{lo:g}-{hi:g}",
                          **{f"fraction {k}": v for k, v in out.items()}}])


def instrument_showcase(cfg: dict, galaxy_id: int, projection: str = "x"):
    """One galaxy seen by every instrument of instruments.yaml (figure), from its particles."""
    from analysis_lib.dataset.build import make_source
    from analysis_lib.observe.showcase import instrument_panels, plot_instruments
    from analysis_lib.presentation.report import source_label

    galaxy = make_source(cfg).load(int(galaxy_id))
    records = instrument_panels(galaxy, cfg, projection)
    return plot_instruments(records, source=source_label(cfg),
                            fov_rhalf=float(cfg["observe"]["fov_rhalf"]))


def coverage_test(profile: str, n_galaxies: int, instrument: str = "manga_like",
                  masses: tuple[float, float] = (5.0e6, 2.0e7)) -> pd.DataFrame:
    """Map coverage of the same galaxies at two star-particle masses, under `instrument` and
    under `ideal` (the paper's per-pixel maps), built once into data/datasets/coverage/.

    Coverage should follow surface brightness and S/N, not the number of particles: the
    per-row ratio of coverage (fine / coarse particles) should be near 1, and adding coverage
    to a fit of log M* on M_r should not lower its scatter.
    """
    from analysis_lib.dataset.build import ensure_dataset
    from analysis_lib.observe.coverage_check import coverage_check
    from analysis_lib.paths import DATASETS_DIR

    rows = []
    for inst in (instrument, "ideal"):
        paths = []
        for mass in masses:
            cfg = load_config(profile, [f"data.n_galaxies={n_galaxies}",
                                        f"observe.instrument={inst}",
                                        f"mock.star_particle_mass={mass:g}"])
            path = Path(DATASETS_DIR) / "coverage" / f"{profile}_{inst}_{mass:.0e}.h5"
            paths.append(ensure_dataset(cfg, path, progress=False))
        res = coverage_check(*paths)
        rows.append({
            "instrument": inst, "galaxies x projections": res["rows_matched"],
            "star particle masses [Msun]": f"{masses[0]:.0e} / {masses[1]:.0e}",
            "median coverage, fine / coarse [pixels]":
                f"{res['median_coverage_fine']:.0f} / {res['median_coverage_coarse']:.0f}",
            "median ratio (16-84 %)":
                f"{res['median_ratio']:.2f} ({res['ratio_p16']:.2f}-{res['ratio_p84']:.2f})",
            "scatter drop of log M* at fixed M_r, fine / coarse":
                f"{res['scatter_fine']['scatter_reduction']:.1%} / "
                f"{res['scatter_coarse']['scatter_reduction']:.1%}",
            "meets the survey target (0.8-1.25, < 5 %)": res["passes"]})
    return pd.DataFrame(rows)
