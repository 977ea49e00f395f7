"""Writing files so that a kill never leaves half of one, and the one lock every command takes.

- `atomic_open` / `atomic_write`: the new content goes to `<name>.<pid>.tmp` beside the file (one per process, so
  parts on several nodes never share one), is fsynced, then renamed over it: a reader sees the old file or the
  new one, never a partial one. A write that fails removes its temporary file. `temporaries` finds those a kill
  left behind. `atomic_folder` does the same for a whole folder.
- `hold_lock` / `release_lock` / `locked`: an exclusive fcntl.flock on a lock file, stamped with its holder. The
  kernel drops it when the process dies, so a killed run never blocks its rerun.
- `csv_cell`: a CSV cell that no spreadsheet runs as a formula.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _temporary(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def temporaries(folder: Path, pattern: str) -> list[Path]:
    """The temporary files of unfinished atomic writes to the files of `folder` matching `pattern` (a glob)."""
    return sorted(Path(folder).glob(f"{pattern}.*.tmp"))


@contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """A handle on a temporary file beside `path`, fsynced and renamed over `path` when the block ends; on any
    failure (a full disk, a kill by KeyboardInterrupt) the temporary file is removed and `path` stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Replace `path` by `data` (text or bytes) through `atomic_open`. The state files of every command are
    written this way."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def _share_like_umask(folder: Path) -> None:
    """mkdtemp makes its folder 0700: give it the permissions any file the user writes gets (0777 / 0666 less the
    umask), so the rest of a cluster group can read it."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _replace_folder(tmp: Path, out: Path) -> None:
    """Rename tmp onto out; an existing out is moved aside first and removed only once tmp is in place."""
    if not out.exists():
        tmp.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
    out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` to fill; once filled it replaces `out` (with the permissions of the user's
    files), and on any failure it is removed and `out` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _share_like_umask(tmp)
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class LockHeld(OSError):
    """The lock file is held by a live process; `holder` is what that process wrote into it."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is locked by {holder}")
        self.path, self.holder = path, holder


_HELD_LOCKS: set = set()  # this process's lock files, closed in every forked child (see hold_lock)


def _drop_locks_in_child() -> None:
    for handle in list(_HELD_LOCKS):
        handle.close()  # the child's copy only: the parent's descriptor keeps the lock
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_locks_in_child)


def hold_lock(path: Path, wait: bool = False):
    """An exclusive fcntl.flock on `path`, stamped with this process's pid, host and start; release_lock ends it.
    The kernel drops it when the process dies, so a killed run never blocks its rerun. A flock belongs to the open
    file, which fork shares: forked children (DataLoader workers take seconds to notice a SIGKILLed parent: their
    watchdog polls every 5 s) would hold it on, so they close their copy at fork. Held and not `wait`: LockHeld."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LockHeld(Path(path), holder) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
    handle.flush()
    _HELD_LOCKS.add(handle)
    return handle


def release_lock(handle) -> None:
    _HELD_LOCKS.discard(handle)
    handle.close()  # closing the descriptor drops the flock


@contextmanager
def locked(path: Path, busy: type, what: str, wait: bool = False, by: str = "run"):
    """Hold `hold_lock` on `path` for the block; without `wait`, a held lock raises `busy` naming `what`, the kind
    of run (`by`) and the holder."""
    try:
        handle = hold_lock(path, wait)
    except LockHeld as held:
        raise busy(f"{what} is being written by another {by} ({held.holder}; lock {path}). Wait for it to finish "
                   f"or stop it; the lock goes with the process, so a killed run holds nothing") from None
    try:
        yield
    finally:
        release_lock(handle)


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list)."""


def csv_cell(value):
    """A CSV cell that no spreadsheet runs: text starting like a formula (a video named `=HYPERLINK(...)`, a
    caption) gets a leading apostrophe, which spreadsheets hide; numbers, also negative ones, stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value
