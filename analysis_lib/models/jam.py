"""JAM on the dataset's test galaxies: a parallel, resumable runner and its results.

Why: the paper compares its CNN with JAM scatter from *other* samples; a fair comparison needs
the same galaxies, so here each test sample (galaxy, projection) gets a JAM fit (`jam_fit`) whose
derived masses carry the dataset's target names and compare one to one with the truths.

Each sample's outcome is one small JSON (written atomically) in `out_dir`, named by galaxy and
projection: a resumed run skips samples whose JSON exists *for the same settings and dataset*
(a fingerprint is stored in each), and a failed fit is a JSON too, with the exception text, never
a silently missing row. `collect_jam` gathers the JSONs into a DataFrame;
`run_jam_for_config` runs the profile's selection and saves predictions and metrics in the
results store like every other model: through the experiment runner, with `JAMEstimator`, whose
`predict` is the per-galaxy fitting (JAM learns nothing shared between galaxies).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.config import store_label
from analysis_lib.io import short_hash, tqdm_options
from analysis_lib.models.jam_fit import FIT_VERSION, JamSettings

# Targets a JAM model derives, named as in the dataset (the 2 R_half ones included).
JAM_TARGETS = ("log_mstar", "log_mtot", "log_mdm", "log_fdm", "log_ml_r", "log_mstar_2rhalf",
               "log_mtot_2rhalf")
RUN_KIND, RUN_NAME = "jam", "jam_nfw"
MAP_NAMES = ("vel_map", "sigma_map", "map_mask")
LOAD_BLOCK = 256


def sample_name(galaxy_id: int, projection: int) -> str:
    return f"g{int(galaxy_id):07d}_p{int(projection)}"


def dataset_identity(ds) -> dict:
    """What distinguishes one dataset's content from another's (not its location)."""
    return ds.identity()


def settings_fingerprint(settings: JamSettings, dataset: dict, image_name: str) -> str:
    """Short hash of everything a fit depends on besides the sample itself."""
    return short_hash({"settings": asdict(settings), "dataset": dataset, "image": image_name,
                       "fit_version": FIT_VERSION}, 12, "sha1")


def _atomic_json(path: Path, record: dict) -> None:
    from analysis_lib.io import atomic_write_text

    atomic_write_text(path, json.dumps(record, indent=1, default=float))


def fit_sample(task: dict) -> dict:
    """Fit one sample and write its JSON; any failure becomes a record with its reason."""
    from analysis_lib.models.jam_fit import fit_jam

    t0 = time.perf_counter()
    record = {k: task[k] for k in ("row", "galaxy_id", "projection", "galaxy_type",
                                   "fingerprint")}
    record.update({f"true_{k}": v for k, v in task["truth"].items()})
    try:
        result = fit_jam(task["image"], task["vel_map"], task["sigma_map"], task["map_mask"],
                         task["rhalf_kpc"], JamSettings(**task["settings"]),
                         inclination_deg=task["inclination_deg"])
        fitted = result.to_dict()
        extra = fitted.pop("extra")
        record.update(status="ok", error="", **fitted, **extra)
    except Exception as exc:  # recorded, never dropped: the reason goes into the table
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    record["wall_seconds"] = time.perf_counter() - t0
    _atomic_json(Path(task["out_dir"]) / f"{sample_name(task['galaxy_id'], task['projection'])}"
                 ".json", record)
    return record


def done_samples(out_dir: Path, fingerprint: str) -> set[str]:
    """Names of samples whose JSON exists and was made with these settings."""
    done = set()
    for path in Path(out_dir).glob("g*_p*.json"):
        try:
            if json.loads(path.read_text()).get("fingerprint") == fingerprint:
                done.add(path.stem)
        except (OSError, json.JSONDecodeError):
            continue  # a torn file is refitted
    return done


def _tasks(ds, rows: np.ndarray, image_name: str, settings: JamSettings, out_dir: Path,
           fingerprint: str) -> Iterable[dict]:
    table = ds.table
    for start in range(0, len(rows), LOAD_BLOCK):
        block = rows[start:start + LOAD_BLOCK]
        arrays = ds.load_inputs([image_name, *MAP_NAMES], block)
        for i, row in enumerate(block):
            rec = table.iloc[int(row)]
            yield {"row": int(row), "galaxy_id": int(rec["galaxy_id"]),
                   "projection": int(rec["projection"]), "galaxy_type": int(rec["galaxy_type"]),
                   "inclination_deg": float(rec["inclination_deg"]),
                   "rhalf_kpc": float(rec["rhalf_kpc"]), "image": arrays[image_name][i],
                   **{m: arrays[m][i] for m in MAP_NAMES},
                   "truth": {k: float(rec[k]) for k in JAM_TARGETS if k in rec},
                   "settings": asdict(settings), "out_dir": str(out_dir),
                   "fingerprint": fingerprint}


def jam_settings(cfg: dict, ds=None) -> tuple[JamSettings, str]:
    """Fit settings from cfg['jam'] (field size from the dataset when known) and the image name."""
    section = dict(cfg["jam"])
    made_with = ds.config.get("observe", {}) if ds is not None else {}
    section["fov_rhalf"] = made_with.get("fov_rhalf", cfg["observe"]["fov_rhalf"])
    size = int(section.get("image_size", 60))
    if ds is not None and size not in ds.image_sizes:
        raise ValueError(f"{ds.path}: jam.image_size={size} but the dataset has r images of "
                         f"{ds.image_sizes} px")
    return JamSettings.from_config(section), f"image_r_{size}"


def run_jam(dataset_path: str | Path, cfg: dict, rows: Iterable[int] | None = None,
            out_dir: str | Path | None = None, workers: int | None = None,
            progress: bool = True) -> pd.DataFrame:
    """Fit the given dataset rows (default: the CNN test split) and return `collect_jam`'s table.

    Runs `workers` processes (default cfg['jam']['workers'], 0 = all cores); samples already
    fitted with the same settings are skipped.
    """
    from tqdm.auto import tqdm

    from analysis_lib.dataset import open_dataset

    ds = open_dataset(dataset_path)
    if rows is None:
        from analysis_lib.dataset.splits import cnn_split

        rows = cnn_split(ds.table, cfg)["test"]
    rows = np.asarray(list(rows), dtype=int)
    if rows.size and (rows.min() < 0 or rows.max() >= len(ds.table)):
        raise IndexError(f"{dataset_path}: rows must lie in [0, {len(ds.table)}), got "
                         f"{rows.min()}..{rows.max()}")
    settings, image_name = jam_settings(cfg, ds)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = settings_fingerprint(settings, dataset_identity(ds), image_name)
    done = done_samples(out_dir, fingerprint)
    t = ds.table
    todo = np.array([r for r in rows if sample_name(t["galaxy_id"].iat[r],
                                                    t["projection"].iat[r]) not in done], int)
    n_workers = workers if workers is not None else int(cfg["jam"].get("workers", 0))
    n_workers = max(1, min(n_workers or os.cpu_count() or 1, max(len(todo), 1)))
    tasks = _tasks(ds, todo, image_name, settings, out_dir, fingerprint)
    bar = tqdm(total=len(todo), desc=f"JAM ({n_workers} workers)", **tqdm_options(progress),
               unit="fit")
    if n_workers == 1:
        for task in tasks:
            fit_sample(task)
            bar.update()
    else:
        import multiprocessing

        # fork: workers start at once and need no importable __main__ (scripts, notebooks);
        # the fits use numpy/scipy only, nothing that minds being forked.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        from analysis_lib.dataset.build import die_with_parent

        # workers end with this process, even when it is killed (they would hold the store lock)
        with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            pending = set()
            for task in tasks:  # keep a bounded number of tasks (and arrays) in flight
                pending.add(pool.submit(fit_sample, task))
                if len(pending) >= 4 * n_workers:
                    finished = next(as_completed(pending))
                    pending.remove(finished)
                    finished.result()
                    bar.update()
            for finished in as_completed(pending):
                finished.result()
                bar.update()
    bar.close()
    names = {sample_name(t["galaxy_id"].iat[r], t["projection"].iat[r]) for r in rows}
    table = collect_jam(out_dir)
    return table[table["sample"].isin(names)].reset_index(drop=True)


def collect_jam(out_dir: str | Path) -> pd.DataFrame:
    """All per-sample JSONs in out_dir as one table (one row per sample, failures included)."""
    records = []
    for path in sorted(Path(out_dir).glob("g*_p*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            rec = {"status": "failed", "error": f"unreadable result file {path.name}: {exc}"}
        rec["sample"] = path.stem
        records.append(rec)
    frame = pd.DataFrame(records)
    if frame.empty:
        return pd.DataFrame(columns=["sample", "row", "galaxy_id", "projection", "status",
                                     "error"])
    return frame.sort_values("sample").reset_index(drop=True)


def default_out_dir(cfg: dict, root: str | Path | None = None) -> Path:
    from analysis_lib.results import ResultsStore

    return ResultsStore(root).run_dir(RUN_KIND, RUN_NAME, store_label(cfg)) / "extra" / "fits"


def jam_rows(table: pd.DataFrame, cfg: dict) -> np.ndarray:
    """The profile's JAM sample: the first jam.n_galaxies rows of the CNN test split.

    The test split is a random set of galaxies in galaxy-id order, so this keeps every
    projection of the galaxies it takes.
    """
    from analysis_lib.dataset.splits import cnn_split

    test = np.sort(cnn_split(table, cfg)["test"])
    return test[: int(cfg["jam"]["n_galaxies"])]


def store_fingerprint_parts(cfg: dict, ds) -> dict:
    """What a stored JAM run must share with this configuration to be reused."""
    settings, image_name = jam_settings(cfg, ds)
    return dict(kind=RUN_KIND, fit=settings_fingerprint(settings, dataset_identity(ds),
                                                        image_name),
                rows=jam_rows(ds.table, cfg).tolist())


def store_fingerprint(cfg: dict, ds) -> str:
    """The stored fingerprint of a JAM run (`store_fingerprint_parts` hashed)."""
    from analysis_lib.results import run_fingerprint

    return run_fingerprint(**store_fingerprint_parts(cfg, ds))


def jam_metrics(frame: pd.DataFrame) -> dict:
    """metrics.json block: the paper's metric per target (all / early / late), plus failures."""
    from analysis_lib.metrics import target_metrics

    ok = frame[frame["status"] == "ok"]
    targets = {}
    for k in JAM_TARGETS:
        pred = f"pred_{k}" if f"pred_{k}" in ok else k  # store convention, or run_jam's frame
        if pred in ok and f"true_{k}" in ok:
            targets[k] = target_metrics(ok[pred].to_numpy(float),
                                        ok[f"true_{k}"].to_numpy(float),
                                        ok["galaxy_type"].to_numpy(int))
    seconds = ok["seconds"].to_numpy(float) if "seconds" in ok else np.array([])
    return {"targets": targets, "n_samples": int(len(frame)), "n_ok": int(len(ok)),
            "n_failed": int((frame["status"] != "ok").sum()),
            "seconds_per_fit_median": float(np.median(seconds)) if seconds.size else None,
            "failures": frame.loc[frame["status"] != "ok", ["sample", "error"]]
            .to_dict("records")}


