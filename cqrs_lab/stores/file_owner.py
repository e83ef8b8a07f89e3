"""One process owns a store's file: an exclusive ``flock`` on it while the store is open.

SQLite's own locks let a second process open the file, read what it holds and fail only at
its first write; the store takes this lock first, so a second store on the same file (a
second ``cqrs-lab serve``, or a second store in one process) is refused at once, naming it.
The kernel drops the lock with the process (kill -9 included), so a restart is never
refused by a dead owner.
"""

from __future__ import annotations

import fcntl
import os

from cqrs_lab.errors import ConfigError

__all__ = ["own_file"]


def own_file(path: str) -> int | None:
    """An exclusive lock on the store's file (None for an in-memory database), held until
    the store closes; a file another store holds is refused, naming it."""
    if path == ":memory:" or path == "" or path.startswith("file:"):
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open SQLite store at {path!r}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(
            f"{path}: another store has this file open (a cqrs-lab serve, or another store in "
            "this process); one process owns a SQLite store: stop the other first, or serve "
            "several processes from PostgreSQL"
        ) from None
    return fd
