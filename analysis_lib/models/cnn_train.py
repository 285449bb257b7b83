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
- A checkpoint (model, optimiser, scheduler, shuffling generator, RNG states, history and the
  best state so far) is written atomically after every epoch; an interrupted run resumes from it
  to the same result. It is deleted when the run is stored (cnn.keep_model keeps the best
  weights as extra/best_model.pt).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis_lib.config import store_label
from analysis_lib.dataset import GalaxyDataset, open_dataset
from analysis_lib.metrics import target_metrics
from analysis_lib.models import cnn_data
from analysis_lib.models.baselines import run_power_law_baseline  # noqa: F401  (CLI imports it)
from analysis_lib.models.cnn import build_model, count_parameters, stem_for
from analysis_lib.models.cnn_data import (
    CNNExperimentError,
    TargetScaler,
    fit_scalers,
    load_scaled_inputs,
    resolve_inputs,
)
from analysis_lib.models.experiments import select_experiments
from analysis_lib.report import paper_row
from analysis_lib.results import ResultsStore, run_fingerprint
from analysis_lib.rng import make_rng
from analysis_lib.splits import cnn_split

KIND = "cnn"
PREDICTION_META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]
CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "best_model.pt"


# =========================================================================== device


@dataclass
class DevicePlan:
    """Where and how a run computes: device, autocast dtype, memory format, data residency."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    storage_dtype: torch.dtype
    compile: bool

    @property
    def name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


def device_plan(cnn_cfg: dict) -> DevicePlan:
    """GPU with bf16 autocast and channels_last when CUDA is present; float32 on the CPU."""
    want = str(cnn_cfg.get("device", "auto"))
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise CNNExperimentError(f"cnn.device={want} but no CUDA device is available")
    device = torch.device(want)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
        amp = torch.bfloat16 if cnn_cfg.get("amp", "bf16") == "bf16" else None
        return DevicePlan(device, amp, True, amp or torch.float32, bool(cnn_cfg.get("compile")))
    torch.set_num_threads(int(cnn_cfg.get("cpu_threads", 0)) or os.cpu_count() or 1)
    return DevicePlan(device, None, False, torch.float32, bool(cnn_cfg.get("compile")))


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


def batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive batches of `order`; a last batch of one sample joins the previous one."""
    parts = list(torch.split(order, batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        last = parts.pop()
        parts[-1] = torch.cat([parts[-1], last])
    return parts


def _batch_inputs(data: TrainData, idx: torch.Tensor, plan: DevicePlan) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in data.inputs.items():
        x = tensor[idx] if idx.device == tensor.device else tensor[idx.to(tensor.device)]
        x = x.to(plan.device, non_blocking=True)
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


def train_model(model: nn.Module, data: TrainData, cnn_cfg: dict, plan: DevicePlan, seed: int,
                checkpoint_path: Path | None = None, run_hash: str = "",
                stop_after: int | None = None,
                val_loss_fn: Callable[[nn.Module, int], float] | None = None,
                on_epoch_end: Callable[[int, dict], None] | None = None,
                progress: bool = True, desc: str = "cnn",
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                ) -> TrainResult:
    """The paper's training: Adam + cosine schedule, keep the lowest-validation-loss epoch.

    `seed` seeds the shuffling generator (the model is initialised by the caller). With a
    checkpoint path, a checkpoint of the same `run_hash` is resumed and a new one is written
    after every epoch. `stop_after` ends this call after that many new epochs (the checkpoint
    lets a later call finish); `val_loss_fn(model, epoch)` replaces the validation loss (tests);
    `on_epoch_end(epoch, row)` is called after each epoch's checkpoint is written.
    `loss_fn(outputs, targets)` replaces the paper's MSE (e.g. a Gaussian negative
    log-likelihood when the network also predicts a variance per target).
    """
    epochs = int(cnn_cfg["epochs"])
    batch_size = int(cnn_cfg["batch_size"])
    eval_batch = int(cnn_cfg.get("eval_batch_size", 4 * batch_size))
    every = max(1, int(cnn_cfg.get("checkpoint_every", 1)))
    model.to(plan.device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cnn_cfg["lr"]))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    generator = torch.Generator().manual_seed(int(seed))
    history: list[dict] = []
    best_state = _state_to_cpu(model.state_dict())
    best_val, best_epoch, start = math.inf, 0, 0

    ckpt = load_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and ckpt.get("run_hash") != run_hash:
        tqdm.write(f"{checkpoint_path}: checkpoint of a different configuration; starting afresh")
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        if plan.device.type == "cuda" and "cuda_rng" in ckpt:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], plan.device)
        history = list(ckpt["history"])
        best_state, best_val, best_epoch = ckpt["best_state"], ckpt["best_val"], ckpt["best_epoch"]
        start = int(ckpt["epoch"])

    step_model = torch.compile(model) if plan.compile else model
    loss_fn = loss_fn if loss_fn is not None else nn.MSELoss()
    n_train = len(data.train)
    t0 = time.perf_counter()
    ran = 0
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, initial=start, total=epochs)
    for epoch0 in bar:
        epoch = epoch0 + 1
        if stop_after is not None and ran >= stop_after:
            break
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(n_train, generator=generator).to(data.train.device)
        total = torch.zeros((), device=plan.device)
        for idx in batches(data.train[order], batch_size):
            xb = _batch_inputs(data, idx, plan)
            yb = data.targets[idx.to(data.targets.device)].to(plan.device, non_blocking=True)
            with _autocast(plan):
                out = step_model(xb)
            loss = loss_fn(out.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        train_loss = float(total) / n_train
        if val_loss_fn is not None:
            val_loss = float(val_loss_fn(model, epoch))
        else:
            val_loss = validation_loss(model, data, plan, eval_batch)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if val_loss < best_val:
            best_val, best_epoch = val_loss, epoch
            best_state = _state_to_cpu(model.state_dict())
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lr,
               "epoch_s": time.perf_counter() - t_epoch}
        history.append(row)
        ran += 1
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=best_epoch)
        if checkpoint_path is not None and (epoch % every == 0 or epoch == epochs):
            payload = {"run_hash": run_hash, "epoch": epoch,
                       "model": _state_to_cpu(model.state_dict()),
                       "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                       "history": history, "best_state": best_state, "best_val": best_val,
                       "best_epoch": best_epoch}
            if plan.device.type == "cuda":
                payload["cuda_rng"] = torch.cuda.get_rng_state(plan.device)
            save_checkpoint(checkpoint_path, payload)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    bar.close()
    done = len(history)
    return TrainResult(best_state=best_state, best_epoch=best_epoch, best_val_loss=best_val,
                       history=pd.DataFrame(history, columns=["epoch", "train_loss", "val_loss",
                                                              "lr", "epoch_s"]),
                       epochs_run=ran, resumed_from=start,
                       train_seconds=time.perf_counter() - t0, finished=done >= epochs)


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


