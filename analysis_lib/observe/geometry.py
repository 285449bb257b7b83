"""Lines of sight and projected coordinates.

A projection along box axis k puts the observer at +infinity on that axis, looking towards -k.
The image plane axes follow the right-handed cycle, so (horizontal, vertical, towards observer)
is (y, z, x) for a line of sight along x, (z, x, y) along y and (x, y, z) along z. Images are
stored as arrays indexed [vertical, horizontal], pixel (0, 0) at the most negative corner.
"""

from __future__ import annotations

import numpy as np

from analysis_lib.particles import GalaxyInputError

AXIS_INDEX = {"x": 0, "y": 1, "z": 2}
_PLANE_AXES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}


def projection_index(name: str | int) -> int:
    """Box-axis index (0, 1, 2) of a line of sight given as 'x'/'y'/'z' or 0/1/2."""
    if isinstance(name, int | np.integer) and int(name) in _PLANE_AXES:
        return int(name)
    key = str(name).strip().lower()
    if key not in AXIS_INDEX:
        raise GalaxyInputError(f"unknown projection '{name}': use x, y or z")
    return AXIS_INDEX[key]


def project(pos: np.ndarray, los: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(horizontal, vertical, depth) coordinates for a line of sight; depth grows towards us."""
    ia, ib = _PLANE_AXES[los]
    return pos[:, ia], pos[:, ib], pos[:, los]


def los_velocity(vel: np.ndarray, los: int) -> np.ndarray:
    """Line-of-sight velocity, km/s, positive = moving away from the observer (redshift)."""
    return -vel[:, los]


def inclination_deg(axis: np.ndarray, los: int) -> float:
    """Angle (0-90 deg) between a spin axis and the line of sight: 0 = face-on, 90 = edge-on.

    The sign of the axis is irrelevant to the viewing geometry, so the angle is folded to 0-90.
    """
    axis = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(axis)
    if not np.isfinite(norm) or norm == 0:
        raise GalaxyInputError("spin axis is zero or not finite")
    cos_i = abs(axis[los]) / norm
    return float(np.degrees(np.arccos(np.clip(cos_i, 0.0, 1.0))))
