"""The catch-up read path of the PostgreSQL store (``postgres_reader.envelopes``).

``read_all`` builds a page's envelopes in one pass (one ``json.loads`` for the page, known
types built straight into their class); whatever that fast path does not handle (a type the
registry does not know, an older schema version, a payload that does not fit its class) must
come out exactly as the row-by-row path gives it, which ``read_positions`` still uses.
"""

from __future__ import annotations

from cqrs_lab.core import ANY, EventRegistry, ManualClock, RawEvent, SequentialIds
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.contract.store_contract import Noted


def test_a_mixed_page_reads_as_the_row_by_row_path(pg_dsn: str, pg_schema: str) -> None:
    registry = EventRegistry([Noted])
    store = PostgresEventStore(pg_dsn, ManualClock(), SequentialIds(), registry, schema=pg_schema)
    try:
        version = Noted.schema_version
        store.append("a", [Noted("one")], ANY, metadata={"tenant": "t1", "n": 2})
        store.append("a", [RawEvent("Noted", version, {"nope": 1})], ANY)  # does not fit
        store.append("b", [RawEvent("Unknown", 1, {"x": [1, 2]})], ANY, correlation_id="c")
        store.append("b", [Noted("two"), Noted("three")], ANY)
        page = store.read_all(0, 100)
        assert page == store.read_positions(1, 5)
        kinds = [type(env.payload).__name__ for env in page]
        assert kinds == ["Noted", "RawEvent", "RawEvent", "Noted", "Noted"]
        assert page[0].metadata == {"tenant": "t1", "n": 2}
        assert page[1].payload == RawEvent("Noted", version, {"nope": 1})
        assert page[2].correlation_id == "c"
        assert [env.position for env in store.read_all(2, 2)] == [3, 4]
    finally:
        store.close()
