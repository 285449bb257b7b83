"""Training and evaluating the multi-branch ResNet (the paper's section 3.1 and Table 4).

Pipeline of one experiment: resolve its inputs at the profile's resolution -> fit the pixel
scaling on the TRAINING rows over the whole dataset -> load every row once, scaled, into memory
(on the GPU when it fits) -> train with the paper's set-up -> keep the epoch of lowest validation
loss -> predict the test rows -> metrics (bias and scatter of log10(pred/true) in dex, all and per
galaxy type), derived quantities, and the results store. The steps every model shares
(fingerprint, skip or resume, split, store) are the experiment runner's
(`analysis_lib.experiments.run_experiment`); the CNN's own steps are arranged as an estimator in
`cnn_estimator.CNNEstimator`, built from the functions here.

Choices, all stated:

- Inputs and pixel scaling (fitted on the training rows only): see cnn_data.py.
- Loss: MSE of the log targets standardised with the training mean and standard deviation.
- Adam, lr cnn.lr, CosineAnnealingLR(T_max = epochs) stepped once per epoch, batch cnn.batch_size,
  the training rows shuffled every epoch by a seeded torch.Generator. A last batch of one sample
  is folded into the previous batch (BatchNorm cannot train on one sample with 1x1 features).
- Rows whose targets are not finite are dropped from every split and counted in meta.json.
- GPU (CUDA): bf16 autocast, channels_last, data resident on the device when it fits in
  cnn.resident_fraction of free memory (otherwise pinned host memory, copied per batch),
  optional torch.compile. CPU: float32, torch.set_num_threads(os.cpu_count()) unless
  cnn.cpu_threads says otherwise (on a machine shared with other jobs, fewer threads than cores
  avoid OpenMP threads spinning against each other, which can cost 10x).
- cnn.deterministic (default true): on the GPU cudnn.benchmark is off and deterministic
  algorithms are asked for (torch.use_deterministic_algorithms, CUBLAS_WORKSPACE_CONFIG), so a
  resumed run repeats the uninterrupted one. With false, cudnn picks the fastest kernels and a
  resumed GPU run is only statistically equivalent. The CPU is deterministic either way.
- torch.compile (cnn.compile): Dynamo's caches are reset at the start of every run (a process
  that trains many experiments never reaches the recompile limit, and reaching it raises
  instead of silently running uncompiled); shapes are static and only full batches run
  compiled: the one uneven last batch of an epoch runs the same weights eagerly, so there is
  one graph per model. A compilation that fails falls back to eager WITH a warning and the
  reason in meta.json (`compile`). The first epoch of a compiled call includes compilation:
  history marks it (`warmup`) and throughput excludes it.
- cnn.augment: none (the paper) | dihedral: each training sample is rotated by a multiple of
  90 degrees and/or mirrored, every branch the same way, drawn from a seeded generator (saved
  in the checkpoint). Velocities keep their sign: a rotated or mirrored velocity field is still
  a possible galaxy's.
- One rolling checkpoint per run (model, optimiser, scheduler, generators, RNG states,
  history), replaced atomically every cnn.checkpoint_every epochs; an interrupted run resumes
  from it to the same result. The best weights are not duplicated in it: when the latest epoch
  is the best, the checkpoint's model is the best; otherwise the best weights live in one small
  side file (checkpoint.best_eNNNN.pt), written once when the run moves past its best epoch.
  Both are deleted when the run is stored (cnn.keep_model keeps the best weights as
  extra/best_model.pt); their sizes are recorded in meta.json.
- Several processes (torchrun, DistributedDataParallel): see ddp.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis_lib.config import store_label
from analysis_lib.dataset import DatasetError, GalaxyDataset, open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.experiments.runner import attach_paper
from analysis_lib.io import progress_note, tqdm_options
from analysis_lib.metrics import target_metrics
from analysis_lib.models import cnn_data, ddp
from analysis_lib.models.baselines import run_power_law_baseline  # noqa: F401  (CLI imports it)
from analysis_lib.models.cnn_data import (
    CNNExperimentError,
    plan_inputs,
    resolve_inputs,
)
from analysis_lib.models.experiments import select_experiments
from analysis_lib.paper import paper_row
from analysis_lib.results import ResultsStore, run_fingerprint
from analysis_lib.rng import make_rng

KIND = "cnn"
PREDICTION_META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]
CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "best_model.pt"
AUGMENTS = ("none", "dihedral")
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "epoch_s", "warmup"]


# =========================================================================== device


@dataclass
class DevicePlan:
    """Where and how a run computes: device, autocast dtype, memory format, data residency."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    storage_dtype: torch.dtype
    compile: bool
    deterministic: bool = True  # GPU: no cudnn.benchmark, deterministic algorithms

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


def device_plan(cnn_cfg: dict) -> DevicePlan:
    """GPU with bf16 autocast and channels_last when CUDA is present; float32 on the CPU.

    On the GPU, cnn.deterministic (default true) turns cudnn.benchmark off and asks for
    deterministic algorithms, so that a resumed run repeats an uninterrupted one; false lets
    cudnn pick the fastest kernels (resumption is then only statistically equivalent). In a
    torchrun run 'cuda' means this process's GPU (LOCAL_RANK).
    """
    want = ddp.device_for_rank(str(cnn_cfg.get("device", "auto")))
    if want == "auto":
        want = ddp.device_for_rank("cuda") if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise CNNExperimentError(f"cnn.device={want} but no CUDA device is available")
    device = torch.device(want)
    deterministic = bool(cnn_cfg.get("deterministic", True))
    if device.type == "cuda":
        if deterministic:  # cuBLAS needs it before its first handle (the first matmul)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        amp = torch.bfloat16 if cnn_cfg.get("amp", "bf16") == "bf16" else None
        return DevicePlan(device, amp, True, amp or torch.float32, bool(cnn_cfg.get("compile")),
                          deterministic)
    torch.set_num_threads(int(cnn_cfg.get("cpu_threads", 0)) or os.cpu_count() or 1)
    return DevicePlan(device, None, False, torch.float32, bool(cnn_cfg.get("compile")),
                      deterministic)


