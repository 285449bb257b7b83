"""The prepared device check: one GPU, under 5 minutes, nothing but torch/numpy/h5py/pandas.

1. A synthetic dataset with the real schema (Gaussian-blob galaxies whose masses follow their
   light; not physics) written in-process at the paper's sizes (300/150/60-px images, 48-px
   maps), so no mock-universe code (lightgbm, galpy, pynbody) is needed on the device.
2. CUDA training of one experiment (r image + both maps -> M*) for 3 epochs, through the
   project's own run_cnn_experiment (bf16, channels_last, cnn.deterministic=true).
3. The same run interrupted after epoch 1 and resumed from its checkpoint, compared with the
   uninterrupted run: history, best epoch, metrics and every test prediction must be equal.
4. The GPU benchmark (benchmarks/bench_cnn.py's gpu part, time-boxed).

Results go to $OUT/device_check.json when OUT is set, else data/results/benchmarks/.

    python scripts/device_check.py                 # on the GPU machine
    python scripts/device_check.py --tiny          # on a CPU: tiny sizes, the same steps
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from analysis_lib.config import load_config  # noqa: E402
from analysis_lib.dataset import FEATURES, META, TARGETS, assemble, write_shard  # noqa: E402
from analysis_lib.models import cnn_train as ct  # noqa: E402
from analysis_lib.results import ResultsStore, environment_info  # noqa: E402

EXPERIMENT = {"name": "devcheck_rmaps_mstar", "section": "4.1",
              "inputs": ["image_r", "vel_map", "sigma_map"], "resolution": 300,
              "targets": ["log_mstar"], "aperture": "R_half_3d"}


def synthetic_dataset(path: Path, n_galaxies: int, image_sizes: tuple[int, ...], map_size: int,
                      seed: int = 0) -> Path:
    """Blob galaxies with the dataset schema (as tests/conftest.py's fixture, larger)."""
    rng = np.random.default_rng(seed)
    n0 = image_sizes[0]
    yy, xx = np.mgrid[:n0, :n0] - (n0 - 1) / 2
    my, mx = np.mgrid[:map_size, :map_size] - (map_size - 1) / 2
    for gid in range(n_galaxies):
        log_l = rng.uniform(9.5, 11.0)
        width = rng.uniform(0.04, 0.12) * n0
        sigma0 = 10 ** (0.3 * (log_l - 10) + 2.1)
        records = []
        for proj in range(3):
            q = rng.uniform(0.4, 1.0)
            blob = np.exp(-0.5 * (xx**2 + (yy / q) ** 2) / width**2)
            img_r = (10**log_l * blob / blob.sum()).astype(np.float32)
            rec: dict = {}
            for n in image_sizes:
                f = n0 // n
                r = img_r.reshape(n, f, n, f).sum(axis=(1, 3))
                rec[f"image_r_{n}"] = r
                rec[f"image_g_{n}"] = (0.8 * r).astype(np.float32)
            rec["vel_map"] = (50 * np.tanh(mx / 3) * rng.uniform(0, 1)).astype(np.float32)
            rec["sigma_map"] = (sigma0 * np.exp(-(mx**2 + my**2) / 50)).astype(np.float32)
            rec["map_mask"] = np.hypot(mx, my) < 0.45 * map_size
            for k in TARGETS:
                rec[k] = float(rng.normal())
            rec["log_mstar"] = log_l + 0.3 + rng.normal(0, 0.03)
            rec["log_mtot"] = rec["log_mstar"] + 0.3 + rng.normal(0, 0.05)
            rec["log_lum_r_proj"] = log_l
            for k in FEATURES:
                rec[k] = float(rng.normal())
            rec["M_r"] = 4.65 - 2.5 * log_l
            rec["sigma_e"] = sigma0
            rec.update(galaxy_id=gid, projection=proj, galaxy_type=int(gid % 2),
                       inclination_deg=float(rng.uniform(0, 90)), pixel_scale_kpc=0.1,
                       A_r=float(rng.uniform(0, 1)))
            rec["A_g"] = 1.4 * rec["A_r"]
            missing = set(META) - set(rec)
            for k in missing:  # meta columns added later: a neutral value
                rec[k] = 0.0
            records.append(rec)
        write_shard(path, gid, records)
    attrs = {"profile": "device_check", "seed": seed, "source": "synthetic", "config": "{}"}
    return assemble(path, list(range(n_galaxies)), attrs, list(image_sizes))


class _Interrupted(Exception):
    pass


def train_interrupted(cfg: dict, dataset: Path, store: ResultsStore) -> Path:
    """Kill the run after its first epoch (its checkpoint written), then resume it."""
    original = ct.train_model

    def killed(*args, **kwargs):
        def stop(epoch, row):
            raise _Interrupted

        return original(*args, **kwargs, on_epoch_end=stop)

    ct.train_model = killed
    try:
        ct.run_cnn_experiment(cfg, dataset, EXPERIMENT, store, progress=False)
    except _Interrupted:
        pass
    finally:
        ct.train_model = original
    return ct.run_cnn_experiment(cfg, dataset, EXPERIMENT, store, progress=False)


def compare(a: Path, b: Path) -> dict:
    import pandas as pd

    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    pa, pb = (pd.read_parquet(p / "predictions.parquet") if (p / "predictions.parquet").exists()
              else pd.read_csv(p / "predictions.csv") for p in (a, b))
    ha, hb = (json.loads((p / "meta.json").read_text()) for p in (a, b))
    col = "pred_log_mstar"
    diff = float(np.max(np.abs(pa[col].to_numpy() - pb[col].to_numpy())))
    return {"identical_predictions": diff == 0.0, "max_abs_prediction_diff_dex": diff,
            "identical_metrics": ma["targets"] == mb["targets"],
            "same_best_epoch": ma["best_epoch"] == mb["best_epoch"],
            "resumed_from_epoch": hb.get("resumed_from_epoch"),
            "uninterrupted_sigma_dex": ma["targets"]["log_mstar"]["all"]["sigma"],
            "uninterrupted_meta": {k: ha.get(k) for k in ("device_name", "amp_dtype",
                                                          "timings", "training",
                                                          "input_reading")}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="CPU-sized: 32-px images, 8 galaxies")
    p.add_argument("--galaxies", type=int, default=None)
    p.add_argument("--bench-budget-s", type=float, default=120.0)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available() and not args.tiny
    sizes, map_px = ((32, 16), 16) if args.tiny else ((300, 150, 60), 48)
    n_gal = args.galaxies or (10 if args.tiny else 200)
    out_dir = args.out or Path(os.environ.get("OUT") or ROOT / "data/results/benchmarks")
    result: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu",
                    "tiny": args.tiny, "environment": environment_info(), "steps": {}}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        tmp = Path(tmp)
        t = time.time()
        ds = synthetic_dataset(tmp / "synthetic.h5", n_gal, sizes, map_px)
        result["steps"]["dataset"] = {"s": time.time() - t, "galaxies": n_gal, "rows": 3 * n_gal,
                                      "image_sizes": list(sizes), "map_px": map_px,
                                      "bytes": ds.stat().st_size}
        cfg = load_config("smoke", [
            "cnn.epochs=3", f"cnn.batch_size={8 if args.tiny else 40}",
            f"cnn.image_size={sizes[0]}", f"cnn.device={'cuda' if cuda else 'cpu'}",
            "cnn.deterministic=true", f"cnn.cpu_threads={1 if args.tiny else 0}"])
        t = time.time()
        a = ct.run_cnn_experiment(cfg, ds, EXPERIMENT, ResultsStore(tmp / "a"), progress=False)
        result["steps"]["train_3_epochs_s"] = time.time() - t
        t = time.time()
        b = train_interrupted(cfg, ds, ResultsStore(tmp / "b"))
        result["steps"]["interrupted_and_resumed_s"] = time.time() - t
        result["resume"] = compare(a, b)
    t = time.time()
    import bench_cnn

    if cuda:
        result["benchmark"] = bench_cnn.gpu_part(steps=10, budget_s=args.bench_budget_s)
    else:
        plan = ct.device_plan({"device": "cpu", "cpu_threads": 1})
        result["benchmark"] = {"cpu_tiny": bench_cnn.bench_step(
            {"image_r": sizes[0], "vel_map": map_px, "sigma_map": map_px}, plan, 8, 2,
            warmup=1)}
    result["steps"]["benchmark_s"] = time.time() - t
    result["total_s"] = time.time() - t0
    result["ok"] = bool(result["resume"]["identical_predictions"]
                        and result["resume"]["identical_metrics"])
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "device_check.json" if os.environ.get("OUT") else \
        f"cnn_device_check_{'tiny' if args.tiny else 'gpu'}.json"
    (out_dir / name).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: result[k] for k in ("device", "ok", "total_s", "steps")}, indent=1,
                     default=str))
    print(f"wrote {out_dir / name}")
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
