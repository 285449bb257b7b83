"""IllustrisTNG galaxies for the same pipeline as the mock universe.

Three ways in, one conversion (convert.py) and one interface (`.galaxy_ids()`, `.load(id)`):
- `TngCutoutSource`: a directory of cutout_{id}.hdf5 files (from the web API or elsewhere);
- `TngLocalSource`: a local copy of the simulation read with illustris_python;
- `api.fetch_sample`: downloads the paper's sample as cutouts (needs TNG_API_KEY).

Helpers: centring.py (shrinking-sphere centre when a cutout has no Potential), crosscheck.py
(particles against the Subfind catalogue, per galaxy), selection.py (cuts; TNG50/100/300 facts),
photcompare.py (M_r, g - r against the Nelson+18 stellar-photometry catalogue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from analysis_lib.sources.tng.convert import tng_settings
from analysis_lib.sources.tng.cutouts import TngCutoutSource
from analysis_lib.sources.tng.local import TngLocalSource

__all__ = ["TNGSource", "TngCutoutSource", "TngLocalSource", "build_tng_source"]


def build_tng_source(cfg: Mapping, cutouts_dir: str | Path | None = None,
                     base_path: str | Path | None = None,
                     subhalo_ids: Iterable[int] | None = None
                     ) -> TngCutoutSource | TngLocalSource:
    """The TNG source for a run: cutout files (cutouts_dir) or a local simulation (base_path).

    Exactly one of the two must be given, as an argument or in cfg tng.cutouts_dir /
    tng.base_path (arguments win). `subhalo_ids` restricts the galaxies; without it a cutout
    directory yields every cutout file present and a local simulation the paper's catalogue
    selection (cfg data.min_mstar_30kpc, data.max_halo_mass).
    """
    settings = tng_settings(cfg)
    if cutouts_dir is None and base_path is None:
        cutouts_dir, base_path = settings["cutouts_dir"], settings["base_path"]
    if (cutouts_dir is None) == (base_path is None):
        raise ValueError("build_tng_source needs exactly one of cutouts_dir (cutout files) or "
                         "base_path (a local simulation output directory), as arguments or as "
                         "tng.cutouts_dir / tng.base_path in the configuration")
    if cutouts_dir is not None:
        return TngCutoutSource(cutouts_dir, cfg, subhalo_ids=subhalo_ids)
    return TngLocalSource(base_path, subhalo_ids=subhalo_ids, cfg=cfg,
                          snap=int(settings["snapshot"]))


def TNGSource(cfg: Mapping) -> TngCutoutSource | TngLocalSource:  # noqa: N802
    """`build_tng_source(cfg)`, for `analysis_lib.sources.make_source` (reads cfg tng.*)."""
    return build_tng_source(cfg)