def place_inputs(inputs: dict[str, torch.Tensor], plan: DevicePlan, resident_fraction: float
                 ) -> tuple[dict[str, torch.Tensor], bool]:
    """Move the whole scaled dataset to the GPU if it fits; else pin it for fast copies."""
    if plan.device.type != "cuda":
        return inputs, True
    need = sum(t.numel() * t.element_size() for t in inputs.values())
    free, _ = torch.cuda.mem_get_info(plan.device)
    if need < resident_fraction * free:
        return {k: v.to(plan.device) for k, v in inputs.items()}, True
    return {k: v.pin_memory() for k, v in inputs.items()}, False


# =========================================================================== training


@dataclass
class TrainData:
    """Every row's scaled inputs and standardised targets, and the row indices per split."""

    inputs: dict[str, torch.Tensor]  # name -> (N, 1, S, S), on the device or pinned host
    targets: torch.Tensor  # (N, T) float32, standardised, same device as inputs
    train: torch.Tensor  # row indices (int64, on the inputs' device)
    val: torch.Tensor


@dataclass
class TrainResult:
    """What training leaves: the best weights, the history and timings."""

    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_loss: float
    history: pd.DataFrame
    epochs_run: int  # epochs computed in this call (the rest came from a checkpoint)
    resumed_from: int  # 0 = fresh start
    train_seconds: float
    finished: bool
    extra: dict = field(default_factory=dict)


def batches(order: torch.Tensor, batch_size: int, min_last: int = 2) -> list[torch.Tensor]:
    """Consecutive batches of `order`; a last batch of fewer than `min_last` samples (one, or
    fewer than 2 per process in a distributed run) joins the previous one."""
    parts = list(torch.split(order, batch_size))
    if len(parts) > 1 and len(parts[-1]) < min_last:
        last = parts.pop()
        parts[-1] = torch.cat([parts[-1], last])
    return parts