def evaluate(pred_log: np.ndarray, test_table: pd.DataFrame, experiment: dict
             ) -> tuple[pd.DataFrame, dict]:
    """Predictions (meta, then true_X and pred_X per target and derived X) and test metrics.

    metrics = {"targets": {X: target_metrics(...)}, "derived": {X: target_metrics(...)},
    ...notes}, each block with 'all', 'early', 'late' and, where the paper has one, 'paper'.
    """
    table = test_table.reset_index(drop=True)
    pred = table[PREDICTION_META].copy()
    types = table["galaxy_type"].to_numpy()
    metrics: dict = {"targets": {}, "derived": {}}
    for j, t in enumerate(experiment["targets"]):
        pred[f"true_{t}"] = table[t].to_numpy()
        pred[f"pred_{t}"] = pred_log[:, j]
        metrics["targets"][t] = target_metrics(pred_log[:, j], table[t].to_numpy(), types)
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


def experiment_seed(cfg: dict, name: str, purpose: str) -> int:
    """An integer seed for one experiment and purpose, derived from the profile seed."""
    return int(make_rng(cfg["seed"], "cnn", purpose, name).integers(2**62))


# cnn settings that change how fast a run goes or what is kept, never its result
_RUNTIME_KEYS = ("experiments", "device", "compile", "keep_model", "checkpoint_every",
                 "cpu_threads", "eval_batch_size", "load_block", "resident_fraction")


def _run_hash(cfg: dict, experiment: dict, dataset: GalaxyDataset) -> str:
    """What a stored run or a checkpoint must share with the run that would reuse it."""
    cnn = {k: v for k, v in cfg["cnn"].items() if k not in _RUNTIME_KEYS}
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
    with store.lock(KIND, experiment["name"], store_label(cfg)):  # one live run per entry
        return _run_cnn_experiment(cfg, dataset_path, experiment, store, force, progress)


