"""The PostgreSQL store passes the store and tracking contracts, on a real throwaway server.

Each ``make_store``/``make`` gets a schema of its own (dropped after the test), so every store
starts empty; ``reopen`` opens a second store on the same schema.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from cqrs_lab.core import (
    ANY,
    NO_STREAM,
    CommandResult,
    EventRegistry,
    IdempotencyRecord,
    ManualClock,
    Progress,
    SequentialIds,
)
from cqrs_lab.core.tracking import TrackingStore
from cqrs_lab.domains.bank import Deposit
from cqrs_lab.errors import ConcurrencyError, ConfigError, StoreUnavailable
from cqrs_lab.stores.durable_records import StoredResponse
from cqrs_lab.stores.postgres import (
    PostgresEventStore,
    PostgresIdempotencyStore,
    PostgresResponseRecords,
    PostgresTracking,
)
from tests.contract.store_contract import EventStoreContract, Noted
from tests.contract.tracking_contract import TrackingContract, as_tuple, progress
from tests.postgres.conftest import drop_schema

_schemas = itertools.count(1)


class _Schemas:
    """Opens stores in fresh schemas and closes and drops them all at the end of a test."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.stores: list[PostgresEventStore] = []
        self.names: list[str] = []

    def open(self, schema: str | None = None, **kw: object) -> PostgresEventStore:
        if schema is None:
            schema = f"c{next(_schemas)}"
            self.names.append(schema)
        kw.setdefault("clock", ManualClock())
        kw.setdefault("ids", SequentialIds("e"))
        dsn = str(kw.pop("dsn", self.dsn))
        store = PostgresEventStore(dsn, schema=schema, pool_size=2, **kw)  # type: ignore[arg-type]
        self.stores.append(store)
        return store

    def close_stores(self) -> None:
        for store in self.stores:
            store.close()
        self.stores.clear()

    def close(self) -> None:
        self.close_stores()
        for name in self.names:
            drop_schema(self.dsn, name)


