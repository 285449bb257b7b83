"""Classical dynamical mass estimators on the CNN's test galaxies, and every method by radius.

Two closed-form estimators, computed from the same kinematic maps the CNN sees (the dataset's
`sigma_fov`, `sigma_re` and `r_e_kpc` columns, observe/pipeline.py):

- Wolf et al. (2010, MNRAS 406, 1220), eq. 2: M(< r_1/2) = 3 <sigma_los^2> r_1/2 / G with
  r_1/2 = 4/3 R_e, the 3D radius enclosing half the light. <sigma_los^2> is, in the paper, the
  luminosity-weighted square of the line-of-sight dispersion over the whole galaxy. Our choice:
  v_rms^2 = sum F (V^2 + sigma^2) / sum F over every valid pixel of the map field (which spans
  cfg['observe']['fov_rhalf'] R_half either side of the centre), so rotation counts as the
  ordered part of the second moment; column `sigma_fov`.
- Cappellari et al. (2006, MNRAS 366, 1126), eq. 1 with beta = 5 (their eq. 4's calibration):
  M = beta sigma_e^2 R_e / G, sigma_e the luminosity-weighted v_rms within a circle of R_e
  (column `sigma_re`), R_e the projected half-light radius of the dust-attenuated r light
  (column `r_e_kpc`; a circle, not their ellipse). Cappellari's M is about twice the mass within
  a sphere of R_e, so its natural truth is not fixed; it is scored against every radius.

Both are compared with the true total mass in 3D spheres of 0.5, 1 and 2 R_half (R_half: the
3D half-stellar-mass radius) and Wolf's also with the truth inside its own radius 4/3 R_e
(`log_mtot_wolf`). LightGBM (Table-1 features, the paper's hyper-parameters) is trained for each
radius on the CNN's training galaxies. `method_radius_table` sets them beside the stored JAM and
power-law runs (and any other run given) on the same galaxies; `method_radius_figure` draws
scatter and bias against radius. All runs are stored under data/results/<profile>/classical/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.config import store_label
from analysis_lib.dataset import FEATURES, open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.metrics import log_ratio_stats, target_metrics
from analysis_lib.results import ResultsStore, Run, run_fingerprint

KIND = "classical"
PREDICTION_META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]
# sphere radius in units of R_half -> true total and stellar mass columns
RADIUS_TARGETS = {0.5: ("log_mtot_0p5rhalf", "log_mstar_0p5rhalf"),
                  1.0: ("log_mtot", "log_mstar"),
                  2.0: ("log_mtot_2rhalf", "log_mstar_2rhalf")}
WOLF_TARGET = "log_mtot_wolf"
WOLF_RADIUS_RE = 4.0 / 3.0
VIRIAL_BETA = 5.0
NEEDED = ("r_e_kpc", "sigma_re", "sigma_fov", WOLF_TARGET, "log_mtot_0p5rhalf",
          "log_mstar_0p5rhalf")
RUN_NAMES = {"wolf": "wolf2010", "virial": "virial_cappellari2006", "lightgbm": "lightgbm_radii"}


def gravitational_constant() -> float:
    """G in kpc (km/s)^2 / Msun, from astropy's CODATA value."""
    from astropy import constants as const
    from astropy import units as u

    return float(const.G.to(u.kpc * u.km**2 / u.s**2 / u.Msun).value)


def _log_mass(factor: float, sigma_kms, radius_kpc) -> np.ndarray:
    sigma, radius = np.asarray(sigma_kms, float), np.asarray(radius_kpc, float)
    mass = factor * sigma**2 * radius / gravitational_constant()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mass > 0, np.log10(np.where(mass > 0, mass, 1.0)), np.nan)


def wolf_log_mass(sigma_los_kms, r_e_kpc) -> np.ndarray:
    """log10 M(< 4/3 R_e) = log10(3 <sigma_los^2> (4/3 R_e) / G), Wolf et al. (2010) eq. 2."""
    return _log_mass(3.0, sigma_los_kms, WOLF_RADIUS_RE * np.asarray(r_e_kpc, float))


