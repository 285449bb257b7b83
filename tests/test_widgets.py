"""The explorers' data helpers, the self-contained HTML blocks and the live ipywidgets versions.

Run on the synthetic fixture dataset plus fake results-store runs (a CNN-style run with
true_X/pred_X columns, a GBDT-style run with one target and an importance table written by
analysis_lib.models.importance). The browser behaviour is tested in test_browser_widgets.py.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis_lib.dataset import open_dataset
from analysis_lib.metrics import log_ratio_stats, target_metrics
from analysis_lib.models import importance as imp
from analysis_lib.paper import paper_row
from analysis_lib.presentation import interactive as ie
from analysis_lib.results import ResultsStore, atomic_write_csv

from .conftest import make_synthetic_dataset

PROFILE = "test"
IMPORTANCE_FEATURES = ["M_r", "g_r", "sfr", "sigma_e"]


def make_fake_runs(root, dataset_path) -> list:
    """Two stored runs on the dataset's samples, in the two column conventions in use.

    cnn/s41_rv_mstar: even galaxy ids, true_/pred_ columns for log_mstar and log_mtot, and the
    CNN experiment's 'paper' mapping. gbdt/mstar_default: galaxy ids not 1 mod 3, one target in
    true_/pred_ columns, the GBDT experiment's paper_inputs and an extra/importance.csv.
    """
    table = open_dataset(dataset_path).table
    rng = np.random.default_rng(7)
    store = ResultsStore(root)
    meta_cols = ["galaxy_id", "projection", "galaxy_type", "inclination_deg"]

    cnn_rows = table[table.galaxy_id % 2 == 0].reset_index(drop=True)
    cnn_pred = cnn_rows[meta_cols].assign(
        true_log_mstar=cnn_rows.log_mstar,
        pred_log_mstar=cnn_rows.log_mstar + rng.normal(0.0, 0.05, len(cnn_rows)),
        true_log_mtot=cnn_rows.log_mtot,
        pred_log_mtot=cnn_rows.log_mtot + rng.normal(0.02, 0.08, len(cnn_rows)))
    cnn_cfg = {"data": {"source": "synthetic"}, "experiment": {
        "section": "4.1", "paper": {"log_mstar": {"section": "4.1", "inputs": "r_image+vmaps",
                                                  "target": "log_mstar"}}}}
    cnn_metrics = {"targets": {t: target_metrics(cnn_pred[f"pred_{t}"], cnn_pred[f"true_{t}"],
                                                 cnn_pred.galaxy_type)
                               for t in ("log_mstar", "log_mtot")}}
    store.save("cnn", "s41_rv_mstar", PROFILE, config=cnn_cfg, metrics=cnn_metrics,
               predictions=cnn_pred)

    gb_rows = table[table.galaxy_id % 3 != 1].reset_index(drop=True)
    gb_pred = gb_rows[meta_cols].assign(
        true_log_mstar=gb_rows.log_mstar,
        pred_log_mstar=gb_rows.log_mstar + rng.normal(0.0, 0.1, len(gb_rows)))
    gain = pd.Series([0.6, 0.2, 0.1, 0.1], index=IMPORTANCE_FEATURES)
    perm = pd.DataFrame({"permutation": [0.001, 0.004, 0.0, -0.0001],
                         "permutation_std": [0.0002, 0.0005, 0.0, 0.0001]},
                        index=IMPORTANCE_FEATURES)
    shap = pd.Series([0.5, 0.3, 0.15, 0.05], index=IMPORTANCE_FEATURES)
    gb_cfg = {"data": {"source": "synthetic"}, "experiment": {
        "section": "5.2", "paper_inputs": "default features", "target": "log_mstar"}}
    store.save("gbdt", "mstar_default", PROFILE, config=gb_cfg,
               metrics={"target": "log_mstar", "importance": {"summary": "gain and SHAP agree"}},
               predictions=gb_pred)
    extra = store.run_dir("gbdt", "mstar_default", PROFILE) / "extra"  # after save: a save
    atomic_write_csv(extra / ie.IMPORTANCE_FILE, imp.importance_table(gain, perm, shap))  # is whole
    return [store.load("cnn", "s41_rv_mstar", PROFILE),
            store.load("gbdt", "mstar_default", PROFILE)]


@pytest.fixture(scope="module")
def small_setup(tmp_path_factory):
    """A 6-galaxy synthetic dataset and the two fake runs (shared by this module's tests)."""
    d = tmp_path_factory.mktemp("explorers")
    path = make_synthetic_dataset(d / "synthetic.h5", n_galaxies=6)
    return open_dataset(path), make_fake_runs(d / "results", path)


@pytest.fixture(scope="module")
def browser_payload(small_setup):
    ds, runs = small_setup
    return ie.galaxy_browser_payload(ds, runs, n_samples=3, progress=False)


def _png_size(b64text: str) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64text))).size


