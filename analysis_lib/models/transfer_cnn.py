"""The CNN cells of the transfer matrix: train the multi-branch CNN in one universe, test in others.

The LightGBM matrix (transfer.py) has a model hook; `cnn_fitter` fills it with the headline CNN
experiment (default s43_rmaps_mstar_mtot: r image + velocity + dispersion maps -> log M*,
log M_tot, one network). `cnn_transfer_cells` runs chosen cells (a CNN costs minutes where a
LightGBM costs seconds, so the quick profile trains ONE network, on `observed`, and scores it on
`observed` (diagonal) and `tng_like` (off-diagonal); the paper profile runs every cell and the
mixture) and stores them in the same layout as the LightGBM cells,
data/results/<profile>/transfer/cnn__<A>__on__<B>/, so `transfer.load_matrix(cfg, method="cnn")`
and `transfer.transfer_figure` read them unchanged.

Choices, all stated:

- Splits: the test galaxies are transfer.galaxy_test_mask's (the same ids in every universe, as
  the LightGBM cells). The training galaxies are cut into fit and validation parts BY GALAXY
  (all projections of a galaxy on one side), with the validation share of the profile's CNN
  split (split.cnn_fractions: val / (train + val)), drawn by make_rng(seed, ...). The epoch of
  lowest validation loss is kept, as in cnn_train.
- Scaling: pixel scalers (cnn_data.fit_scalers) and the target scaler (TargetScaler) are fitted
  on the fit rows only, of every training universe together for a mixture; the predictor applies
  THE SAME scalers to universe B's inputs. A brighter or faster universe therefore reads outside
  [0, 1], exactly what a network trained in A would see.
- Cheaper settings for the matrix: transfer.cnn_epochs and transfer.cnn_image_size (null = the
  profile's cnn.epochs and cnn.image_size) become cnn.epochs and cnn.image_size of these
  networks only, as cnn.ensemble_* do for ensemble members. They live in their own `transfer`
  section, so the single-universe CNN runs' fingerprints do not change.
- Inputs of B must exist at the size used in A (re-binning allowed, as cnn_data): otherwise one
  CNNExperimentError naming B's file.
- Memory: one training universe is read as cnn_train reads a dataset (once into memory below
  cnn.read_once_gb, else streamed); a mixture stacks its rows' raw inputs in memory (as many
  rows as one universe's training part). Test rows are streamed from their file in blocks.
- Reuse: a cell is stored with a fingerprint of the experiment, the effective cnn settings,
  seed, split, the datasets' identities and the train/test universes; a stored cell with the
  same fingerprint is not retrained (force=True retrains).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analysis_lib.dataset import GalaxyDataset
from analysis_lib.models import cnn_data
from analysis_lib.models.cnn_data import (
    CNNExperimentError,
    InMemoryInputs,
    InputSpec,
    TargetScaler,
    fit_scalers,
    load_scaled_inputs,
    prepare_inputs,
    resolve_inputs,
)
from analysis_lib.models.transfer import (
    KIND,
    MIXTURE,
    TRANSFER_TARGETS,
    Fitter,
    Predictor,
    _splits,
    load_matrix,
    mixture_rows,
    open_universes,
    score_cell,
)
from analysis_lib.results import ResultsStore, run_fingerprint
from analysis_lib.rng import make_rng

METHOD = "cnn"
DEFAULT_EXPERIMENT = "s43_rmaps_mstar_mtot"


# --------------------------------------------------------------------------- settings


def transfer_cnn_config(cfg: dict) -> dict:
    """The configuration of the transfer networks: the profile's, with transfer.cnn_epochs and
    transfer.cnn_image_size (when set) as cnn.epochs and cnn.image_size."""
    out = copy.deepcopy(cfg)
    t = out.get("transfer") or {}
    if t.get("cnn_epochs"):
        out["cnn"]["epochs"] = int(t["cnn_epochs"])
    if t.get("cnn_image_size"):
        out["cnn"]["image_size"] = int(t["cnn_image_size"])
    if int(out["cnn"]["epochs"]) < 1:
        raise CNNExperimentError(f"cnn.epochs={out['cnn']['epochs']}: an untrained model is not "
                                 "a transfer cell; set transfer.cnn_epochs >= 1")
    return out


def _experiment(name: str, targets: Sequence[str]) -> dict:
    from analysis_lib.models.experiments import load_experiments

    experiments = load_experiments("cnn")
    if name not in experiments:
        raise CNNExperimentError(f"transfer: unknown CNN experiment '{name}' (see "
                                 "models/experiments_cnn.yaml)")
    return {**experiments[name], "targets": list(targets)}


def _cell_cnn_settings(tcfg: dict) -> dict:
    """The cnn settings that change a transfer network's result (runtime keys left out)."""
    from analysis_lib.models.cnn_train import _PROBABILISTIC_KEYS, _RUNTIME_KEYS

    skip = set(_RUNTIME_KEYS) | set(_PROBABILISTIC_KEYS) | {"nll_beta"}
    return {k: v for k, v in tcfg["cnn"].items() if k not in skip}


