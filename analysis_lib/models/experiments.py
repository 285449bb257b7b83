"""Named experiments (every row of the paper's Tables 4 and 6) as data, one YAML per model kind.

`experiments_cnn.yaml` and `experiments_gbdt.yaml` beside this file map a name to its settings
(inputs, targets, aperture, resolution, section of the paper, and which profiles run it).
"""

from __future__ import annotations

from importlib import resources

import yaml


class ExperimentError(KeyError):
    """An experiment name or selection that does not exist."""


def load_experiments(kind: str) -> dict[str, dict]:
    """All experiments of a model kind ('cnn' or 'gbdt'), in file order."""
    text = resources.files("analysis_lib.models").joinpath(f"experiments_{kind}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    return {name: {"name": name, **spec} for name, spec in data.items()}


def select_experiments(kind: str, selection: str | list[str]) -> list[dict]:
    """'all', a tag such as 'headline' or 'smoke', one name, or a list of names."""
    experiments = load_experiments(kind)
    if isinstance(selection, str):
        if selection == "all":
            return list(experiments.values())
        tagged = [e for e in experiments.values() if selection in e.get("tags", [])]
        if tagged:
            return tagged
        selection = [s.strip() for s in selection.split(",")]
    unknown = [s for s in selection if s not in experiments]
    if unknown:
        raise ExperimentError(f"unknown {kind} experiment(s): {', '.join(unknown)} "
                              f"(see `python -m analysis_lib train-{kind} --list`)")
    return [experiments[s] for s in selection]