def _renamed(run, name: str):
    """A copy of a stored run under another name (labels come from kind/name)."""
    return type(run)(**{**run.__dict__, "name": name})


# --------------------------------------------------------------------------- data helpers


def test_prediction_pairs_follow_the_store_convention():
    frame = pd.DataFrame(columns=["galaxy_id", "true_a", "pred_a", "b_true", "b_pred",
                                  "true_lonely", "c_pred", "pred_d_derived", "true_d",
                                  "true_d_from_masses", "pred_e_derived"])
    assert ie.prediction_pairs(frame) == {"a": ("true_a", "pred_a"),
                                          "d_derived": ("true_d", "pred_d_derived")}


def test_target_stats_match_metric_on_the_predictions(small_setup):
    _, (cnn, gbdt) = small_setup
    p = gbdt.predictions
    stats = ie.target_stats(gbdt, "log_mstar")
    expected = log_ratio_stats(p.pred_log_mstar, p.true_log_mstar)
    assert stats["all"]["bias"] == pytest.approx(expected["bias"])
    assert stats["all"]["sigma"] == pytest.approx(expected["sigma"])
    late = p[p.galaxy_type == 0]
    assert stats["late"]["n"] == len(late)
    assert stats["late"]["bias"] == pytest.approx((late.pred_log_mstar - late.true_log_mstar)
                                                  .mean())
    with pytest.raises(KeyError, match="log_mdm"):
        ie.target_stats(cnn, "log_mdm")


def test_paper_reference_follows_the_experiment_config(small_setup):
    _, (cnn, gbdt) = small_setup
    row = paper_row("4.1", "cnn", "r_image+vmaps", "log_mstar")
    ref = ie.paper_reference(cnn, "log_mstar")
    assert ref["sigma"] == pytest.approx(row["sigma"])
    assert ie.paper_reference(cnn, "log_mtot") is None  # no mapping for this target
    row = paper_row("5.2", "lightgbm", "default features", "log_mstar")
    assert ie.paper_reference(gbdt, "log_mstar")["sigma"] == pytest.approx(
        row["sigma"])


def test_rebin_conserves_flux_for_any_size():
    img = np.random.default_rng(0).random((67, 67))
    out = ie.rebin_sum(img, 20)
    assert out.shape == (20, 20)
    assert out.sum() == pytest.approx(img.sum(), rel=1e-12)
    vals = np.full((50, 50), 3.0)
    mask = np.zeros((50, 50), bool)
    mask[:, :25] = True
    mean, valid = ie.rebin_map(vals, mask, 10)
    assert np.allclose(mean[valid], 3.0)
    assert valid[:, :5].all() and not valid[:, 5:].any()


