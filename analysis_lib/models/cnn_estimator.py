"""The multi-branch ResNet of the paper's section 3.1 as an estimator (fit / predict / evaluate).

Why a class: the experiment runner (`analysis_lib.experiments.runner`) treats every model alike,
so the CNN's one run (inputs at the profile's resolution, pixel scaling fitted on the training
rows, the paper's training, the epoch of lowest validation loss, test predictions and metrics)
is split here into the steps the runner calls. The training itself and every choice it makes
are in `cnn_train` (see its module docstring); this module only arranges them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analysis_lib.experiments.runner import check_fitted
from analysis_lib.models import cnn_train as ct
from analysis_lib.models import ddp
from analysis_lib.models.cnn import LIKELIHOODS, build_model, count_parameters, stem_for
from analysis_lib.models.cnn_data import (
    CNNExperimentError,
    TargetScaler,
    prepare_inputs,
    resolve_inputs,
)


class CNNEstimator:
    """One CNN experiment: its inputs, targets and likelihood, with the profile's cnn settings.

    Parameters
    ----------
    experiment : dict
        The experiment (targets, inputs, resolution, derived quantities; optionally
        seed_index, base, split_by, likelihood, flow as set by cnn_prob).
    cfg : dict
        The profile: cfg['cnn'] holds the hyper-parameters (epochs, lr, batch_size,
        image_size, pixel_scaling, augment, ...) and cfg['seed'] the seeds' root.
    progress : bool
        Show progress bars.
    where : str
        The dataset file, named in errors and in meta.json.

    Notes
    -----
    Fitted attributes: ``model_`` (best-epoch weights loaded), ``result_`` (TrainResult),
    ``history_``, ``target_scaler_``, ``scalers_`` (pixel scaling), ``specs_`` (inputs used),
    ``seeds_``, ``meta_``. Resumable: `resume_from` names the rolling checkpoint.
    """

    def __init__(self, experiment: dict, cfg: dict, progress: bool = True,
                 where: str = "") -> None:
        self.experiment = experiment
        self.cfg = cfg
        self.progress = progress
        self.where = where

    # ------------------------------------------------------------------ runner hooks

    def resume_from(self, work_dir: Path, key: str, fresh: bool = False) -> None:
        """Keep the rolling checkpoint in work_dir, tagged with the run's fingerprint `key`;
        `fresh` deletes an existing one first (force). All processes wait for rank 0."""
        self.checkpoint_path_ = Path(work_dir) / ct.CHECKPOINT
        self.run_hash_ = key
        if fresh and ddp.is_main():
            ct.remove_checkpoint(self.checkpoint_path_)
        ddp.barrier()

    def discard_checkpoint(self) -> None:
        """Delete the checkpoint once the run is stored."""
        if getattr(self, "checkpoint_path_", None) is not None:
            ct.remove_checkpoint(self.checkpoint_path_)

    def select_rows(self, dataset, split: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the experiment against the dataset, then drop rows of non-finite targets."""
        self._t_start = time.perf_counter()
        exp, name = self.experiment, self.experiment["name"]
        if int(self.cfg["cnn"]["epochs"]) < 1:  # load_config refuses it; a hand-made cfg too
            raise CNNExperimentError(f"cnn.epochs={self.cfg['cnn']['epochs']}: an untrained "
                                     "model is not a run; set cnn.epochs >= 1")
        ct.validate_experiment(exp, dataset)
        if self.likelihood not in LIKELIHOODS:
            raise CNNExperimentError(f"experiment '{name}': likelihood '{self.likelihood}' "
                                     f"(choose from {', '.join(LIKELIHOODS)})")
        targets = list(exp["targets"])
        kept = {k: ct.finite_rows(dataset.table, v, targets) for k, v in split.items()}
        self.dropped_ = {k: int(len(split[k]) - len(kept[k])) for k in split}
        for k in ("train", "val", "test"):
            if len(kept[k]) < 2:
                raise CNNExperimentError(f"{self.where}: only {len(kept[k])} {k} rows with "
                                         f"finite {targets} (experiment '{name}')")
        self._selected = kept
        return kept

    @property
    def likelihood(self) -> str:
        return str(self.experiment.get("likelihood", "mse"))

    # ------------------------------------------------------------------ fit

    def fit(self, dataset, rows: dict[str, np.ndarray]) -> CNNEstimator:
        """Load and scale the rows once, train on rows['train'] keeping the epoch of lowest
        loss on rows['val'], and load those weights. rows['test'] is loaded too (not seen).
        A split that did not come from `select_rows` goes through it first."""
        if rows is not getattr(self, "_selected", None):  # a raw split: apply the row rules
            rows = self.select_rows(dataset, rows)
        self.rows_ = rows
        self._load(dataset, rows)
        self._t_loaded = time.perf_counter()
        self._train()
        return self

    def _load(self, dataset, kept: dict[str, np.ndarray]) -> None:
        cnn_cfg, targets = self.cfg["cnn"], list(self.experiment["targets"])
        table = dataset.table
        self.specs_ = resolve_inputs(dataset, self.experiment, int(cnn_cfg["image_size"]))
        self.plan_ = ct.device_plan(cnn_cfg)
        used = np.sort(np.concatenate([kept["train"], kept["val"], kept["test"]]))
        self.scalers_, host, self.read_info_ = prepare_inputs(
            dataset, self.specs_, kept["train"], used,
            str(cnn_cfg.get("pixel_scaling", "linear")),
            float(cnn_cfg.get("log_floor_rel", 1e-6)), int(cnn_cfg.get("load_block", 512)),
            self.plan_.storage_dtype, float(cnn_cfg.get("read_once_gb", 8.0)) * 2**30,
            self.progress)
        self.position_ = np.full(len(table), -1, dtype=np.int64)
        self.position_[used] = np.arange(len(used))
        self.target_scaler_ = TargetScaler.fit(table.loc[kept["train"], targets].to_numpy(float),
                                               targets)
        y = torch.from_numpy(self.target_scaler_.forward(
            table.loc[used, targets].to_numpy(float))).float()
        inputs, self.resident_ = ct.place_inputs(host, self.plan_,
                                                 float(cnn_cfg.get("resident_fraction", 0.7)))
        del host  # once on the GPU, the host copy is garbage
        self._device = next(iter(inputs.values())).device
        self.data_ = ct.TrainData(inputs=inputs, targets=y.to(self._device),
                                  train=self._index(kept["train"]), val=self._index(kept["val"]))

    def _index(self, rows: np.ndarray) -> torch.Tensor:
        pos = self.position_[np.asarray(rows)]
        if (pos < 0).any():
            raise ValueError(f"CNNEstimator: rows {np.asarray(rows)[pos < 0][:5].tolist()} were "
                             "not loaded at fit (pass them in fit's rows['test'])")
        return torch.from_numpy(pos).to(self._device)

    def _train(self) -> None:
        exp, cnn_cfg = self.experiment, self.cfg["cnn"]
        name = exp["name"]
        seed_base, seed_index = str(exp.get("base", name)), int(exp.get("seed_index", 0))
        self.seeds_ = {p: ct.experiment_seed(self.cfg, seed_base, p, seed_index)
                       for p in ("init", "shuffle")}
        torch.manual_seed(self.seeds_["init"])
        model = build_model({s.name: s.size for s in self.specs_}, list(exp["targets"]),
                            cnn_cfg, likelihood=self.likelihood)
        losses: dict = {}
        if self.likelihood == "gaussian":  # NLL on standardised targets, also for validation
            from analysis_lib.models import cnn_prob

            losses = cnn_prob.gaussian_losses(self.data_, self.plan_, self._eval_batch,
                                              float(cnn_cfg.get("nll_beta", 0.0)))
        self.result_ = ct.train_model(model, self.data_, cnn_cfg, self.plan_,
                                      self.seeds_["shuffle"],
                                      checkpoint_path=getattr(self, "checkpoint_path_", None),
                                      run_hash=getattr(self, "run_hash_", ""),
                                      progress=self.progress, desc=name, **losses)
        if not self.result_.finished:
            raise CNNExperimentError(f"experiment '{name}' stopped before its last epoch; "
                                     "rerun to resume from its checkpoint")
        model.load_state_dict(self.result_.best_state)
        self.model_, self.history_ = model, self.result_.history

    @property
    def _eval_batch(self) -> int:
        cnn_cfg = self.cfg["cnn"]
        return int(cnn_cfg.get("eval_batch_size", 4 * cnn_cfg["batch_size"]))

    # ------------------------------------------------------------------ predict

    def _outputs(self, rows: np.ndarray) -> torch.Tensor:
        check_fitted(self, "model_")
        return ct.predict_standardised(self.model_, self.data_, self._index(rows), self.plan_,
                                       self._eval_batch)

    def predict(self, dataset, rows: np.ndarray) -> np.ndarray:
        """log10 predictions (n_rows, n_targets) of rows loaded at fit (the Gaussian mean for
        a Gaussian head)."""
        return self._destandardise(self._outputs(rows))[0]

    def _destandardise(self, out: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        if self.likelihood == "gaussian":
            from analysis_lib.models import cnn_prob

            return cnn_prob.destandardise(out, self.target_scaler_)
        return self.target_scaler_.inverse(out.numpy().astype(np.float64)), None

    # ------------------------------------------------------------------ evaluate

    def evaluate(self, dataset, rows: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict]:
        """Test predictions and metrics (`cnn_train.score`: targets, derived quantities and,
        for a Gaussian head, calibration); the paper's numbers are the runner's to attach."""
        t_eval = time.perf_counter()
        table = dataset.table.copy()
        table["row"] = np.arange(len(table))
        pred_log, pred_sigma = self._destandardise(self._outputs(rows["test"]))
        predictions, metrics = ct.score(pred_log, table.loc[rows["test"]], self.experiment,
                                        pred_sigma)
        self._writers = self._extra_writers(table, rows)
        exp = self.experiment
        metrics.update(best_epoch=self.result_.best_epoch,
                       best_val_loss=self.result_.best_val_loss, likelihood=self.likelihood,
                       split_by=self.split_by, seed_index=int(exp.get("seed_index", 0)),
                       seed_base=str(exp.get("base", exp["name"])), seeds=self.seeds_)
        self.meta_ = self._meta(rows, t_eval, time.perf_counter())
        return predictions, metrics

    @property
    def split_by(self) -> str:
        return str(self.experiment.get("split_by", self.cfg["split"]["by"]))

    def _extra_writers(self, table: pd.DataFrame, rows: dict) -> dict[str, Callable]:
        writers: dict[str, Callable[[Path], None]] = {}
        if self.likelihood == "gaussian":
            from analysis_lib.models import cnn_prob

            val_out = ct.predict_standardised(self.model_, self.data_, self.data_.val,
                                              self.plan_, self._eval_batch)
            writers["val"] = cnn_prob.validation_writer(val_out, self.target_scaler_,
                                                        table.loc[rows["val"]],
                                                        list(self.experiment["targets"]))
        if self.experiment.get("flow") and int(self.experiment.get("seed_index", 0)) == 0:
            from analysis_lib.models import cnn_prob  # the flow's context: the head's input

            writers["embedding"] = cnn_prob.embedding_writer(self.model_, self.data_,
                                                             self.plan_, self._eval_batch,
                                                             self.position_, rows)
        return writers

    def _meta(self, kept: dict, t_eval: float, t_end: float) -> dict:
        cnn_cfg, plan, result, specs = self.cfg["cnn"], self.plan_, self.result_, self.specs_
        epoch_s = result.history["epoch_s"]
        if "warmup" in result.history and (~result.history["warmup"].astype(bool)).any():
            epoch_s = epoch_s[~result.history["warmup"].astype(bool)]  # compilation excluded
        return {
            "device": plan.device.type, "device_name": plan.name,
            "amp_dtype": str(plan.amp_dtype).replace("torch.", "") if plan.amp_dtype else None,
            "channels_last": plan.channels_last, "compiled": plan.compile,
            "data_resident_on_device": self.resident_,
            "resolution_used": next((s.size for s in specs if s.kind != "map"), None),
            "inputs": {s.name: {"size": s.size, "sources": list(s.sources),
                                "stem": stem_for(s.size, cnn_cfg.get("stem", "imagenet"))}
                       for s in specs},
            "pixel_scaling": {k: v.as_dict() for k, v in self.scalers_.items()},
            "target_scaling": self.target_scaler_.as_dict(),
            "split_by": self.split_by, "seed_index": int(self.experiment.get("seed_index", 0)),
            "seeds": self.seeds_, "n_rows": {k: int(len(v)) for k, v in kept.items()},
            "n_dropped_nonfinite_target": self.dropped_,
            "n_parameters": count_parameters(self.model_),
            "best_epoch": result.best_epoch, "epochs": int(cnn_cfg["epochs"]),
            "resumed_from_epoch": result.resumed_from,
            "resolution_rebinned_from": next((int(s.sources[0].rsplit("_", 1)[1]) for s in specs
                                              if s.kind != "map" and s.rebin > 1), None),
            "training": result.extra, "input_reading": self.read_info_,
            "timings": {"wall_s": t_end - self._t_start,
                        "load_s": self._t_loaded - self._t_start,
                        "train_s_this_call": result.train_seconds, "eval_s": t_end - t_eval,
                        "train_s_all_epochs": float(epoch_s.sum()),
                        "epoch_s_mean": float(epoch_s.mean()) if len(epoch_s) else None,
                        "train_samples_per_s": (len(kept["train"]) / float(epoch_s.mean())
                                                if len(epoch_s) else None)},
        }

    def write_extra(self, entry: Path) -> None:
        """Model files into the new entry before it replaces the old one: the Gaussian head's
        validation outputs, the flow's embedding, and with cnn.keep_model the best weights."""
        for writer in getattr(self, "_writers", {}).values():
            writer(entry / "extra")
        if self.cfg["cnn"].get("keep_model"):
            ct.save_checkpoint(entry / "extra" / ct.BEST_MODEL,
                               {"model": self.result_.best_state,
                                "input_sizes": self.meta_["inputs"],
                                "targets": list(self.experiment["targets"])})


def run_config(cfg: dict, experiment: dict) -> dict:
    """config.json of a CNN run: the profile with the experiment."""
    return {**copy.deepcopy(cfg), "experiment": experiment}
