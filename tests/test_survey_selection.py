"""Chapter 5.4's experiments come from the profile (book.survey_cnn / book.survey_gbdt)."""

from __future__ import annotations

import pytest

from analysis_lib.config import load_config
from analysis_lib.models.experiments import ExperimentError, load_experiments
from analysis_lib.presentation.sections import survey_experiments


def test_quick_trains_one_joint_network_and_paper_one_per_mass():
    quick_cnn, quick_gbdt = survey_experiments(load_config("quick"))
    paper_cnn, _ = survey_experiments(load_config("paper"))
    experiments = load_experiments("cnn")
    # quick: one network whose targets cover both masses the paper profile trains separately
    assert len(quick_cnn) == 1
    paper_targets = {t for name in paper_cnn for t in experiments[name]["targets"]}
    assert set(experiments[quick_cnn[0]]["targets"]) >= paper_targets
    assert len(paper_cnn) > len(quick_cnn)
    # the same kind of inputs on both: the comparison is about the data, not the model
    for name in paper_cnn:
        assert experiments[name]["inputs"] == experiments[quick_cnn[0]]["inputs"]
    assert quick_gbdt == load_config("quick")["book"]["survey_gbdt"]


def test_given_selection_wins_and_override_reaches_it():
    cfg = load_config("quick")
    assert survey_experiments(cfg, ["s41_rmaps_mstar"], "mstar_default") == (
        ["s41_rmaps_mstar"], "mstar_default")
    cfg = load_config("quick", ["book.survey_cnn=[s41_rmaps_mstar, s42_rmaps_mtot]"])
    assert survey_experiments(cfg)[0] == ["s41_rmaps_mstar", "s42_rmaps_mtot"]
    assert survey_experiments(load_config("quick", ["book.survey_cnn=[]"]))[0] == []


def test_unknown_name_fails_before_any_work():
    with pytest.raises(ExperimentError, match="s41_nonexistent"):
        survey_experiments(load_config("quick"), ["s41_nonexistent"])
    cfg = load_config("quick", ["book.survey_gbdt=no_such_gbdt"])
    with pytest.raises(ExperimentError, match="no_such_gbdt"):
        survey_experiments(cfg)