@pytest.fixture
def schemas(pg_dsn: str) -> Iterator[_Schemas]:
    found = _Schemas(pg_dsn)
    yield found
    found.close()


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _schemas(self, schemas: _Schemas) -> None:
        self.schemas = schemas

    def make_store(
        self, clock: ManualClock, ids: SequentialIds, registry: EventRegistry
    ) -> PostgresEventStore:
        return self.schemas.open(clock=clock, ids=ids, registry=registry)

    def test_the_naive_reader_reads_the_same_committed_log(self, registry: EventRegistry) -> None:
        safe = self.schemas.open(registry=registry)
        naive = self.schemas.open(safe.schema, registry=registry, reader="naive")
        for i in range(5):
            safe.append(f"s{i % 2}", [Noted(str(i))], ANY)
        assert [e.position for e in naive.read_all(0)] == [1, 2, 3, 4, 5]
        assert naive.read_all(2, 2) == safe.read_all(2, 2)
        assert naive.boot == safe.boot + 1

    def test_two_connections_racing_for_one_version_one_wins(self, registry: EventRegistry) -> None:
        a = self.schemas.open(registry=registry)
        b = self.schemas.open(a.schema, registry=registry)
        a.append("s", [Noted("0")], NO_STREAM)
        # b holds a transaction open at version 1; a commits version 2 first
        outcomes: list[str] = []
        inside = threading.Event()
        with b.batch():
            b.stream_version("s")
            b.append("s", [Noted("b")], 1)  # takes version 2, not committed yet

            def other() -> None:
                inside.set()
                try:
                    a.append("s", [Noted("a")], 1)  # waits on b's row, then loses
                    outcomes.append("a won")
                except ConcurrencyError as exc:
                    outcomes.append(f"a lost at {exc.actual}")

            t = threading.Thread(target=other)
            t.start()
            inside.wait(5)
        t.join(10)
        assert outcomes == ["a lost at 2"]
        assert [e.payload for e in a.read_stream("s")] == [Noted("0"), Noted("b")]
        a.append("t", [Noted("c")], NO_STREAM)  # the lost race burnt no position
        assert [e.position for e in a.read_all(0)] == [1, 2, 3]

    def test_a_lost_race_inside_a_batch_leaves_the_batch_usable(
        self, registry: EventRegistry
    ) -> None:
        a = self.schemas.open(registry=registry)
        a.append("s", [Noted("0")], NO_STREAM)
        with a.batch():
            with pytest.raises(ConcurrencyError):
                a.append("s", [Noted("x")], 0)
            a.append("t", [Noted("y")], NO_STREAM)
        assert [e.stream_id for e in a.read_all(0)] == ["s", "t"]

    def test_a_batch_commits_together_or_not_at_all(self, registry: EventRegistry) -> None:
        store = self.schemas.open(registry=registry)
        other = self.schemas.open(store.schema, registry=registry)
        with store.batch():
            store.append("a", [Noted("1")], NO_STREAM)
            store.append("b", [Noted("2")], NO_STREAM)
            assert other.head_position == 0  # not committed: another connection sees nothing
        assert other.head_position == 2
        with pytest.raises(RuntimeError), store.batch():
            store.append("c", [Noted("3")], NO_STREAM)
            raise RuntimeError("the unit fails")
        assert other.stream_version("c") == 0 and other.head_position == 2

    def test_a_commit_on_a_connection_the_database_dropped_is_store_unavailable(
        self, pg_dsn: str
    ) -> None:
        """A transaction of its own is committed by the pool as its block ends; a server
        gone by then (here the backend is terminated; in an outage the server stops) raised
        psycopg's OperationalError from that COMMIT, and ``cqrs-lab project`` exited 1 with
        its traceback instead of 75."""
        store = self.schemas.open()
        dropped = pytest.raises(StoreUnavailable, match="cannot be reached")
        with dropped, store._tx() as conn:  # a transaction of its own (no batch is open)
            conn.execute("SELECT 1")
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))

    def test_the_dsns_own_options_are_kept_beside_the_stores_schema(self, pg_dsn: str) -> None:
        """The pool's search path replaced the DSN's options: a statement_timeout given
        there was lost, and a search path given there silently ignored."""
        store = self.schemas.open(dsn=f"{pg_dsn} options='-c statement_timeout=4321'")
        assert store.query("SHOW statement_timeout") == [("4321ms",)]
        assert store.query("SHOW search_path") == [(store.schema,)]
        with pytest.raises(ConfigError, match="options set search_path"):
            PostgresEventStore(
                f"{pg_dsn} options='-c search_path=x'", ManualClock(), SequentialIds()
            )

    def test_pgoptions_is_kept_as_libpq_would_use_it(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=4321")
        assert self.schemas.open().query("SHOW statement_timeout") == [("4321ms",)]

    def test_a_statements_own_error_is_its_own_even_on_a_connection_the_pool_retires(
        self, pg_dsn: str
    ) -> None:
        """A statement's own OperationalError (here a statement_timeout) was judged after
        the pool had taken the connection back, and closed it when past its lifetime: it
        read as the database gone (StoreUnavailable, exit 75, calls refused for a while)."""
        from psycopg.errors import QueryCanceled

        store = self.schemas.open(dsn=f"{pg_dsn} options='-c statement_timeout=50'")
        # every connection handed back is closed, as one past max_lifetime is (psycopg_pool
        # discards those created before its last drain: that moment, an hour from now)
        store.pool._drained_at = time.monotonic() + 3600
        with pytest.raises(QueryCanceled):
            store.execute("SELECT pg_sleep(1)")
        assert store.down is None
        assert store.query("SELECT 1") == [(1,)]

    def test_bad_options_are_named(self, pg_dsn: str) -> None:
        clock, ids = ManualClock(), SequentialIds()
        with pytest.raises(ConfigError, match="reader='fast'"):
            PostgresEventStore(pg_dsn, clock, ids, reader="fast")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="schema='Bad-Name'"):
            PostgresEventStore(pg_dsn, clock, ids, schema="Bad-Name")
        # nothing listens: the database's state, not the command's (exit 75, retried)
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            PostgresEventStore("host=127.0.0.1 port=1 connect_timeout=2", clock, ids)
        # a database that does not exist: the command's (exit 2, fix the DSN)
        with pytest.raises(ConfigError, match=r"cannot connect to PostgreSQL.*check the DSN"):
            PostgresEventStore(pg_dsn.replace("dbname=lab", "dbname=no_such_db"), clock, ids)

    def test_response_retention_is_persisted(self, registry: EventRegistry) -> None:
        clock = ManualClock()
        store = self.schemas.open(registry=registry, clock=clock)
        records = PostgresResponseRecords(store, ttl=60.0, max_keys=3)
        for key in "abcde":
            records.put(key, StoredResponse("fp", 201, b"{}", (("x", "1"),)))
            clock.advance(1)
        assert records.retention.pruned == 2  # every write prunes at this size
        again = PostgresResponseRecords(self.schemas.open(store.schema, clock=clock), ttl=60.0)
        assert [again.get(k) is not None for k in "abcde"] == [False, False, True, True, True]
        found = again.get("e")
        assert found is not None and found.headers == (("x", "1"),) and found.status == 201
        clock.advance(60)
        assert again.get("e") is None  # past the ttl: answered as new

    def test_idempotency_retention_is_persisted(self, registry: EventRegistry) -> None:
        clock = ManualClock()
        store = self.schemas.open(registry=registry, clock=clock)
        types = lambda: {"Deposit": Deposit}  # noqa: E731
        records = PostgresIdempotencyStore(store, types, ttl=60.0, max_keys=2)
        for i, key in enumerate("abc"):
            (env,) = store.append(f"s{key}", [Noted(key)], NO_STREAM)
            result = CommandResult(f"c{i}", env.stream_id, 1, env.position, (env,))
            records.put(key, IdempotencyRecord(Deposit(key, i), result, None, clock.now()))
            clock.advance(1)
        reopened = self.schemas.open(store.schema, clock=clock, registry=registry)
        again = PostgresIdempotencyStore(reopened, types)
        assert again.get("a") is None  # beyond max_keys=2: pruned in the database
        found = again.get("c")
        assert found is not None and found.command == Deposit("c", 2)
        assert found.result is not None and found.result.position == 3
        assert [e.payload for e in found.result.events] == [Noted("c")]
        clock.advance(60)
        assert PostgresIdempotencyStore(again.store, types, ttl=60.0).get("c") is None


