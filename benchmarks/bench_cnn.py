"""Throughput of the multi-branch ResNet-18 training step, through the project's own loop.

GPU part (when CUDA is present): the paper's input sizes (a 300x300 r image and two 48x48
kinematic maps), bf16 autocast, channels_last, data resident on the GPU; training samples/s and
model FLOP utilisation (FLOPs of one training step counted with
torch.utils.flop_counter.FlopCounterMode, against a dense bf16 peak, 989 TFLOP/s for an H100 SXM
by default). CPU part: the quick profile's sizes (60-px image, 48-px maps), float32.

    python benchmarks/bench_cnn.py [--cpu-only | --gpu-only] [--compile] [--steps N]

Results are merged into data/results/benchmarks/cnn.json (a part not run keeps its old entry;
a GPU part run where no GPU exists says so).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from analysis_lib.models import cnn_train as ct
from analysis_lib.models.cnn import MultiBranchResNet, build_model, count_parameters
from analysis_lib.models.cnn_data import branch_channels
from analysis_lib.paths import RESULTS_DIR
from analysis_lib.results import atomic_write_text, environment_info

OUT = RESULTS_DIR / "benchmarks" / "cnn.json"
PAPER_SIZES = {"image_r": 300, "vel_map": 48, "sigma_map": 48}
PEAK_BF16_FLOPS = 989e12  # H100 SXM dense bf16 tensor-core peak


def training_step_flops(model: MultiBranchResNet, data: ct.TrainData, plan: ct.DevicePlan,
                        batch: int) -> int:
    """FLOPs of one forward + backward pass of one batch (the optimiser step is negligible)."""
    idx = data.train[:batch]
    xb = ct._batch_inputs(data, idx, plan)
    model.train()
    with FlopCounterMode(display=False) as counter, ct._autocast(plan):
        out = model(xb)
        torch.nn.functional.mse_loss(out.float(), data.targets[idx]).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench(sizes: dict[str, int], plan: ct.DevicePlan, batch: int, steps: int,
          compile_model: bool = False) -> dict:
    """Time the real training loop (train_model) on random data: one warm-up epoch, one timed."""
    n = batch * steps
    dev = plan.device
    g = torch.Generator(device="cpu").manual_seed(0)
    inputs = {k: torch.rand((n, branch_channels(k), s, s), generator=g).to(dev,
                                                                         plan.storage_dtype)
              for k, s in sizes.items()}
    data = ct.TrainData(inputs=inputs, targets=torch.randn((n, 1), generator=g).to(dev),
                        train=torch.arange(n, device=dev), val=torch.arange(batch, device=dev))
    torch.manual_seed(0)
    model = build_model(sizes, ["target"], {}).to(dev)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    flops = training_step_flops(model, data, plan, batch)
    plan.compile = compile_model
    cfg = {"epochs": 2, "batch_size": batch, "lr": 1e-4, "eval_batch_size": batch}
    res = ct.train_model(model, data, cfg, plan, seed=0, progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    epoch_s = float(res.history["epoch_s"].iloc[-1])  # second epoch: warm (and compiled)
    samples_per_s = n / epoch_s
    out = {"input_sizes": sizes, "batch_size": batch, "steps_timed": steps,
           "n_parameters": count_parameters(model), "flops_per_training_step": flops,
           "flops_per_sample": flops / batch, "epoch_s": epoch_s,
           "train_samples_per_s": samples_per_s, "achieved_tflops": flops / batch
           * samples_per_s / 1e12, "compiled": compile_model,
           "amp_dtype": str(plan.amp_dtype).replace("torch.", "") if plan.amp_dtype else None,
           "note": "epoch time includes a one-batch validation pass"}
    if dev.type == "cuda":
        out["mfu_vs_bf16_peak"] = out["achieved_tflops"] * 1e12 / PEAK_BF16_FLOPS
        out["peak_flops_assumed"] = PEAK_BF16_FLOPS
        out["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def paper_flops_per_sample() -> float:
    """FLOPs of one training sample at the paper's sizes, counted on the CPU (batch 2)."""
    plan = ct.DevicePlan(torch.device("cpu"), None, False, torch.float32, False)
    inputs = {k: torch.rand((2, branch_channels(k), s, s)) for k, s in PAPER_SIZES.items()}
    data = ct.TrainData(inputs=inputs, targets=torch.zeros((2, 1)), train=torch.arange(2),
                        val=torch.arange(2))
    return training_step_flops(build_model(PAPER_SIZES, ["target"], {}), data, plan, 2) / 2


def gpu_part(steps: int, compile_model: bool) -> dict:
    if not torch.cuda.is_available():
        return {"available": False, "note": "no CUDA device on the machine that ran this; run "
                "`python benchmarks/bench_cnn.py --gpu-only` on a GPU machine",
                "paper_sizes": PAPER_SIZES,
                "paper_flops_per_training_sample": paper_flops_per_sample()}
    plan = ct.device_plan({"device": "cuda", "amp": "bf16"})
    runs = [bench(PAPER_SIZES, plan, b, steps, compile_model) for b in (40, 256)]
    return {"available": True, "device_name": torch.cuda.get_device_name(0), "runs": runs}


def cpu_part(steps: int) -> dict:
    plan = ct.device_plan({"device": "cpu", "cpu_threads": 0})
    runs = [bench({"image_r": 60, "vel_map": 48, "sigma_map": 48}, plan, 40, steps),
            bench({"image_r": 60}, plan, 40, steps)]
    return {"device_name": plan.name, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "runs": runs,
            "load_average_1min_after": os.getloadavg()[0],
            "note": "a load average above the core count means other jobs shared the cores"}


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    part = p.add_mutually_exclusive_group()
    part.add_argument("--cpu-only", action="store_true")
    part.add_argument("--gpu-only", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the GPU model")
    p.add_argument("--steps", type=int, default=None,
                   help="timed batches per run (default: 50 on the GPU, 5 on the CPU)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    t0 = time.time()
    if not args.cpu_only:
        result["gpu"] = gpu_part(args.steps or 50, args.compile)
        result["gpu"]["environment"] = environment_info()
    if not args.gpu_only:
        result["cpu"] = cpu_part(args.steps or 5)
        result["cpu"]["environment"] = environment_info()
    result["torch"] = torch.__version__
    atomic_write_text(args.out, json.dumps(result, indent=2, sort_keys=True))
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return args.out


if __name__ == "__main__":
    main()
