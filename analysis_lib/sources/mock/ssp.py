"""g and r luminosities of star particles from the PARSEC SSP table that pynbody ships.

The table (`pynbody/analysis/lsst_ssp.txt`, CMD 3.7, PARSEC v1.2S + COLIBRI, Kroupa IMF) gives
LSST AB absolute magnitudes per solar mass of stars FORMED, on a grid of age (4 Myr - 12.6 Gyr)
and metal mass fraction Z (1.6e-4 - 9.5e-3). Choices made here:

- Interpolation is bilinear in (log age, log Z); values outside the grid are clamped to its
  edge (as pynbody does). The grid stops at Z = 0.0095 (log Z/Zsun = -0.13 for Zsun = 0.0127),
  so metal-rich old populations are slightly too blue and too bright; stated, not corrected.
- A few grid nodes at log age = 9.2 are isolated glitches (r up to 1 mag brighter than both
  age neighbours). Nodes older than 10^8.5 yr whose r or g magnitude departs by more than
  0.15 mag from the mean of their two age neighbours are replaced by that mean (see
  `repaired_nodes()`).
- Particle masses are CURRENT stellar masses (as TNG's), so the light per particle uses the mass
  formed, m_formed = m / (1 - f_loss(age)), with the Chabrier/Kroupa mass-loss fit of
  Leitner & Kravtsov 2011 (ApJ 734, 48): f_loss = 0.046 ln(1 + t / 0.276 Myr).
- Solar absolute AB magnitudes in the LSST bands: g = 5.06, r = 4.64 (Willmer 2018, ApJS 236,
  47, Table 3 LSST rows as we read them; his SDSS g, r values 5.11 / 4.65 and PS1 5.03 / 4.64
  bracket them, so the band-to-band uncertainty is <~ 0.05 mag).
"""

from __future__ import annotations

import functools
from importlib.util import find_spec
from pathlib import Path

import numpy as np

SUN_ABS_MAG_LSST_AB: dict[str, float] = {"g": 5.06, "r": 4.64}
_BAND_COLUMN = {"u": 3, "g": 4, "r": 5, "i": 6, "z": 7, "y": 8}


def ssp_table_path() -> Path:
    """Location of pynbody's LSST SSP table (found without importing pynbody)."""
    spec = find_spec("pynbody")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("pynbody is not installed: its lsst_ssp.txt table is needed")
    path = Path(spec.origin).parent / "analysis" / "lsst_ssp.txt"
    if not path.exists():
        raise FileNotFoundError(f"SSP table not found at {path}")
    return path


@functools.lru_cache(maxsize=1)
def _load_table() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], list]:
    data = np.loadtxt(ssp_table_path(), comments="#")
    ages = np.unique(data[:, 0])
    zs = np.unique(data[:, 1])
    order = np.lexsort((data[:, 1], data[:, 0]))
    data = data[order]
    if len(data) != len(ages) * len(zs):
        raise ValueError(f"{ssp_table_path()}: table is not a full age x Z grid")
    mags = {b: data[:, c].reshape(len(ages), len(zs)).copy() for b, c in _BAND_COLUMN.items()}
    repaired = []
    log_age = np.log10(ages)
    for j in range(len(zs)):
        while True:  # repair the worst outlier of this Z column, then look again
            dev = np.zeros(len(ages))
            for b in ("g", "r"):
                col = mags[b][:, j]
                dev[1:-1] = np.maximum(dev[1:-1], np.abs(col[1:-1] - 0.5 * (col[:-2] + col[2:])))
            dev[log_age < 8.5] = 0.0
            i = int(np.argmax(dev))
            if dev[i] <= 0.15:
                break
            repaired.append((float(ages[i]), float(zs[j])))
            for b in mags:
                mags[b][i, j] = 0.5 * (mags[b][i - 1, j] + mags[b][i + 1, j])
    return log_age, np.log10(zs), mags, repaired


def repaired_nodes() -> list[tuple[float, float]]:
    """(age in yr, Z) of the grid nodes replaced by the mean of their age neighbours."""
    return list(_load_table()[3])


def ssp_abs_mag(age_gyr: np.ndarray, metallicity: np.ndarray, band: str) -> np.ndarray:
    """AB absolute magnitude per solar mass formed, bilinear in (log age, log Z), clamped."""
    log_age_grid, log_z_grid, mags, _ = _load_table()
    if band not in mags:
        raise ValueError(f"band '{band}' not in the SSP table (have {sorted(mags)})")
    table = mags[band]
    la = np.clip(np.log10(np.maximum(np.asarray(age_gyr, float), 1e-6) * 1e9),
                 log_age_grid[0], log_age_grid[-1])
    lz = np.clip(np.log10(np.maximum(np.asarray(metallicity, float), 1e-8)),
                 log_z_grid[0], log_z_grid[-1])
    i = np.clip(np.searchsorted(log_age_grid, la) - 1, 0, len(log_age_grid) - 2)
    j = np.clip(np.searchsorted(log_z_grid, lz) - 1, 0, len(log_z_grid) - 2)
    ta = (la - log_age_grid[i]) / (log_age_grid[i + 1] - log_age_grid[i])
    tz = (lz - log_z_grid[j]) / (log_z_grid[j + 1] - log_z_grid[j])
    return ((1 - ta) * (1 - tz) * table[i, j] + ta * (1 - tz) * table[i + 1, j]
            + (1 - ta) * tz * table[i, j + 1] + ta * tz * table[i + 1, j + 1])


def mass_loss_fraction(age_gyr: np.ndarray) -> np.ndarray:
    """Fraction of the formed mass returned to the ISM by age t (Leitner & Kravtsov 2011)."""
    t_yr = np.maximum(np.asarray(age_gyr, float), 0.0) * 1e9
    return 0.046 * np.log1p(t_yr / 2.76e5)


def particle_luminosities(mass_msun: np.ndarray, age_gyr: np.ndarray, metallicity: np.ndarray,
                          bands: tuple[str, ...] = ("g", "r"),
                          light_per_mass_factor: float | np.ndarray = 1.0
                          ) -> dict[str, np.ndarray]:
    """Dust-free band luminosities (Lsun in each band) of star particles of current mass m.

    `light_per_mass_factor` divides the light at fixed mass (1 for the table's Kroupa IMF;
    a heavier IMF at fixed light gives a factor alpha_IMF > 1, see population.py).
    """
    formed = np.asarray(mass_msun, float) / (1.0 - mass_loss_fraction(age_gyr))
    out = {}
    for band in bands:
        mag = ssp_abs_mag(age_gyr, metallicity, band)
        out[band] = formed * 10 ** (-0.4 * (mag - SUN_ABS_MAG_LSST_AB[band])) / \
            light_per_mass_factor
    return out
