"""Benchmark: mock galaxies generated per second on one core, at the smoke/quick/paper resolutions.

Runs in one process (one core) over the first N galaxies of each profile's population and
writes data/results/benchmarks/mock_generation.json. Usage:
    python benchmarks/bench_mock.py [--n 40] [--profiles smoke quick]
The first galaxy of a process also builds the thick-disc potential tables (mass_model.py);
`first_galaxy_seconds` records it and the per-galaxy statistics exclude it. Wall-clock and
CPU (process) time are both recorded: on a shared machine only the CPU time compares runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analysis_lib.config import load_config
from analysis_lib.paths import RESULTS_DIR
from analysis_lib.results import environment_info
from analysis_lib.sources.mock import MockSource


def bench_profile(profile: str, n: int) -> dict:
    """Time population drawing and per-galaxy generation for one profile."""
    cfg = load_config(profile, {"data.n_galaxies": n})
    t0 = time.perf_counter()
    src = MockSource(cfg)
    _ = src.population
    t_pop = time.perf_counter() - t0
    times, cpu, n_star, n_gas = [], [], [], []
    for gid in tqdm(src.galaxy_ids(), desc=f"mock {profile}"):
        t, c = time.perf_counter(), time.process_time()
        g = src.load(gid)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        n_star.append(len(g.stars))
        n_gas.append(0 if g.gas is None else len(g.gas))
    first = times[0]
    times = np.array(times[1:] if len(times) > 1 else times)
    cpu = np.array(cpu[1:] if len(cpu) > 1 else cpu)
    return {
        "first_galaxy_seconds": float(first),
        "profile": profile, "n_galaxies": n,
        "star_particle_mass": float(cfg["mock"]["star_particle_mass"]),
        "population_seconds": t_pop,
        "seconds_per_galaxy_mean": float(times.mean()),
        "seconds_per_galaxy_median": float(np.median(times)),
        "seconds_per_galaxy_p90": float(np.percentile(times, 90)),
        "galaxies_per_second_per_core": float(1.0 / times.mean()),
        # CPU time of this process: meaningful also when other jobs share the cores
        "cpu_seconds_per_galaxy_mean": float(cpu.mean()),
        "cpu_seconds_per_galaxy_median": float(np.median(cpu)),
        "mean_star_particles": float(np.mean(n_star)), "max_star_particles": int(max(n_star)),
        "mean_gas_particles": float(np.mean(n_gas)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=40, help="galaxies per profile")
    parser.add_argument("--profiles", nargs="+", default=["smoke", "quick", "paper"])
    args = parser.parse_args()
    results = {"machine": platform.platform(), "cpu_count": os.cpu_count(),
               "note": "single process; other jobs may share the cores",
               "environment": environment_info(),
               "profiles": [bench_profile(p, args.n) for p in args.profiles]}
    out = Path(RESULTS_DIR) / "benchmarks" / "mock_generation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out)
    for r in results["profiles"]:
        print(f"{r['profile']}: {r['seconds_per_galaxy_mean']:.3f} s/galaxy "
              f"(CPU {r['cpu_seconds_per_galaxy_mean']:.3f} s) "
              f"({r['galaxies_per_second_per_core']:.1f}/s/core), "
              f"mean {r['mean_star_particles']:.0f} star particles")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