def test_browser_samples_prefer_shared_test_samples(small_setup):
    ds, runs = small_setup
    chosen = ie.browser_samples(ds.table, runs, None)
    assert set(chosen.galaxy_id) == {0, 2}  # even and not 1 mod 3, among ids 0..5
    assert len(chosen) == 6  # two galaxies x three projections
    assert (ds.table.loc[chosen.row, "galaxy_id"].to_numpy() == chosen.galaxy_id).all()
    capped = ie.browser_samples(ds.table, runs, 4)
    assert len(capped) == 4 and capped.equals(ie.browser_samples(ds.table, runs, 4))
    other = runs[0].predictions.assign(galaxy_id=runs[0].predictions.galaxy_id + 1000)
    with pytest.raises(ValueError, match="none of the runs' test samples"):
        ie.browser_samples(ds.table, [type(runs[0])(**{**runs[0].__dict__,
                                                        "predictions": other})], 3)
    no_ids = runs[1].predictions.drop(columns="projection")
    with pytest.raises(ValueError, match="gbdt/mstar_default.*lacks projection"):
        ie.browser_samples(ds.table, [type(runs[1])(**{**runs[1].__dict__,
                                                        "predictions": no_ids})], 3)


def test_sample_images_are_rebinned_to_the_requested_size(small_setup):
    ds, _ = small_setup
    imgs = ie.sample_images(ds, [0, 4], image_px=8)[1]
    full = ds.load_inputs(["image_r_16"], np.array([4]))["image_r_16"][0]
    assert imgs["image_r_16"].shape == (8, 8)
    assert imgs["image_r_16"].sum() == pytest.approx(full.sum(), rel=1e-5)
    assert imgs["vel_map"].shape == (8, 8) and imgs["map_mask"].shape == (8, 8)


# --------------------------------------------------------------------------- payloads


def test_galaxy_browser_payload_matches_the_runs(browser_payload, small_setup):
    _, (cnn, gbdt) = small_setup
    assert browser_payload["kind"] == "galaxy-browser"
    assert len(browser_payload["samples"]) == 3
    for s in browser_payload["samples"]:
        w, h = _png_size(s["png"])
        assert w > 100 and h > 50
    first = browser_payload["samples"][0]
    p = cnn.predictions
    hit = p[(p.galaxy_id == first["galaxy_id"]) & (p.projection == first["projection"])]
    row = next(r for r in first["rows"] if r[:2] == ["cnn/s41_rv_mstar", "log_mstar"])
    assert row[2] == pytest.approx(float(hit.true_log_mstar.iloc[0]), abs=1e-4)
    assert row[3] == pytest.approx(float(hit.pred_log_mstar.iloc[0]), abs=1e-4)
    assert {r[0] for r in first["rows"]} == {"cnn/s41_rv_mstar", "gbdt/mstar_default"}
    assert "3 test samples" in browser_payload["note"]


def test_galaxy_browser_payload_fits_the_page_budget(browser_payload):
    per_sample = len(json.dumps(browser_payload["samples"])) / 3
    assert per_sample * ie.DEFAULT_MAX_SAMPLES < ie.PAGE_BUDGET_BYTES


def test_fit_budget_keeps_an_evenly_spaced_subset():
    sizes = [10] * 10
    assert list(ie.fit_budget(sizes, 1000)) == list(range(10))
    kept = ie.fit_budget(sizes, 45)
    assert len(kept) == 4 and kept[0] == 0 and kept[-1] == 9
    assert len(ie.fit_budget(sizes, 1)) == 1


def test_galaxy_browser_drops_samples_over_the_byte_budget(small_setup, monkeypatch):
    ds, runs = small_setup  # PNGs stand-ins of different sizes: the budget logic, not matplotlib
    monkeypatch.setattr(ie, "render_sample_png", lambda _, title, *a, **k: title.encode() * 300)
    full = ie.galaxy_browser_payload(ds, runs, n_samples=3, progress=False)["samples"]
    sizes = [len(json.dumps(s)) for s in full]
    budget = ie.PAGE_OVERHEAD_BYTES + len(full[0]["png"]) + sizes[0] + sizes[2] + 1
    with pytest.warns(UserWarning, match="keeping 2 evenly spaced"):
        data = ie.galaxy_browser_payload(ds, runs, n_samples=3, max_bytes=budget,
                                         progress=False)
    assert [s["title"] for s in data["samples"]] == [full[0]["title"], full[2]["title"]]