# --------------------------------------------------------------------------- inputs


class StackedInputs(InMemoryInputs):
    """Raw inputs of rows of several datasets, concatenated; read like one dataset.

    Row i of the stack is the i-th (dataset, row) pair given, so fit_scalers and
    load_scaled_inputs fit and scale a mixture of universes in one pass over memory.
    """

    def __init__(self, parts: Sequence[tuple[GalaxyDataset, np.ndarray]],
                 names: Sequence[str]) -> None:
        reads = [InMemoryInputs(ds.path, names, np.asarray(rows)) for ds, rows in parts]
        self.path = Path(" + ".join(str(ds.path) for ds, _ in parts))
        self.arrays = {n: np.concatenate([r.arrays[n] for r in reads]) for n in reads[0].arrays}
        self.rows = np.arange(sum(len(r) for _, r in parts), dtype=np.int64)
        self.position = {int(r): int(r) for r in self.rows}


def _sources(specs: Sequence[InputSpec]) -> list[str]:
    return sorted({s for spec in specs for s in spec.sources})


def _same_branches(a: Sequence[InputSpec], b: Sequence[InputSpec]) -> bool:
    return [(s.name, s.kind, s.size) for s in a] == [(s.name, s.kind, s.size) for s in b]


def _resolve(ds: GalaxyDataset, experiment: dict, cap: int, reference: Sequence[InputSpec] | None
             ) -> list[InputSpec]:
    specs = resolve_inputs(ds, experiment, cap)
    if reference is not None and not _same_branches(specs, reference):
        want = ", ".join(f"{s.name} {s.size} px" for s in reference)
        got = ", ".join(f"{s.name} {s.size} px" for s in specs)
        raise CNNExperimentError(f"{ds.path}: its inputs resolve to {got}, but the network was "
                                 f"trained on {want}; a transfer cell needs the same sizes")
    return specs


def galaxy_val_mask(keys: Sequence[tuple[str, int]], seed: int, fraction: float) -> np.ndarray:
    """True for rows whose (universe, galaxy) is in the validation part: a seeded draw of
    round(fraction x galaxies) galaxies (at least 1, leaving at least 1), split by galaxy."""
    unique = sorted(set(keys))
    if len(unique) < 2:
        raise CNNExperimentError(f"transfer CNN: {len(unique)} training galaxies; need >= 2 to "
                                 "carve a validation set")
    n_val = min(len(unique) - 1, max(1, int(round(fraction * len(unique)))))
    order = make_rng(int(seed), "transfer-cnn", "validation").permutation(len(unique))
    val = {unique[i] for i in order[:n_val]}
    return np.array([k in val for k in keys], dtype=bool)


# --------------------------------------------------------------------------- the hook


