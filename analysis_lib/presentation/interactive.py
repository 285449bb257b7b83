"""Explorers: one data payload per explorer, shown as a static plotly figure or a live widget.

Why: readers open the Jupyter Book as static HTML (from disk, maybe offline) where no kernel
runs, while people working in JupyterLab want live controls. Each explorer here is built once as
a JSON-ready *payload* (numbers, labels, PNGs of the galaxy panels) and shown two ways:

- static: a plotly figure whose dropdown or slider switches between pre-computed views
  (plotly's own `updatemenus` / `sliders`: no hand-written JavaScript). plotly.js is bundled
  inline into the first explorer of a page (a kernel session renders one notebook, i.e. one
  book page), so the page works offline and downloads nothing;
- live: the ipywidgets explorer in analysis_lib.presentation.widgets, built from the same
  payload.

`Explorer._repr_mimebundle_` offers both: JupyterLab shows the live widget (its widget manager
ranks the widget view first), the book shows the static HTML (_config.yml ranks the widget view
last, and the saved widget state is dropped by analysis_lib.presentation.publish).

Three explorers:

- `galaxy_browser`: one test sample at a time: r image, g-r colour, mean-velocity and
  dispersion maps (one pre-rendered PNG per sample), truth vs prediction of every run for
  that sample;
- `experiment_explorer`: pick a run and a target: predicted-vs-true scatter by galaxy type,
  the paper's scatter as a band, bias / scatter (dex) beside the paper's;
- `importance_explorer`: per LightGBM run (one target each) and method: gain, permutation and
  SHAP importances as bars, from the run's extra/importance.csv.

The HTML around a figure (a caption under it, a standalone test page) is in package-data
templates under analysis_lib/presentation/templates/.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
import math
import string
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.dataset import GalaxyDataset
from analysis_lib.io import atomic_write_text, tqdm_options
from analysis_lib.metrics import target_metrics
from analysis_lib.paper import paper_method
from analysis_lib.presentation.report import PROJECTION_NAMES, sample_label
from analysis_lib.results import Run, prediction_pairs

IMPORTANCE_METHODS = ("gain", "permutation", "shap")
IMPORTANCE_FILE = "importance.csv"  # written by analysis_lib.models.gbdt.save_fit into extra/
AGREEMENT_FILE = "importance_agreement.json"
DEFAULT_MAX_SAMPLES = 60
DEFAULT_IMAGE_PX = 64
PNG_DPI = 60
PNG_COLOURS = 128  # palette PNG: ~3.5x smaller than RGB; fewer colours band the colour maps
PAGE_BUDGET_BYTES = 3_000_000  # per explorer, plotly.js not counted: the galaxy browser drops
#                                samples to stay below it, the others warn above it
PAGE_OVERHEAD_BYTES = 20_000  # figure layout, controls and caption of one explorer, with margin
PLOTLY_TEMPLATE = "plotly_white"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
MAX_SLIDER_LABELS = 12  # more slider steps than this: no label under each step
SUMMARY_WRAP = 90  # characters per line of a note inside a figure (plotly does not wrap)
TYPE_STYLE = ((0, "late type", "#1f77b4"), (1, "early type", "#d62728"),
              (-1, "type unknown", "#7f7f7f"))

_counter = itertools.count()


# --------------------------------------------------------------------------- run helpers


def run_label(run: Run) -> str:
    """'gbdt/mstar_default' (kind/name): unique within one profile of the results store."""
    return f"{run.kind}/{run.name}"


def target_stats(run: Run, target: str) -> dict:
    """Bias and scatter (dex) of pred - true for all, early and late types, recomputed from the
    run's predictions with metrics.target_metrics (the function every model uses for
    metrics.json), so the numbers describe exactly the points the explorer plots."""
    pairs = prediction_pairs(run.predictions)
    if target not in pairs:
        raise KeyError(f"run {run_label(run)}: no true/pred columns for target '{target}' "
                       f"(has {', '.join(pairs) or 'none'})")
    t, p = pairs[target]
    pred = run.predictions
    types = (pred["galaxy_type"].to_numpy() if "galaxy_type" in pred
             else np.full(len(pred), -1))
    return target_metrics(pred[p].to_numpy(float), pred[t].to_numpy(float), types)


def _finite_or_none(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def paper_reference(run: Run, target: str) -> dict | None:
    """The paper's bias and scatter (dex, TNG100) for this run and target, or None.

    Looked up, in order: metrics['targets'][target]['paper'] (report.paper_row's dict); the
    experiment's 'paper' mapping in the run config (CNN: target -> section/inputs/target row of
    paper_results.csv); the experiment's 'paper_inputs' + 'section' (GBDT, one target per run).
    """
    stored = (run.metrics.get("targets", {}).get(target) or {}).get("paper")
    if isinstance(stored, dict) and ("bias" in stored or "sigma" in stored):
        return {"bias": _finite_or_none(stored.get("bias")),
                "sigma": _finite_or_none(stored.get("sigma")),
                "where": f"section {stored.get('section', '?')}, {stored.get('inputs', '?')}"}
    exp = run.config.get("experiment") or {}
    method = paper_method(run.kind)
    if method is None:
        return None
    key = None
    mapping = exp.get("paper")
    if isinstance(mapping, dict) and isinstance(mapping.get(target), dict):
        m = mapping[target]
        key = (m.get("section", exp.get("section")), m.get("inputs"), m.get("target", target))
    elif exp.get("paper_inputs") and exp.get("target", target) == target:
        key = (exp.get("section"), exp["paper_inputs"], target)
    if key is None or key[0] is None or key[1] is None:
        return None
    from analysis_lib.paper import paper_row

    row = paper_row(str(key[0]), method, str(key[1]), str(key[2]))
    if row is None:
        return None
    return {"bias": row["bias"], "sigma": row["sigma"],
            "where": f"section {row['section']}, {row['inputs']}"}


def data_source(run: Run) -> str:
    """Where the run's data came from (never let mock numbers pass as TNG numbers)."""
    from analysis_lib.presentation.report import run_data_label

    return run_data_label(run)


