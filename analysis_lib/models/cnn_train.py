"""Training and evaluating the multi-branch ResNet (the paper's section 3.1 and Table 4).

Pipeline of one experiment: resolve its inputs at the profile's resolution -> fit the pixel
scaling on the TRAINING rows over the whole dataset -> load every row once, scaled, into memory
(on the GPU when it fits) -> train with the paper's set-up -> keep the epoch of lowest validation
loss -> predict the test rows -> metrics (bias and scatter of log10(pred/true) in dex, all and per
galaxy type), derived quantities, and the results store.

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
import copy
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
from analysis_lib.metrics import target_metrics
from analysis_lib.models import cnn_data, ddp
from analysis_lib.models.baselines import run_power_law_baseline  # noqa: F401  (CLI imports it)
from analysis_lib.models.cnn import LIKELIHOODS, build_model, count_parameters, stem_for
from analysis_lib.models.cnn_data import (
    CNNExperimentError,
    TargetScaler,
    plan_inputs,
    prepare_inputs,
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
    epochs = int(cnn_cfg["epochs"])
    batch_size = int(cnn_cfg["batch_size"])
    eval_batch = int(cnn_cfg.get("eval_batch_size", 4 * batch_size))
    every = max(1, int(cnn_cfg.get("checkpoint_every", 1)))
    augment = str(cnn_cfg.get("augment", "none"))
    if augment not in AUGMENTS:
        raise CNNExperimentError(f"cnn.augment must be one of {', '.join(AUGMENTS)}, "
                                 f"not '{augment}'")
    world, main = ddp.world_size(), ddp.is_main()
    if batch_size < 2 * world:
        raise CNNExperimentError(f"cnn.batch_size={batch_size} is below 2 per process "
                                 f"({world} processes): BatchNorm needs 2 samples")
    model.to(plan.device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    # fused: one kernel for all parameters (5x faster steps on the CPU, equal to rounding)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cnn_cfg["lr"]),
                                 fused=plan.device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    generator = torch.Generator().manual_seed(int(seed))
    aug_generator = torch.Generator().manual_seed(
        int(make_rng(int(seed), "cnn", "augment").integers(2**62)))
    history: list[dict] = []
    best_state = _state_to_cpu(model.state_dict())
    best_val, best_epoch, start = math.inf, 0, 0
    ckpt_info = {"checkpoint_bytes": None, "best_file_bytes": None,
                 "checkpoint_bytes_written": 0}

    ckpt = load_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and ckpt.get("run_hash") != run_hash:
        tqdm.write(f"{checkpoint_path}: checkpoint of a different configuration; starting afresh")
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        generator.set_state(ckpt["generator"])
        if "aug_generator" in ckpt:
            aug_generator.set_state(ckpt["aug_generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        if plan.device.type == "cuda" and "cuda_rng" in ckpt:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], plan.device)
        history = list(ckpt["history"])
        best_val, best_epoch = ckpt["best_val"], ckpt["best_epoch"]
        start = int(ckpt["epoch"])
        if "best_state" in ckpt:  # a checkpoint written before the side file existed
            best_state = ckpt["best_state"]
        elif ckpt.get("best") == "model":
            best_state = ckpt["model"]
        else:
            side = best_weights_path(checkpoint_path, best_epoch)
            saved = load_checkpoint(side)
            if saved is None or saved.get("run_hash") != run_hash or \
                    int(saved.get("epoch", -1)) != best_epoch:
                raise CNNExperimentError(f"{checkpoint_path}: its best weights ({side.name}) "
                                         "are missing or of another run; delete the checkpoint "
                                         "or rerun with force")
            best_state = saved["state"]

    base: nn.Module = model
    if ddp.active():
        from torch.nn.parallel import DistributedDataParallel

        ids = [plan.device.index] if plan.device.type == "cuda" else None
        base = DistributedDataParallel(model, device_ids=ids)
    compiled = _compile(base, plan)
    loss_fn = loss_fn if loss_fn is not None else nn.MSELoss()
    n_train = len(data.train)
    t0 = time.perf_counter()
    first_step_s = None
    ran = 0
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress or not main, initial=start,
               total=epochs)
    for epoch0 in bar:
        epoch = epoch0 + 1
        if stop_after is not None and ran >= stop_after:
            break
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=generator).to(data.train.device)
        total = torch.zeros((), device=plan.device)
        with _recompile_guard(plan):
            for idx in batches(data.train[order], batch_size, min_last=2 * world):
                codes = (torch.randint(0, 8, (len(idx),), generator=aug_generator)
                         if augment == "dihedral" else None)
                full = len(idx) == batch_size  # the uneven last batch runs eagerly: one graph
                local = ddp.shard(idx)
                local_codes = ddp.shard(codes) if codes is not None else None
                xb = _batch_inputs(data, local, plan, local_codes)
                yb = data.targets[local.to(data.targets.device)].to(plan.device,
                                                                    non_blocking=True)
                t_step = time.perf_counter() if first_step_s is None else 0.0
                step = compiled.step if full else base
                try:
                    with _autocast(plan):
                        out = step(xb)
                except Exception as exc:  # compilation failed: say so, record it, go eager
                    if step is base or first_step_s is not None:
                        raise
                    reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                    warnings.warn(f"torch.compile failed, training eagerly: {reason}",
                                  stacklevel=2)
                    tqdm.write(f"WARNING {desc}: torch.compile failed, training eagerly "
                               f"({reason})")
                    compiled = _Compiled(base, {**compiled.info, "used": False,
                                                "fallback": reason})
                    with _autocast(plan):
                        out = base(xb)
                loss = loss_fn(out.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(local)
                if first_step_s is None:
                    _sync(plan)
                    first_step_s = time.perf_counter() - t_step
        train_loss = float(ddp.all_sum(total)) / n_train
        if not main:
            val_loss = math.nan  # rank 0's value arrives below
        elif val_loss_fn is not None:
            val_loss = float(val_loss_fn(model, epoch))
        else:
            val_loss = validation_loss(model, data, plan, eval_batch)
        val_loss = ddp.broadcast_float(val_loss, plan.device)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if val_loss < best_val:
            best_val, best_epoch = val_loss, epoch
            best_state = _state_to_cpu(model.state_dict())
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
               "epoch_s": time.perf_counter() - t_epoch,
               "warmup": bool(ran == 0 and compiled.info.get("used"))}
        history.append(row)
        ran += 1
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=best_epoch)
        if checkpoint_path is not None and main and (epoch % every == 0 or epoch == epochs):
            _write_checkpoint(checkpoint_path, run_hash, epoch, model, optimizer, scheduler,
                              generator, aug_generator, history, best_state, best_val,
                              best_epoch, plan, ckpt_info)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    bar.close()
    done = len(history)
    extra = {"compile": compiled.info, "first_step_s": first_step_s, "world_size": world,
             "augment": augment, "deterministic": plan.deterministic, **ckpt_info}
    if plan.compile and compiled.info.get("used"):
        from torch._dynamo.utils import counters

        info = dict(compiled.info)
        before = info.pop("_graphs_before", 0)
        extra["compile"] = {**info,
                            "unique_graphs": int(counters["stats"]["unique_graphs"]) - before}
    return TrainResult(best_state=best_state, best_epoch=best_epoch, best_val_loss=best_val,
                       history=pd.DataFrame(history, columns=["epoch", "train_loss", "val_loss",
                                                              "lr", "epoch_s", "warmup"]),
                       epochs_run=ran, resumed_from=start,
                       train_seconds=time.perf_counter() - t0, finished=done >= epochs,
                       extra=extra)


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


def attach_paper(blocks: dict[str, dict], refs: dict[str, dict]) -> None:
    """Put each paper number beside our number: block['paper'] or block[group]['paper']."""
    for key, ref in refs.items():
        quantity, _, group = key.partition("@")
        if quantity in blocks:
            (blocks[quantity][group] if group else blocks[quantity])["paper"] = ref


def evaluate(pred_log: np.ndarray, test_table: pd.DataFrame, experiment: dict,
             pred_sigma: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """Predictions (meta, then true_X and pred_X per target and derived X) and test metrics.

    metrics = {"targets": {X: target_metrics(...)}, "derived": {X: target_metrics(...)},
    ...notes}, each block with 'all', 'early', 'late' and, where the paper has one, 'paper'.
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
    refs = paper_reference(experiment)
    attach_paper(metrics["targets"], refs)
    attach_paper(metrics["derived"], refs)
    pred["row"] = table["row"].to_numpy()
    return pred, metrics


