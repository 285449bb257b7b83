"""Tables that put this study's numbers beside the paper's, with the data source in every row.

Mock numbers are never presented as TNG numbers: each row carries the source and profile of the
dataset it came from, and the paper's TNG100 numbers sit in their own, labelled columns.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis_lib.metrics import TYPE_LABELS
from analysis_lib.paper import paper_results, paper_row  # noqa: F401 (re-exported)
from analysis_lib.results import ResultsStore, Run

PROJECTION_NAMES = {0: "x", 1: "y", 2: "z"}  # dataset column `projection` -> line-of-sight axis

SOURCE_LABELS = {"mock": "mock universe (this library)", "tng": "IllustrisTNG100",
                 "synthetic": "synthetic test data"}


def source_label(cfg: dict, instrument: bool = True) -> str:
    """'mock universe (this library), universe observed, instrument ideal' and the like."""
    source = cfg["data"]["source"]
    parts = [SOURCE_LABELS.get(source, source)]
    if source == "mock":
        parts.append(f"universe {cfg['mock'].get('universe', 'observed')}")
    if instrument:
        parts.append(f"instrument {cfg['observe'].get('instrument', 'ideal')}")
    return ", ".join(parts)


def run_data_label(run: Run) -> str:
    """'mock universe (this library), quick profile' and the like."""
    source = run.config.get("data", {}).get("source", run.meta.get("source", "?"))
    profile, *variant = run.profile.split("+")  # store label: profile+universe/instrument
    extra = "".join(f", {v}" for v in variant)
    return f"{SOURCE_LABELS.get(source, source)}, {profile} profile{extra}"


def load_runs(kind: str, profile: str, names: list[str] | None = None,
              store: ResultsStore | None = None) -> list[Run]:
    """Complete runs of a kind for a profile (optionally only the named ones)."""
    store = store or ResultsStore()
    listed = store.list_runs(kind=kind, profile=profile)
    wanted = names if names is not None else list(listed.name)
    return [store.load(kind, n, profile) for n in wanted if store.exists(kind, n, profile)]


def provenance_text(cfg: dict, ds) -> str:
    """Which data and profile every number of a chapter comes from (Markdown)."""
    source = ds.attrs.get("source", cfg["data"]["source"])
    n_gal = ds.table.galaxy_id.nunique()
    text = (f"**Data:** {SOURCE_LABELS.get(source, source)}, profile `{cfg['profile']}`: "
            f"{n_gal} galaxies × {ds.table.projection.nunique()} projections = {len(ds.table)} "
            f"samples, seed {ds.attrs.get('seed')}, file `{ds.path.name}`.")
    if source == "mock":
        text += f" Universe `{cfg['mock'].get('universe', 'observed')}`."
    text += f" Instrument `{cfg['observe'].get('instrument', 'ideal')}`."
    if source != "tng":
        text += (" These are not TNG100 numbers: the paper's TNG100 values are shown beside "
                 "ours for comparison only.")
    return text


def provenance_note(cfg: dict, ds) -> None:
    """Show provenance_text at the top of each chapter, as a quoted note that wraps."""
    from IPython.display import Markdown, display

    display(Markdown("> " + provenance_text(cfg, ds)))


def dataset_summary(ds) -> pd.DataFrame:
    """Counts and medians of the key truths, per galaxy type."""
    t = ds.table.assign(type=ds.table.galaxy_type.map({0: "late", 1: "early"}))
    cols = ["log_mstar", "log_mtot", "log_fdm", "log_ml_r", "rhalf_kpc", "sigma_e", "g_r"]
    summary = t.groupby("type")[cols].median().round(3)
    summary.insert(0, "samples", t.groupby("type").size())
    summary.insert(1, "galaxies", t.groupby("type").galaxy_id.nunique())
    summary.columns = ["samples", "galaxies"] + [f"median {c}" for c in cols]
    return summary


def pick_example(ds, row: int = -1) -> int:
    """The dataset row to show as Fig. 1: `row` if >= 0, else a representative rotating disc.

    The default is the late type closest to the 80th percentile of log M*(<R_half) among those
    seen at 55-75 deg (rotation, dust lane and bulge all visible), or the median-mass row if no
    late type is that inclined.
    """
    if row >= 0:
        return int(row)
    t = ds.table
    pool = t[(t.galaxy_type == 0) & t.inclination_deg.between(55.0, 75.0)]
    pool = pool if len(pool) else t
    goal = pool.log_mstar.quantile(0.8 if pool is not t else 0.5)
    return int(t.index.get_loc((pool.log_mstar - goal).abs().idxmin()))


def sample_inputs(ds, row: int) -> dict:
    """The largest image and the maps of one sample, as 2D arrays."""
    size = max(ds.image_sizes)
    names = [f"image_r_{size}", f"image_g_{size}", "vel_map", "sigma_map", "map_mask"]
    arrays = ds.load_inputs(names, [int(row)])
    return {k: v[0] for k, v in arrays.items()}


def sample_label(sample: pd.Series) -> str:
    """How the book names one sample: galaxy id, projection axis and morphological type.

    Why one function: the data chapter's panels and the galaxy browser name the same samples;
    a reader matches them by this text.

    Parameters
    ----------
    sample : pandas.Series
        A row of a dataset table (``galaxy_id``, ``projection``; ``galaxy_type`` if known).

    Returns
    -------
    str
        For example ``"galaxy 12, projection y, early type"``.
    """
    proj = PROJECTION_NAMES.get(int(sample["projection"]), str(sample["projection"]))
    gtype = TYPE_LABELS.get(int(sample.get("galaxy_type", -1)), "unknown")
    return f"galaxy {int(sample['galaxy_id'])}, projection {proj}, {gtype} type"


def sample_title(ds, row: int) -> str:
    """The data chapter's title of one sample: its label and its true masses and size."""
    r = ds.table.iloc[int(row)]
    return (f"{sample_label(r)}: log M*(<R½) = {r.log_mstar:.2f}, "
            f"log M_tot(<R½) = {r.log_mtot:.2f}, R½ = {r.rhalf_kpc:.1f} kpc")