def load_importances(run: Run) -> pd.DataFrame | None:
    """The run's feature-importance table (extra/importance.csv), or None if it has none.

    Columns used: feature, gain (fraction), permutation (test-MSE increase, dex^2),
    permutation_std, permutation_frac (fraction), shap (fraction of ``mean |SHAP|``).
    """
    path = Path(run.path) / "extra" / IMPORTANCE_FILE
    if not path.exists():
        return None
    table = pd.read_csv(path)
    need = {"feature", *IMPORTANCE_METHODS}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"{path}: importance table lacks column(s) {', '.join(sorted(missing))}")
    if "permutation_frac" not in table:
        perm = table["permutation"].clip(lower=0)
        table["permutation_frac"] = perm / perm.sum() if perm.sum() > 0 else perm
    return table


def importance_summary(run: Run) -> str:
    """The one-sentence agreement of the three rankings, if the run stored it."""
    path = Path(run.path) / "extra" / AGREEMENT_FILE
    if path.exists():
        return str(json.loads(path.read_text()).get("summary", ""))
    return str((run.metrics.get("importance") or {}).get("summary", ""))


def run_target(run: Run) -> str:
    """The single target of a one-target run (GBDT), else the first predicted target."""
    if run.metrics.get("target"):
        return str(run.metrics["target"])
    pairs = prediction_pairs(run.predictions)
    return next(iter(pairs), "?")


# --------------------------------------------------------------------------- galaxy samples


def browser_samples(table: pd.DataFrame, runs: Sequence[Run], n_samples: int | None,
                    where: str = "dataset") -> pd.DataFrame:
    """Dataset rows to browse: test samples of the runs, evenly spaced in (galaxy, projection).

    Prefers samples every run predicted (the intersection of their test sets); if the runs share
    none, takes the union. With no runs, any dataset row. Deterministic (no random draw).
    Returns the dataset table rows with a 'row' column (index into the dataset file).
    """
    keyed = table[["galaxy_id", "projection"]].astype(int)
    for r in runs:
        missing = {"galaxy_id", "projection"} - set(r.predictions.columns)
        if missing:
            raise ValueError(f"run {run_label(r)}: predictions.csv lacks "
                             f"{', '.join(sorted(missing))}, so its samples cannot be matched")
    if runs:
        sets = [set(zip(r.predictions["galaxy_id"].astype(int),
                        r.predictions["projection"].astype(int), strict=True)) for r in runs]
        wanted = set.intersection(*sets) or set.union(*sets)
        keys = list(zip(keyed["galaxy_id"], keyed["projection"], strict=True))
        sel = np.array([k in wanted for k in keys], dtype=bool)
    else:
        sel = np.ones(len(table), dtype=bool)
    chosen = table.loc[sel].assign(row=np.flatnonzero(sel))
    if chosen.empty:
        raise ValueError(f"{where}: none of the runs' test samples "
                         f"({', '.join(run_label(r) for r in runs)}) is in this dataset")
    chosen = chosen.sort_values(["galaxy_id", "projection"]).reset_index(drop=True)
    if n_samples is not None and len(chosen) > n_samples:
        idx = np.unique(np.linspace(0, len(chosen) - 1, max(int(n_samples), 1)).round()
                        .astype(int))
        chosen = chosen.iloc[idx].reset_index(drop=True)
    return chosen


def browser_title(sample: pd.Series) -> str:
    """The galaxy browser's title of one sample: its label (report.sample_label), inclination."""
    return (f"{sample_label(sample)}, "
            f"inclination {float(sample.get('inclination_deg', float('nan'))):.0f} deg")


