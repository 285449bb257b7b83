"""Train in one mock universe, test in another: the transfer matrix (issue 14).

Each universe (analysis_lib/universes.yaml) is the same population of galaxy seeds observed
under other physics, so galaxy `k` of universe A and galaxy `k` of universe B share their
initial conditions. A galaxy is therefore held out by id in every universe at once:
`galaxy_test_mask` draws each galaxy's fate from (seed, galaxy id) alone, so the test ids are the
same in all universes whatever other galaxies a dataset lacks, and no id trained on in A is ever
tested in B (each cell records the overlap, which must be 0).

A cell (train universe A, test universe B) trains on A's training galaxies and scores B's test
galaxies: bias and scatter in dex (metrics.target_metrics), all / early / late. The mixture row
trains on equal numbers of training galaxies from every universe, disjoint ids drawn by a seeded
generator, as many in total as one universe has, and is tested on each universe.

The model is a hook: `fit` takes (training table, dataset paths and rows, target list) and
returns a predictor `predict(dataset, rows) -> {target: predictions}`, so a CNN can fill cells
later by wrapping its trained network (`score_cell` takes any such predictor). LightGBM (Table-1
features, the paper's hyper-parameters) is the default. Cells are stored under
data/results/<profile>/transfer/<method>__<A>__on__<B>/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.dataset import FEATURES, GalaxyDataset, open_dataset
from analysis_lib.metrics import target_metrics
from analysis_lib.results import ResultsStore, run_fingerprint
from analysis_lib.rng import make_rng

KIND = "transfer"
TRANSFER_TARGETS = ("log_mstar", "log_mtot")
DEFAULT_UNIVERSES = ("observed", "tng_like", "radial")
MIXTURE = "mixture"
PREDICTION_META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]

Predictor = Callable[[GalaxyDataset, np.ndarray], dict[str, np.ndarray]]
Fitter = Callable[[dict[str, tuple[GalaxyDataset, np.ndarray]], tuple[str, ...], dict], Predictor]


def galaxy_test_mask(galaxy_ids, seed: int, test_fraction: float) -> np.ndarray:
    """True for rows whose galaxy is held out; a function of (seed, galaxy id) only.

    Unlike a permutation of the ids present, this gives the same test galaxies in every
    universe even when a universe's dataset misses some galaxies (failed or cut).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"transfer test fraction must lie in (0, 1), not {test_fraction}")
    ids = np.asarray(galaxy_ids, dtype=np.int64)
    unique = np.unique(ids)
    u = np.array([make_rng(int(seed), "transfer-split", int(g)).random() for g in unique])
    held = dict(zip(unique.tolist(), (u < test_fraction).tolist(), strict=True))
    return np.array([held[int(g)] for g in ids], dtype=bool)


def universe_config(cfg: dict, universe: str) -> dict:
    """The profile's configuration in another universe (same profile, seed and overrides)."""
    from analysis_lib.config import load_config

    return load_config(cfg["profile"], [f"mock.universe={universe}"])


def universe_dataset_path(cfg: dict, universe: str) -> Path:
    """Where `python -m analysis_lib dataset --profile P --universe U` writes its dataset."""
    from analysis_lib.dataset.build import default_dataset_path

    return default_dataset_path(universe_config(cfg, universe))


# --------------------------------------------------------------------------- LightGBM hook