def cnn_fitter(cfg: dict, experiment_name: str = DEFAULT_EXPERIMENT, progress: bool = False
               ) -> Fitter:
    """A `Fitter` for transfer.transfer_matrix's hook: the multi-branch CNN of one experiment.

    `fit(train, targets, info)` trains on the rows of every dataset in `train` (universe ->
    (dataset, rows); several = a mixture), with a by-galaxy validation part, pixel and target
    scalers fitted on the fit rows only, and the transfer networks' epochs and image size
    (transfer_cnn_config). It returns `predict(dataset, rows) -> {target: log10 prediction}`,
    which scales any universe's inputs with the training scalers. `info` receives the sizes,
    best epoch, timings and scalers.

    Through transfer.transfer_matrix(cfg, paths, fit=cnn_fitter(cfg), method="cnn") every cell
    runs, but that function's fingerprint holds the gbdt settings, not the cnn ones: prefer
    `cnn_transfer_cells`, whose fingerprint holds the experiment and the cnn settings.
    """
    from analysis_lib.models.cnn import build_model
    from analysis_lib.models.cnn_train import (
        TrainData,
        device_plan,
        experiment_seed,
        finite_rows,
        place_inputs,
        predict_standardised,
        train_model,
    )

    tcfg = transfer_cnn_config(cfg)
    cnn_cfg = tcfg["cnn"]
    cap = int(cnn_cfg["image_size"])
    fractions = [float(f) for f in cfg["split"]["cnn_fractions"]]
    val_fraction = fractions[1] / (fractions[0] + fractions[1])

    def fit(train: dict[str, tuple[GalaxyDataset, np.ndarray]], targets: tuple[str, ...],
            info: dict) -> Predictor:
        t0 = time.perf_counter()
        if not train:
            raise CNNExperimentError("transfer CNN: no training universe given")
        experiment = _experiment(experiment_name, targets)
        label = "+".join(train)
        specs = None
        parts, keys = [], []
        for universe, (ds, rows) in train.items():
            specs = _resolve(ds, experiment, cap, specs)
            kept = np.sort(finite_rows(ds.table, np.asarray(rows), list(targets)))
            parts.append((ds, kept))
            keys += [(universe, int(g)) for g in ds.table["galaxy_id"].to_numpy()[kept]]
        assert specs is not None
        val = galaxy_val_mask(keys, experiment_seed(cfg, f"transfer__{label}", "validation"),
                              val_fraction)
        fit_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
        if len(fit_idx) < 2 or len(val_idx) < 2:
            raise CNNExperimentError(f"transfer CNN ({label}): {len(fit_idx)} fit and "
                                     f"{len(val_idx)} validation rows with finite {targets}; "
                                     "need >= 2 each")
        plan = device_plan(cnn_cfg)
        mode = str(cnn_cfg.get("pixel_scaling", "linear"))
        floor_rel = float(cnn_cfg.get("log_floor_rel", 1e-6))
        block = int(cnn_cfg.get("load_block", 512))
        if len(parts) == 1:  # one universe: read once or stream, as cnn_train does
            ds0, rows0 = parts[0]
            scalers, host, _ = prepare_inputs(
                ds0, specs, rows0[fit_idx], rows0, mode, floor_rel, block, plan.storage_dtype,
                float(cnn_cfg.get("read_once_gb", 8.0)) * 2**30, progress)
        else:  # a mixture: the rows of every universe, stacked in memory
            stack = StackedInputs(parts, _sources(specs))
            scalers = fit_scalers(stack, specs, fit_idx, mode, floor_rel, block)
            host = load_scaled_inputs(stack, specs, scalers, stack.rows, plan.storage_dtype,
                                      block)
            del stack
        y_all = np.concatenate([ds.table[list(targets)].to_numpy(float)[rows]
                                for ds, rows in parts])
        tscaler = TargetScaler.fit(y_all[fit_idx], list(targets))
        resident_fraction = float(cnn_cfg.get("resident_fraction", 0.7))
        inputs, _ = place_inputs(host, plan, resident_fraction)
        dev = next(iter(inputs.values())).device
        data = TrainData(inputs=inputs,
                         targets=torch.from_numpy(tscaler.forward(y_all)).float().to(dev),
                         train=torch.from_numpy(fit_idx).to(dev),
                         val=torch.from_numpy(val_idx).to(dev))
        seeds = {p: experiment_seed(cfg, f"transfer__{experiment_name}__{label}", p)
                 for p in ("init", "shuffle")}
        torch.manual_seed(seeds["init"])
        model = build_model({s.name: s.size for s in specs}, list(targets), cnn_cfg)
        result = train_model(model, data, cnn_cfg, plan, seeds["shuffle"], progress=progress,
                             desc=f"cnn transfer ({label})")
        model.load_state_dict(result.best_state)
        model.eval()
        del data, inputs, host
        eval_batch = int(cnn_cfg.get("eval_batch_size", 4 * int(cnn_cfg["batch_size"])))
        info.update(
            experiment=experiment_name, epochs=int(cnn_cfg["epochs"]),
            image_size_cap=cap, inputs={s.name: s.size for s in specs},
            n_train_rows=int(len(fit_idx)), n_val_rows=int(len(val_idx)),
            n_val_galaxies=len({keys[i] for i in val_idx}),
            best_epoch=int(result.best_epoch), best_val_loss=float(result.best_val_loss),
            seeds=seeds, device=plan.device.type,
            pixel_scaling={k: v.as_dict() for k, v in scalers.items()},
            target_scaling=tscaler.as_dict(), train_s=float(time.perf_counter() - t0))

        def predict(ds: GalaxyDataset, rows: np.ndarray) -> dict[str, np.ndarray]:
            rows = np.asarray(rows, dtype=np.int64)
            if len(rows) == 0:
                return {t: np.empty(0) for t in targets}
            b_specs = _resolve(ds, experiment, cap, specs)  # streamed from B's file in blocks
            scaled = load_scaled_inputs(ds, b_specs, scalers, rows, plan.storage_dtype, block)
            placed, _ = place_inputs(scaled, plan, resident_fraction)
            d = next(iter(placed.values())).device
            idx = torch.arange(len(rows), device=d)
            frame = TrainData(inputs=placed, targets=torch.empty((len(rows), len(targets))),
                              train=idx[:0], val=idx[:0])
            out = predict_standardised(model, frame, idx, plan, eval_batch)
            pred = tscaler.inverse(out.numpy().astype(np.float64))
            return {t: pred[:, j] for j, t in enumerate(targets)}

        return predict

    return fit


