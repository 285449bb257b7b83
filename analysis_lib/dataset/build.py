"""Particles -> observations -> one dataset file: parallel over galaxies, resumable, atomic.

Each galaxy is observed on its own (its random stream depends only on the dataset seed and its
id), written as a shard, and the shards are assembled in galaxy-id order at the end, so the file
is the same whatever the number of workers and whether or not the run was interrupted.

Back ends (issue 15): only *how galaxies are mapped to workers* differs, the rest (shards,
resumption, lock, failure record, progress) is this module's, once. The default is a local
process pool (`data.workers`), with no set-up; its workers write their own shards. With a
scheduler (`data.scheduler` or `dataset --scheduler`), galaxies go to a Dask cluster
(analysis_lib.dataset.cluster), whose workers return the arrays and the client writes the shards, so
workers need not share the client's disk. Either way the file is the same, and a build
interrupted on one back end resumes on the other.

Safety (issue 17): the output is checked before any work (a directory, or a file that is not a
dataset of this project, is refused unless force=True); a lock (`<out>.lock`) keeps a second
build of the same file out, naming the first; shards live in `<out>.parts/<dataset key>/`, so a
build with other settings never adopts them; a galaxy's recorded failure is reused only while
its input is unchanged; pool workers die with the parent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from analysis_lib.dataset import (
    DatasetError,
    assemble,
    done_galaxies,
    is_project_dataset,
    shard_dir,
    write_shard,
)
from analysis_lib.io import (
    atomic_write_text,
    file_chunks,
    output_lock,
    short_digest,
    short_hash,
    tqdm_options,
)
from analysis_lib.particles import GalaxyInputError
from analysis_lib.paths import DATASETS_DIR

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


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when `parent_pid` ends, even by SIGKILL.

    Linux: prctl(PR_SET_PDEATHSIG, SIGKILL), then a check that the parent did not die before it
    took effect. Elsewhere a daemon thread polls os.getppid(). Why: a killed build must not
    leave workers of ~270 MB each running.
    """
    import signal
    import threading

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl failed")
    except (OSError, AttributeError):
        def watch() -> None:
            import time

            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _init_worker(cfg: dict, source_options: dict, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        die_with_parent(parent_pid)
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


def observe_records(galaxy_id: int, cfg: dict, source) -> tuple[str | None, list[dict] | None]:
    """(None, the galaxy's projection records), or (why it is skipped, None); writes nothing.

    The one computation of a galaxy, shared by the local pool and the Dask workers: a bad input
    or an out-of-sample galaxy is a reason, not an exception, so it is recorded per galaxy.
    """
    from analysis_lib.observe import observe_galaxy

    try:
        galaxy = source.load(galaxy_id)
        excluded = sample_cut_reason(galaxy, cfg)
        if excluded:
            return excluded, None
        return None, observe_galaxy(galaxy, cfg)
    except GalaxyInputError as exc:
        return str(exc), None
    except OSError as exc:  # an input file that cannot be read: the galaxy fails, named
        from analysis_lib.io import os_error_line

        return f"galaxy {galaxy_id}: {os_error_line(exc)}", None


def _observe_one(galaxy_id: int, out: str, key: str = "") -> tuple[int, str | None]:
    """Observe one galaxy and write its shard; a bad or out-of-sample galaxy is reported."""
    err, records = observe_records(galaxy_id, _WORKER["cfg"], _WORKER["source"])
    if err is None:
        write_shard(Path(out), galaxy_id, records, key)
    return galaxy_id, err


def resolve_workers(requested: int | None) -> int:
    return max(1, requested or os.cpu_count() or 1)


def check_output(out: Path, force: bool = False) -> None:
    """Refuse, before any work, an --out that cannot or must not be written.

    A directory; a path under a file; an unwritable folder; an existing file that is not a
    dataset of this project (unless force) -- each is one DatasetError naming the path.
    """
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a directory; give a file name for the dataset")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DatasetError(f"{out}: cannot create it, {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DatasetError(f"{out}: cannot write in {parent} (permission denied)")
    if out.exists() and not force and not is_project_dataset(out):
        raise DatasetError(f"{out}: exists and is not a dataset of this project; refusing to "
                           "replace it (choose another --out, or pass --force)")


def build_dataset(cfg: dict, out: str | Path, source_options: dict | None = None,
                  workers: int | None = None, progress: bool = True, force: bool = False,
                  scheduler: str | None = None) -> Path:
    """Generate (or resume) the dataset file `out` for the resolved configuration `cfg`.

    Refuses at once (DatasetError, OutputBusyError) when `out` cannot be written, is not a
    dataset of this project (unless force) or is being built by another live run. Galaxies
    that fail are recorded in the file (attributes n_failed, failures); see failure_summary.

    `scheduler` (default cfg data.scheduler; None = the local process pool of `workers`) sends
    the galaxies to a Dask cluster: 'local:N' starts a LocalCluster of N processes, otherwise
    an address ('tcp://host:8786') or a scheduler file of a running cluster. The workers
    return each galaxy's arrays and this process writes the shards and the file, so workers
    need not share its disk (TNG cutouts, though, must be readable by them at the same path).
    The file is the same with either back end (see analysis_lib.dataset.cluster). A build stopped
    part-way (Ctrl-C, a killed run, a lost cluster) keeps its finished galaxies' shards: the
    same call resumes, on either back end.
    """
    out = Path(out)
    source_options = source_options or {}
    if scheduler is None:
        scheduler = cfg["data"].get("scheduler")
    if scheduler is not None:
        from analysis_lib.dataset.cluster import check_scheduler

        check_scheduler(scheduler)
    check_output(out, force)
    with output_lock(out, "dataset"):
        check_output(out, force)  # again: another run may have written it meanwhile
        return _build_locked(cfg, out, source_options, workers, progress, scheduler)


Backend = Callable[[list[int]], Iterator[tuple[int, str | None]]]


@contextmanager
def _local_backend(cfg: dict, source_options: dict, out: Path, key: str, n_workers: int
                   ) -> Iterator[Backend]:
    """Galaxy ids -> (id, failure or None), shards written by the workers: one process or a pool.

    Results come back in submission order. The pool's workers die with this process.
    """
    if n_workers == 1:
        _init_worker(cfg, source_options)
        yield lambda ids: (_observe_one(i, str(out), key) for i in ids)
        return
    with ProcessPoolExecutor(n_workers, initializer=_init_worker,
                             initargs=(cfg, source_options, os.getpid())) as pool:
        def run(ids: list[int]) -> Iterator[tuple[int, str | None]]:
            futures = [pool.submit(_observe_one, i, str(out), key) for i in ids]
            for fut in futures:
                yield fut.result()

        yield run


def _backend(cfg: dict, source_options: dict, out: Path, key: str, workers: int | None,
             scheduler: str | None):
    """The context manager that maps galaxies for this build: local pool or Dask."""
    if scheduler is not None:
        from analysis_lib.dataset.cluster import dask_backend

        return dask_backend(scheduler, cfg, source_options, out, key)
    n_workers = resolve_workers(workers if workers is not None else cfg["data"]["workers"])
    return _local_backend(cfg, source_options, out, key, n_workers)


def _build_locked(cfg: dict, out: Path, source_options: dict, workers: int | None,
                  progress: bool, scheduler: str | None = None) -> Path:
    source = make_source(cfg, source_options)
    ids = [int(i) for i in source.galaxy_ids()]
    key = prepare_shards(cfg, out, source_options)
    failures_path = shard_dir(out, key) / "failures.json"
    failures = _current_failures(failures_path, source)
    done = done_galaxies(out, key)
    todo = [i for i in ids if i not in done and str(i) not in failures]
    bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc=f"observing {out.name}",
               unit="galaxy", **tqdm_options(progress))
    try:
        if todo:
            with _backend(cfg, source_options, out, key, workers, scheduler) as run:
                for gid, err in run(todo):  # each shard is on disk before its id comes back
                    _record(failures, failures_path, gid, err, source)
                    bar.update()
    finally:
        bar.close()
    from analysis_lib.observe.features import SUN_ABS_MAG_AB_SDSS  # what observe assumes

    wanted = set(ids)  # in id order: results come back in any order (a pool, a cluster, a resume)
    reasons = {g: failures[g]["reason"] for g in sorted(failures, key=int) if int(g) in wanted}
    good = [i for i in ids if str(i) not in reasons]
    n_excluded = sum(msg.startswith(EXCLUDED) for msg in reasons.values())
    if not good:
        raise DatasetError(f"{out}: no galaxies to write; "
                           + " ".join(failure_summary(reasons, limit=3)))
    attrs = {"profile": cfg.get("profile", "custom"), "seed": int(cfg["seed"]),
             "source": cfg["data"]["source"], "config": json.dumps(cfg, default=str),
             "dataset_key": key, "inputs_fingerprint": inputs_fingerprint(cfg, source_options),
             "n_failed": len(reasons) - n_excluded, "n_excluded": n_excluded,
             "sun_abs_mag_ab": json.dumps(dict(getattr(source, "sun_abs_mag_ab",
                                                       SUN_ABS_MAG_AB_SDSS))),
             "failures": json.dumps(reasons)}
    return assemble(out, good, attrs, list(cfg["observe"]["image_sizes"]), key=key)


def _normalised_reason(text: str) -> str:
    """A failure message without its galaxy id, paths and numbers: groups alike failures."""
    text = re.sub(r"^galaxy \d+:\s*", "", text)
    text = re.sub(r"\S*cutout_\d+\.hdf5\S*", "<cutout>", text)
    return re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "#", text)


