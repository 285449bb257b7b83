"""The discussion chapter, written from the stored numbers rather than from fixed prose.

`headline_table` puts this study's scatter and bias for the paper's headline claims beside the
paper's numbers; `findings` turns the comparisons the paper draws (maps vs image alone, CNN vs
power law, CNN vs LightGBM, galaxy vs projection split, JAM, f_DM derived vs direct, feature
importance) into sentences whose wording is chosen by the numbers; `limitations` lists the
caveats that follow from how the runs were made. Every sentence names the data source and
profile it rests on (`report.run_data_label`), so mock numbers are never read as TNG100 ones.

The chapter itself shows `markdown`: `synthesis`, one short paragraph per theme (the CNN against
the paper, what the maps add, leakage, what drives LightGBM, the classical estimators, mock or
TNG100) built from the same comparisons, like ones told together rather than one template
sentence each; and `summary_figure`, every method's bias and scatter beside the paper's.
`evidence_markdown` keeps the one-sentence-per-comparison list.

Differences of scatter are judged with a bootstrap over galaxies (projections of one galaxy are
resampled together) on the samples both runs predicted, or, where the runs share no test samples,
with the standard error of a standard deviation, sigma / sqrt(2 (N_galaxies - 1)). A difference
counts only if its 95% interval excludes zero and it exceeds TIE_DEX; otherwise it is a tie.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis_lib.metrics import log_ratio_stats
from analysis_lib.paper import paper_method, paper_row
from analysis_lib.presentation.report import run_data_label
from analysis_lib.results import ResultsStore, Run, prediction_pairs

PAPER_EPOCHS = 200          # the paper's Table 2: training epochs
PAPER_RESOLUTION = 300      # the paper's image side in pixels (Table 4)
TIE_DEX = 0.005             # differences of scatter below this are ties whatever the interval
PAPER_TOL_DEX = 0.01        # the paper's numbers are rounded to 0.01 dex
N_BOOT = 1000
BOOT_SEED = 20240601
MIN_PAIRED = 20             # fewer common samples than this: compare the runs' own test sets

TARGET_LABELS = {
    "log_mstar": "M*", "log_mtot": "M_tot", "log_mdm": "M_DM", "log_fdm": "f_DM",
    "log_fstar": "f*", "log_ml_r": "M*/L_r", "log_mstar_proj": "projected M*",
    "log_mstar_2rhalf": "M* within 2 R_half", "log_mtot_2rhalf": "M_tot within 2 R_half",
    "log_ml_r_2rhalf": "M*/L_r within 2 R_half",
    "log_fdm_derived": "f_DM derived from predicted M*/M_tot",
}
INPUT_LABELS = {"image_r": "r image", "image_g": "g image", "colour_gr": "g-r colour map",
                "vel_map": "velocity map", "sigma_map": "dispersion map"}
MODEL_KIND_LABELS = {"cnn": "CNN", "gbdt": "LightGBM", "baseline": "power law", "jam": "JAM"}
JAM_TARGETS = ("log_mstar", "log_mtot", "log_mdm", "log_fdm", "log_ml_r")

COLUMNS = ["question", "target", "method", "run", "group", "split", "sigma [dex]", "bias [dex]",
           "N test", "data (this study)", "paper sigma [dex] (TNG100)",
           "paper bias [dex] (TNG100)", "sigma - paper [dex]", "bias - paper [dex]"]


# ------------------------------------------------------------------------------------- helpers

def tlabel(target: str) -> str:
    """A target column as the prose names it (TARGET_LABELS), else the column itself."""
    return TARGET_LABELS.get(target, target)


def inputs_label(inputs: list[str]) -> str:
    """A CNN's input branches in words, the two kinematic maps as one ('r image + maps')."""
    inputs = list(inputs or [])
    maps = "vel_map" in inputs and "sigma_map" in inputs
    names = [INPUT_LABELS.get(i, i) for i in inputs if not (maps and i in ("vel_map", "sigma_map"))]
    if "r image" in names and "g image" in names:
        names = [n for n in names if n not in ("r image", "g image")]
        names.insert(0, "g and r images")
    if maps:
        names.append("kinematic maps")
    return " + ".join(names) or "?"


def _load(store: ResultsStore, kind: str, name: str, profile: str) -> Run | None:
    return store.load(kind, name, profile) if store.exists(kind, name, profile) else None


def residuals(run: Run, target: str) -> pd.DataFrame | None:
    """galaxy_id, projection, galaxy_type and d = pred - true (dex) of one target, or None.

    Reads the store's true_X/pred_X columns; JAM rows whose fit failed are dropped.
    """
    p = run.predictions
    pairs = prediction_pairs(p)
    if target not in pairs:
        return None
    true, pred = pairs[target]
    if "status" in p:
        p = p[p["status"] == "ok"]
    out = pd.DataFrame({"galaxy_id": p["galaxy_id"].to_numpy(),
                        "projection": p["projection"].to_numpy() if "projection" in p else 0,
                        "galaxy_type": p["galaxy_type"].to_numpy() if "galaxy_type" in p else -1,
                        "d": p[pred].to_numpy(float) - p[true].to_numpy(float)})
    return out[np.isfinite(out.d)].reset_index(drop=True)


def run_stats(run: Run, target: str, group: str = "all") -> dict | None:
    """bias, sigma, n of a target (trained or derived) for 'all', 'early' or 'late'.

    metrics.json first; the predictions where metrics.json lacks the target (e.g. a JAM run).
    """
    for block in ("targets", "derived"):
        m = (run.metrics.get(block) or {}).get(target)
        if m and isinstance(m.get(group), dict) and m[group].get("sigma") is not None:
            return m[group]
    r = residuals(run, target)
    if r is None or r.empty:
        return None
    if group in ("early", "late"):
        r = r[r.galaxy_type == (1 if group == "early" else 0)]
    stats = log_ratio_stats(r.d.to_numpy(), np.zeros(len(r)))
    return stats if stats["n"] else None


def _split(run: Run) -> str:
    return str(run.metrics.get("split_by") or run.meta.get("split_by")
               or run.config.get("split", {}).get("by") or "?")


def _experiment(run: Run) -> dict:
    """The run's experiment spec: its stored config, else the YAML entry of its base name."""
    spec = run.config.get("experiment")
    if spec:
        return spec
    if run.kind in ("cnn", "gbdt"):
        from analysis_lib.models.experiments import load_experiments

        return load_experiments(run.kind).get(run.name.split("__")[0], {})
    return {}


def _paper_refs(run: Run) -> dict:
    if run.kind == "baseline":
        from analysis_lib.models.baselines import PAPER_REF as BASELINE_PAPER_REF

        refs = {}
        for t, m in (run.metrics.get("targets") or {}).items():
            p = m.get("paper") or {}
            if {"section", "inputs", "target"} <= set(p):
                refs[t] = {k: p[k] for k in ("section", "inputs", "target")}
            elif t in BASELINE_PAPER_REF:
                refs[t] = {k: BASELINE_PAPER_REF[t][k] for k in ("section", "inputs", "target")}
        return refs
    return _experiment(run).get("paper", {}) or {}


