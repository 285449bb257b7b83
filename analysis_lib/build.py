"""Particles -> observations -> one dataset file: parallel over galaxies, resumable, atomic.

Each galaxy is observed on its own (its random stream depends only on the dataset seed and its
id), written as a shard, and the shards are assembled in galaxy-id order at the end, so the file
is the same whatever the number of workers and whether or not the run was interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from analysis_lib.dataset import assemble, done_galaxies, shard_dir, write_shard
from analysis_lib.particles import GalaxyInputError
from analysis_lib.paths import DATASETS_DIR
from analysis_lib.results import atomic_write_text

_WORKER: dict = {}


def default_dataset_path(cfg: dict) -> Path:
    """data/datasets/<source>_<profile>[_<universe>][_<instrument>].h5

    The universe (mock only) and the instrument appear in the name when they are not the
    defaults (observed, ideal), so datasets of different physics or observations never collide.
    """
    parts = [cfg["data"]["source"], cfg.get("profile", "custom")]
    universe = cfg.get("mock", {}).get("universe", "observed")
    if cfg["data"]["source"] == "mock" and universe != "observed":
        parts.append(universe)
    instrument = cfg.get("observe", {}).get("instrument", "ideal")
    if instrument != "ideal":
        parts.append(instrument)
    return DATASETS_DIR / ("_".join(parts) + ".h5")


def make_source(cfg: dict, source_options: dict | None = None):
    """The particle source named by cfg['data']['source'] ('mock' or 'tng')."""
    if cfg["data"]["source"] == "tng":
        from analysis_lib.sources.tng import build_tng_source

        return build_tng_source(cfg, **(source_options or {}))
    from analysis_lib.sources import make_source as make_mock_or_named

    return make_mock_or_named(cfg)


def _init_worker(cfg: dict, source_options: dict) -> None:
    _WORKER["cfg"] = cfg
    _WORKER["source"] = make_source(cfg, source_options)


EXCLUDED = "excluded: "  # prefix of a skipped galaxy's reason when it fails the sample cut


def sample_cut_reason(galaxy, cfg: dict) -> str | None:
    """Why a galaxy falls outside the paper's sample (M*(<30 kpc, 3D) > cut), or None.

    The mock population is drawn inside the cut; TNG catalogues only preselect on the total
    stellar mass, so the exact cut is applied here, on the particles, for every source.
    """
    cut = float(cfg["data"]["min_mstar_30kpc"])
    m30 = float(galaxy.stars.enclosed_mass(30.0))
    if m30 <= cut:
        return f"{EXCLUDED}M*(<30 kpc) = {m30:.3g} Msun is not above the cut {cut:.3g} Msun"
    return None


def _observe_one(galaxy_id: int, out: str) -> tuple[int, str | None]:
    """Observe one galaxy and write its shard; a bad or out-of-sample galaxy is reported."""
    from analysis_lib.observe import observe_galaxy

    try:
        galaxy = _WORKER["source"].load(galaxy_id)
        excluded = sample_cut_reason(galaxy, _WORKER["cfg"])
        if excluded:
            return galaxy_id, excluded
        records = observe_galaxy(galaxy, _WORKER["cfg"])
    except GalaxyInputError as exc:
        return galaxy_id, str(exc)
    write_shard(Path(out), galaxy_id, records)
    return galaxy_id, None


def resolve_workers(requested: int | None) -> int:
    return max(1, requested or os.cpu_count() or 1)


def build_dataset(cfg: dict, out: str | Path, source_options: dict | None = None,
                  workers: int | None = None, progress: bool = True) -> Path:
    """Generate (or resume) the dataset file `out` for the resolved configuration `cfg`."""
    out = Path(out)
    source_options = source_options or {}
    source = make_source(cfg, source_options)
    ids = [int(i) for i in source.galaxy_ids()]
    failures_path = Path(str(out) + ".failures.json")
    failures: dict[str, str] = (json.loads(failures_path.read_text())
                                if failures_path.exists() else {})
    key = prepare_shards(cfg, out)
    if not failures_path.exists():
        failures = {}
    done = done_galaxies(out)
    todo = [i for i in ids if i not in done and str(i) not in failures]
    n_workers = resolve_workers(workers if workers is not None else cfg["data"]["workers"])
    bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc=f"observing {out.name}",
               unit="galaxy", disable=not progress)
    try:
        if n_workers == 1:
            _init_worker(cfg, source_options)
            results = (_observe_one(i, str(out)) for i in todo)
            for gid, err in results:
                _record(failures, failures_path, gid, err)
                bar.update()
        else:
            with ProcessPoolExecutor(n_workers, initializer=_init_worker,
                                     initargs=(cfg, source_options)) as pool:
                futures = [pool.submit(_observe_one, i, str(out)) for i in todo]
                for fut in futures:
                    gid, err = fut.result()
                    _record(failures, failures_path, gid, err)
                    bar.update()
    finally:
        bar.close()
    from analysis_lib.observe.features import SUN_ABS_MAG_AB_SDSS  # what observe assumes

    good = [i for i in ids if str(i) not in failures]
    n_excluded = sum(msg.startswith(EXCLUDED) for msg in failures.values())
    attrs = {"profile": cfg.get("profile", "custom"), "seed": int(cfg["seed"]),
             "source": cfg["data"]["source"], "config": json.dumps(cfg, default=str),
             "dataset_key": key,
             "n_failed": len(failures) - n_excluded, "n_excluded": n_excluded,
             "sun_abs_mag_ab": json.dumps(dict(getattr(source, "sun_abs_mag_ab",
                                                       SUN_ABS_MAG_AB_SDSS))),
             "failures": json.dumps(failures)}
    return assemble(out, good, attrs, list(cfg["observe"]["image_sizes"]))


def prepare_shards(cfg: dict, out: Path) -> str:
    """The shard folder of `out`, emptied if an interrupted build left it with another key.

    Shards (and recorded failures) are resumed only by a build with the same settings and
    physics code; returns the key, which is also stored in the assembled file.
    """
    out = Path(out)
    key = dataset_key(cfg)
    key_path = shard_dir(out) / "dataset_key.txt"
    if shard_dir(out).exists() and (not key_path.exists() or key_path.read_text() != key):
        shutil.rmtree(shard_dir(out))
        Path(str(out) + ".failures.json").unlink(missing_ok=True)
    shard_dir(out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_path, key)
    return key


def _record(failures: dict, path: Path, galaxy_id: int, err: str | None) -> None:
    if err is not None:
        failures[str(galaxy_id)] = err
        atomic_write_text(path, json.dumps(failures, indent=1))


# The code that decides a dataset's content: a change here makes stored datasets (and shards
# of an interrupted build) stale, just as a change of their settings does.
PHYSICS_CODE = ("sources", "observe", "particles.py", "dataset.py", "rng.py")


def physics_code_hash() -> str:
    """Hash of the source files that turn particles into a dataset (see PHYSICS_CODE)."""
    import hashlib

    root = Path(__file__).resolve().parent
    files = []
    for name in PHYSICS_CODE:
        path = root / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def dataset_key(cfg: dict) -> str:
    """What a dataset must share with cfg to be reused: its settings and the physics code."""
    return f"{dataset_config_key(cfg)}-{physics_code_hash()}"


def dataset_config_key(cfg: dict) -> str:
    """The part of a configuration that determines a dataset's content."""
    from analysis_lib.config import config_hash

    content = {k: cfg[k] for k in ("seed", "mock", "observe")}
    content["data"] = {k: v for k, v in cfg["data"].items() if k != "workers"}
    return config_hash(content)


def ensure_dataset(cfg: dict, path: str | Path | None = None, source_options: dict | None = None,
                   progress: bool = True) -> Path:
    """The dataset for cfg: reused if a file made with the same settings exists, else built."""
    from analysis_lib.dataset import DatasetError, open_dataset

    path = Path(path) if path else default_dataset_path(cfg)
    if path.exists():
        try:
            found = open_dataset(path)
            stored, stored_key = found.config, found.attrs.get("dataset_key")
        except DatasetError:
            stored, stored_key = None, None
        if stored is not None and stored_key == dataset_key(cfg):
            return path
        stale = path.with_name(path.name + ".stale")
        os.replace(path, stale)  # keep, never silently lose, an older dataset
    return build_dataset(cfg, path, source_options, progress=progress)
