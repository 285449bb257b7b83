"""Throughput, FLOP utilisation and memory of the multi-branch ResNet-18, and a paper-scale plan.

Parts (results merged into data/results/benchmarks/cnn.json; a part not run keeps its entry):
- gpu: the paper's sizes (300-px r image + two 48-px maps), bf16 autocast, channels_last,
  batch 40 and larger; eager, torch.compile and torch.compile with CUDA graphs
  (mode='reduce-overhead'); samples/s of the training step (forward, MSE, backward, Adam),
  MFU = counted FLOPs (torch.utils.flop_counter) x samples/s / the card's dense bf16 peak,
  peak memory (torch.cuda.max_memory_allocated). Compile/warm-up time is timed apart.
  Where no GPU exists, each variant says so.
- cpu: the same step in float32 at the paper's sizes and the quick profile's (60-px image);
  compile and CUDA graphs are recorded as not measured, with the reason.
- input_reading: reading a dataset's inputs the old way (h5py fancy indexing, three passes)
  and the new way (slab reads, one pass into memory), with identical scaled inputs checked.
- plan: FLOPs per sample of every experiment at the paper's sizes, parameter counts and
  checkpoint bytes, dataset bytes extrapolated from a real dataset's compression, and the
  PFLOP a whole Table 4 (cnn.epochs epochs of 16000 training + 4000 validation rows) needs.

    python benchmarks/bench_cnn.py [--cpu-only | --gpu-only] [--steps N] [--dataset H5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch._dynamo
from torch.utils.flop_counter import FlopCounterMode

from analysis_lib.models import cnn_train as ct
from analysis_lib.models.cnn import build_model, count_parameters
from analysis_lib.models.cnn_data import branch_channels
from analysis_lib.paths import RESULTS_DIR
from analysis_lib.results import atomic_write_text, environment_info

OUT = RESULTS_DIR / "benchmarks" / "cnn.json"
PAPER_SIZES = {"image_r": 300, "vel_map": 48, "sigma_map": 48}
QUICK_SIZES = {"image_r": 60, "vel_map": 48, "sigma_map": 48}
# dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
PAPER_ROWS = {"train": 16000, "val": 4000, "test": 8110}  # the paper's split of 28110 rows
PAPER_IMAGE_SIZES = (300, 150, 60)
MAP_PX = 48


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _inputs(sizes: dict[str, int], n: int, device, dtype, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand((n, branch_channels(k), s, s), generator=g).to(device, dtype)
            for k, s in sizes.items()}


def step_flops(model, xb: dict, yb: torch.Tensor, plan: ct.DevicePlan) -> int:
    """FLOPs of one forward + backward of a batch (Adam's element-wise update is negligible)."""
    model.train()
    with FlopCounterMode(display=False) as counter, ct._autocast(plan):
        out = model(xb)
        torch.nn.functional.mse_loss(out.float(), yb).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_step(sizes: dict[str, int], plan: ct.DevicePlan, batch: int, steps: int,
               mode: str = "eager", warmup: int = 2) -> dict:
    """Samples/s of the training step at fixed shapes; warm-up (and compile) timed apart."""
    dev = plan.device
    torch.manual_seed(0)
    model = build_model(sizes, ["target"], {}).to(dev)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    xb = _inputs(sizes, batch, dev, plan.storage_dtype)
    if plan.channels_last:
        xb = {k: v.contiguous(memory_format=torch.channels_last) for k, v in xb.items()}
    yb = torch.randn((batch, 1), generator=torch.Generator().manual_seed(1)).to(dev)
    flops = step_flops(model, xb, yb, plan)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_model = model
    if mode != "eager":
        torch._dynamo.reset()
        step_model = torch.compile(model, dynamic=False,
                                   mode="reduce-overhead" if mode == "cudagraphs" else None)

    def one_step():
        with ct._autocast(plan):
            out = step_model(xb)
        loss = torch.nn.functional.mse_loss(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    for _ in range(warmup):
        one_step()
    ct._sync(plan)
    t1 = time.perf_counter()
    for _ in range(steps):
        one_step()
    ct._sync(plan)
    t2 = time.perf_counter()
    sps = batch * steps / (t2 - t1)
    out = {"input_sizes": sizes, "batch_size": batch, "mode": mode, "steps_timed": steps,
           "warmup_steps": warmup, "warmup_and_compile_s": t1 - t0, "step_s": (t2 - t1) / steps,
           "train_samples_per_s": sps, "flops_per_training_step": flops,
           "flops_per_sample": flops / batch, "achieved_tflops": flops / batch * sps / 1e12,
           "n_parameters": count_parameters(model), "deterministic": plan.deterministic,
           "amp_dtype": str(plan.amp_dtype).replace("torch.", "") if plan.amp_dtype else None}
    if dev.type == "cuda":
        peak = peak_tflops(torch.cuda.get_device_name(dev))
        out["peak_bf16_tflops_assumed"] = peak
        out["mfu"] = out["achieved_tflops"] / peak if peak else None
        out["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    else:
        out["max_rss_gib_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def bench_train_loop(sizes: dict[str, int], plan: ct.DevicePlan, batch: int, steps: int) -> dict:
    """The project's own loop (train_model, data resident): epoch 2 timed, epoch 1 warm-up."""
    n = batch * steps
    dev = plan.device
    inputs = _inputs(sizes, n, dev, plan.storage_dtype)
    data = ct.TrainData(inputs=inputs, targets=torch.randn((n, 1)).to(dev),
                        train=torch.arange(n, device=dev), val=torch.arange(batch, device=dev))
    torch.manual_seed(0)
    model = build_model(sizes, ["target"], {})
    cfg = {"epochs": 2, "batch_size": batch, "lr": 1e-4, "eval_batch_size": batch}
    res = ct.train_model(model, data, cfg, plan, seed=0, progress=False)
    epoch_s = float(res.history["epoch_s"].iloc[-1])
    return {"input_sizes": sizes, "batch_size": batch, "steps_timed": steps,
            "epoch_s": epoch_s, "train_samples_per_s": n / epoch_s, "compiled": plan.compile,
            "note": "train_model, epoch 2 of 2 (includes one validation batch)"}


def gpu_part(steps: int, budget_s: float) -> dict:
    variants = [(40, "eager", True), (40, "eager", False), (128, "eager", True),
                (256, "eager", True), (40, "compile", True), (40, "cudagraphs", True),
                (256, "compile", True)]
    if not torch.cuda.is_available():
        return {"available": False, "variants": [
            {"batch_size": b, "mode": m, "deterministic": d, "measured": False,
             "reason": "no CUDA device on the machine that ran this (scripts/device_check.py "
                       "runs this part on a GPU)"} for b, m, d in variants]}
    t0 = time.time()
    runs = []
    for b, m, d in variants:
        if time.time() - t0 > budget_s:
            runs.append({"batch_size": b, "mode": m, "deterministic": d, "measured": False,
                         "reason": f"time budget of {budget_s:.0f} s spent"})
            continue
        plan = ct.device_plan({"device": "cuda", "amp": "bf16", "deterministic": d})
        try:
            runs.append({"measured": True, **bench_step(PAPER_SIZES, plan, b, steps, m)})
        except Exception as exc:  # noqa: BLE001 - recorded per variant
            runs.append({"batch_size": b, "mode": m, "deterministic": d, "measured": False,
                         "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"})
        torch.cuda.empty_cache()
    plan = ct.device_plan({"device": "cuda", "amp": "bf16"})
    return {"available": True, "device_name": torch.cuda.get_device_name(0), "runs": runs,
            "train_loop": bench_train_loop(PAPER_SIZES, plan, 40, steps)}


def cpu_part(steps: int) -> dict:
    plan = ct.device_plan({"device": "cpu", "cpu_threads": 0})
    runs = [bench_step(PAPER_SIZES, plan, 40, steps, warmup=1),
            bench_step(QUICK_SIZES, plan, 40, steps, warmup=1)]
    return {"device_name": plan.name, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "runs": runs,
            "train_loop": bench_train_loop(QUICK_SIZES, plan, 40, steps),
            "not_measured": {"compile": "torch.compile on the CPU: Inductor's C++ compile of "
                             "three ResNet-18 branches takes minutes on 2 shared cores",
                             "cudagraphs": "CUDA graphs need a CUDA device",
                             "bf16": "the CPU recipe is float32 (bf16 autocast is GPU-only "
                             "here)"},
            "load_average_1min_after": os.getloadavg()[0],
            "note": "a load average above the core count means other jobs shared the cores"}


def input_reading_part(dataset: Path, experiment: str = "s41_rmaps_mstar") -> dict:
    """Old (fancy indexing, 3 passes) vs new (slab reads, read once) on a real dataset."""
    from analysis_lib.config import load_config
    from analysis_lib.dataset import open_dataset
    from analysis_lib.dataset.splits import cnn_split
    from analysis_lib.models import cnn_data as cd
    from analysis_lib.models.experiments import load_experiments

    ds = open_dataset(dataset)
    cfg = load_config(str(ds.attrs.get("profile", "quick")))
    exp = load_experiments("cnn")[experiment]
    specs = cd.resolve_inputs(ds, exp, max(ds.image_sizes))
    names = sorted({s for sp in specs for s in sp.sources})
    split = cnn_split(ds.table, cfg)
    used = np.sort(np.concatenate(list(split.values())))
    train = np.sort(split["train"])
    block = 512

    def fancy(rows):
        for a in range(0, len(rows), block):
            ds.load_inputs(names, rows[a:a + block])

    def slab(rows):
        for a in range(0, len(rows), block):
            cd.read_rows(ds.path, names, rows[a:a + block])

    t = {}
    for label, fn, rows in (("fancy_indexing_used_rows", fancy, used),
                            ("slab_reads_used_rows", slab, used)):
        t0 = time.perf_counter()
        fn(rows)
        t[label] = time.perf_counter() - t0
    old_total = 2 * t["fancy_indexing_used_rows"] * len(train) / len(used) \
        + t["fancy_indexing_used_rows"]
    res = {}
    for label, gb in (("read_once", 64.0), ("streamed", 0.0)):
        t0 = time.perf_counter()
        sc, host, info = cd.prepare_inputs(ds, specs, train, used, block=block,
                                           read_once_bytes=gb * 2**30)
        res[label] = (sc, host, {**info, "total_s": time.perf_counter() - t0})
    same = all(torch.equal(res["read_once"][1][k], res["streamed"][1][k])
               for k in res["read_once"][1]) and \
        all(res["read_once"][0][k] == res["streamed"][0][k] for k in res["read_once"][0])
    per_px = {}
    import h5py

    with h5py.File(ds.path, "r") as f:
        for name in f["inputs"]:
            d = f[f"inputs/{name}"]
            per_px[name] = d.id.get_storage_size() / d.size
    return {"dataset": str(ds.path), "rows_used": int(len(used)), "rows_train": int(len(train)),
            "experiment": experiment, "inputs": names, "image_px": max(ds.image_sizes),
            "seconds": t, "old_three_pass_estimate_s": old_total,
            "speedup_one_pass_vs_fancy": t["fancy_indexing_used_rows"]
            / t["slab_reads_used_rows"],
            "prepare_inputs_read_once": res["read_once"][2],
            "prepare_inputs_streamed": res["streamed"][2],
            "read_once_equals_streamed": bool(same),
            "stored_bytes_per_value": per_px,
            "note": "old: GalaxyDataset.load_inputs (h5py fancy indexing) for the two scaler "
                    "passes over the training rows and the load of every used row; new: one "
                    "slab-read pass (cnn_data.read_rows) into memory"}


def plan_part(cfg_epochs: int, stored_bytes_per_value: dict | None) -> dict:
    """FLOPs, parameters and bytes per experiment at the paper's sizes (counted, not timed)."""
    from analysis_lib.models import cnn_data as cd
    from analysis_lib.models.experiments import select_experiments

    cpu = ct.DevicePlan(torch.device("cpu"), None, False, torch.float32, False)
    branch_cache: dict[tuple, int] = {}

    def branch_flops(name: str, size: int) -> int:
        key = (name, size)
        if key not in branch_cache:
            torch.manual_seed(0)
            m = build_model({name: size}, ["t"], {})
            xb = _inputs({name: size}, 2, "cpu", torch.float32)
            branch_cache[key] = step_flops(m, xb, torch.zeros((2, 1)), cpu) // 2
        return branch_cache[key]

    rows = []
    for exp in select_experiments("cnn", "all"):
        specs = cd.plan_inputs(exp, PAPER_IMAGE_SIZES, MAP_PX, 300)
        sizes = {s.name: s.size for s in specs}
        f_train = sum(branch_flops(s.name, s.size) for s in specs)
        n_param = count_parameters(build_model(sizes, exp["targets"], {}))
        per_epoch = PAPER_ROWS["train"] * f_train + PAPER_ROWS["val"] * f_train / 3
        resident = sum(PAPER_ROWS.values()) * sum(s.channels * s.size**2 for s in specs) * 2
        rows.append({"experiment": exp["name"], "inputs": sizes,
                     "train_flops_per_sample": f_train, "n_parameters": n_param,
                     "epoch_pflop": per_epoch / 1e15,
                     "run_pflop": per_epoch * cfg_epochs / 1e15,
                     "checkpoint_bytes_est": n_param * 4 * 3,
                     "best_weights_bytes_est": n_param * 4,
                     "gpu_resident_inputs_gib_bf16": resident / 2**30})
    total = sum(r["run_pflop"] for r in rows)
    out = {"epochs": cfg_epochs, "rows": PAPER_ROWS, "experiments": rows,
           "table4_total_pflop": total,
           "note": "validation forward ~1/3 of a training step's FLOPs; hours on a GPU = "
                   "PFLOP x 1e15 / (MFU x peak): use the measured gpu.runs[*].mfu where one "
                   "ran; the CPU rate in cpu.runs gives the CPU hours"}
    for mfu in (0.2, 0.4):
        out[f"table4_hours_at_mfu_{mfu}_of_989_tflops"] = total * 1e15 / (mfu * 989e12) / 3600
    if stored_bytes_per_value:
        n = sum(PAPER_ROWS.values())
        img = sum(2 * s * s * stored_bytes_per_value.get(f"image_r_{s}",
                                                         stored_bytes_per_value.get(
                                                             "image_r_60", 4.0))
                  for s in PAPER_IMAGE_SIZES)
        maps = MAP_PX**2 * sum(stored_bytes_per_value.get(k, 4.0)
                               for k in ("vel_map", "sigma_map", "map_mask"))
        out["paper_dataset_gib_est"] = n * (img + maps) / 2**30
        out["paper_dataset_note"] = ("28110 rows x (r and g at 300/150/60 px + 3 maps), at "
                                     "the measured dataset's stored bytes per value (gzip); "
                                     "sizes it lacks use its 60-px rate")
    return out


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    part = p.add_mutually_exclusive_group()
    part.add_argument("--cpu-only", action="store_true")
    part.add_argument("--gpu-only", action="store_true")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per variant (default: 20 on the GPU, 2 on the CPU)")
    p.add_argument("--gpu-budget-s", type=float, default=240.0,
                   help="stop starting GPU variants after this many seconds")
    p.add_argument("--dataset", type=Path, default=None,
                   help="a dataset for the input-reading part (skipped without one)")
    p.add_argument("--no-plan", action="store_true", help="skip the paper-scale plan")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    t0 = time.time()
    if not args.cpu_only:
        result["gpu"] = gpu_part(args.steps or 20, args.gpu_budget_s)
        result["gpu"]["environment"] = environment_info()
    if not args.gpu_only:
        result["cpu"] = cpu_part(args.steps or 2)
        result["cpu"]["environment"] = environment_info()
        if args.dataset is not None:
            result["input_reading"] = input_reading_part(args.dataset)
        if not args.no_plan:
            from analysis_lib.config import load_config

            stored = (result.get("input_reading") or {}).get("stored_bytes_per_value")
            result["plan"] = plan_part(int(load_config("paper")["cnn"]["epochs"]), stored)
    result["torch"] = torch.__version__
    atomic_write_text(args.out, json.dumps(result, indent=2, sort_keys=True, default=str))
    print(json.dumps(result, indent=2, sort_keys=True, default=str)[:4000])
    print(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return args.out


if __name__ == "__main__":
    main()
