"""Live ipywidgets explorers for JupyterLab: the same three views as analysis_lib.interactive.

Why two versions: these render on demand from the full data (every test sample, any resolution
kept in the dataset) but need a running kernel; a saved ipywidgets output in the static book
would need the widget JavaScript from a CDN, so notebooks built into the book should display the
self-contained analysis_lib.interactive explorers and offer these for live sessions.

Each explorer is an ipywidgets.VBox subclass whose controls and outputs are attributes (so code
and tests can drive them): images are ipywidgets.Image (PNG bytes), tables ipywidgets.HTML.
Constructing them needs no kernel.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import lru_cache

import ipywidgets as w
import pandas as pd

from analysis_lib import interactive as ie
from analysis_lib.dataset import GalaxyDataset
from analysis_lib.results import Run


def _fmt(v: float | None, digits: int, sign: bool = False) -> str:
    if v is None or pd.isna(v):
        return "\u2014"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th style='padding:2px 10px'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 10px'>{html.escape(str(c))}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class GalaxyBrowserWidget(w.VBox):
    """Browse test samples one by one: the four panels and every run's truth vs prediction.

    Samples are the runs' shared test samples (all of them unless n_samples is given); each is
    rendered when shown (and cached), at up to image_px per side.
    """

    def __init__(self, dataset: GalaxyDataset, runs: Sequence[Run] = (), *,
                 n_samples: int | None = None, image_px: int = 128,
                 targets: Sequence[str] | None = None, dpi: int = 80) -> None:
        self.dataset, self.runs, self.targets = dataset, list(runs), targets
        self.samples = ie.browser_samples(dataset.table, self.runs, n_samples,
                                          where=str(dataset.path))
        self.image_px, self.dpi = image_px, dpi
        self.fov = ie.dataset_fov_rhalf(dataset)
        n = len(self.samples)
        self.slider = w.IntSlider(value=0, min=0, max=n - 1, description="sample",
                                  continuous_update=False, layout=w.Layout(width="50%"))
        self.prev = w.Button(description="previous", icon="arrow-left")
        self.next = w.Button(description="next", icon="arrow-right")
        self.caption = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.table = w.HTML()
        self.prev.on_click(lambda _: self._step(-1))
        self.next.on_click(lambda _: self._step(+1))
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self._png = lru_cache(maxsize=256)(self._render)
        super().__init__([w.HBox([self.prev, self.slider, self.next]), self.caption, self.image,
                          self.table])
        self.show(0)

    def _step(self, delta: int) -> None:
        self.slider.value = min(max(self.slider.value + delta, 0), self.slider.max)

    def _render(self, i: int) -> bytes:
        s = self.samples.iloc[i]
        imgs = ie.sample_images(self.dataset, [int(s["row"])], self.image_px)[0]
        return ie.render_sample_png(imgs, ie.sample_title(s), self.fov, dpi=self.dpi,
                                    solar_g_r=self.dataset.solar_g_r)

    def show(self, i: int) -> None:
        """Display sample i (index into self.samples)."""
        s = self.samples.iloc[int(i)]
        self.caption.value = f"<b>{html.escape(ie.sample_title(s))}</b>"
        self.image.value = self._png(int(i))
        rows = ie.sample_predictions(self.runs, int(s["galaxy_id"]), int(s["projection"]),
                                     self.targets)
        self.table.value = _table_html(
            ["model", "target", "true", "predicted", "pred \u2212 true [dex]"],
            [[r["model"], r["target"], _fmt(r["true"], 3), _fmt(r["pred"], 3),
              _fmt(r["diff"], 3, True)] for r in rows])
        self.prev.disabled = i == 0
        self.next.disabled = i == self.slider.max


class ExperimentExplorerWidget(w.VBox):
    """Pick a run and a target: predicted-vs-true scatter and bias/scatter beside the paper's."""

    def __init__(self, runs: Sequence[Run], *, targets: Sequence[str] | None = None,
                 dpi: int = 80) -> None:
        self.runs = [r for r in runs if any(
            targets is None or t in targets for t in ie.prediction_pairs(r.predictions))]
        if not self.runs:
            raise ValueError("experiment explorer: none of the runs has true/pred columns")
        self.only, self.dpi, self._quiet = targets, dpi, False
        self.run = w.Dropdown(options=[(ie.run_label(r), i) for i, r in enumerate(self.runs)],
                              description="experiment")
        self.target = w.Dropdown(description="target")
        self.image = w.Image(format="png")
        self.table = w.HTML()
        self._png = lru_cache(maxsize=128)(
            lambda i, t: ie.scatter_png(self.runs[i], t, dpi=self.dpi))
        self.run.observe(lambda _: self._targets(), names="value")
        self.target.observe(lambda _: self.show(), names="value")
        super().__init__([w.HBox([self.run, self.target]),
                          w.HBox([self.image, self.table])])
        self._targets()

    def _targets(self) -> None:
        run = self.runs[self.run.value]
        names = [t for t in ie.prediction_pairs(run.predictions)
                 if self.only is None or t in self.only]
        keep = self.target.value if self.target.value in names else names[0]
        self._quiet = True  # changing the options resets the value; draw once, at the end
        self.target.options = names
        self.target.value = keep
        self._quiet = False
        self.show()

    def show(self) -> None:
        """Redraw for the selected run and target."""
        run, target = self.runs[self.run.value], self.target.value
        if target is None or self._quiet:
            return
        self.image.value = self._png(self.run.value, target)
        stats, paper = ie.target_stats(run, target), ie.paper_reference(run, target)
        rows = [[f"this study, {g}", s["n"], _fmt(s["bias"], 3, True), _fmt(s["sigma"], 3)]
                for g, s in stats.items()]
        rows.append(["paper (TNG100), all", "\u2014",
                     _fmt(paper and paper["bias"], 2, True), _fmt(paper and paper["sigma"], 2)])
        where = f"paper: {paper['where']}" if paper else "no paper number for this experiment"
        self.table.value = (_table_html(["", "N test", "bias [dex]", "\u03c3 [dex]"], rows)
                            + f"<p>data: {html.escape(ie.data_source(run))}; "
                            f"{html.escape(where)}</p>")


