"""The discussion is written from the numbers: synthetic stores whose outcomes differ must give
sentences that differ, missing runs are skipped, and every number names its data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analysis_lib.metrics import target_metrics
from analysis_lib.models.experiments import load_experiments
from analysis_lib.presentation import discussion as disc
from analysis_lib.results import ResultsStore, atomic_write_csv

PROFILE = "test"
N_GAL = 80
LABEL = "mock universe (this library), test profile"


def _truth(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    gal = np.repeat(np.arange(N_GAL), 3)
    return pd.DataFrame({"galaxy_id": gal, "projection": np.tile([0, 1, 2], N_GAL),
                         "galaxy_type": gal % 2, "inclination_deg": rng.uniform(0, 90, len(gal)),
                         "log_mstar": np.repeat(rng.normal(10.5, 0.3, N_GAL), 3),
                         "log_mtot": np.repeat(rng.normal(10.9, 0.3, N_GAL), 3)})


def _save(store: ResultsStore, kind: str, name: str, sigmas: dict[str, float], seed: int,
          experiment: dict | None = None, extra_metrics: dict | None = None,
          extra_cols: dict | None = None, rows: pd.DataFrame | None = None,
          metrics_targets: bool = True) -> None:
    t = _truth() if rows is None else rows
    rng = np.random.default_rng(seed)
    pred = t[["galaxy_id", "projection", "galaxy_type", "inclination_deg"]].copy()
    for target, sigma in sigmas.items():
        pred[f"true_{target}"] = t[target]
        pred[f"pred_{target}"] = t[target] + rng.normal(0.0, sigma, len(t))
    for k, v in (extra_cols or {}).items():
        pred[k] = v
    metrics = {"targets": {k: target_metrics(pred[f"pred_{k}"], pred[f"true_{k}"],
                                             pred.galaxy_type) for k in sigmas}
               if metrics_targets else {}}
    metrics.update(extra_metrics or {})
    config = {"data": {"source": "mock"}, "profile": PROFILE, "cnn": {"epochs": 10},
              "split": {"by": "galaxy"}}
    if experiment is not None:
        config["experiment"] = experiment
    store.save(kind, name, PROFILE, config=config, metrics=metrics, predictions=pred,
               meta={"resolution_used": 60})


def make_store(root, sigma_r: float = 0.15, sigma_rmaps: float = 0.05,
               sigma_leaky: float = 0.05, with_jam: bool = True) -> ResultsStore:
    store = ResultsStore(root)
    cnn = load_experiments("cnn")
    gbdt = load_experiments("gbdt")
    _save(store, "cnn", "s41_r_mstar", {"log_mstar": sigma_r}, 1, cnn["s41_r_mstar"],
          {"best_epoch": 10})
    _save(store, "cnn", "s41_rmaps_mstar", {"log_mstar": sigma_rmaps}, 2,
          cnn["s41_rmaps_mstar"], {"best_epoch": 4})
    _save(store, "baseline", "powerlaw_lum_r_proj", {"log_mstar": 0.25}, 3,
          extra_metrics={"luminosity": "log_lum_r_proj"})
    for name, target, seed in (("mstar_default", "log_mstar", 4), ("mtot_default", "log_mtot", 5)):
        _save(store, "gbdt", name, {target: 0.10}, seed, gbdt[name],
              {"target": target, "split_by": "galaxy", "n_test": 240, "n_galaxies_test": N_GAL})
        _save(store, "gbdt", f"{name}__by_projection", {target: sigma_leaky}, seed + 10,
              gbdt[name], {"target": target, "split_by": "projection",
                           "test_galaxies_also_in_train": 70, "n_galaxies_test": N_GAL})
    imp = pd.DataFrame({"feature": ["M_r", "sigma_e", "g_r"], "rank_gain": [2, 1, 3],
                        "rank_permutation": [1, 2, 3], "rank_shap": [1, 2, 3]})
    atomic_write_csv(store.run_dir("gbdt", "mstar_default", PROFILE) / "extra" /
                     "importance.csv", imp)
    if with_jam:  # JAM on 20 galaxies, metrics.json without targets (as a real run had)
        rows = _truth()[lambda f: f.galaxy_id < 20].reset_index(drop=True)
        _save(store, "jam", "jam_nfw", {"log_mstar": 0.3, "log_mtot": 0.2}, 6, rows=rows,
              extra_cols={"status": "ok"}, metrics_targets=False,
              extra_metrics={"n_ok": len(rows), "n_samples": len(rows), "n_failed": 0})
    return store


def _maps_sentence(store) -> str:
    hits = [s for s in disc.findings(PROFILE, store) if "kinematic maps to the r image" in s]
    assert len(hits) == 1
    return hits[0]


def test_maps_finding_flips_with_the_numbers(tmp_path):
    better = _maps_sentence(make_store(tmp_path / "a", sigma_r=0.15, sigma_rmaps=0.05))
    worse = _maps_sentence(make_store(tmp_path / "b", sigma_r=0.05, sigma_rmaps=0.15))
    same = _maps_sentence(make_store(tmp_path / "c", sigma_r=0.08, sigma_rmaps=0.08))
    assert "improves the CNN's M*" in better and "does not" not in better
    assert "does not improve" in worse and "r image alone scatters less" in worse
    assert "does not measurably change" in same and "a tie" in same
    for s in (better, worse, same):
        assert LABEL in s and "sigma = " in s
        assert "0.04 dex (r image + maps) vs 0.06 dex (r image)" in s  # the paper's numbers


def test_leakage_and_baseline_findings(tmp_path):
    leaky = disc.findings(PROFILE, make_store(tmp_path / "a", sigma_leaky=0.05))
    honest = disc.findings(PROFILE, make_store(tmp_path / "b", sigma_leaky=0.10))
    flatter = [s for s in leaky if "projection-level split flatters" in s]
    assert len(flatter) == 2 and "70 of its 80 test galaxies" in flatter[0]
    assert not any("projection-level split flatters" in s for s in honest)
    assert sum("does not measurably flatter" in s for s in honest) == 2
    assert any("beats the power law" in s for s in leaky)
    imp = [s for s in leaky if "importance measures" in s]
    assert imp and "sigma_e by gain" in imp[0] and "M_r by permutation" in imp[0]
    jam = [s for s in leaky if s.startswith(f"On the {LABEL}, JAM")]
    assert jam and all("same galaxies" in s and "N = 60 samples of 20 galaxies" in s
                       for s in jam)


def test_headline_table_labels_and_paper_numbers(tmp_path):
    table = disc.headline_table(PROFILE, make_store(tmp_path))
    assert list(table.columns) == disc.COLUMNS
    assert set(table["data (this study)"]) == {LABEL}
    assert not table["data (this study)"].str.contains("TNG").any()
    row = table.set_index("run").loc["s41_rmaps_mstar"]
    assert row["question"] == "M* from r image + kinematic maps (4.1)"
    assert row["paper sigma [dex] (TNG100)"] == pytest.approx(0.04)
    assert row["sigma - paper [dex]"] == pytest.approx(row["sigma [dex]"] - 0.04)
    base = table[table.run == "powerlaw_lum_r_proj"].iloc[0]
    assert base["paper sigma [dex] (TNG100)"] == pytest.approx(0.16)
    leaky = table[table.run == "mstar_default__by_projection"].iloc[0]
    assert leaky.split == "projection" and "leaky" in leaky.question
    jam = table[table.method == "JAM"]  # computed from predictions; no paper number
    assert set(jam.target) == {"log_mstar", "log_mtot"} and jam["N test"].eq(60).all()
    assert jam["paper sigma [dex] (TNG100)"].isna().all()


def test_missing_runs_are_skipped(tmp_path):
    store = ResultsStore(tmp_path)
    assert disc.headline_table(PROFILE, store).empty
    assert disc.findings(PROFILE, store) == []
    assert "No runs" in disc.limitations(PROFILE, store)[0]
    _save(store, "cnn", "s41_rmaps_mstar", {"log_mstar": 0.05}, 2,
          load_experiments("cnn")["s41_rmaps_mstar"])
    table = disc.headline_table(PROFILE, store)
    assert list(table.run) == ["s41_rmaps_mstar"]
    found = disc.findings(PROFILE, store)
    assert len(found) == 1 and "rows with a number from the paper" in found[0]


def test_limitations_follow_the_runs(tmp_path):
    lims = disc.limitations(PROFILE, make_store(tmp_path, with_jam=False))
    text = " ".join(lims)
    assert "not from IllustrisTNG100" in text
    assert "10 epochs, against the paper's 200" in text
    assert "in 1 of 2 runs the best validation loss came at the last epoch" in text
    assert "60 px instead of the paper's 300 px" in text
    assert "240 samples of 80 galaxies" in text
    assert "JAM" not in text
    assert "**Findings**" in disc.evidence_markdown(PROFILE, ResultsStore(tmp_path))
    assert "**Limitations.** " in disc.markdown(PROFILE, ResultsStore(tmp_path))


# --------------------------------------------------------------------------- synthesis


def _sentences(text: str) -> list[str]:
    lines = [line.removeprefix("- ") for line in text.splitlines()]
    return [s for line in lines for s in re.split(r"(?<=[.!?])\s+(?=[A-Z*])", line)
            if s.strip()]


def _template(sentence: str) -> str:
    """A sentence with its numbers and target names blanked: equal templates = repetition."""
    s = re.sub(r"[-+]?\d[\d.]*", "#", sentence)
    for lead in (x for leads in disc._CONNECT.values() for x in leads):
        s = s.removeprefix(lead)
    s = s[:1].lower() + s[1:]
    for name in ("M*/L_r", "M_tot", "M_DM", "f_DM", "M*"):
        s = s.replace(name, "T")
    return s


def test_synthesis_is_one_paragraph_per_theme_written_from_the_numbers(tmp_path):
    better = dict(disc.synthesis(PROFILE, make_store(tmp_path / "a", sigma_r=0.15,
                                                     sigma_rmaps=0.05, sigma_leaky=0.05)))
    worse = dict(disc.synthesis(PROFILE, make_store(tmp_path / "b", sigma_r=0.05,
                                                    sigma_rmaps=0.15, sigma_leaky=0.10)))
    titles = [title for _, title in disc.THEMES]
    assert list(better) == titles  # every theme has runs in this store
    maps = "What the kinematic maps add"
    assert "improves the CNN's M*" in better[maps] and "does not improve" in worse[maps]
    assert "0.04 dex (r image + maps) vs 0.06 dex (r image) for M*" in better[maps]
    leak = "How much the paper's split flatters"
    assert "flatters LightGBM's M* scatter" in better[leak]
    assert "the same holds for M_tot" in better[leak]  # one sentence for both targets
    assert "flatters LightGBM" not in worse[leak] and "up to" not in worse[leak]
    assert "sigma_e by gain" in better["What drives LightGBM"]
    assert "not from IllustrisTNG100" in better["Mock universe or TNG100"]
    for paragraphs in (better, worse):
        for text in paragraphs.values():
            assert text.count(f"On the {LABEL}") <= 1  # the data named once per paragraph
            assert "dex" in text


def test_discussion_repeats_no_sentence_template(tmp_path):
    text = disc.markdown(PROFILE, make_store(tmp_path))
    body = text.split("**Limitations.**")[0]
    sentences = _sentences(body)
    templates = [_template(s) for s in sentences]
    assert len(sentences) > 10
    assert len(set(templates)) == len(templates), [
        s for s in templates if templates.count(s) > 1]
    assert text.count("95% bootstrap interval") == 1  # the method, stated once
    assert text.count("**") >= 2 * len(disc.THEMES)


def test_summary_figure_shows_every_method_beside_the_paper(tmp_path):
    import matplotlib.pyplot as plt

    store = make_store(tmp_path)
    table = disc.headline_table(PROFILE, store)
    rows = table[table.group == "all"]
    fig = disc.summary_figure(PROFILE, store)
    bias_ax, sigma_ax = fig.axes[:2]
    assert "dex" in bias_ax.get_xlabel() and "dex" in sigma_ax.get_xlabel()
    ticks = [t.get_text() for t in bias_ax.get_yticklabels()]
    assert len(ticks) == len(rows)
    assert {t.split(":")[0] for t in ticks} == set(rows.method)
    paper = [c for c in sigma_ax.collections if c.get_label() == "paper (TNG100)"][0]
    assert len(paper.get_offsets()) == rows["paper sigma [dex] (TNG100)"].notna().sum()
    ours = np.concatenate([c.get_offsets()[:, 0] for c in sigma_ax.collections
                           if "this study" in str(c.get_label())])
    assert sorted(ours) == pytest.approx(sorted(rows["sigma [dex]"]))
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "paper (TNG100)" in labels and "JAM (this study)" in labels
    plt.close(fig)
    with pytest.raises(ValueError, match="empty"):
        disc.summary_figure(PROFILE, ResultsStore(tmp_path / "empty"))


def test_findings_name_experiments_that_exist_and_fit_the_claim():
    """Why: findings pick their runs from the experiment files (not hard-coded names); each
    pick must exist and read/predict what the sentence says."""
    cnn, gbdt = load_experiments("cnn"), load_experiments("gbdt")
    for name in disc.cnn_experiments_with(disc.R_IMAGE_MAPS, "log_mtot"):
        assert set(cnn[name]["inputs"]) == set(disc.R_IMAGE_MAPS)
        assert cnn[name]["targets"] == ["log_mtot"]
    joint = disc._joint_cnn()
    assert joint is not None and cnn[joint]["targets"] == list(disc.JOINT_TARGETS)
    first = disc.cnn_candidates("log_mstar")[0]
    assert "headline" in cnn[first]["tags"] and cnn[first]["targets"] == ["log_mstar"]
    assert disc.cnn_candidates("log_fdm") == []  # no CNN predicts f_DM directly
    for target in ("log_mstar", "log_mtot", "log_fdm", "log_ml_r"):
        name = disc.gbdt_experiment(target)
        assert gbdt[name]["targets"] == [target]
        assert gbdt[name]["paper"][target]["inputs"] == disc.DEFAULT_FEATURES
    assert disc.gbdt_experiment("log_ml_r", disc.NO_MR_FEATURES) is None


def test_one_mapping_from_model_kind_to_the_papers_method():
    from analysis_lib.paper import paper_method

    assert [paper_method(k) for k in ("cnn", "gbdt", "baseline", "jam")] == [
        "cnn", "lightgbm", "powerlaw", None]