def paper_numbers(run: Run, key: str) -> tuple[float, float]:
    """(sigma, bias) of the paper's row for a run's target key (e.g. 'log_fdm_derived@early')."""
    ref = _paper_refs(run).get(key)
    method = paper_method(run.kind)
    if not ref or method is None:
        return np.nan, np.nan
    row = paper_row(ref["section"], method, ref["inputs"], ref["target"])
    if row is None:
        return np.nan, np.nan
    return tuple(np.nan if v is None else v for v in (row["sigma"], row["bias"]))


# ------------------------------------------------------------------------------ headline table

@dataclass
class _Item:
    run: Run
    target: str
    group: str
    question: str


def _cnn_question(run: Run, target: str, group: str) -> str:
    spec = _experiment(run)
    section = spec.get("section", "?")
    src = inputs_label(spec.get("inputs", []))
    targets = spec.get("targets", [target])
    if target == "log_fdm_derived":
        q = f"f_DM = 1 - M*/M_tot from predicted masses, {src}"
    else:
        others = [tlabel(t) for t in targets if t != target]
        joint = f" (joint with {', '.join(others)})" if others else ""
        q = f"{tlabel(target)}{joint} from {src}"
    if group != "all":
        q += f", {group} types"
    return f"{q} ({section})"


def _gbdt_question(run: Run, target: str) -> str:
    spec = _experiment(run)
    feats = spec.get("features") or run.metrics.get("features") or []
    without = " without M_r" if feats and "M_r" not in feats else ""
    split = _split(run)
    how = (", projection split (the paper's, leaky)" if split == "projection"
           else ", galaxy split")
    return f"{tlabel(target)} from Table-1 features{without}{how} ({spec.get('section', '?')})"


def _items(profile: str, store: ResultsStore, cnn: str | list[str]) -> list[_Item]:
    from analysis_lib.models.experiments import load_experiments, select_experiments

    items: list[_Item] = []
    for exp in select_experiments("cnn", cnn):
        run = _load(store, "cnn", exp["name"], profile)
        if run is None:
            continue
        keys = list(run.metrics.get("targets") or {}) + list(run.metrics.get("derived") or {})
        keys = [k for k in keys if not k.endswith("_vs_true_masses")]
        for t in keys:
            items.append(_Item(run, t, "all", _cnn_question(run, t, "all")))
            for ref in _paper_refs(run):
                if ref.startswith(f"{t}@"):
                    group = ref.split("@", 1)[1]
                    items.append(_Item(run, t, group, _cnn_question(run, t, group)))
    base = store.list_runs(kind="baseline", profile=profile)
    for name in base["name"]:
        run = store.load("baseline", name, profile)
        lum = run.metrics.get("luminosity", "luminosity")
        for t in run.metrics.get("targets") or {}:
            sec = _paper_refs(run).get(t, {}).get("section", "4.1")
            items.append(_Item(run, t, "all", f"{tlabel(t)} from a power law in {lum} ({sec})"))
    for name in load_experiments("gbdt"):
        for run_name in (name, f"{name}__by_projection"):
            run = _load(store, "gbdt", run_name, profile)
            if run is None:
                continue
            for t in run.metrics.get("targets") or {}:
                items.append(_Item(run, t, "all", _gbdt_question(run, t)))
    from analysis_lib.models.jam import RUN_KIND, RUN_NAME

    jam = _load(store, RUN_KIND, RUN_NAME, profile)
    if jam is not None:
        for t in JAM_TARGETS:
            if run_stats(jam, t) is not None:
                items.append(_Item(jam, t, "all", f"{tlabel(t)} from JAM (stars + NFW halo) on "
                                                  "r image + kinematic maps (this study)"))
    return items


def headline_table(profile: str, store: ResultsStore | None = None,
                   cnn: str | list[str] = "headline") -> pd.DataFrame:
    """This study's scatter and bias for the paper's headline claims, beside the paper's.

    One row per (question, target, group): the profile's stored CNN experiments of the `cnn`
    selection ('headline' by default; 'all' for every stored one), the power-law baselines,
    every stored LightGBM experiment (galaxy split, and the paper's projection split where
    stored), and JAM. Runs not in the store are skipped. The paper's numbers (IllustrisTNG100)
    come from book/reference/paper_results.csv; NaN where the paper gives none.
    """
    store = store or ResultsStore()
    rows = []
    for it in _items(profile, store, cnn):
        s = run_stats(it.run, it.target, it.group)
        if s is None:
            continue
        key = it.target if it.group == "all" else f"{it.target}@{it.group}"
        p_sigma, p_bias = paper_numbers(it.run, key)
        rows.append({
            "question": it.question, "target": it.target,
            "method": MODEL_KIND_LABELS.get(it.run.kind, it.run.kind), "run": it.run.name,
            "group": it.group, "split": _split(it.run) if it.run.kind != "jam" else "CNN test",
            "sigma [dex]": s["sigma"], "bias [dex]": s["bias"], "N test": int(s["n"]),
            "data (this study)": run_data_label(it.run),
            "paper sigma [dex] (TNG100)": p_sigma, "paper bias [dex] (TNG100)": p_bias,
            "sigma - paper [dex]": s["sigma"] - p_sigma, "bias - paper [dex]": s["bias"] - p_bias,
        })
    return pd.DataFrame(rows, columns=COLUMNS)


HEADLINE_SHOWN = ["question", "method", "sigma [dex]", "bias [dex]", "N test",
                  "paper sigma [dex] (TNG100)", "paper bias [dex] (TNG100)", "data (this study)"]


def headline_view(profile: str, store: ResultsStore | None = None,
                  cnn: str | list[str] = "headline"):
    """headline_table as the book shows it: one line per claim (the question names the run's
    inputs, target and split), numbers to 3 decimals, the data source in the caption."""
    from analysis_lib.presentation.sections import styled_table

    return styled_table(headline_table(profile, store, cnn)[HEADLINE_SHOWN])


# ------------------------------------------------------------------------------- comparisons