def environment_table() -> pd.DataFrame:
    """Versions of the packages the numbers depend on, and the machine."""
    from importlib import metadata

    from analysis_lib.results import environment_info

    pkgs = ["numpy", "scipy", "torchvision", "lightgbm", "shap", "galpy", "colossus",
            "pynbody", "jampy", "mgefit", "h5py", "papermill", "jupyter-book"]
    rows = [{"item": k, "value": v} for k, v in environment_info().items()]
    for p in pkgs:
        try:
            rows.append({"item": p, "value": metadata.version(p)})
        except metadata.PackageNotFoundError:
            rows.append({"item": p, "value": "not installed"})
    return pd.DataFrame(rows)


def book_timings(profile: str, root: str | Path | None = None) -> pd.DataFrame:
    """Wall time of each notebook: its latest run and its from-scratch (full-work) run.

    A rebuild that reuses stored results is cheap; the from-scratch column keeps what a fresh
    build cost (see analysis_lib.presentation.publish.record_timing for how a run is judged).
    The last row holds
    the total of the latest book build and the sum of the from-scratch runs.
    """
    from analysis_lib.presentation.publish import NOTEBOOK_ORDER, read_timings, timings_path

    cols = ["notebook", "latest [s]", "latest run (UTC)", "latest reused stored results",
            "from scratch [s]", "from-scratch run (UTC)", "from-scratch run reused stored results"]
    data = read_timings(timings_path(profile, Path(root) if root is not None else None))
    notebooks = data["notebooks"]
    if not notebooks:
        return pd.DataFrame(columns=cols)
    order = [n for n in NOTEBOOK_ORDER if n in notebooks]
    order += [n for n in notebooks if n not in order]
    rows = []
    for name in order:
        entry = notebooks[name]
        latest, full = entry.get("latest") or {}, entry.get("from_scratch") or {}
        rows.append({"notebook": name, "latest [s]": latest.get("seconds"),
                     "latest run (UTC)": latest.get("utc"),
                     "latest reused stored results": latest.get("reused"),
                     "from scratch [s]": full.get("seconds"),
                     "from-scratch run (UTC)": full.get("utc"),
                     "from-scratch run reused stored results": full.get("reused")})
    frame = pd.DataFrame(rows, columns=cols)
    build = data.get("latest_build")
    if build:
        done, planned = len(build.get("notebooks", {})), build.get("planned")
        of = f"{done} of {planned} notebooks" if planned else f"{done} notebooks"
        label = f"total (latest build, started {build.get('id')}: {of})"
        latest_total = build.get("seconds")
    else:  # old-format file: no build record, the sum of the latest runs
        label, latest_total = "total (latest runs)", frame["latest [s]"].sum()
    total = pd.DataFrame([{"notebook": label, "latest [s]": latest_total,
                           "from scratch [s]": frame["from scratch [s]"].sum()}], columns=cols)
    return pd.concat([frame, total], ignore_index=True)