def virial_log_mass(sigma_e_kms, r_e_kpc, beta: float = VIRIAL_BETA) -> np.ndarray:
    """log10(beta sigma_e^2 R_e / G), Cappellari et al. (2006) eq. 1 (beta = 5, their eq. 4)."""
    return _log_mass(float(beta), sigma_e_kms, r_e_kpc)


def check_columns(table: pd.DataFrame, where: str, needed=NEEDED) -> None:
    """One clear error when a dataset predates the classical-estimator columns."""
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: dataset lacks {', '.join(missing)} (made before the "
                         f"classical-estimator columns existed); rebuild it with "
                         f"`python -m analysis_lib dataset`")


def test_table(table: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, dict]:
    """The CNN's test rows (analysis_lib.dataset.splits.cnn_split), so every method sees the same
    galaxies; also returns the split."""
    table = table.reset_index(drop=True).assign(row=np.arange(len(table)))
    split = cnn_split(table, cfg)
    return table.iloc[split["test"]].reset_index(drop=True), split


def estimator_predictions(test: pd.DataFrame, method: str) -> pd.DataFrame:
    """Predictions table (store convention) of one estimator against every radius's truth.

    The same estimate is set beside each truth (pred_X = estimate for every X), so that any
    reader comparing pred_X to true_X (sections.method_comparison_table) sees the estimator.
    """
    if method == "wolf":
        est = wolf_log_mass(test["sigma_fov"], test["r_e_kpc"])
        own = {WOLF_TARGET: WOLF_TARGET}
    elif method == "virial":
        est = virial_log_mass(test["sigma_re"], test["r_e_kpc"])
        own = {}
    else:
        raise ValueError(f"unknown classical estimator '{method}' (wolf or virial)")
    out = test[[*PREDICTION_META, "row"]].copy()
    for target in [RADIUS_TARGETS[r][0] for r in RADIUS_TARGETS] + list(own):
        out[f"true_{target}"] = test[target].to_numpy(float)
        out[f"pred_{target}"] = est
    return out


def _metrics_for(predictions: pd.DataFrame) -> dict:
    targets = {}
    for col in predictions.columns:
        if col.startswith("pred_"):
            t = col[5:]
            targets[t] = target_metrics(predictions[col].to_numpy(float),
                                        predictions[f"true_{t}"].to_numpy(float),
                                        predictions["galaxy_type"].to_numpy())
    return targets


def _fingerprint(cfg: dict, ds, what: str) -> str:
    return run_fingerprint(kind=KIND, what=what, seed=cfg["seed"], split=cfg["split"],
                           gbdt={k: v for k, v in cfg["gbdt"].items()
                                 if k not in ("num_threads", "experiments")},
                           dataset=ds.identity())


def run_classical_estimators(cfg: dict, dataset_path: str | Path,
                             store: ResultsStore | None = None) -> dict[str, Path]:
    """Wolf (2010) and virial (Cappellari 2006, beta = 5) masses of the CNN's test galaxies.

    Cheap (no fitting), so recomputed on every call. Stored as classical/wolf2010 and
    classical/virial_cappellari2006; returns {method: run folder}.
    """
    store = store or ResultsStore()
    ds = open_dataset(dataset_path)
    check_columns(ds.table, str(ds.path))
    test, split = test_table(ds.table, cfg)
    paths = {}
    for method, choice in (("wolf", "3 <v_rms^2> (4/3 R_e) / G, v_rms over the whole map "
                                    "field (sigma_fov)"),
                           ("virial", f"{VIRIAL_BETA:g} sigma_e^2 R_e / G, sigma_e = v_rms "
                                      "within R_e (sigma_re)")):
        predictions = estimator_predictions(test, method)
        metrics = {"estimator": method, "formula": choice, "targets": _metrics_for(predictions),
                   "n_test": int(len(test)),
                   "n_nonfinite": int((~np.isfinite(predictions.filter(like="pred_").iloc[:, 0]
                                                    )).sum())}
        meta = {"dataset": str(dataset_path), "data_source": ds.attrs.get("source"),
                "split": "cnn_split test rows", "n_rows": {k: int(len(v))
                                                          for k, v in split.items()},
                "G_kpc_kms2_per_msun": gravitational_constant()}
        paths[method] = store.save(KIND, RUN_NAMES[method], store_label(cfg),
                                   config={**cfg, "classical": {"method": method,
                                                                "formula": choice}},
                                   metrics=metrics, predictions=predictions, meta=meta,
                                   fingerprint=_fingerprint(cfg, ds, method))
    return paths


