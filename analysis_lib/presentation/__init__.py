"""The presentation stage: what the book's chapters show, read from the results store.

Nothing here trains a model or builds a dataset; a chapter calls these functions on stored runs
and on the dataset, so a chapter re-executed on the same store shows the same numbers.

- `sections`: the chapters of the paper's Section 4-5 (run a configured set of experiments
  through the store, then tables and figures beside the paper's numbers).
- `chapters_mock`, `chapters_beyond`: glue for the data chapters and for "Beyond the paper".
- `report`: provenance, dataset summaries, the appendix (environment, timings, benchmarks,
  the paper-scale plan).
- `discussion`: findings computed from the store, written as synthesis, and the summary figure.
- `plots`, `diagrams`: matplotlib figures (the book's style lives in `templates/book.mplstyle`).
- `interactive`, `widgets`: one data payload, two explorers (static plotly in the book, live
  ipywidgets in JupyterLab); HTML lives in `templates/`.
- `publish`: papermill execution of the chapter notebooks and the Jupyter Book build.
"""
