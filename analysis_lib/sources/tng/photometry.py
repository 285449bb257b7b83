"""TNG's stellar photometry (absolute AB magnitudes) turned into band luminosities in Lsun.

GFM_StellarPhotometrics holds, per star particle, dust-free absolute magnitudes in U, B, V, K
(Vega) and g, r, i, z (SDSS, AB), in that column order, from Bruzual & Charlot (2003) population
synthesis on the particle's initial mass, age and metallicity. We keep g and r, the bands the paper
images, and convert with the Sun's absolute AB magnitudes in the SDSS filters from Willmer (2018,
ApJS 236, 47, Table 3): M_sun,g = 5.11, M_sun,r = 4.65. Observation code that turns luminosities
back into magnitudes must use the same values (they are exported here).
"""

from __future__ import annotations

import numpy as np

PHOTOMETRY_COLUMNS: dict[str, int] = {"U": 0, "B": 1, "V": 2, "K": 3, "g": 4, "r": 5, "i": 6,
                                      "z": 7}
SUN_ABS_MAG_AB: dict[str, float] = {"g": 5.11, "r": 4.65}  # Willmer 2018, SDSS filters, AB
KEPT_BANDS: tuple[str, ...] = ("g", "r")


def abs_mag_to_lsun(abs_mag: np.ndarray, band: str) -> np.ndarray:
    """Luminosity in solar units of the band: L = 10^(-0.4 (M - M_sun))."""
    return 10.0 ** (-0.4 * (np.asarray(abs_mag, dtype=np.float64) - SUN_ABS_MAG_AB[band]))


def lsun_to_abs_mag(lum_lsun: np.ndarray, band: str) -> np.ndarray:
    """Absolute AB magnitude of a luminosity in solar units of the band (inverse of the above)."""
    return SUN_ABS_MAG_AB[band] - 2.5 * np.log10(np.asarray(lum_lsun, dtype=np.float64))


def band_luminosities(photometrics: np.ndarray) -> dict[str, np.ndarray]:
    """{'g': Lsun, 'r': Lsun} from the (N, 8) GFM_StellarPhotometrics array."""
    phot = np.asarray(photometrics)
    if phot.ndim != 2 or phot.shape[1] != len(PHOTOMETRY_COLUMNS):
        raise ValueError(f"expected an (N, 8) photometry array, got shape {phot.shape}")
    return {b: abs_mag_to_lsun(phot[:, PHOTOMETRY_COLUMNS[b]], b) for b in KEPT_BANDS}
