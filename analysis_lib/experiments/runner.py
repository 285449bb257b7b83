"""One experiment runner for every kind of model: fingerprint -> resume -> split -> fit ->
evaluate -> paper numbers -> store.

Why one: the CNN, LightGBM, power-law and JAM runners used to repeat these steps, each with its
own small differences (who holds the lock, when a stored run is reused). Here they are written
once, and a model only says what is particular to it, through its estimator (fit/predict and
`evaluate`) and a `RunSpec` (its store name, the parts of its fingerprint, its split).

The estimator protocol the runner relies on (scikit-learn habits: `__init__` stores the
hyper-parameters only, `fit` returns self, fitted state ends in `_`):

- ``fit(dataset, rows) -> self``: learn from ``rows['train']`` (a model that monitors other rows,
  the CNN's validation rows or LightGBM's watched test curve, reads them from `rows` too);
- ``predict(dataset, rows) -> ndarray``: log10 predictions, one column per target;
- ``evaluate(dataset, rows) -> (predictions table, metrics)``: the test rows scored in the store
  convention (`analysis_lib.results`), the metrics from `analysis_lib.metrics`.

Optional hooks, used when present: ``select_rows(dataset, rows)`` (a model's own row rules on top
of the split: finite targets, the paper's exclusions), ``resume_from(work_dir, key, fresh)`` (a
model that can resume keeps its partial work in the entry's ``extra/`` folder, tagged with the
run's fingerprint), ``discard_checkpoint()`` (after the run is stored), ``write_extra(entry)``
(model files written into the new entry before it replaces the old one), and the fitted
attributes ``history_`` (history.csv) and ``meta_`` (added to meta.json).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis_lib.config import store_label
from analysis_lib.dataset import splits as split_schemes
from analysis_lib.paper import paper_row
from analysis_lib.results import ResultsStore, run_fingerprint

__all__ = ["RunSpec", "Split", "attach_paper", "paper_numbers", "run_experiment"]


class NotFittedError(RuntimeError):
    """predict or evaluate was called on an estimator before fit."""


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise NotFittedError naming the estimator when `attribute` (a fitted one) is missing.

    Why: an unfitted model asked for predictions should say so, not fail deep inside torch or
    LightGBM with an AttributeError.
    """
    if getattr(estimator, attribute, None) is None:
        raise NotFittedError(f"{type(estimator).__name__} is not fitted yet: call fit() before "
                             "predict() or evaluate()")


@dataclass(frozen=True)
class Split:
    """Which of `analysis_lib.dataset.splits`'s schemes a run uses, and how it groups rows.

    scheme: 'cnn' (train/val/test, the paper's 16000/4000/8110 proportions) or 'gbdt'
    (train/test, 18833/9277); by: 'galaxy' | 'projection' | None (the profile's split.by).
    """

    scheme: str
    by: str | None = None

    def rows(self, table: pd.DataFrame, cfg: dict) -> dict[str, np.ndarray]:
        """Row indices per split, drawn from the profile seed."""
        if self.scheme == "cnn":
            return split_schemes.cnn_split(table, cfg, by=self.by)
        if self.scheme == "gbdt":
            return split_schemes.gbdt_split(table, cfg, by=self.by)
        raise ValueError(f"split scheme must be 'cnn' or 'gbdt', not '{self.scheme}'")


@dataclass
class RunSpec:
    """What the runner needs to know about one experiment, besides the estimator.

    fingerprint: keyword parts for `results.run_fingerprint` (what a stored run must share to be
    reused); None means never reused, recomputed on every call (cheap runs). paper: store
    quantity (or 'quantity@group') -> keyword arguments of `paper.paper_row`. main: False in a
    non-main process of a distributed run, which neither locks, nor stores.
    """

    kind: str
    name: str
    cfg: dict
    split: Split
    config: dict
    meta: dict = field(default_factory=dict)
    fingerprint: dict | None = None
    paper: dict[str, dict] = field(default_factory=dict)
    keep: tuple[str, ...] = ()
    main: bool = True

    @property
    def profile(self) -> str:
        return store_label(self.cfg)


def paper_numbers(refs: dict[str, dict], on_error: Callable[[str, ValueError], Exception]
                  | None = None) -> dict[str, dict]:
    """The paper's rows for each reference; a missing reference file gives none.

    `on_error(key, exc)` turns a reference that matches no row into the model's own error.
    """
    out = {}
    for key, ref in refs.items():
        try:
            row = paper_row(**ref)
        except ValueError as exc:
            if on_error is None:
                raise
            raise on_error(key, exc) from exc
        if row is not None:
            out[key] = row
    return out


def attach_paper(blocks: dict[str, dict], rows: dict[str, dict]) -> None:
    """Put each paper number beside ours: block['paper'] or block[group]['paper'].

    Keys are quantities, or 'quantity@group' (e.g. 'log_fdm_derived@early') for a number the
    paper gives for one galaxy type only; a quantity the run did not score is left out.
    """
    for key, row in rows.items():
        quantity, _, group = key.partition("@")
        if quantity in blocks:
            (blocks[quantity][group] if group else blocks[quantity])["paper"] = row


def _attach_all(metrics: dict, spec: RunSpec) -> None:
    rows = paper_numbers(spec.paper)
    for block in ("targets", "derived"):
        if block in metrics:
            attach_paper(metrics[block], rows)


def run_experiment(estimator: Any, dataset: Any, spec: RunSpec,
                   store: ResultsStore | None = None, force: bool = False) -> Path:
    """Fit and evaluate one experiment and store it: the one path every model takes.

    Steps: fingerprint (`results.run_fingerprint` of `spec.fingerprint`) -> return the stored run
    when the store holds one of the same fingerprint (unless `force`) -> hand the estimator its
    resume folder (the entry's ``extra/``) -> split (`spec.split`, then the estimator's own row
    rules) -> fit -> evaluate the test rows -> attach the paper's numbers -> store, with the
    entry's lock held throughout so two live runs never write the same entry.

    Returns the run's directory in the store.
    """
    store = store or ResultsStore()
    run_dir = store.run_dir(spec.kind, spec.name, spec.profile)
    lock = (store.lock(spec.kind, spec.name, spec.profile) if spec.main
            else contextlib.nullcontext())
    with lock:
        fingerprint = (run_fingerprint(**spec.fingerprint) if spec.fingerprint is not None
                       else None)
        if (fingerprint is not None and not force
                and store.exists(spec.kind, spec.name, spec.profile, fingerprint)):
            return run_dir
        if hasattr(estimator, "resume_from"):
            estimator.resume_from(run_dir / "extra", fingerprint or "", fresh=force)
        rows = spec.split.rows(dataset.table, spec.cfg)
        if hasattr(estimator, "select_rows"):
            rows = estimator.select_rows(dataset, rows)
        estimator.fit(dataset, rows)
        predictions, metrics = estimator.evaluate(dataset, rows)
        _attach_all(metrics, spec)
        if not spec.main:
            return run_dir
        path = store.save(spec.kind, spec.name, spec.profile, config=spec.config,
                          metrics=metrics, predictions=predictions,
                          history=getattr(estimator, "history_", None),
                          meta={**spec.meta, **(getattr(estimator, "meta_", None) or {})},
                          fingerprint=fingerprint, keep=spec.keep,
                          extra=getattr(estimator, "write_extra", None))
        if hasattr(estimator, "discard_checkpoint"):
            estimator.discard_checkpoint()
        return path
