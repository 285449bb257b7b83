"""Safe file output: unique temporary files, atomic writes, whole-directory swaps, output locks.

Why one module: every stage writes files other runs may be reading or writing at the same time
(two `dataset` runs on one --out, a notebook training while the CLI trains). The rules here are
the same everywhere:

- a file appears under its final name only complete (written to a unique temporary file in the
  same directory, then `os.replace`d; the name comes from `tempfile.mkstemp`, so two writers
  never share a temporary file);
- an output that a run builds over minutes (a dataset, a store entry) is guarded by a lock,
  `<output>.lock`, taken with `fcntl.flock` before anything is written. The kernel releases a
  flock when its holder dies, so a killed run never blocks the next one; a second run is
  refused at once with one line naming the holder (pid, host, command, start time).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

try:  # POSIX; elsewhere locks degrade to no-ops (the project runs on Linux and macOS)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class OutputBusyError(RuntimeError):
    """Another live run holds the lock of an output; the message names it."""


# --------------------------------------------------------------------------- short hashes
# Names of caches, datasets and store entries carry a short hash of what they depend on. The
# two helpers below are the only places that cut a digest: a key computed twice must come out
# the same, and a length changed in one caller would orphan every stored entry of that key.


def short_digest(chunks: Iterable[bytes], n: int = 12, algorithm: str = "sha256") -> str:
    """The first `n` hex digits of the digest of `chunks`, fed in order.

    Why: some keys hash file contents or arrays (streamed, never one JSON blob); they share
    the truncation rule with `short_hash`.

    Parameters
    ----------
    chunks : iterable of bytes
        The data, in order (equivalent to hashing their concatenation).
    n : int
        Hex digits kept.
    algorithm : str
        A `hashlib` algorithm name; callers keep the one their stored keys were made with.

    Returns
    -------
    str
        ``n`` lower-case hex digits.
    """
    digest = hashlib.new(algorithm)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()[:n]


def short_hash(obj, n: int = 12, algorithm: str = "sha256") -> str:
    """Stable short hash of a JSON-able object (keys sorted, unknown types as `str`).

    Parameters
    ----------
    obj : object
        Anything `json.dumps` can write with ``default=str``.
    n : int
        Hex digits kept.
    algorithm : str
        A `hashlib` algorithm name.

    Returns
    -------
    str
        ``n`` lower-case hex digits.
    """
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return short_digest([blob], n, algorithm)


def file_chunks(path: str | Path, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of a file in pieces of `size`, for `short_digest` of a large file."""
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            yield chunk


# --------------------------------------------------------------------------- progress bars


def tqdm_options(progress: bool) -> dict:
    """Keyword arguments for `tqdm` that honour both the caller's wish and TQDM_DISABLE.

    Why: `analysis_lib.presentation.publish` sets TQDM_DISABLE for the notebook kernels so
    that no progress bar (an ipywidget in a kernel) lands in the book. tqdm reads that
    variable itself only when no ``disable`` is passed, and ``tqdm.notebook`` (what
    ``tqdm.auto`` gives in a kernel) always passes one (``disable=False``), so the switch is
    read here. On the command line bars show as before.

    Parameters
    ----------
    progress : bool
        False: no bar whatever the environment says.

    Returns
    -------
    dict
        ``{}`` or ``{"disable": True}``, to be splatted into ``tqdm(...)``.
    """
    off = os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
    return {} if progress and not off else {"disable": True}


def progress_note(message: str, progress: bool = True) -> None:
    """One line of progress ("[cnn 3/12] s41_r_mstar") where the progress bars show, else none.

    Why: these lines belong with the bars they announce; in the book's kernels (TQDM_DISABLE)
    they would be printed into the chapters as stray log lines. Warnings and failures are not
    progress and go through `tqdm.write` (or an exception) unconditionally.

    Parameters
    ----------
    message : str
        The line, without a newline.
    progress : bool
        The caller's wish, as for `tqdm_options`.
    """
    if not tqdm_options(progress):
        from tqdm.auto import tqdm

        tqdm.write(message)


# --------------------------------------------------------------------------- temporary files