def failure_summary(failures: dict[str, str], limit: int = 5) -> list[str]:
    """Lines for the end of a build: counts per reason, with the first few galaxies of each.

    Galaxies outside the sample cut (EXCLUDED) are counted apart: they are not failures.
    """
    excluded = sorted(int(g) for g, r in failures.items() if r.startswith(EXCLUDED))
    failed = {g: r for g, r in failures.items() if not r.startswith(EXCLUDED)}
    lines = []
    if failed:
        groups: dict[str, list[int]] = {}
        for g, r in sorted(failed.items(), key=lambda kv: int(kv[0])):
            groups.setdefault(_normalised_reason(r), []).append(int(g))
        lines.append(f"{len(failed)} galaxies failed:")
        for _, gids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            first = failed[str(gids[0])]
            ids = ", ".join(str(g) for g in gids[:limit]) + (", ..." if len(gids) > limit else "")
            lines.append(f"  {len(gids)} x {first}  [galaxies {ids}]")
    if excluded:
        ids = ", ".join(str(g) for g in excluded[:limit]) + (", ..." if len(excluded) > limit
                                                               else "")
        lines.append(f"{len(excluded)} galaxies outside the sample cut (not failures): {ids}")
    return lines


def dataset_failures(path: str | Path) -> dict[str, str]:
    """Galaxy id -> reason, as recorded in a dataset file (failures and sample-cut exclusions)."""
    from analysis_lib.dataset import open_dataset

    return json.loads(open_dataset(path).attrs.get("failures", "{}") or "{}")


