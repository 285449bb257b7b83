"""Where the quick profile's CNN time goes on a CPU: per branch, per stem, optimiser, evaluation.

The quick book trains the multi-branch ResNet-18 on 60-px images and 48-px kinematic maps on
two CPU cores; training dominates the build. This script times, on random data of the quick
sizes and with a fixed thread count (so numbers measured back to back on a shared machine
compare), the pieces of one training step:

- forward + backward of one branch (image 60 px with 1 channel, map 48 px with 2 channels,
  image 30 px) for each stem of models/cnn.py,
- the whole headline model (r image + both maps) forward + backward, the Adam step
  (torch's default foreach implementation and the fused CPU kernel), and one evaluation
  forward pass per sample (no gradients, eval batch),
- the same step in channels_last memory format and at other batch sizes.

    python benchmarks/bench_quick_cnn.py [--threads 1] [--steps 3] [--json out.json]

Times are the fastest of `--steps` timed batches after one warm-up batch: on a machine shared
with other jobs the fastest batch is the one least slowed by them, so rows measured back to back
compare; absolute numbers are not those of an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from analysis_lib.models.cnn import STEMS, build_model, count_parameters
from analysis_lib.models.cnn_data import branch_channels

HEADLINE = {"image_r": 60, "vel_map": 48, "sigma_map": 48}


def _best_time(fn: Callable[[], None], steps: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _inputs(sizes: dict[str, int], batch: int, channels_last: bool = False
            ) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, size in sizes.items():
        x = torch.rand((batch, branch_channels(name), size, size), generator=g)
        out[name] = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return out


def time_train_step(sizes: dict[str, int], stem: str, batch: int, steps: int,
                    channels_last: bool = False, optimizer: str | None = None) -> dict:
    """Fastest seconds of forward + backward (and the optimiser step when one is named)."""
    torch.manual_seed(0)
    model = build_model(sizes, ["t"], {"stem": stem})
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    xb = _inputs(sizes, batch, channels_last)
    yb = torch.zeros((batch, 1))
    opt = None
    if optimizer == "adam_foreach":
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    elif optimizer == "adam_fused":
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(xb), yb).backward()

    fb = _best_time(fwd_bwd, steps)
    row = {"sizes": sizes, "stem": stem, "batch": batch, "channels_last": channels_last,
           "n_parameters": count_parameters(model), "fwd_bwd_s": fb,
           "fwd_bwd_ms_per_sample": 1e3 * fb / batch}
    if opt is not None:
        fwd_bwd()
        row["optimizer"] = optimizer
        row["opt_step_s"] = _best_time(opt.step, steps)
    return row


def time_eval(sizes: dict[str, int], stem: str, batch: int, steps: int) -> dict:
    """Fastest seconds of one no-gradient forward pass of `batch` samples in eval mode."""
    torch.manual_seed(0)
    model = build_model(sizes, ["t"], {"stem": stem}).eval()
    xb = _inputs(sizes, batch)

    def fwd() -> None:
        with torch.no_grad():
            model(xb)

    s = _best_time(fwd, steps)
    return {"sizes": sizes, "stem": stem, "eval_batch": batch, "eval_s": s,
            "eval_ms_per_sample": 1e3 * s / batch}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--steps", type=int, default=3, help="timed batches per row")
    p.add_argument("--batch", type=int, default=40)
    p.add_argument("--parts", default="branches,model,optim,eval,layout,batch",
                   help="comma list of parts to run")
    p.add_argument("--stems", default=",".join(s for s in STEMS if s != "auto"))
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    stems = args.stems.split(",")
    rows: list[dict] = []

    def show(label: str, row: dict) -> None:
        rows.append({"label": label, **row})
        extra = "".join(f"  {k}={row[k]:.3f}" for k in ("opt_step_s", "eval_ms_per_sample")
                        if k in row)
        ms = row.get("fwd_bwd_ms_per_sample")
        print(f"{label:<44s}" + (f" fwd+bwd {ms:7.1f} ms/sample" if ms else "") + extra,
              flush=True)

    b = args.batch
    if "branches" in parts:
        for stem in stems:
            for name, size in (("image_r", 60), ("vel_map", 48), ("image_r", 30)):
                show(f"branch {name}@{size} stem={stem}",
                     time_train_step({name: size}, stem, b, args.steps))
    if "model" in parts:
        for stem in stems:
            show(f"headline r+maps stem={stem}", time_train_step(HEADLINE, stem, b, args.steps))
    if "optim" in parts:
        for opt in ("adam_foreach", "adam_fused"):
            show(f"headline + {opt}", time_train_step(HEADLINE, "imagenet", b, args.steps,
                                                      optimizer=opt))
    if "eval" in parts:
        show("headline eval batch 160", time_eval(HEADLINE, "imagenet", 160, args.steps))
    if "layout" in parts:
        show("headline channels_last", time_train_step(HEADLINE, "imagenet", b, args.steps,
                                                       channels_last=True))
    if "batch" in parts:
        for bs in (20, 80):
            show(f"headline batch {bs}", time_train_step(HEADLINE, "imagenet", bs, args.steps))
    result = {"threads": args.threads, "steps": args.steps, "torch": torch.__version__,
              "cpu_count": os.cpu_count(), "load_average_1min_after": os.getloadavg()[0],
              "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"load average (1 min) after: {result['load_average_1min_after']:.2f}")
    return result


if __name__ == "__main__":
    main()
