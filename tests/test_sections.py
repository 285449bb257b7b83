"""Section helpers that turn stored runs into the book's tables and sentences: the resolution
test of section 4.1 and its finding in the discussion, on hand-made runs with known scatter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_lib.metrics import target_metrics
from analysis_lib.models.experiments import load_experiments, select_experiments
from analysis_lib.paper import paper_row
from analysis_lib.presentation.discussion import findings
from analysis_lib.presentation.sections import resolution_table
from analysis_lib.results import ResultsStore


def _store_run(store: ResultsStore, name: str, pixels: int, scatter: float, seed: int) -> None:
    """A CNN run of experiment `name` trained at `pixels`, whose M* errors have `scatter` dex."""
    rng = np.random.default_rng(seed)
    gal = np.repeat(np.arange(120), 3)
    true = rng.normal(10.3, 0.3, len(gal))
    pred = true + rng.normal(0.0, scatter, len(gal))
    types = gal % 2
    predictions = pd.DataFrame({"galaxy_id": gal, "projection": np.tile([0, 1, 2], 120),
                                "galaxy_type": types, "true_log_mstar": true,
                                "pred_log_mstar": pred})
    exp = load_experiments("cnn")[name]
    metrics = {"targets": {"log_mstar": target_metrics(pred, true, types)}}
    ref = (exp.get("paper") or {}).get("log_mstar")
    if ref:
        metrics["targets"]["log_mstar"]["paper"] = paper_row(ref["section"], "cnn",
                                                             ref["inputs"], ref["target"])
    config = {"data": {"source": "synthetic"}, "experiment": exp, "split": {"by": "galaxy"}}
    store.save("cnn", name, "test", config=config, metrics=metrics, predictions=predictions,
               meta={"resolution_used": pixels})


def test_quick_selection_mixes_tags_and_names():
    chosen = [e["name"] for e in select_experiments("cnn", ["headline", "resolution"])]
    assert chosen[-1] == "s41_r30_mstar" and len(chosen) == len(set(chosen)) == 6
    assert [e["name"] for e in select_experiments("cnn", "s41_r_mstar,smoke")] == [
        "s41_r_mstar", "s41_rmaps_mstar"]


def test_resolution_table_orders_r_image_runs_by_pixel_scale(tmp_path):
    store = ResultsStore(tmp_path)
    _store_run(store, "s41_r_mstar", 60, 0.10, seed=1)    # asked for 300 px, capped at 60
    _store_run(store, "s41_r30_mstar", 30, 0.20, seed=2)
    _store_run(store, "s41_rmaps_mstar", 60, 0.05, seed=3)  # maps too: not a resolution run
    runs = [store.load("cnn", n, "test") for n in ("s41_r30_mstar", "s41_r_mstar",
                                                   "s41_rmaps_mstar")]
    table = resolution_table(runs, fov_rhalf=3.0)
    assert list(table["experiment"]) == ["s41_r_mstar", "s41_r30_mstar"]
    assert list(table["R_half per pixel"]) == pytest.approx([0.1, 0.2])
    assert table["sigma [dex]"].iloc[0] == pytest.approx(0.10, abs=0.015)
    assert table["paper pixels"].iloc[0] == 300  # the paper's number is for its own 300 px
    assert table["paper sigma [dex] (TNG100)"].iloc[0] == pytest.approx(0.06)
    assert pd.isna(table["paper sigma [dex] (TNG100)"].iloc[1])  # beyond the paper


def test_discussion_reports_what_coarser_pixels_do(tmp_path):
    store = ResultsStore(tmp_path)
    _store_run(store, "s41_r_mstar", 60, 0.10, seed=1)
    _store_run(store, "s41_r30_mstar", 30, 0.20, seed=2)
    sentences = [s for s in findings("test", store) if "coarser pixels" in s]
    assert len(sentences) == 1
    assert "raise the CNN's M* scatter" in sentences[0]
    assert "0.06 dex (r image at 300 px)" in sentences[0]


def test_fig1_example_is_a_massive_inclined_disc_unless_a_row_is_given():
    from types import SimpleNamespace

    from analysis_lib.presentation.report import pick_example

    table = pd.DataFrame({"galaxy_type": [1, 0, 0, 0, 0, 0],
                          "inclination_deg": [60.0, 10.0, 60.0, 65.0, 70.0, 88.0],
                          "log_mstar": [11.5, 11.0, 9.8, 10.2, 10.6, 10.9]})
    ds = SimpleNamespace(table=table)
    assert pick_example(ds) == 4  # the 80th-percentile-mass late type seen at 55-75 deg
    assert pick_example(ds, 1) == 1
    edge_on_only = SimpleNamespace(table=table.assign(inclination_deg=89.0))
    assert pick_example(edge_on_only) == int((table.log_mstar - table.log_mstar.median())
                                             .abs().idxmin())


def test_comparison_table_shows_the_seed_spread(tmp_path):
    import numpy as np
    import pandas as pd

    from analysis_lib.presentation.sections import comparison_table
    from analysis_lib.results import ResultsStore

    store = ResultsStore(tmp_path)
    sigmas = {"s41_r_mstar": 0.10, "s41_r_mstar__s1": 0.12, "s41_r_mstar__s2": 0.14}
    for name, sigma in sigmas.items():
        metrics = {"targets": {"log_mstar": {"all": {"bias": sigma / 10, "sigma": sigma,
                                                     "n": 5}}}}
        store.save("cnn", name, "quick", config={"experiment": {}}, metrics=metrics,
                   predictions=pd.DataFrame({"a": [1]}))
    store.save("cnn", "s42_r_mtot", "quick", config={"experiment": {}},
               metrics={"targets": {"log_mtot": {"all": {"bias": 0.0, "sigma": 0.2, "n": 5}}}},
               predictions=pd.DataFrame({"a": [1]}))
    runs = [store.load("cnn", "s41_r_mstar", "quick"), store.load("cnn", "s42_r_mtot", "quick")]
    table = comparison_table(runs, {}).set_index("experiment")
    assert table.loc["s41_r_mstar", "seeds"] == 3
    assert np.isclose(table.loc["s41_r_mstar", "sigma [dex]"], 0.12)
    assert np.isclose(table.loc["s41_r_mstar", "sigma seed spread [dex]"], 0.02)
    assert np.isclose(table.loc["s41_r_mstar", "bias seed spread [dex]"], 0.002)
    assert table.loc["s42_r_mtot", "seeds"] == 1  # one run has no spread
    assert pd.isna(table.loc["s42_r_mtot", "sigma seed spread [dex]"])
