"""One run at a time per --out: the `.DIR.lock` file, held with flock for the run's lifetime.

    locks.acquire_lock(out)        # exit 2 naming the holder when another run writes `out`
    locks.release_lock(out)        # the last holder removes the file

The kernel drops a lock when its process dies, so a kill -9 never leaves a stale one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmctl.console import warn
from llmctl.errors import UserError


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def lock_path(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.lock"


@dataclass
class _Lock:
    path: Path
    fd: int
    pid: int
    shared: bool


# Locks this process holds, by lock path: a stage that calls begin() twice (or a test that does)
# must not lock itself out; flock conflicts between two open() of one file even in one process.
_HELD: dict[Path, _Lock] = {}


def _drop_inherited_locks() -> None:
    """In a forked child (a worker pool): close the inherited lock descriptors. A worker
    orphaned by a kill -9 of its parent would otherwise keep the lock, and every later run
    on that --out would be refused."""
    for held in _HELD.values():
        try:
            os.close(held.fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def acquire_lock(out: str | Path, *, shared: bool = False) -> None:
    """Hold `.DIR.lock` for this run, or exit 2 naming the run that holds it.

    Exclusive for an ordinary run; shared for the shard tasks of one sharded run (SLURM array
    tasks fill one staging directory together on purpose), so shards coexist with each other
    but never with an ordinary run. The kernel drops the lock when the process dies, so a
    kill -9 never leaves a stale lock behind. Never blocks."""
    path = lock_path(out)
    held = _HELD.get(path)
    if held is not None and held.pid == os.getpid():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise UserError(
                f"another llmctl run ({holder}) is writing {out}; wait for it or stop it"
            ) from None
        except OSError as e:  # a filesystem without flock (some NFS/Lustre mounts): run unlocked
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            os.close(fd)
            warn(f"cannot lock {path} ({e.strerror}); make sure no other run writes {out}")
            return
        # the holder before us may have removed the file after we opened it: lock the live one
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    info_ = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "shared": shared}
    if not shared or os.fstat(fd).st_size == 0:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info_).encode(), 0)
    _HELD[path] = _Lock(path, fd, os.getpid(), shared)


def _lock_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        where = "" if data.get("host") == socket.gethostname() else f" on {data.get('host')}"
        return f"pid {data['pid']}{where}, started {data['started']}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "pid unknown"


def release_lock(out: str | Path) -> None:
    """Drop this process's lock; the last holder removes the lock file."""
    _release(lock_path(out))


def release_all_locks() -> None:
    """Drop every lock this process holds (a run ending on a user error)."""
    for path in list(_HELD):
        _release(path)


def _release(path: Path) -> None:
    held = _HELD.pop(path, None)
    if held is None or held.pid != os.getpid():
        return
    try:  # exclusive now means no other holder: safe to remove (others re-check the inode)
        fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.path.unlink(missing_ok=True)
    except OSError:
        pass
    os.close(held.fd)
