"""Every setting checked, with its type and range, before any work starts.

Why: a bad value found galaxy by galaxy (or epoch by epoch) wastes the run and often ends in a
message that does not name the setting. `load_config` calls `check_settings`, so the CLI, the
notebooks and library callers all get it.

Data-driven, so keys added to profiles.yaml are checked without code changes:

- the TYPE of each key comes from its default in profiles.yaml: bool, int (2.5 is rejected),
  float (ints accepted), str, list (element type from the default's elements), null (null or a
  number; TYPES below widens a few);
- RANGES and CHOICES below add what a default cannot say (image_size > 0, fractions sum to 1).

The `instrument` section (instruments.yaml) is checked by its own module, not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# Keys whose accepted type is wider than their default's.
TYPES: dict[str, tuple[str, ...]] = {
    "cnn.experiments": ("str", "list[str]"),
    "gbdt.experiments": ("str", "list[str]"),
    "book.notebooks": ("str", "list[str]"),
    "tng.cutouts_dir": ("null", "str"),
    "tng.base_path": ("null", "str"),
    "cnn.device": ("str",),
    "cnn.probabilistic_experiments": ("str", "list[str]"),
    "cnn.seed_experiments": ("str", "list[str]"),
    "cnn.projsplit_experiments": ("str", "list[str]"),
    "cnn.augment_experiments": ("str", "list[str]"),
    "cnn.ensemble_epochs": ("null", "int"),
    "cnn.ensemble_image_size": ("null", "int"),
    "data.scheduler": ("null", "str"),
    "transfer.cnn_epochs": ("null", "int"),
    "transfer.cnn_image_size": ("null", "int"),
    "transfer.cnn_train_universes": ("null", "list[str]"),
    "transfer.cnn_test_universes": ("null", "list[str]"),
}


CHOICES: dict[str, list[str] | Callable[[], list[str]]] = {
    "data.source": ["mock", "tng"],
    "split.by": ["galaxy", "projection"],
    "observe.map_weighting": ["luminosity_r", "mass"],
    "cnn.pixel_scaling": ["linear", "log"],
    "cnn.amp": ["bf16", "none"],
    "cnn.recalibration": ["sigma_scaling", "conformal"],
    "cnn.stem": ["imagenet", "small", "auto"],
    "cnn.augment": ["none", "dihedral"],
    "jam.inclination": ["fit", "true"],
    "tng.centre": ["potential", "catalogue"],
    "tng.catalogue_check": ["fail", "warn", "off"],
    "mock.spheroid_anisotropy": ["observed", "isotropic", "radial"],
}

# Physics choices of the mock (imf, size_relation, shmr) are checked by the mock source when it is
# made, which happens before any galaxy is observed; importing it here would make every config
# load pay for the mock's imports.

# (low, high, low_inclusive, high_inclusive); None = unbounded.
POSITIVE = (0, None, False, False)
NON_NEGATIVE = (0, None, True, False)
AT_LEAST_1 = (1, None, True, False)
UNIT = (0, 1, True, True)
OPEN_UNIT = (0, 1, False, False)
RANGES: dict[str, tuple] = {
    "seed": NON_NEGATIVE,
    "data.n_galaxies": AT_LEAST_1, "data.workers": NON_NEGATIVE,
    "data.min_mstar_30kpc": NON_NEGATIVE, "data.max_halo_mass": POSITIVE,
    "mock.star_particle_mass": POSITIVE, "mock.gas_particle_mass": POSITIVE,
    "mock.shmr_scatter_dex": NON_NEGATIVE, "mock.concentration_scatter_dex": NON_NEGATIVE,
    "mock.sfh_burstiness": NON_NEGATIVE, "mock.disc_phase_mix_periods": NON_NEGATIVE,
    "observe.fov_rhalf": POSITIVE, "observe.image_size": AT_LEAST_1,
    "observe.image_sizes": AT_LEAST_1, "observe.map_size": AT_LEAST_1,
    "observe.sph_neighbours": AT_LEAST_1, "observe.min_particles_per_map_pixel": AT_LEAST_1,
    "observe.shape_radius_rhalf": POSITIVE, "observe.circularity_radius_rhalf": POSITIVE,
    "observe.sersic_rmin_rhalf": POSITIVE, "observe.sersic_bins": (2, None, True, False),
    "observe.sfr_window_gyr": POSITIVE,
    "split.cnn_fractions": UNIT, "split.gbdt_test_fraction": OPEN_UNIT,
    "cnn.epochs": AT_LEAST_1, "cnn.batch_size": AT_LEAST_1, "cnn.lr": POSITIVE,
    "cnn.image_size": AT_LEAST_1, "cnn.head_hidden": NON_NEGATIVE,
    "cnn.eval_batch_size": AT_LEAST_1, "cnn.log_floor_rel": POSITIVE,
    "cnn.resident_fraction": UNIT, "cnn.load_block": AT_LEAST_1,
    "cnn.cpu_threads": NON_NEGATIVE, "cnn.checkpoint_every": AT_LEAST_1,
    "cnn.read_once_gb": NON_NEGATIVE, "cnn.precise_bn_rows": NON_NEGATIVE,
    "cnn.seeds": AT_LEAST_1, "cnn.nll_beta": (0, 1, True, True),
    "cnn.ensemble_members": (2, None, True, False), "cnn.ensemble_epochs": AT_LEAST_1,
    "cnn.ensemble_image_size": AT_LEAST_1, "cnn.conformal_level": OPEN_UNIT,
    "cnn.flow_context_dims": AT_LEAST_1, "cnn.flow_transforms": AT_LEAST_1,
    "cnn.flow_hidden": AT_LEAST_1, "cnn.flow_epochs": AT_LEAST_1,
    "cnn.flow_patience": AT_LEAST_1, "cnn.flow_lr": POSITIVE,
    "cnn.flow_batch_size": AT_LEAST_1, "cnn.flow_samples": (10, None, True, False),
    "cnn.flow_keep_samples": NON_NEGATIVE,
    "gbdt.num_leaves": (2, None, True, False), "gbdt.num_boost_round": AT_LEAST_1,
    "gbdt.min_data_in_leaf": AT_LEAST_1, "gbdt.learning_rate": POSITIVE,
    "gbdt.num_threads": NON_NEGATIVE, "gbdt.permutation_repeats": AT_LEAST_1,
    "gbdt.calibration_fraction": OPEN_UNIT,
    "transfer.cnn_epochs": AT_LEAST_1, "transfer.cnn_image_size": AT_LEAST_1,
    "jam.n_galaxies": AT_LEAST_1, "jam.workers": NON_NEGATIVE, "jam.image_size": AT_LEAST_1,
    "jam.distance_mpc": POSITIVE, "jam.mge_ngauss": AT_LEAST_1,
    "jam.mge_regularize": POSITIVE, "jam.halo_ngauss": AT_LEAST_1,
    "jam.qintr_min": OPEN_UNIT, "jam.ml_bounds": POSITIVE, "jam.error_frac": POSITIVE,
    "jam.min_pixels": AT_LEAST_1, "jam.clip_sigma": NON_NEGATIVE, "jam.max_nfev": AT_LEAST_1,
    "book.budget_minutes": POSITIVE,
    "tng.snapshot": NON_NEGATIVE, "tng.quenched_ssfr_per_yr": POSITIVE,
    "tng.sfr_window_gyr": POSITIVE,
}
LENGTHS = {"split.cnn_fractions": 3, "jam.beta_bounds": 2, "jam.log_m200_bounds": 2,
           "jam.ml_bounds": 2}
SKIP_SECTIONS = ("instrument",)  # instruments.yaml's fields: validated by the instrument module


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        kinds = {_kind(v) for v in value}
        if kinds == {"int", "float"}:
            kinds = {"float"}
        return f"list[{kinds.pop()}]" if len(kinds) == 1 else "list"
    if isinstance(value, dict):
        return "section"
    return type(value).__name__


_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
          "null": "null", "list[int]": "a list of integers", "list[float]": "a list of numbers",
          "list[str]": "a list of strings", "list": "a list"}


def _coerce(value: Any, kind: str) -> tuple[bool, Any]:
    """(accepted, value) for one expected kind; numbers given as text ('2e7') are read."""
    if kind == "bool":
        return isinstance(value, bool), value
    if kind in ("int", "float") and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return False, value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return False, value
        return True, int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        return (not math.isnan(value)), value
    if kind == "str":
        return isinstance(value, str), value
    if kind == "null":
        return value is None, value
    if kind.startswith("list"):
        if not isinstance(value, list):
            return False, value
        if kind == "list":
            return True, value
        inner = kind[5:-1]
        out = []
        for v in value:
            ok, v = _coerce(v, inner)
            if not ok:
                return False, value
            out.append(v)
        return True, out
    return True, value


def _expected(key: str, default: Any) -> tuple[str, ...]:
    if key in TYPES:
        return TYPES[key]
    kind = _kind(default)
    if kind == "null":
        return ("null", "float")
    if kind == "float":
        return ("float",)
    if kind == "list[null]" or kind == "list":
        return ("list",)
    return (kind,)


def _in_range(x: float, rng: tuple) -> bool:
    lo, hi, lo_inc, hi_inc = rng
    if lo is not None and (x < lo or (x == lo and not lo_inc)):
        return False
    return not (hi is not None and (x > hi or (x == hi and not hi_inc)))


def _range_text(rng: tuple) -> str:
    lo, hi, lo_inc, hi_inc = rng
    if hi is None:
        return f"{'>=' if lo_inc else '>'} {lo}"
    return f"in {'[' if lo_inc else '('}{lo}, {hi}{']' if hi_inc else ')'}"


def _check_value(key: str, value: Any, default: Any, errors: list[str]) -> Any:
    kinds = _expected(key, default)
    for kind in kinds:
        ok, coerced = _coerce(value, kind)
        if ok:
            value = coerced
            break
    else:
        want = " or ".join(_WORDS.get(k, k) for k in kinds)
        errors.append(f"{key}={value!r} must be {want} (default {default!r})")
        return value
    if key in CHOICES and isinstance(value, str):
        choices = CHOICES[key]
        choices = choices() if callable(choices) else choices
        if value not in choices:
            errors.append(f"{key}={value!r} is not one of {', '.join(choices)}")
    if key in LENGTHS and isinstance(value, list) and len(value) != LENGTHS[key]:
        errors.append(f"{key}={value!r} must have {LENGTHS[key]} entries")
    if key in RANGES:
        numbers = value if isinstance(value, list) else [value]
        for x in numbers:
            if isinstance(x, int | float) and not isinstance(x, bool) and \
                    not _in_range(x, RANGES[key]):
                errors.append(f"{key}={value!r} must be {_range_text(RANGES[key])}")
                break
    return value


def _walk(cfg: dict, defaults: dict, prefix: str, errors: list[str]) -> None:
    for key, value in cfg.items():
        where = f"{prefix}{key}"
        if where in SKIP_SECTIONS or key not in defaults:
            continue
        default = defaults[key]
        if isinstance(default, dict):
            if isinstance(value, dict):
                _walk(value, default, where + ".", errors)
            else:
                errors.append(f"{where} is a section, not a value")
            continue
        cfg[key] = _check_value(where, value, default, errors)


def _relations(cfg: dict, errors: list[str]) -> None:
    """Checks that involve more than one key."""
    obs = cfg.get("observe", {})
    size, sizes = obs.get("image_size"), obs.get("image_sizes")
    if isinstance(size, int) and isinstance(sizes, list):
        if not sizes:
            errors.append("observe.image_sizes is empty (list at least one size)")
        bad = [s for s in sizes if isinstance(s, int) and s > 0 and size % s]
        if bad:
            errors.append(f"observe.image_sizes={sizes}: {bad} do not divide "
                          f"observe.image_size={size}")
        if len(set(sizes)) != len(sizes):
            errors.append(f"observe.image_sizes={sizes} repeats a size")
    scheduler = cfg.get("data", {}).get("scheduler")
    if isinstance(scheduler, str):
        from analysis_lib.dataset.cluster import (
            scheduler_problem,  # light: dask is imported only to run
        )

        problem = scheduler_problem(scheduler)
        if problem:
            errors.append(f"data.scheduler={problem}")
    projections = cfg.get("data", {}).get("projections")
    if isinstance(projections, list):
        bad = [p for p in projections if p not in ("x", "y", "z")]
        if bad or not projections or len(set(projections)) != len(projections):
            errors.append(f"data.projections={projections} must be distinct axes from x, y, z")
    fractions = cfg.get("split", {}).get("cnn_fractions")
    if isinstance(fractions, list) and len(fractions) == 3 and all(
            isinstance(f, int | float) for f in fractions):
        if abs(sum(fractions) - 1.0) > 1e-3:
            errors.append(f"split.cnn_fractions={fractions} must sum to 1 (sum {sum(fractions):g})")
    for key in ("beta_bounds", "log_m200_bounds", "ml_bounds"):
        b = cfg.get("jam", {}).get(key)
        if isinstance(b, list) and len(b) == 2 and all(isinstance(x, int | float) for x in b) \
                and not b[0] < b[1]:
            errors.append(f"jam.{key}={b} must be [low, high] with low < high")


def check_settings(cfg: dict, defaults: dict) -> dict:
    """Check (and normalise: '2e7' -> 2e7, 3.0 -> 3 for integers) every setting of cfg in place.

    Raises ConfigError with one line naming every bad key, its value and what it must be.
    """
    from analysis_lib.config import ConfigError

    errors: list[str] = []
    _walk(cfg, defaults, "", errors)
    _relations(cfg, errors)
    if errors:
        raise ConfigError("bad setting" + ("s" if len(errors) > 1 else "") + ": "
                          + "; ".join(errors))
    return cfg
