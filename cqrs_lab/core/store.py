"""The event store port and its in-memory adapter.

``append(stream, events, expected_version)`` is all-or-nothing with optimistic concurrency;
every event gets the next global, gap-free position (1, 2, 3, ...), which callers use as a
consistency token. Snapshots and a transactional outbox live beside the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from cqrs_lab.core.arguments import check_whole
from cqrs_lab.core.clock import Clock
from cqrs_lab.core.ids import IdFactory
from cqrs_lab.core.messages import ANY, NO_STREAM, Envelope, Event, ExpectedVersion, RawEvent
from cqrs_lab.core.partitions import PartitionIndex
from cqrs_lab.core.schema import EventRegistry
from cqrs_lab.errors import ConcurrencyError, ConfigError

__all__ = ["EventStore", "InMemoryEventStore", "OutboxMessage", "Snapshot"]

_EMPTY: Mapping[str, Any] = {}
#: builds an Envelope from a tuple of its fields without the Python-level ``__new__`` frame
_new_envelope = tuple.__new__


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of ``version`` of its stream."""

    stream_id: str
    version: int
    state: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An integration message recorded in the same append as its events."""

    message_id: str
    topic: str
    payload: Mapping[str, Any]
    position: int  # global position of the append's last event (0 if it had no events)
    correlation_id: str | None


class EventStore(Protocol):
    """What every event store adapter provides (the contract tests are in tests/contract).

    ``append`` reads ``events`` during the call and keeps no reference to the sequence
    (the repository reuses it).
    """

    registry: EventRegistry

    def append(
        self,
        stream_id: str,
        events: Sequence[Event | RawEvent],
        expected_version: int | ExpectedVersion,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        outbox: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[Envelope]: ...

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]: ...

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        """Events after ``after`` in position order. A position between ``after`` and the
        last one returned that is not returned never will be (a shared store's hole, left by
        an append rolled back after taking it): subscriptions count it as dealt with."""
        ...

    def stream_version(self, stream_id: str) -> int: ...

    @property
    def head_position(self) -> int: ...

    def save_snapshot(self, snapshot: Snapshot) -> None: ...

    def load_snapshot(self, stream_id: str) -> Snapshot | None: ...

    def outbox_pending(self, limit: int | None = None) -> list[OutboxMessage]: ...

    def outbox_mark_published(self, message_ids: Iterable[str]) -> None: ...


def read_stream_from(
    streams: Mapping[str, list[Envelope]],
    registry: EventRegistry,
    stream_id: str,
    after_version: int,
) -> list[Envelope]:
    """Events of one in-memory stream after a version, decoded to current event classes."""
    stream = streams.get(stream_id)
    if not stream:
        return []
    envs = stream[after_version:]
    if any(type(e.payload) is RawEvent for e in envs):
        envs = [registry.decode_envelope(e) for e in envs]
    return envs


def check_expected(stream_id: str, expected: int | ExpectedVersion, actual: int) -> None:
    """Raise :class:`ConcurrencyError` unless ``actual`` satisfies ``expected``."""
    if expected is ANY:
        return
    if expected is NO_STREAM:
        if actual != 0:
            raise ConcurrencyError(stream_id, NO_STREAM, actual)
        return
    if type(expected) is not int and (type(expected) is bool or not isinstance(expected, int)):
        raise ConfigError(f"expected_version={expected!r}: {_VERSIONS}")
    if expected != actual:
        if expected < 0:
            raise ConfigError(f"expected_version={expected!r}: {_VERSIONS}")
        raise ConcurrencyError(stream_id, expected, actual)


_VERSIONS = "pass a stream version (a whole number >= 0), ANY or NO_STREAM (from cqrs_lab.core)"
_POSITION = "a log position, a whole number >= 0"


def check_events(stream_id: object, events: object) -> None:
    """The arguments of an append that are not a str stream id and a list (or tuple) of
    events; raises :class:`ConfigError` naming what is wrong."""
    if not isinstance(stream_id, str) or not stream_id:
        raise ConfigError(f"append(stream_id={stream_id!r}): pass a stream id, a non-empty str")
    if isinstance(events, str | bytes) or not isinstance(events, Sequence):
        raise ConfigError(f"append(events={events!r}): pass a list of Event (or RawEvent)")
    for e in events:
        if not isinstance(e, Event | RawEvent):
            raise ConfigError(f"append(events=[..., {e!r}, ...]): pass Event (or RawEvent)s")


class InMemoryEventStore:
    """The reference store: a list for the global log, a dict of lists for streams.

    >>> from cqrs_lab.core import ManualClock, SequentialIds
    >>> store = InMemoryEventStore(ManualClock(), SequentialIds("e"))
    >>> store.head_position
    0
    """

    def __init__(self, clock: Clock, ids: IdFactory, registry: EventRegistry | None = None) -> None:
        self.clock = clock
        self.ids = ids
        self.registry = registry if registry is not None else EventRegistry()
        self._log: list[Envelope] = []
        self._streams: dict[str, list[Envelope]] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._outbox: dict[str, OutboxMessage] = {}  # pending, in insertion order
        self._partitions: dict[int, PartitionIndex] = {}  # partition count -> index

    # -- writing -------------------------------------------------------------------------
    def append(
        self,
        stream_id: str,
        events: Sequence[Event | RawEvent],
        expected_version: int | ExpectedVersion,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        outbox: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[Envelope]:
        if (
            type(stream_id) is not str
            or not stream_id
            or (type(events) is not list and type(events) is not tuple)
        ):
            check_events(stream_id, events)
        stream = self._streams.get(stream_id)
        version = len(stream) if stream is not None else 0
        if expected_version is not ANY:
            check_expected(stream_id, expected_version, version)
        if not events and not outbox:
            return []
        log = self._log
        position = len(log)
        now = self.clock.now()
        ids = self.ids
        meta = metadata if metadata is not None else _EMPTY
        out: list[Envelope] = []
        try:
            for event in events:
                version += 1
                position += 1
                if type(event) is RawEvent:
                    type_name, schema = event.type_name, event.schema_version
                else:
                    cls = cast(type[Event], type(event))
                    type_name, schema = cls.type_name or cls.__name__, cls.schema_version
                env = _new_envelope(Envelope, (
                    ids(), stream_id, version, position, type_name, schema, event,
                    correlation_id, causation_id, now, meta,
                ))  # fmt: skip
                out.append(env)
        except AttributeError:  # not an event: nothing was appended
            check_events(stream_id, events)
            raise
        if stream is None:
            stream = self._streams[stream_id] = []
        log.extend(out)
        stream.extend(out)
        for topic, payload in outbox:
            mid = ids()
            self._outbox[mid] = OutboxMessage(mid, topic, payload, position, correlation_id)
        return out

    # -- reading -------------------------------------------------------------------------
    def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Events of one stream with version > ``after_version``, decoded to current classes."""
        if type(after_version) is not int or after_version < 0:
            after_version = check_whole(
                after_version, "after_version", "a stream version >= 0", where="read_stream"
            )
        return read_stream_from(self._streams, self.registry, stream_id, after_version)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        """Events at global positions > ``after``, at most ``limit``, in stored form."""
        if type(after) is not int or after < 0:
            after = check_whole(after, "after", _POSITION, where="read_all")
        if limit is None:
            return self._log[after:]
        if type(limit) is not int or limit < 0:
            limit = check_whole(limit, "limit", "a whole number >= 0, or None", where="read_all")
        return self._log[after : after + limit]

    def read_partition(
        self, index: int, count: int, after: int, limit: int
    ) -> tuple[list[Envelope], int]:
        """Partition ``index`` of ``count``'s events after ``after`` (at most ``limit``), in
        stored form, and the position the read covers (see :class:`PartitionIndex`).

        Optional for stores: a partitioned subscription uses it where it exists and
        otherwise reads everything and keeps its own events.
        """
        if {type(index), type(count), type(after), type(limit)} != {int}:  # numpy's pass
            named = {"index": index, "count": count, "after": after, "limit": limit}
            index, count, after, limit = (
                check_whole(n, k, "a whole number", where="read_partition")
                for k, n in named.items()
            )
        if not 0 <= index < count or limit < 1 or after < 0:
            raise ConfigError(
                f"read_partition(index={index}, count={count}, after={after}, limit={limit}): "
                f"pass 0 <= index < count, limit >= 1 and after >= 0"
            )
        found = self._partitions.get(count)
        if found is None:
            found = self._partitions[count] = PartitionIndex(count)
        return found.read(self._log, index, after, limit)

    def stream_version(self, stream_id: str) -> int:
        stream = self._streams.get(stream_id)
        return len(stream) if stream is not None else 0

    @property
    def head_position(self) -> int:
        return len(self._log)

    def stream_ids(self) -> list[str]:
        return list(self._streams)

    # -- snapshots -----------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshots[snapshot.stream_id] = snapshot

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self._snapshots.get(stream_id)

    # -- outbox --------------------------------------------------------------------------
    def outbox_pending(self, limit: int | None = None) -> list[OutboxMessage]:
        pending = list(self._outbox.values())
        return pending if limit is None else pending[:limit]

    def outbox_mark_published(self, message_ids: Iterable[str]) -> None:
        for mid in message_ids:
            self._outbox.pop(mid, None)