@dataclass
class Comparison:
    """Scatter of A and B (dex) and the difference A - B with a 95% interval."""

    sigma_a: float
    sigma_b: float
    bias_a: float
    bias_b: float
    n: int
    n_galaxies: int
    delta: float
    lo: float
    hi: float
    paired: bool

    @property
    def verdict(self) -> str:
        """'lower' (A has the smaller scatter), 'higher', or 'tie'."""
        if self.hi < 0 and self.delta < -TIE_DEX:
            return "lower"
        if self.lo > 0 and self.delta > TIE_DEX:
            return "higher"
        return "tie"

    def numbers(self, a: str, b: str) -> str:
        how = (f"95% bootstrap interval over galaxies {self.lo:+.3f} to {self.hi:+.3f}, "
               f"N = {self.n} samples of {self.n_galaxies} galaxies predicted by both"
               if self.paired else
               f"95% interval {self.lo:+.3f} to {self.hi:+.3f} from the standard error of a "
               f"scatter, each on its own test set, N = {self.n} samples of "
               f"{self.n_galaxies} galaxies in all")
        return (f"sigma = {self.sigma_a:.3f} dex ({a}) vs {self.sigma_b:.3f} dex ({b}), "
                f"bias {self.bias_a:+.3f} vs {self.bias_b:+.3f} dex; "
                f"difference {self.delta:+.3f} dex ({how})")


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _sig(d: np.ndarray) -> float:
    return float(np.std(d, ddof=1)) if len(d) > 1 else np.nan


def compare(run_a: Run, target_a: str, run_b: Run, target_b: str | None = None,
            paired: bool | None = None) -> Comparison | None:
    """Scatter of run A vs run B: on their common samples (paired bootstrap over galaxies) when
    they share at least MIN_PAIRED samples and `paired` is not False, else on their own test
    sets (standard error of a scatter, with the number of galaxies as N)."""
    ra, rb = residuals(run_a, target_a), residuals(run_b, target_b or target_a)
    if ra is None or rb is None or len(ra) < 2 or len(rb) < 2:
        return None
    keys = ["galaxy_id", "projection"]
    both = ra[keys + ["d"]].merge(rb[keys + ["d"]], on=keys, suffixes=("_a", "_b"))
    if paired is not False and len(both) >= MIN_PAIRED:
        da, db = both.d_a.to_numpy(), both.d_b.to_numpy()
        gal = both.galaxy_id.to_numpy()
        codes, inverse = np.unique(gal, return_inverse=True)
        cnt = np.bincount(inverse).astype(float)
        sums = [np.bincount(inverse, weights=w) for w in (da, da * da, db, db * db)]
        rng = np.random.default_rng(BOOT_SEED)
        w = rng.multinomial(len(codes), np.full(len(codes), 1.0 / len(codes)), size=N_BOOT)
        n = w @ cnt

        def boot_sigma(s1, s2):
            mean = (w @ s1) / n
            return np.sqrt(np.maximum((w @ s2) - n * mean ** 2, 0.0) / np.maximum(n - 1, 1))

        diff = boot_sigma(sums[0], sums[1]) - boot_sigma(sums[2], sums[3])
        lo, hi = np.percentile(diff, [2.5, 97.5])
        sa, sb = _sig(da), _sig(db)
        return Comparison(sa, sb, float(da.mean()), float(db.mean()), len(both), len(codes),
                          sa - sb, float(lo), float(hi), True)
    if paired:
        return None
    sa, sb = _sig(ra.d.to_numpy()), _sig(rb.d.to_numpy())
    ga, gb = ra.galaxy_id.nunique(), rb.galaxy_id.nunique()
    se = np.sqrt(sa ** 2 / (2 * max(ga - 1, 1)) + sb ** 2 / (2 * max(gb - 1, 1)))
    delta = sa - sb
    return Comparison(sa, sb, float(ra.d.mean()), float(rb.d.mean()), len(ra) + len(rb),
                      int(pd.concat([ra.galaxy_id, rb.galaxy_id]).nunique()), delta,
                      delta - 1.96 * se, delta + 1.96 * se, False)


def _data(*runs: Run) -> str:
    labels = list(dict.fromkeys(run_data_label(r) for r in runs))
    if len(labels) == 1:
        return f"On the {labels[0]}"
    return "On " + "; ".join(f"{r.name}: {run_data_label(r)}" for r in runs)


def _paper_pair(run_a: Run, key_a: str, run_b: Run, key_b: str, a: str = "",
                b: str = "") -> str:
    """'The paper (IllustrisTNG100) reports 0.04 dex (a) vs 0.06 dex (b).', or ''."""
    pa, pb = paper_numbers(run_a, key_a)[0], paper_numbers(run_b, key_b)[0]
    if np.isnan(pa) and np.isnan(pb):
        return ""
    fa = "no number" if np.isnan(pa) else f"{pa:.2f} dex"
    fb = "no number" if np.isnan(pb) else f"{pb:.2f} dex"
    la, lb = (f" ({a})" if a else ""), (f" ({b})" if b else "")
    return f" The paper (IllustrisTNG100) reports {fa}{la} vs {fb}{lb}."


@dataclass
class Fact:
    """One comparison behind a finding: what it is about, the claim its numbers chose, the
    numbers, and the paper's. str() is the full stand-alone sentence (findings()); the
    discussion's paragraphs (synthesis()) use the parts."""

    subject: str
    claim: str
    comparison: Comparison
    a: str
    b: str
    runs: tuple[Run, ...]
    paper: str = ""

    def __str__(self) -> str:
        c = self.comparison
        tie = (" (a tie: the difference is within the uncertainty or below "
               f"{TIE_DEX} dex)" if c.verdict == "tie" else "")
        return f"{_data(*self.runs)}, {self.claim}{tie}: {c.numbers(self.a, self.b)}.{self.paper}"

    def short(self) -> str:
        """The numbers in brief: both scatters, the difference and its 95% interval."""
        c = self.comparison
        return (f"\u03c3 {c.sigma_a:.3f} dex ({self.a}) vs {c.sigma_b:.3f} dex ({self.b}), "
                f"difference {c.delta:+.3f} [{c.lo:+.3f}, {c.hi:+.3f}] dex")

    def paper_clause(self) -> str:
        """'0.04 dex (a) vs 0.06 dex (b) for M*', or '' without a paper number."""
        prefix = " The paper (IllustrisTNG100) reports "
        if not self.paper.startswith(prefix):
            return ""
        return f"{self.paper[len(prefix):].rstrip('.')} for {self.subject}"


def _sentence(subject: str, c: Comparison, claims: dict[str, str], a: str, b: str,
              runs: tuple[Run, ...], paper: str = "") -> Fact:
    return Fact(subject, claims[c.verdict], c, a, b, tuple(runs), paper)


# ---------------------------------------------------------------------------------- findings

def _first(store: ResultsStore, kind: str, names: list[str], profile: str) -> Run | None:
    for n in names:
        run = _load(store, kind, n, profile)
        if run is not None:
            return run
    return None


R_IMAGE = ("image_r",)
R_IMAGE_MAPS = ("image_r", "vel_map", "sigma_map")


JOINT_TARGETS = ("log_mstar", "log_mtot")
DEFAULT_FEATURES = "default features"  # the paper's name (paper_results.csv) of Table 6's set
NO_MR_FEATURES = "default w/o M_r"