def input_fingerprint(source, galaxy_id: int) -> str:
    """What a galaxy's recorded failure depends on besides the settings (in the dataset key).

    For a cutout source: the cutout file's size, mtime and SHA-256 (computed only for failed
    galaxies), so a repaired or replaced cutout is retried. For the mock (and a local
    simulation) the settings alone decide, so the fingerprint is empty.
    """
    directory = getattr(source, "directory", None)
    if directory is None:
        return ""
    from analysis_lib.sources.tng.cutouts import cutout_path

    path = cutout_path(directory, galaxy_id)
    try:
        st = path.stat()
        digest = short_digest(file_chunks(path), 16)
    except OSError:
        return "missing"
    return f"{st.st_size}-{st.st_mtime_ns}-{digest}"


def _current_failures(path: Path, source) -> dict[str, dict]:
    """Recorded failures whose input is unchanged (the others are retried)."""
    try:
        recorded = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        recorded = {}
    return {g: r for g, r in recorded.items()
            if isinstance(r, dict) and r.get("input") == input_fingerprint(source, int(g))}


def prepare_shards(cfg: dict, out: Path, source_options: dict | None = None) -> str:
    """The shard folder of `out` for these settings, `<out>.parts/<key>/`; returns the key.

    Shards (and recorded failures) are resumed only by a build with the same settings and
    physics code. Folders of other keys (and an old flat layout) are removed, under the
    output's lock, so never those of a live run.
    """
    out = Path(out)
    key = dataset_key(cfg, source_options)
    with output_lock(out, "dataset"):
        base = shard_dir(out)
        if base.exists():
            for entry in base.iterdir():
                if entry.name != key:
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
        Path(str(out) + ".failures.json").unlink(missing_ok=True)  # the old, unkeyed record
        shard_dir(out, key).mkdir(parents=True, exist_ok=True)
    return key