def lightgbm_fitter(cfg: dict, probabilistic: bool = True) -> Fitter:
    """A `Fitter` training one LightGBM per target on the Table-1 features (paper's set-up).

    The paper's exclusions (Sersic n, kinetic B/T) and non-finite targets are dropped from the
    training rows only. With `probabilistic`, quantile models are also trained on the training
    galaxies less a calibration part (cfg['gbdt']['calibration_fraction'], split by galaxy),
    conformalized there (CQR, as gbdt.quantile_intervals), and the predictor also returns
    '<target>:quantiles' (levels x rows) and '_levels', so each cell says whether intervals
    calibrated in one universe still cover in another.
    """
    from analysis_lib.dataset.splits import split_rows
    from analysis_lib.models.calibration import cqr_correction
    from analysis_lib.models.gbdt import (
        INTERVALS,
        QUANTILE_LEVELS,
        conformalize,
        exclusion_mask,
        experiment_seed,
        fit_quantile_boosters,
        lightgbm_params,
        predict_quantiles,
        train_booster,
    )

    features = list(FEATURES)

    def fit(train: dict[str, tuple[GalaxyDataset, np.ndarray]], targets: tuple[str, ...],
            info: dict) -> Predictor:
        parts = []
        for ds, rows in train.values():
            t = ds.table.iloc[rows]
            parts.append(t.loc[~exclusion_mask(t, cfg)[0]])
        table = pd.concat(parts, ignore_index=True)
        x = table[features].astype(float).replace([np.inf, -np.inf], np.nan)
        boosters = {}
        for target in targets:
            y = table[target].to_numpy(float)
            ok = np.isfinite(y)
            params = lightgbm_params(cfg, experiment_seed(cfg, f"transfer_{target}"))
            boosters[target], _ = train_booster(x[ok], y[ok], x[ok].iloc[:1], y[ok][:1], params,
                                                cfg["gbdt"]["num_boost_round"])
        info["n_train_rows"] = int(len(table))
        levels = np.asarray(QUANTILE_LEVELS)
        quantile_models, corrections = {}, {}
        if probabilistic:
            frac = float(cfg["gbdt"].get("calibration_fraction", 0.2))
            inner = split_rows(table, [1 - frac, frac], experiment_seed(cfg, "transfer-cal"))
            lv = list(np.round(levels, 6))
            for target in targets:
                y = table[target].to_numpy(float)
                fit_rows = inner["train"][np.isfinite(y[inner["train"]])]
                cal_rows = inner["test"][np.isfinite(y[inner["test"]])]
                quantile_models[target] = fit_quantile_boosters(
                    x.iloc[fit_rows], y[fit_rows], cfg,
                    experiment_seed(cfg, f"transfer_q_{target}"), QUANTILE_LEVELS)
                q_cal = predict_quantiles(quantile_models[target], x.iloc[cal_rows])
                corrections[target] = {
                    k: cqr_correction(q_cal[lv.index(lo)], q_cal[lv.index(hi)], y[cal_rows],
                                      float(hi - lo)) for k, (lo, hi) in INTERVALS.items()}
            info["cqr_corrections_dex"] = corrections
            info["n_calibration_rows"] = int(len(inner["test"]))

        def predict(ds: GalaxyDataset, rows: np.ndarray) -> dict[str, np.ndarray]:
            xt = ds.table.iloc[rows][features].astype(float).replace([np.inf, -np.inf], np.nan)
            out = {t: b.predict(xt) for t, b in boosters.items()}
            for t, models in quantile_models.items():
                out[f"{t}:quantiles"] = conformalize(levels, predict_quantiles(models, xt),
                                                     corrections[t])
            if quantile_models:
                out["_levels"] = levels
            return out

        return predict

    return fit


# --------------------------------------------------------------------------- cells


def score_cell(predict: Predictor, ds: GalaxyDataset, rows: np.ndarray,
               targets: tuple[str, ...] = TRANSFER_TARGETS) -> tuple[pd.DataFrame, dict]:
    """Predictions table and metrics of a fitted predictor on one universe's test rows.

    The hook for any model (LightGBM here, a CNN later): `predict(dataset, rows)` returns
    {target: log10 predictions} for those rows in that order.
    """
    from analysis_lib.models.gbdt import interval_summary

    test = ds.table.iloc[rows].reset_index(drop=True)
    preds = predict(ds, np.asarray(rows))
    out = test[PREDICTION_META].copy()
    metrics: dict = {}
    calibration = {}
    for target in targets:
        if target not in preds:
            raise KeyError(f"predictor returned no '{target}' (has {', '.join(preds)})")
        pred = np.asarray(preds[target], dtype=float)
        if pred.shape != (len(rows),):
            raise ValueError(f"predictor gave {pred.shape} values of '{target}' for "
                             f"{len(rows)} rows")
        out[f"true_{target}"] = test[target].to_numpy(float)
        out[f"pred_{target}"] = pred
        metrics[target] = target_metrics(pred, out[f"true_{target}"].to_numpy(),
                                         test["galaxy_type"].to_numpy())
        q = preds.get(f"{target}:quantiles")
        if q is not None:  # intervals: their coverage and CRPS in this universe
            calibration[target] = interval_summary(np.asarray(preds["_levels"]), np.asarray(q),
                                                   out[f"true_{target}"].to_numpy())
    if calibration:
        metrics["_calibration"] = calibration
    return out, metrics


