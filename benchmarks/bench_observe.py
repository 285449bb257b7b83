"""Benchmark of the observation step: galaxies per second per core, and SPH render vs pynbody.

Run: .venv/bin/python benchmarks/bench_observe.py [--quick-only] [--instruments ideal manga_like]
Each observation run is timed per instrument (instruments.yaml), with the time spent in the
Voronoi binning (vorbin, binning.voronoi_bin_ids) reported on its own.
Writes data/results/benchmarks/observe.json. Single-threaded (one core): BLAS/OpenMP threads are
pinned to 1 before numpy is imported, numba code is serial, pynbody is run with threaded=False.
Galaxies: a Hernquist sphere (R_half-scaled field, isotropic velocities) with a gas disc for the
dust step, at the profile's image size; the first call (numba compilation) is not timed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from analysis_lib.config import load_config  # noqa: E402
from analysis_lib.observe import observe_galaxy  # noqa: E402
from analysis_lib.observe.analytic import gas_disc, hernquist_galaxy  # noqa: E402
from analysis_lib.observe.images import (  # noqa: E402
    render_images,
    render_with_pynbody,
    smoothing_support,
)
from analysis_lib.paths import RESULTS_DIR  # noqa: E402
from analysis_lib.results import environment_info  # noqa: E402


def _galaxy(n_stars: int, seed: int):
    g = hernquist_galaxy(n_stars, mass=3e10, a=2.0, seed=seed, galaxy_id=seed)
    g.gas = gas_disc(max(n_stars // 4, 100), 5e9, 4.0, 0.3, seed=seed, galaxy_id=seed)
    return g


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_observe(profile: str, n_stars: int, repeat: int, instrument: str = "ideal") -> dict:
    from analysis_lib.observe import binning

    cfg = load_config(profile, {"observe.instrument": instrument})
    g = _galaxy(n_stars, seed=1)
    observe_galaxy(_galaxy(200, seed=2), cfg)  # compile outside the timing
    spent = {"vorbin": 0.0}
    original = binning.voronoi_bin_ids

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["vorbin"] += time.perf_counter() - t0

    binning.voronoi_bin_ids = timed
    try:
        sec = _best(lambda: observe_galaxy(g, cfg), repeat)
    finally:
        binning.voronoi_bin_ids = original
    return {"profile": profile, "instrument": instrument,
            "image_size": cfg["observe"]["image_size"],
            "n_stars": n_stars, "n_projections": len(cfg["data"]["projections"]),
            "seconds_per_galaxy": sec, "galaxies_per_second_per_core": 1.0 / sec,
            "vorbin_seconds_per_galaxy": spent["vorbin"] / repeat}


def bench_render(n_stars: int, n_pixels: int, repeat: int) -> dict:
    g = _galaxy(n_stars, seed=3)
    pos = g.stars.pos
    support = smoothing_support(pos)
    hw = 3.0 * g.half_mass_radius()
    lum = g.stars.lum["r"]
    a, b, d = pos[:, 0], pos[:, 1], pos[:, 2]
    ours = render_images(a, b, support, lum, hw, n_pixels)[0]
    ref = render_with_pynbody(a, b, d, support, lum, hw, n_pixels)  # warm-up (kernel table)
    t_ours = _best(lambda: render_images(a, b, support, lum, hw, n_pixels), repeat)
    t_two = _best(lambda: render_images(a, b, support, np.column_stack([lum, lum]), hw,
                                        n_pixels), repeat)
    t_direct = _best(lambda: render_images(a, b, support, lum, hw, n_pixels, multires=False),
                     repeat)
    t_ref = _best(lambda: render_with_pynbody(a, b, d, support, lum, hw, n_pixels), repeat)
    return {"n_stars": n_stars, "image_size": n_pixels, "ours_seconds": t_ours,
            "ours_two_bands_seconds": t_two, "ours_single_grid_seconds": t_direct,
            "pynbody_seconds": t_ref,
            "speedup_one_band": t_ref / t_ours, "speedup_r_and_g": 2 * t_ref / t_two,
            "l1_difference_fraction": float(np.abs(ours - ref).sum() / ref.sum()),
            "flux_ratio_ours_over_pynbody": float(ours.sum() / ref.sum()),
            "median_support_pixels": float(np.median(support) / (2 * hw / n_pixels))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick-only", action="store_true", help="skip the paper-size runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instruments", nargs="+", default=["ideal", "manga_like"])
    parser.add_argument("--no-render", action="store_true", help="skip the pynbody comparison")
    args = parser.parse_args()
    runs = [("quick", 3000)] + ([] if args.quick_only else [("paper", 10000), ("paper", 100000)])
    out = {"machine": platform.processor() or platform.machine(), "cores_used": 1,
           "environment": environment_info(), "observe": [], "render": []}
    for profile, n in runs:
        for inst in args.instruments:
            res = bench_observe(profile, n, args.repeat if n < 50000 else 1, inst)
            print(f"observe {profile:5s} {inst:10s} N={n:6d}: {res['seconds_per_galaxy']:.3f} "
                  f"s/galaxy ({res['vorbin_seconds_per_galaxy']:.3f} s vorbin), "
                  f"{res['galaxies_per_second_per_core']:.2f} galaxies/s/core")
            out["observe"].append(res)
    renders = [] if args.no_render else (
        [(3000, 120)] + ([] if args.quick_only else [(10000, 300), (100000, 300)]))
    for n, npx in renders:
        res = bench_render(n, npx, args.repeat if n < 50000 else 1)
        print(f"render N={n:6d} {npx}px: ours {res['ours_seconds']:.3f} s, pynbody "
              f"{res['pynbody_seconds']:.3f} s (x{res['speedup_one_band']:.2f} one band, "
              f"x{res['speedup_r_and_g']:.2f} r+g), L1 diff {res['l1_difference_fraction']:.4f}")
        out["render"].append(res)
    dest = RESULTS_DIR / "benchmarks" / "observe.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not renders and dest.exists():  # keep the stored render comparison
        out["render"] = json.loads(dest.read_text()).get("render", [])
    with tempfile.NamedTemporaryFile("w", dir=dest.parent, delete=False, suffix=".tmp") as fh:
        json.dump(out, fh, indent=2)
    os.replace(fh.name, dest)
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