def benchmark_summary(directory: str | Path | None = None) -> pd.DataFrame:
    """The headline figure of each benchmark result file, one row per case, for the appendix.

    Reads data/results/benchmarks/*.json (written by benchmarks/*.py); a file of another shape
    gets one row naming it, so nothing measured is silently dropped.
    """
    import json

    from analysis_lib.paths import RESULTS_DIR

    folder = Path(directory) if directory is not None else RESULTS_DIR / "benchmarks"
    rows: list[dict] = []

    def add(bench: str, case: str, figure: str, value, unit: str, when) -> None:
        rows.append({"benchmark": bench, "case": case, "figure": figure, "value": value,
                     "unit": unit, "measured (UTC)": when})

    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        name = path.stem
        when = (data.get("environment") or {}).get("time_utc")
        if name == "observe":
            for r in data.get("observe", []):
                case = (f"{r['profile']} profile, {r['image_size']} px, {r['n_stars']} stars, "
                        f"{r['n_projections']} lines of sight")
                add(name, case, "galaxies per second per core",
                    r["galaxies_per_second_per_core"], "1/s", when)
            for r in data.get("render", []):
                case = f"SPH render, {r['n_stars']} stars, {r['image_size']} px"
                add(name, case, "speed-up over pynbody (one band)", r["speedup_one_band"],
                    "x", when)
                add(name, case, "|ours - pynbody| / flux", r["l1_difference_fraction"], "",
                    when)
        elif name == "mock_generation":
            for r in data.get("profiles", []):
                case = (f"{r['profile']} profile, star particles of "
                        f"{r['star_particle_mass']:.1e} Msun")
                add(name, case, "seconds per galaxy (median)", r["seconds_per_galaxy_median"],
                    "s", when)
        elif name == "cnn":
            cpu = data.get("cpu") or {}
            for r in cpu.get("runs", []):
                sizes = ", ".join(f"{k} {v}" for k, v in sorted(r["input_sizes"].items()))
                case = f"{cpu.get('device_name', 'cpu')}, {sizes} px"
                when_cpu = (cpu.get("environment") or {}).get("time_utc")
                add(name, case, "training samples per second", r["train_samples_per_s"],
                    "1/s", when_cpu)
            gpu = data.get("gpu") or {}
            if not gpu.get("available"):
                add(name, "GPU", "not measured", None, "", (gpu.get("environment") or {})
                    .get("time_utc"))
        elif name == "jam":
            add(name, f"{data.get('galaxies')}, {data.get('cores')} core",
                "seconds per fit (median)", data.get("seconds_per_galaxy_median"), "s", when)
        else:
            add(name, "", f"see {path.name}", None, "", when)
    return pd.DataFrame(rows, columns=["benchmark", "case", "figure", "value", "unit",
                                       "measured (UTC)"])


def benchmark_tables() -> dict[str, pd.DataFrame]:
    """Every benchmark result file (``benchmarks/*.py`` write them), flattened to tables."""
    import json

    from analysis_lib.paths import RESULTS_DIR

    out = {}
    for path in sorted((RESULTS_DIR / "benchmarks").glob("*.json")):
        data = json.loads(path.read_text())
        out[path.stem] = pd.json_normalize(data, sep=".").T.rename(columns={0: "value"})
    return out


def runs_table(profile: str) -> pd.DataFrame:
    """Every complete run of a profile in the results store, with its device and time."""
    import json

    store = ResultsStore()
    rows = []
    for _, r in store.list_runs(profile=profile).iterrows():
        meta_path = Path(r.path) / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        rows.append({"kind": r.kind, "name": r["name"], "device": meta.get("device", meta.get(
            "gpu", meta.get("machine"))), "wall_s": meta.get("wall_s", meta.get("seconds")),
            "when (UTC)": meta.get("time_utc"), "code": meta.get("code_version")})
    return pd.DataFrame(rows)