# =========================================================================== experiments


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
_PROBABILISTIC_KEYS = ("seeds", "seed_experiments", "ensemble_members", "ensemble_epochs",
                       "ensemble_image_size",
                       "conformal_level", "flow_context_dims", "flow_transforms",
                       "flow_hidden", "flow_epochs", "flow_patience", "flow_lr",
                       "flow_batch_size", "flow_samples", "flow_keep_samples",
                       "projsplit_experiments", "probabilistic_experiments")


def _run_hash(cfg: dict, experiment: dict, dataset: GalaxyDataset) -> str:
    """What a stored run or a checkpoint must share with the run that would reuse it."""
    skip = set(_RUNTIME_KEYS) | set(_PROBABILISTIC_KEYS)
    if experiment.get("likelihood", "mse") == "mse":
        skip.add("nll_beta")
    cnn = {k: v for k, v in cfg["cnn"].items() if k not in skip}
    return run_fingerprint(kind=KIND, cnn=cnn, seed=cfg["seed"], split=cfg["split"],
                           experiment=experiment, dataset=dataset.identity(),
                           input_format=cnn_data.INPUT_FORMAT_VERSION)


def finite_rows(table: pd.DataFrame, rows: np.ndarray, targets: Sequence[str]) -> np.ndarray:
    ok = np.all(np.isfinite(table[list(targets)].to_numpy(dtype=float)), axis=1)
    return np.asarray(rows)[ok[rows]]