def sample_predictions(runs: Sequence[Run], galaxy_id: int, projection: int,
                       targets: Sequence[str] | None = None) -> list[dict]:
    """Truth and prediction (log10) of every run and target for one sample; runs that did not
    predict it are left out."""
    out = []
    for run in runs:
        p = run.predictions
        hit = p[(p["galaxy_id"].astype(int) == int(galaxy_id))
                & (p["projection"].astype(int) == int(projection))]
        if hit.empty:
            continue
        for target, (t, q) in prediction_pairs(p).items():
            if targets is not None and target not in targets:
                continue
            true, pred = float(hit[t].iloc[0]), float(hit[q].iloc[0])
            out.append({"model": run_label(run), "target": target, "true": true, "pred": pred,
                        "diff": pred - true})
    return out


def rebin_matrix(n: int, m: int) -> np.ndarray:
    """(m, n) overlap fractions of n input pixels on m output pixels over the same field."""
    edges_in = np.arange(n + 1) / n
    edges_out = np.arange(m + 1) / m
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(hi - lo, 0.0, None) * n


def rebin_sum(arr: np.ndarray, m: int) -> np.ndarray:
    """Flux-conserving re-binning of a square image to m x m pixels (any n, same field)."""
    r = rebin_matrix(arr.shape[0], m)
    return r @ np.asarray(arr, dtype=float) @ r.T


