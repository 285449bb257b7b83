"""Self-contained HTML/JS explorers that work in JupyterLab and in the static book, offline.

Why: readers open the Jupyter Book as static HTML (from disk or a plain web server, maybe with
no internet) where no kernel runs, so ipywidgets cannot work there. Each explorer here is one
HTML block (vanilla JavaScript, data embedded as JSON, figures as base64 PNGs; no external
script, font, stylesheet or CDN) shown with IPython.display.HTML. myst-nb copies such
`text/html` outputs, <script> included, into the book page, and JupyterLab runs the script in
trusted notebooks (a freshly executed one is). Without JavaScript the first view still shows.

Three explorers:
  galaxy_browser_html      one test sample at a time: r image, g-r colour, mean-velocity and
                           dispersion maps (one pre-rendered PNG per sample), truth vs prediction
                           of every run for that sample;
  experiment_explorer_html pick a run (experiment) and a target: predicted-vs-true scatter and
                           bias / scatter (dex, all / early / late types) beside the paper's;
  importance_explorer_html per LightGBM run (one target each): gain, permutation and SHAP
                           importances as bars, from the run's extra/importance.csv.

The data helpers (prediction_pairs, target_stats, paper_reference, load_importances,
browser_samples, sample_images, render_sample_png, scatter_png) are shared with the live
ipywidgets versions in analysis_lib.widgets. matplotlib is imported inside functions.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis_lib.dataset import GalaxyDataset
from analysis_lib.metrics import TYPE_LABELS, target_metrics
from analysis_lib.results import Run, atomic_write_text, prediction_pairs

PROJECTION_NAMES = {0: "x", 1: "y", 2: "z"}
KIND_TO_PAPER_METHOD = {"cnn": "cnn", "gbdt": "lightgbm", "lightgbm": "lightgbm"}
IMPORTANCE_METHODS = ("gain", "permutation", "shap")
IMPORTANCE_FILE = "importance.csv"  # written by analysis_lib.models.gbdt.save_fit into extra/
AGREEMENT_FILE = "importance_agreement.json"
DEFAULT_MAX_SAMPLES = 60
DEFAULT_IMAGE_PX = 64
PNG_DPI = 60
PNG_COLOURS = 128  # palette PNG: ~3.5x smaller than RGB; fewer colours band the colour maps
PAGE_BUDGET_BYTES = 3_000_000  # per explorer: the galaxy browser drops samples to stay below it,
#                                the others warn above it
PAGE_OVERHEAD_BYTES = 20_000  # markup, CSS and script of one explorer, with margin

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
    method = KIND_TO_PAPER_METHOD.get(run.kind, run.kind)
    key = None
    mapping = exp.get("paper")
    if isinstance(mapping, dict) and isinstance(mapping.get(target), dict):
        m = mapping[target]
        key = (m.get("section", exp.get("section")), m.get("inputs"), m.get("target", target))
    elif exp.get("paper_inputs") and exp.get("target", target) == target:
        key = (exp.get("section"), exp["paper_inputs"], target)
    if key is None or key[0] is None or key[1] is None:
        return None
    from analysis_lib.report import paper_row

    row = paper_row(str(key[0]), method, str(key[1]), str(key[2]))
    if row is None:
        return None
    return {"bias": row["bias"], "sigma": row["sigma"],
            "where": f"section {row['section']}, {row['inputs']}"}


def data_source(run: Run) -> str:
    """Where the run's data came from (never let mock numbers pass as TNG numbers)."""
    from analysis_lib.report import run_data_label

    return run_data_label(run)


