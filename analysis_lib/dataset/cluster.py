"""Dataset generation on a Dask cluster (dask.distributed): the back end behind `--scheduler`.

Why: one process pool on one machine does not reach a TNG300 sample or a dataset per universe at
paper size. With `dataset --scheduler ADDRESS` (or `data.scheduler` in a profile) the galaxies
are observed by the workers of any running Dask cluster -- a laptop's LocalCluster, a
`dask scheduler` started by hand, or a dask-jobqueue SLURM/PBS cluster.

Only *how galaxies are mapped to workers* changes; everything else is build.py's, shared with
the local pool: the per-galaxy seeds (a galaxy's random stream depends only on the dataset seed
and its id), the shards, resumption, the output's lock and the failure record. So the file is
identical, array by array, whatever the cluster, and a build interrupted on one back end resumes
on the other.

Where things are written: a worker only *computes* a galaxy and returns its arrays; the client
(the process that runs `dataset`) writes the shard and the final file. Workers of a remote
cluster need not see the client's disk, and a worker that dies never leaves a torn shard. The
cost is moving each galaxy's arrays over the network once (a few MB at paper size), small next
to the seconds it takes to observe it. Inputs are another matter: with `--source tng`, every
worker must read the cutouts at the same path as the client (a shared file system).

Workers must run the same analysis_lib physics code as the client: each task checks the hash of
that code (build.physics_code_hash) and the build stops, naming the worker, on a mismatch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCAL_PREFIX = "local:"
MIN_IN_FLIGHT = 8  # tasks kept queued even before any worker has joined (a pending SLURM job)
CONNECT_TIMEOUT_S = 30

# One source per worker process and dataset key: building it (the mock population, a TNG
# catalogue) once, not once per galaxy.
_SOURCES: dict[str, Any] = {}
_SOURCES_LOCK = threading.Lock()


def scheduler_problem(value: object) -> str | None:
    """Why `value` is not a usable data.scheduler / --scheduler, or None when it is.

    Accepted: null (the local process pool), 'local:N' (a LocalCluster of N worker processes
    started for this build), a scheduler address such as 'tcp://10.0.0.5:8786', or the path
    of a scheduler file (``'*.json'``, as written by `dask scheduler --scheduler-file`).
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        return f"{value!r} must be 'local:N', a scheduler address (tcp://host:port) or a " \
               "scheduler file (*.json)"
    if value.startswith(LOCAL_PREFIX):
        n = value[len(LOCAL_PREFIX):]
        if not re.fullmatch(r"[1-9][0-9]*", n):
            return f"{value!r}: 'local:N' needs a number of workers N >= 1"
        return None
    if value.endswith(".json"):
        return None if Path(value).is_file() else f"{value!r}: no such scheduler file"
    if not re.fullmatch(r"[a-z][a-z0-9+]*://\S+", value):
        return f"{value!r} is not a scheduler address (e.g. tcp://host:8786), 'local:N' or a " \
               "scheduler file (*.json)"
    return None


def check_scheduler(value: object, name: str = "data.scheduler") -> None:
    """Raise ConfigError, naming the setting or option `name`, if `value` is not usable."""
    from analysis_lib.config import ConfigError

    problem = scheduler_problem(value)
    if problem:
        raise ConfigError(f"{name}={problem}" if name.startswith("data.") else
                          f"{name} {problem}")


@contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A distributed.Client for `scheduler` (see scheduler_problem), closed on exit.

    'local:N' starts a LocalCluster of N single-threaded worker processes (the physics is
    numpy code that holds the GIL, so processes, not threads) and shuts it down afterwards;
    its workers exit with this process even when it is killed (distributed watches its parent).
    Its workers are spawned, so a script that uses 'local:N' needs the usual
    `if __name__ == "__main__":` guard (the CLI and notebooks need nothing). An unreachable
    scheduler is one DatasetError naming the address.
    """
    check_scheduler(scheduler)
    from distributed import Client, LocalCluster

    from analysis_lib.dataset import DatasetError

    cluster = None
    try:
        if scheduler.startswith(LOCAL_PREFIX):
            n = int(scheduler[len(LOCAL_PREFIX):])
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        elif scheduler.endswith(".json"):
            client = Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT_S)
        else:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise DatasetError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def observe_remote(galaxy_id: int, cfg: dict, source_options: dict, key: str
                   ) -> tuple[int, str | None, list[dict] | None]:
    """Run on a Dask worker: observe one galaxy and return (id, failure or None, records).

    Nothing is written here (the client writes the shard). The particle source is made once
    per worker process and dataset key. A worker whose physics code differs from the one that
    made `key` raises DatasetError naming it: its galaxies would not match the others'.
    """
    from analysis_lib.dataset import DatasetError, build

    code = build.physics_code_hash()
    if not key.endswith(f"-{code}"):
        raise DatasetError(f"Dask worker {_worker_name()}: its analysis_lib physics code "
                           f"(hash {code}) differs from the client's (dataset key {key}); "
                           "install the same version on every worker")
    with _SOURCES_LOCK:
        if key not in _SOURCES:
            _SOURCES.clear()  # one dataset at a time: do not keep an old source's memory
            _SOURCES[key] = build.make_source(cfg, source_options)
        source = _SOURCES[key]
    err, records = build.observe_records(galaxy_id, cfg, source)
    return galaxy_id, err, records


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "(unknown)"


def _in_flight(client: Any) -> int:
    """How many tasks to keep submitted: twice the cluster's threads, at least MIN_IN_FLIGHT.

    Asked again as results arrive, so workers that join later (an adaptive or jobqueue cluster)
    get work; bounded, so finished galaxies never pile up in the workers' memory.
    """
    try:
        threads = sum(client.nthreads().values())
    except (OSError, TimeoutError):
        threads = 0
    return max(MIN_IN_FLIGHT, 2 * threads)


def dask_map(client: Any, ids: Iterable[int], cfg: dict, source_options: dict, out: Path,
             key: str) -> Iterator[tuple[int, str | None]]:
    """Observe `ids` on the cluster; write each shard here as it arrives; yield (id, failure).

    Results come in completion order (the caller records them by id, and the file is assembled
    in id order, so order does not matter). A lost scheduler, or a cluster that kills a task's
    worker again and again (distributed's KilledWorker, e.g. out of memory), stops the build
    with one DatasetError; the shards already written stay, so a rerun resumes. Any other
    exception of a task (a bug) is raised as it is, as with the local pool.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from analysis_lib.dataset import DatasetError, write_shard

    todo = list(ids)
    queue = iter(todo)
    done = 0

    def submit(n: int) -> list:
        futures = []
        for gid in queue:
            futures.append(client.submit(observe_remote, gid, cfg, source_options, key,
                                         pure=False, retries=0))
            if len(futures) >= n:
                break
        return futures

    def stopped(what: str, exc: BaseException) -> DatasetError:
        return DatasetError(f"{out}: {what} after {done} of {len(todo)} galaxies "
                            f"({_one_line(exc)}); the galaxies done so far are kept: rerun to "
                            "resume")

    try:
        pending = as_completed(submit(_in_flight(client)))
    except (OSError, TimeoutError) as exc:  # CommClosedError is an OSError
        raise stopped("lost the Dask cluster", exc) from exc
    for future in pending:
        try:
            gid, err, records = future.result()
            future.release()
            more = _in_flight(client) - pending.count()
            if more > 0:
                pending.update(submit(more))
        except (OSError, TimeoutError, asyncio.CancelledError,
                concurrent.futures.CancelledError) as exc:
            if future.status == "error":  # raised by the task itself (e.g. unreadable input)
                raise
            raise stopped("lost the Dask cluster", exc) from exc
        except KilledWorker as exc:  # distributed gave up: the galaxy's workers kept dying
            raise stopped("the Dask cluster gave up on a galaxy that kept killing its worker "
                          "(out of memory?)", exc) from exc
        if err is None:  # written here, by the client: workers need not share this disk
            write_shard(out, gid, records, key)
        done += 1
        yield gid, err


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


@contextmanager
def dask_backend(scheduler: str, cfg: dict, source_options: dict, out: Path, key: str
                 ) -> Iterator[Callable[[list[int]], Iterator[tuple[int, str | None]]]]:
    """build.py's back-end interface on Dask: a function from galaxy ids to (id, failure).

    See dask_client for `scheduler` and dask_map for how results come back.
    """
    with dask_client(scheduler) as client:
        yield lambda ids: dask_map(client, ids, cfg, source_options, out, key)
