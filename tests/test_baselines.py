"""The power-law M*(L) baseline of section 4.1."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_lib.config import load_config
from analysis_lib.dataset import open_dataset
from analysis_lib.dataset.splits import cnn_split
from analysis_lib.models.baselines import fit_power_law, run_power_law_baseline
from analysis_lib.paper import paper_row
from analysis_lib.presentation.sections import baseline_table
from analysis_lib.results import ResultsStore


def test_power_law_recovers_a_known_slope():
    rng = np.random.default_rng(4)
    log_l = rng.uniform(9.0, 11.5, 500)
    log_m = 0.3 + 1.12 * log_l + rng.normal(0, 0.05, 500)
    log_m[:3] = np.nan  # non-finite rows are ignored, not fatal
    slope, intercept = fit_power_law(log_l, log_m)
    assert slope == pytest.approx(1.12, abs=0.01)
    assert intercept == pytest.approx(0.3, abs=0.12)
    exact = fit_power_law([1.0, 2.0, 3.0], [2.5, 3.0, 3.5])
    assert exact == pytest.approx((0.5, 2.0))
    with pytest.raises(ValueError, match="distinct luminosities"):
        fit_power_law([1.0, 1.0], [2.0, 3.0])


def test_baseline_run_is_stored_on_the_cnn_test_rows(synthetic_dataset, tmp_path):
    cfg = load_config("smoke")
    store = ResultsStore(tmp_path)
    path = run_power_law_baseline(cfg, synthetic_dataset, store)
    run = store.load("baseline", path.name, "smoke")
    assert path.name == "powerlaw_lum_r_proj"
    # the fixture's M* = L * 10^0.3 with 0.03 dex noise
    assert run.metrics["fit"]["log_mstar"]["slope"] == pytest.approx(1.0, abs=0.1)
    stats = run.metrics["targets"]["log_mstar"]
    assert set(stats) == {"all", "late", "early", "paper"}
    assert stats["all"]["sigma"] < 0.06 and abs(stats["all"]["bias"]) < 0.05
    split = cnn_split(open_dataset(synthetic_dataset).table, cfg)
    assert sorted(run.predictions["row"]) == sorted(split["test"])
    assert stats["paper"]["sigma"] == pytest.approx(0.16)
    table = baseline_table(run)  # the book's table keeps the paper's number beside ours
    assert table.loc[0, "paper sigma [dex] (TNG100)"] == pytest.approx(0.16)
    assert table.loc[0, "sigma [dex]"] == pytest.approx(stats["all"]["sigma"])
    with pytest.raises(ValueError, match="baseline_luminosity"):
        run_power_law_baseline(load_config("smoke", {"cnn.baseline_luminosity": "flux"}),
                               synthetic_dataset, store)


def test_paper_row_lookup():
    row = paper_row("4.2", "cnn", "vmaps", "log_mtot")
    assert row["sigma"] == pytest.approx(0.09)
    assert paper_row("4.1", "cnn", "r_image@150", "log_mstar")["bias"] is None
    with pytest.raises(ValueError, match="matches 0 rows"):
        paper_row("4.9", "cnn", "vmaps", "log_mtot")
