"""A bound on how long the PostgreSQL store waits for the database on one connection.

A database that stopped answering without closing its connections (its processes paused:
``SIGSTOP``, a frozen virtual machine, a network path that drops everything) leaves a
statement waiting for a reply that never comes: the kernel keeps acknowledging what is
sent, so neither the connection's keepalives nor a server-side ``statement_timeout`` ends
the wait, and a served loop, which runs its writer's transactions on the loop, stops
answering anything, ``/livez`` included. :class:`Deadlines` ends such a wait: a connection is
held with :meth:`Deadlines.hold` while in use, and a daemon thread shuts down the socket of
one held past ``limit_s`` seconds, so that the waiting call fails as on a connection the
server dropped (``psycopg.OperationalError`` on a broken connection, which the store turns
into :class:`~cqrs_lab.errors.StoreUnavailable`, and the served process into 503 answers and
exit 75 for its supervisor to restart it).

>>> import socket
>>> a, b = socket.socketpair()
>>> deadlines = Deadlines(0.2, tick=0.05)
>>> with deadlines.hold(a.fileno()):
...     a.recv(1)  # b never writes: the socket is shut down after 0.2 s, recv sees its end
b''
>>> deadlines.fired
1
>>> import time
>>> with deadlines.hold(b.fileno()):  # done in time: left alone
...     pass
>>> time.sleep(0.4); deadlines.fired
1
>>> deadlines.close(); a.close(); b.close()
>>> Deadlines(0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
cqrs_lab.errors.ConfigError: statement_limit_s=0: seconds one use of a connection may wait ...
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator

from cqrs_lab.errors import ConfigError

__all__ = ["STATEMENT_LIMIT_S", "Deadlines"]

#: seconds one use of a connection may wait for the database before its socket is shut down
STATEMENT_LIMIT_S = 10.0


class Deadlines:
    """Connections in use (by socket descriptor) and the moment each must be done by; a
    daemon thread, started with the first :meth:`hold` and woken every ``tick`` seconds,
    shuts down the socket of one held past ``limit_s`` (``fired`` counts them)."""

    def __init__(self, limit_s: float = STATEMENT_LIMIT_S, tick: float = 0.25) -> None:
        if not (isinstance(limit_s, int | float) and math.isfinite(limit_s) and limit_s > 0):
            raise ConfigError(
                f"statement_limit_s={limit_s!r}: seconds one use of a connection may wait for "
                "the database, > 0"
            )
        self.limit_s, self.tick = float(limit_s), tick
        self.fired = 0
        # token -> (deadline, descriptor, its inode: the same socket, not a later one that
        # took the number after the connection closed its own)
        self._held: dict[int, tuple[float, int, int]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def hold(self, fd: int | None) -> Iterator[None]:
        """Within the block, the socket ``fd`` is shut down once ``limit_s`` have passed
        (None: no socket, nothing held)."""
        inode = _inode(fd)
        if fd is None or inode is None:  # no socket, or not open: nothing can wait on it
            yield
            return
        with self._lock:
            self._next += 1
            token = self._next
            self._held[token] = (time.monotonic() + self.limit_s, fd, inode)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="cqrs-lab-pg-deadlines", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(token, None)

    def close(self) -> None:
        """Stop the thread (the store closing)."""
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            with self._lock:
                late = [t for t, (deadline, _, _) in self._held.items() if deadline <= now]
                for token in late:  # shut down while held: the descriptor is still its own
                    _, fd, inode = self._held.pop(token)
                    self._shut(fd, inode)

    def _shut(self, fd: int, inode: int) -> None:
        """Shut the socket down both ways through a duplicate of its descriptor (the same
        socket: a call waiting on it returns at once), then close the duplicate; a number
        that now names another file (the connection closed its socket and something else
        took the number) is left alone."""
        try:
            dup = os.dup(fd)
        except OSError:
            return  # already closed: nothing waits on it
        if _inode(dup) != inode:
            os.close(dup)
            return
        with contextlib.closing(socket.socket(fileno=dup)) as s, contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
            self.fired += 1


def _inode(fd: int | None) -> int | None:
    """The inode of the file ``fd`` names (a socket's tells it from a later one that took
    the same number); None: no descriptor, or not open."""
    if fd is None:
        return None
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None