def rebin_map(values: np.ndarray, mask: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the valid pixels in each output pixel, and the output mask (valid if at least
    half of its area was valid). Display only: averaging dispersions ignores the spread of
    mean velocities inside the coarser pixel."""
    w = rebin_sum(mask.astype(float), m)
    s = rebin_sum(np.where(mask, values, 0.0), m)
    full = (values.shape[0] / m) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / w
    return mean, w >= 0.5 * full


def image_size_for(sizes: Sequence[int], image_px: int) -> int:
    """The largest kept image size not above image_px, else the smallest (re-binned later)."""
    small = [s for s in sizes if s <= image_px]
    return max(small) if small else min(sizes)


def sample_images(dataset: GalaxyDataset, rows: Sequence[int], image_px: int
                  ) -> list[dict[str, np.ndarray]]:
    """Inputs of the given dataset rows, images and maps re-binned to at most image_px."""
    n = image_size_for(dataset.image_sizes, image_px)
    names = [f"image_r_{n}", f"image_g_{n}", "vel_map", "sigma_map", "map_mask"]
    arrs = dataset.load_inputs(names, np.asarray(rows, dtype=int))
    out = []
    for i in range(len(rows)):
        one = {k: np.asarray(v[i]) for k, v in arrs.items()}
        side = one[f"image_r_{n}"].shape[0]
        if side > image_px:
            m = image_px
            one = {**one, f"image_r_{n}": rebin_sum(one[f"image_r_{n}"], m),
                   f"image_g_{n}": rebin_sum(one[f"image_g_{n}"], m)}
        if one["vel_map"].shape[0] > image_px:
            mask = one["map_mask"].astype(bool)
            vel, vmask = rebin_map(one["vel_map"], mask, image_px)
            sig, _ = rebin_map(one["sigma_map"], mask, image_px)
            one.update(vel_map=vel, sigma_map=sig, map_mask=vmask)
        out.append(one)
    return out


def dataset_fov_rhalf(dataset: GalaxyDataset) -> float:
    """Half-width of the field in R_half: from the dataset's config, else the project default."""
    fov = (dataset.config.get("observe") or {}).get("fov_rhalf")
    if fov is not None:
        return float(fov)
    from analysis_lib.config import default_setting

    return float(default_setting("observe.fov_rhalf"))


# --------------------------------------------------------------------------- figures


def figure_png(fig, dpi: int = PNG_DPI, colours: int = PNG_COLOURS) -> bytes:
    """A matplotlib figure as a small palette PNG (closes the figure)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(out, format="PNG",
                                                                       optimize=True)
    return out.getvalue()


def render_sample_png(images: dict[str, np.ndarray], title: str, fov_rhalf: float,
                      dpi: int = PNG_DPI, solar_g_r: float | None = None) -> bytes:
    """The four panels of one sample (plots.galaxy_panels, labelled colour bars) as PNG."""
    from analysis_lib.presentation.plots import galaxy_panels

    return figure_png(galaxy_panels(images, fov_rhalf=fov_rhalf, title=title,
                                    solar_g_r=solar_g_r), dpi=dpi)


def b64(data: bytes) -> str:
    """Bytes (a PNG) as base64 text, for a data URI inside a JSON payload."""
    return base64.b64encode(data).decode("ascii")


def fit_budget(sizes: Sequence[int], budget: int) -> np.ndarray:
    """Indices of the largest evenly spaced subset of items whose sizes sum to <= budget
    (the first item is always kept)."""
    sizes = np.asarray(sizes, dtype=int)
    for m in range(len(sizes), 0, -1):
        idx = np.unique(np.linspace(0, len(sizes) - 1, m).round().astype(int))
        if sizes[idx].sum() <= budget or m == 1:
            return idx
    return np.arange(0)




def _nan_to_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)


def fmt(v: float | None, digits: int, sign: bool = False) -> str:
    """A number for a table cell: fixed digits, optional sign, an em dash for missing."""
    if v is None or not math.isfinite(float(v)):
        return "\u2014"
    return f"{float(v):+.{digits}f}" if sign else f"{float(v):.{digits}f}"


# --------------------------------------------------------------------------- payloads


def galaxy_browser_payload(dataset: GalaxyDataset, runs: Sequence[Run], *,
                           n_samples: int = DEFAULT_MAX_SAMPLES,
                           image_px: int = DEFAULT_IMAGE_PX, targets: Sequence[str] | None = None,
                           dpi: int = PNG_DPI, max_bytes: int = PAGE_BUDGET_BYTES,
                           progress: bool = True) -> dict:
    """The galaxy browser's data: one PNG of the four panels and one truth/prediction table per
    sample (rows: model, target, true, predicted, difference; log10 values).

    If the samples' PNGs would make the explorer larger than max_bytes, an evenly spaced subset
    that fits is kept (with a warning); noisy images compress less well than smooth ones.
    """
    from tqdm.auto import tqdm

    samples = browser_samples(dataset.table, runs, n_samples, where=str(dataset.path))
    fov = dataset_fov_rhalf(dataset)
    images = sample_images(dataset, samples["row"].to_numpy(), image_px)
    out = []
    for (_, s), imgs in tqdm(list(zip(samples.iterrows(), images, strict=True)),
                             desc="galaxy browser panels", unit="sample", **tqdm_options(progress)):
        title = browser_title(s)
        rows = sample_predictions(runs, int(s["galaxy_id"]), int(s["projection"]), targets)
        proj = PROJECTION_NAMES.get(int(s["projection"]), str(s["projection"]))
        out.append({
            "label": f"{int(s['galaxy_id'])} ({proj})", "title": title,
            "galaxy_id": int(s["galaxy_id"]), "projection": int(s["projection"]),
            "png": b64(render_sample_png(imgs, title, fov, dpi=dpi,
                                         solar_g_r=dataset.solar_g_r)),
            "rows": [[r["model"], r["target"], _nan_to_none(r["true"]), _nan_to_none(r["pred"]),
                      _nan_to_none(r["diff"])] for r in rows]})
    sizes = [len(json.dumps(s)) for s in out]
    keep = fit_budget(sizes, max_bytes - PAGE_OVERHEAD_BYTES - len(out[0]["png"]))
    if len(keep) < len(out):
        warnings.warn(f"galaxy browser: {len(out)} samples would take "
                      f"{sum(sizes) / 1e6:.1f} MB; keeping {len(keep)} evenly spaced ones to "
                      f"stay under {max_bytes / 1e6:.1f} MB", stacklevel=2)
        out = [out[i] for i in keep]
    source = str(dataset.attrs.get("source", "?"))
    profile = str(dataset.attrs.get("profile", "?"))
    note = (f"{len(out)} test samples of {source} data ({profile} profile), evenly spaced in "
            f"galaxy id; images re-binned to at most {image_px} px. Values are the log10 "
            "targets (masses in solar masses); pred \u2212 true in dex.")
    return {"kind": "galaxy-browser", "samples": out, "source": source, "profile": profile,
            "note": note}


def experiment_payload(runs: Sequence[Run], targets: Sequence[str] | None = None,
                       progress: bool = True) -> dict:
    """Per run and target: the test-set points (true, predicted, type, sample), this study's
    bias/scatter for all, early and late types, and the paper's numbers (or None)."""
    from tqdm.auto import tqdm

    from analysis_lib.presentation.plots import text_label

    out = []
    for run in tqdm(list(runs), desc="experiment explorer", unit="run", **tqdm_options(progress)):
        entries = []
        pred = run.predictions
        for target, (t, p) in prediction_pairs(pred).items():
            if targets is not None and target not in targets:
                continue
            true_v, pred_v = pred[t].to_numpy(float), pred[p].to_numpy(float)
            ok = np.isfinite(true_v) & np.isfinite(pred_v)
            types = (pred["galaxy_type"].to_numpy(int) if "galaxy_type" in pred
                     else np.full(len(pred), -1))
            ids = (pred["galaxy_id"].to_numpy(int) if "galaxy_id" in pred
                   else np.arange(len(pred)))
            proj = (pred["projection"].to_numpy(int) if "projection" in pred
                    else np.full(len(pred), -1))
            stats = target_stats(run, target)
            entries.append({
                "target": target, "axis": text_label(target),
                "true": np.round(true_v[ok], 4).tolist(), "pred": np.round(pred_v[ok], 4).tolist(),
                "type": types[ok].tolist(), "galaxy_id": ids[ok].tolist(),
                "projection": proj[ok].tolist(),
                "stats": {g: {"n": int(s["n"]), "bias": _nan_to_none(s["bias"]),
                              "sigma": _nan_to_none(s["sigma"])} for g, s in stats.items()},
                "paper": paper_reference(run, target)})
        if entries:
            out.append({"label": run_label(run), "source": data_source(run),
                        "targets": entries})
    if not out:
        raise ValueError("experiment explorer: none of the runs has true/pred columns"
                         + (f" for {', '.join(targets)}" if targets else ""))
    note = ("bias = mean, \u03c3 = standard deviation of log10(predicted/true) on the test set; "
            "the grey band is \u00b1 the paper's \u03c3 (TNG100) around the one-to-one line.")
    return {"kind": "experiment-explorer", "runs": out, "note": note}


IMPORTANCE_METHOD_LABELS = {
    "gain": "gain (training-set split gain)",
    "permutation": "permutation (test-MSE increase when shuffled)",
    "shap": "SHAP (mean |SHAP| on the test set)",
}


def importance_payload(runs: Sequence[Run]) -> dict:
    """Per run with an importance table: the three importances as fractions summing to 1."""
    out = []
    for run in runs:
        table = load_importances(run)
        if table is None:
            continue
        out.append({
            "label": run_label(run), "target": run_target(run),
            "features": [str(f) for f in table["feature"]],
            "gain": [_nan_to_none(v) for v in table["gain"]],
            "permutation": [_nan_to_none(v) for v in table["permutation_frac"]],
            "permutation_raw": [_nan_to_none(v) for v in table["permutation"]],
            "permutation_std": [_nan_to_none(v) for v in table.get(
                "permutation_std", pd.Series(np.nan, index=table.index))],
            "shap": [_nan_to_none(v) for v in table["shap"]],
            "summary": importance_summary(run)})
    if not out:
        names = ", ".join(run_label(r) for r in runs) or "no runs given"
        raise ValueError(f"importance explorer: no run has extra/{IMPORTANCE_FILE} ({names})")
    note = ("Gain is measured on the training set, permutation and SHAP on the test set; each "
            "is normalised to sum to 1 over the features.")
    return {"kind": "importance-explorer", "runs": out, "methods": list(IMPORTANCE_METHODS),
            "method_labels": IMPORTANCE_METHOD_LABELS, "note": note}


# --------------------------------------------------------------------------- plotly figures
# Each figure function draws every view of a payload (the static explorer: one view visible,
# a dropdown or slider switches) or only the views named in `only` (the live widget).


@dataclass
class _View:
    """One selectable view: its label, its traces and the layout changes that go with it."""

    label: str
    traces: list
    layout: dict


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]):
    import plotly.graph_objects as go

    columns = [[str(r[i]) for r in rows] for i in range(len(header))]
    return go.Table(header={"values": list(header), "align": "left",
                            "fill": {"color": "#eeeeee"}},
                    cells={"values": columns, "align": "left", "height": 24})