def _point_experiments(kind: str) -> dict[str, dict]:
    """The experiments of a kind that give point estimates (not tagged 'probabilistic')."""
    from analysis_lib.models.experiments import load_experiments

    return {name: spec for name, spec in load_experiments(kind).items()
            if "probabilistic" not in (spec.get("tags") or ())}


def cnn_experiments_with(inputs: Sequence[str], targets: str | Sequence[str]) -> list[str]:
    """Names of the CNN experiments that read exactly `inputs` and predict exactly `targets`.

    Why: a finding compares experiments by what they read, so it asks experiments_cnn.yaml
    for them instead of repeating their names. In the file's order (its first entry of a kind
    is the paper's full-resolution one).

    Parameters
    ----------
    inputs : sequence of str
        The network's branches (order ignored), e.g. ``R_IMAGE_MAPS``.
    targets : str or sequence of str
        One target, or the targets of a joint network in the file's order.

    Returns
    -------
    list of str
        Experiment names; empty when none matches.
    """
    wanted = [targets] if isinstance(targets, str) else list(targets)
    return [name for name, spec in _point_experiments("cnn").items()
            if set(spec.get("inputs", ())) == set(inputs)
            and list(spec.get("targets", ())) == wanted]


def cnn_candidates(target: str) -> list[str]:
    """The CNN experiments that predict `target`, the one a finding should quote first.

    Preference, read from experiments_cnn.yaml: experiments the default profile runs (tag
    'headline') before the others, single-target networks before joint ones, more inputs
    before fewer, then the file's order.
    """
    specs = _point_experiments("cnn")
    hits = [(i, n, s) for i, (n, s) in enumerate(specs.items()) if target in s.get("targets", ())]
    hits.sort(key=lambda h: ("headline" not in (h[2].get("tags") or ()),
                             len(h[2]["targets"]) > 1, -len(h[2].get("inputs", ())), h[0]))
    return [n for _, n, _ in hits]


def gbdt_experiment(target: str, features: str = DEFAULT_FEATURES) -> str | None:
    """The LightGBM experiment for `target` on a named feature set (the paper's `inputs`)."""
    for name, spec in _point_experiments("gbdt").items():
        ref = (spec.get("paper") or {}).get(target) or {}
        if list(spec.get("targets", ())) == [target] and ref.get("inputs") == features:
            return name
    return None


def _joint_cnn() -> str | None:
    """The joint r image + maps network of M* and M_tot (the paper's section 4.3)."""
    return next(iter(cnn_experiments_with(R_IMAGE_MAPS, JOINT_TARGETS)), None)


def _finding_maps(store, profile) -> list[str]:
    out = []
    for target in ("log_mstar", "log_mtot"):
        r_maps, r_only = (cnn_experiments_with(R_IMAGE_MAPS, target),
                          cnn_experiments_with(R_IMAGE, target))
        if not r_maps or not r_only:
            continue
        a = _load(store, "cnn", r_maps[0], profile)
        b = _load(store, "cnn", r_only[0], profile)
        c = compare(a, target, b) if a and b else None
        if c is None:
            continue
        t = tlabel(target)
        claims = {"lower": f"adding the kinematic maps to the r image improves the CNN's {t}",
                  "tie": f"adding the kinematic maps to the r image does not measurably change "
                         f"the CNN's {t}",
                  "higher": f"adding the kinematic maps to the r image does not improve the "
                            f"CNN's {t}; the r image alone scatters less"}
        out.append(_sentence(t, c, claims, "r image + maps", "r image", (a, b),
                             _paper_pair(a, target, b, target, "r image + maps", "r image")))
    return out


def _finding_resolution(store, profile) -> list[str]:
    """The r-image M* model at its finest against its coarsest stored resolution."""
    runs = [r for n in cnn_experiments_with(R_IMAGE, "log_mstar")
            if (r := _load(store, "cnn", n, profile)) is not None
            and r.meta.get("resolution_used")]
    if len(runs) < 2:
        return []
    fine = max(runs, key=lambda r: r.meta["resolution_used"])
    coarse = min(runs, key=lambda r: r.meta["resolution_used"])
    px_f, px_c = fine.meta["resolution_used"], coarse.meta["resolution_used"]
    if px_f == px_c:
        return []
    c = compare(coarse, "log_mstar", fine)
    if c is None:
        return []
    a, b = f"r image at {px_c} px", f"r image at {px_f} px"
    claims = {"lower": f"coarser pixels ({px_c} instead of {px_f} per side) lower the CNN's M* "
                       "scatter",
              "tie": f"coarser pixels ({px_c} instead of {px_f} per side) do not measurably "
                     "change the CNN's M* scatter",
              "higher": f"coarser pixels ({px_c} instead of {px_f} per side) raise the CNN's "
                        "M* scatter"}
    return [_sentence("M*", c, claims, a, b, (coarse, fine),
                      _paper_pair(coarse, "log_mstar", fine, "log_mstar",
                                  f"r image at {_experiment(coarse).get('resolution')} px",
                                  f"r image at {_experiment(fine).get('resolution')} px"))]


def _finding_baseline(store, profile) -> list[str]:
    base = store.list_runs(kind="baseline", profile=profile)
    cnn = _first(store, "cnn", cnn_candidates("log_mstar"), profile)
    out = []
    for name in base["name"]:
        b = store.load("baseline", name, profile)
        c = compare(cnn, "log_mstar", b) if cnn else None
        if c is None:
            continue
        lum = b.metrics.get("luminosity", "luminosity")
        claims = {"lower": f"the CNN ({cnn.name}) beats the power law in {lum} for M*",
                  "tie": f"the CNN ({cnn.name}) does no better than the power law in {lum} "
                         "for M*",
                  "higher": f"the CNN ({cnn.name}) does worse than the power law in {lum} "
                            "for M*"}
        out.append(_sentence("M*", c, claims, "CNN", "power law", (cnn, b),
                             _paper_pair(cnn, "log_mstar", b, "log_mstar", "CNN", "power law")))
    return out


def _finding_cnn_vs_gbdt(store, profile) -> list[str]:
    out = []
    for target in ("log_mstar", "log_mtot", "log_ml_r"):
        gb_name = gbdt_experiment(target)
        a = _first(store, "cnn", cnn_candidates(target), profile)
        b = _load(store, "gbdt", gb_name, profile) if gb_name else None
        c = compare(a, target, b) if a and b else None
        if c is None:
            continue
        t = tlabel(target)
        claims = {"lower": f"the CNN ({a.name}) predicts {t} with less scatter than LightGBM "
                           f"on the Table-1 features ({b.name})",
                  "tie": f"the CNN ({a.name}) and LightGBM ({b.name}) predict {t} equally well",
                  "higher": f"LightGBM on the Table-1 features ({b.name}) predicts {t} with "
                            f"less scatter than the CNN ({a.name})"}
        out.append(_sentence(t, c, claims, "CNN", "LightGBM", (a, b),
                             _paper_pair(a, target, b, target, "CNN", "LightGBM")))
    return out


