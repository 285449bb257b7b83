"""Keep third-party packages off the network and out of the user's home directory.

galpy checks PyPI for a newer version on import and writes ~/.galpyrc; colossus caches under ~.
Both are configured here, once, before either is imported anywhere in the library.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from analysis_lib.paths import DATA_DIR

_GALPY_RC = """[normalization]
ro = 8.
vo = 220.

[astropy]
astropy-units = False
astropy-coords = True

[plot]
seaborn-bovy-defaults = False

[warnings]
verbose = False

[version-check]
do-check = False
check-non-interactive = False
check-non-interactive-every = 100000
last-non-interactive-check = 2100-01-01
"""

_configured = False


@contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def configure() -> None:
    """Point galpy at a local config with the version check off and colossus's cache at data/."""
    global _configured
    if _configured:
        return
    cfg_dir = DATA_DIR / "galpy"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    rc = cfg_dir / ".galpyrc"
    if not rc.exists() or rc.read_text() != _GALPY_RC:
        rc.write_text(_GALPY_RC)
    # galpy reads ./.galpyrc before ~/.galpyrc, once, at import.
    with _cwd(cfg_dir):
        import galpy  # noqa: F401
        import galpy.util.config  # noqa: F401

    from colossus import settings

    cache = DATA_DIR / "colossus"
    cache.mkdir(parents=True, exist_ok=True)
    settings.BASE_DIR = str(cache)
    _configured = True


def galpy():
    """Import galpy with the offline configuration applied."""
    configure()
    import galpy as _galpy

    return _galpy


def colossus_cosmology():
    """The TNG (Planck 2015) cosmology in colossus, cached under data/."""
    configure()
    from colossus.cosmology import cosmology

    params = {"flat": True, "H0": 67.74, "Om0": 0.3089, "Ob0": 0.0486, "sigma8": 0.8159,
              "ns": 0.9667}
    if "planck15-tng" not in cosmology.cosmologies:
        cosmology.addCosmology("planck15-tng", **params)
    return cosmology.setCosmology("planck15-tng")