def load_importances(run: Run) -> pd.DataFrame | None:
    """The run's feature-importance table (extra/importance.csv), or None if it has none.

    Columns used: feature, gain (fraction), permutation (test-MSE increase, dex^2),
    permutation_std, permutation_frac (fraction), shap (fraction of mean |SHAP|).
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


def sample_title(sample: pd.Series) -> str:
    gtype = TYPE_LABELS.get(int(sample.get("galaxy_type", -1)), "unknown")
    proj = PROJECTION_NAMES.get(int(sample["projection"]), str(sample["projection"]))
    return (f"galaxy {int(sample['galaxy_id'])}, projection {proj}, {gtype} type, "
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
    from analysis_lib.config import load_config

    return float(load_config("quick")["observe"]["fov_rhalf"])


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
    from analysis_lib.plots import galaxy_panels

    return figure_png(galaxy_panels(images, fov_rhalf=fov_rhalf, title=title,
                                    solar_g_r=solar_g_r), dpi=dpi)


def scatter_png(run: Run, target: str, dpi: int = PNG_DPI) -> bytes:
    """Predicted vs true for one run and target, coloured by galaxy type (plots.pred_vs_true)."""
    import matplotlib.pyplot as plt

    from analysis_lib.plots import pred_vs_true

    t, p = prediction_pairs(run.predictions)[target]
    pred = run.predictions
    fig, ax = plt.subplots(figsize=(4.8, 4.4), constrained_layout=True)
    ok = np.isfinite(pred[t].to_numpy(float)) & np.isfinite(pred[p].to_numpy(float))
    groups = pred["galaxy_type"].to_numpy()[ok] if "galaxy_type" in pred else None
    pred_vs_true(pred[p].to_numpy(float)[ok], pred[t].to_numpy(float)[ok], target, ax=ax,
                 groups=groups, title=run_label(run))
    return figure_png(fig, dpi=int(dpi * 1.4))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- HTML assembly

_CSS = """
.{c} {{font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 14px;
  border: 1px solid #ccc; border-radius: 6px; padding: 10px; margin: 8px 0; max-width: 100%;
  box-sizing: border-box; color: #222; background: #fff;}}
.{c} .ie-controls {{display: flex; flex-wrap: wrap; gap: 8px; align-items: center;
  margin-bottom: 8px;}}
.{c} button, .{c} select {{font-size: 13px; padding: 3px 8px;}}
.{c} input[type=range] {{flex: 1 1 200px; min-width: 120px;}}
.{c} img {{max-width: 100%; height: auto; display: block;}}
.{c} table {{border-collapse: collapse; margin-top: 6px; font-size: 13px;}}
.{c} th, .{c} td {{border-bottom: 1px solid #ddd; padding: 2px 10px; text-align: right;}}
.{c} th:first-child, .{c} td:first-child {{text-align: left;}}
.{c} .ie-caption {{font-weight: 600; margin: 4px 0;}}
.{c} .ie-note {{color: #555; font-size: 12px; margin-top: 4px;}}
.{c} .ie-bar-row {{display: flex; align-items: center; gap: 6px; margin: 2px 0;}}
.{c} .ie-bar-name {{width: 9em; text-align: right; font-family: monospace;}}
.{c} .ie-bar-track {{flex: 1; background: #f1f1f1; height: 14px; position: relative;}}
.{c} .ie-bar {{background: #4c72b0; height: 14px;}}
.{c} .ie-bar-value {{width: 17em; font-family: monospace; font-size: 12px;}}
"""

# Helpers every explorer's script uses; scoped inside its own function, so explorers on one
# page never share state.
_JS_COMMON = r"""
  // The block's own element: from the running script where the browser says (JupyterLab
  // re-inserts output scripts), else by the unique id.
  var me = document.currentScript;
  var root = (me && me.closest && me.closest('.ie-explorer')) || document.getElementById(UID);
  var data = JSON.parse(root.querySelector('script.ie-data').textContent);
  function q(cls) { return root.querySelector('.' + cls); }
  function fmt(v, d, sign) {
    if (v === null || v === undefined || !isFinite(v)) { return '\u2014'; }
    var s = Number(v).toFixed(d);
    return (sign && v >= 0) ? '+' + s : s;
  }
  function cell(tr, text, tag) {
    var c = document.createElement(tag || 'td'); c.textContent = text; tr.appendChild(c);
    return c;
  }
  function fillTable(table, header, rows) {
    table.textContent = '';
    var thead = document.createElement('thead'), tr = document.createElement('tr');
    header.forEach(function (h) { cell(tr, h, 'th'); });
    thead.appendChild(tr); table.appendChild(thead);
    var tbody = document.createElement('tbody');
    rows.forEach(function (r) {
      var row = document.createElement('tr');
      r.forEach(function (v) { cell(row, v); });
      tbody.appendChild(row);
    });
    table.appendChild(tbody);
  }
  function fillSelect(sel, labels, keep) {
    sel.textContent = '';
    labels.forEach(function (lab, i) {
      var o = document.createElement('option'); o.value = String(i); o.textContent = lab;
      sel.appendChild(o);
    });
    if (keep !== undefined && keep >= 0 && keep < labels.length) { sel.value = String(keep); }
  }
"""


def _new_uid(kind: str, payload: str) -> str:
    """Unique per output (counter) yet reproducible for the same notebook run (no clock)."""
    import hashlib

    digest = hashlib.sha1(payload.encode()).hexdigest()[:8]
    return f"ie-{kind}-{digest}-{next(_counter)}"


_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                   "\u2029": "\\u2029"}


def _json_for_script(obj) -> str:
    """JSON safe inside <script>: no '</script>', '<!--' or '-->' can end or alter the block.

    '<', '>' and '&' become \\u003c, \\u003e, \\u0026 (what JSON.parse reads back as the
    same characters); U+2028/9 too, which some JavaScript parsers take for line ends.
    """
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    for char, escaped in _SCRIPT_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _assemble(kind: str, payload: dict, body: str, script: str) -> str:
    data = _json_for_script(payload)
    uid = _new_uid(kind, data)
    css = _CSS.format(c=uid)
    html_text = (
        f'<div id="{uid}" class="{uid} ie-explorer ie-{kind}" data-explorer="{kind}">\n'
        f"<style>{css}</style>\n{body}\n"
        f'<script type="application/json" class="ie-data" id="{uid}-data">{data}</script>\n'
        f"<script>\n(function () {{\n  var UID = {json.dumps(uid)};\n{_JS_COMMON}\n{script}\n"
        f"}})();\n</script>\n</div>")
    size = len(html_text.encode())
    if size > PAGE_BUDGET_BYTES:
        warnings.warn(f"{kind} explorer is {size / 1e6:.1f} MB (budget "
                      f"{PAGE_BUDGET_BYTES / 1e6:.0f} MB): embed fewer samples or runs",
                      stacklevel=3)
    return html_text


def _nan_to_none(v: float) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)


# --------------------------------------------------------------------------- galaxy browser

_BROWSER_JS = r"""
  var n = data.samples.length, cur = 0;
  var img = q('ie-image'), slider = q('ie-slider'), select = q('ie-select');
  var prev = q('ie-prev'), next = q('ie-next'), caption = q('ie-caption'), pos = q('ie-pos');
  var table = q('ie-table');
  fillSelect(select, data.samples.map(function (s) { return s.label; }), 0);
  slider.max = String(n - 1);
  function show(i) {
    cur = Math.max(0, Math.min(n - 1, i));
    var s = data.samples[cur];
    img.src = 'data:image/png;base64,' + s.png;
    img.alt = s.title;
    caption.textContent = s.title;
    pos.textContent = (cur + 1) + ' / ' + n;
    slider.value = String(cur); select.value = String(cur);
    prev.disabled = cur === 0; next.disabled = cur === n - 1;
    fillTable(table, ['model', 'target', 'true', 'predicted', 'pred \u2212 true [dex]'],
      s.rows.map(function (r) {
        return [r[0], r[1], fmt(r[2], 3), fmt(r[3], 3), fmt(r[4], 3, true)];
      }));
  }
  prev.addEventListener('click', function () { show(cur - 1); });
  next.addEventListener('click', function () { show(cur + 1); });
  slider.addEventListener('input', function () { show(parseInt(slider.value, 10)); });
  select.addEventListener('change', function () { show(parseInt(select.value, 10)); });
  show(0);
"""


def fit_budget(sizes: Sequence[int], budget: int) -> np.ndarray:
    """Indices of the largest evenly spaced subset of items whose sizes sum to <= budget
    (the first item is always kept)."""
    sizes = np.asarray(sizes, dtype=int)
    for m in range(len(sizes), 0, -1):
        idx = np.unique(np.linspace(0, len(sizes) - 1, m).round().astype(int))
        if sizes[idx].sum() <= budget or m == 1:
            return idx
    return np.arange(0)


def galaxy_browser_payload(dataset: GalaxyDataset, runs: Sequence[Run], *,
                           n_samples: int = DEFAULT_MAX_SAMPLES,
                           image_px: int = DEFAULT_IMAGE_PX, targets: Sequence[str] | None = None,
                           dpi: int = PNG_DPI, max_bytes: int = PAGE_BUDGET_BYTES,
                           progress: bool = True) -> dict:
    """The data the galaxy browser embeds: one PNG and one truth/prediction table per sample.

    If the samples' PNGs would make the block larger than max_bytes, an evenly spaced subset
    that fits is kept (with a warning); noisy images compress less well than smooth ones.
    """
    from tqdm.auto import tqdm

    samples = browser_samples(dataset.table, runs, n_samples, where=str(dataset.path))
    fov = dataset_fov_rhalf(dataset)
    images = sample_images(dataset, samples["row"].to_numpy(), image_px)
    out = []
    for (_, s), imgs in tqdm(list(zip(samples.iterrows(), images, strict=True)),
                             desc="galaxy browser panels", unit="sample", disable=not progress):
        title = sample_title(s)
        rows = sample_predictions(runs, int(s["galaxy_id"]), int(s["projection"]), targets)
        proj = PROJECTION_NAMES.get(int(s["projection"]), str(s["projection"]))
        out.append({
            "label": f"galaxy {int(s['galaxy_id'])} ({proj})", "title": title,
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
    return {"samples": out, "source": str(dataset.attrs.get("source", "?")),
            "profile": str(dataset.attrs.get("profile", "?"))}


def galaxy_browser_html(dataset: GalaxyDataset, runs: Sequence[Run] = (), *,
                        n_samples: int = DEFAULT_MAX_SAMPLES, image_px: int = DEFAULT_IMAGE_PX,
                        targets: Sequence[str] | None = None, dpi: int = PNG_DPI,
                        max_bytes: int = PAGE_BUDGET_BYTES, progress: bool = True) -> str:
    """One self-contained HTML block: browse up to `n_samples` test samples of `runs`.

    Images are re-binned (flux-conserving) to at most `image_px` per side; each sample's four
    panels are one palette PNG (20-45 kB at the default dpi); if they would exceed max_bytes,
    fewer (evenly spaced) samples are kept, with a warning.
    """
    payload = galaxy_browser_payload(dataset, runs, n_samples=n_samples, image_px=image_px,
                                     targets=targets, dpi=dpi, max_bytes=max_bytes,
                                     progress=progress)
    first = payload["samples"][0]
    note = (f"{len(payload['samples'])} test samples of {html.escape(payload['source'])} data "
            f"({html.escape(payload['profile'])} profile), evenly spaced in galaxy id; "
            f"images re-binned to at most {image_px} px. Values are the log10 targets "
            "(masses in M<sub>&#9737;</sub>).")
    body = (
        '<div class="ie-controls">'
        '<button type="button" class="ie-prev" title="previous sample">&#9664; previous</button>'
        f'<input type="range" class="ie-slider" min="0" max="{len(payload["samples"]) - 1}" '
        'step="1" value="0" aria-label="sample">'
        '<button type="button" class="ie-next" title="next sample">next &#9654;</button>'
        '<select class="ie-select" aria-label="sample"></select>'
        '<span class="ie-pos"></span></div>\n'
        f'<div class="ie-caption">{html.escape(first["title"])}</div>\n'
        f'<img class="ie-image" alt="{html.escape(first["title"])}" '
        f'src="data:image/png;base64,{first["png"]}">\n'
        '<table class="ie-table"></table>\n'
        f'<div class="ie-note">{note}</div>')
    return _assemble("galaxy-browser", payload, body, _BROWSER_JS)


# --------------------------------------------------------------------------- experiment explorer

_EXPERIMENT_JS = r"""
  var runSel = q('ie-run'), tgtSel = q('ie-target'), img = q('ie-image');
  var caption = q('ie-caption'), table = q('ie-table'), src = q('ie-source');
  fillSelect(runSel, data.runs.map(function (r) { return r.label; }), 0);
  function targetsOf(r) { return data.runs[r].targets.map(function (t) { return t.target; }); }
  function showTargets(keepName) {
    var names = targetsOf(parseInt(runSel.value, 10));
    var keep = Math.max(0, names.indexOf(keepName));
    fillSelect(tgtSel, names, keep);
  }
  function show() {
    var run = data.runs[parseInt(runSel.value, 10)];
    var t = run.targets[parseInt(tgtSel.value, 10)];
    img.src = 'data:image/png;base64,' + t.png;
    img.alt = run.label + ': ' + t.target;
    caption.textContent = run.label + ' \u2014 ' + t.target;
    src.textContent = 'data: ' + run.source + '. Paper: TNG100' +
      (t.paper ? ' (' + t.paper.where + ')' : ', no number for this experiment') + '.';
    var rows = ['all', 'early', 'late'].map(function (g) {
      var s = t.stats[g] || {};
      return ['this study, ' + g, String(s.n === undefined ? '\u2014' : s.n),
              fmt(s.bias, 3, true), fmt(s.sigma, 3)];
    });
    rows.push(['paper (TNG100), all', '\u2014', fmt(t.paper ? t.paper.bias : null, 2, true),
               fmt(t.paper ? t.paper.sigma : null, 2)]);
    fillTable(table, ['', 'N test', 'bias [dex]', '\u03c3 [dex]'], rows);
  }
  runSel.addEventListener('change', function () {
    var old = tgtSel.options.length ? tgtSel.options[tgtSel.selectedIndex].textContent : '';
    showTargets(old); show();
  });
  tgtSel.addEventListener('change', show);
  showTargets(''); show();
"""


def experiment_payload(runs: Sequence[Run], targets: Sequence[str] | None = None,
                       dpi: int = PNG_DPI, progress: bool = True) -> dict:
    """Per run and target: the scatter PNG, this study's metrics and the paper's."""
    from tqdm.auto import tqdm

    out = []
    for run in tqdm(list(runs), desc="experiment explorer", unit="run", disable=not progress):
        entries = []
        for target in prediction_pairs(run.predictions):
            if targets is not None and target not in targets:
                continue
            stats = target_stats(run, target)
            entries.append({
                "target": target, "png": b64(scatter_png(run, target, dpi=dpi)),
                "stats": {g: {"n": int(s["n"]), "bias": _nan_to_none(s["bias"]),
                              "sigma": _nan_to_none(s["sigma"])} for g, s in stats.items()},
                "paper": paper_reference(run, target)})
        if entries:
            out.append({"label": run_label(run), "source": data_source(run),
                        "targets": entries})
    if not out:
        raise ValueError("experiment explorer: none of the runs has true/pred columns"
                         + (f" for {', '.join(targets)}" if targets else ""))
    return {"runs": out}


def experiment_explorer_html(runs: Sequence[Run], *, targets: Sequence[str] | None = None,
                             dpi: int = PNG_DPI, progress: bool = True) -> str:
    """One self-contained HTML block: choose a run and a target, see the scatter and numbers."""
    payload = experiment_payload(runs, targets, dpi=dpi, progress=progress)
    body = (
        '<div class="ie-controls"><label>experiment <select class="ie-run"></select></label>'
        '<label>target <select class="ie-target"></select></label></div>\n'
        '<div class="ie-caption"></div>\n'
        '<div style="display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start">'
        f'<img class="ie-image" alt="predicted vs true" '
        f'src="data:image/png;base64,{payload["runs"][0]["targets"][0]["png"]}" '
        'style="max-width:420px">'
        '<div><table class="ie-table"></table>'
        '<div class="ie-note">bias = mean, &sigma; = standard deviation of '
        'log<sub>10</sub>(predicted/true) on the test set.</div>'
        '<div class="ie-note ie-source"></div></div></div>')
    return _assemble("experiment-explorer", payload, body, _EXPERIMENT_JS)


# --------------------------------------------------------------------------- importances

_IMPORTANCE_JS = r"""
  var runSel = q('ie-run'), methSel = q('ie-method'), bars = q('ie-bars');
  var caption = q('ie-caption'), summary = q('ie-summary');
  fillSelect(runSel, data.runs.map(function (r) { return r.label + ' (' + r.target + ')'; }), 0);
  fillSelect(methSel, data.methods.map(function (m) { return data.method_labels[m]; }), 0);
  function show() {
    var run = data.runs[parseInt(runSel.value, 10)];
    var method = data.methods[parseInt(methSel.value, 10)];
    var vals = run[method];
    var order = run.features.map(function (f, i) { return i; });
    order.sort(function (a, b) { return (vals[b] || 0) - (vals[a] || 0); });
    var top = Math.max.apply(null, vals.map(function (v) { return v > 0 ? v : 0; })) || 1;
    bars.textContent = '';
    order.forEach(function (i) {
      var row = document.createElement('div'); row.className = 'ie-bar-row';
      var name = document.createElement('span'); name.className = 'ie-bar-name';
      name.textContent = run.features[i];
      var track = document.createElement('span'); track.className = 'ie-bar-track';
      var bar = document.createElement('span'); bar.className = 'ie-bar';
      bar.style.display = 'block';
      bar.style.width = (100 * Math.max(vals[i], 0) / top).toFixed(1) + '%';
      track.appendChild(bar);
      var val = document.createElement('span'); val.className = 'ie-bar-value';
      val.textContent = fmt(vals[i], 3) + (method === 'permutation' ?
        ' (' + fmt(run.permutation_raw[i], 4) + ' \u00b1 ' + fmt(run.permutation_std[i], 4) +
        ' dex\u00b2)' : '');
      row.appendChild(name); row.appendChild(track); row.appendChild(val);
      bars.appendChild(row);
    });
    caption.textContent = run.label + ': ' + run.target + ', ' + data.method_labels[method] +
      ' (fraction of the total; longest bar = largest)';
    summary.textContent = run.summary;
  }
  runSel.addEventListener('change', show);
  methSel.addEventListener('change', show);
  show();
"""

METHOD_LABELS = {
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
    return {"runs": out, "methods": list(IMPORTANCE_METHODS), "method_labels": METHOD_LABELS}


def importance_explorer_html(runs: Sequence[Run]) -> str:
    """One self-contained HTML block: importance bars per LightGBM run and method."""
    payload = importance_payload(runs)
    body = (
        '<div class="ie-controls"><label>run <select class="ie-run"></select></label>'
        '<label>method <select class="ie-method"></select></label></div>\n'
        '<div class="ie-caption"></div>\n<div class="ie-bars"></div>\n'
        '<div class="ie-note ie-summary"></div>'
        '<div class="ie-note">Gain is measured on the training set, permutation and SHAP on the '
        'test set; each is normalised to sum to 1 over the features.</div>')
    return _assemble("importance-explorer", payload, body, _IMPORTANCE_JS)


# --------------------------------------------------------------------------- display / pages


def _html_object(text: str):
    from IPython.display import HTML

    return HTML(text)


def galaxy_browser(dataset: GalaxyDataset, runs: Sequence[Run] = (), **kwargs):
    """IPython HTML object of galaxy_browser_html (display it, or make it a cell's result)."""
    return _html_object(galaxy_browser_html(dataset, runs, **kwargs))


def experiment_explorer(runs: Sequence[Run], **kwargs):
    """IPython HTML object of experiment_explorer_html."""
    return _html_object(experiment_explorer_html(runs, **kwargs))


def importance_explorer(runs: Sequence[Run]):
    """IPython HTML object of importance_explorer_html."""
    return _html_object(importance_explorer_html(runs))


def write_page(path: str | Path, blocks: Sequence[str], title: str = "Explorers") -> Path:
    """A standalone HTML page holding explorer blocks (for sharing, and for browser tests)."""
    path = Path(path)
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{html.escape(title)}</title></head>\n<body>\n"
           + "\n".join(blocks) + "\n</body></html>\n")
    atomic_write_text(path, doc)
    return path
