"""The one experiment runner (analysis_lib.experiments) and the estimators it runs.

Why these tests: every model now reaches the store through `run_experiment`, so a stored run
must be skipped, a partial one resumed, and every kind of model must leave the same record;
and the estimators must keep scikit-learn's habits the runner relies on.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.experiments import NotFittedError, RunSpec, Split, run_experiment
from analysis_lib.models.experiments import select_experiments
from analysis_lib.results import ResultsStore, prediction_pairs, run_fingerprint
from tests.conftest import make_synthetic_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")
META = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]


class Counting:
    """A minimal estimator: predicts the training mean, and counts what the runner calls."""

    def __init__(self, target: str = "log_mstar") -> None:
        self.target = target

    def resume_from(self, work_dir: Path, key: str, fresh: bool = False) -> None:
        self.resumed_ = (Path(work_dir), key, fresh)

    def fit(self, dataset, rows):
        self.mean_ = float(dataset.table[self.target].to_numpy()[rows["train"]].mean())
        return self

    def predict(self, dataset, rows):
        if not hasattr(self, "mean_"):
            raise NotFittedError("Counting is not fitted")
        return np.full((len(rows), 1), self.mean_)

    def evaluate(self, dataset, rows):
        from analysis_lib.metrics import target_metrics

        test = dataset.table.iloc[rows["test"]].reset_index(drop=True)
        pred = self.predict(dataset, rows["test"])[:, 0]
        table = test[META].assign(**{f"true_{self.target}": test[self.target].to_numpy(),
                                     f"pred_{self.target}": pred})
        truth = test[self.target].to_numpy()
        return table, {"targets": {self.target: target_metrics(pred, truth,
                                                               test["galaxy_type"].to_numpy())}}


def _spec(cfg: dict, fingerprint: dict | None, **kw) -> RunSpec:
    return RunSpec(kind="test", name="counting", cfg=cfg, split=Split("cnn"), config=cfg,
                   fingerprint=fingerprint, **kw)


@pytest.fixture
def dataset(tmp_path):
    return open_dataset(make_synthetic_dataset(tmp_path / "synthetic.h5"))


def test_runner_skips_a_stored_run_and_redoes_a_changed_one(dataset, tmp_path) -> None:
    cfg = load_config("smoke")
    store = ResultsStore(tmp_path / "results")
    fitted = []

    class Logged(Counting):
        def fit(self, dataset, rows):
            fitted.append(1)
            return super().fit(dataset, rows)

    parts = {"kind": "test", "dataset": dataset.identity(), "seed": cfg["seed"]}
    path = run_experiment(Logged(), dataset, _spec(cfg, parts), store)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["fingerprint"] == run_fingerprint(**parts)
    stamp = (path / "metrics.json").stat().st_mtime_ns
    assert run_experiment(Logged(), dataset, _spec(cfg, parts), store) == path
    assert len(fitted) == 1 and (path / "metrics.json").stat().st_mtime_ns == stamp
    run_experiment(Logged(), dataset, _spec(cfg, {**parts, "seed": 1}), store)  # other inputs
    run_experiment(Logged(), dataset, _spec(cfg, parts), store, force=True)
    assert len(fitted) == 3
    run_experiment(Logged(), dataset, _spec(cfg, None), store)  # no fingerprint: always redone
    run_experiment(Logged(), dataset, _spec(cfg, None), store)
    assert len(fitted) == 5


def test_runner_hands_the_resume_folder_and_key(dataset, tmp_path) -> None:
    """A resumable estimator gets the entry's extra/ folder and the run's fingerprint, and
    `fresh` only when forced; a non-main process fits but neither locks nor stores."""
    cfg = load_config("smoke")
    store = ResultsStore(tmp_path / "results")
    parts = {"kind": "test", "x": 1}
    est = Counting()
    path = run_experiment(est, dataset, _spec(cfg, parts), store)
    assert est.resumed_ == (path / "extra", run_fingerprint(**parts), False)
    forced = Counting()
    run_experiment(forced, dataset, _spec(cfg, parts), store, force=True)
    assert forced.resumed_[2] is True
    worker = Counting()
    other = _spec(cfg, {"kind": "test", "x": 2}, main=False)
    assert run_experiment(worker, dataset, other, store) == path
    assert hasattr(worker, "mean_")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["fingerprint"] == run_fingerprint(**parts)  # the worker did not store


def test_runner_attaches_the_papers_numbers(dataset, tmp_path) -> None:
    cfg = load_config("smoke")
    ref = {"section": "4.1", "method": "powerlaw", "inputs": "luminosity",
           "target": "log_mstar"}
    path = run_experiment(Counting(), dataset, _spec(cfg, None, paper={"log_mstar": ref,
                                                                       "log_mtot": ref}),
                          ResultsStore(tmp_path / "results"))
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["targets"]["log_mstar"]["paper"]["sigma"] == pytest.approx(0.16)
    assert "log_mtot" not in metrics["targets"]  # a quantity the run did not score: left out


def test_split_names_its_scheme(dataset) -> None:
    cfg = load_config("smoke")
    assert set(Split("cnn").rows(dataset.table, cfg)) == {"train", "val", "test"}
    assert set(Split("gbdt").rows(dataset.table, cfg)) == {"train", "test"}
    with pytest.raises(ValueError, match="scheme must be 'cnn' or 'gbdt'"):
        Split("svm").rows(dataset.table, cfg)


# --------------------------------------------------------------------------- the estimators


def _estimators(cfg: dict) -> dict:
    from analysis_lib.models.baselines import PowerLawEstimator
    from analysis_lib.models.cnn_estimator import CNNEstimator
    from analysis_lib.models.gbdt import GBDTEstimator
    from analysis_lib.models.jam import JAMEstimator

    cnn_exp = select_experiments("cnn", ["s41_rmaps_mstar"])[0]
    return {"baseline": PowerLawEstimator(),
            "gbdt": GBDTEstimator(select_experiments("gbdt", ["mstar_default"])[0], cfg),
            "cnn": CNNEstimator(cnn_exp, cfg, progress=False),
            "jam": JAMEstimator(cfg, workers=1, progress=False)}


def _cfg() -> dict:
    return load_config("smoke", {"cnn.epochs": 1, "cnn.image_size": 16, "cnn.cpu_threads": 1,
                                 "gbdt.num_boost_round": 5, "gbdt.min_data_in_leaf": 2,
                                 "gbdt.permutation_repeats": 1, "gbdt.num_threads": 1,
                                 "jam.image_size": 32, "jam.max_nfev": 4, "jam.n_galaxies": 3})


def test_estimators_keep_scikit_learn_habits(dataset, tmp_path) -> None:
    """__init__ stores its arguments only; fit returns self; what fit adds ends in '_';
    predict before fit names the estimator and says to fit first."""
    cfg = _cfg()
    for kind, est in _estimators(cfg).items():
        params = set(inspect.signature(type(est).__init__).parameters) - {"self"}
        assert set(vars(est)) == params, kind
        with pytest.raises(NotFittedError, match=f"{type(est).__name__} is not fitted"):
            est.predict(dataset, np.arange(3))
        split = (Split("gbdt") if kind == "gbdt" else Split("cnn")).rows(dataset.table, cfg)
        if hasattr(est, "resume_from"):
            est.resume_from(tmp_path / kind, "key")
        if hasattr(est, "select_rows"):
            split = est.select_rows(dataset, split)
        before = set(vars(est))
        assert est.fit(dataset, split) is est, kind
        added = {a for a in set(vars(est)) - before if not a.startswith("_")}
        assert added and all(a.endswith("_") for a in added), (kind, added)
        pred = est.predict(dataset, split["test"])
        assert pred.ndim == 2 and len(pred) == len(split["test"]), kind


def _run(kind: str, est, dataset, cfg: dict, store: ResultsStore) -> Path:
    split = Split("gbdt") if kind == "gbdt" else Split("cnn")
    spec = RunSpec(kind=kind, name=f"{kind}_run", cfg=cfg, split=split, config=cfg,
                   meta={"dataset": str(dataset.path)},
                   fingerprint={"kind": kind, "dataset": dataset.identity()})
    return run_experiment(est, dataset, spec, store)


def test_every_estimator_kind_leaves_the_same_record(dataset, tmp_path) -> None:
    """One entry per kind with the store's files, a fingerprint, test metrics in the paper's
    form and predictions in the store convention, row for row the split's test rows."""
    cfg = _cfg()
    store = ResultsStore(tmp_path / "results")
    for kind, est in _estimators(cfg).items():
        path = _run(kind, est, dataset, cfg, store)
        run = store.load(kind, f"{kind}_run", "smoke")
        assert {"config.json", "meta.json", "metrics.json", "predictions.csv"} <= {
            p.name for p in path.iterdir()}, kind
        assert run.meta["fingerprint"] == run_fingerprint(kind=kind,
                                                          dataset=dataset.identity())
        assert run.meta["dataset"] == str(dataset.path)
        assert run.metrics["targets"], kind
        for target, stats in run.metrics["targets"].items():
            assert {"all", "early", "late"} <= set(stats), (kind, target)
        assert set(META) <= set(run.predictions.columns), kind
        pairs = prediction_pairs(run.predictions)
        assert "log_mstar" in pairs, kind
        assert isinstance(run.predictions, pd.DataFrame) and len(run.predictions) > 0
        # a second call finds it stored
        stamp = (path / "metrics.json").stat().st_mtime_ns
        _run(kind, _estimators(cfg)[kind], dataset, cfg, store)
        assert (path / "metrics.json").stat().st_mtime_ns == stamp, kind


def test_compare_stores_finds_a_changed_number(dataset, tmp_path) -> None:
    """tools/compare_stores.py: equal stores pass (timings ignored), one changed bit fails."""
    import importlib.util

    spec_ = importlib.util.spec_from_file_location(
        "compare_stores", Path(__file__).parents[1] / "tools" / "compare_stores.py")
    compare = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(compare)
    cfg = load_config("smoke")
    for root in ("a", "b"):
        run_experiment(Counting(), dataset, _spec(cfg, None), ResultsStore(tmp_path / root))
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0  # time_utc differs
    metrics = tmp_path / "b" / "smoke" / "test" / "counting" / "metrics.json"
    m = json.loads(metrics.read_text())
    m["targets"]["log_mstar"]["all"]["sigma"] = np.nextafter(m["targets"]["log_mstar"]["all"]
                                                             ["sigma"], np.inf)
    metrics.write_text(json.dumps(m))
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
