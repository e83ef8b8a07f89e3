"""The event-store contract, written once. Every adapter's test subclasses it.

A subclass provides ``make_store(clock, ids, registry)`` returning a fresh, empty store::

    class TestInMemoryEventStore(EventStoreContract):
        def make_store(self, clock, ids, registry):
            return InMemoryEventStore(clock, ids, registry)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from cqrs_lab.core import (
    ANY,
    NO_STREAM,
    Event,
    EventRegistry,
    EventStore,
    ManualClock,
    RawEvent,
    SequentialIds,
    Snapshot,
)
from cqrs_lab.errors import ConcurrencyError, ConfigError, UnknownEventType, UpcastError


@dataclass(frozen=True, slots=True)
class Noted(Event):
    text: str


@dataclass(frozen=True, slots=True)
class Priced(Event):
    """Version 3: amount in cents and a currency (v1: ``price`` in units; v2: ``cents``)."""

    schema_version = 3
    cents: int
    currency: str


class EventStoreContract:
    """What every store must do. Subclasses implement :meth:`make_store`."""

    def make_store(
        self, clock: ManualClock, ids: SequentialIds, registry: EventRegistry
    ) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(100.0)

    @pytest.fixture
    def registry(self) -> EventRegistry:
        reg = EventRegistry([Noted, Priced])
        reg.upcaster("Priced", 1, lambda d: {"cents": d["price"] * 100})
        reg.upcaster("Priced", 2, lambda d: {**d, "currency": "EUR"})
        return reg

    @pytest.fixture
    def store(self, clock: ManualClock, registry: EventRegistry) -> EventStore:
        return self.make_store(clock, SequentialIds("e"), registry)

    # -- appending and optimistic concurrency ---------------------------------------------
    def test_append_assigns_versions_and_gap_free_positions(self, store: EventStore) -> None:
        a = store.append("s1", [Noted("a"), Noted("b")], NO_STREAM)
        b = store.append("s2", [Noted("c")], NO_STREAM)
        c = store.append("s1", [Noted("d")], 2)
        assert [e.stream_version for e in a + c] == [1, 2, 3]
        assert [e.position for e in a + b + c] == [1, 2, 3, 4]
        assert store.head_position == 4
        assert store.stream_version("s1") == 3
        assert store.stream_version("missing") == 0

    def test_envelope_carries_ids_type_time_and_causation(
        self, store: EventStore, clock: ManualClock
    ) -> None:
        clock.advance(5)
        (env,) = store.append(
            "s1", [Noted("a")], ANY, correlation_id="corr", causation_id="cmd-1",
            metadata={"traceparent": "00-abc-def-01"},
        )  # fmt: skip
        assert env.event_id and env.event_type == "Noted" and env.schema_version == 1
        assert (env.correlation_id, env.causation_id) == ("corr", "cmd-1")
        assert env.recorded_at == 105.0
        assert env.metadata["traceparent"] == "00-abc-def-01"
        assert env.payload == Noted("a")

    def test_wrong_expected_version_raises_and_appends_nothing(self, store: EventStore) -> None:
        store.append("s1", [Noted("a")], NO_STREAM)
        with pytest.raises(ConcurrencyError) as err:
            store.append("s1", [Noted("b")], 0)
        assert err.value.stream_id == "s1" and err.value.expected == 0 and err.value.actual == 1
        assert "s1" in str(err.value) and "expected version 0" in str(err.value)
        with pytest.raises(ConcurrencyError):
            store.append("s1", [Noted("b")], NO_STREAM)
        with pytest.raises(ConcurrencyError):
            store.append("s1", [Noted("b")], 5)
        assert store.head_position == 1 and store.stream_version("s1") == 1

    def test_any_appends_whatever_the_version(self, store: EventStore) -> None:
        store.append("s1", [Noted("a")], ANY)
        store.append("s1", [Noted("b")], ANY)
        assert store.stream_version("s1") == 2

    def test_bad_expected_version_type_is_a_config_error(self, store: EventStore) -> None:
        with pytest.raises(ConfigError, match="expected_version"):
            store.append("s1", [Noted("a")], "2")  # type: ignore[arg-type]

    @pytest.mark.parametrize("stream_id", ["", 5, None])
    def test_a_stream_id_that_is_not_a_non_empty_str_is_refused(
        self, store: EventStore, stream_id: object
    ) -> None:
        with pytest.raises(ConfigError, match="stream_id"):
            store.append(stream_id, [Noted("a")], ANY)  # type: ignore[arg-type]
        assert store.head_position == 0 and store.stream_ids() == []

    # -- reading ---------------------------------------------------------------------------
    def test_read_stream_from_a_version(self, store: EventStore) -> None:
        store.append("s1", [Noted("a"), Noted("b"), Noted("c")], NO_STREAM)
        store.append("s2", [Noted("x")], NO_STREAM)
        assert [e.payload.text for e in store.read_stream("s1")] == ["a", "b", "c"]
        assert [e.payload.text for e in store.read_stream("s1", 1)] == ["b", "c"]
        assert store.read_stream("nope") == []

    def test_read_all_after_a_position_with_a_limit(self, store: EventStore) -> None:
        for i in range(10):
            store.append(f"s{i % 3}", [Noted(str(i))], ANY)
        assert [e.position for e in store.read_all(0, 3)] == [1, 2, 3]
        assert [e.position for e in store.read_all(7)] == [8, 9, 10]
        assert [e.position for e in store.read_all(8, 100)] == [9, 10]
        assert store.read_all(10) == []
        with pytest.raises(ConfigError):
            store.read_all(-1)

    # -- schema versions -------------------------------------------------------------------
    def test_upcasters_chain_old_versions_on_read(self, store: EventStore) -> None:
        store.append("p", [RawEvent("Priced", 1, {"price": 3})], NO_STREAM)
        store.append("p", [RawEvent("Priced", 2, {"cents": 250})], 1)
        store.append("p", [Priced(99, "USD")], 2)
        assert [e.payload for e in store.read_stream("p")] == [
            Priced(300, "EUR"), Priced(250, "EUR"), Priced(99, "USD"),
        ]  # fmt: skip
        assert {e.schema_version for e in store.read_stream("p")} == {3}

    def test_read_all_leaves_decoding_to_the_reader(
        self, store: EventStore, registry: EventRegistry
    ) -> None:
        store.append("p", [RawEvent("Priced", 1, {"price": 3})], NO_STREAM)
        (env,) = store.read_all(0)
        decoded = registry.decode_envelope(env)
        assert decoded.payload == Priced(300, "EUR")

    def test_unknown_type_or_version_is_refused_clearly(self, registry: EventRegistry) -> None:
        with pytest.raises(UnknownEventType, match="register"):
            registry.decode(RawEvent("Nope", 1, {}))
        with pytest.raises(UnknownEventType, match="version 4"):
            registry.decode(RawEvent("Priced", 4, {}))
        registry2 = EventRegistry([Priced])
        with pytest.raises(UpcastError, match="from schema version 1"):
            registry2.decode(RawEvent("Priced", 1, {"price": 1}))

    # -- snapshots and outbox --------------------------------------------------------------
    def test_snapshots_keep_the_latest(self, store: EventStore) -> None:
        assert store.load_snapshot("s1") is None
        store.save_snapshot(Snapshot("s1", 10, {"balance": 5}))
        store.save_snapshot(Snapshot("s1", 20, {"balance": 7}))
        snap = store.load_snapshot("s1")
        assert snap is not None and snap.version == 20 and snap.state == {"balance": 7}

    def test_outbox_is_written_with_the_events_or_not_at_all(self, store: EventStore) -> None:
        store.append("s1", [Noted("a")], NO_STREAM, outbox=[("topic", {"n": 1})])
        with pytest.raises(ConcurrencyError):
            store.append("s1", [Noted("b")], NO_STREAM, outbox=[("topic", {"n": 2})])
        pending = store.outbox_pending()
        assert [m.payload for m in pending] == [{"n": 1}]
        assert pending[0].position == 1
        store.outbox_mark_published([pending[0].message_id])
        assert store.outbox_pending() == []

    def test_outbox_keeps_order_and_ids(self, store: EventStore) -> None:
        for i in range(5):
            store.append(f"s{i}", [Noted(str(i))], NO_STREAM, outbox=[("t", {"i": i})])
        pending = store.outbox_pending(limit=3)
        assert [m.payload["i"] for m in pending] == [0, 1, 2]
        assert len({m.message_id for m in store.outbox_pending()}) == 5

    def test_same_inputs_same_log(self, clock: ManualClock, registry: EventRegistry) -> None:
        def run() -> list[Any]:
            s = self.make_store(ManualClock(0.0), SequentialIds("e"), registry)
            for i in range(20):
                s.append(f"s{i % 4}", [Noted(str(i))], ANY)
            return [(e.event_id, e.stream_id, e.position, e.payload) for e in s.read_all(0)]

        assert run() == run()