class JAMEstimator:
    """JAM (stars + NFW halo) as an estimator of each test sample's masses.

    JAM learns nothing shared between galaxies: every sample is its own fit of its kinematic
    maps. So `fit` only fixes the fit settings for the dataset (field size, image), and
    `predict` does the per-galaxy fits (in `workers` processes, each sample's result cached as a
    JSON in the resume folder, so an interrupted run refits only what is missing).

    Parameters
    ----------
    cfg : dict
        The profile; cfg['jam'] holds the fit settings (JamSettings) and n_galaxies.
    workers : int or None
        Processes for the fits (None: cfg['jam']['workers'], 0 = all cores).
    progress : bool
        Show a progress bar.

    Fitted attributes: ``settings_`` (JamSettings), ``image_name_``, ``out_dir_`` (where the
    per-sample fits live), ``meta_``.
    """

    def __init__(self, cfg: dict, workers: int | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.workers = workers
        self.progress = progress

    def resume_from(self, work_dir: Path, key: str, fresh: bool = False) -> None:
        """Keep the per-sample fits in work_dir/fits (each tagged with its own settings)."""
        self.out_dir_ = Path(work_dir) / "fits"

    def select_rows(self, dataset, split: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The profile's sample: the first jam.n_galaxies rows of the (sorted) test split."""
        return {"test": np.sort(split["test"])[: int(self.cfg["jam"]["n_galaxies"])]}

    def fit(self, dataset, rows: dict[str, np.ndarray] | None = None) -> JAMEstimator:
        """Fix the fit settings for this dataset; no fitting happens here (see `predict`)."""
        self.settings_, self.image_name_ = jam_settings(self.cfg, dataset)
        if getattr(self, "out_dir_", None) is None:
            self.out_dir_ = default_out_dir(self.cfg)
        return self

    def predict_frame(self, dataset, rows: np.ndarray) -> pd.DataFrame:
        """Fit every given row (cached fits reused) and return `run_jam`'s per-sample table."""
        from analysis_lib.experiments.runner import check_fitted

        check_fitted(self, "settings_")
        t0 = time.perf_counter()
        frame = run_jam(dataset.path, self.cfg, rows=rows, out_dir=self.out_dir_,
                        workers=self.workers, progress=self.progress)
        self.meta_ = {"wall_seconds_this_call": time.perf_counter() - t0}
        return frame

    def predict(self, dataset, rows: np.ndarray) -> np.ndarray:
        """The per-galaxy fits' masses (JAM_TARGETS columns; NaN where a fit failed)."""
        frame = self.predict_frame(dataset, rows).set_index("row").reindex(np.asarray(rows))
        return np.column_stack([frame[t].to_numpy(float) if t in frame else
                                np.full(len(frame), np.nan) for t in JAM_TARGETS])

    def evaluate(self, dataset, rows: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict]:
        """The test samples in the store convention (true_X beside pred_X) and their metrics."""
        frame = self.predict_frame(dataset, rows["test"])
        return store_predictions(frame, dataset), jam_metrics(frame)


def store_predictions(frame: pd.DataFrame, ds) -> pd.DataFrame:
    """`run_jam`'s table in the store convention: true_X beside pred_X, the true inclination as
    inclination_deg (the fitted one kept as jam_inclination_deg), diagnostics after."""
    frame = frame.rename(columns={**{t: f"pred_{t}" for t in JAM_TARGETS},
                                  "inclination_deg": "jam_inclination_deg"})
    frame["inclination_deg"] = ds.table["inclination_deg"].to_numpy()[frame["row"].to_numpy()]
    keep = ["sample", "row", "galaxy_id", "projection", "galaxy_type", "inclination_deg",
            "status", "error"]
    true_cols = [c for c in frame.columns if c.startswith("true_")]
    pred_cols = [c for c in frame.columns if c.startswith("pred_")]
    other = [c for c in frame.columns if c not in keep + true_cols + pred_cols]
    return frame[[c for c in keep if c in frame] + true_cols + pred_cols + other]


def run_jam_for_config(cfg: dict, dataset_path: str | Path, store_root: str | Path | None = None,
                       workers: int | None = None) -> Path:
    """Fit the profile's JAM sample and save it in the results store; returns the run folder."""
    from analysis_lib.dataset import open_dataset
    from analysis_lib.experiments.runner import RunSpec, Split, run_experiment
    from analysis_lib.results import ResultsStore

    ds = open_dataset(dataset_path)
    settings, image_name = jam_settings(cfg, ds)
    meta = {"dataset": str(dataset_path), "image": image_name, "settings": asdict(settings),
            "workers": workers or cfg["jam"].get("workers", 0),
            "note": "gas is not modelled: JAM's stars + NFW halo absorb it"}
    spec = RunSpec(kind=RUN_KIND, name=RUN_NAME, cfg=cfg, split=Split("cnn"), config=cfg,
                   meta=meta, fingerprint=store_fingerprint_parts(cfg, ds), keep=("extra/fits",))
    return run_experiment(JAMEstimator(cfg, workers), ds, spec, ResultsStore(store_root))
