"""What the chapter "Beyond the paper" (uncertainties, classical estimators, transfer) runs.

The chapter's notebook stays thin: it calls the model code (models/cnn_prob.py, gbdt.py,
classical.py, transfer.py, transfer_cnn.py) through the functions below, which read what each
profile asks for from the configuration instead of repeating it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis_lib.config import load_config, store_label
from analysis_lib.models.experiments import select_experiments
from analysis_lib.results import ResultsStore, Run

PROFILES = ("smoke", "quick", "paper")


def _selection_names(kind: str, selection) -> str:
    if not selection:
        return "none"
    try:
        return ", ".join(e["name"] for e in select_experiments(kind, selection))
    except Exception:  # an unknown name is the settings check's business, not this table's
        return str(selection)


def profile_coverage(profiles: tuple[str, ...] = PROFILES) -> pd.DataFrame:
    """What each profile runs in this chapter, read from profiles.yaml (one column per profile).

    The quick profile must fit a 2-core laptop's 45-minute book, so it runs cheaper versions
    (fewer ensemble epochs, smaller images, one CNN transfer model); the paper profile runs all.
    The seed rows say how many repeats each chapter-4 number beside its spread averages.
    """
    rows: dict[str, dict[str, str]] = {}
    for name in profiles:
        cfg = load_config(name)
        cnn, tr = cfg["cnn"], cfg.get("transfer", {})
        ens_size = cnn.get("ensemble_image_size") or cnn["image_size"]
        seeded = (_selection_names("cnn", cnn.get("seed_experiments", "headline"))
                  if int(cnn.get("seeds", 1)) > 1 else "none")
        rows[name] = {
            "CNN epochs / image px (chapter 4)": f"{cnn['epochs']} / {cnn['image_size']}",
            "seeds per repeated CNN experiment": str(cnn.get("seeds", 1)),
            "CNN experiments repeated over seeds": seeded,
            "probabilistic CNN experiments": _selection_names(
                "cnn", cnn.get("probabilistic_experiments")),
            "ensemble members": str(cnn.get("ensemble_members", "-")),
            "ensemble epochs / image px": (f"{cnn.get('ensemble_epochs') or cnn['epochs']} / "
                                          f"{ens_size}"),
            "CNN on the projection split": _selection_names(
                "cnn", cnn.get("projsplit_experiments")),
            "CNN with and without dihedral augmentation": _selection_names(
                "cnn", cnn.get("augment_experiments")),
            "CNN transfer: trained on": ", ".join(tr.get("cnn_train_universes") or [])
            or "every universe",
            "CNN transfer: tested on": ", ".join(tr.get("cnn_test_universes") or [])
            or "every universe",
            "CNN transfer: mixture row": "yes" if tr.get("cnn_mixture") else "no",
            "CNN transfer epochs / image px": (
                f"{tr.get('cnn_epochs') or cnn['epochs']} / "
                f"{tr.get('cnn_image_size') or cnn['image_size']}"),
            "LightGBM probabilistic": "conformalized quantiles (CQR)",
        }
    return pd.DataFrame(rows)


def gbdt_calibration_table(runs: list[Run]) -> pd.DataFrame:
    """Coverage of the 68 / 95 % intervals and CRPS of each probabilistic LightGBM run, before
    and after conformal recalibration (CQR) on held-out training galaxies."""
    rows = []
    for run in runs:
        cal = run.metrics.get("calibration")
        if not cal:
            continue
        experiment = run.config.get("experiment", {})
        target = ", ".join(experiment.get("targets") or [experiment.get("target", run.name)])
        for stage in ("before", "after"):
            block = cal[stage]
            rows.append({"experiment": run.name, "target": target,
                         "intervals": "raw quantiles" if stage == "before" else "after CQR",
                         "coverage_68": block["coverage_68"],
                         "coverage_95": block["coverage_95"],
                         "crps (dex)": block["crps"], "n test": block["n"]})
    return pd.DataFrame(rows)


def universe_datasets(cfg: dict, universes: list[str]) -> dict[str, Path]:
    """The profile's dataset in each universe, built (resumably) where it does not exist yet."""
    from analysis_lib.dataset.build import ensure_dataset
    from analysis_lib.models.transfer import universe_config

    return {u: Path(ensure_dataset(universe_config(cfg, u))) for u in universes}


def parse_universes(text: str, cfg: dict) -> list[str]:
    """The transfer matrix's universes: the notebook parameter ('observed, tng_like,radial'), or
    the profile's transfer.universes when it is empty; each must be in universes.yaml."""
    from analysis_lib.config import universes

    names = ([t.strip() for t in str(text).split(",") if t.strip()] if str(text).strip()
             else list(cfg["transfer"]["universes"]))
    known = universes()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"transfer universes {unknown} are not in analysis_lib/universes.yaml "
                         f"(choose from {', '.join(known)})")
    if len(set(names)) < 2:
        raise ValueError(f"transfer universes {names}: a matrix needs at least two universes")
    return names


def cnn_for_radius_table(cfg: dict, store: ResultsStore | None = None,
                         names: tuple[str, ...] = ("s43_rmaps_mstar_mtot", "s42_rmaps_mtot")
                         ) -> dict[str, Run]:
    """The headline CNN run(s) that predict M_tot within R_half, to sit in the radius table."""
    store = store or ResultsStore()
    found = {}
    for name in names:
        try:
            found[f"CNN ({name})"] = store.load("cnn", name, store_label(cfg))
            break
        except FileNotFoundError:
            continue
    return found