def run_cnn_experiment(cfg: dict, dataset_path: str | Path, experiment: dict,
                       store: ResultsStore | None = None, force: bool = False,
                       progress: bool = True) -> Path:
    """Train one named experiment (resuming an interrupted run) and store its test results.

    Skipped, returning the stored run's directory, when its metrics exist and force is False.
    """
    store = store or ResultsStore()
    if not ddp.is_main():  # torchrun: rank 0 holds the entry's lock for the whole group
        return _run_cnn_experiment(cfg, dataset_path, experiment, store, force, progress)
    with store.lock(KIND, experiment["name"], store_label(cfg)):  # one live run per entry
        return _run_cnn_experiment(cfg, dataset_path, experiment, store, force, progress)


def _run_cnn_experiment(cfg: dict, dataset_path: str | Path, experiment: dict,
                        store: ResultsStore, force: bool, progress: bool, kind: str = KIND
                        ) -> Path:
    """One run, stored as `kind`/<experiment name> (the caller holds the entry's lock).

    Keys an experiment may carry beyond the YAML's (set by cnn_prob): `seed_index` (a repeat;
    its seeds come from `base` and the index), `base` (the experiment it repeats), `split_by`
    (galaxy | projection, overriding split.by), `likelihood` (mse | gaussian) and `flow` (keep
    the head's input features for a conditional normalising flow).
    """
    profile, name = store_label(cfg), experiment["name"]
    run_dir = store.run_dir(kind, name, profile)
    ckpt_path = run_dir / "extra" / CHECKPOINT
    dataset_path = Path(dataset_path)
    dataset = open_dataset(dataset_path)
    fingerprint = _run_hash(cfg, experiment, dataset)
    if store.exists(kind, name, profile, fingerprint) and not force:
        return run_dir
    if force and ddp.is_main():
        remove_checkpoint(ckpt_path)
    ddp.barrier()
    t_start = time.perf_counter()
    cnn_cfg = cfg["cnn"]
    if int(cnn_cfg["epochs"]) < 1:  # load_config refuses it; a hand-made cfg must not either
        raise CNNExperimentError(f"cnn.epochs={cnn_cfg['epochs']}: an untrained model is not "
                                 "a run; set cnn.epochs >= 1")
    validate_experiment(experiment, dataset)
    targets = list(experiment["targets"])
    table = dataset.table.copy()
    table["row"] = np.arange(len(table))

    split_by = str(experiment.get("split_by", cfg["split"]["by"]))
    seed_base, seed_index = str(experiment.get("base", name)), int(experiment.get("seed_index", 0))
    likelihood = str(experiment.get("likelihood", "mse"))
    if likelihood not in LIKELIHOODS:
        raise CNNExperimentError(f"experiment '{name}': likelihood '{likelihood}' (choose from "
                                 f"{', '.join(LIKELIHOODS)})")
    splits = cnn_split(table, cfg, by=split_by)
    kept = {k: finite_rows(table, v, targets) for k, v in splits.items()}
    dropped = {k: int(len(splits[k]) - len(kept[k])) for k in splits}
    for k in ("train", "val", "test"):
        if len(kept[k]) < 2:
            raise CNNExperimentError(f"{dataset_path}: only {len(kept[k])} {k} rows with finite "
                                     f"{targets} (experiment '{name}')")

    specs = resolve_inputs(dataset, experiment, int(cnn_cfg["image_size"]))
    plan = device_plan(cnn_cfg)
    mode = str(cnn_cfg.get("pixel_scaling", "linear"))
    block = int(cnn_cfg.get("load_block", 512))
    used = np.sort(np.concatenate([kept["train"], kept["val"], kept["test"]]))
    scalers, host, read_info = prepare_inputs(
        dataset, specs, kept["train"], used, mode, float(cnn_cfg.get("log_floor_rel", 1e-6)),
        block, plan.storage_dtype, float(cnn_cfg.get("read_once_gb", 8.0)) * 2**30, progress)
    position = np.full(len(table), -1, dtype=np.int64)
    position[used] = np.arange(len(used))
    tscaler = TargetScaler.fit(table.loc[kept["train"], targets].to_numpy(float), targets)
    y = torch.from_numpy(tscaler.forward(table.loc[used, targets].to_numpy(float))).float()
    inputs, resident = place_inputs(host, plan, float(cnn_cfg.get("resident_fraction", 0.7)))
    del host  # once on the GPU, the host copy is garbage
    data_device = next(iter(inputs.values())).device
    data = TrainData(inputs=inputs, targets=y.to(data_device),
                     train=torch.from_numpy(position[kept["train"]]).to(data_device),
                     val=torch.from_numpy(position[kept["val"]]).to(data_device))
    t_loaded = time.perf_counter()

    seeds = {p: experiment_seed(cfg, seed_base, p, seed_index) for p in ("init", "shuffle")}
    torch.manual_seed(seeds["init"])
    model = build_model({s.name: s.size for s in specs}, targets, cnn_cfg, likelihood=likelihood)
    eval_batch = int(cnn_cfg.get("eval_batch_size", 4 * cnn_cfg["batch_size"]))
    losses: dict = {}
    if likelihood == "gaussian":  # NLL on standardised targets; the validation loss is the NLL
        from analysis_lib.models import cnn_prob

        losses = cnn_prob.gaussian_losses(data, plan, eval_batch,
                                          float(cnn_cfg.get("nll_beta", 0.0)))
    result = train_model(model, data, cnn_cfg, plan, seeds["shuffle"],
                         checkpoint_path=ckpt_path, run_hash=fingerprint,
                         progress=progress, desc=name, **losses)
    if not result.finished:
        raise CNNExperimentError(f"experiment '{name}' stopped before its last epoch; rerun to "
                                 "resume from its checkpoint")

    model.load_state_dict(result.best_state)
    t_eval = time.perf_counter()
    test_idx = torch.from_numpy(position[kept["test"]]).to(data_device)
    out = predict_standardised(model, data, test_idx, plan, eval_batch)
    extra_files: dict[str, Callable[[Path], None]] = {}
    if likelihood == "gaussian":
        pred_log, pred_sigma = cnn_prob.destandardise(out, tscaler)
        predictions, metrics = evaluate(pred_log, table.loc[kept["test"]], experiment,
                                        pred_sigma)
        val_out = predict_standardised(model, data, data.val, plan, eval_batch)
        extra_files["val"] = cnn_prob.validation_writer(val_out, tscaler,
                                                        table.loc[kept["val"]], targets)
    else:
        pred_log = tscaler.inverse(out.numpy().astype(np.float64))
        predictions, metrics = evaluate(pred_log, table.loc[kept["test"]], experiment)
    if experiment.get("flow") and seed_index == 0:  # the flow's context: the head's input
        extra_files["embedding"] = cnn_prob.embedding_writer(model, data, plan, eval_batch,
                                                             position, kept)
    metrics.update(best_epoch=result.best_epoch, best_val_loss=result.best_val_loss,
                   likelihood=likelihood, split_by=split_by, seed_index=seed_index,
                   seed_base=seed_base, seeds=seeds)
    t_end = time.perf_counter()

    epoch_s = result.history["epoch_s"]
    if "warmup" in result.history and (~result.history["warmup"].astype(bool)).any():
        epoch_s = epoch_s[~result.history["warmup"].astype(bool)]  # compilation excluded
    resolution = next((s.size for s in specs if s.kind != "map"), None)
    meta = {
        "device": plan.device.type, "device_name": plan.name,
        "amp_dtype": str(plan.amp_dtype).replace("torch.", "") if plan.amp_dtype else None,
        "channels_last": plan.channels_last, "compiled": plan.compile,
        "data_resident_on_device": resident,
        "dataset": str(dataset_path), "data_source": dataset.attrs.get("source"),
        "dataset_profile": dataset.attrs.get("profile"),
        "resolution_requested": experiment.get("resolution"), "resolution_used": resolution,
        "inputs": {s.name: {"size": s.size, "sources": list(s.sources),
                            "stem": stem_for(s.size, cnn_cfg.get("stem", "imagenet"))}
                   for s in specs},
        "pixel_scaling": {k: v.as_dict() for k, v in scalers.items()},
        "target_scaling": tscaler.as_dict(),
        "split_by": split_by, "seed_index": seed_index, "seeds": seeds,
        "n_rows": {k: int(len(v)) for k, v in kept.items()},
        "n_dropped_nonfinite_target": dropped,
        "n_parameters": count_parameters(model),
        "best_epoch": result.best_epoch, "epochs": int(cnn_cfg["epochs"]),
        "resumed_from_epoch": result.resumed_from,
        "resolution_rebinned_from": next((int(s.sources[0].rsplit("_", 1)[1]) for s in specs
                                          if s.kind != "map" and s.rebin > 1), None),
        "training": result.extra, "input_reading": read_info,
        "timings": {"wall_s": t_end - t_start, "load_s": t_loaded - t_start,
                    "train_s_this_call": result.train_seconds, "eval_s": t_end - t_eval,
                    "train_s_all_epochs": float(epoch_s.sum()),
                    "epoch_s_mean": float(epoch_s.mean()) if len(epoch_s) else None,
                    "train_samples_per_s": (len(kept["train"]) / float(epoch_s.mean())
                                            if len(epoch_s) else None)},
    }
    run_config = {**copy.deepcopy(cfg), "experiment": experiment}

    def write_model(entry: Path) -> None:  # into the new entry, before it replaces the old
        for writer in extra_files.values():
            writer(entry / "extra")
        if cnn_cfg.get("keep_model"):
            save_checkpoint(entry / "extra" / BEST_MODEL, {"model": result.best_state,
                                                           "input_sizes": meta["inputs"],
                                                           "targets": targets})

    if not ddp.is_main():  # torchrun: rank 0 stores
        return run_dir
    path = store.save(kind, name, profile, config=run_config, metrics=metrics,
                      predictions=predictions, history=result.history, meta=meta,
                      fingerprint=fingerprint, extra=write_model)
    remove_checkpoint(ckpt_path)
    return path


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
            tqdm.write(f"[cnn {i}/{len(experiments)}] {name}")
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