def _finding_leakage(store, profile) -> list[str]:
    out = []
    for name in filter(None, map(gbdt_experiment,
                                 ("log_mstar", "log_mtot", "log_mdm", "log_fdm"))):
        g = _load(store, "gbdt", name, profile)
        p = _load(store, "gbdt", f"{name}__by_projection", profile)
        target = (g.metrics.get("target") or next(iter(g.metrics.get("targets") or {}), None)
                  if g else None)
        c = compare(g, target, p, paired=False) if g and p and target else None
        if c is None:
            continue
        t = tlabel(target)
        shared = p.metrics.get("test_galaxies_also_in_train")
        n_gal = p.metrics.get("n_galaxies_test")
        share = (f", with {shared} of its {n_gal} test galaxies having another projection in "
                 "the training set" if shared is not None and n_gal else "")
        pct = 100 * (c.sigma_a - c.sigma_b) / c.sigma_a if c.sigma_a else np.nan
        claims = {"higher": f"the paper's projection-level split flatters LightGBM's {t} "
                            f"scatter by {c.delta:.3f} dex ({pct:.0f}% of the galaxy-split "
                            f"value){share}",
                  "tie": f"the paper's projection-level split does not measurably flatter "
                         f"LightGBM's {t} scatter{share}",
                  "lower": f"the projection-level split gives LightGBM a larger {t} scatter "
                           f"than the galaxy split, so no leakage benefit shows{share}"}
        out.append(_sentence(t, c, claims, "galaxy split", "projection split", (g, p)))
    return out


def _finding_no_mr(store, profile) -> list[str]:
    out = []
    for target in ("log_mstar", "log_mtot", "log_mdm"):
        names = gbdt_experiment(target, NO_MR_FEATURES), gbdt_experiment(target)
        a, b = (_load(store, "gbdt", n, profile) if n else None for n in names)
        c = compare(a, target, b) if a and b else None
        if c is None:
            continue
        t = tlabel(target)
        claims = {"higher": f"dropping the r magnitude M_r raises LightGBM's {t} scatter",
                  "tie": f"dropping the r magnitude M_r does not measurably change LightGBM's "
                         f"{t} scatter",
                  "lower": f"dropping the r magnitude M_r lowers LightGBM's {t} scatter"}
        out.append(_sentence(t, c, claims, "without M_r", "with M_r", (a, b),
                             _paper_pair(a, target, b, target, "without M_r", "with M_r")))
    return out


def _finding_joint(store, profile) -> list[str]:
    joint = _joint_cnn()
    j = _load(store, "cnn", joint, profile) if joint else None
    out = []
    for target in JOINT_TARGETS:
        single = cnn_experiments_with(R_IMAGE_MAPS, target)
        s = _load(store, "cnn", single[0], profile) if single else None
        c = compare(j, target, s) if j and s else None
        if c is None:
            continue
        t = tlabel(target)
        claims = {"lower": f"predicting M* and M_tot with one network improves {t} over the "
                           "single-target CNN",
                  "tie": f"predicting M* and M_tot with one network gives the same {t} "
                         "scatter as the single-target CNN",
                  "higher": f"predicting M* and M_tot with one network costs {t} accuracy "
                            "against the single-target CNN"}
        out.append(_sentence(t, c, claims, "joint", "single", (j, s),
                             _paper_pair(j, target, s, target, "joint", "single")))
    return out


def _finding_jam(store, profile) -> list[str]:
    from analysis_lib.models.jam import RUN_KIND, RUN_NAME

    jam = _load(store, RUN_KIND, RUN_NAME, profile)
    if jam is None:
        return []
    out = []
    n_ok, n_all = jam.metrics.get("n_ok"), jam.metrics.get("n_samples")
    fits = f" ({n_ok} of {n_all} JAM fits converged)" if n_ok is not None and n_all else ""
    for target in ("log_mstar", "log_mtot", "log_fdm", "log_ml_r"):
        candidates = [("cnn", cnn_candidates(target)),
                      ("gbdt", [n for n in (gbdt_experiment(target),) if n])]
        for kind, names in candidates:
            other = _first(store, kind, names, profile)
            c = compare(jam, target, other, paired=True) if other else None
            if c is None:
                continue
            t, m = tlabel(target), f"{MODEL_KIND_LABELS[kind]} ({other.name})"
            claims = {"lower": f"JAM recovers {t} with less scatter than the {m} on the same "
                               f"galaxies{fits}",
                      "tie": f"JAM and the {m} recover {t} equally well on the same "
                             f"galaxies{fits}",
                      "higher": f"JAM recovers {t} with more scatter than the {m} on the same "
                                f"galaxies{fits}"}
            out.append(_sentence(t, c, claims, "JAM", MODEL_KIND_LABELS[kind], (jam, other)))
    return out


def _finding_fdm(store, profile) -> list[str]:
    joint, direct = _joint_cnn(), gbdt_experiment("log_fdm")
    j = _load(store, "cnn", joint, profile) if joint else None
    d = _load(store, "gbdt", direct, profile) if direct else None
    c = compare(j, "log_fdm_derived", d, "log_fdm") if j and d else None
    if c is None:
        return []
    undefined = j.metrics.get("log_fdm_derived_n_undefined")
    undef = (f" ({undefined} samples have no derived f_DM because the predicted M* is not below "
             "the predicted M_tot)" if undefined else "")
    claims = {"lower": "f_DM derived from the CNN's predicted M*/M_tot is closer to the truth "
                       f"than LightGBM's direct f_DM prediction{undef}",
              "tie": "f_DM derived from the CNN's predicted M*/M_tot and LightGBM's direct "
                     f"f_DM prediction scatter equally{undef}",
              "higher": "LightGBM's direct f_DM prediction scatters less than f_DM derived from "
                        f"the CNN's predicted M*/M_tot{undef}"}
    return [_sentence("f_DM", c, claims, "derived (CNN)", "direct (LightGBM)", (j, d),
                      _paper_pair(j, "log_fdm_derived", d, "log_fdm", "derived (CNN)",
                                  "direct (LightGBM)"))]


def top_features(run: Run) -> dict[str, str]:
    """The feature ranked first by each importance measure of a stored LightGBM run."""
    path = run.path / "extra" / "importance.csv"
    if path.exists():
        table = pd.read_csv(path)
        out = {}
        for col in [c for c in table.columns if c.startswith("rank_")]:
            out[col[5:]] = str(table.loc[table[col].idxmin(), "feature"])
        if out:
            return out
    return dict((run.metrics.get("importance") or {}).get("top_feature") or {})