class ImportanceWidget(w.VBox):
    """Feature importance of LightGBM runs: pick a run (one target each) and a method."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.entries = [(r, t) for r in runs if (t := ie.load_importances(r)) is not None]
        if not self.entries:
            raise ValueError(f"importance explorer: no run has extra/{ie.IMPORTANCE_FILE}")
        self.run = w.Dropdown(options=[(f"{ie.run_label(r)} ({ie.run_target(r)})", i)
                                       for i, (r, _) in enumerate(self.entries)],
                              description="run")
        self.method = w.ToggleButtons(options=[(m, m) for m in ie.IMPORTANCE_METHODS],
                                      value="gain", description="method")
        self.bars = w.HTML()
        self.run.observe(lambda _: self.show(), names="value")
        self.method.observe(lambda _: self.show(), names="value")
        super().__init__([w.HBox([self.run, self.method]), self.bars])
        self.show()

    def show(self) -> None:
        """Redraw the bars for the selected run and method."""
        run, table = self.entries[self.run.value]
        self.bars.value = importance_bars_html(table, self.method.value,
                                               ie.importance_summary(run))


def importance_bars_html(table: pd.DataFrame, method: str, summary: str = "") -> str:
    """Horizontal bars (HTML, no figure) of one importance method, largest first."""
    col = "permutation_frac" if method == "permutation" else method
    order = table.sort_values(col, ascending=False)
    top = max(float(order[col].clip(lower=0).max()), 1e-300)
    rows = []
    for _, r in order.iterrows():
        width = 100 * max(float(r[col]), 0.0) / top
        extra = (f" ({_fmt(r['permutation'], 4)} \u00b1 {_fmt(r.get('permutation_std'), 4)}"
                 " dex\u00b2)" if method == "permutation" else "")
        rows.append(
            "<div style='display:flex;align-items:center;gap:6px;margin:2px 0'>"
            f"<span style='width:9em;text-align:right;font-family:monospace'>"
            f"{html.escape(str(r['feature']))}</span>"
            "<span style='flex:1;background:#f1f1f1;height:14px'>"
            f"<span style='display:block;background:#4c72b0;height:14px;width:{width:.1f}%'>"
            "</span></span>"
            f"<span style='width:14em;font-family:monospace;font-size:12px'>"
            f"{_fmt(r[col], 3)}{extra}</span></div>")
    return (f"<div><b>{html.escape(ie.METHOD_LABELS[method])}</b> (fraction of the total)"
            + "".join(rows) + f"<p>{html.escape(summary)}</p></div>")


def galaxy_browser_widget(dataset: GalaxyDataset, runs: Sequence[Run] = (), **kwargs
                          ) -> GalaxyBrowserWidget:
    return GalaxyBrowserWidget(dataset, runs, **kwargs)


def experiment_explorer_widget(runs: Sequence[Run], **kwargs) -> ExperimentExplorerWidget:
    return ExperimentExplorerWidget(runs, **kwargs)


def importance_widget(runs: Sequence[Run]) -> ImportanceWidget:
    return ImportanceWidget(runs)