def test_experiment_payload(small_setup):
    _, (cnn, gbdt) = small_setup
    data = ie.experiment_payload([cnn, gbdt], progress=False)
    assert [r["label"] for r in data["runs"]] == ["cnn/s41_rv_mstar", "gbdt/mstar_default"]
    assert [t["target"] for t in data["runs"][0]["targets"]] == ["log_mstar", "log_mtot"]
    entry = data["runs"][1]["targets"][0]
    assert entry["stats"]["all"]["sigma"] == pytest.approx(
        ie.target_stats(gbdt, "log_mstar")["all"]["sigma"], abs=1e-4)
    assert entry["true"] == pytest.approx(gbdt.predictions.true_log_mstar.round(4).tolist())
    assert entry["paper"] is not None
    assert "synthetic" in data["runs"][0]["source"]
    only = ie.experiment_payload([cnn], targets=["log_mtot"], progress=False)
    assert [t["target"] for t in only["runs"][0]["targets"]] == ["log_mtot"]
    with pytest.raises(ValueError, match="log_mdm"):
        ie.experiment_payload([cnn], targets=["log_mdm"], progress=False)


def test_importance_payload_uses_the_gbdt_table_and_skips_runs_without(small_setup):
    _, (cnn, gbdt) = small_setup
    data = ie.importance_payload([cnn, gbdt])
    assert [r["label"] for r in data["runs"]] == ["gbdt/mstar_default"]
    run = data["runs"][0]
    assert run["target"] == "log_mstar"
    table = ie.load_importances(gbdt)
    i = run["features"].index("g_r")
    assert run["permutation"][i] == pytest.approx(float(
        table.set_index("feature").loc["g_r", "permutation_frac"]), abs=1e-4)
    assert sum(run["shap"]) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="importance.csv"):
        ie.importance_payload([cnn])


def test_broken_importance_table_names_the_file(small_setup, tmp_path):
    _, (_, gbdt) = small_setup
    bad = type(gbdt)(**{**gbdt.__dict__, "path": tmp_path})
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / ie.IMPORTANCE_FILE).write_text("feature,gain\nM_r,1\n")
    with pytest.raises(ValueError, match=r"importance.csv.*permutation"):
        ie.load_importances(bad)


# --------------------------------------------------------------------------- static figures


def _visible(fig, mask=None) -> list:
    return [t for t, v in zip(fig.data, mask or [t.visible for t in fig.data], strict=True)
            if v]


def test_experiment_figure_dropdown_switches_the_drawn_data(small_setup):
    _, (cnn, gbdt) = small_setup
    payload = ie.experiment_payload([cnn, gbdt], progress=False)
    fig = ie.experiment_figure(payload)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["cnn/s41_rv_mstar \u00b7 log_mstar",
                                          "cnn/s41_rv_mstar \u00b7 log_mtot",
                                          "gbdt/mstar_default \u00b7 log_mstar"]
    first = _visible(fig)
    assert "cnn/s41_rv_mstar: log_mstar" in fig.layout.title.text
    shown = _visible(fig, buttons[2].args[0]["visible"])  # what the last entry shows
    assert not set(map(id, shown)) & set(map(id, first))
    points = [t for t in shown if t.type == "scatter" and t.mode == "markers"]
    drawn = np.sort(np.concatenate([t.x for t in points]))
    assert drawn == pytest.approx(np.sort(gbdt.predictions.true_log_mstar.to_numpy()),
                                  abs=1e-4)
    table = next(t for t in shown if t.type == "table")
    sigma = ie.target_stats(gbdt, "log_mstar")["all"]["sigma"]
    assert f"{sigma:.3f}" in table.cells.values[3]
    assert "gbdt/mstar_default" in buttons[2].args[1]["title.text"]
    assert "M_tot" in buttons[1].args[1]["xaxis.title.text"]