def _finding_importance(store, profile) -> list[str]:
    out = []
    for name in filter(None, map(gbdt_experiment, JOINT_TARGETS)):
        run = _load(store, "gbdt", name, profile)
        tops = top_features(run) if run else {}
        if not tops:
            continue
        target = tlabel(run.metrics.get("target", name.split("_")[0]))
        firsts = set(tops.values())
        if len(firsts) == 1:
            rank = f"all {len(tops)} importance measures ({', '.join(tops)}) rank " \
                   f"{next(iter(firsts))} first"
        else:
            rank = "the importance measures disagree on the first feature: " + ", ".join(
                f"{f} by {m}" for m, f in tops.items())
        paper = ("; the paper (IllustrisTNG100) finds the r luminosity (M_r) dominant for all "
                 "masses, which this run " + ("matches" if "M_r" in firsts and len(firsts) == 1
                                              else "matches for some measures only"
                                              if "M_r" in firsts else "does not match"))
        out.append(f"{_data(run)}, for {target} (LightGBM, {run.name}) {rank}{paper}.")
    return out


def _finding_paper(profile, store) -> list[str]:
    table = headline_table(profile, store)
    t = table[table["paper sigma [dex] (TNG100)"].notna()]
    if t.empty:
        return []
    diff = t["sigma - paper [dex]"]
    close = int((diff.abs() <= PAPER_TOL_DEX).sum())
    above = int((diff > PAPER_TOL_DEX).sum())
    below = int((diff < -PAPER_TOL_DEX).sum())
    labels = "; ".join(sorted(set(t["data (this study)"])))
    tng = all("TNG" in lab for lab in set(t["data (this study)"]))
    caveat = "" if tng else " (a different data set, so agreement is not expected to be exact)"
    return [f"On the {labels}, of the {len(t)} rows with a number from the paper "
            f"(IllustrisTNG100){caveat}, {close} match the paper's scatter within "
            f"{PAPER_TOL_DEX} dex, {above} scatter more and {below} less; the median difference "
            f"is {diff.median():+.3f} dex (range {diff.min():+.3f} to {diff.max():+.3f})."]


def findings(profile: str, store: ResultsStore | None = None) -> list[str]:
    """Markdown sentences for the discussion, each chosen by and quoting the stored numbers."""
    store = store or ResultsStore()
    out: list[str] = []
    for part in (_finding_maps, _finding_resolution, _finding_baseline, _finding_joint,
                 _finding_cnn_vs_gbdt, _finding_leakage, _finding_no_mr, _finding_jam,
                 _finding_fdm, _finding_importance):
        out += [str(f) for f in part(store, profile)]
    out += _finding_paper(profile, store)
    return out


# ------------------------------------------------------------------------------- limitations

def limitations(profile: str, store: ResultsStore | None = None) -> list[str]:
    """Caveats that follow from how this profile's runs were made."""
    store = store or ResultsStore()
    listed = store.list_runs(profile=profile)
    if listed.empty:
        return [f"No runs are stored for profile '{profile}'."]
    runs = [store.load(r.kind, r["name"], profile) for _, r in listed.iterrows()]
    out = []
    labels = sorted({run_data_label(r) for r in runs})
    sources = {r.config.get("data", {}).get("source", r.meta.get("source")) for r in runs}
    if sources != {"tng"}:
        out.append(f"The numbers come from the {' and the '.join(labels)}, not from "
                   "IllustrisTNG100: the paper's values are shown for comparison only, and "
                   "agreement or disagreement with them says how the methods behave on these "
                   "data, not whether the paper's numbers are reproduced.")
    if len(labels) > 1:
        out.append(f"The store mixes data sets ({'; '.join(labels)}); compare rows only within "
                   "one data set.")
    cnn = [r for r in runs if r.kind == "cnn"]
    if cnn:
        epochs = [int(r.config.get("cnn", {}).get("epochs", r.meta.get("epochs", 0)) or 0)
                  for r in cnn]
        best = [r.metrics.get("best_epoch") for r in cnn]
        at_end = sum(1 for b, e in zip(best, epochs, strict=True) if b is not None and b >= e)
        span = _span(epochs)
        if max(epochs) < PAPER_EPOCHS:
            still = (f"; in {at_end} of {len(cnn)} runs the best validation loss came at the "
                     "last epoch, so those networks were probably still improving"
                     if at_end else "")
            out.append(f"The CNNs trained for {span} epochs, against the paper's "
                       f"{PAPER_EPOCHS}{still}.")
        used = [r.meta.get("resolution_used") for r in cnn if r.meta.get("resolution_used")]
        small = [u for u in used if u < PAPER_RESOLUTION]
        if small:
            out.append(f"{len(small)} of {len(cnn)} CNN runs saw images of {_span(small)} px "
                       f"instead of the paper's {PAPER_RESOLUTION} px.")
        ns = [run_stats(r, t)["n"] for r in cnn for t in (r.metrics.get("targets") or {})
              if run_stats(r, t)]
        gal = [residuals(r, t).galaxy_id.nunique() for r in cnn
               for t in list(r.metrics.get("targets") or {})[:1] if residuals(r, t) is not None]
        sig = [run_stats(r, t)["sigma"] for r in cnn for t in (r.metrics.get("targets") or {})
               if run_stats(r, t)]
        if ns and gal:
            se = np.median(sig) / np.sqrt(2 * max(min(gal) - 1, 1))
            out.append(f"The CNN test sets hold {_span(ns)} samples of {_span(gal)} "
                       f"galaxies; projections of one galaxy are not independent, so "
                       f"a scatter of {np.median(sig):.3f} dex is uncertain by about "
                       f"±{se:.3f} dex (1 sigma), and smaller differences are not findings.")
    gbdt = [r for r in runs if r.kind == "gbdt" and r.metrics.get("split_by") == "galaxy"]
    if gbdt:
        excl = [(r.metrics.get("exclusions") or {}).get("rows_excluded", 0) for r in gbdt]
        n_gal = [r.metrics["n_galaxies_test"] for r in gbdt if r.metrics.get("n_galaxies_test")]
        gal_txt = f" of {_span(n_gal)} galaxies" if n_gal else ""
        n_test = [r.metrics.get("n_test", 0) for r in gbdt]
        out.append(f"LightGBM is tested on {_span(n_test)} samples{gal_txt}; up to "
                   f"{max(excl)} samples per run were excluded by the paper's feature cuts.")
    splits = {_split(r) for r in runs if r.kind in ("cnn", "gbdt")
              and not r.name.endswith("__by_projection")}
    if "galaxy" in splits:
        out.append("Our train/test split keeps all projections of a galaxy on one side; the "
                   "paper split projections, which lets a test galaxy's other projections into "
                   "training, so our scatters are not comparable one to one with the paper's "
                   "(see the leakage comparison).")
    from analysis_lib.models.jam import RUN_KIND, RUN_NAME

    jam = next((r for r in runs if r.kind == RUN_KIND and r.name == RUN_NAME), None)
    if jam is not None:
        n_ok, n_all = jam.metrics.get("n_ok"), jam.metrics.get("n_samples")
        r = residuals(jam, "log_mstar")
        n_gal = r.galaxy_id.nunique() if r is not None else None
        out.append(f"JAM was fitted to {n_all} samples ({n_gal} galaxies) of the CNN's test set, "
                   f"{n_ok} successfully; method comparisons with JAM rest on those only.")
        if not (jam.metrics.get("targets") or {}):
            out.append("The stored JAM run has no metrics in metrics.json; its numbers here are "
                       "computed from its predictions.")
    return out


