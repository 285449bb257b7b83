"""Mock observations: particles in, the paper's images, maps, targets and features out."""

from analysis_lib.observe.features import paper_exclusions
from analysis_lib.observe.pipeline import observe_galaxy

__all__ = ["observe_galaxy", "paper_exclusions"]