def test_importance_figure_orders_bars_per_method(small_setup):
    _, runs = small_setup
    payload = ie.importance_payload(runs)
    fig = ie.importance_figure(payload)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label.split(" \u00b7 ")[1] for b in buttons] == list(ie.IMPORTANCE_METHODS)
    gain, perm = fig.data[0], fig.data[1]
    assert gain.visible and not perm.visible
    assert list(gain.y)[-1] == "M_r" and list(perm.y)[-1] == "g_r"  # largest bar on top
    assert "dex\u00b2" in perm.text[-1]
    assert buttons[1].args[0]["visible"] == [False, True, False]
    assert "permutation" in buttons[1].args[1]["title.text"]


def test_galaxy_browser_figure_slider_has_one_step_per_sample(browser_payload):
    fig = ie.galaxy_browser_figure(browser_payload)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 3
    images = [t for t in fig.data if t.type == "image"]
    assert [i.source[22:60] for i in images] == [s["png"][:38]
                                                 for s in browser_payload["samples"]]
    shown = _visible(fig, steps[2].args[0]["visible"])
    assert shown[0].source.endswith(browser_payload["samples"][2]["png"][-40:])
    assert steps[2].args[1]["title.text"] == browser_payload["samples"][2]["title"]


# --------------------------------------------------------------------------- HTML


def test_explorer_html_is_offline_and_bundles_plotly_once_per_page(small_setup):
    _, runs = small_setup
    ie.new_page()
    first = ie.importance_explorer_html(runs)
    second = ie.importance_explorer_html(runs)
    assert first.count("plotly.js v") == 1 and "plotly.js v" not in second
    for block in (first, second):
        assert "<script src" not in block and 'src="http' not in block
        assert "cdn." not in block.replace(ie._plotlyjs(), "")
    ids = [re.search(r'<figure id="([^"]+)"', x).group(1) for x in (first, second)]
    assert ids[0] != ids[1]
    ie.new_page()
    assert "plotly.js v" in ie.importance_explorer_html(runs)
    assert "plotly.js v" in ie.importance_explorer_html(runs, include_plotlyjs=True)


HOSTILE = "</script><script>alert(1)</script><!--"


def test_hostile_labels_cannot_break_out_of_the_figure(small_setup):
    _, (cnn, gbdt) = small_setup
    plain = ie.experiment_explorer_html([gbdt], progress=False, include_plotlyjs=False)
    hostile = ie.experiment_explorer_html([_renamed(gbdt, HOSTILE)], progress=False,
                                          include_plotlyjs=False)
    assert "alert(1)" in hostile  # the label is there, escaped
    assert hostile.count("</script>") == plain.count("</script>")
    assert HOSTILE not in hostile and "<!--" not in hostile


HOSTILE_TEXTS = ["<!--", "-->", "</script>", "<script>alert(1)</script>", "a & b", "]]>",
                 "</SCRIPT >", "\u2028", "<!-- </script> -->"]


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_explorer_html_escapes_any_text(text):
    payload = {"kind": "importance-explorer", "note": text,
               "methods": list(ie.IMPORTANCE_METHODS), "method_labels": ie.IMPORTANCE_METHOD_LABELS,
               "runs": [{"label": text, "target": text, "features": [text, "b"],
                         "gain": [0.6, 0.4], "permutation": [0.5, 0.5],
                         "permutation_raw": [0.1, 0.1], "permutation_std": [0.0, 0.0],
                         "shap": [0.5, 0.5], "summary": text}]}
    page = ie.explorer_html(payload, include_plotlyjs=False)
    low = page.lower()
    assert low.count("<script") == 1 and low.count("</script") == 1 and "<!--" not in page
    script = page[low.index("<script"):low.index("</script")]
    assert "\u2028" not in script