def evidence_markdown(profile: str, store: ResultsStore | None = None) -> str:
    """Every comparison as its own full sentence (findings) and the limitations, as a markdown
    bullet list: the evidence behind the discussion's paragraphs (see markdown)."""
    store = store or ResultsStore()
    parts = ["**Findings**", ""] + [f"- {s}" for s in findings(profile, store)]
    parts += ["", "**Limitations**", ""] + [f"- {s}" for s in limitations(profile, store)]
    return "\n".join(parts)


# --------------------------------------------------------------------------------- synthesis
# The discussion proper: one paragraph per theme, its sentences built from the same Facts as
# findings(), grouped so that each comparison adds a clause rather than a templated sentence.

THEMES = (("cnn", "The CNN against the paper"), ("maps", "What the kinematic maps add"),
          ("leakage", "How much the paper's split flatters"),
          ("lightgbm", "What drives LightGBM"),
          ("classical", "Classical estimators: power law and JAM"),
          ("data", "Mock universe or TNG100"))
_CONNECT = {"same": ("Likewise, ", "Similarly, ", "Again, "),
            "differ": ("By contrast, ", "On the other hand, ", "Yet "),
            "tie": ("Meanwhile, ", "At the same time, ", "Still, ")}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _groups(facts: Sequence[Fact]) -> list[list[Fact]]:
    """Consecutive facts with the same verdict and the same first-named side (e.g. 'r image +
    maps' for M* and for M_tot): one sentence tells them together."""
    out: list[list[Fact]] = []
    for f in facts:
        if out and out[-1][0].comparison.verdict == f.comparison.verdict \
                and out[-1][0].a == f.a:
            out[-1].append(f)
        else:
            out.append([f])
    return out


def _clauses(facts: Sequence[Fact]) -> list[str]:
    """One sentence per group of like facts, chained with connectives chosen by how its verdict
    relates to the previous one (so a paragraph reads as an argument, not a list); the numbers
    in brackets, the other facts of a group as 'the same holds for ...'."""
    out = []
    prev = None
    used = {k: 0 for k in _CONNECT}
    for group in _groups(facts):
        f = group[0]
        verdict = f.comparison.verdict
        if prev is None:
            lead = ""
        else:
            key = "tie" if verdict == "tie" else ("same" if verdict == prev else "differ")
            lead = _CONNECT[key][used[key] % len(_CONNECT[key])]
            used[key] += 1
        claim = f.claim if lead else _cap(f.claim)
        sentence = f"{lead}{claim} ({f.short()})"
        if len(group) > 1:
            others = [(g.subject if g.b == f.b else f"{g.subject} against the {g.b}",
                       g.short()) for g in group[1:]]
            sentence += "; the same holds for " + "; and for ".join(
                f"{name} ({nums})" for name, nums in others)
        out.append(sentence + ".")
        prev = verdict
    return out


def _paper_sentence(facts: Sequence[Fact]) -> str:
    parts = [c for f in facts if (c := f.paper_clause())]
    if not parts:
        return ""
    joined = parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + "; and " + parts[-1]
    return f"For comparison, the paper (IllustrisTNG100) reports {joined}."


def _data_lead(facts: Sequence[Fact]) -> str:
    labels = list(dict.fromkeys(run_data_label(r) for f in facts for r in f.runs))
    return (f"On the {labels[0]}: " if len(labels) == 1
            else "On " + " and ".join(f"the {x}" for x in labels) + ": ")


def _verdict_summary(facts: Sequence[Fact], better: str | None, worse: str | None) -> str:
    """'In short, ...' from the count of verdicts, or '' for one fact."""
    if len(facts) < 2 or better is None:
        return ""
    n = len(facts)
    lower = sum(f.comparison.verdict == "lower" for f in facts)
    higher = sum(f.comparison.verdict == "higher" for f in facts)
    if lower == n:
        return f"In {'both' if n == 2 else f'every one of these {n}'} comparisons {better}."
    if higher == n:
        return f"In {'both' if n == 2 else f'all {n}'} comparisons {worse}."
    if lower == higher == 0:
        return ("Neither difference is" if n == 2 else f"None of the {n} differences is") \
            + " larger than its uncertainty."
    return (f"The picture is mixed: {lower} of {n} comparisons favour the first, {higher} the "
            f"second, {n - lower - higher} are ties.")


def _cnn_paragraph(store: ResultsStore, profile: str) -> str:
    table = headline_table(profile, store)
    t = table[(table.method == "CNN") & table["paper sigma [dex] (TNG100)"].notna()]
    facts = _finding_joint(store, profile) + _finding_resolution(store, profile)
    if t.empty and not facts:
        return ""
    parts = []
    if not t.empty:
        diff = t["sigma - paper [dex]"]
        close = int((diff.abs() <= PAPER_TOL_DEX).sum())
        above = int((diff > PAPER_TOL_DEX).sum())
        best, worst = t.loc[diff.abs().idxmin()], t.loc[diff.idxmax()]
        labels = "; ".join(sorted(set(t["data (this study)"])))
        if close == len(t):
            verdict = f"all {len(t)} of its scatters lie within {PAPER_TOL_DEX} dex of the paper's"
        elif above == len(t):
            verdict = f"each of its {len(t)} scatters is larger"
        else:
            verdict = (f"{close} of its {len(t)} scatters lie within {PAPER_TOL_DEX} dex of the "
                       f"paper's and {above} are larger")
        how = ("reaches the paper's precision" if close == len(t) else
               "is less precise than in the paper" if above == len(t) else
               "matches the paper only in part")
        parts.append(f"On the {labels}, the CNN trained here {how}: {verdict} (median "
                     f"difference {diff.median():+.3f} dex).")
        if len(t) > 1:
            parts.append(f"It comes closest for {best['question']} ({best['sigma [dex]']:.3f} "
                         f"against {best['paper sigma [dex] (TNG100)']:.2f} dex) and falls "
                         f"furthest behind for {worst['question']} "
                         f"({worst['sigma [dex]']:.3f} against "
                         f"{worst['paper sigma [dex] (TNG100)']:.2f} dex).")
    if facts:
        parts.append("Some of the paper's design choices can be checked directly.")
        parts += _clauses(facts)
        parts.append(_paper_sentence(facts))
    return " ".join(p for p in parts if p)


