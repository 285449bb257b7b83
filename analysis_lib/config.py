"""Run profiles (smoke / quick / paper) as data, with overrides, resolved into one dict.

A run records the fully resolved configuration it used, so every number in the book can be traced
back to the parameters that made it.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import yaml

PROFILES = ("smoke", "quick", "paper")


class ConfigError(ValueError):
    """A profile name or override that does not exist or cannot be parsed."""


def _package_yaml(name: str) -> dict:
    text = resources.files("analysis_lib").joinpath(name).read_text()
    return yaml.safe_load(text)


def _profiles_data() -> dict:
    return _package_yaml("profiles.yaml")


def universes() -> dict[str, dict]:
    """The mock universe's physics variants (universes.yaml): name -> {description, knobs}."""
    return _package_yaml("universes.yaml")["universes"]


def instruments() -> dict[str, dict]:
    """The observing set-ups (instruments.yaml): name -> its fields."""
    return _package_yaml("instruments.yaml")["instruments"]


def _universe_knobs(name: str) -> dict:
    table = universes()
    if name not in table:
        raise ConfigError(f"unknown universe mock.universe='{name}' "
                          f"(choose from {', '.join(table)})")
    knobs = table[name].get("knobs") or {}
    if "universe" in knobs:
        raise ConfigError(f"universes.yaml: universe '{name}' may not set 'universe'")
    return knobs


def _instrument(name: str) -> dict:
    table = instruments()
    if name not in table:
        raise ConfigError(f"unknown instrument observe.instrument='{name}' "
                          f"(choose from {', '.join(table)})")
    return {"name": name, **copy.deepcopy(table[name])}


def _deep_merge(base: dict, over: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        where = f"{path}{key}"
        if key not in out:
            raise ConfigError(f"unknown configuration key '{where}'")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"configuration key '{where}' is a section, not a value")
            out[key] = _deep_merge(out[key], value, where + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """Parse 'section.key=value'; the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value cannot be parsed ({exc})") from exc
    return key.strip(), value


def _nest(dotted: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in dotted.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def default_setting(key: str) -> Any:
    """A setting's value in the `defaults` section of profiles.yaml, by dotted key.

    Why: presentation code that has no run configuration at hand (a figure of a dataset saved
    without one) reads the project's default here instead of repeating the number.

    Parameters
    ----------
    key : str
        Dotted setting name, e.g. ``"observe.fov_rhalf"``.

    Returns
    -------
    Any
        The default value.

    Raises
    ------
    ConfigError
        When profiles.yaml's defaults have no such setting.
    """
    value: Any = _profiles_data()["defaults"]
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"profiles.yaml: no default setting '{key}'")
        value = value[part]
    return value


def load_config(profile: str = "quick",
                overrides: dict[str, Any] | list[str] | None = None) -> dict:
    """Defaults, profile, universe knobs, instrument, then overrides.

    Overrides are {'cnn.epochs': 3} or ['cnn.epochs=3']. The universe (mock.universe) overrides
    physics knobs of the `mock` section; the instrument (observe.instrument) becomes the section
    cfg['instrument']; explicit overrides win over both, so `--set mock.contraction=false` in the
    tng_like universe is honoured. Every setting is then checked (settings_check): a bad type
    or range is a ConfigError naming the key, before any work starts.
    """
    data = _profiles_data()
    if profile not in data["profiles"]:
        raise ConfigError(f"unknown profile '{profile}' (choose from {', '.join(PROFILES)})")
    base = _deep_merge(data["defaults"], data["profiles"][profile])
    nested: dict = {}
    if overrides:
        if isinstance(overrides, list):
            overrides = dict(parse_override(o) for o in overrides)
        nested = _nest(overrides)
    instrument_over = nested.pop("instrument", {}) if isinstance(nested.get("instrument"),
                                                                 dict) else {}
    if "instrument" in nested:
        raise ConfigError("configuration key 'instrument' is a section, not a value")
    chosen = _deep_merge(base, nested)
    base["mock"] = _deep_merge(base["mock"], _universe_knobs(chosen["mock"]["universe"]), "mock.")
    cfg = _deep_merge(base, nested)
    cfg["instrument"] = _deep_merge(_instrument(cfg["observe"]["instrument"]), instrument_over,
                                    "instrument.")
    cfg["profile"] = profile
    from analysis_lib.observe.instrument import parse_instrument
    from analysis_lib.settings_check import check_settings

    parse_instrument(cfg["instrument"])  # its fields, named in the error, before any work
    return check_settings(cfg, data["defaults"])  # types and ranges, before any work


def store_label(cfg: dict) -> str:
    """The results store's folder for this configuration: the profile, plus what makes its data
    differ from the default study (a source other than the mock, a universe other than
    `observed`, an instrument other than `ideal`), e.g. 'quick', 'quick+manga_like',
    'quick+tng_like', 'paper+tng'. Runs on different data therefore never replace each other.
    """
    parts = [str(cfg.get("profile", "custom"))]
    source = cfg.get("data", {}).get("source", "mock")
    if source != "mock":
        parts.append(source)
    elif cfg.get("mock", {}).get("universe", "observed") != "observed":
        parts.append(cfg["mock"]["universe"])
    instrument = cfg.get("observe", {}).get("instrument", "ideal")
    if instrument != "ideal":
        parts.append(instrument)
    return "+".join(parts)


def config_hash(cfg: dict) -> str:
    """Short stable hash of a (sub)configuration, to name results and caches."""
    from analysis_lib.io import short_hash

    return short_hash(cfg, 12)
