"""Benchmark: seconds per JAM fit on one core at quick settings (60 px image, 48x48 maps).

Fits run serially in this process with BLAS/OpenMP threads pinned to 1. Galaxies: the first N
samples of the quick profile's JAM selection when its dataset exists (or --dataset), otherwise
(or with --synthetic) N galaxies inside JAM's own family (`jam_synthetic`, seeded, inclination
40-85 deg, beta_z 0-0.3, log M200 12-13), whose recovery errors are recorded too. Writes
data/results/benchmarks/jam.json with the projected wall time of the quick profile's JAM run.
Usage:
    python benchmarks/bench_jam.py [--n 6] [--dataset PATH | --synthetic]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from analysis_lib.config import load_config  # noqa: E402
from analysis_lib.models.jam import jam_rows, jam_settings  # noqa: E402
from analysis_lib.models.jam_fit import fit_jam  # noqa: E402
from analysis_lib.paths import RESULTS_DIR  # noqa: E402
from analysis_lib.results import atomic_write_text, environment_info  # noqa: E402
from analysis_lib.rng import make_rng  # noqa: E402

TARGETS = ("log_mstar", "log_mtot", "log_fdm", "log_ml_r")


def dataset_samples(path: Path, cfg: dict, n: int):
    """(inputs, truths, label) of the first n samples of the profile's JAM selection."""
    from analysis_lib.dataset import open_dataset

    ds = open_dataset(path)
    settings, image = jam_settings(cfg, ds)
    rows = jam_rows(ds.table, cfg)[:n]
    arrays = ds.load_inputs([image, "vel_map", "sigma_map", "map_mask"], rows)
    for i, row in enumerate(rows):
        rec = ds.table.iloc[int(row)]
        yield ({"image": arrays[image][i], "vel_map": arrays["vel_map"][i],
                "sigma_map": arrays["sigma_map"][i], "map_mask": arrays["map_mask"][i],
                "rhalf_kpc": float(rec["rhalf_kpc"]),
                "inclination_deg": float(rec["inclination_deg"])},
               {k: float(rec[k]) for k in TARGETS}, f"row {int(row)}"), settings


def synthetic_samples(cfg: dict, n: int):
    from analysis_lib.models.jam_synthetic import synthetic_galaxy

    settings, _ = jam_settings(cfg)
    rng = make_rng(cfg["seed"], "bench_jam")
    for i in range(n):
        g = synthetic_galaxy(seed=i, inc_deg=float(rng.uniform(40, 85)),
                             beta_z=float(rng.uniform(0, 0.3)),
                             log_m200=float(rng.uniform(12, 13)), pa_deg=float(rng.uniform(0, 180)))
        inputs = {"image": g["image"], "vel_map": g["vel_map"], "sigma_map": g["sigma_map"],
                  "map_mask": g["map_mask"], "rhalf_kpc": g["rhalf_kpc"],
                  "inclination_deg": g["inclination_deg"]}
        yield (inputs, {k: g["truth"][k] for k in TARGETS}, f"synthetic {i}"), settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="fits to time")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--synthetic", action="store_true", help="ignore any dataset")
    args = parser.parse_args()
    cfg = load_config(args.profile)

    from analysis_lib.dataset.build import default_dataset_path

    path = args.dataset or default_dataset_path(cfg)
    use_data = not args.synthetic and Path(path).exists()
    samples = dataset_samples(path, cfg, args.n) if use_data else synthetic_samples(cfg, args.n)
    fits, settings = [], None
    for (inputs, truth, label), settings in tqdm(samples, total=args.n, desc="JAM fits"):
        t0 = time.perf_counter()
        try:
            res = fit_jam(inputs["image"], inputs["vel_map"], inputs["sigma_map"],
                          inputs["map_mask"], inputs["rhalf_kpc"], settings,
                          inclination_deg=inputs["inclination_deg"])
            rec = {"sample": label, "status": "ok", "seconds": res.seconds,
                   "seconds_mge": res.extra["seconds_mge"], "n_jam_calls": res.n_jam_calls,
                   "nfev": res.nfev, **{f"dlog_{k}": getattr(res, k) - truth[k]
                                        for k in TARGETS}}
        except Exception as exc:  # a benchmark records failures, as the runner does
            rec = {"sample": label, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                   "seconds": time.perf_counter() - t0}
        fits.append(rec)
    seconds = np.array([f["seconds"] for f in fits if f["status"] == "ok"])
    n_quick = int(load_config("quick")["jam"]["n_galaxies"])
    out = {
        "benchmark": "jam", "profile": args.profile, "cores": 1,
        "galaxies": "dataset" if use_data else "synthetic (JAM family)",
        "dataset": str(path) if use_data else None, "n_fits": len(fits),
        "n_failed": sum(f["status"] != "ok" for f in fits),
        "seconds_per_galaxy_median": float(np.median(seconds)) if seconds.size else None,
        "seconds_per_galaxy_mean": float(seconds.mean()) if seconds.size else None,
        "seconds_per_galaxy_p90": float(np.percentile(seconds, 90)) if seconds.size else None,
        "projected_quick_wall_seconds_2_cores": (float(n_quick * seconds.mean() / 2)
                                                 if seconds.size else None),
        "settings": asdict(settings) if settings is not None else None,
        "fits": fits, "environment": environment_info(),
    }
    dest = RESULTS_DIR / "benchmarks" / "jam.json"
    atomic_write_text(dest, json.dumps(out, indent=2, default=str))
    print(json.dumps({k: v for k, v in out.items() if k not in ("fits", "settings",
                                                                 "environment")}, indent=2))
    print(f"written: {dest}")


if __name__ == "__main__":
    main()