def _splits(datasets: dict[str, GalaxyDataset], cfg: dict) -> dict[str, dict[str, np.ndarray]]:
    frac = float(cfg["split"]["gbdt_test_fraction"])
    out = {}
    for name, ds in datasets.items():
        test = galaxy_test_mask(ds.table["galaxy_id"].to_numpy(), cfg["seed"], frac)
        out[name] = {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}
    return out


def mixture_rows(datasets: dict[str, GalaxyDataset], splits: dict, seed: int
                 ) -> dict[str, np.ndarray]:
    """Training rows of the mixture: equal numbers of galaxies per universe, disjoint ids.

    The training ids common to every universe are shuffled (seeded) and dealt out in equal
    shares, so the mixture has as many training galaxies as one universe and never sees the
    same galaxy twice.
    """
    common = None
    for name, ds in datasets.items():
        ids = set(ds.table["galaxy_id"].to_numpy()[splits[name]["train"]].tolist())
        common = ids if common is None else common & ids
    pool = make_rng(seed, "transfer-mixture").permutation(np.array(sorted(common), dtype=int))
    share = len(pool) // len(datasets)
    if share == 0:
        raise ValueError(f"too few common training galaxies ({len(pool)}) for a mixture of "
                         f"{len(datasets)} universes")
    out = {}
    for i, (name, ds) in enumerate(datasets.items()):
        chosen = pool[i * share:(i + 1) * share]
        rows = splits[name]["train"]
        out[name] = rows[np.isin(ds.table["galaxy_id"].to_numpy()[rows], chosen)]
    return out


def open_universes(dataset_paths: dict[str, str | Path], targets: tuple[str, ...]
                   ) -> dict[str, GalaxyDataset]:
    """Each universe's dataset, opened; one error naming the file that lacks a target."""
    datasets = {u: open_dataset(p) for u, p in dataset_paths.items()}
    for u, ds in datasets.items():
        missing = [t for t in targets if t not in ds.table]
        if missing:
            raise ValueError(f"{ds.path} (universe {u}): lacks {', '.join(missing)}")
    return datasets


def transfer_matrix(cfg: dict, dataset_paths: dict[str, str | Path],
                    fit: Fitter | None = None, method: str = "lightgbm",
                    targets: tuple[str, ...] = TRANSFER_TARGETS, mixture: bool = True,
                    store: ResultsStore | None = None, force: bool = False) -> pd.DataFrame:
    """Every (train universe, test universe) cell, plus the mixture row; stored and tabulated.

    Parameters
    ----------
    cfg : the profile's configuration (seed, split fraction, LightGBM settings, profile name)
    dataset_paths : universe -> dataset file (e.g. {u: universe_dataset_path(cfg, u)})
    fit : the model hook (default: `lightgbm_fitter(cfg)`)
    method : the model's name in the store entries
    mixture : also train on the mixture of all universes

    Returns
    -------
    `matrix_table` of the cells: one row per (train, test, target, group) with bias, sigma, n.
    """
    from tqdm.auto import tqdm

    from analysis_lib.io import tqdm_options

    store = store or ResultsStore()
    fit = fit or lightgbm_fitter(cfg)
    datasets = open_universes(dataset_paths, targets)
    splits = _splits(datasets, cfg)
    train_sets = {u: {u: (datasets[u], splits[u]["train"])} for u in datasets}
    if mixture and len(datasets) > 1:
        mix = mixture_rows(datasets, splits, int(cfg["seed"]))
        train_sets[MIXTURE] = {u: (datasets[u], mix[u]) for u in datasets}
    label = str(cfg["profile"])
    cells = []
    for train_name, train in tqdm(train_sets.items(), desc=f"transfer ({method})", unit="model",
                                  **tqdm_options(True)):
        prints = {u: run_fingerprint(method=method, targets=list(targets), seed=cfg["seed"],
                                     split=cfg["split"], gbdt=cfg.get("gbdt"), train=train_name,
                                     test=u, data={k: datasets[k].identity() for k in train},
                                     test_data=datasets[u].identity(),
                                     universes=sorted(datasets))
                  for u in datasets}
        names = {u: f"{method}__{train_name}__on__{u}" for u in datasets}
        if not force and all(store.exists(KIND, names[u], label, prints[u]) for u in datasets):
            continue
        info: dict = {}
        predict = fit(train, targets, info)
        train_ids = set()
        for ds, rows in train.values():
            train_ids |= set(ds.table["galaxy_id"].to_numpy()[rows].tolist())
        for u, ds in datasets.items():
            test_rows = splits[u]["test"]
            preds, metrics = score_cell(predict, ds, test_rows, targets)
            overlap = len(train_ids & set(preds["galaxy_id"].tolist()))
            if overlap:
                raise RuntimeError(f"transfer cell {train_name} -> {u}: {overlap} test galaxies "
                                   f"were trained on")
            calibration = metrics.pop("_calibration", None)
            m = {"method": method, "train": train_name, "test": u, "targets": metrics,
                 **({"calibration": calibration} if calibration else {}),
                 "n_test": int(len(test_rows)), "test_galaxies_trained_on": overlap,
                 "n_train_galaxies": len(train_ids), **info,
                 "train_rows_per_universe": {k: int(len(r)) for k, (_, r) in train.items()}}
            meta = {"datasets": {k: str(v) for k, v in dataset_paths.items()},
                    "data_source": {k: ds_.attrs.get("source") for k, ds_ in datasets.items()}}
            cells.append(store.save(KIND, names[u], label, config={**cfg, "transfer": {
                "method": method, "train": train_name, "test": u,
                "universes": list(datasets)}}, metrics=m, predictions=preds, meta=meta,
                fingerprint=prints[u]))
    return load_matrix(cfg, method, store)