def _facts_paragraph(facts: Sequence[Fact], intro: str, better: str | None,
                     worse: str | None) -> str:
    if not facts:
        return ""
    parts = [_data_lead(facts) + intro, *_clauses(facts), _verdict_summary(facts, better, worse),
             _paper_sentence(facts)]
    return " ".join(p for p in parts if p)


def _leakage_paragraph(store: ResultsStore, profile: str) -> str:
    facts = _finding_leakage(store, profile)
    if not facts:
        return ""
    text = _facts_paragraph(
        facts, "the paper split the projections of a galaxy between training and test sets, "
               "so a test galaxy can be seen in training from another side. Retraining "
               "LightGBM on the paper's split measures what this is worth.",
        "the projection split scatters more, so no leak benefit shows",
        "the galaxy split gives the larger scatter: the leak flatters the paper's numbers")
    gain = [f.comparison.delta for f in facts if f.comparison.verdict == "higher"]
    if gain:
        text += (f" On these data, then, a projection split makes LightGBM look up to "
                 f"{max(gain):.3f} dex better than it is on galaxies never seen in training, "
                 "and the paper's LightGBM numbers may be optimistic in the same way.")
    return text


def _importance_text(store: ResultsStore, profile: str) -> str:
    """Which feature each importance measure ranks first, per LightGBM run, and how that sits
    with the paper's finding that M_r dominates (one sentence for the paper, not one per run)."""
    clauses, agree, partly, disagree = [], [], [], []
    for name in filter(None, map(gbdt_experiment, JOINT_TARGETS)):
        run = _load(store, "gbdt", name, profile)
        tops = top_features(run) if run else {}
        if not tops:
            continue
        target = tlabel(run.metrics.get("target", name.split("_")[0]))
        firsts = set(tops.values())
        if len(firsts) == 1:
            clauses.append(f"for {target} all {len(tops)} importance measures "
                           f"({', '.join(tops)}) put {next(iter(firsts))} first")
        else:
            clauses.append(f"for {target} the measures disagree on the first feature ("
                           + ", ".join(f"{f} by {m}" for m, f in tops.items()) + ")")
        (agree if firsts == {"M_r"} else partly if "M_r" in firsts else disagree).append(target)
    if not clauses:
        return ""
    text = _cap("; ".join(clauses)) + "."
    verdicts = [f"{' and '.join(ts)} {how}" for ts, how in
                ((agree, "under every measure"), (partly, "under some measures only"),
                 (disagree, "under none"))
                if ts]
    return (f"{text} The paper (IllustrisTNG100) finds the r luminosity M_r dominant for all "
            f"masses; here that holds for {'; for '.join(verdicts)}.")


def _lightgbm_paragraph(store: ResultsStore, profile: str) -> str:
    ranks = _importance_text(store, profile)
    facts = _finding_no_mr(store, profile) + _finding_cnn_vs_gbdt(store, profile)
    if not ranks and not facts:
        return ""
    parts = []
    if ranks:
        parts.append(_data_lead(facts) + ranks[:1].lower() + ranks[1:] if facts else ranks)
    if facts:
        parts.append("Whether the features carry what the images carry shows when they are "
                     "taken away or set against the CNN.")
        parts += _clauses(facts)
        parts.append(_paper_sentence(facts))
    return " ".join(p for p in parts if p)


def _drop_data_lead(sentence: str, store: ResultsStore, profile: str) -> str:
    """A findings() sentence without its 'On the <data label>, ' opening (the paragraph names
    the data once)."""
    listed = store.list_runs(profile=profile)
    labels = {run_data_label(store.load(r.kind, r["name"], profile)) for _, r in listed.iterrows()}
    for label in sorted(labels, key=len, reverse=True):
        lead = f"On the {label}, "
        if sentence.startswith(lead):
            return sentence[len(lead):]
    return sentence


def _data_paragraph(store: ResultsStore, profile: str) -> str:
    listed = store.list_runs(profile=profile)
    if listed.empty:
        return ""
    runs = [store.load(r.kind, r["name"], profile) for _, r in listed.iterrows()]
    labels = sorted({run_data_label(r) for r in runs})
    sources = {r.config.get("data", {}).get("source", r.meta.get("source")) for r in runs}
    overall = _finding_paper(profile, store)
    if sources == {"tng"}:
        text = (f"These numbers come from the {' and the '.join(labels)}, the paper's own "
                "simulation, so they can be set against the paper's one to one (up to the "
                "train/test split and training length).")
    else:
        text = (f"Every number above comes from the {' and the '.join(labels)}, not from "
                "IllustrisTNG100. Where the mock and the paper agree, the method behaves as the "
                "paper says on galaxies built by this library's physics; where they differ, the "
                "difference may lie in the galaxies rather than the method, so no paper number "
                "is confirmed or refuted here.")
    if overall:
        text += " Taken together, " + _drop_data_lead(overall[0], store, profile)
    return text


def synthesis(profile: str, store: ResultsStore | None = None) -> list[tuple[str, str]]:
    """The discussion as (theme title, paragraph) pairs, each paragraph written from the stored
    numbers; themes without runs in the store are left out."""
    store = store or ResultsStore()
    paragraphs = {
        "cnn": _cnn_paragraph(store, profile),
        "maps": _facts_paragraph(
            _finding_maps(store, profile),
            "the paper's central claim is that kinematic maps beside the r image help.",
            "the maps help", "the r image alone does better"),
        "leakage": _leakage_paragraph(store, profile),
        "lightgbm": _lightgbm_paragraph(store, profile),
        "classical": _facts_paragraph(
            _finding_baseline(store, profile) + _finding_jam(store, profile)
            + _finding_fdm(store, profile),
            "the machine-learning numbers mean most beside simpler estimators on the same "
            "galaxies.", None, None),
        "data": _data_paragraph(store, profile),
    }
    return [(title, paragraphs[key]) for key, title in THEMES if paragraphs[key]]


def markdown(profile: str, store: ResultsStore | None = None) -> str:
    """synthesis() and limitations() as markdown: a short paragraph per theme, then caveats."""
    store = store or ResultsStore()
    parts = []
    for title, text in synthesis(profile, store):
        parts += [f"**{title}.** {text}", ""]
    if not parts:
        return f"No runs are stored for profile '{profile}'."
    parts.append("Differences are the first-named scatter minus the second in dex, with a 95% "
                 "bootstrap interval over galaxies where both predicted the same samples "
                 "(otherwise from the standard error of a scatter); a difference counts only if "
                 f"its interval excludes zero and it exceeds {TIE_DEX} dex.")
    lims = limitations(profile, store)
    if lims:
        parts += ["", "**Limitations.** " + " ".join(lims)]
    return "\n".join(parts)


def summary_figure(profile: str, store: ResultsStore | None = None):
    """Every method's bias and scatter (all galaxies) beside the paper's: plots.method_summary
    of headline_table."""
    from analysis_lib.presentation.plots import method_summary

    table = headline_table(profile, store or ResultsStore())
    return method_summary(table[table.group == "all"])