def dihedral(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Each sample of (batch, channels, N, N) turned by codes % 4 quarter turns, then mirrored
    left-right where codes >= 4 (the 8 symmetries of the square; code 0 = unchanged)."""
    out = torch.empty_like(x)
    codes = codes.to(x.device)
    for code in torch.unique(codes).tolist():
        sel = torch.nonzero(codes == code).squeeze(1)
        v = torch.rot90(x[sel], int(code) % 4, dims=(2, 3))
        out[sel] = torch.flip(v, dims=(3,)) if code >= 4 else v
    return out


def _batch_inputs(data: TrainData, idx: torch.Tensor, plan: DevicePlan,
                  augment: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The batch's inputs on the compute device; `augment` = per-sample dihedral codes."""
    out = {}
    for name, tensor in data.inputs.items():
        x = tensor[idx] if idx.device == tensor.device else tensor[idx.to(tensor.device)]
        x = x.to(plan.device, non_blocking=True)
        if augment is not None:
            x = dihedral(x, augment)
        if plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out[name] = x
    return out


def _autocast(plan: DevicePlan):
    if plan.amp_dtype is None:
        return torch.autocast(plan.device.type, enabled=False)
    return torch.autocast(plan.device.type, dtype=plan.amp_dtype)


def predict_standardised(model: nn.Module, data: TrainData, rows: torch.Tensor, plan: DevicePlan,
                         batch_size: int) -> torch.Tensor:
    """Model outputs (standardised units, float32, on the CPU) for the given rows, eval mode."""
    model.eval()
    outs = []
    with torch.no_grad(), _autocast(plan):
        for idx in torch.split(rows, batch_size):
            outs.append(model(_batch_inputs(data, idx, plan)).float().cpu())
    if not outs:
        return torch.empty((0, data.targets.shape[1]))
    return torch.cat(outs)


def validation_loss(model: nn.Module, data: TrainData, plan: DevicePlan, batch_size: int
                    ) -> float:
    """Mean squared error (standardised targets) over the validation rows."""
    pred = predict_standardised(model, data, data.val, plan, batch_size)
    true = data.targets[data.val.to(data.targets.device)].float().cpu()
    return float(torch.mean((pred - true) ** 2))


def _state_to_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def save_checkpoint(path: Path, payload: dict) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    from analysis_lib.io import atomic_write

    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at `path` (tensors on the CPU), or None when there is none."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or corrupt file: say so, do not guess
        raise CNNExperimentError(f"{path}: unreadable checkpoint ({exc}); delete it or rerun "
                                 "with force=True") from exc


def best_weights_path(checkpoint_path: Path, epoch: int) -> Path:
    """The side file holding the best weights of `epoch` beside a checkpoint."""
    return checkpoint_path.with_name(f"{checkpoint_path.stem}.best_e{int(epoch):04d}.pt")


def checkpoint_files(checkpoint_path: Path) -> list[Path]:
    """The checkpoint and its best-weights side files (what a run leaves while unfinished)."""
    side = sorted(checkpoint_path.parent.glob(f"{checkpoint_path.stem}.best_e*.pt"))
    return [checkpoint_path, *side]


def remove_checkpoint(checkpoint_path: Path) -> None:
    """Delete a checkpoint and its side files (when the run is stored, or restarted)."""
    for f in checkpoint_files(checkpoint_path):
        f.unlink(missing_ok=True)


@dataclass
class _Compiled:
    """The compiled step model and what happened to it (recorded, never silent)."""

    step: nn.Module
    info: dict


def _compile(base: nn.Module, plan: DevicePlan) -> _Compiled:
    if not plan.compile:
        return _Compiled(base, {"requested": False})
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # one run = fresh caches: many experiments never hit the limit
    graphs_before = int(counters["stats"]["unique_graphs"])  # a process-wide running count
    return _Compiled(torch.compile(base, dynamic=False), {"requested": True, "used": True,
                                                           "_graphs_before": graphs_before})


def _recompile_guard(plan: DevicePlan):
    """Reaching Dynamo's recompile limit raises (instead of running uncompiled silently)."""
    import torch._dynamo

    if plan.compile and hasattr(torch._dynamo.config, "fail_on_recompile_limit_hit"):
        return torch._dynamo.config.patch(fail_on_recompile_limit_hit=True)
    return contextlib.nullcontext()


def _sync(plan: DevicePlan) -> None:
    if plan.device.type == "cuda":
        torch.cuda.synchronize(plan.device)


def train_model(model: nn.Module, data: TrainData, cnn_cfg: dict, plan: DevicePlan, seed: int,
                checkpoint_path: Path | None = None, run_hash: str = "",
                stop_after: int | None = None,
                val_loss_fn: Callable[[nn.Module, int], float] | None = None,
                on_epoch_end: Callable[[int, dict], None] | None = None,
                progress: bool = True, desc: str = "cnn",
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                ) -> TrainResult:
    """The paper's training: Adam + cosine schedule, keep the lowest-validation-loss epoch.

    `seed` seeds the shuffling generator and the augmentation generator (the model is
    initialised by the caller). With a checkpoint path, a checkpoint of the same `run_hash` is
    resumed and the rolling checkpoint is replaced every cnn.checkpoint_every epochs (see the
    module doc for what it holds). `stop_after` ends this call after that many new epochs (the
    checkpoint lets a later call finish); `val_loss_fn(model, epoch)` replaces the validation
    loss (tests); `on_epoch_end(epoch, row)` is called after each epoch's checkpoint is written.
    `loss_fn(outputs, targets)` replaces the paper's MSE (e.g. a Gaussian negative
    log-likelihood when the network also predicts a variance per target).

    Resumption repeats the uninterrupted run exactly on the CPU, and on the GPU when
    plan.deterministic (cnn.deterministic, the default); otherwise only statistically.
    In a torchrun process group (ddp.py) every process takes its slice of each batch.
    TrainResult.extra holds `compile`, `first_step_s`, checkpoint sizes and `world_size`.
    """
    epochs, batch_size = int(cnn_cfg["epochs"]), int(cnn_cfg["batch_size"])
    eval_batch = int(cnn_cfg.get("eval_batch_size", 4 * batch_size))
    every = max(1, int(cnn_cfg.get("checkpoint_every", 1)))
    augment = _check_training(cnn_cfg, batch_size)
    world, main = ddp.world_size(), ddp.is_main()
    model.to(plan.device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _Optimisation.start(model, cnn_cfg, plan, seed, epochs)
    state = _resume(model, opt, plan, checkpoint_path, run_hash)
    base: nn.Module = model
    if ddp.active():
        from torch.nn.parallel import DistributedDataParallel

        ids = [plan.device.index] if plan.device.type == "cuda" else None
        base = DistributedDataParallel(model, device_ids=ids)
    loop = _Loop(compiled=_compile(base, plan), base=base,
                 loss_fn=loss_fn if loss_fn is not None else nn.MSELoss())
    n_train = len(data.train)
    bn_rows = _precise_bn_rows(data, int(cnn_cfg.get("precise_bn_rows", 0)), seed)
    t0 = time.perf_counter()
    ran = 0
    bar = tqdm(range(state.start, epochs), desc=desc, **tqdm_options(progress and main),
               initial=state.start, total=epochs)
    for epoch0 in bar:
        epoch = epoch0 + 1
        if stop_after is not None and ran >= stop_after:
            break
        t_epoch = time.perf_counter()
        model.train()
        total = _train_epoch(model, data, plan, opt, loop, batch_size, augment, world, desc)
        train_loss = float(ddp.all_sum(total)) / n_train
        if bn_rows is not None:
            precise_batchnorm(model, data, plan, bn_rows, batch_size)
        val_loss = _epoch_val_loss(model, data, plan, eval_batch, val_loss_fn, epoch)
        lr = opt.optimizer.param_groups[0]["lr"]
        opt.scheduler.step()
        if val_loss < state.best_val:
            state.best_val, state.best_epoch = val_loss, epoch
            state.best_state = _state_to_cpu(model.state_dict())
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
               "epoch_s": time.perf_counter() - t_epoch,
               "warmup": bool(ran == 0 and loop.compiled.info.get("used"))}
        state.history.append(row)
        ran += 1
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=state.best_epoch)
        if checkpoint_path is not None and main and (epoch % every == 0 or epoch == epochs):
            _write_checkpoint(checkpoint_path, run_hash, epoch, model, opt.optimizer,
                              opt.scheduler, opt.generator, opt.aug_generator, state.history,
                              state.best_state, state.best_val, state.best_epoch, plan,
                              state.ckpt_info)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    bar.close()
    return TrainResult(best_state=state.best_state, best_epoch=state.best_epoch,
                       best_val_loss=state.best_val,
                       history=pd.DataFrame(state.history, columns=HISTORY_COLUMNS),
                       epochs_run=ran, resumed_from=state.start,
                       train_seconds=time.perf_counter() - t0,
                       finished=len(state.history) >= epochs,
                       extra=_training_extra(loop, plan, world, augment, state.ckpt_info))


def _precise_bn_rows(data: TrainData, n_rows: int, seed: int) -> torch.Tensor | None:
    """The fixed training rows that re-estimate BatchNorm statistics (None when off)."""
    if n_rows <= 0:
        return None
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    pick = torch.randperm(len(data.train), generator=gen)[:n_rows]
    return data.train[pick.to(data.train.device)]


def precise_batchnorm(model: nn.Module, data: TrainData, plan: DevicePlan, rows: torch.Tensor,
                      batch_size: int) -> None:
    """Re-estimate every BatchNorm layer's running mean and variance with the current weights.

    PyTorch keeps BatchNorm statistics as a moving average (momentum 0.1) over the last ~10
    training batches, computed with weights that have since moved. Over the paper's 200 epochs
    that lag is negligible; in a run of a few dozen steps it is not: validation and test
    predictions (evaluation mode uses the running statistics) can then be far worse than the
    training loss says (quick profile, 3 epochs: validation loss 1.5-2.4 against a training
    loss of 0.3-0.4 in standardised units, for the networks on images alone). This replaces
    the moving average by the exact average over `rows` (fixed training rows, batches of the
    training size, no gradients, no parameter change): "precise BN" (Wu & Johnson 2021,
    arXiv:2105.07576). Enabled by cnn.precise_bn_rows > 0 (default 0, as the paper).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    with torch.no_grad(), _autocast(plan):
        for idx in batches(rows, batch_size, min_last=2):
            model(_batch_inputs(data, idx, plan, None))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)


def _epoch_val_loss(model: nn.Module, data: TrainData, plan: DevicePlan, eval_batch: int,
                    val_loss_fn: Callable[[nn.Module, int], float] | None, epoch: int) -> float:
    """The epoch's validation loss, computed by rank 0 and shared with every process."""
    if not ddp.is_main():
        val_loss = math.nan  # rank 0's value arrives below
    elif val_loss_fn is not None:
        val_loss = float(val_loss_fn(model, epoch))
    else:
        val_loss = validation_loss(model, data, plan, eval_batch)
    return ddp.broadcast_float(val_loss, plan.device)