def load_matrix(cfg: dict, method: str = "lightgbm", store: ResultsStore | None = None
                ) -> pd.DataFrame:
    """The stored cells of one method as a long table (train, test, target, group, stats)."""
    store = store or ResultsStore()
    label = str(cfg["profile"])
    listing = store.list_runs(KIND, label)
    rows = []
    for name in listing["name"] if len(listing) else []:
        if not str(name).startswith(f"{method}__"):
            continue
        m = store.load(KIND, name, label).metrics
        for target, block in m["targets"].items():
            cal = (m.get("calibration") or {}).get(target, {})
            for group, stats in block.items():
                extra = {k: cal[k] for k in ("coverage_68", "coverage_95", "crps") if k in cal}
                rows.append({"method": method, "train": m["train"], "test": m["test"],
                             "target": target, "group": group, **stats,
                             **(extra if group == "all" else {})})
    return pd.DataFrame(rows)


def matrix_pivot(table: pd.DataFrame, target: str, stat: str = "sigma", group: str = "all"
                 ) -> pd.DataFrame:
    """train x test grid of one statistic ('sigma', 'bias', 'sigma_68', ...) for one target."""
    t = table[(table.target == target) & (table.group == group)]
    grid = t.pivot(index="train", columns="test", values=stat)
    order = [u for u in [*DEFAULT_UNIVERSES, *sorted(grid.columns)] if u in grid.columns]
    order = list(dict.fromkeys(order))
    rows = [u for u in order if u in grid.index] + [r for r in grid.index if r not in order]
    return grid.loc[rows, order]


def transfer_figure(table: pd.DataFrame, targets: tuple[str, ...] = TRANSFER_TARGETS,
                    group: str = "all"):
    """Heat maps of scatter and bias (dex) per cell: rows = trained on, columns = tested on."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(targets), figsize=(4.8 * len(targets), 8),
                             constrained_layout=True, squeeze=False)
    for j, target in enumerate(targets):
        for i, (stat, cmap, title) in enumerate((("sigma", "viridis", "scatter"),
                                                 ("bias", "coolwarm", "bias"))):
            grid = matrix_pivot(table, target, stat, group)
            ax = axes[i, j]
            values = grid.to_numpy(float)
            if stat == "bias":
                lim = np.nanmax(np.abs(values)) or 1.0
                im = ax.imshow(values, cmap=cmap, vmin=-lim, vmax=lim)
            else:
                im = ax.imshow(values, cmap=cmap)
            mid = np.nanmean([np.nanmin(values), np.nanmax(values)])
            for (r, c), v in np.ndenumerate(values):
                dark = stat == "sigma" and v < mid  # viridis is dark at the low end
                ax.text(c, r, f"{v:.3f}", ha="center", va="center", fontsize=8,
                        color="w" if dark else "k")
            ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30)
            ax.set_yticks(range(grid.shape[0]), grid.index)
            ax.set(xlabel="tested on (universe)", ylabel="trained on (universe)",
                   title=f"{target}: {title} [dex], {group}")
            fig.colorbar(im, ax=ax, label=f"{title} [dex]")
    return fig