# --------------------------------------------------------------------------- chosen cells


def _universe_list(value, default: Sequence[str]) -> list[str]:
    if value is None:
        return list(default)
    return [value] if isinstance(value, str) else list(value)


def cnn_transfer_cells(cfg: dict, dataset_paths: dict[str, str | Path],
                       train_universes: Sequence[str] | None = None,
                       test_universes: Sequence[str] | None = None,
                       mixture: bool | None = None,
                       experiment_name: str = DEFAULT_EXPERIMENT,
                       targets: tuple[str, ...] = TRANSFER_TARGETS,
                       store: ResultsStore | None = None, force: bool = False,
                       progress: bool = True) -> pd.DataFrame:
    """Train the CNN in the chosen universes, score it in the chosen ones, store each cell.

    Parameters
    ----------
    cfg : the profile's configuration; transfer.cnn_* choose the defaults below
    dataset_paths : universe -> dataset file, for every universe trained or tested on (and, for
        the mixture, every universe it mixes: all of dataset_paths, as the LightGBM mixture)
    train_universes : universes to train a network in (default transfer.cnn_train_universes,
        null = all of dataset_paths)
    test_universes : universes to score each network on (default transfer.cnn_test_universes,
        null = all of dataset_paths)
    mixture : also train on the mixture of all of dataset_paths (default transfer.cnn_mixture)
    force : retrain cells already stored with the same fingerprint

    Returns
    -------
    transfer.load_matrix(cfg, "cnn"): every stored CNN cell of the profile, one row per
    (train, test, target, group).
    """
    from tqdm.auto import tqdm

    from analysis_lib.io import tqdm_options

    store = store or ResultsStore()
    tsec = cfg.get("transfer") or {}
    names = list(dataset_paths)
    train_universes = _universe_list(
        train_universes if train_universes is not None else tsec.get("cnn_train_universes"),
        names)
    test_universes = _universe_list(
        test_universes if test_universes is not None else tsec.get("cnn_test_universes"), names)
    if mixture is None:
        mixture = bool(tsec.get("cnn_mixture", True))
    missing = sorted({*train_universes, *test_universes} - set(names))
    if missing:
        raise ValueError(f"transfer CNN: no dataset path for universe(s) {', '.join(missing)} "
                         f"(given: {', '.join(names)})")
    datasets = open_universes(dataset_paths, targets)
    splits = _splits(datasets, cfg)
    train_sets = {u: {u: (datasets[u], splits[u]["train"])} for u in train_universes}
    if mixture and len(datasets) > 1:
        mix = mixture_rows(datasets, splits, int(cfg["seed"]))
        train_sets[MIXTURE] = {u: (datasets[u], mix[u]) for u in datasets}
    tcfg = transfer_cnn_config(cfg)
    experiment = _experiment(experiment_name, targets)
    settings = _cell_cnn_settings(tcfg)
    label = str(cfg["profile"])
    fit = cnn_fitter(cfg, experiment_name, progress=progress)
    for train_name, train in tqdm(train_sets.items(), desc="transfer (cnn)", unit="model",
                                  **tqdm_options(True)):
        prints = {u: run_fingerprint(method=METHOD, experiment=experiment, cnn=settings,
                                     seed=cfg["seed"], split=cfg["split"], train=train_name,
                                     test=u, data={k: datasets[k].identity() for k in train},
                                     test_data=datasets[u].identity(),
                                     input_format=cnn_data.INPUT_FORMAT_VERSION)
                  for u in test_universes}
        cell_names = {u: f"{METHOD}__{train_name}__on__{u}" for u in test_universes}
        todo = [u for u in test_universes
                if force or not store.exists(KIND, cell_names[u], label, prints[u])]
        if not todo:
            continue
        info: dict = {}
        t0 = time.perf_counter()
        predict = fit(train, targets, info)
        train_ids = set()
        for ds, rows in train.values():
            train_ids |= set(ds.table["galaxy_id"].to_numpy()[rows].tolist())
        for u in todo:
            ds, test_rows = datasets[u], splits[u]["test"]
            t1 = time.perf_counter()
            preds, metrics = score_cell(predict, ds, test_rows, targets)
            overlap = len(train_ids & set(preds["galaxy_id"].tolist()))
            if overlap:
                raise RuntimeError(f"transfer cell {train_name} -> {u}: {overlap} test galaxies "
                                   f"were trained on")
            m = {"method": METHOD, "train": train_name, "test": u, "targets": metrics,
                 "n_test": int(len(test_rows)), "test_galaxies_trained_on": overlap,
                 "n_train_galaxies": len(train_ids),
                 **{k: v for k, v in info.items() if k not in ("pixel_scaling",
                                                                 "target_scaling")},
                 "train_rows_per_universe": {k: int(len(r)) for k, (_, r) in train.items()}}
            meta = {"datasets": {k: str(v) for k, v in dataset_paths.items()},
                    "data_source": {k: d.attrs.get("source") for k, d in datasets.items()},
                    "pixel_scaling": info.get("pixel_scaling"),
                    "target_scaling": info.get("target_scaling"),
                    "timings": {"train_s": info.get("train_s"),
                                "score_s": time.perf_counter() - t1,
                                "wall_s_since_fit": time.perf_counter() - t0}}
            store.save(KIND, cell_names[u], label, config={**tcfg, "transfer_cell": {
                "method": METHOD, "experiment": experiment_name, "train": train_name,
                "test": u, "universes": list(datasets)}}, metrics=m, predictions=preds,
                meta=meta, fingerprint=prints[u])
    return load_matrix(cfg, METHOD, store)