def _check_training(cnn_cfg: dict, batch_size: int) -> str:
    """cnn.augment, checked, and a batch size BatchNorm can train on in every process."""
    augment = str(cnn_cfg.get("augment", "none"))
    if augment not in AUGMENTS:
        raise CNNExperimentError(f"cnn.augment must be one of {', '.join(AUGMENTS)}, "
                                 f"not '{augment}'")
    world = ddp.world_size()
    if batch_size < 2 * world:
        raise CNNExperimentError(f"cnn.batch_size={batch_size} is below 2 per process "
                                 f"({world} processes): BatchNorm needs 2 samples")
    return augment


@dataclass
class _Optimisation:
    """Adam, its cosine schedule, and the seeded shuffling and augmentation generators."""

    optimizer: torch.optim.Optimizer
    scheduler: object
    generator: torch.Generator
    aug_generator: torch.Generator

    @classmethod
    def start(cls, model: nn.Module, cnn_cfg: dict, plan: DevicePlan, seed: int, epochs: int
              ) -> _Optimisation:
        # fused: one kernel for all parameters (5x faster steps on the CPU, equal to rounding)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(cnn_cfg["lr"]),
                                     fused=plan.device.type in ("cpu", "cuda"))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        generator = torch.Generator().manual_seed(int(seed))
        aug_generator = torch.Generator().manual_seed(
            int(make_rng(int(seed), "cnn", "augment").integers(2**62)))
        return cls(optimizer, scheduler, generator, aug_generator)


@dataclass
class _Progress:
    """Where training stands: history, best epoch and weights, and the epoch to start from."""

    history: list[dict]
    best_state: dict[str, torch.Tensor]
    best_val: float
    best_epoch: int
    start: int
    ckpt_info: dict