class TestPostgresTracking(TrackingContract):
    @pytest.fixture(autouse=True)
    def _schemas(self, schemas: _Schemas) -> None:
        self.schemas = schemas

    def make(self) -> PostgresTracking:
        self.schemas.close_stores()  # the model test makes one per example
        return PostgresTracking(self.schemas.open())

    def reopen(self, store: TrackingStore) -> PostgresTracking:
        assert isinstance(store, PostgresTracking)
        store.store.close()
        return PostgresTracking(self.schemas.open(store.store.schema))

    def test_a_commit_in_a_batch_lands_with_the_read_model(self) -> None:
        tracking = self.make()
        store = tracking.store
        store.execute("CREATE TABLE balances (account text PRIMARY KEY, balance integer)")
        with psycopg.connect(self.schemas.dsn) as other:

            def seen() -> tuple[object, object]:
                with other.transaction():
                    schema = store.schema
                    t = other.execute(f"SELECT count(*) FROM {schema}.tracking").fetchone()
                    b = other.execute(f"SELECT count(*) FROM {schema}.balances").fetchone()
                return (t[0] if t else None, b[0] if b else None)

            with store.batch():
                store.execute("INSERT INTO balances VALUES ('a1', 5)")
                tracking.commit("balances", progress(1))
                assert as_tuple(tracking.load("balances")) == (1, [])  # read-your-writes
                assert seen() == (0, 0)  # neither is visible before the batch commits
            assert seen() == (1, 1)
            with pytest.raises(RuntimeError), store.batch():
                store.execute("UPDATE balances SET balance = 9")
                tracking.commit("balances", Progress(2))
                raise RuntimeError("the projection crashes before the unit commits")
        assert as_tuple(tracking.load("balances")) == (1, [])
        assert store.query("SELECT balance FROM balances") == [(5,)]

    def test_only_a_postgres_store_is_accepted(self) -> None:
        with pytest.raises(ConfigError, match="pass a PostgresEventStore"):
            PostgresTracking(object())  # type: ignore[arg-type]
