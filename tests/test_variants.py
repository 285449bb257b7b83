"""Runs on different data (source, universe, instrument) live side by side in the store."""

from analysis_lib.config import load_config, store_label
from analysis_lib.presentation.report import run_data_label
from analysis_lib.results import Run


def test_store_label_names_what_differs_from_the_default_study():
    assert store_label(load_config("quick")) == "quick"
    assert store_label(load_config("quick", ["observe.instrument=manga_like"])) == \
        "quick+manga_like"
    assert store_label(load_config("smoke", ["mock.universe=tng_like"])) == "smoke+tng_like"
    both = load_config("smoke", ["mock.universe=radial", "observe.instrument=manga_like"])
    assert store_label(both) == "smoke+radial+manga_like"
    # a universe is a property of the mock: TNG data are labelled by their source
    assert store_label(load_config("paper", ["data.source=tng"])) == "paper+tng"


def test_data_label_of_a_variant_run_reads_as_profile_and_variant():
    run = Run(kind="cnn", name="x", profile="quick+manga_like", path=None,
              config={"data": {"source": "mock"}}, meta={}, metrics={}, predictions=None,
              history=None)
    label = run_data_label(run)
    assert label.endswith("quick profile, manga_like")
    assert "mock" in label