def stats_rows(entry: dict) -> list[list[str]]:
    """Rows of the numbers table of one run/target: this study by type, then the paper."""
    rows = [[g, str(s["n"]), fmt(s["bias"], 3, True), fmt(s["sigma"], 3)]
            for g, s in entry["stats"].items()]
    paper = entry.get("paper") or {}
    rows.append(["paper, all", "\u2014", fmt(paper.get("bias"), 2, True),
                 fmt(paper.get("sigma"), 2)])
    return rows


STATS_HEADER = ("test set", "N", "bias [dex]", "\u03c3 [dex]")


def _experiment_view(run: dict, entry: dict) -> _View:
    import plotly.graph_objects as go

    true, pred = np.asarray(entry["true"], float), np.asarray(entry["pred"], float)
    types = np.asarray(entry["type"], int)
    traces = []
    for code, name, colour in TYPE_STYLE:
        sel = types == code
        if not sel.any():
            continue
        text = [f"galaxy {g} ({PROJECTION_NAMES.get(p, '?')})" for g, p in
                zip(np.asarray(entry["galaxy_id"])[sel], np.asarray(entry["projection"])[sel],
                    strict=True)]
        traces.append(go.Scatter(
            x=true[sel], y=pred[sel], mode="markers", name=name, text=text,
            marker={"color": colour, "size": 6, "opacity": 0.6},
            hovertemplate="%{text}<br>true %{x:.3f}<br>predicted %{y:.3f}<extra></extra>"))
    lo = float(min(true.min(), pred.min())) if len(true) else 0.0
    hi = float(max(true.max(), pred.max())) if len(true) else 1.0
    sigma = (entry.get("paper") or {}).get("sigma")
    if sigma is not None:
        traces.append(go.Scatter(
            x=[lo, hi, hi, lo, lo], y=[lo - sigma, hi - sigma, hi + sigma, lo + sigma,
                                       lo - sigma],
            fill="toself", mode="lines", line={"width": 0}, fillcolor="rgba(0,0,0,0.12)",
            name=f"paper \u00b1\u03c3 ({sigma:.2f} dex)", hoverinfo="skip"))
    traces.append(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="one-to-one",
                             line={"color": "black", "dash": "dash", "width": 1},
                             hoverinfo="skip"))
    traces.append(_table(STATS_HEADER, stats_rows(entry)))
    where = (entry.get("paper") or {}).get("where", "no paper number for this experiment")
    title = (f"{run['label']}: {entry['target']}<br><sup>data: {run['source']}; paper "
             f"(TNG100): {where}</sup>")
    return _View(label=f"{run['label']} \u00b7 {entry['target']}", traces=traces, layout={
        "title.text": title, "xaxis.title.text": "true " + entry["axis"],
        "yaxis.title.text": "predicted " + entry["axis"], "xaxis.autorange": True,
        "yaxis.autorange": True})


