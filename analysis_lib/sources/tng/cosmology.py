"""Cosmic time for TNG's flat Planck-2015 cosmology, for stellar ages from formation scale factors.

TNG's star particles store the scale factor at which they formed (GFM_StellarFormationTime); an age
needs the cosmic time t(a). For a flat universe of matter and a cosmological constant (TNG has no
radiation term) the Friedmann equation integrates in closed form,

    t(a) = 2 / (3 H0 sqrt(Omega_L)) * asinh( sqrt(Omega_L / Omega_m) * a^(3/2) ),

so no numerical integration or new dependency is needed (the test checks it against astropy).
"""

from __future__ import annotations

import numpy as np

# TNG's cosmology (Planck 2015, as in the simulation headers): h, Omega_m, Omega_Lambda.
TNG_HUBBLE = 0.6774
TNG_OMEGA_M = 0.3089
TNG_OMEGA_L = 0.6911

_MPC_KM = 3.0856775814913673e19  # km in one Mpc
_GYR_S = 3.15576e16  # seconds in one Gyr (Julian years, as astropy)


def hubble_time_gyr(hubble: float = TNG_HUBBLE) -> float:
    """1/H0 in Gyr for H0 = 100 h km/s/Mpc."""
    return _MPC_KM / (100.0 * hubble) / _GYR_S


def cosmic_time_gyr(a: np.ndarray | float, hubble: float = TNG_HUBBLE,
                    omega_m: float = TNG_OMEGA_M, omega_l: float = TNG_OMEGA_L) -> np.ndarray:
    """Time since the Big Bang (Gyr) at scale factor a, flat matter + Lambda universe."""
    a = np.asarray(a, dtype=np.float64)
    if abs(omega_m + omega_l - 1.0) > 1e-3:
        raise ValueError(f"cosmology is not flat: Omega_m {omega_m} + Omega_L {omega_l} != 1")
    th = hubble_time_gyr(hubble)
    if omega_l <= 0.0:  # Einstein-de Sitter limit
        return 2.0 / 3.0 * th * a**1.5
    return 2.0 / (3.0 * np.sqrt(omega_l)) * th * np.arcsinh(np.sqrt(omega_l / omega_m) * a**1.5)


def stellar_age_gyr(a_form: np.ndarray, a_now: float, hubble: float = TNG_HUBBLE,
                    omega_m: float = TNG_OMEGA_M, omega_l: float = TNG_OMEGA_L) -> np.ndarray:
    """Age (Gyr) at the snapshot time a_now of stars born at scale factor a_form."""
    t_now = cosmic_time_gyr(a_now, hubble, omega_m, omega_l)
    return t_now - cosmic_time_gyr(a_form, hubble, omega_m, omega_l)
