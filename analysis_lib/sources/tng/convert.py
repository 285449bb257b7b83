"""Raw TNG particle arrays (code units) plus a header in, one centred `particles.Galaxy` out.

Both TNG readers (cutout files from the web API and a local copy read with illustris_python) end
here, so the unit conventions live in one place (TNG data specifications, Nelson et al. 2019):

- Coordinates: comoving ckpc/h -> physical kpc: x * a / h, after periodic wrapping about the
  centre (d -= L * round(d / L)), since cutouts keep raw box coordinates.
- Masses: 1e10 Msun/h -> Msun: m * 1e10 / h. Dark matter has no Masses: Header MassTable[1].
- Velocities: km/s * sqrt(a) -> peculiar km/s: v * sqrt(a). The Hubble flow across the galaxy
  (H0 * r, ~2 km/s at 30 kpc) is not added, as usual for galaxy kinematics from TNG.
- Potential: (km/s)^2 / a -> (km/s)^2: Potential / a. It is TNG's (periodic) potential with the
  simulation's zero point, not zero at infinity: only differences between particles are physical.
- Star particles are PartType4 with GFM_StellarFormationTime > 0; entries <= 0 are wind-phase gas
  cells, never stars. They join the gas (as Subfind counts them) when the subhalo has gas cells.
- Ages: cosmic time between the formation scale factor and the snapshot (cosmology.py).
- Luminosities: GFM_StellarPhotometrics g, r (AB) -> Lsun (photometry.py).

Centre and systemic velocity (documented choice): by default the position of the star particle with
the lowest Potential (Subfind's SubhaloPos is also the potential minimum, of all particle types)
and the mass-weighted mean velocity of the stars within 2 R_half (3D, about that centre), which is
what an observer's systemic velocity measures. Without a Potential and a catalogue position, the
shrinking-sphere centre of the stars (centring.py, Power et al. 2003). meta['centre_method']
records which. A catalogue position and velocity (SubhaloPos,
SubhaloVel, already peculiar km/s) are used instead when given.

Galaxy type (documented choice): the paper used Wang et al. (2020), whose criterion (luminosity
profiles plus a mass cut) cannot be recovered from its text. Here a galaxy is 'early' if its
specific star formation rate over the last `sfr_window_gyr` (stellar initial mass formed, from the
star ages, within a 3D sphere of 2 R_half, divided by the stellar mass there) is below
`quenched_ssfr_per_yr` (1e-11 /yr by default), else 'late'. It uses the stars only, so it works
for cutouts downloaded without gas.

Black holes have no slot in `Galaxy`: their total mass is kept in meta['bh_mass_msun'] and is not
part of enclosed masses (typically < 1 % of the mass within R_half).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis_lib.particles import Galaxy, GalaxyInputError, Gas, ParticleSet, Stars
from analysis_lib.sources.tng import cosmology
from analysis_lib.sources.tng.centring import SHRINKING_SPHERE_METHOD, shrinking_sphere_centre
from analysis_lib.sources.tng.photometry import SUN_ABS_MAG_AB, band_luminosities

RawSubhalo = dict[str, dict[str, np.ndarray]]  # 'PartType4' -> {'Coordinates': array, ...}

STARS, GAS, DM, BH = "PartType4", "PartType0", "PartType1", "PartType5"
STAR_FIELDS_REQUIRED = ("Coordinates", "Velocities", "Masses", "GFM_StellarFormationTime",
                        "GFM_Metallicity", "GFM_StellarPhotometrics")
STAR_FIELDS_OPTIONAL = ("Potential", "GFM_InitialMass")
GAS_FIELDS_REQUIRED = ("Coordinates", "Masses", "GFM_Metallicity")
# gas velocities are read when present but nothing downstream uses them (NaN when absent)
GAS_FIELDS_OPTIONAL = ("StarFormationRate", "NeutralHydrogenAbundance", "Velocities")
DM_FIELDS_REQUIRED = ("Coordinates",)
DM_FIELDS_OPTIONAL = ("Velocities",)
BH_FIELDS_OPTIONAL = ("Masses",)

# The fields each reader asks for, per particle type: (required, optional).
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    STARS: (STAR_FIELDS_REQUIRED, STAR_FIELDS_OPTIONAL),
    GAS: (GAS_FIELDS_REQUIRED, GAS_FIELDS_OPTIONAL),
    DM: (DM_FIELDS_REQUIRED, DM_FIELDS_OPTIONAL),
    BH: ((), BH_FIELDS_OPTIONAL),
}

# TNG's unit metadata per dataset: (a_scaling, h_scaling, to_cgs). A file that states other
# values holds other units than this module converts from, and is refused.
EXPECTED_SCALING: dict[str, tuple[float, float, float]] = {
    "Coordinates": (1.0, -1.0, 3.085678e21),
    "Velocities": (0.5, 0.0, 1.0e5),
    "Masses": (0.0, -1.0, 1.989e43),
    "GFM_InitialMass": (0.0, -1.0, 1.989e43),
    "Potential": (-1.0, 0.0, 1.0e10),
}

TNG_DEFAULTS: dict[str, Any] = {
    "simulation": "TNG100-1",
    "snapshot": 99,
    "centre": "potential",
    "quenched_ssfr_per_yr": 1.0e-11,
    "sfr_window_gyr": 1.0,
    "api_base": "https://www.tng-project.org/api/",
    "cutouts_dir": None,
    "base_path": None,
}


def tng_settings(cfg: Mapping | None) -> dict[str, Any]:
    """The `tng` section of a run configuration, with the defaults above for missing keys."""
    section = (cfg or {}).get("tng", {}) or {}
    return {**TNG_DEFAULTS, **section}


@dataclass(frozen=True)
class TngHeader:
    """What the conversion needs from a snapshot or cutout header (code units)."""

    scale_factor: float
    hubble: float
    box_size: float  # ckpc/h
    mass_table: tuple[float, ...]  # 1e10 Msun/h per particle type
    omega_m: float = cosmology.TNG_OMEGA_M
    omega_l: float = cosmology.TNG_OMEGA_L

    @property
    def redshift(self) -> float:
        return 1.0 / self.scale_factor - 1.0

    @classmethod
    def from_attrs(cls, attrs: Mapping, origin: str,
                   fallback: Mapping | None = None) -> TngHeader:
        """Read Time, HubbleParam, MassTable, BoxSize (and Omega0/OmegaLambda if present).

        `fallback` supplies attributes the header lacks (e.g. BoxSize and MassTable from the
        simulation record the API client keeps in subhalos.json); the header wins where both
        have a value.
        """
        attrs = {**{k: v for k, v in (fallback or {}).items() if v is not None}, **attrs}

        def need(key: str) -> Any:
            if key not in attrs:
                raise GalaxyInputError(
                    f"{origin}: header attribute 'Header/{key}' is missing (and not in the "
                    "catalogue subhalos.json)")
            return attrs[key]

        a = float(need("Time"))
        h = float(need("HubbleParam"))
        mass_table = tuple(float(m) for m in np.atleast_1d(need("MassTable")))
        box = float(need("BoxSize"))
        if not (0.0 < a <= 1.0 + 1e-9) or not (0.0 < h < 2.0) or box <= 0.0:
            raise GalaxyInputError(
                f"{origin}: header values out of range: Time {a}, HubbleParam {h}, BoxSize {box}")
        om = float(attrs.get("Omega0", cosmology.TNG_OMEGA_M))
        ol = float(attrs.get("OmegaLambda", cosmology.TNG_OMEGA_L))
        return cls(scale_factor=a, hubble=h, box_size=box, mass_table=mass_table, omega_m=om,
                   omega_l=ol)


def check_units(origin: str, group: str, name: str, attrs: Mapping) -> None:
    """Refuse a dataset whose a_scaling / h_scaling / to_cgs attributes differ from TNG's."""
    expected = EXPECTED_SCALING.get(name)
    if expected is None:
        return
    for key, want in zip(("a_scaling", "h_scaling", "to_cgs"), expected, strict=True):
        if key not in attrs:
            continue
        got = float(np.atleast_1d(attrs[key])[0])
        if key == "to_cgs":
            ok = got == 0.0 or abs(got / want - 1.0) < 0.01  # 0 = 'not given' in some files
        else:
            ok = abs(got - want) < 1e-6
        if not ok:
            raise GalaxyInputError(
                f"{origin}: field '{group}/{name}' has {key}={got}, expected {want} "
                "(TNG code units); refusing to convert data in other units")