def run_lightgbm_radii(cfg: dict, dataset_path: str | Path, store: ResultsStore | None = None,
                       force: bool = False) -> Path:
    """LightGBM (Table-1 features, paper's hyper-parameters) for M_tot and M* at each radius.

    Trained on the CNN's training and validation galaxies (the paper's exclusions applied to
    them), tested on all the CNN's test galaxies, so it is scored on the same galaxies as the
    estimators. One store entry, classical/lightgbm_radii, with pred_X for every radius target.
    """
    from analysis_lib.models.gbdt import (
        exclusion_mask,
        experiment_seed,
        lightgbm_params,
        train_booster,
    )

    store = store or ResultsStore()
    ds = open_dataset(dataset_path)
    check_columns(ds.table, str(ds.path))
    fingerprint = _fingerprint(cfg, ds, "lightgbm_radii")
    name = RUN_NAMES["lightgbm"]
    if not force and store.exists(KIND, name, store_label(cfg), fingerprint):
        return store.run_dir(KIND, name, store_label(cfg))
    table = ds.table.reset_index(drop=True).assign(row=np.arange(len(ds.table)))
    split = cnn_split(table, cfg)
    excluded, _ = exclusion_mask(table, cfg)
    features = list(FEATURES)
    x = table[features].astype(float).replace([np.inf, -np.inf], np.nan)
    train_rows = np.sort(np.concatenate([split["train"], split.get("val", [])])).astype(int)
    test_rows = split["test"]
    predictions = table.iloc[test_rows][[*PREDICTION_META, "row"]].reset_index(drop=True)
    targets = [t for pair in RADIUS_TARGETS.values() for t in pair]
    for target in targets:
        y = table[target].to_numpy(float)
        fit_rows = train_rows[~excluded[train_rows] & np.isfinite(y[train_rows])]
        params = lightgbm_params(cfg, experiment_seed(cfg, f"radius_{target}"))
        booster, _ = train_booster(x.iloc[fit_rows], y[fit_rows], x.iloc[test_rows],
                                   np.nan_to_num(y[test_rows]), params,
                                   cfg["gbdt"]["num_boost_round"])
        predictions[f"true_{target}"] = y[test_rows]
        predictions[f"pred_{target}"] = booster.predict(x.iloc[test_rows])
    metrics = {"targets": _metrics_for(predictions), "features": features,
               "n_train": int(len(train_rows)), "n_test": int(len(test_rows))}
    meta = {"dataset": str(dataset_path), "data_source": ds.attrs.get("source"),
            "split": "cnn_split: train+val -> test"}
    return store.save(KIND, name, store_label(cfg), config=cfg, metrics=metrics,
                      predictions=predictions, meta=meta, fingerprint=fingerprint)


# --------------------------------------------------------------------------- table and figure


def radius_of(target: str) -> tuple[str, float, str]:
    """(mass family, radius in R_half, label) of a target column; radius NaN for Wolf's own."""
    if target == WOLF_TARGET:
        return "mtot", float("nan"), "4/3 R_e (Wolf)"
    for radius, (mtot, mstar) in RADIUS_TARGETS.items():
        if target in (mtot, mstar):
            return ("mtot" if target == mtot else "mstar"), radius, f"{radius:g} R_half"
    raise KeyError(target)


def default_runs(cfg: dict, store: ResultsStore | None = None) -> dict[str, Run]:
    """Every stored run of this profile the radius table knows: the classical runs, JAM
    (jam/jam_nfw) and the power-law baseline (baseline/powerlaw_*), where they exist."""
    store = store or ResultsStore()
    label = store_label(cfg)
    runs: dict[str, Run] = {}
    wanted = [(KIND, RUN_NAMES["wolf"], "Wolf+2010"),
              (KIND, RUN_NAMES["virial"], "virial (beta=5)"),
              (KIND, RUN_NAMES["lightgbm"], "LightGBM"), ("jam", "jam_nfw", "JAM")]
    for kind, name, method in wanted:
        try:
            runs[method] = store.load(kind, name, label)
        except FileNotFoundError:
            pass
    listing = store.list_runs("baseline", label)
    for name in listing["name"] if len(listing) else []:
        if str(name).startswith("powerlaw"):
            runs[f"power law ({name.removeprefix('powerlaw_')})"] = store.load("baseline", name,
                                                                             label)
    return runs