def _run_cnn_experiment(cfg: dict, dataset_path: str | Path, experiment: dict,
                        store: ResultsStore, force: bool, progress: bool) -> Path:
    profile, name = store_label(cfg), experiment["name"]
    run_dir = store.run_dir(KIND, name, profile)
    ckpt_path = run_dir / "extra" / CHECKPOINT
    dataset_path = Path(dataset_path)
    dataset = open_dataset(dataset_path)
    fingerprint = _run_hash(cfg, experiment, dataset)
    if store.exists(KIND, name, profile, fingerprint) and not force:
        return run_dir
    if force:
        ckpt_path.unlink(missing_ok=True)
    t_start = time.perf_counter()
    cnn_cfg = cfg["cnn"]
    if int(cnn_cfg["epochs"]) < 1:  # load_config refuses it; a hand-made cfg must not either
        raise CNNExperimentError(f"cnn.epochs={cnn_cfg['epochs']}: an untrained model is not "
                                 "a run; set cnn.epochs >= 1")
    validate_experiment(experiment, dataset)
    targets = list(experiment["targets"])
    table = dataset.table.copy()
    table["row"] = np.arange(len(table))

    splits = cnn_split(table, cfg)
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
    scalers = fit_scalers(dataset, specs, kept["train"], mode,
                          float(cnn_cfg.get("log_floor_rel", 1e-6)), block)
    used = np.sort(np.concatenate([kept["train"], kept["val"], kept["test"]]))
    host = load_scaled_inputs(dataset, specs, scalers, used, plan.storage_dtype, block, progress)
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

    torch.manual_seed(experiment_seed(cfg, name, "init"))
    model = build_model({s.name: s.size for s in specs}, targets, cnn_cfg)
    result = train_model(model, data, cnn_cfg, plan, experiment_seed(cfg, name, "shuffle"),
                         checkpoint_path=ckpt_path, run_hash=fingerprint,
                         progress=progress, desc=name)
    if not result.finished:
        raise CNNExperimentError(f"experiment '{name}' stopped before its last epoch; rerun to "
                                 "resume from its checkpoint")

    model.load_state_dict(result.best_state)
    t_eval = time.perf_counter()
    test_idx = torch.from_numpy(position[kept["test"]]).to(data_device)
    out = predict_standardised(model, data, test_idx, plan,
                               int(cnn_cfg.get("eval_batch_size", 4 * cnn_cfg["batch_size"])))
    pred_log = tscaler.inverse(out.numpy().astype(np.float64))
    predictions, metrics = evaluate(pred_log, table.loc[kept["test"]], experiment)
    metrics.update(best_epoch=result.best_epoch, best_val_loss=result.best_val_loss)
    t_end = time.perf_counter()

    epoch_s = result.history["epoch_s"]
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
        "split_by": cfg["split"]["by"],
        "n_rows": {k: int(len(v)) for k, v in kept.items()},
        "n_dropped_nonfinite_target": dropped,
        "n_parameters": count_parameters(model),
        "best_epoch": result.best_epoch, "epochs": int(cnn_cfg["epochs"]),
        "resumed_from_epoch": result.resumed_from,
        "timings": {"wall_s": t_end - t_start, "load_s": t_loaded - t_start,
                    "train_s_this_call": result.train_seconds, "eval_s": t_end - t_eval,
                    "train_s_all_epochs": float(epoch_s.sum()),
                    "epoch_s_mean": float(epoch_s.mean()) if len(epoch_s) else None,
                    "train_samples_per_s": (len(kept["train"]) / float(epoch_s.mean())
                                            if len(epoch_s) else None)},
    }
    run_config = {**copy.deepcopy(cfg), "experiment": experiment}

    def write_model(entry: Path) -> None:  # into the new entry, before it replaces the old
        if cnn_cfg.get("keep_model"):
            save_checkpoint(entry / "extra" / BEST_MODEL, {"model": result.best_state,
                                                           "input_sizes": meta["inputs"],
                                                           "targets": targets})

    path = store.save(KIND, name, profile, config=run_config, metrics=metrics,
                      predictions=predictions, history=result.history, meta=meta,
                      fingerprint=fingerprint, extra=write_model)
    ckpt_path.unlink(missing_ok=True)
    return path


def run_cnn_experiments(cfg: dict, dataset_path: str | Path, selection: str | list[str],
                        store: ResultsStore | None = None, force: bool = False) -> list[Path]:
    """Run the selected experiments ('all', a tag, a name or a comma list) in file order."""
    store = store or ResultsStore()
    experiments = select_experiments(KIND, selection)
    paths = []
    for i, experiment in enumerate(experiments, 1):
        tqdm.write(f"[cnn {i}/{len(experiments)}] {experiment['name']}")
        paths.append(run_cnn_experiment(cfg, dataset_path, experiment, store, force))
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
