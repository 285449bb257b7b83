"""Per-galaxy cross-check of the particles against the Subfind catalogue.

A subhalo cutout holds exactly the particles Subfind bound to that subhalo, so the summed mass of
its star particles (wind cells excluded: Subfind counts them as gas) must equal the catalogue's
`mass_stars` (SubhaloMassType[4]); and the 3D stellar half-mass radius about our centre should
be close to `halfmassrad_stars` (SubhaloHalfmassRadType[4], about SubhaloPos). A failure means
the file does not hold the subhalo it is named after (a wrong id, a halo instead of a subhalo
cutout, another snapshot or simulation) or the units are not what the reader assumes.

Tolerances (documented choices, not published numbers): mass to 1 % (float32 particle masses
sum to the catalogue's value to ~1e-6; 1 % leaves room for catalogues written in single
precision), half-mass radius to 10 % (our centre differs from SubhaloPos, the potential minimum
of all particle types, by up to a softening length, and the two radii interpolate differently).

cfg `tng.catalogue_check`: 'fail' (default: the galaxy fails with the reason, which the dataset
build records per galaxy in its failures), 'warn' (logged, kept in meta) or 'off'.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from analysis_lib.particles import Galaxy, GalaxyInputError

log = logging.getLogger(__name__)

MASS_RTOL = 0.01
RHALF_RTOL = 0.10
MODES = ("fail", "warn", "off")
CHECK_FAILED = "catalogue cross-check failed"  # prefix of the reason string


def check_mode(cfg: Mapping | None) -> str:
    """cfg tng.catalogue_check, validated ('fail' by default)."""
    mode = str(((cfg or {}).get("tng", {}) or {}).get("catalogue_check", "fail"))
    if mode not in MODES:
        raise ValueError(f"tng.catalogue_check must be one of {MODES}, not {mode!r}")
    return mode


def compare_with_catalogue(galaxy: Galaxy, record: Mapping | None, scale_factor: float,
                           hubble: float, *, mass_rtol: float = MASS_RTOL,
                           rhalf_rtol: float = RHALF_RTOL) -> dict:
    """Particles against the catalogue record (API names, code units); a JSON-ready summary.

    Returns {'status': 'ok' | 'mismatch' | 'unchecked', 'reason': str | None, and the compared
    values in Msun and physical kpc}. 'unchecked' when the record lacks both quantities.
    """
    rec = dict(record or {})
    out: dict = {"status": "unchecked", "reason": None}
    problems = []
    m_part = float(galaxy.stars.mass.sum())
    out["mstar_particles_msun"] = m_part
    if _number(rec, "mass_stars") is not None:
        m_cat = _number(rec, "mass_stars") * 1e10 / hubble
        out["mstar_catalogue_msun"] = m_cat
        rel = abs(m_part / m_cat - 1.0) if m_cat > 0 else np.inf
        if not rel <= mass_rtol:
            problems.append(f"summed star-particle mass {m_part:.4g} Msun vs catalogue "
                            f"mass_stars {m_cat:.4g} Msun (off by {100 * rel:.1f} %, "
                            f"tolerance {100 * mass_rtol:g} %)")
    rhalf = float(galaxy.meta.get("rhalf_kpc", galaxy.half_mass_radius()))
    out["rhalf_kpc"] = rhalf
    if _number(rec, "halfmassrad_stars") is not None:
        r_cat = _number(rec, "halfmassrad_stars") * scale_factor / hubble
        out["rhalf_catalogue_kpc"] = r_cat
        rel = abs(rhalf / r_cat - 1.0) if r_cat > 0 else np.inf
        if not rel <= rhalf_rtol:
            problems.append(f"stellar half-mass radius {rhalf:.3g} kpc vs catalogue "
                            f"halfmassrad_stars {r_cat:.3g} kpc (off by {100 * rel:.0f} %, "
                            f"tolerance {100 * rhalf_rtol:g} %)")
    if "mstar_catalogue_msun" in out or "rhalf_catalogue_kpc" in out:
        out["status"] = "mismatch" if problems else "ok"
    if problems:
        out["reason"] = "; ".join(problems)
    return out


def _number(rec: Mapping, key: str) -> float | None:
    """rec[key] as a finite float, or None if absent or empty (CSV cells read as NaN)."""
    try:
        value = float(rec[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def apply_catalogue_check(galaxy: Galaxy, record: Mapping | None, scale_factor: float,
                          hubble: float, cfg: Mapping | None, origin: str) -> Galaxy:
    """Run the check, record it in galaxy.meta['catalogue_check'], and act on cfg's mode.

    In 'fail' mode a mismatch raises GalaxyInputError whose message starts with the origin and
    'catalogue cross-check failed', so the dataset build lists it as that galaxy's failure reason.
    """
    mode = check_mode(cfg)
    if mode == "off":
        galaxy.meta["catalogue_check"] = {"status": "off", "reason": None}
        return galaxy
    result = compare_with_catalogue(galaxy, record, scale_factor, hubble)
    galaxy.meta["catalogue_check"] = result
    if result["status"] == "mismatch":
        message = (f"{origin}: {CHECK_FAILED} for subhalo {galaxy.galaxy_id}: "
                   f"{result['reason']}")
        if mode == "fail":
            raise GalaxyInputError(message)
        log.warning("%s", message)
    return galaxy
