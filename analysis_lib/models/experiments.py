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
    """'all', or tags (such as 'headline' or 'smoke') and names, as a list or comma-separated:
    the union in the order given, each experiment once."""
    experiments = load_experiments(kind)
    if isinstance(selection, str):
        if selection == "all":
            return list(experiments.values())
        selection = [s.strip() for s in selection.split(",")]
    chosen: dict[str, dict] = {}
    unknown = []
    for item in selection:
        tagged = [e for e in experiments.values() if item in e.get("tags", [])]
        if tagged:
            chosen.update({e["name"]: e for e in tagged})
        elif item in experiments:
            chosen[item] = experiments[item]
        else:
            unknown.append(item)
    if unknown:
        raise ExperimentError(f"unknown {kind} experiment(s): {', '.join(unknown)} "
                              f"(see `python -m analysis_lib train-{kind} --list`)")
    return list(chosen.values())