def method_radius_table(runs: dict[str, Run], same_galaxies: bool = True) -> pd.DataFrame:
    """Bias and scatter (dex) of every method x sphere radius x galaxy type.

    Parameters
    ----------
    runs : method label -> stored run (`default_runs(cfg)`, plus e.g. a CNN run). Each
        pred_X / true_X pair whose X is a radius target (M_tot or M* in spheres of 0.5, 1, 2
        R_half, or Wolf's 4/3 R_e) gives rows.
    same_galaxies : keep only the (galaxy, projection) samples every method predicts (JAM fits
        a subset of the test galaxies), so the methods are compared on the same galaxies.

    Returns
    -------
    One row per (method, family 'mtot'/'mstar', radius, group all/early/late) with radius_rhalf,
    radius_label, target, bias, sigma, n, median, sigma_68.
    """
    keys = ["galaxy_id", "projection"]
    frames = {}
    for method, run in runs.items():
        p = run.predictions
        if "status" in p:  # JAM: failed fits carry no prediction
            p = p[p["status"].fillna("ok") == "ok"]
        frames[method] = p
    common = None
    if same_galaxies and frames:
        for p in frames.values():
            idx = pd.MultiIndex.from_frame(p[keys].astype(int))
            common = idx if common is None else common.intersection(idx)
    rows = []
    for method, p in frames.items():
        if common is not None:
            p = p[pd.MultiIndex.from_frame(p[keys].astype(int)).isin(common)]
        for col in p.columns:
            if not col.startswith("pred_"):
                continue
            target = col[5:]
            try:
                family, radius, label = radius_of(target)
            except KeyError:
                continue
            if f"true_{target}" not in p:
                continue
            groups = {"all": np.ones(len(p), bool), "early": (p["galaxy_type"] == 1).to_numpy(),
                      "late": (p["galaxy_type"] == 0).to_numpy()}
            for group, sel in groups.items():
                stats = log_ratio_stats(p[col].to_numpy(float)[sel],
                                        p[f"true_{target}"].to_numpy(float)[sel])
                rows.append({"method": method, "family": family, "radius_rhalf": radius,
                             "radius_label": label, "target": target, "group": group,
                             **stats})
    return pd.DataFrame(rows)


def method_radius_figure(table: pd.DataFrame, group: str = "all", family: str = "mtot"):
    """Scatter and bias (dex) against sphere radius (R_half) for each method; one figure.

    Wolf's estimate scored at its own radius (4/3 R_e, which varies from galaxy to galaxy in
    units of R_half) is drawn as a dotted horizontal line in the method's colour.
    """
    import matplotlib.pyplot as plt

    t = table[(table.group == group) & (table.family == family)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for method, sub in t.groupby("method", sort=False):
        at_r = sub[np.isfinite(sub.radius_rhalf)].sort_values("radius_rhalf")
        line = axes[0].plot(at_r.radius_rhalf, at_r.sigma, "o-", label=method)[0]
        axes[1].plot(at_r.radius_rhalf, at_r.bias, "o-", color=line.get_color())
        own = sub[~np.isfinite(sub.radius_rhalf)]
        if len(own):
            axes[0].axhline(own.sigma.iloc[0], color=line.get_color(), ls=":",
                            label=f"{method} at 4/3 R_e")
            axes[1].axhline(own.bias.iloc[0], color=line.get_color(), ls=":")
    name = r"M_{\rm tot}" if family == "mtot" else r"M_*"
    axes[0].set(xlabel=r"sphere radius [$R_{1/2}$]", ylabel=r"scatter $\sigma$ [dex]",
                title=f"${name}(<r)$, {group} galaxies")
    axes[1].set(xlabel=r"sphere radius [$R_{1/2}$]", ylabel="bias (predicted - true) [dex]")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[0].legend(fontsize=8)
    return fig
