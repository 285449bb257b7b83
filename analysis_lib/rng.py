"""Seeded generators: every random draw in the project goes through here.

A galaxy's stream depends only on (dataset seed, galaxy id, purpose), never on which worker
draws it or in what order, so the same seed gives the same dataset with any number of workers.
"""

from __future__ import annotations

import zlib

import numpy as np


def _purpose_key(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def make_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A generator for (seed, key1, key2, ...); string keys are hashed stably."""
    entropy = [int(seed)] + [k if isinstance(k, int) else _purpose_key(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def galaxy_rng(seed: int, galaxy_id: int, purpose: str) -> np.random.Generator:
    """The generator for one galaxy and one purpose (e.g. 'structure', 'velocities')."""
    return make_rng(seed, int(galaxy_id), purpose)