def experiment_figure(payload: dict, only: tuple[int, int] | None = None):
    """Predicted vs true with the paper's band, and the numbers table, per run and target.

    only=(run index, target index) draws that view alone (the live widget's figure)."""
    from plotly.subplots import make_subplots

    pairs = [(i, j) for i, r in enumerate(payload["runs"]) for j in range(len(r["targets"]))]
    if only is not None:
        pairs = [tuple(only)]
    views = [_experiment_view(payload["runs"][i], payload["runs"][i]["targets"][j])
             for i, j in pairs]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        specs=[[{"type": "xy"}, {"type": "table"}]])
    positions = [[(1, 2) if t.type == "table" else (1, 1) for t in v.traces] for v in views]
    fig = _add_views(fig, views, positions, "dropdown", "experiment \u00b7 target:")
    fig.update_layout(template=PLOTLY_TEMPLATE, height=520, margin={"t": 110, "l": 70},
                      legend={"x": 0.0, "y": -0.18, "orientation": "h"},
                      title={"font": {"size": 13}, "y": 0.96, "yanchor": "top"}, font={"size": 13})
    return fig


def _add_views(fig, views: Sequence[_View], positions, control: str, prefix: str):
    """_selector_figure for figures whose traces sit in subplots (positions per view)."""
    owner = []
    for k, (view, pos) in enumerate(zip(views, positions, strict=True)):
        for trace, (row, col) in zip(view.traces, pos, strict=True):
            trace.visible = k == 0
            fig.add_trace(trace, row=row, col=col)
            owner.append(k)
    return _controls(fig, views, owner, control, prefix)


def _controls(fig, views: Sequence[_View], owner: Sequence[int], control: str, prefix: str):
    """Apply the first view's layout and add the plotly control that switches views."""
    fig.update_layout(views[0].layout)
    if len(views) < 2:
        return fig
    steps = [{"label": v.label, "method": "update",
              "args": [{"visible": [o == k for o in owner]}, v.layout]}
             for k, v in enumerate(views)]
    if control == "slider":
        crowded = len(steps) > MAX_SLIDER_LABELS  # then only the current value is labelled
        fig.update_layout(sliders=[{"active": 0, "steps": steps, "pad": {"t": 10},
                                    "currentvalue": {"prefix": prefix},
                                    "font": {"color": "rgba(0,0,0,0)" if crowded else "#444"}}])
    else:
        fig.update_layout(updatemenus=[{"buttons": steps, "active": 0, "direction": "down",
                                        "x": 0.0, "xanchor": "left", "y": 1.02,
                                        "yanchor": "bottom", "showactive": True}])
    return fig