def test_write_page_is_a_standalone_document(tmp_path, small_setup):
    _, runs = small_setup
    path = ie.write_page(tmp_path / "page.html",
                         [ie.importance_explorer_html(runs, include_plotlyjs=False)], "t<1>")
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<title>t&lt;1&gt;</title>" in text
    assert text.count("plotly.js v") == 1 and 'data-explorer="importance-explorer"' in text
    assert not list(tmp_path.glob("*.tmp"))


def test_explorer_offers_the_live_widget_only_in_a_kernel(small_setup, monkeypatch):
    _, runs = small_setup
    explorer = ie.importance_explorer(runs)
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    monkeypatch.setattr(ie, "_in_kernel", lambda: True)
    bundle = explorer._repr_mimebundle_()
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] and "plotly" in bundle["text/html"]


def test_no_javascript_or_css_in_python_sources():
    from pathlib import Path

    import analysis_lib

    pattern = re.compile(r"<script|function\(|\{ *display:|addEventListener|<style")
    root = Path(analysis_lib.__file__).parent
    hits = [f"{p.name}:{i}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


# --------------------------------------------------------------------------- live widgets


def test_galaxy_browser_widget_updates_on_next_and_slider(browser_payload):
    from analysis_lib.presentation.widgets import GalaxyBrowserWidget

    wdg = GalaxyBrowserWidget(browser_payload)
    first_img, first_caption = wdg.image.value, wdg.caption.value
    assert len(first_img) > 0 and wdg.prev.disabled
    wdg.next.click()
    assert wdg.slider.value == 1
    assert wdg.caption.value != first_caption and wdg.image.value != first_img
    wdg.slider.value = 2
    assert wdg.next.disabled
    gid = browser_payload["samples"][2]["galaxy_id"]
    assert f"galaxy {gid}," in wdg.caption.value
    assert "gbdt/mstar_default" in wdg.table.value


def test_experiment_widget_switches_run_and_target(small_setup):
    from analysis_lib.presentation.widgets import experiment_explorer_widget

    _, runs = small_setup
    wdg = experiment_explorer_widget(runs, progress=False)
    assert list(wdg.target.options) == ["log_mstar", "log_mtot"]
    x0, table = np.concatenate([t.x for t in wdg.figure.data if t.type == "scatter"]), \
        wdg.stats.value
    wdg.target.value = "log_mtot"
    x1 = np.concatenate([t.x for t in wdg.figure.data if t.type == "scatter"])
    assert wdg.stats.value != table and not np.array_equal(np.sort(x0), np.sort(x1))
    wdg.run.value = 1
    assert list(wdg.target.options) == ["log_mstar"]
    sigma = ie.target_stats(runs[1], "log_mstar")["all"]["sigma"]
    assert f"{sigma:.3f}" in wdg.stats.value and "gbdt/mstar_default" in wdg.stats.value
    out = wdg.plot.outputs[0]["data"]
    assert "gbdt/mstar_default" in out["application/vnd.plotly.v1+json"]["layout"]["title"][
        "text"]


def test_importance_widget_switches_method(small_setup):
    from analysis_lib.presentation.widgets import importance_widget

    _, runs = small_setup
    wdg = importance_widget(runs)
    assert list(wdg.figure.data[0].y)[-1] == "M_r"  # gain ranks M_r first
    wdg.method.value = "permutation"
    assert list(wdg.figure.data[0].y)[-1] == "g_r"  # permutation: g_r
    assert "dex\u00b2" in wdg.figure.data[0].text[-1]
    assert wdg.summary.value == "gain and SHAP agree"


def test_one_payload_serves_both_views(small_setup):
    _, runs = small_setup
    explorer = ie.experiment_explorer(runs, progress=False)
    live = explorer.widget()
    assert live.payload is explorer.payload
    static = explorer.figure()
    assert static.data[0].x == pytest.approx(live.figure.data[0].x)
