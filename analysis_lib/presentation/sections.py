"""What each book chapter runs and shows, so the notebooks stay a few lines each.

A section selects its experiments (the profile's selection, or one experiment described by
papermill parameters), runs those whose results are not yet in the store, and returns the stored
runs and a table beside the paper's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.config import store_label
from analysis_lib.models.experiments import load_experiments, select_experiments
from analysis_lib.paper import paper_method, paper_row
from analysis_lib.presentation.report import run_data_label
from analysis_lib.results import ResultsStore, Run

INPUT_ALIASES = {
    "r_image": ["image_r"],
    "g_image": ["image_g"],
    "gr_images": ["image_g", "image_r"],
    "gr_colour": ["colour_gr", "image_r"],
    "vmaps": ["vel_map", "sigma_map"],
    "vel_map": ["vel_map"],
    "sigma_map": ["sigma_map"],
}


def parse_inputs(text: str) -> list[str]:
    """'r_image+vmaps' -> ['image_r', 'vel_map', 'sigma_map'] (the paper's input names)."""
    out: list[str] = []
    for part in text.replace(",", "+").split("+"):
        part = part.strip()
        if part not in INPUT_ALIASES:
            raise ValueError(f"unknown input '{part}' (choose from "
                             f"{', '.join(INPUT_ALIASES)}, joined with '+')")
        out += [p for p in INPUT_ALIASES[part] if p not in out]
    return out


def custom_cnn_experiment(section: str, inputs: str, targets: list[str], resolution: int,
                          template: dict | None = None) -> dict:
    """An experiment described by notebook parameters, named by its content."""
    branches = parse_inputs(inputs)
    name = f"custom_{'-'.join(branches)}_{resolution}_{'-'.join(targets)}"
    spec = {k: v for k, v in (template or {}).items() if k not in ("name", "tags", "paper")}
    spec.update(name=name, section=section, inputs=branches, resolution=int(resolution),
                targets=list(targets), description=f"custom: {inputs} at {resolution} px",
                tags=["custom"])
    return spec


@dataclass
class SectionRuns:
    """The stored runs of one book section and their table beside the paper."""

    runs: list[Run]
    table: pd.DataFrame
    experiments: list[dict] = field(default_factory=list)

    def show(self):
        """The table for reading: numbers to 3 decimals, the data source named in its caption."""
        return styled_table(self.table)


COUNT_COLUMNS = ("N test", "pixels", "paper pixels")  # whole numbers in the book's tables


def styled_table(table: pd.DataFrame, data_column: str = "data (this study)",
                 caption: str | None = None):
    """A pandas Styler whose caption names the data (one source per table), numbers rounded."""
    sources = sorted(set(table[data_column])) if data_column in table else []
    shown = table.drop(columns=[data_column]) if len(sources) == 1 else table
    if caption is None:
        caption = (f"This study: {sources[0]}. Paper: IllustrisTNG100 (Chu et al.), for "
                   "comparison." if len(sources) == 1
                   else "Data sources as named per row; paper: IllustrisTNG100.")
    numeric = shown.select_dtypes("number").columns
    counts = [c for c in numeric if c in COUNT_COLUMNS]
    return (shown.style.format("{:.3f}", subset=[c for c in numeric if c not in counts],
                               na_rep="—")
            .format("{:.0f}", subset=counts, na_rep="—")
            .hide(axis="index").set_caption(caption))


def section_experiments(kind: str, section: str, selection) -> list[dict]:
    """The profile's selected experiments that belong to a paper section."""
    return [e for e in select_experiments(kind, selection) if str(e["section"]) == section]


def seed_repeats(run: Run) -> list[dict]:
    """The metrics of `run` and of its stored seed repeats (X, X__s1, X__s2, ..., beside it in
    the store; models/cnn_prob.seed_run_name names them), seed 0 first."""
    import json

    from analysis_lib.models.cnn_prob import SEED_SEP

    found = [(0, run.metrics)]
    for path in Path(run.path).parent.glob(f"{run.name}{SEED_SEP}*"):
        index = path.name.removeprefix(f"{run.name}{SEED_SEP}")
        if index.isdigit() and (path / "metrics.json").exists():
            found.append((int(index), json.loads((path / "metrics.json").read_text())))
    return [m for _, m in sorted(found, key=lambda t: t[0])]


def comparison_table(runs: list[Run], experiments: dict[str, dict]) -> pd.DataFrame:
    """One row per (run, predicted or derived quantity): ours beside the paper's, data named.

    Where the profile repeated an experiment over seeds (cnn.seeds), bias and sigma are the mean
    over the repeats and their spreads (standard deviation, ddof=1) sit beside them, with the
    number of seeds in `seeds`; with one seed the spreads are empty: one run has no spread.
    """
    rows = []
    for run in runs:
        repeats = seed_repeats(run) if run.kind == "cnn" else [run.metrics]
        spec = experiments.get(run.name, run.config.get("experiment", {}))
        refs = spec.get("paper", {}) or {}
        method = paper_method(run.kind)
        for block in ("targets", "derived"):
            for target, m in (run.metrics.get(block) or {}).items():
                ref = refs.get(target)
                prow = (paper_row(ref["section"], method, ref["inputs"], ref["target"])
                        if ref and method else None)
                allm = m.get("all", m)
                per_seed = [((r.get(block) or {}).get(target) or {}) for r in repeats]
                per_seed = [b.get("all", b) for b in per_seed if b]
                biases = [b["bias"] for b in per_seed if b.get("bias") is not None]
                sigmas = [b["sigma"] for b in per_seed if b.get("sigma") is not None]
                several = len(sigmas) > 1
                rows.append({
                    "experiment": run.name,
                    "quantity": target + (" (derived)" if block == "derived" else ""),
                    "bias [dex]": float(np.mean(biases)) if several else allm.get("bias"),
                    "sigma [dex]": float(np.mean(sigmas)) if several else allm.get("sigma"),
                    "seeds": max(1, len(sigmas)),
                    "sigma seed spread [dex]": (float(np.std(sigmas, ddof=1)) if several
                                                else None),
                    "bias seed spread [dex]": (float(np.std(biases, ddof=1))
                                               if len(biases) > 1 else None),
                    "N test": allm.get("n"),
                    "data (this study)": run_data_label(run),
                    "paper bias [dex] (TNG100)": None if prow is None else prow["bias"],
                    "paper sigma [dex] (TNG100)": None if prow is None else prow["sigma"],
                })
    return pd.DataFrame(rows)


def _seed_experiment_names(cfg: dict) -> set[str]:
    """Experiments the profile repeats over seeds (cnn.seed_experiments, when cnn.seeds > 1)."""
    if int(cfg["cnn"].get("seeds", 1)) < 2:
        return set()
    return {e["name"] for e in select_experiments("cnn",
                                                  cfg["cnn"].get("seed_experiments", "headline"))}


def run_cnn_section(cfg: dict, dataset: str | Path, section: str,
                    experiments: list[dict] | None = None,
                    store: ResultsStore | None = None) -> SectionRuns:
    """Train (if not stored yet) and load the CNN runs of a section of the paper."""
    from analysis_lib.models.cnn_train import run_cnn_experiment

    store = store or ResultsStore()
    exps = experiments if experiments is not None else section_experiments(
        "cnn", section, cfg["cnn"]["experiments"])
    seeded = _seed_experiment_names(cfg)
    for exp in exps:
        run_cnn_experiment(cfg, dataset, exp, store=store)
        if exp["name"] in seeded:  # the profile's seed repeats (cnn.seeds), beside seed 0
            from analysis_lib.models.cnn_prob import run_cnn_seeds

            run_cnn_seeds(cfg, dataset, [exp["name"]], store)
    runs = [store.load("cnn", e["name"], store_label(cfg)) for e in exps]
    return SectionRuns(runs=runs, table=comparison_table(runs, {e["name"]: e for e in exps}),
                       experiments=exps)


def resolution_table(runs: list[Run], fov_rhalf: float = 3.0) -> pd.DataFrame:
    """The r-image-only M* runs ordered by image size: the paper's resolution test.

    'pixels' is the size a run trained on (a profile caps it), 'R_half per pixel' the pixel
    scale over the +-fov_rhalf field; the paper's number sits beside the run whose experiment it
    belongs to, with the size the paper used, which can differ from ours.
    """
    rows = []
    for run in runs:
        exp = run.config.get("experiment") or {}
        if list(exp.get("inputs", [])) != ["image_r"] or list(exp.get("targets", [])) != [
                "log_mstar"]:
            continue
        pixels = run.meta.get("resolution_used")
        block = run.metrics["targets"]["log_mstar"]
        paper = block.get("paper") or {}
        rows.append({"experiment": run.name, "pixels": pixels,
                     "R_half per pixel": 2.0 * fov_rhalf / pixels if pixels else None,
                     "bias [dex]": block["all"]["bias"], "sigma [dex]": block["all"]["sigma"],
                     "N test": block["all"]["n"], "data (this study)": run_data_label(run),
                     "paper pixels": exp.get("resolution") if paper else None,
                     "paper sigma [dex] (TNG100)": paper.get("sigma")})
    frame = pd.DataFrame(rows)
    return frame.sort_values("pixels", ascending=False) if len(frame) else frame


def all_experiments(kind: str) -> dict[str, dict]:
    return load_experiments(kind)


def custom_cnn_from_params(section: str, inputs: str, target: str, resolution: int,
                           cfg: dict) -> list[dict] | None:
    """None (the section's experiments) unless the notebook was given custom inputs."""
    if not inputs:
        return None
    return [custom_cnn_experiment(section, inputs, [target],
                                  int(resolution) or int(cfg["cnn"]["image_size"]))]


def run_gbdt_section(cfg: dict, dataset: str | Path,
                     store: ResultsStore | None = None) -> SectionRuns:
    """Train (if not stored yet) and load the profile's LightGBM experiments (Table 6)."""
    from analysis_lib.models.gbdt import run_gbdt_experiment

    store = store or ResultsStore()
    exps = select_experiments("gbdt", cfg["gbdt"]["experiments"])
    for exp in exps:
        run_gbdt_experiment(cfg, dataset, exp, store=store)
    runs = [store.load("gbdt", e["name"], store_label(cfg)) for e in exps]
    return SectionRuns(runs=runs, table=comparison_table(runs, {e["name"]: e for e in exps}),
                       experiments=exps)


def correlations(ds, cfg: dict | None = None) -> pd.DataFrame:
    """Pearson R of the Table-1 features and the targets over the kept samples (Fig. 10)."""
    from analysis_lib.models.gbdt import correlation_matrix, kept_rows

    table = kept_rows(ds.table, cfg) if cfg is not None else ds.table
    return correlation_matrix(table)


def importance_agreement(result: SectionRuns) -> pd.DataFrame:
    """Per run: top feature by gain, permutation and SHAP, their rank correlations, and where
    the rankings disagree."""
    from analysis_lib.models.gbdt import load_extras

    rows = []
    for run in result.runs:
        agree = load_extras(run.path)["agreement"]
        row = {"experiment": run.name}
        row.update({f"top by {m}": f for m, f in agree.get("top_feature", {}).items()})
        row.update({f"Spearman {k.replace('_vs_', ' vs ')}": round(v, 2)
                    for k, v in agree.get("spearman", {}).items()})
        row["rank disagreements (>= 2 places)"] = ", ".join(
            d["feature"] for d in agree.get("disagreements", [])) or "none"
        row["summary"] = agree.get("summary", "")
        rows.append(row)
    return pd.DataFrame(rows)


def leakage_table(cfg: dict, dataset: str | Path, experiments: tuple[str, ...] = (
        "mstar_default", "mtot_default"), store: ResultsStore | None = None) -> pd.DataFrame:
    """The same LightGBM experiments split by galaxy (ours) and by projection (the paper's)."""
    from analysis_lib.models.gbdt import leakage_comparison

    frames = []
    for name in experiments:
        frame = leakage_comparison(cfg, dataset, name, store=store).reset_index()
        frame.insert(0, "experiment", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


COMPARISON_TARGETS = ("log_mstar", "log_mtot", "log_fdm", "log_ml_r")
INCLINATION_BINS = (0.0, 45.0, 70.0, 90.0)


def prediction_column(predictions: pd.DataFrame, target: str) -> str | None:
    """The column holding a run's prediction of target (trained on, or derived)."""
    for col in (f"pred_{target}", f"pred_{target}_derived"):
        if col in predictions:
            return col
    return None


def comparison_runs(cfg: dict, store: ResultsStore | None = None) -> dict[str, Run]:
    """Every stored run of this profile that predicts a comparison target, labelled by method."""
    store = store or ResultsStore()
    listed = store.list_runs(profile=store_label(cfg))
    runs = {}
    for _, row in listed.iterrows():
        if row["name"].endswith("__by_projection") or row.kind not in ("cnn", "gbdt", "jam",
                                                                        "baseline"):
            continue
        run = store.load(row.kind, row["name"], store_label(cfg))
        if any(prediction_column(run.predictions, t) for t in COMPARISON_TARGETS):
            runs[f"{row.kind}: {row['name']}"] = run
    return runs


def method_comparison_table(runs: dict[str, Run], reference: str) -> pd.DataFrame:
    """Bias and scatter of every method on the samples the reference run (JAM) also modelled.

    One row per (method, target, group); groups are all, early, late and inclination bins. Only
    samples that both the method and the reference predict are used, so the numbers compare
    methods on the same galaxies.
    """
    from analysis_lib.metrics import log_ratio_stats

    ref = runs[reference].predictions
    keys = ["galaxy_id", "projection"]
    rows = []
    for label, run in runs.items():
        p = run.predictions
        for target in COMPARISON_TARGETS:
            col, ref_col = prediction_column(p, target), prediction_column(ref, target)
            if col is None or ref_col is None or f"true_{target}" not in p:
                continue
            merged = p[keys + ["galaxy_type", "inclination_deg", col, f"true_{target}"]].merge(
                ref[keys + [ref_col]].rename(columns={ref_col: "_ref"}), on=keys)
            merged = merged[merged["_ref"].notna() & merged[col].notna()]
            if merged.empty:
                continue
            groups = {"all": slice(None), "early": merged.galaxy_type == 1,
                      "late": merged.galaxy_type == 0}
            edges = INCLINATION_BINS
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                groups[f"i {lo:.0f}-{hi:.0f} deg"] = merged.inclination_deg.between(lo, hi)
            for group, sel in groups.items():
                sub = merged[sel]
                stats = log_ratio_stats(sub[col], sub[f"true_{target}"])
                rows.append({"method": label, "target": target, "group": group, **stats})
    return pd.DataFrame(rows)


@dataclass
class JamComparison:
    """JAM beside the CNN, LightGBM and the power law on the same test galaxies."""

    jam: Run
    runs: dict[str, Run]
    table: pd.DataFrame

    def summary(self, group: str = "all") -> pd.DataFrame:
        """Scatter (bias) in dex per method and target for one group of galaxies ('—' where a
        method does not predict that target)."""
        t = self.table[self.table.group == group]
        cell = t.apply(lambda r: f"{r.sigma:.3f} ({r.bias:+.3f}), N={r.n}", axis=1)
        return (t.assign(value=cell).pivot(index="method", columns="target", values="value")
                .fillna("—"))


def run_jam_section(cfg: dict, dataset: str | Path,
                    store: ResultsStore | None = None) -> JamComparison:
    """Fit JAM to the CNN's test galaxies (unless stored) and compare every method on them."""
    from analysis_lib.dataset import open_dataset
    from analysis_lib.models.jam import RUN_KIND, RUN_NAME, run_jam_for_config, store_fingerprint

    store = store or ResultsStore()
    fingerprint = store_fingerprint(cfg, open_dataset(dataset))
    if not store.exists(RUN_KIND, RUN_NAME, store_label(cfg), fingerprint):
        run_jam_for_config(cfg, dataset, store_root=store.root)
    runs = comparison_runs(cfg, store)
    reference = f"{RUN_KIND}: {RUN_NAME}"
    return JamComparison(jam=runs[reference], runs=runs,
                         table=method_comparison_table(runs, reference))


def run_baseline(cfg: dict, dataset: str | Path, store: ResultsStore | None = None) -> Run:
    """The power-law L -> M* baseline of section 4.1, fitted on the CNN's training rows."""
    from analysis_lib.models.baselines import run_power_law_baseline

    store = store or ResultsStore()
    path = Path(run_power_law_baseline(cfg, dataset, store=store))
    return store.load(path.parent.name, path.name, store_label(cfg))


def baseline_table(baseline: Run, cnn: SectionRuns | None = None) -> pd.DataFrame:
    """The power law beside the CNN runs that predict the same target, on the same test rows."""
    rows = []
    for target, m in baseline.metrics["targets"].items():
        fit = baseline.metrics.get("fit", {}).get(target, {})
        ref = m.get("paper") or {}
        rows.append({"model": f"power law on {baseline.metrics.get('luminosity')}",
                     "target": target, "slope": fit.get("slope"),
                     "bias [dex]": m["all"]["bias"], "sigma [dex]": m["all"]["sigma"],
                     "N test": m["all"]["n"], "data (this study)": run_data_label(baseline),
                     "paper sigma [dex] (TNG100)": ref.get("sigma")})
        for run in (cnn.runs if cnn else []):
            cm = run.metrics.get("targets", {}).get(target)
            if cm:
                rows.append({"model": f"CNN {run.name}", "target": target, "slope": None,
                             "bias [dex]": cm["all"]["bias"], "sigma [dex]": cm["all"]["sigma"],
                             "N test": cm["all"]["n"], "data (this study)": run_data_label(run),
                             "paper sigma [dex] (TNG100)": (cm.get("paper") or {}).get(
                                 "sigma")})
    return pd.DataFrame(rows)


@dataclass
class VariantComparison:
    """The same experiments on two datasets that differ in one respect (instrument, universe)."""

    table: pd.DataFrame
    reference: str
    variant: str
    runs: dict[str, list[Run]]


def survey_experiments(cfg: dict, cnn: list[str] | tuple[str, ...] | None = None,
                       gbdt: list[str] | str | None = None) -> tuple[list[str], list[str] | str]:
    """The CNN and LightGBM experiments chapter 5.4 trains on both instruments.

    Each CNN there costs a full training on the survey-like dataset, so how many is a profile
    setting (book.survey_cnn, book.survey_gbdt): the quick profile trains one joint M*, M_tot
    network where the paper profile trains one per mass. A notebook parameter that is given
    (not None or empty) wins over the profile. Names are checked here, so a typo fails before
    the survey-like dataset is built.
    """
    cnn_sel = list(cnn) if cnn else list(cfg["book"]["survey_cnn"])
    gbdt_sel = gbdt if gbdt else cfg["book"]["survey_gbdt"]
    if cnn_sel:
        select_experiments("cnn", cnn_sel)
    if gbdt_sel:
        select_experiments("gbdt", gbdt_sel)
    return cnn_sel, gbdt_sel


def variant_comparison(cfg: dict, key: str, value: str, cnn: list[str] | tuple[str, ...],
                       gbdt: list[str] | tuple[str, ...] | str,
                       overrides: list[str] | None = None,
                       store: ResultsStore | None = None) -> VariantComparison:
    """Train (if not stored) and score the same experiments on cfg's data and on a variant.

    `key` is the setting that differs (e.g. 'observe.instrument' or 'mock.universe') and `value`
    the variant's choice. Both datasets are built if missing (data/datasets/ names carry the
    variant) and both sets of runs live side by side in the store (config.store_label). The
    table has one row per experiment and quantity with bias and scatter on each dataset and the
    change in scatter, so a reader sees what the variant costs. `overrides` are the ones cfg
    was loaded with; the variant gets the same ones plus key=value.
    """
    from analysis_lib.config import load_config
    from analysis_lib.dataset.build import ensure_dataset
    from analysis_lib.models.cnn_train import run_cnn_experiment
    from analysis_lib.models.gbdt import run_gbdt_experiment

    store = store or ResultsStore()
    cnn_exps = select_experiments("cnn", list(cnn)) if len(cnn) else []
    gbdt_exps = select_experiments("gbdt", gbdt) if len(gbdt) else []
    variant_over = [o for o in (overrides or []) if not o.startswith(f"{key}=")]
    configs = {"reference": cfg,
               "variant": load_config(cfg["profile"], variant_over + [f"{key}={value}"])}
    runs: dict[str, list[Run]] = {}
    for role, c in configs.items():
        path = ensure_dataset(c)
        for exp in cnn_exps:
            run_cnn_experiment(c, path, exp, store=store)
        for exp in gbdt_exps:
            run_gbdt_experiment(c, path, exp, store=store)
        runs[role] = ([store.load("cnn", e["name"], store_label(c)) for e in cnn_exps]
                      + [store.load("gbdt", e["name"], store_label(c)) for e in gbdt_exps])
    ref_name = str(_lookup(cfg, key))
    rows = []
    for ref_run, var_run in zip(runs["reference"], runs["variant"], strict=True):
        for block in ("targets", "derived"):
            for target, m_ref in (ref_run.metrics.get(block) or {}).items():
                m_var = (var_run.metrics.get(block) or {}).get(target)
                if m_var is None:
                    continue
                a, b = m_ref.get("all", m_ref), m_var.get("all", m_var)
                rows.append({
                    "model": "LightGBM" if ref_run.kind == "gbdt" else "CNN",
                    "experiment": ref_run.name,
                    "quantity": target + (" (derived)" if block == "derived" else ""),
                    f"sigma [dex], {ref_name}": a.get("sigma"),
                    f"sigma [dex], {value}": b.get("sigma"),
                    "change in sigma [dex]": (None if a.get("sigma") is None
                                              or b.get("sigma") is None
                                              else b["sigma"] - a["sigma"]),
                    f"bias [dex], {ref_name}": a.get("bias"),
                    f"bias [dex], {value}": b.get("bias"),
                    "N test": b.get("n"),
                    "data": run_data_label(var_run),
                })
    return VariantComparison(table=pd.DataFrame(rows), reference=ref_name, variant=value,
                             runs=runs)


def variant_caption(comparison: VariantComparison) -> str:
    """Caption of a variant table: the data, and that both columns are the same galaxies."""
    from analysis_lib.presentation.report import source_label

    first = comparison.runs["reference"][0] if comparison.runs["reference"] else None
    data = source_label(first.config, instrument=False) if first is not None else "?"
    return (f"Data: {data}; profile {first.config.get('profile') if first else '?'}. The same "
            f"galaxies and split observed as '{comparison.reference}' and as "
            f"'{comparison.variant}'; test-set bias and scatter of log10(predicted/true).")


def _lookup(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node
