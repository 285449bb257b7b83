"""Run profiles (smoke / quick / paper) as data, with overrides, resolved into one dict.

A run records the fully resolved configuration it used, so every number in the book can be traced
back to the parameters that made it.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import yaml

PROFILES = ("smoke", "quick", "paper")


class ConfigError(ValueError):
    """A profile name or override that does not exist or cannot be parsed."""


def _profiles_data() -> dict:
    text = resources.files("analysis_lib").joinpath("profiles.yaml").read_text()
    return yaml.safe_load(text)


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


def load_config(profile: str = "quick",
                overrides: dict[str, Any] | list[str] | None = None) -> dict:
    """Defaults, then the profile, then overrides ({'cnn.epochs': 3} or ['cnn.epochs=3'])."""
    data = _profiles_data()
    if profile not in data["profiles"]:
        raise ConfigError(f"unknown profile '{profile}' (choose from {', '.join(PROFILES)})")
    cfg = _deep_merge(data["defaults"], data["profiles"][profile])
    if overrides:
        if isinstance(overrides, list):
            overrides = dict(parse_override(o) for o in overrides)
        cfg = _deep_merge(cfg, _nest(overrides))
    cfg["profile"] = profile
    return cfg


def config_hash(cfg: dict) -> str:
    """Short stable hash of a (sub)configuration, to name results and caches."""
    import hashlib

    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
