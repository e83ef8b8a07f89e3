"""The PostgreSQL store's append in one statement and its group commit's JSON documents: what
they carry arrives as it was sent, and a writer that bypassed the stream lock loses cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from cqrs_lab.core import ANY, NO_STREAM, EventRegistry, ManualClock, SequentialIds
from cqrs_lab.errors import ConcurrencyError
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.contract.store_contract import Noted

# quotes, a backslash, a percent sign, a NUL, non-ASCII and a character outside the BMP (a
# text column cannot hold a NUL: ids go without it)
AWKWARD = 'it\'s "quoted" \\ 100% \x00 café 東京 \U0001f600'
AWKWARD_ID = AWKWARD.replace("\x00", "")


@pytest.fixture
def store(pg_dsn: str, pg_schema: str) -> Iterator[PostgresEventStore]:
    clock = ManualClock(1234.000123456789)
    s = PostgresEventStore(pg_dsn, clock, SequentialIds("e"), EventRegistry([Noted]),
                           schema=pg_schema)  # fmt: skip
    yield s
    s.close()


@pytest.mark.parametrize("mode", ["append", "group_commit"])
def test_what_an_append_carries_arrives_unchanged(store: PostgresEventStore, mode: str) -> None:
    stream = f"stream {AWKWARD_ID}"
    meta = {"tenant": AWKWARD, "n": 2, "x": 0.1}
    with store.group_commit(2) if mode == "group_commit" else store.batch():
        sent = store.append(stream, [Noted(AWKWARD), Noted("b")], NO_STREAM, metadata=meta,
                            correlation_id=AWKWARD_ID, causation_id=None)  # fmt: skip
    read = store.read_stream(stream)
    assert [(e.event_id, e.stream_id, e.stream_version, e.position) for e in read] == [
        (e.event_id, e.stream_id, e.stream_version, e.position) for e in sent
    ]
    assert [e.payload for e in read] == [Noted(AWKWARD), Noted("b")]
    assert read[0].metadata == meta and read[0].correlation_id == AWKWARD_ID
    assert read[0].causation_id is None
    assert read[0].recorded_at == 1234.000123456789  # a float8, exactly
    # the data column holds the text a single json.dumps gives (as before the JSON document)
    rows = store.query("SELECT data FROM events ORDER BY position")
    assert rows[0][0] == '{"text": "it\'s \\"quoted\\" \\\\ 100% \\u0000 caf\\u00e9 ' \
        '\\u6771\\u4eac \\ud83d\\ude00"}'  # fmt: skip


def test_a_writer_that_bypassed_the_lock_loses_to_the_constraint_and_the_batch_goes_on(
    store: PostgresEventStore,
) -> None:
    store.append("s", [Noted("0")], NO_STREAM)
    outcome: list[object] = []

    def append_in_a_batch() -> None:
        with store.batch():
            try:
                store.append("s", [Noted("1")], ANY)  # reads version 1, then waits on 2
            except ConcurrencyError as exc:
                outcome.append(exc)
            store.append("t", [Noted("t")], NO_STREAM)  # the transaction is still usable

    # a writer that ignores the stream lock holds version 2 uncommitted, at a position far
    # above the sequence's; the store's insert of version 2 waits for it, then collides
    with psycopg.connect(store.dsn, options=f"-c search_path={store.schema}") as conn:
        conn.execute(
            "INSERT INTO events VALUES (1000, 'x', 's', 2, 'Noted', 1, '{\"text\": \"x\"}', "
            "NULL, NULL, 0, '{}', pg_current_xact_id())"
        )
        worker = threading.Thread(target=append_in_a_batch)
        worker.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock(conn) and time.monotonic() < deadline:
            time.sleep(0.01)
    worker.join(10)  # the block above committed the bypassing row
    assert len(outcome) == 1 and isinstance(outcome[0], ConcurrencyError), outcome
    assert outcome[0].stream_id == "s" and outcome[0].actual == 2
    assert [(e.stream_id, e.stream_version) for e in store.read_positions(1, 1000)] == [
        ("s", 1), ("t", 1), ("s", 2),
    ]  # fmt: skip
    with pytest.raises(ConcurrencyError) as caught:
        store.append("s", [Noted("2")], 1)  # a plain stale version: refused before any write
    assert caught.value.actual == 2 and store.stream_version("s") == 2


def _waiting_on_a_lock(conn: psycopg.Connection[object]) -> bool:
    conn.execute("SELECT pg_stat_clear_snapshot()")  # else read once per transaction
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    ).fetchone()
    return row is not None and int(row[0]) > 0


def test_an_empty_append_with_an_outbox_checks_the_version(store: PostgresEventStore) -> None:
    store.append("s", [Noted("0")], NO_STREAM)
    with pytest.raises(ConcurrencyError):
        store.append("s", [], 0, outbox=[("topic", {"k": 1})])
    store.append("s", [], 1, outbox=[("topic", {"k": 1})])
    assert [(m.topic, m.payload, m.position) for m in store.outbox_pending()] == [
        ("topic", {"k": 1}, 0)
    ]
