"""Live ipywidgets explorers for JupyterLab, built from the same payloads as the static ones.

Why: in the static book the explorers are plotly figures whose dropdown or slider switches
between pre-computed views (analysis_lib.presentation.interactive). In a running kernel the
same payload can
drive real controls: dependent dropdowns (run, then that run's targets), a method toggle, a
sample slider with previous/next buttons. Figures are plotly figures shown in an
ipywidgets.Output as plotly's own mime type (JupyterLab renders it with the jupyterlab-plotly
extension shipped with plotly); tables and captions are ipywidgets.HTML.

Each explorer is an ipywidgets.VBox subclass whose controls and outputs are attributes, with
the plotly figure currently shown as `.figure`, so code and tests can drive them. Constructing
them needs no kernel. CSS classes (h7-...) let browser tests find the parts.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import ipywidgets as w

from analysis_lib.dataset import GalaxyDataset
from analysis_lib.presentation import interactive as ie
from analysis_lib.results import Run


def table_html(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain HTML table (escaped cells); JupyterLab's own stylesheet styles it."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class PlotlyOutput(w.Output):
    """An Output that holds one plotly figure as plotly's mime bundle (no display hook needed,
    so it works with or without a kernel)."""

    figure = None

    def show_figure(self, fig) -> None:
        import plotly.io as pio

        self.figure = fig
        bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
        title = fig.layout.title.text or "plotly figure"
        bundle["text/plain"] = f"<plotly figure: {title}>"
        self.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


class GalaxyBrowserWidget(w.VBox):
    """Browse the payload's test samples one by one: the four panels and every run's truth vs
    prediction (the payload of interactive.galaxy_browser_payload)."""

    def __init__(self, payload: dict) -> None:
        self.payload = payload
        self.samples = payload["samples"]
        n = len(self.samples)
        self.slider = w.IntSlider(value=0, min=0, max=n - 1, description="sample",
                                  continuous_update=False, layout=w.Layout(width="50%"))
        self.prev = w.Button(description="previous", icon="arrow-left")
        self.next = w.Button(description="next", icon="arrow-right")
        self.caption = w.HTML()
        self.caption.add_class("h7-caption")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.table = w.HTML()
        self.table.add_class("h7-table")
        self.note = w.HTML(f"<small>{html.escape(payload.get('note', ''))}</small>")
        self.prev.on_click(lambda _: self._step(-1))
        self.next.on_click(lambda _: self._step(+1))
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        super().__init__([w.HBox([self.prev, self.slider, self.next]), self.caption, self.image,
                          self.table, self.note])
        self.add_class("h7-galaxy-browser")
        self.show(0)

    def _step(self, delta: int) -> None:
        self.slider.value = min(max(self.slider.value + delta, 0), self.slider.max)

    def show(self, i: int) -> None:
        """Display sample i (index into the payload's samples)."""
        s = self.samples[int(i)]
        self.caption.value = f"<b>{html.escape(s['title'])}</b>"
        self.image.value = base64.b64decode(s["png"])
        self.table.value = table_html(
            ["model", "target", "true", "predicted", "pred \u2212 true [dex]"],
            [[r[0], r[1], ie.fmt(r[2], 3), ie.fmt(r[3], 3), ie.fmt(r[4], 3, True)]
             for r in s["rows"]])
        self.prev.disabled = i == 0
        self.next.disabled = i == self.slider.max


class ExperimentExplorerWidget(w.VBox):
    """Pick a run, then one of its targets: predicted vs true with the paper's band, and the
    bias/scatter beside the paper's (the payload of interactive.experiment_payload)."""

    def __init__(self, payload: dict) -> None:
        self.payload = payload
        self.runs = payload["runs"]
        self._quiet = False
        self.run = w.Dropdown(options=[(r["label"], i) for i, r in enumerate(self.runs)],
                              description="experiment")
        self.target = w.Dropdown(description="target")
        self.stats = w.HTML()
        self.stats.add_class("h7-stats")
        self.plot = PlotlyOutput()
        self.run.observe(lambda _: self._targets(), names="value")
        self.target.observe(lambda _: self.show(), names="value")
        super().__init__([w.HBox([self.run, self.target]), self.stats, self.plot,
                          w.HTML(f"<small>{html.escape(payload.get('note', ''))}</small>")])
        self.add_class("h7-experiment-explorer")
        self._targets()

    @property
    def figure(self):
        return self.plot.figure

    def _targets(self) -> None:
        names = [t["target"] for t in self.runs[self.run.value]["targets"]]
        keep = self.target.value if self.target.value in names else names[0]
        self._quiet = True  # changing the options resets the value; draw once, at the end
        self.target.options = names
        self.target.value = keep
        self._quiet = False
        self.show()

    def show(self) -> None:
        """Redraw for the selected run and target."""
        if self._quiet or self.target.value is None:
            return
        i = self.run.value
        run = self.runs[i]
        j = [t["target"] for t in run["targets"]].index(self.target.value)
        entry = run["targets"][j]
        paper = entry.get("paper")
        where = f"paper: {paper['where']}" if paper else "no paper number for this experiment"
        self.stats.value = (f"<b>{html.escape(run['label'])}: {html.escape(entry['target'])}"
                            f"</b> (data: {html.escape(run['source'])}; {html.escape(where)})"
                            + table_html(ie.STATS_HEADER, ie.stats_rows(entry)))
        self.plot.show_figure(ie.experiment_figure(self.payload, only=(i, j)))


class ImportanceWidget(w.VBox):
    """Feature importance of LightGBM runs: pick a run (one target each) and a method (the
    payload of interactive.importance_payload)."""

    def __init__(self, payload: dict) -> None:
        self.payload = payload
        self.run = w.Dropdown(options=[(f"{r['label']} ({r['target']})", i)
                                       for i, r in enumerate(payload["runs"])],
                              description="run")
        self.method = w.ToggleButtons(options=list(payload["methods"]),
                                      value=payload["methods"][0], description="method")
        self.summary = w.HTML()
        self.summary.add_class("h7-summary")
        self.plot = PlotlyOutput()
        self.run.observe(lambda _: self.show(), names="value")
        self.method.observe(lambda _: self.show(), names="value")
        super().__init__([w.HBox([self.run, self.method]), self.plot, self.summary,
                          w.HTML(f"<small>{html.escape(payload.get('note', ''))}</small>")])
        self.add_class("h7-importance-explorer")
        self.show()

    @property
    def figure(self):
        return self.plot.figure

    def show(self) -> None:
        """Redraw the bars for the selected run and method."""
        run = self.payload["runs"][self.run.value]
        self.summary.value = html.escape(run["summary"])
        self.plot.show_figure(ie.importance_figure(self.payload,
                                                   only=(self.run.value, self.method.value)))


WIDGETS = {"galaxy-browser": GalaxyBrowserWidget,
           "experiment-explorer": ExperimentExplorerWidget,
           "importance-explorer": ImportanceWidget}


def from_payload(payload: dict) -> w.VBox:
    """The live explorer for an interactive.* payload (its 'kind' picks the class)."""
    return WIDGETS[payload["kind"]](payload)


def galaxy_browser_widget(dataset: GalaxyDataset, runs: Sequence[Run] = (), **kwargs
                          ) -> GalaxyBrowserWidget:
    """Live galaxy browser (kwargs: interactive.galaxy_browser_payload)."""
    return GalaxyBrowserWidget(ie.galaxy_browser_payload(dataset, runs, **kwargs))


def experiment_explorer_widget(runs: Sequence[Run], **kwargs) -> ExperimentExplorerWidget:
    """Live experiment explorer (kwargs: interactive.experiment_payload)."""
    return ExperimentExplorerWidget(ie.experiment_payload(runs, **kwargs))


def importance_widget(runs: Sequence[Run]) -> ImportanceWidget:
    """Live importance explorer of the runs that have an importance table."""
    return ImportanceWidget(ie.importance_payload(runs))