def _record(failures: dict, path: Path, galaxy_id: int, err: str | None, source=None) -> None:
    if err is not None:
        failures[str(galaxy_id)] = {"reason": err,
                                    "input": input_fingerprint(source, galaxy_id)}
        atomic_write_text(path, json.dumps(failures, indent=1))


# The code that decides a dataset's content: a change here makes stored datasets (and shards
# of an interrupted build) stale, just as a change of their settings does.
PHYSICS_CODE = ("sources", "observe", "particles.py", "dataset/schema.py", "rng.py")


def physics_code_hash() -> str:
    """Hash of the source files that turn particles into a dataset (see PHYSICS_CODE)."""
    root = Path(__file__).resolve().parent.parent  # analysis_lib/
    files = []
    for name in PHYSICS_CODE:
        path = root / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return short_digest((part for path in files
                         for part in (str(path.relative_to(root)).encode(), path.read_bytes())),
                        12)


def dataset_key(cfg: dict, source_options: dict | None = None) -> str:
    """What a dataset must share with cfg to be reused: its settings and the physics code."""
    return f"{dataset_config_key(cfg, source_options)}-{physics_code_hash()}"


def _tng_inputs(cfg: dict, source_options: dict | None) -> dict:
    """Where TNG particles come from (absolute paths): options win over cfg tng.*."""
    options = source_options or {}
    tng = cfg.get("tng", {})
    cut = options.get("cutouts_dir")
    base = options.get("base_path")
    if cut is None and base is None:
        cut, base = tng.get("cutouts_dir"), tng.get("base_path")
    return {"cutouts_dir": str(Path(cut).resolve()) if cut else None,
            "base_path": str(Path(base).resolve()) if base else None}


def dataset_config_key(cfg: dict, source_options: dict | None = None) -> str:
    """The part of a configuration that determines a dataset's content.

    The seed, the mock's physics, the observation and instrument settings, the data section
    (but not its worker count or Dask scheduler), and for TNG the tng.* settings and where
    the particles are read.
    """
    from analysis_lib.config import config_hash

    content = {k: cfg[k] for k in ("seed", "mock", "observe")}
    content["data"] = {k: v for k, v in cfg["data"].items() if k not in ("workers", "scheduler")}
    if "instrument" in cfg:
        content["instrument"] = cfg["instrument"]
    if cfg["data"]["source"] == "tng":
        content["tng"] = {**{k: v for k, v in cfg.get("tng", {}).items()
                             if k not in ("cutouts_dir", "base_path")},
                          **_tng_inputs(cfg, source_options)}
    return config_hash(content)


def inputs_fingerprint(cfg: dict, source_options: dict | None = None) -> str:
    """For a TNG cutout directory, a hash of its files' names, sizes and mtimes; else ''.

    A dataset is reused (ensure_dataset) only while it matches, so cutouts added, repaired or
    replaced since the build make it out of date.
    """
    if cfg["data"]["source"] != "tng":
        return ""
    cut = _tng_inputs(cfg, source_options)["cutouts_dir"]
    if not cut or not Path(cut).is_dir():
        return ""
    entries = []
    for p in sorted(Path(cut).glob("cutout_*.hdf5")):
        st = p.stat()
        entries.append((p.name, st.st_size, st.st_mtime_ns))
    return short_hash(entries, 16)  # a list of (str, int, int): the same JSON as unsorted


def ensure_dataset(cfg: dict, path: str | Path | None = None, source_options: dict | None = None,
                   progress: bool = True) -> Path:
    """The dataset for cfg: reused if a file made with the same settings exists, else built."""
    from analysis_lib.dataset import DatasetError, open_dataset

    path = Path(path) if path else default_dataset_path(cfg)
    check_output(path, force=True)  # an old file is kept as <path>.stale, never lost
    with output_lock(path, "dataset"):
        if path.exists():
            try:
                found = open_dataset(path)
                stored_key = found.attrs.get("dataset_key")
                stored_inputs = found.attrs.get("inputs_fingerprint", "")
            except DatasetError:
                stored_key, stored_inputs = None, None
            if stored_key == dataset_key(cfg, source_options) and \
                    stored_inputs == inputs_fingerprint(cfg, source_options):
                return path
            stale = path.with_name(path.name + ".stale")
            os.replace(path, stale)  # keep, never silently lose, an older dataset
        built = build_dataset(cfg, path, source_options, progress=progress)
    for line in failure_summary(dataset_failures(built)):
        print(line, file=sys.stderr)
    return built