def _importance_view(run: dict, method: str) -> _View:
    import plotly.graph_objects as go

    vals = np.array([np.nan if v is None else v for v in run[method]], float)
    order = np.argsort(np.nan_to_num(vals, nan=-np.inf))  # ascending: the largest on top
    feats = [run["features"][i] for i in order]
    if method == "permutation":
        text = [f"{fmt(run['permutation_raw'][i], 4)} \u00b1 {fmt(run['permutation_std'][i], 4)}"
                " dex\u00b2" for i in order]
    else:
        text = [fmt(vals[i], 3) for i in order]
    bar = go.Bar(x=vals[order], y=feats, orientation="h", name=method, text=text,
                 textposition="outside", cliponaxis=False, marker={"color": "#4c72b0"},
                 hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    title = f"{run['label']} ({run['target']}): {IMPORTANCE_METHOD_LABELS[method]}"
    summary = "<br>".join(textwrap.wrap(run["summary"], SUMMARY_WRAP)) or " "
    return _View(label=f"{run['label']} \u00b7 {method}", traces=[bar], layout={
        "title.text": title, "yaxis.categoryarray": feats, "annotations[0].text": summary})


def importance_figure(payload: dict, only: tuple[int, str] | None = None):
    """Horizontal importance bars (fraction of the total), per run and method.

    only=(run index, method) draws that view alone (the live widget's figure)."""
    import plotly.graph_objects as go

    pairs = [(i, m) for i in range(len(payload["runs"])) for m in payload["methods"]]
    if only is not None:
        pairs = [tuple(only)]
    views = [_importance_view(payload["runs"][i], m) for i, m in pairs]
    n_feat = max(len(r["features"]) for r in payload["runs"])
    fig = go.Figure()
    fig.add_annotation(text=" ", x=0, y=0, yshift=-62, xref="paper", yref="paper",
                       showarrow=False, xanchor="left", yanchor="top", align="left",
                       font={"size": 12})
    owner = []
    for k, view in enumerate(views):
        for trace in view.traces:
            trace.visible = k == 0
            fig.add_trace(trace)
            owner.append(k)
    fig = _controls(fig, views, owner, "dropdown", "run \u00b7 method:")
    n_lines = max(len(textwrap.wrap(r["summary"], SUMMARY_WRAP)) for r in payload["runs"])
    fig.update_layout(template=PLOTLY_TEMPLATE, height=200 + 26 * n_feat + 18 * n_lines,
                      font={"size": 13}, showlegend=False,
                      margin={"t": 100, "l": 150, "r": 60, "b": 80 + 18 * n_lines},
                      xaxis={"title": {"text": "importance (fraction of the total)"},
                             "rangemode": "tozero"},
                      yaxis={"categoryorder": "array"},
                      title={"font": {"size": 13}, "y": 0.99, "yanchor": "top"})
    return fig


def _browser_view(sample: dict) -> _View:
    import plotly.graph_objects as go

    image = go.Image(source="data:image/png;base64," + sample["png"], hoverinfo="skip")
    rows = [[r[0], r[1], fmt(r[2], 3), fmt(r[3], 3), fmt(r[4], 3, True)]
            for r in sample["rows"]]
    table = _table(("model", "target", "true", "predicted", "pred \u2212 true [dex]"), rows)
    return _View(label=sample["label"], traces=[image, table],
                 layout={"title.text": sample["title"]})


def galaxy_browser_figure(payload: dict, only: int | None = None):
    """The four panels of a test sample and every run's truth vs prediction, one sample at a
    time (a slider in the static view).

    only=i draws sample i alone (the live widget shows its own image and table instead)."""
    from plotly.subplots import make_subplots

    samples = payload["samples"] if only is None else [payload["samples"][only]]
    views = [_browser_view(s) for s in samples]
    n_rows = max(len(s["rows"]) for s in samples)
    table_px, image_px = 40 + 26 * max(n_rows, 1), 460
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.02,
                        row_heights=[image_px / (image_px + table_px),
                                     table_px / (image_px + table_px)],
                        specs=[[{"type": "xy"}], [{"type": "table"}]])
    fig = _add_views(fig, views, [[(1, 1), (2, 1)]] * len(views), "slider", "galaxy (projection): ")
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, row=1, col=1)
    fig.update_layout(template=PLOTLY_TEMPLATE, height=image_px + table_px + 150,
                      margin={"t": 50, "l": 10, "r": 10, "b": 10}, font={"size": 13},
                      title={"font": {"size": 13}})
    return fig


FIGURES: dict[str, Callable] = {"galaxy-browser": galaxy_browser_figure,
                                "experiment-explorer": experiment_figure,
                                "importance-explorer": importance_figure}


# --------------------------------------------------------------------------- HTML and display


def template(name: str) -> string.Template:
    """A package-data template (analysis_lib/presentation/templates/<name>) as a string.Template."""
    return string.Template(resources.files("analysis_lib.presentation").joinpath("templates", name)
                           .read_text(encoding="utf-8"))


class _Page:
    """Whether plotly.js has already been put on the current page.

    A kernel renders one notebook, i.e. one book page: the first explorer it shows carries
    plotly.js inline, later ones reuse it. new_page() starts over (for standalone pages)."""

    has_plotlyjs = False


def new_page() -> None:
    """Forget that plotly.js was sent: the next explorer HTML bundles it again."""
    _Page.has_plotlyjs = False


def _take_plotlyjs(include: bool | None) -> bool:
    if include is None:
        include = not _Page.has_plotlyjs
    _Page.has_plotlyjs = _Page.has_plotlyjs or include
    return include


def _uid(kind: str, payload: dict) -> str:
    """Unique per output (counter) yet reproducible for the same notebook run (no clock)."""
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"ie-{kind}-{digest[:8]}-{next(_counter)}"


