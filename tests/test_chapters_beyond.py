"""The "Beyond the paper" chapter's glue: what each profile runs, read from the profiles."""

from types import SimpleNamespace

import pandas as pd
import pytest

from analysis_lib.config import load_config
from analysis_lib.presentation import chapters_beyond as cb


def test_profile_coverage_reads_the_profiles():
    table = cb.profile_coverage()
    assert list(table.columns) == ["smoke", "quick", "paper"]
    paper = load_config("paper")
    assert table.loc["seeds per repeated CNN experiment", "paper"] == str(paper["cnn"]["seeds"])
    assert table.loc["CNN experiments repeated over seeds", "smoke"] == "none"  # 1 seed
    assert "s41_rmaps_mstar" in table.loc["CNN experiments repeated over seeds", "paper"]
    quick = load_config("quick", ["transfer.cnn_epochs=3"])
    assert quick["transfer"]["cnn_epochs"] == 3  # the table follows the profile, not a copy
    assert table.loc["CNN transfer: trained on", "quick"] == ", ".join(
        load_config("quick")["transfer"]["cnn_train_universes"])


def test_transfer_universes_from_parameter_or_profile():
    cfg = load_config("smoke")
    assert cb.parse_universes("", cfg) == cfg["transfer"]["universes"]
    assert cb.parse_universes(" observed, radial ", cfg) == ["observed", "radial"]
    with pytest.raises(ValueError, match="not in analysis_lib/universes.yaml"):
        cb.parse_universes("observed,no_such_universe", cfg)
    with pytest.raises(ValueError, match="at least two"):
        cb.parse_universes("observed,observed", cfg)


def test_gbdt_calibration_table_before_and_after():
    block = {"coverage_68": 0.5, "coverage_95": 0.9, "crps": 0.05, "n": 10}
    after = {**block, "coverage_68": 0.68}
    run = SimpleNamespace(name="mstar_probabilistic",
                          config={"experiment": {"targets": ["log_mstar"]}},
                          metrics={"calibration": {"before": block, "after": after}})
    plain = SimpleNamespace(name="mstar", config={}, metrics={})
    table = cb.gbdt_calibration_table([run, plain])
    assert list(table["intervals"]) == ["raw quantiles", "after CQR"]
    assert list(table["coverage_68"]) == [0.5, 0.68]
    assert set(table["target"]) == {"log_mstar"}


def test_paper_scale_plan_adds_up(tmp_path):
    import json

    from analysis_lib.presentation import report

    exp = {"experiment": "s41_r_mstar", "inputs": {"image_r": 300}, "run_pflop": 100.0,
           "train_flops_per_sample": 2e10, "checkpoint_bytes_est": 2**20,
           "gpu_resident_inputs_gib_bf16": 1.0}
    plan = {"epochs": 200, "rows": {"train": 16000, "val": 4000, "test": 8110},
            "paper_dataset_gib_est": 19.0, "experiments": [exp]}
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps({"plan": plan, "gpu": {"runs": [{"mfu": 0.5}]}}))
    table, summary = report.paper_scale_plan(path, mfus=(0.25,), peak_tflops=1000.0)
    # 100 PFLOP at 25 % of 1000 TFLOP/s = 400 s; the measured MFU (0.5) gives a column too
    assert table.loc[0, "h at MFU 25%"] == pytest.approx(400 / 3600)
    assert table.loc[0, "h at measured MFU 50%"] == pytest.approx(200 / 3600)
    assert "1 MiB" in summary.set_index("item").loc["largest checkpoint", "value"]


def test_radius_pivot_puts_radii_side_by_side():
    import pandas as pd

    rows = []
    for method, family in (("Wolf+2010", "mtot"), ("LightGBM", "mstar")):
        for radius, label in ((0.5, "0.5 R_half"), (1.0, "1 R_half"), (2.0, "2 R_half")):
            for group in ("all", "early"):
                rows.append({"method": method, "family": family, "radius_rhalf": radius,
                             "radius_label": label, "group": group, "bias": radius / 10,
                             "sigma": radius if group == "all" else -1.0})
    pivot = cb.radius_pivot(pd.DataFrame(rows), "all")
    assert list(pivot.columns.get_level_values(1)[:3]) == ["0.5 R_half", "1 R_half", "2 R_half"]
    assert pivot.loc[("M_tot", "Wolf+2010"), ("scatter (dex)", "2 R_half")] == 2.0
    assert pivot.loc[("M*", "LightGBM"), ("bias (dex)", "0.5 R_half")] == 0.05


def test_paper_scale_plan_without_a_benchmark(tmp_path):
    from analysis_lib.presentation import report

    assert report.paper_scale_plan(tmp_path / "cnn.json") is None


def test_seed_spread_table_counts_the_seeds_of_each_number(tmp_path):
    from analysis_lib.results import ResultsStore

    store = ResultsStore(tmp_path)
    cfg = load_config("smoke", ["cnn.seeds=3", "cnn.seed_experiments=s41_rmaps_mstar",
                                "cnn.probabilistic_experiments=[]"])
    assert cb.seed_spread_table(cfg, store).empty  # nothing stored yet: an empty table
    for name, sigma in (("s41_rmaps_mstar", 0.10), ("s41_rmaps_mstar__s1", 0.12),
                        ("s41_rmaps_mstar__s2", 0.14)):
        metrics = {"targets": {"log_mstar": {"all": {"sigma": sigma, "bias": 0.0, "n": 9}}}}
        store.save("cnn", name, "smoke", config={}, metrics=metrics,
                   predictions=pd.DataFrame())
    row = cb.seed_spread_table(cfg, store).iloc[0]
    assert row["experiment"] == "s41_rmaps_mstar" and row["n_seeds"] == 3
    assert row["sigma_mean"] == pytest.approx(0.12) and row["sigma_std"] == pytest.approx(0.02)


def test_split_and_augmentation_tables_follow_the_profile(tmp_path):
    from analysis_lib.results import ResultsStore

    store = ResultsStore(tmp_path)
    for name, sigma in (("s41_r30_mstar", 0.12), ("s41_r30_mstar__projsplit", 0.10),
                        ("s41_r30_mstar__dihedral", 0.11)):
        metrics = {"targets": {"log_mstar": {"all": {"sigma": sigma, "bias": 0.0, "n": 9}}}}
        store.save("cnn", name, "smoke", config={}, metrics=metrics,
                   predictions=pd.DataFrame())
    none = load_config("smoke", ["cnn.projsplit_experiments=[]",
                                 "cnn.augment_experiments=[]"])
    assert cb.projection_split_table(none, store).empty
    assert cb.augmentation_table(none, store).empty
    cfg = load_config("smoke", ["cnn.projsplit_experiments=[s41_r30_mstar]",
                                "cnn.augment_experiments=[s41_r30_mstar]"])
    split = cb.projection_split_table(cfg, store).iloc[0]
    assert split["flattery"] == pytest.approx(1.2)
    aug = cb.augmentation_table(cfg, store).iloc[0]
    assert aug["sigma_dihedral"] == pytest.approx(0.11)
    assert aug["ratio"] == pytest.approx(0.12 / 0.11)