def paper_scale_plan(path: str | Path | None = None, mfus: tuple[float, ...] = (0.2, 0.4),
                     peak_tflops: float = 989.0) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """What the paper profile's Table 4 costs on one H100/H200-class GPU, from benchmarks/cnn.json.

    The FLOPs per training sample are counted (benchmarks/bench_cnn.py, torch's flop counter) at
    the paper's input sizes; the hours follow from an assumed model-FLOP utilisation (MFU) of the
    GPU's dense bf16 peak, or from the measured MFU where the GPU benchmark ran. Returns (one row
    per experiment, a summary of totals: hours, disk, memory), or None where the benchmark has
    not been run (no cnn.json, or one without a plan).
    """
    import json

    from analysis_lib.paths import RESULTS_DIR

    path = Path(path) if path is not None else RESULTS_DIR / "benchmarks" / "cnn.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    plan = data.get("plan")
    if not plan:
        return None
    measured = [r.get("mfu") for r in (data.get("gpu") or {}).get("runs", []) if r.get("mfu")]
    rates = {f"h at MFU {m:.0%}": m for m in mfus}
    if measured:
        rates[f"h at measured MFU {max(measured):.0%}"] = max(measured)
    rows = []
    for e in plan["experiments"]:
        row = {"experiment": e["experiment"],
               "inputs (px)": ", ".join(f"{k} {v}" for k, v in sorted(e["inputs"].items())),
               "GFLOP / training sample": e["train_flops_per_sample"] / 1e9,
               "PFLOP / run": e["run_pflop"]}
        for label, mfu in rates.items():
            row[label] = e["run_pflop"] * 1e15 / (mfu * peak_tflops * 1e12) / 3600
        row["checkpoint (MiB)"] = e["checkpoint_bytes_est"] / 2**20
        row["inputs on GPU, bf16 (GiB)"] = e["gpu_resident_inputs_gib_bf16"]
        rows.append(row)
    table = pd.DataFrame(rows)
    pflop = table.set_index("experiment")["PFLOP / run"]
    extra = _paper_repeats_pflop(pflop)
    scale = (pflop.sum() + extra) / pflop.sum()
    summary = [{"item": "Table 4, every experiment, one seed", "value": f"{pflop.sum():.0f} PFLOP"},
               {"item": "with the paper profile's seeds, ensembles and projection-split runs",
                "value": f"{pflop.sum() + extra:.0f} PFLOP"}]
    for label in rates:
        hours = table[label].sum()
        summary.append({"item": f"hours on one GPU, {label.removeprefix('h at ')} of "
                                f"{peak_tflops:.0f} TFLOP/s (one seed / with repeats)",
                        "value": f"{hours:.1f} h / {hours * scale:.1f} h"})
    summary += [
        {"item": "epochs x training / validation rows",
         "value": f"{plan['epochs']} x {plan['rows']['train']} / {plan['rows']['val']}"},
        {"item": "paper dataset on disk (estimate)",
         "value": f"{plan['paper_dataset_gib_est']:.0f} GiB"},
        {"item": "largest checkpoint", "value": f"{table['checkpoint (MiB)'].max():.0f} MiB"},
        {"item": "largest GPU-resident input set",
         "value": f"{table['inputs on GPU, bf16 (GiB)'].max():.1f} GiB"},
    ]
    return table, pd.DataFrame(summary)


def _paper_repeats_pflop(pflop: pd.Series) -> float:
    """PFLOP the paper profile adds to one seed per experiment: its extra seeds of the seed
    experiments, the extra members of each ensemble, and the projection-split and augmented
    twins (read from profiles.yaml)."""
    from analysis_lib.config import load_config
    from analysis_lib.models.experiments import select_experiments

    cnn = load_config("paper")["cnn"]
    extra = 0.0
    seeds = int(cnn.get("seeds", 1))
    if seeds > 1:
        for e in select_experiments("cnn", cnn.get("seed_experiments", "headline")):
            extra += (seeds - 1) * float(pflop.get(e["name"], 0.0))
    members = int(cnn.get("ensemble_members", 1))
    for e in select_experiments("cnn", cnn.get("probabilistic_experiments") or []):
        extra += (members - 1) * float(pflop.get(e["name"], 0.0))
    for e in select_experiments("cnn", cnn.get("projsplit_experiments") or []):
        extra += float(pflop.get(e["name"], 0.0))  # trained again on the projection split
    for e in select_experiments("cnn", cnn.get("augment_experiments") or []):
        extra += float(pflop.get(e["name"], 0.0))  # trained again with dihedral augmentation
    return extra