def explorer_html(payload: dict, include_plotlyjs: bool | None = None) -> str:
    """The static explorer: the plotly figure of the payload and its caption, as HTML.

    include_plotlyjs: True bundles plotly.js inline, False relies on one already on the page,
    None (default) bundles it only into the first explorer of this page (see new_page)."""
    import plotly.io as pio

    kind = payload["kind"]
    fig = FIGURES[kind](payload)
    uid = _uid(kind, payload)
    included = _take_plotlyjs(include_plotlyjs)
    div = pio.to_html(fig, full_html=False, include_plotlyjs=included,
                      div_id=uid, config=PLOTLY_CONFIG, default_width="100%",
                      default_height=f"{int(fig.layout.height or 500)}px")
    text = template("explorer.html").substitute(uid=uid, kind=kind, figure=div,
                                                note=html.escape(payload.get("note", "")))
    size = len(text.encode()) - (len(_plotlyjs().encode()) if included else 0)
    if size > PAGE_BUDGET_BYTES:
        warnings.warn(f"{kind} explorer is {size / 1e6:.1f} MB (budget "
                      f"{PAGE_BUDGET_BYTES / 1e6:.0f} MB): embed fewer samples or runs",
                      stacklevel=2)
    return text


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _in_kernel() -> bool:
    """True inside an IPython kernel (where a front end may host live widgets)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


@dataclass
class Explorer:
    """An explorer's payload with its two views: `to_html()` (static) and `widget()` (live).

    As a cell's result it offers both (see the module docstring): the front end picks."""

    payload: dict

    @property
    def kind(self) -> str:
        """'galaxy-browser', 'experiment-explorer' or 'importance-explorer'."""
        return self.payload["kind"]

    def figure(self):
        """The static view as a plotly Figure (every view, one visible, a control to switch)."""
        return FIGURES[self.kind](self.payload)

    def to_html(self, include_plotlyjs: bool | None = None) -> str:
        """The static view as HTML (see explorer_html for include_plotlyjs)."""
        return explorer_html(self.payload, include_plotlyjs)

    def widget(self):
        """The live ipywidgets view of the same payload (analysis_lib.presentation.widgets)."""
        from analysis_lib.presentation import widgets

        return widgets.from_payload(self.payload)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """Static HTML always; the live widget view too inside a kernel (the front end picks:
        JupyterLab the widget, the book the HTML, see _config.yml)."""
        bundle = {"text/html": self.to_html()}
        if _in_kernel():
            bundle.update(self.widget()._repr_mimebundle_())
        bundle["text/plain"] = f"<{self.kind}: {_describe(self.payload)}>"
        return bundle


def _describe(payload: dict) -> str:
    if payload["kind"] == "galaxy-browser":
        return f"{len(payload['samples'])} samples"
    return ", ".join(r["label"] for r in payload["runs"])


def galaxy_browser(dataset: GalaxyDataset, runs: Sequence[Run] = (), **kwargs) -> Explorer:
    """Browse test samples: panels and every run's prediction (kwargs: galaxy_browser_payload)."""
    return Explorer(galaxy_browser_payload(dataset, runs, **kwargs))


def experiment_explorer(runs: Sequence[Run], **kwargs) -> Explorer:
    """Predicted vs true and the numbers beside the paper's (kwargs: experiment_payload)."""
    return Explorer(experiment_payload(runs, **kwargs))


def importance_explorer(runs: Sequence[Run]) -> Explorer:
    """Feature importances of the LightGBM runs (the runs without a table are skipped)."""
    return Explorer(importance_payload(runs))


def galaxy_browser_html(dataset: GalaxyDataset, runs: Sequence[Run] = (), *,
                        include_plotlyjs: bool | None = None, **kwargs) -> str:
    """The static galaxy browser as HTML (kwargs: galaxy_browser_payload)."""
    return explorer_html(galaxy_browser_payload(dataset, runs, **kwargs), include_plotlyjs)


def experiment_explorer_html(runs: Sequence[Run], *, include_plotlyjs: bool | None = None,
                             **kwargs) -> str:
    """The static experiment explorer as HTML (kwargs: experiment_payload)."""
    return explorer_html(experiment_payload(runs, **kwargs), include_plotlyjs)


def importance_explorer_html(runs: Sequence[Run], *, include_plotlyjs: bool | None = None
                             ) -> str:
    """The static importance explorer as HTML."""
    return explorer_html(importance_payload(runs), include_plotlyjs)


def write_page(path: str | Path, blocks: Sequence[str], title: str = "Explorers") -> Path:
    """A standalone HTML page holding explorer blocks, plotly.js inline in its head (make the
    blocks with include_plotlyjs=False); for sharing, and for browser tests."""
    path = Path(path)
    doc = template("page.html").substitute(title=html.escape(title), plotlyjs=_plotlyjs(),
                                           body="\n".join(blocks))
    atomic_write_text(path, doc)
    return path
