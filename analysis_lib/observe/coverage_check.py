"""Does kinematic-map coverage measure the galaxy or the simulation's resolution?

Issue 13's check: observe the same galaxies at two star-particle masses (e.g. 2e7 and 5e6 Msun)
under a survey instrument and compare, row by row (galaxy, projection), the number of valid map
pixels. If coverage follows surface brightness and S/N, the per-row ratio is ~1 (the issue asks
for a median within 0.8-1.25). Second, at fixed luminosity coverage must not carry information
on the stellar mass that comes from the particle count: the scatter of log M* about a linear
fit on M_r should drop by less than 5 % when coverage is added as a second regressor.

`build_pair` makes the two datasets (small, smoke-sized images), `coverage_check` measures both
numbers; the book shows the dict it returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.dataset import GalaxyDataset, open_dataset


def coverage(ds: GalaxyDataset) -> pd.DataFrame:
    """galaxy_id, projection, M_r, log_mstar and the valid map pixels of every row."""
    mask = ds.load_inputs(["map_mask"])["map_mask"]
    table = ds.table[["galaxy_id", "projection", "M_r", "log_mstar"]].copy()
    table["coverage"] = mask.reshape(len(mask), -1).sum(axis=1)
    return table


def coverage_ratio(fine: pd.DataFrame, coarse: pd.DataFrame) -> pd.DataFrame:
    """Rows present in both tables, with coverage_fine / coverage_coarse per row."""
    both = fine.merge(coarse, on=["galaxy_id", "projection"], suffixes=("_fine", "_coarse"))
    both = both[(both["coverage_coarse"] > 0) | (both["coverage_fine"] > 0)].copy()
    both["ratio"] = both["coverage_fine"] / both["coverage_coarse"].where(
        both["coverage_coarse"] > 0)
    return both


def _residual_rms(y: np.ndarray, columns: list[np.ndarray]) -> float:
    design = np.column_stack([np.ones(len(y)), *columns])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.sqrt(np.mean((y - design @ coef) ** 2)))


def scatter_reduction(table: pd.DataFrame) -> dict[str, float]:
    """rms of log M* about a linear fit on M_r, and on M_r + coverage; fractional reduction.

    Rows with a non-finite M_r or log M* are left out (an empty aperture).
    """
    ok = np.isfinite(table["M_r"]) & np.isfinite(table["log_mstar"])
    t = table[ok]
    y = t["log_mstar"].to_numpy(float)
    m_r = t["M_r"].to_numpy(float)
    cov = t["coverage"].to_numpy(float)
    rms_l = _residual_rms(y, [m_r])
    rms_lc = _residual_rms(y, [m_r, cov])
    return {"rows": int(len(t)), "rms_lum_dex": rms_l, "rms_lum_coverage_dex": rms_lc,
            "scatter_reduction": 1.0 - rms_lc / rms_l if rms_l > 0 else float("nan")}


def coverage_check(fine_path: str | Path, coarse_path: str | Path) -> dict:
    """The issue's two numbers from two datasets of the same galaxies at two particle masses.

    Returns the median (and 16/84 percentiles) of the per-row coverage ratio fine / coarse, the
    median coverage of each, and the scatter reduction of log M* at fixed M_r in each dataset.
    """
    fine_ds, coarse_ds = open_dataset(fine_path), open_dataset(coarse_path)
    fine, coarse = coverage(fine_ds), coverage(coarse_ds)
    both = coverage_ratio(fine, coarse)
    ratio = both["ratio"].dropna().to_numpy()
    out = {"fine": str(fine_path), "coarse": str(coarse_path),
           "star_particle_mass_fine": fine_ds.config.get("mock", {}).get("star_particle_mass"),
           "star_particle_mass_coarse": coarse_ds.config.get("mock", {}).get(
               "star_particle_mass"),
           "instrument": fine_ds.config.get("observe", {}).get("instrument"),
           "rows_matched": int(len(both)),
           "median_coverage_fine": float(np.median(fine["coverage"])),
           "median_coverage_coarse": float(np.median(coarse["coverage"])),
           "median_ratio": float(np.median(ratio)) if len(ratio) else float("nan"),
           "ratio_p16": float(np.percentile(ratio, 16)) if len(ratio) else float("nan"),
           "ratio_p84": float(np.percentile(ratio, 84)) if len(ratio) else float("nan"),
           "scatter_fine": scatter_reduction(fine),
           "scatter_coarse": scatter_reduction(coarse)}
    out["passes"] = bool(0.8 <= out["median_ratio"] <= 1.25
                         and out["scatter_fine"]["scatter_reduction"] < 0.05
                         and out["scatter_coarse"]["scatter_reduction"] < 0.05)
    return out


def build_pair(out_dir: str | Path, n_galaxies: int = 80, instrument: str = "manga_like",
               masses: tuple[float, float] = (5.0e6, 2.0e7), profile: str = "smoke",
               workers: int = 1, extra: list[str] | None = None) -> tuple[Path, Path]:
    """Build the fine- and coarse-particle datasets of the same galaxies; returns their paths.

    Only mock.star_particle_mass differs between the two (same seed, so the same galaxies).
    """
    from analysis_lib.config import load_config
    from analysis_lib.dataset.build import build_dataset

    out_dir = Path(out_dir)
    paths = []
    for mass in masses:
        cfg = load_config(profile, [f"data.n_galaxies={n_galaxies}",
                                    f"observe.instrument={instrument}",
                                    f"mock.star_particle_mass={mass:g}", *(extra or [])])
        path = out_dir / f"coverage_{instrument}_{mass:.0e}.h5"
        build_dataset(cfg, path, workers=workers, progress=False)
        paths.append(path)
    return paths[0], paths[1]


def main() -> None:  # pragma: no cover - a measurement run
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", default="data/datasets/coverage_check")
    parser.add_argument("--n-galaxies", type=int, default=80)
    parser.add_argument("--instrument", default="manga_like")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="extra section.key=value")
    args = parser.parse_args()
    fine, coarse = build_pair(args.out_dir, args.n_galaxies, args.instrument,
                              workers=args.workers, extra=args.set)
    print(json.dumps(coverage_check(fine, coarse), indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
