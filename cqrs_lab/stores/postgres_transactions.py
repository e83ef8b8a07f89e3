"""Transactions on the PostgreSQL store: a pool, and one transaction per thread's batch.

:class:`PostgresTransactions` is what :class:`~cqrs_lab.stores.postgres_store.
PostgresEventStore` builds on and what the records kept beside the log (idempotency,
responses, checkpoints, tracking, a read model's rows) write through: it opens the pool and
the schema, and binds the connection of an open :meth:`~PostgresTransactions.batch` (or
:meth:`~PostgresTransactions.group_commit`, :mod:`cqrs_lab.stores.postgres_group`) to the
calling thread, so everything the thread writes inside commits together or not at all.

A database that cannot be reached raises :class:`~cqrs_lab.errors.StoreUnavailable`, never
a driver's error and never a long freeze: a statement on a connection the server dropped
(stopped, restarted, killed) fails at once, and a call that gets no pooled connection within
``pool_wait_s`` gives up (psycopg's pool would wait 30 s, the served loop blocked all along).
A transaction the database aborted to break a deadlock or a serialization conflict with
another process's raises :class:`~cqrs_lab.errors.TransactionAborted` (run it again).
Once it failed to reach the database, calls fail at once for :data:`COOL_DOWN_S`; the first
after that tries a connection of its own first (a refused one fails at once, an unanswered
one after 2 s), and when it gets one the pool drops the connections the server had dropped
and work goes on. Without this, each call of a served loop whose pool had emptied waited
the pool's full wait. A database that stops answering without dropping its connections
(paused) fails a use of a connection after ``statement_limit_s`` the same way
(:mod:`cqrs_lab.stores.postgres_deadline`); without it a served loop waited for as long as
the database stayed paused, answering nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.errors import DeadlockDetected, SerializationFailure, TransactionRollback
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from cqrs_lab.errors import ConfigError, StoreUnavailable, TransactionAborted
from cqrs_lab.stores.postgres_deadline import STATEMENT_LIMIT_S, Deadlines
from cqrs_lab.stores.postgres_group import Pending, group_transaction
from cqrs_lab.stores.postgres_schema import (
    SCHEMA_DDL,
    check_is_a_store,
    check_schema_name,
    one_line,
    open_pool,
)
from cqrs_lab.stores.store_urls import shown_store

__all__ = ["COOL_DOWN_S", "POOL_WAIT_S", "PostgresTransactions"]

#: the database's errors for a transaction it aborted to let another process's go on
ABORTED = (DeadlockDetected, SerializationFailure, TransactionRollback)
#: seconds a call waits for a pooled connection before the database counts as unreachable
POOL_WAIT_S = 5.0
#: seconds after the database was found unreachable during which calls fail at once
COOL_DOWN_S = 1.0


class PostgresTransactions:
    """A pool of at most ``pool_size`` connections to ``dsn`` working in ``schema`` (created
    with the store's tables if missing), and the calling thread's open transaction.
    ``boot`` counts how often a store was opened on the schema. Call :meth:`close` when done.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 4,
        pool_wait_s: float = POOL_WAIT_S,
        timer: Callable[[], float] = time.monotonic,
        statement_limit_s: float = STATEMENT_LIMIT_S,
    ) -> None:
        if type(pool_size) is not int or pool_size < 1:
            raise ConfigError(f"pool_size={pool_size!r}: pass a whole number >= 1")
        if not 0 < pool_wait_s < float("inf"):
            raise ConfigError(f"pool_wait_s={pool_wait_s!r}: pass seconds > 0")
        self.dsn, self.pool_wait_s, self.timer = dsn, pool_wait_s, timer
        self.down: StoreUnavailable | None = None  # the last failure to reach the database
        self._down_until = 0.0
        self.schema = check_schema_name(schema)
        self.deadlines = Deadlines(statement_limit_s)  # a database that stopped answering
        self.pool = open_pool(dsn, self.schema, min_size=1, max_size=pool_size)
        #: called by :meth:`close` (last added first), e.g. to release a session's locks
        self.on_close: list[Callable[[], None]] = []
        #: sessions whose advisory locks this process holds (:meth:`check_held`)
        self.held: list[psycopg.Connection[Any]] = []
        self._held_checked = 0.0
        self._local = threading.local()  # the connection of an open batch, per thread
        try:
            self.boot = self._prepare(dsn)
        except BaseException:
            self.pool.close()  # refused or failed: no pool left open behind the error
            raise

    def _prepare(self, dsn: str) -> int:
        """The store's tables (a schema of something else refused first); this opening's
        boot number."""
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('cqrs_lab.schema'))")
            check_is_a_store(conn, self.schema, dsn)
            for statement in SCHEMA_DDL:
                conn.execute(statement)
            row = conn.execute(
                "INSERT INTO meta VALUES ('boot', '1') ON CONFLICT (key) DO UPDATE "
                "SET value = (meta.value::integer + 1)::text RETURNING value"
            ).fetchone()
        assert row is not None
        return int(row[0])

    def check_held(self, every: float = 1.0) -> None:
        """At most once per ``every`` seconds, a statement on each session in :attr:`held`:
        one the database dropped (terminated, or closed on ``idle_session_timeout``) took
        its locks with it, and this process must stop as on an outage (StoreUnavailable)
        rather than go on as if it still held them. The statement also keeps the session
        from idling out."""
        now = self.timer()
        if now - self._held_checked < every:
            return
        self._held_checked = now
        for conn in self.held:
            try:
                with self.deadlines.hold(_socket_of(conn)), self.translated(conn):
                    conn.execute("SELECT 1")  # a paused database: given up after the limit
            except StoreUnavailable as exc:
                raise StoreUnavailable(
                    f"the database dropped the session holding this process's locks (the "
                    f"saga-runner's): stopping, as another process may take them ({exc})"
                ) from exc

    def claim_domain(self, name: str) -> None:
        """The schema holds the events of domain ``name``: recorded when it first serves,
        refused when it holds another domain's (its views would dead-letter them)."""
        self.execute("INSERT INTO meta VALUES ('domain', %s) ON CONFLICT (key) DO NOTHING", (name,))
        (held,) = self.execute("SELECT value FROM meta WHERE key = 'domain'")[0]
        if held != name:
            raise ConfigError(
                f"PostgreSQL schema {self.schema!r} at {shown_store(self.dsn)!r} holds the events "
                f"of domain {held!r}, not {name!r}: serve it with that domain (a --domain whose "
                f"domain is named {held!r}), or give another database or schema"
            )

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for everything written inside, by this thread, committed on exit
        (rolled back if the block raises). Acknowledge a batch's commands after it exits."""
        local = self._local
        if getattr(local, "conn", None) is not None:
            yield  # nested: part of the outer batch
            return
        # BEGIN goes with the block's first statement (an append sends both in one simple
        # query, see postgres_append) and COMMIT by hand: psycopg's own transaction sent
        # BEGIN alone, a round trip, and each wait on the socket hands the GIL to another
        # of the writer threads and waits to get it back
        with self._connection() as conn:
            conn.autocommit = True
            local.conn, local.begun = conn, False
            try:
                yield
                local.conn = None
                if local.begun:
                    if conn.info.transaction_status == TransactionStatus.INERROR:
                        # a statement failed and its error was handled above: COMMIT would
                        # roll back in silence what the block believes it wrote
                        raise TransactionAborted("a statement of the batch failed: rolled back")
                    conn.execute("COMMIT")
            except BaseException:
                local.conn = None
                if local.begun:
                    with suppress(psycopg.Error):  # a broken connection: the pool drops it
                        conn.execute("ROLLBACK")
                raise
            finally:
                local.conn = None
                with suppress(psycopg.Error):
                    conn.autocommit = False

    def _begin(self) -> bool:
        """Whether the open batch's transaction is still to begin (its first statement then
        sends ``BEGIN`` with it); marks it begun either way."""
        local = self._local
        begin = not local.begun
        local.begun = True
        return begin

    @contextmanager
    def group_commit(self, size_hint: int = 1) -> Iterator[None]:
        """Like :meth:`batch`, with the appends deferred and sent in one round trip on exit
        (see :mod:`cqrs_lab.stores.postgres_group`); ``size_hint`` is about how many events
        the block will append (that many positions are reserved when it begins; unused ones are
        holes).

        An append raises :class:`~cqrs_lab.errors.ConcurrencyError` at once when it
        conflicts with what the block appended before; a stream moved by another writer
        raises it on exit, the whole block rolled back: run its commands again one per
        :meth:`batch` to learn which lost. Inside an open batch, this is that batch."""
        local = self._local
        if getattr(local, "conn", None) is not None:
            yield
            return
        pending = Pending(max(1, size_hint))
        with self._connection() as conn, group_transaction(conn, pending):
            local.conn, local.pending, local.begun = conn, pending, True
            try:
                yield
            finally:
                local.conn = local.pending = None

    def _batch_conn(self) -> psycopg.Connection[Any] | None:
        """The open batch's connection (its ``BEGIN`` sent first if nothing has begun it
        yet), or None outside a batch."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and self._begin():
            conn.execute("BEGIN")
        return conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """The open batch's connection, or a connection for one transaction of its own."""
        conn = self._batch_conn()
        if conn is not None:
            with self.translated(conn):
                yield conn
            return
        with self._connection() as own:
            yield own

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        """The open batch's connection, or a pooled one in autocommit for a read of its own:
        one round trip (its statement), where a transaction of its own took two (the
        statement, then ``COMMIT``); each statement sees its own snapshot either way."""
        conn = self._batch_conn()
        if conn is not None:
            with self.translated(conn):
                yield conn
            return
        with self._connection() as own:
            own.autocommit = True
            try:
                yield own
            finally:
                with suppress(psycopg.Error):  # a broken connection: the pool drops it
                    own.autocommit = False

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; an unreachable database raises StoreUnavailable (module)."""
        if self.down is not None:
            self._probe()
        ended: list[psycopg.Connection[Any]] = []  # the block ended: the pool commits
        try:
            with (
                self.pool.connection(timeout=self.pool_wait_s) as conn,
                self.deadlines.hold(_socket_of(conn)),  # the pool's COMMIT too
            ):
                with self.translated(conn):  # judged while the connection is still ours
                    yield conn
                ended.append(conn)
        except PoolTimeout as exc:
            raise self._went_down(exc) from exc
        except psycopg.Error as exc:  # the pool's COMMIT as its block ended
            if not ended:
                raise
            lab_error = self._translation(exc, ended[0], commit=True)
            if lab_error is exc:
                raise
            raise lab_error from exc

    @contextmanager
    def translated(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """The database's errors on ``conn`` that are not the statement's own, in the lab's
        terms: a transaction it aborted (a deadlock, a serialization conflict with another
        process's) is TransactionAborted, a connection it dropped StoreUnavailable."""
        try:
            yield
        except psycopg.Error as exc:
            lab_error = self._translation(exc, conn)
            if lab_error is exc:
                raise
            raise lab_error from exc

    def _translation(
        self, exc: psycopg.Error, conn: psycopg.Connection[Any], commit: bool = False
    ) -> Exception:
        """What :meth:`translated` raises for ``exc`` on ``conn`` (``exc`` itself when it is
        the statement's own error). ``commit``: the pool's COMMIT failed, the connection
        already handed back (and closed by the pool when past its lifetime: only a broken
        one says the server dropped it)."""
        if isinstance(exc, ABORTED):
            reason = one_line(exc)
            return TransactionAborted(f"the database aborted the transaction ({reason})")
        dropped = conn.broken or (conn.closed and not commit)
        if isinstance(exc, psycopg.OperationalError) and dropped:
            return self._went_down(exc)  # the server dropped it: not this statement
        return exc

    def _probe(self) -> None:
        """Within the cool-down, fail at once; after it, a connection of its own first."""
        down = self.down
        assert down is not None
        if self.timer() < self._down_until:
            raise StoreUnavailable(str(down), down.retry_after)
        try:
            psycopg.connect(self.dsn, connect_timeout=2).close()
        except psycopg.Error as exc:
            raise self._went_down(exc) from exc
        self.down = None
        self.pool.check()  # the connections the server dropped meanwhile: replaced

    def session(self) -> psycopg.Connection[Any]:
        """A connection of its own outside the pool, in autocommit (a session whose
        advisory locks live as long as it does); an unreachable database raises
        StoreUnavailable, as the pool's connections do (run its statements under
        :meth:`translated`)."""
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise self._went_down(exc) from exc

    def _went_down(self, exc: Exception) -> StoreUnavailable:
        reason = one_line(exc)
        self.down = StoreUnavailable(
            f"PostgreSQL at {shown_store(self.dsn)!r} cannot be reached ({reason}); what was "
            "in flight is rolled back or in doubt: retry once the database is back"
        )
        self._down_until = self.timer() + COOL_DOWN_S
        return self.down

    @property
    def in_batch(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Run one statement in the current transaction (for records kept beside the log);
        returns its rows (none for a statement that returns none)."""
        with self._tx() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in the current transaction; returns how many rows it changed."""
        with self._tx() as conn:
            return conn.execute(sql, params).rowcount

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        """Read rows (in the current batch if one is open, so it sees the batch's writes;
        otherwise in one round trip, see ``_read``)."""
        with self._read() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def close(self) -> None:
        for release in reversed(self.on_close):  # what was held for this store's lifetime
            release()
        self.on_close.clear()
        self.pool.close()
        self.deadlines.close()


def _socket_of(conn: psycopg.Connection[Any]) -> int | None:
    """The connection's socket descriptor; None for one already lost (its first statement
    fails at once, nothing to wait for)."""
    try:
        return conn.pgconn.socket
    except psycopg.Error:
        return None
