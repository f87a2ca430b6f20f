"""A lock file that says one process owns a store: ``<database>.lock``, held with ``flock``.

Two brokers on one SQLite database both start and diverge: each loads the same queues and hands
out the same messages.  The SQLite store therefore holds ``<database>.lock`` with
``flock(LOCK_EX | LOCK_NB)`` for as long as it is open, with its process id written in it, and a
second broker fails at start naming the database and that process id.

``flock`` rather than a file that merely exists: the kernel releases the lock when its holder's
descriptor closes, which includes the process dying, so a ``kill -9`` never leaves a stale lock
behind.  The file itself stays (see :meth:`LockFile.release`).  Unix only, as the broker is.

Imports only ``errors``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import StoreError, StoreInUse

__all__ = ["LockFile"]

_PID_BYTES = 32  # more than any process id takes, as decimal text


class LockFile:
    """``path`` locked exclusively by this process between :meth:`acquire` and :meth:`release`."""

    def __init__(self, path: Path, store: Path) -> None:
        self.path = path
        self.store = store  # what the lock protects, named in the error
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StoreInUse` naming the store and the holder's pid."""
        if self._fd is not None:
            return
        # os.open makes the descriptor non-inheritable (PEP 446): a child process started by an
        # embedding program does not keep the lock alive after the broker has gone.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a StoreError, not an OSError the command would take for its port
            where = os.path.abspath(self.store)
            raise StoreError(f"cannot open the lock file of database {where}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder is not None else "another process (pid not known yet)"
            raise StoreInUse(
                f"database {os.path.abspath(self.store)} is in use by {who} (it holds"
                f" {os.path.abspath(self.path)}): stop that broker first, or give this one another"
                " storage.path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # releases the lock with it
            raise
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock.  The file is left in place on purpose: deleting it would let a
        process that opened it just before lock the deleted file while a third creates and locks
        a new one, and both would believe they own the store."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file releases the flock


def _read_pid(fd: int) -> int | None:
    """The holder's pid as it wrote it; None while it has not written it yet (or wrote garbage)."""
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
