"""Published scaling relations at z ~ 0, in one place, used both to draw and to check the mock.

Each function takes stellar or halo masses in Msun and returns the relation's median (or the
mean of a log quantity), with the source named. Coefficients are the published ones; where a
value was read from a figure rather than a table, the docstring says so. Nothing here is tuned
to the study's results.
"""

from __future__ import annotations

import numpy as np

G_KPC_KMS2_MSUN = 4.300917e-6  # gravitational constant in kpc (km/s)^2 / Msun


def moster13_mstar(m_halo: np.ndarray) -> np.ndarray:
    """Moster, Naab & White 2013 (MNRAS 428, 3121) z = 0 SHMR: M* (Msun) for M200c (Msun).

    M* = 2 N Mh / [(Mh/M1)^-beta + (Mh/M1)^gamma]; log M1 = 11.590, N = 0.0351,
    beta = 1.376, gamma = 0.608 (their Table 1, z = 0 values).
    """
    mh = np.asarray(m_halo, dtype=float)
    m1, n, beta, gamma = 10**11.590, 0.0351, 1.376, 0.608
    return 2.0 * n * mh / ((mh / m1) ** (-beta) + (mh / m1) ** gamma)


def moster13_halo_for_mstar(m_star: np.ndarray) -> np.ndarray:
    """Inverse of the Moster+2013 median relation (monotonic), by interpolation on a grid."""
    grid = np.logspace(10.0, 15.5, 2000)
    return 10 ** np.interp(np.log10(m_star), np.log10(moster13_mstar(grid)), np.log10(grid))


def peng10_quenched_fraction(m_star: np.ndarray) -> np.ndarray:
    """Mass-quenched (red) fraction of centrals, Peng+2010 (ApJ 721, 193) mass term.

    f_q = 1 - exp[-(M*/10^10.56)^0.80]. Quoted by the design note (marked 'verify'); the exact
    published fit has a Chabrier-IMF pivot M* ~ 10^10.6 for the red sequence.
    """
    m = np.asarray(m_star, dtype=float)
    return 1.0 - np.exp(-((m / 10**10.56) ** 0.80))