def unique_tmp(path: str | Path, suffix: str = ".tmp") -> Path:
    """A new, empty, uniquely named file beside `path` (same file system: rename is atomic).

    The name starts with '.' and the final name, so it is recognisable and never matched by a
    glob of final names (`galaxy_*.npz`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | Path, writer: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Call writer(tmp) on a unique temporary file beside `path`, then rename it over `path`.

    On any error the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = unique_tmp(path, suffix)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text atomically (unique temporary file, then rename)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically (unique temporary file, then rename)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_csv(path: str | Path, frame) -> Path:
    """A pandas DataFrame as CSV (no index), atomically."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


@contextlib.contextmanager
def atomic_directory(final: str | Path, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a new temporary directory beside `final`; on success it replaces `final` whole.

    Nothing of an older `final` survives except the relative paths in `keep` (moved into the
    new directory when the new one lacks them: caches such as JAM's per-sample fits). A crash
    leaves `final` untouched and only a hidden `.<name>.*.tmpdir` behind, which is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmpdir"))
    try:
        yield tmp
        for rel in keep:
            old, new = final / rel, tmp / rel
            if old.exists() and not new.exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old, new)
        if final.exists():
            trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.",
                                          suffix=".old"))
            os.replace(final, trash / "entry")
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- locks

_HELD: dict[str, list] = {}  # lock path -> [file object, depth], for re-entry in one process
_HELD_GUARD = threading.Lock()


def lock_path(output: str | Path) -> Path:
    """The lock file of an output, `<output>.lock`, beside it (see `output_lock`)."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: "
            f"{info.get('command')}")


@contextlib.contextmanager
def output_lock(output: str | Path, what: str = "output") -> Iterator[Path]:
    """Hold `<output>.lock` (exclusive, non-blocking) for the duration of the block.

    Raises OutputBusyError naming the holder when another live process holds it. Re-entrant in
    one process (nested stages of one run share the lock; threads of one process are not kept
    apart). The lock file is removed on release; one left by a killed run is harmless (only the
    flock matters, and the kernel dropped it).
    """
    path = lock_path(output)
    key = str(path.resolve())
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _HELD_GUARD:
                _HELD[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = _acquire(path, output, what)
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "command": _command_line()[:300],
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        fh.flush()
        with _HELD_GUARD:
            _HELD[key] = [fh, 1]
        try:
            yield path
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)
            with contextlib.suppress(OSError):
                path.unlink()  # still holding it: whoever opens the path next gets a new file
    finally:
        fh.close()  # releases the flock


def _command_line() -> str:
    """The running command as a user would type it (`python -m analysis_lib ...`)."""
    argv = list(sys.argv) or ["python"]
    if argv[0].endswith(("analysis_lib/__main__.py", "analysis_lib\\__main__.py")):
        argv[0] = "python -m analysis_lib"
    return " ".join(argv)


def _acquire(path: Path, output, what: str):
    """Open and flock `path`, making sure the locked file is still the one at `path`.

    A holder removes its lock file on release; a run that opened the old file just before
    must not believe it holds the lock, so it retries on the new file.
    """
    for _ in range(100):
        fh = open(path, "a+")  # noqa: SIM115 - returned to the caller, who closes it
        if fcntl is None:  # pragma: no cover
            return fh
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder_text(path)
            fh.close()
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputBusyError(f"{output}: {what} is being written by {holder} (lock "
                                  f"{path}); wait for it to finish or stop it") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fh
        fh.close()
    raise OutputBusyError(f"{output}: could not take the lock {path}")


# --------------------------------------------------------------------------- errors


def os_error_line(exc: BaseException) -> str:
    """One line for an OS or HDF5 error, naming the file(s) when the exception knows them."""
    if isinstance(exc, OSError):
        names = [n for n in (exc.filename, exc.filename2) if n]
        reason = exc.strerror or (exc.args[0] if exc.args else type(exc).__name__)
        reason = " ".join(str(reason).split())
        if names:
            return f"{' -> '.join(str(n) for n in names)}: {reason} ({type(exc).__name__})"
        return f"{reason} ({type(exc).__name__})"
    return " ".join(str(exc).split()) or type(exc).__name__