def _require(raw: RawSubhalo, group: str, fields: tuple[str, ...], origin: str) -> None:
    for name in fields:
        if name not in raw[group]:
            raise GalaxyInputError(f"{origin}: field '{group}/{name}' is missing")


def _finite(arr: np.ndarray, group: str, name: str, origin: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise GalaxyInputError(f"{origin}: field '{group}/{name}' has non-finite values")
    return arr


def _check_rows(raw: RawSubhalo, group: str, origin: str) -> int:
    lengths = {name: len(arr) for name, arr in raw[group].items()}
    if len(set(lengths.values())) > 1:
        raise GalaxyInputError(f"{origin}: fields of '{group}' disagree in length: {lengths}")
    return next(iter(lengths.values()), 0)


def _positions(coords: np.ndarray, centre: np.ndarray, header: TngHeader) -> np.ndarray:
    """Comoving box coordinates (ckpc/h) -> physical kpc about the centre, periodic wrap."""
    d = np.asarray(coords, dtype=np.float64).reshape(-1, 3) - centre
    d -= header.box_size * np.round(d / header.box_size)
    return d * header.scale_factor / header.hubble


def _mass_msun(mass: np.ndarray, header: TngHeader) -> np.ndarray:
    return np.asarray(mass, dtype=np.float64) * 1e10 / header.hubble


def _velocities(vel: np.ndarray, header: TngHeader) -> np.ndarray:
    return np.asarray(vel, dtype=np.float64).reshape(-1, 3) * np.sqrt(header.scale_factor)


def half_mass_radius(pos: np.ndarray, mass: np.ndarray) -> float:
    """3D radius (kpc) enclosing half the mass (same definition as Galaxy.half_mass_radius)."""
    r = np.sqrt(np.einsum("ij,ij->i", pos, pos))
    order = np.argsort(r)
    cum = np.cumsum(mass[order])
    return float(np.interp(0.5 * cum[-1], cum, r[order]))


def specific_sfr(age_gyr: np.ndarray, formed_mass: np.ndarray, mass: np.ndarray,
                 inside: np.ndarray, window_gyr: float) -> float:
    """Mass formed in the last window_gyr (per yr) over the current stellar mass, /yr."""
    m_now = float(mass[inside].sum())
    if m_now <= 0.0:
        return 0.0
    young = inside & (age_gyr < window_gyr)
    return float(formed_mass[young].sum()) / (window_gyr * 1e9) / m_now


def _star_arrays(raw: RawSubhalo, origin: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked star-group arrays: formation scale factor, star mask, coordinates, masses, vels.

    Why: every later step trusts these arrays, so a missing group or field, a row-count
    mismatch, a non-finite value or a group of wind cells only is refused here, naming `origin`.

    Parameters
    ----------
    raw : RawSubhalo
        The subhalo's raw arrays (code units).
    origin : str
        Where they came from; prefixes every error.

    Returns
    -------
    tuple
        (a_form, is_star, coords (n, 3), masses, vels (n, 3)), all entries of the group (stars
        and wind cells; is_star marks the stars, GFM_StellarFormationTime > 0).

    Raises
    ------
    GalaxyInputError
        If the group or a required field is missing or bad, or it holds no star particle.
    """
    if STARS not in raw:
        raise GalaxyInputError(f"{origin}: group '{STARS}' (stars) is missing")
    _require(raw, STARS, STAR_FIELDS_REQUIRED, origin)
    _check_rows(raw, STARS, origin)
    st = raw[STARS]
    a_form = _finite(st["GFM_StellarFormationTime"], STARS, "GFM_StellarFormationTime", origin)
    is_star = a_form > 0.0
    if not np.any(is_star):
        raise GalaxyInputError(
            f"{origin}: no star particles in '{STARS}' ({len(a_form)} entries, all wind cells "
            "with GFM_StellarFormationTime <= 0)")
    coords = _finite(st["Coordinates"], STARS, "Coordinates", origin).reshape(-1, 3)
    masses = _finite(st["Masses"], STARS, "Masses", origin)
    vels = _finite(st["Velocities"], STARS, "Velocities", origin).reshape(-1, 3)
    return a_form, is_star, coords, masses, vels


def _galaxy_centre(st: dict[str, np.ndarray], coords: np.ndarray, masses: np.ndarray,
                   is_star: np.ndarray, header: TngHeader, origin: str,
                   centre_ckpc_h: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The galaxy's centre (comoving code units) and how it was found.

    In order of preference: the catalogue position, the stars' potential minimum, a
    shrinking sphere on the stars (centring.py) when the file has no Potential.

    Parameters
    ----------
    st : dict
        The star group's raw arrays.
    coords, masses : numpy.ndarray
        Checked coordinates (n, 3) and masses of the group.
    is_star : numpy.ndarray
        Mask of star particles (not wind cells).
    header : TngHeader
        The snapshot header (box size for periodic wrapping).
    origin : str
        Prefixes errors.
    centre_ckpc_h : numpy.ndarray or None
        Catalogue position, if given.

    Returns
    -------
    tuple
        (centre (3,), centre_method).
    """
    if centre_ckpc_h is not None:
        return np.asarray(centre_ckpc_h, dtype=np.float64).reshape(3), "catalogue SubhaloPos"
    if "Potential" in st:
        pot = _finite(st["Potential"], STARS, "Potential", origin)
        return coords[is_star][np.argmin(pot[is_star])], "potential minimum of the stars"
    # no Potential, no catalogue position: shrinking sphere on the stars (centring.py)
    return (shrinking_sphere_centre(coords[is_star], masses[is_star], header.box_size),
            SHRINKING_SPHERE_METHOD)


def _systemic_velocity(pos: np.ndarray, mass: np.ndarray, vel: np.ndarray, r_half: float,
                       bulk_velocity_kms: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The galaxy's bulk velocity (km/s, peculiar) and how it was found.

    The catalogue's SubhaloVel when given, else the mass-weighted mean velocity of the stars
    within 3D 2 R_half (the outskirts and satellites' debris do not move the frame).

    Parameters
    ----------
    pos, mass, vel : numpy.ndarray
        Centred positions (kpc), masses and velocities of the star particles.
    r_half : float
        Stellar half-mass radius, kpc.
    bulk_velocity_kms : numpy.ndarray or None
        Catalogue velocity, if given.

    Returns
    -------
    tuple
        (v_sys (3,), velocity_method).
    """
    if bulk_velocity_kms is not None:
        return (np.asarray(bulk_velocity_kms, dtype=np.float64).reshape(3),
                "catalogue SubhaloVel")
    inside = np.einsum("ij,ij->i", pos, pos) <= (2.0 * r_half) ** 2
    w = mass[inside]
    v_sys = (vel[inside] * w[:, None]).sum(axis=0) / w.sum()
    return v_sys, "mass-weighted mean of the stars within 2 R_half"


def _star_particles(st: dict[str, np.ndarray], a_form: np.ndarray, is_star: np.ndarray,
                    pos: np.ndarray, vel: np.ndarray, mass: np.ndarray, header: TngHeader,
                    origin: str) -> Stars:
    """Stars in physical units: ages, SDSS g and r luminosities, initial masses, potential.

    Parameters
    ----------
    st : dict
        The star group's raw arrays.
    a_form : numpy.ndarray
        Formation scale factors of the whole group.
    is_star : numpy.ndarray
        Mask of star particles.
    pos, vel, mass : numpy.ndarray
        The stars' centred positions (kpc), rest-frame velocities (km/s), masses (Msun).
    header : TngHeader
        The snapshot header.
    origin : str
        Prefixes errors.

    Returns
    -------
    Stars
        extra holds formation_a and, when the file has it, initial_mass (Msun).

    Raises
    ------
    GalaxyInputError
        If GFM_StellarPhotometrics does not have the 8 bands.
    """
    age = cosmology.stellar_age_gyr(a_form[is_star], header.scale_factor, header.hubble,
                                    header.omega_m, header.omega_l)
    try:
        lum = band_luminosities(st["GFM_StellarPhotometrics"][is_star])
    except ValueError as exc:
        raise GalaxyInputError(
            f"{origin}: field '{STARS}/GFM_StellarPhotometrics': {exc}") from None
    extra: dict[str, np.ndarray] = {"formation_a": a_form[is_star]}
    if "GFM_InitialMass" in st:
        extra["initial_mass"] = _mass_msun(st["GFM_InitialMass"], header)[is_star]
    potential = None
    if "Potential" in st:
        potential = np.asarray(st["Potential"], dtype=np.float64)[is_star] / header.scale_factor
    return Stars(pos=pos, vel=vel, mass=mass, extra=extra, age_gyr=age,
                 metallicity=np.asarray(st["GFM_Metallicity"], dtype=np.float64)[is_star],
                 lum=lum, potential=potential)


def _black_hole_mass(raw: RawSubhalo, header: TngHeader) -> float:
    """Total black-hole mass, Msun (0 when the file has no BH masses)."""
    if BH in raw and "Masses" in raw[BH]:
        return float(_mass_msun(raw[BH]["Masses"], header).sum())
    return 0.0


def _star_formation(stars: Stars, gas: Gas | None, r_half: float, settings: Mapping
                    ) -> tuple[float, float | None]:
    """Specific SFR within 3D 2 R_half: from stellar ages (the type) and from the gas cells.

    Parameters
    ----------
    stars : Stars
        The star particles (initial_mass in extra when the file has it).
    gas : Gas or None
        The gas cells (extra['sfr'], Msun/yr).
    r_half : float
        Stellar half-mass radius, kpc.
    settings : Mapping
        The tng settings (sfr_window_gyr).

    Returns
    -------
    tuple
        (ssfr_per_yr over the window from the ages, instantaneous gas ssfr or None without
        gas; the latter for comparison only).
    """
    inside2 = stars.radius <= 2.0 * r_half
    formed = stars.extra.get("initial_mass", stars.mass)
    ssfr = specific_sfr(stars.age_gyr, formed, stars.mass, inside2,
                        float(settings["sfr_window_gyr"]))
    ssfr_gas = None  # instantaneous, from the gas cells, for comparison only
    if gas is not None:
        m2 = float(stars.mass[inside2].sum())
        ssfr_gas = float(gas.extra["sfr"][gas.radius <= 2.0 * r_half].sum()) / m2
    return ssfr, ssfr_gas


def _tng_meta(settings: Mapping, header: TngHeader, galaxy_id: int, snapshot: int | None,
              stars: Stars, gas: Gas | None, r_half: float, origin: str, *,
              methods: tuple[str, str], wind_mass: float, n_wind: int, bh_mass: float) -> dict:
    """Galaxy.meta of a TNG galaxy: its type and the choices the conversion made.

    The type is early when the sSFR from stellar ages (`_star_formation`) is below
    tng.quenched_ssfr_per_yr; the criterion is recorded in words beside it.

    Parameters
    ----------
    settings : Mapping
        The tng settings.
    header : TngHeader
        The snapshot header.
    galaxy_id : int
        The subhalo id.
    snapshot : int or None
        Snapshot number (default: the settings').
    stars : Stars
        The converted stars.
    gas : Gas or None
        The converted gas.
    r_half : float
        Stellar half-mass radius, kpc.
    origin : str
        Where the arrays came from.
    methods : tuple of str
        (centre_method, velocity_method).
    wind_mass, n_wind, bh_mass : float, int, float
        Wind-cell mass (Msun), their number, and black-hole mass (Msun).

    Returns
    -------
    dict
        The meta keys the observation and the dataset read.
    """
    ssfr, ssfr_gas = _star_formation(stars, gas, r_half, settings)
    threshold = float(settings["quenched_ssfr_per_yr"])
    return {
        "source": "tng",
        "galaxy_type": "early" if ssfr < threshold else "late",
        "galaxy_type_criterion": (
            f"early if sSFR over the last {settings['sfr_window_gyr']} Gyr within 3D 2 R_half "
            f"< {threshold:g} /yr (stellar ages); the paper's Wang+2020 criterion is not "
            "recoverable"),
        "ssfr_per_yr": ssfr,
        "ssfr_gas_per_yr": ssfr_gas,
        "subhalo_id": int(galaxy_id),
        "snapshot": int(snapshot if snapshot is not None else settings["snapshot"]),
        "simulation": str(settings["simulation"]),
        "scale_factor": header.scale_factor,
        "redshift": header.redshift,
        "centre_method": methods[0],
        "velocity_method": methods[1],
        "rhalf_kpc": r_half,
        "mstar_30kpc_msun": float(stars.enclosed_mass(30.0)),
        "wind_mass_msun": wind_mass,
        "n_wind_cells": n_wind,
        "bh_mass_msun": bh_mass,
        "sun_abs_mag_ab": dict(SUN_ABS_MAG_AB),  # what lum is in units of (observe reads it)
        "origin": origin,
    }


def subhalo_to_galaxy(raw: RawSubhalo, header: TngHeader, galaxy_id: int, *, origin: str,
                      cfg: Mapping | None = None, snapshot: int | None = None,
                      centre_ckpc_h: np.ndarray | None = None,
                      bulk_velocity_kms: np.ndarray | None = None) -> Galaxy:
    """Convert one subhalo's raw arrays into a centred Galaxy at rest (units in the module doc).

    `origin` names where the arrays came from (file path, or base path and subhalo) and prefixes
    every error. `centre_ckpc_h` (comoving box position) and `bulk_velocity_kms` (peculiar) come
    from a catalogue when given; otherwise the stars' potential minimum and their mean velocity
    within 2 R_half are used.

    Steps: check the star arrays (`_star_arrays`), centre (`_galaxy_centre`), physical units,
    rest frame (`_systemic_velocity`), stars (`_star_particles`), gas with the wind cells,
    dark matter, and meta with the type from the star formation (`_tng_meta`).

    Parameters
    ----------
    raw : RawSubhalo
        The subhalo's raw arrays, code units, by particle group.
    header : TngHeader
        The snapshot header.
    galaxy_id : int
        The subhalo id.
    origin : str
        Where the arrays came from; prefixes every error.
    cfg : Mapping, optional
        The profile (its ``tng`` section); defaults when None.
    snapshot : int, optional
        Snapshot number recorded in meta (default: the tng settings').
    centre_ckpc_h, bulk_velocity_kms : numpy.ndarray, optional
        Catalogue centre and bulk velocity.

    Returns
    -------
    Galaxy
        Centred, at rest, physical units; meta records the choices made.

    Raises
    ------
    GalaxyInputError
        If the arrays are missing, malformed or hold no star particle.
    """
    settings = tng_settings(cfg)
    a_form, is_star, coords, masses, vels = _star_arrays(raw, origin)
    st = raw[STARS]
    centre, centre_method = _galaxy_centre(st, coords, masses, is_star, header, origin,
                                           centre_ckpc_h)
    pos_all = _positions(coords, centre, header)
    vel_all = _velocities(vels, header)
    mass_all = _mass_msun(masses, header)
    pos, mass = pos_all[is_star], mass_all[is_star]
    r_half = half_mass_radius(pos, mass)
    v_sys, velocity_method = _systemic_velocity(pos, mass, vel_all[is_star], r_half,
                                                bulk_velocity_kms)
    stars = _star_particles(st, a_form, is_star, pos, vel_all[is_star] - v_sys, mass, header,
                            origin)

    wind = ~is_star
    gas = None
    if GAS in raw:
        gas = _gas(raw, header, centre, v_sys, origin,
                   wind=(pos_all[wind], vel_all[wind] - v_sys, mass_all[wind],
                         np.asarray(st["GFM_Metallicity"], dtype=np.float64)[wind]))
    dm = _dark_matter(raw, header, centre, v_sys, origin) if DM in raw else None
    meta = _tng_meta(settings, header, galaxy_id, snapshot, stars, gas, r_half, origin,
                     methods=(centre_method, velocity_method),
                     wind_mass=float(mass_all[wind].sum()), n_wind=int(wind.sum()),
                     bh_mass=_black_hole_mass(raw, header))
    return Galaxy(galaxy_id=int(galaxy_id), stars=stars, gas=gas, dm=dm, meta=meta)


def neutral_fraction(sfr: np.ndarray, neutral_h: np.ndarray | None) -> np.ndarray:
    """Neutral (HI + H2) fraction of each gas cell's hydrogen, what the dust column weighs.

    NeutralHydrogenAbundance where the file has it (as Nelson et al. 2018's resolved dust model
    does), except that star-forming cells (StarFormationRate > 0) count as fully neutral: their
    gas is the cold phase of the Springel & Hernquist (2003) two-phase ISM, where dust lives
    (a documented choice: the effective-model abundance of these cells describes the two-phase
    mixture, not its cold clouds). Without the field, only star-forming cells count (a lower
    bound on the neutral gas).
    """
    cold = np.asarray(sfr, dtype=np.float64) > 0.0
    if neutral_h is None:
        return cold.astype(np.float64)
    return np.where(cold, 1.0, np.clip(np.asarray(neutral_h, dtype=np.float64), 0.0, 1.0))


def _gas(raw: RawSubhalo, header: TngHeader, centre: np.ndarray, v_sys: np.ndarray, origin: str,
         wind: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> Gas:
    """Gas cells, with the wind-phase cells of PartType4 appended (sfr 0, flagged 'is_wind').

    extra: 'sfr' (Msun/yr), 'is_wind', 'neutral_fraction' (see neutral_fraction; 0 for wind
    cells, which are hydrodynamically decoupled launch-phase wind, not ISM).
    """
    _require(raw, GAS, GAS_FIELDS_REQUIRED, origin)
    n = _check_rows(raw, GAS, origin)
    g = raw[GAS]
    pos = _positions(_finite(g["Coordinates"], GAS, "Coordinates", origin), centre, header)
    if "Velocities" in g:
        vel = _velocities(_finite(g["Velocities"], GAS, "Velocities", origin), header) - v_sys
    else:  # not downloaded (api.cutout_fields): nothing downstream uses gas velocities
        vel = np.full((n, 3), np.nan)
    mass = _mass_msun(_finite(g["Masses"], GAS, "Masses", origin), header)
    z = np.asarray(g["GFM_Metallicity"], dtype=np.float64)
    sfr = np.asarray(g.get("StarFormationRate", np.zeros(n)), dtype=np.float64)
    neutral_h = None
    if "NeutralHydrogenAbundance" in g:
        neutral_h = _finite(g["NeutralHydrogenAbundance"], GAS, "NeutralHydrogenAbundance", origin)
    w_pos, w_vel, w_mass, w_z = wind
    nw = len(w_mass)
    return Gas(pos=np.concatenate([pos, w_pos]), vel=np.concatenate([vel, w_vel]),
               mass=np.concatenate([mass, w_mass]), metallicity=np.concatenate([z, w_z]),
               extra={"sfr": np.concatenate([sfr, np.zeros(nw)]),
                      "is_wind": np.concatenate([np.zeros(n, bool), np.ones(nw, bool)]),
                      "neutral_fraction": np.concatenate([neutral_fraction(sfr, neutral_h),
                                                          np.zeros(nw)])})


def _dark_matter(raw: RawSubhalo, header: TngHeader, centre: np.ndarray, v_sys: np.ndarray,
                 origin: str) -> ParticleSet:
    """DM particles; their common mass is MassTable[1]. Velocities NaN if not downloaded."""
    _require(raw, DM, DM_FIELDS_REQUIRED, origin)
    n = _check_rows(raw, DM, origin)
    if len(header.mass_table) < 2 or header.mass_table[1] <= 0.0:
        raise GalaxyInputError(
            f"{origin}: header attribute 'Header/MassTable' has no dark-matter mass (entry 1)")
    pos = _positions(_finite(raw[DM]["Coordinates"], DM, "Coordinates", origin), centre, header)
    if "Velocities" in raw[DM]:
        vel = _velocities(raw[DM]["Velocities"], header) - v_sys
    else:
        vel = np.full((n, 3), np.nan)
    mass = np.full(n, header.mass_table[1] * 1e10 / header.hubble)
    return ParticleSet(pos=pos, vel=vel, mass=mass)