def run_gbdt_probabilistic(cfg: dict, dataset_path: str | Path,
                           store: ResultsStore | None = None) -> tuple[list[Run], str | None]:
    """The profile's probabilistic LightGBM runs, or none and the reason when the dataset is too
    small for a finite 95 % conformal correction (fewer than 19 calibration rows, e.g. smoke)."""
    from analysis_lib.models import gbdt

    store = store or ResultsStore()
    try:
        paths = gbdt.run_gbdt_experiments(cfg, dataset_path, "probabilistic", store=store)
    except gbdt.GBDTInputError as exc:
        return [], f"Not run on this dataset: {exc}."
    return [store.load("gbdt", Path(p).name, store_label(cfg)) for p in paths], None


def lightgbm_transfer(cfg: dict, paths: dict[str, Path], store: ResultsStore | None = None
                      ) -> tuple[pd.DataFrame, str | None]:
    """The LightGBM transfer matrix with conformalized intervals, or, when the datasets are too
    small to conformalize (smoke), with point estimates only (stored as 'lightgbm_point')."""
    from analysis_lib.models import transfer
    from analysis_lib.models.gbdt import GBDTInputError

    try:
        return transfer.transfer_matrix(cfg, paths, store=store), None
    except GBDTInputError as exc:
        table = transfer.transfer_matrix(cfg, paths, store=store, method="lightgbm_point",
                                         fit=transfer.lightgbm_fitter(cfg, probabilistic=False))
        return table, f"Point estimates only (no intervals): {exc}."


def radius_pivot(table: pd.DataFrame, group: str = "all") -> pd.DataFrame:
    """The method x radius table for one galaxy group: bias and scatter (dex) side by side, the
    radius each method does best at readable along a row."""
    sub = table[table["group"] == group]
    order = [r for r in ("0.5 R_half", "1 R_half", "2 R_half", "4/3 R_e (Wolf)")
             if r in set(sub["radius_label"])]
    out = sub.pivot_table(index=["family", "method"], columns="radius_label",
                          values=["sigma", "bias"], aggfunc="first")
    out = out.reindex(columns=pd.MultiIndex.from_product([["sigma", "bias"], order]))
    out.columns = pd.MultiIndex.from_tuples(
        [(f"{'scatter' if s == 'sigma' else 'bias'} (dex)", r) for s, r in out.columns])
    return out.rename(index={"mtot": "M_tot", "mstar": "M*"}, level="family")


def seed_spread_table(cfg: dict, store: ResultsStore | None = None) -> pd.DataFrame:
    """Mean and spread over seeds of every CNN experiment the profile repeats (and of the
    ensemble's members, which are seed repeats too), one row per (experiment, quantity), with
    the number of seeds each number averages.

    Experiments not stored (a profile that runs fewer) are left out rather than failing.
    """
    from analysis_lib.models import cnn_prob

    store = store or ResultsStore()
    label, cnn = store_label(cfg), cfg["cnn"]
    parts = []
    names = ([e["name"] for e in select_experiments("cnn", cnn.get("seed_experiments",
                                                                  "headline"))]
             if int(cnn.get("seeds", 1)) > 1 else [])
    for name in names:
        try:
            parts.append(cnn_prob.seed_summary(store, label, name).assign(experiment=name))
        except FileNotFoundError:
            continue
    member_kind = cnn_prob.member_kind(cfg)
    for e in select_experiments("cnn", cnn.get("probabilistic_experiments") or []):
        try:
            parts.append(cnn_prob.seed_summary(store, label, e["name"], kind=member_kind)
                         .assign(experiment=f"{e['name']} (ensemble members)"))
        except FileNotFoundError:
            continue
    if not parts:
        return pd.DataFrame(columns=["experiment", "quantity", "n_seeds"])
    table = pd.concat(parts, ignore_index=True)
    first = ["experiment", "quantity", "n_seeds"]
    return table[first + [c for c in table.columns if c not in first]]


def _paired(cfg: dict, key: str, table_fn, store: ResultsStore | None) -> pd.DataFrame:
    """table_fn(store, label, names) over the experiments cfg['cnn'][key] selects (empty when
    the profile selects none)."""
    selection = cfg["cnn"].get(key) or []
    if not selection:
        return pd.DataFrame()
    names = [e["name"] for e in select_experiments("cnn", selection)]
    return table_fn(store or ResultsStore(), store_label(cfg), names)


def projection_split_table(cfg: dict, store: ResultsStore | None = None) -> pd.DataFrame:
    """The CNN's scatter on our galaxy split beside the paper's projection split, for the
    profile's cnn.projsplit_experiments (cnn_prob.projection_split_flattery); empty if none."""
    from analysis_lib.models import cnn_prob

    return _paired(cfg, "projsplit_experiments", cnn_prob.projection_split_flattery, store)


def augmentation_table(cfg: dict, store: ResultsStore | None = None) -> pd.DataFrame:
    """The CNN's scatter without and with dihedral augmentation (same seeds and epochs), for the
    profile's cnn.augment_experiments (cnn_prob.augmentation_effect); empty if none."""
    from analysis_lib.models import cnn_prob

    return _paired(cfg, "augment_experiments", cnn_prob.augmentation_effect, store)
