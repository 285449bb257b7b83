"""Multi-GPU (or multi-process CPU) training with torchrun and DistributedDataParallel.

    torchrun --standalone --nproc_per_node 4 -m analysis_lib train-cnn --profile paper

torchrun starts one process per GPU and sets RANK, LOCAL_RANK and WORLD_SIZE; `setup()` (called
by the CLI) joins the process group: NCCL when CUDA is present, one GPU per process (LOCAL_RANK),
else gloo on the CPU (the tests run 2 gloo processes). Without torchrun nothing changes.

What a distributed run does (cnn_train.train_model):

- cnn.batch_size stays the GLOBAL batch: every process draws the same shuffled order (same
  seeded generator) and takes its slice of each batch (`shard`), and DDP averages the
  gradients, so the optimiser steps on the same batches as one process would.
- BatchNorm statistics are per process (no SyncBatchNorm; DDP broadcasts rank 0's running
  statistics at each forward), so a run on N processes is statistically, not bitwise, equal
  to a one-process run; meta.json records `world_size`.
- Rank 0 alone computes the validation loss (broadcast to the others, so every process keeps
  the same best epoch), writes the checkpoint and stores the results; the other ranks return
  without writing. Every process reads the whole dataset into its own memory.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def env_world_size() -> int:
    """Processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes checkpoints and results."""
    return rank() == 0


def setup(timeout_s: float = 1800.0) -> bool:
    """Join torchrun's process group when WORLD_SIZE > 1; True if distributed.

    NCCL with one GPU per process (LOCAL_RANK) when CUDA is present, else gloo. A missing
    torchrun variable is one clear error.
    """
    if env_world_size() <= 1 or active():
        return active()
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
               if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={env_world_size()} but {', '.join(missing)} not set: "
                           "start distributed runs with torchrun")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for_rank(want: str) -> str:
    """'cuda' -> 'cuda:LOCAL_RANK' in a distributed run (one GPU per process)."""
    if active() and want == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return want


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This process's slice of a global batch (contiguous, sizes differ by at most one)."""
    if not active():
        return idx
    return torch.tensor_split(idx, world_size())[rank()]


def all_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of a tensor over processes (itself when not distributed)."""
    if active():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def broadcast_float(value: float, device: torch.device) -> float:
    """Rank 0's value on every process."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64,
                     device=device if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, src=0)
    return float(t.item())


def barrier() -> None:
    if active():
        dist.barrier()