def _resume(model: nn.Module, opt: _Optimisation, plan: DevicePlan,
            checkpoint_path: Path | None, run_hash: str) -> _Progress:
    """A fresh start, or the state of a checkpoint of the same run (model, optimiser,
    schedule, generators, RNG states, history and best weights restored)."""
    state = _Progress(history=[], best_state=_state_to_cpu(model.state_dict()),
                      best_val=math.inf, best_epoch=0, start=0,
                      ckpt_info={"checkpoint_bytes": None, "best_file_bytes": None,
                                 "checkpoint_bytes_written": 0})
    ckpt = load_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and ckpt.get("run_hash") != run_hash:
        tqdm.write(f"{checkpoint_path}: checkpoint of a different configuration; starting afresh")
        ckpt = None
    if ckpt is None:
        return state
    model.load_state_dict(ckpt["model"])
    opt.optimizer.load_state_dict(ckpt["optimizer"])
    opt.scheduler.load_state_dict(ckpt["scheduler"])
    opt.generator.set_state(ckpt["generator"])
    if "aug_generator" in ckpt:
        opt.aug_generator.set_state(ckpt["aug_generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    if plan.device.type == "cuda" and "cuda_rng" in ckpt:
        torch.cuda.set_rng_state(ckpt["cuda_rng"], plan.device)
    state.history = list(ckpt["history"])
    state.best_val, state.best_epoch = ckpt["best_val"], ckpt["best_epoch"]
    state.start = int(ckpt["epoch"])
    state.best_state = _checkpoint_best(ckpt, checkpoint_path, run_hash)
    return state


def _checkpoint_best(ckpt: dict, checkpoint_path: Path, run_hash: str
                     ) -> dict[str, torch.Tensor]:
    """The best weights a checkpoint refers to: its own, its model's, or its side file's."""
    if "best_state" in ckpt:  # a checkpoint written before the side file existed
        return ckpt["best_state"]
    if ckpt.get("best") == "model":
        return ckpt["model"]
    best_epoch = ckpt["best_epoch"]
    side = best_weights_path(checkpoint_path, best_epoch)
    saved = load_checkpoint(side)
    if saved is None or saved.get("run_hash") != run_hash or \
            int(saved.get("epoch", -1)) != best_epoch:
        raise CNNExperimentError(f"{checkpoint_path}: its best weights ({side.name}) "
                                 "are missing or of another run; delete the checkpoint "
                                 "or rerun with force")
    return saved["state"]


@dataclass
class _Loop:
    """What the batch loop carries across epochs: the (possibly compiled) step model, the
    eager one, the loss, and the first step's time (compilation included)."""

    compiled: _Compiled
    base: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    first_step_s: float | None = None


def _train_epoch(model: nn.Module, data: TrainData, plan: DevicePlan, opt: _Optimisation,
                 loop: _Loop, batch_size: int, augment: str, world: int, desc: str
                 ) -> torch.Tensor:
    """One pass over the shuffled training rows; returns the summed (per-sample) loss."""
    order = torch.randperm(len(data.train), generator=opt.generator).to(data.train.device)
    total = torch.zeros((), device=plan.device)
    with _recompile_guard(plan):
        for idx in batches(data.train[order], batch_size, min_last=2 * world):
            codes = (torch.randint(0, 8, (len(idx),), generator=opt.aug_generator)
                     if augment == "dihedral" else None)
            full = len(idx) == batch_size  # the uneven last batch runs eagerly: one graph
            local = ddp.shard(idx)
            local_codes = ddp.shard(codes) if codes is not None else None
            xb = _batch_inputs(data, local, plan, local_codes)
            yb = data.targets[local.to(data.targets.device)].to(plan.device, non_blocking=True)
            t_step = time.perf_counter() if loop.first_step_s is None else 0.0
            out = _forward(loop, loop.compiled.step if full else loop.base, xb, plan, desc)
            loss = loop.loss_fn(out.float(), yb)
            opt.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            opt.optimizer.step()
            total += loss.detach() * len(local)
            if loop.first_step_s is None:
                _sync(plan)
                loop.first_step_s = time.perf_counter() - t_step
    return total


def _forward(loop: _Loop, step: nn.Module, xb: dict[str, torch.Tensor], plan: DevicePlan,
             desc: str) -> torch.Tensor:
    """The step's forward pass; a compilation that fails on the first step falls back to
    eager, WITH a warning and the reason recorded in loop.compiled.info."""
    try:
        with _autocast(plan):
            return step(xb)
    except Exception as exc:  # compilation failed: say so, record it, go eager
        if step is loop.base or loop.first_step_s is not None:
            raise
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        warnings.warn(f"torch.compile failed, training eagerly: {reason}", stacklevel=4)
        tqdm.write(f"WARNING {desc}: torch.compile failed, training eagerly ({reason})")
        loop.compiled = _Compiled(loop.base, {**loop.compiled.info, "used": False,
                                              "fallback": reason})
        with _autocast(plan):
            return loop.base(xb)


def _training_extra(loop: _Loop, plan: DevicePlan, world: int, augment: str,
                    ckpt_info: dict) -> dict:
    """TrainResult.extra: compilation (with the graphs it made), first step, checkpoints."""
    extra = {"compile": loop.compiled.info, "first_step_s": loop.first_step_s,
             "world_size": world, "augment": augment, "deterministic": plan.deterministic,
             **ckpt_info}
    if plan.compile and loop.compiled.info.get("used"):
        from torch._dynamo.utils import counters

        info = dict(loop.compiled.info)
        before = info.pop("_graphs_before", 0)
        extra["compile"] = {**info,
                            "unique_graphs": int(counters["stats"]["unique_graphs"]) - before}
    return extra


def _write_checkpoint(path: Path, run_hash: str, epoch: int, model: nn.Module,
                      optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator,
                      aug_generator: torch.Generator, history: list[dict],
                      best_state: dict[str, torch.Tensor], best_val: float, best_epoch: int,
                      plan: DevicePlan, info: dict) -> None:
    """Replace the rolling checkpoint; the best weights go to a side file only when they are
    not the checkpoint's own model, written once (before the checkpoint that refers to it)."""
    best = "model"
    if best_epoch != epoch:
        side = best_weights_path(path, best_epoch)
        best = side.name
        if not side.exists():
            save_checkpoint(side, {"run_hash": run_hash, "epoch": best_epoch,
                                   "state": best_state})
            info["checkpoint_bytes_written"] += side.stat().st_size
        info["best_file_bytes"] = side.stat().st_size
    payload = {"run_hash": run_hash, "epoch": epoch, "model": _state_to_cpu(model.state_dict()),
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
               "generator": generator.get_state(), "aug_generator": aug_generator.get_state(),
               "torch_rng": torch.get_rng_state(), "history": history, "best": best,
               "best_val": best_val, "best_epoch": best_epoch}
    if plan.device.type == "cuda":
        payload["cuda_rng"] = torch.cuda.get_rng_state(plan.device)
    save_checkpoint(path, payload)
    size = path.stat().st_size
    info["checkpoint_bytes"] = size
    info["checkpoint_bytes_written"] += size
    for old in checkpoint_files(path)[1:]:  # side files the new checkpoint no longer needs
        if old.name != best:
            old.unlink(missing_ok=True)


# =========================================================================== evaluation


def derive_fdm(pred: pd.DataFrame, table: pd.DataFrame) -> tuple[dict, dict]:
    """f_DM = 1 - M*/M_tot from predicted masses (gas ignored), as in the paper's section 4.3.

    Returns {quantity: (pred, true)} and notes. 'log_fdm_derived' is scored against the particle
    f_DM = M_dm/M_tot (the paper's comparison, so central gas shows as a bias);
    'log_fdm_derived_vs_true_masses' against 1 - M*/M_tot of the true masses (the network's error
    alone). Rows with predicted M* >= M_tot have no logarithm: NaN, and counted in the notes.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        f_pred = (1.0 - 10.0 ** (pred["pred_log_mstar"] - pred["pred_log_mtot"])).to_numpy()
        f_true = (1.0 - 10.0 ** (table["log_mstar"] - table["log_mtot"])).to_numpy()
        log_pred = np.where(f_pred > 0, np.log10(f_pred), np.nan)
        log_true = np.where(f_true > 0, np.log10(f_true), np.nan)
    quantities = {"log_fdm_derived": (log_pred, table["log_fdm"].to_numpy()),
                  "log_fdm_derived_vs_true_masses": (log_pred, log_true)}
    return quantities, {"log_fdm_derived_n_undefined": int(np.sum(~(f_pred > 0)))}


def derive_ml_r(pred: pd.DataFrame, table: pd.DataFrame) -> tuple[dict, dict]:
    """M*/L_r = predicted projected M* within R_half / measured r luminosity within R_half.

    Both in the same projected aperture as the dataset's log_ml_r target, so the error is the
    network's M* error alone (the luminosity is taken as perfectly measured, as in the paper).
    """
    log_pred = (pred["pred_log_mstar_proj"] - table["log_lum_r_proj"]).to_numpy()
    return {"log_ml_r_derived": (log_pred, table["log_ml_r"].to_numpy())}, {}


DERIVED: dict[str, tuple[tuple[str, ...], Callable]] = {
    "fdm_from_masses": (("log_mstar", "log_mtot"), derive_fdm),
    "ml_r_from_mstar_proj": (("log_mstar_proj",), derive_ml_r),
}


def paper_reference(experiment: dict, reference_csv: Path | None = None) -> dict[str, dict]:
    """The paper's numbers for each quantity the experiment names (key 'paper' of the YAML).

    Keys are quantities, or 'quantity@group' (e.g. 'log_fdm_derived@early') for a number the
    paper gives for one galaxy type only.
    """
    out = {}
    for quantity, ref in (experiment.get("paper") or {}).items():
        try:
            row = paper_row(ref["section"], "cnn", ref["inputs"], ref["target"], reference_csv)
        except ValueError as exc:
            raise CNNExperimentError(f"experiment '{experiment['name']}': {exc}") from exc
        if row is not None:
            out[quantity] = row
    return out


def evaluate(pred_log: np.ndarray, test_table: pd.DataFrame, experiment: dict,
             pred_sigma: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """`score`, with the paper's numbers beside ours (for callers outside the runner)."""
    pred, metrics = score(pred_log, test_table, experiment, pred_sigma)
    refs = paper_reference(experiment)
    attach_paper(metrics["targets"], refs)
    attach_paper(metrics["derived"], refs)
    return pred, metrics


def score(pred_log: np.ndarray, test_table: pd.DataFrame, experiment: dict,
          pred_sigma: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Predictions (meta, then true_X and pred_X per target and derived X) and test metrics.

    metrics = {"targets": {X: target_metrics(...)}, "derived": {X: target_metrics(...)},
    ...notes}, each block with 'all', 'early', 'late' (the paper's numbers: `evaluate`, or the
    experiment runner).
    With `pred_sigma` (a Gaussian head's 1-sigma, dex, same shape as pred_log) the predictions
    also hold pred_sigma_X and metrics the calibration of those Gaussians on the test rows:
    coverage_68, coverage_95 and crps (means over targets) and "calibration" per target
    (cnn_prob.gaussian_calibration).
    """
    table = test_table.reset_index(drop=True)
    pred = table[PREDICTION_META].copy()
    types = table["galaxy_type"].to_numpy()
    metrics: dict = {"targets": {}, "derived": {}}
    for j, t in enumerate(experiment["targets"]):
        pred[f"true_{t}"] = table[t].to_numpy()
        pred[f"pred_{t}"] = pred_log[:, j]
        if pred_sigma is not None:
            pred[f"pred_sigma_{t}"] = pred_sigma[:, j]
        metrics["targets"][t] = target_metrics(pred_log[:, j], table[t].to_numpy(), types)
    if pred_sigma is not None:
        from analysis_lib.models.cnn_prob import gaussian_calibration

        metrics.update(gaussian_calibration(pred_log, pred_sigma, table, experiment["targets"]))
    for name in experiment.get("derived") or []:
        quantities, notes = DERIVED[name][1](pred, table)
        for q, (p, t) in quantities.items():
            pred[f"true_{q}"] = t
            pred[f"pred_{q}"] = p
            metrics["derived"][q] = target_metrics(p, t, types)
            base = q.removesuffix("_derived")
            if base != q and f"true_{base}" not in pred:  # e.g. true_log_fdm beside
                pred[f"true_{base}"] = t  # pred_log_fdm_derived, as the book's tables expect
        metrics.update(notes)
    pred["row"] = table["row"].to_numpy()
    return pred, metrics


# =========================================================================== experiments


def paper_refs(experiment: dict) -> dict[str, dict]:
    """The experiment's 'paper' mapping as `paper.paper_row` arguments (method 'cnn')."""
    return {q: {"section": ref["section"], "method": "cnn", "inputs": ref["inputs"],
                "target": ref["target"]} for q, ref in (experiment.get("paper") or {}).items()}


def validate_experiment(experiment: dict, dataset: GalaxyDataset) -> None:
    """One clear error for a target, derived quantity or input the dataset cannot provide."""
    name = experiment.get("name", "?")
    targets = experiment.get("targets") or []
    if not targets:
        raise CNNExperimentError(f"experiment '{name}': no targets")
    missing = [t for t in targets if t not in dataset.table.columns]
    if missing:
        raise CNNExperimentError(f"experiment '{name}': targets {missing} not in {dataset.path}")
    for d in experiment.get("derived") or []:
        if d not in DERIVED:
            raise CNNExperimentError(f"experiment '{name}': unknown derived quantity '{d}' "
                                     f"(choose from {', '.join(DERIVED)})")
        needs = [t for t in DERIVED[d][0] if t not in targets]
        if needs:
            raise CNNExperimentError(f"experiment '{name}': derived '{d}' needs targets {needs}")
    paper_reference(experiment)  # a reference that matches no paper row fails now, not after


def experiment_seed(cfg: dict, name: str, purpose: str, seed_index: int = 0) -> int:
    """An integer seed for one experiment and purpose, derived from the profile seed.

    `seed_index` > 0 gives the independent repeats of an experiment (cnn.seeds, the deep
    ensemble's members); index 0 is the seed every run had before repeats existed.
    """
    if int(seed_index) == 0:
        return int(make_rng(cfg["seed"], "cnn", purpose, name).integers(2**62))
    return int(make_rng(cfg["seed"], "cnn", purpose, name, "repeat", int(seed_index))
               .integers(2**62))


# cnn settings that change how fast a run goes or what is kept, never its result
_RUNTIME_KEYS = ("experiments", "device", "compile", "keep_model", "checkpoint_every",
                 "cpu_threads", "eval_batch_size", "load_block", "resident_fraction",
                 "read_once_gb")


# cnn settings of repeats, ensembles, flows and the split comparison: they choose which runs
# exist, never the result of one run (a member's epochs and image size enter as cnn.epochs and
# cnn.image_size); nll_beta changes only Gaussian-likelihood runs
_PROBABILISTIC_KEYS = ("seeds", "seed_experiments", "augment_experiments",
                       "ensemble_members", "ensemble_epochs", "ensemble_image_size",
                       "conformal_level", "flow_context_dims", "flow_transforms",
                       "flow_hidden", "flow_epochs", "flow_patience", "flow_lr",
                       "flow_batch_size", "flow_samples", "flow_keep_samples",
                       "projsplit_experiments", "probabilistic_experiments", "recalibration")


def _run_hash(cfg: dict, experiment: dict, dataset: GalaxyDataset) -> str:
    """What a stored run or a checkpoint must share with the run that would reuse it."""
    return run_fingerprint(**_run_hash_parts(cfg, experiment, dataset))


def _run_hash_parts(cfg: dict, experiment: dict, dataset: GalaxyDataset) -> dict:
    """`_run_hash`'s inputs (kind stays 'cnn' for cnn_prob's runs, as it always was)."""
    skip = set(_RUNTIME_KEYS) | set(_PROBABILISTIC_KEYS)
    extra = {}
    if experiment.get("likelihood", "mse") == "mse":
        skip.add("nll_beta")
    else:  # the Gaussian head's log-variance bounds shape its training: a change retrains
        from analysis_lib.models.cnn_prob import LOGVAR_MAX, LOGVAR_MIN

        extra["logvar_bounds"] = [LOGVAR_MIN, LOGVAR_MAX]
    cnn = {k: v for k, v in cfg["cnn"].items() if k not in skip}
    return dict(kind=KIND, cnn=cnn, seed=cfg["seed"], split=cfg["split"],
                experiment=experiment, dataset=dataset.identity(),
                input_format=cnn_data.INPUT_FORMAT_VERSION, **extra)


def finite_rows(table: pd.DataFrame, rows: np.ndarray, targets: Sequence[str]) -> np.ndarray:
    ok = np.all(np.isfinite(table[list(targets)].to_numpy(dtype=float)), axis=1)
    return np.asarray(rows)[ok[rows]]


def run_cnn_experiment(cfg: dict, dataset_path: str | Path, experiment: dict,
                       store: ResultsStore | None = None, force: bool = False,
                       progress: bool = True) -> Path:
    """Train one named experiment (resuming an interrupted run) and store its test results.

    Skipped, returning the stored run's directory, when its metrics exist and force is False.
    In a torchrun group rank 0 holds the entry's lock for the whole group and stores.
    """
    return _run_cnn_experiment(cfg, dataset_path, experiment, store or ResultsStore(), force,
                               progress)


def _run_cnn_experiment(cfg: dict, dataset_path: str | Path, experiment: dict,
                        store: ResultsStore, force: bool, progress: bool, kind: str = KIND
                        ) -> Path:
    """One run through the experiment runner, stored as `kind`/<experiment name>.

    Keys an experiment may carry beyond the YAML's (set by cnn_prob): `seed_index` (a repeat;
    its seeds come from `base` and the index), `base` (the experiment it repeats), `split_by`
    (galaxy | projection, overriding split.by), `likelihood` (mse | gaussian) and `flow` (keep
    the head's input features for a conditional normalising flow).
    """
    from analysis_lib.experiments.runner import RunSpec, Split, run_experiment
    from analysis_lib.models.cnn_estimator import CNNEstimator, run_config

    dataset_path = Path(dataset_path)
    dataset = open_dataset(dataset_path)
    meta = {"dataset": str(dataset_path), "data_source": dataset.attrs.get("source"),
            "dataset_profile": dataset.attrs.get("profile"),
            "resolution_requested": experiment.get("resolution")}
    spec = RunSpec(kind=kind, name=experiment["name"], cfg=cfg,
                   split=Split("cnn", str(experiment.get("split_by", cfg["split"]["by"]))),
                   config=run_config(cfg, experiment), meta=meta,
                   fingerprint=_run_hash_parts(cfg, experiment, dataset),
                   paper=paper_refs(experiment), main=ddp.is_main())
    estimator = CNNEstimator(experiment, cfg, progress, where=str(dataset_path))
    return run_experiment(estimator, dataset, spec, store, force)


class CNNSelectionError(CNNExperimentError):
    """Some experiments of a selection failed; the others ran. `.paths` holds the stored runs,
    `.outcomes` every experiment's outcome (as in the selection summary file)."""

    def __init__(self, message: str, paths: list[Path], outcomes: list[dict]) -> None:
        super().__init__(message)
        self.paths = paths
        self.outcomes = outcomes


@dataclass
class ExperimentCheck:
    """Whether an experiment can run on a dataset (or on the dataset a profile would make)."""

    name: str
    runnable: bool
    detail: str  # what it would use (inputs at sizes), or why it cannot run

    def as_dict(self) -> dict:
        return {"name": self.name, "runnable": self.runnable, "detail": self.detail}


def _profile_targets() -> set[str]:
    from analysis_lib import dataset as dsmod

    return set(dsmod.TARGETS) | set(getattr(dsmod, "RADIUS_TARGETS", {}))


def check_experiment(cfg: dict, experiment: dict, dataset: GalaxyDataset | None = None
                     ) -> ExperimentCheck:
    """Can this experiment run? Against the dataset when given, else against the profile.

    Checks its targets, derived quantities and paper references, and resolves its inputs at
    the profile's resolution (cnn.image_size) from the dataset's image sizes and map size (or
    observe.image_sizes and observe.map_size): a size the dataset lacks but can re-bin to is
    runnable (cnn_data.resolution_source). With a dataset, also that every split keeps >= 2
    rows with finite targets. Never raises for a problem of the experiment: it is the reason.
    """
    name = str(experiment.get("name", "?"))
    cap = int(cfg["cnn"]["image_size"])
    try:
        if dataset is not None:
            validate_experiment(experiment, dataset)
            specs = resolve_inputs(dataset, experiment, cap)
            have = set(dataset.input_names())
            missing = sorted({src for sp in specs for src in sp.sources} - have)
            if missing:
                raise CNNExperimentError(f"inputs {missing} not in {dataset.path}")
            targets = list(experiment["targets"])
            table = dataset.table
            for k, rows in cnn_split(table, cfg).items():
                n = len(finite_rows(table, rows, targets))
                if n < 2:
                    raise CNNExperimentError(f"only {n} {k} rows with finite {targets}")
        else:
            targets = experiment.get("targets") or []
            if not targets:
                raise CNNExperimentError("no targets")
            unknown = [t for t in targets if t not in _profile_targets()]
            if unknown:
                raise CNNExperimentError(f"targets {unknown} are not dataset columns")
            for d in experiment.get("derived") or []:
                if d not in DERIVED:
                    raise CNNExperimentError(f"unknown derived quantity '{d}'")
                needs = [t for t in DERIVED[d][0] if t not in targets]
                if needs:
                    raise CNNExperimentError(f"derived '{d}' needs targets {needs}")
            paper_reference(experiment)
            obs = cfg["observe"]
            specs = plan_inputs(experiment, [int(x) for x in obs["image_sizes"]],
                                int(obs["map_size"]), cap)
    except (CNNExperimentError, DatasetError) as exc:
        return ExperimentCheck(name, False, " ".join(str(exc).split()))
    parts = []
    for sp in specs:
        note = f" (re-binned {sp.rebin}x from {sp.size * sp.rebin} px)" if sp.rebin > 1 else ""
        parts.append(f"{sp.name}@{sp.size}{note}")
    return ExperimentCheck(name, True, ", ".join(parts) + " -> " +
                           ",".join(experiment["targets"]))


def check_selection(cfg: dict, selection: str | list[str], dataset_path: str | Path | None
                    ) -> tuple[list[ExperimentCheck], str]:
    """Every selected experiment checked (check_experiment) and what it was checked against:
    the dataset when `dataset_path` exists, else the profile."""
    experiments = select_experiments(KIND, selection)
    dataset = None
    against = f"profile '{store_label(cfg)}' (observe.image_sizes={cfg['observe']['image_sizes']}"\
              f", observe.map_size={cfg['observe']['map_size']}; no dataset file)"
    if dataset_path is not None and Path(dataset_path).exists():
        dataset = open_dataset(dataset_path)
        against = f"dataset {dataset_path} (images {dataset.image_sizes} px)"
    return [check_experiment(cfg, e, dataset) for e in experiments], against


def format_checks(checks: Sequence[ExperimentCheck]) -> str:
    """The dry-run table: one line per experiment, 'run' or 'SKIP' and what or why."""
    width = max([len(c.name) for c in checks] + [10])
    lines = [f"{'experiment':{width}s}  status  inputs -> targets, or reason"]
    for c in checks:
        lines.append(f"{c.name:{width}s}  {'run' if c.runnable else 'SKIP':6s}  {c.detail}")
    n_skip = sum(not c.runnable for c in checks)
    lines.append(f"{len(checks) - n_skip} of {len(checks)} can run; {n_skip} would be skipped")
    return "\n".join(lines)


def selection_summary_path(store: ResultsStore, cfg: dict) -> Path:
    """Where run_cnn_experiments records each experiment's outcome."""
    return store.root / store_label(cfg) / f"{KIND}_selection.json"


def run_cnn_experiments(cfg: dict, dataset_path: str | Path, selection: str | list[str],
                        store: ResultsStore | None = None, force: bool = False,
                        progress: bool = True) -> list[Path]:
    """Run the selected experiments ('all', a tag, a name or a comma list) in file order.

    Every experiment is first checked (check_experiment): one that cannot run on this dataset
    is SKIPPED with its reason; one that fails while running is recorded and the next one
    runs (one failure never stops the rest). Each outcome (done / skipped / failed, the
    reason, the run's directory, seconds) is written to selection_summary_path() after every
    experiment. Returns the stored runs; if any experiment failed, CNNSelectionError is
    raised at the end, naming them (its .paths holds the runs that were stored). Ctrl-C
    still stops at once (rerun to resume).
    """
    from analysis_lib.results import atomic_write_text

    store = store or ResultsStore()
    experiments = select_experiments(KIND, selection)
    dataset = open_dataset(dataset_path)
    paths: list[Path] = []
    outcomes: list[dict] = []
    summary = selection_summary_path(store, cfg)

    def record(outcome: dict) -> None:
        outcomes.append(outcome)
        if ddp.is_main():
            atomic_write_text(summary, json.dumps(
                {"dataset": str(dataset_path), "selection": selection,
                 "experiments": outcomes}, indent=2, default=str))

    for i, experiment in enumerate(experiments, 1):
        name = experiment["name"]
        if ddp.is_main():
            progress_note(f"[cnn {i}/{len(experiments)}] {name}", progress)
        check = check_experiment(cfg, experiment, dataset)
        if not check.runnable:
            tqdm.write(f"  skipped: {check.detail}")
            record({"name": name, "status": "skipped", "reason": check.detail})
            continue
        t0 = time.perf_counter()
        try:
            path = run_cnn_experiment(cfg, dataset_path, experiment, store, force, progress)
        except Exception as exc:  # noqa: BLE001 - recorded, reported, and the rest still run
            if os.environ.get("ANALYSIS_LIB_DEBUG"):
                raise
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            tqdm.write(f"  FAILED: {reason}")
            record({"name": name, "status": "failed", "reason": reason,
                    "seconds": time.perf_counter() - t0})
            continue
        paths.append(path)
        record({"name": name, "status": "done", "path": str(path),
                "seconds": time.perf_counter() - t0})
    failed = [o for o in outcomes if o["status"] == "failed"]
    skipped = [o for o in outcomes if o["status"] == "skipped"]
    if skipped and ddp.is_main():
        tqdm.write(f"{len(skipped)} experiment(s) skipped: "
                   + "; ".join(f"{o['name']} ({o['reason']})" for o in skipped))
    if failed:
        raise CNNSelectionError(
            f"{len(failed)} of {len(experiments)} CNN experiments failed (the others ran; "
            f"outcomes in {summary}): "
            + "; ".join(f"{o['name']}: {o['reason']}" for o in failed), paths, outcomes)
    return paths


def describe_metrics(path: Path) -> str:
    """One line per quantity of a stored run: bias and scatter (dex), for logs and notebooks."""
    metrics = json.loads((Path(path) / "metrics.json").read_text())
    lines = []
    for group in ("targets", "derived"):
        for q, stats in metrics.get(group, {}).items():
            if isinstance(stats, dict) and "all" in stats:
                s = stats["all"]
                lines.append(f"{q}: bias {s['bias']:+.3f} dex, sigma {s['sigma']:.3f} dex "
                             f"(n={s['n']})")
    return "\n".join(lines)