def shen03_size(m_star: np.ndarray, early: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shen+2003 (MNRAS 343, 978) r-band projected half-light radius (kpc) and sigma_lnR.

    Early: R50 = 2.88e-6 kpc * M*^0.56; late: R50 = 0.10 kpc * M*^0.14 (1 + M*/3.98e10)^0.25.
    Scatter sigma_lnR = 0.34 + 0.13 / [1 + (M*/3.98e10)^2] (their dispersion fit, used for
    both types as the design note does).
    """
    m = np.asarray(m_star, dtype=float)
    early = np.asarray(early, dtype=bool)
    r_early = 2.88e-6 * m**0.56
    r_late = 0.10 * m**0.14 * (1 + m / 3.98e10) ** 0.25
    sig = 0.34 + 0.13 / (1 + (m / 3.98e10) ** 2)
    return np.where(early, r_early, r_late), sig


def vdw14_size(m_star: np.ndarray, early: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """van der Wel+2014 (ApJ 788, 28) z = 0.25 bin: R_e = A (M*/5e10)^alpha (kpc), sigma_lnR.

    Early: log A = 0.60, alpha = 0.75, sigma = 0.10 dex; late: log A = 0.86, alpha = 0.25,
    sigma = 0.16 dex (design note; late values marked 'verify').
    """
    m = np.asarray(m_star, dtype=float)
    early = np.asarray(early, dtype=bool)
    log_a = np.where(early, 0.60, 0.86)
    alpha = np.where(early, 0.75, 0.25)
    sig_dex = np.where(early, 0.10, 0.16)
    return 10**log_a * (m / 5e10) ** alpha, sig_dex * np.log(10)


SIZE_RELATIONS = {"shen03": shen03_size, "vdw14": vdw14_size}

# Gallazzi+2005 (MNRAS 362, 41) median stellar metallicity vs stellar mass (their Table 2),
# log Z/Zsun at log M* (Msun), with 16th and 84th percentiles.
_GALLAZZI_LOGM = np.array([9.91, 10.31, 10.51, 10.72, 11.11, 11.51])
_GALLAZZI_MED = np.array([-0.41, -0.11, -0.01, 0.04, 0.10, 0.13])
_GALLAZZI_P16 = np.array([-1.02, -0.52, -0.36, -0.22, -0.04, 0.04])
_GALLAZZI_P84 = np.array([0.00, 0.12, 0.15, 0.17, 0.21, 0.22])


def gallazzi05_logz_split(m_star: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median log10(Z/Zsun) and the widths below (P50 - P16) and above (P84 - P50), in dex.

    The distribution is skewed (a long metal-poor tail, few stars above +0.2 dex at any mass):
    a split normal with these two widths keeps its shape, which a symmetric one would not.
    """
    lm = np.log10(np.asarray(m_star, dtype=float))
    med = np.interp(lm, _GALLAZZI_LOGM, _GALLAZZI_MED)
    below = med - np.interp(lm, _GALLAZZI_LOGM, _GALLAZZI_P16)
    above = np.interp(lm, _GALLAZZI_LOGM, _GALLAZZI_P84) - med
    return med, below, above


SOLAR_LOG_OH = 8.69  # 12 + log(O/H) of the Sun (Asplund et al. 2009)


def curti20_gas_log_z(m_star: np.ndarray) -> np.ndarray:
    """Gas-phase log10(Z/Zsun) at M* (Msun): the Curti et al. (2020, MNRAS 491, 944) MZR.

    12 + log(O/H) = Z0 - (gamma / beta) log10(1 + (M*/M0)^-beta) with Z0 = 8.793,
    log M0 = 10.02, gamma = 0.28, beta = 1.2 (their T_e-anchored calibration, SDSS), relative to
    the solar 8.69. It saturates near solar at high mass.
    """
    m = np.asarray(m_star, dtype=float)
    log_oh = 8.793 - (0.28 / 1.2) * np.log10(1.0 + (m / 10**10.02) ** -1.2)
    return log_oh - SOLAR_LOG_OH


def xgass_log_hi_fraction(m_star: np.ndarray) -> np.ndarray:
    """<log M_HI/M*> of star-forming galaxies, xGASS (Catinella+2018) trend, as the design note.

    -0.85 - 0.65 (log M* - 10); an approximate linear reading of their scaling relations.
    """
    return -0.85 - 0.65 * (np.log10(np.asarray(m_star, dtype=float)) - 10.0)


def xcoldgass_log_h2_fraction(m_star: np.ndarray) -> np.ndarray:
    """<log M_H2/M*> of star-forming galaxies, xCOLD GASS (Saintonge+2017), read from their Fig.

    About -1.0 up to log M* = 10.5 and falling above it; the slope -0.7 above the break is our
    approximate reading, not a published fit.
    """
    lm = np.log10(np.asarray(m_star, dtype=float))
    return -1.0 - 0.7 * np.clip(lm - 10.5, 0.0, None)


def wang16_hi_radius_kpc(m_hi: np.ndarray) -> np.ndarray:
    """R_HI (kpc), where the HI surface density falls to 1 Msun/pc^2, at HI mass M_HI (Msun).

    Half the diameter of the HI size-mass relation of Wang et al. (2016, MNRAS 460, 2143),
    log D_HI = 0.506 log M_HI - 3.293 (hydrogen only, 0.06 dex scatter).
    """
    return 0.5 * 10 ** (0.506 * np.log10(np.asarray(m_hi, dtype=float)) - 3.293)


# Cold gas of early types (ATLAS3D), which is bimodal rather than a scaled-down version of the
# star-forming relations: most have none we could resolve, a minority hold a small disc.
ATLAS3D_H2_DETECTED = 0.22  # Young et al. (2011, MNRAS 414, 940): CO detection rate
ATLAS3D_H2_LOG_FRACTION = (-2.5, 0.5)  # detected: log M_H2/M*, mean and scatter (approximate
#                                        reading of their M_H2 range 10^7.1-10^9.3 at M* 1e10-11.5)
ATLAS3D_HI_DETECTED = 0.34  # Serra et al. (2012, MNRAS 422, 1835): HI detection rate
ATLAS3D_HI_LOG_FRACTION = (-2.0, 0.6)  # detected: log M_HI/M* (approximate reading, 1e7-5e9)


def reyes11_log_v80(m_star: np.ndarray) -> np.ndarray:
    """Reyes+2011 (MNRAS 417, 2347) stellar-mass Tully-Fisher: log V80 (km/s).

    log V80 = 2.142 + 0.278 (log M* - 10.10); intrinsic scatter 0.036 dex.
    """
    return 2.142 + 0.278 * (np.log10(np.asarray(m_star, dtype=float)) - 10.10)


def zahid16_log_sigma(m_star: np.ndarray) -> np.ndarray:
    """Zahid+2016 (ApJ 832, 203) sigma-M* relation for quiescent galaxies: log sigma (km/s).

    sigma = sigma_b (M*/M_b)^alpha1 below M_b = 10^10.26 and ^alpha2 above, with
    log sigma_b = 2.073, alpha1 = 0.403, alpha2 = 0.293 (coefficients as we recall
    their eq. 4, not checked against the paper here; the design note marks the break 'verify').
    """
    lm = np.log10(np.asarray(m_star, dtype=float))
    lb = 10.26
    slope = np.where(lm < lb, 0.403, 0.293)
    return 2.073 + slope * (lm - lb)


def bell03_log_ml_r(g_minus_r: np.ndarray, kroupa_offset_dex: float = -0.093) -> np.ndarray:
    """Bell+2003 (ApJS 149, 289) log(M*/L_r) = -0.306 + 1.097 (g - r), diet Salpeter IMF.

    Shifted by -0.093 dex to a Kroupa IMF (Bell+2003 sec. 2.4 gives -0.15 dex for Kroupa
    relative to their diet Salpeter; -0.093 is the commonly used Chabrier/Kroupa shift of
    Gallazzi+2008). SDSS g, r; the mock's LSST g - r differs by a few hundredths of a mag.
    """
    return -0.306 + 1.097 * np.asarray(g_minus_r, dtype=float) + kroupa_offset_dex


def cappellari06_ml_i(sigma_e: np.ndarray) -> np.ndarray:
    """Cappellari+2006 dynamical (M/L)_I = 3.80 (sigma_e / 200 km/s)^0.84, 13 % scatter."""
    return 3.80 * (np.asarray(sigma_e, dtype=float) / 200.0) ** 0.84


# Central dark-matter fractions, reference levels for the validation figures:
ATLAS3D_FDM_RE_MEDIAN = 0.13  # Cappellari+2013 (MNRAS 432, 1709): sphere of radius R_e, ETGs
LOVELL18_FDM_RHALF_MIN = 0.5  # TNG100, Lovell+2018 (MNRAS 481, 1950): >~0.5 within r_half 3D
