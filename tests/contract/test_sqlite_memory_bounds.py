"""The SQLite store's memory does not grow with the number of streams or pending messages.

- Each new stream (a transfer is one) used to add its version to a map kept in memory for
  ever; now the versions of the ``cache_streams`` streams written last are kept and an older
  one comes from the file's index. The store contract runs again with one stream cached.
- Outbox messages not yet published (a server runs no relay) used to be kept in memory;
  now they are read from the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cqrs_lab.core import NO_STREAM, EventRegistry, ManualClock, SequentialIds
from cqrs_lab.errors import ConcurrencyError
from cqrs_lab.stores.sqlite import SqliteEventStore
from tests.contract import test_sqlite_store
from tests.contract.store_contract import Noted


class TestSqliteEventStoreWithOneStreamCached(test_sqlite_store.TestSqliteEventStore):
    """The whole contract with one stream's version in memory: the others from the file."""

    def make_store(
        self, clock: ManualClock, ids: SequentialIds, registry: EventRegistry
    ) -> SqliteEventStore:
        path = self.dir / f"streams{next(self.counter)}.db"
        return SqliteEventStore(path, clock, ids, registry, cache_streams=1)


def test_stream_versions_in_memory_are_bounded_and_checks_still_hold(tmp_path: Path) -> None:
    registry = EventRegistry([Noted])
    store = SqliteEventStore(
        tmp_path / "s.db", ManualClock(), SequentialIds("e"), registry, cache_streams=3
    )
    for i in range(10):
        store.append(f"s{i}", [Noted("a"), Noted("b")], NO_STREAM)
    assert len(store._versions) == 3  # the streams written last
    assert store.stream_version("s0") == 2  # from the file
    with pytest.raises(ConcurrencyError):
        store.append("s1", [Noted("c")], 1)  # a stale expected version is still refused
    store.append("s1", [Noted("c")], 2)
    assert [e.stream_version for e in store.read_stream("s1")] == [1, 2, 3]
    with pytest.raises(ConcurrencyError):
        store.append("s2", [Noted("again")], NO_STREAM)  # it exists, though not cached
    store.close()


def test_pending_outbox_messages_are_read_from_the_file(tmp_path: Path) -> None:
    registry = EventRegistry([Noted])
    path = tmp_path / "o.db"
    store = SqliteEventStore(path, ManualClock(), SequentialIds("e"), registry)
    for i in range(5):
        store.append(f"s{i}", [Noted("x")], NO_STREAM, outbox=[("topic", {"n": i})])
    first = store.outbox_pending(2)
    assert [m.payload["n"] for m in first] == [0, 1]
    store.outbox_mark_published([m.message_id for m in first])
    assert [m.payload["n"] for m in store.outbox_pending()] == [2, 3, 4]
    store.close()
    again = SqliteEventStore(path, ManualClock(), SequentialIds("f"), registry)
    assert [m.payload["n"] for m in again.outbox_pending()] == [2, 3, 4]  # kept in the file
    again.close()
