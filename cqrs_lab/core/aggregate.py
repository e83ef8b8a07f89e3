"""Aggregates (the consistency boundary on the write side) and the repository that loads them.

>>> from dataclasses import dataclass
>>> from cqrs_lab.core.messages import Event
>>> @dataclass(frozen=True, slots=True)
... class Opened(Event):
...     owner: str
>>> class Account(Aggregate):
...     def __init__(self, id: str) -> None:
...         super().__init__(id)
...         self.owner = ""
...     @on(Opened)
...     def _opened(self, e: Opened) -> None:
...         self.owner = e.owner
>>> acc = Account("a1"); acc.record(Opened("ann")); (acc.owner, acc.version, len(acc.pending))
('ann', 0, 1)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from cqrs_lab.core.messages import Envelope, Event
from cqrs_lab.core.store import EventStore, Snapshot
from cqrs_lab.errors import ConfigError, UnknownEventType

__all__ = ["Aggregate", "Repository", "on"]

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound="Aggregate")
_MARK = "__cqrs_handles__"
_CONTAINERS = frozenset((dict, list, set))  # copied one level deep by Aggregate.clone


def on(*event_types: type[Event]) -> Callable[[F], F]:
    """Mark a method as the handler of these event types (aggregates, projections, sagas)."""
    if not event_types:
        raise ConfigError("on(): name at least one event class, as in @on(Deposited)")

    def mark(fn: F) -> F:
        setattr(fn, _MARK, (*getattr(fn, _MARK, ()), *event_types))
        return fn

    return mark


def collect_handlers(cls: type) -> dict[type[Event], Callable[..., Any]]:
    """Map event type -> function for every ``@on``-marked method of ``cls`` and its bases."""
    found: dict[type[Event], Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for attr in vars(klass).values():
            for event_type in getattr(attr, _MARK, ()):
                found[event_type] = attr
    return found


class Aggregate:
    """Base of aggregates: ``record`` an event to change state; ``@on`` methods apply events.

    ``version`` is the stream version the aggregate was loaded at (0: new). Set the class
    attribute ``snapshot_every = N`` to snapshot every N events.
    """

    snapshot_every: ClassVar[int | None] = None
    _appliers: ClassVar[dict[type[Event], Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._appliers = collect_handlers(cls)

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[Event] = []

    @property
    def pending(self) -> list[Event]:
        """Events recorded since the aggregate was loaded or last saved."""
        return self._pending

    def record(self, event: Event) -> None:
        """Apply ``event`` to the state and keep it for saving."""
        applier = self._appliers.get(type(event))
        if applier is None:
            self._apply(event)  # raises the explanatory error
        else:
            applier(self, event)
        self._pending.append(event)

    def _apply(self, event: Event) -> None:
        applier = self._appliers.get(type(event))
        if applier is None:
            raise UnknownEventType(
                f"{type(self).__name__} has no @on({type(event).__name__}) method; add one "
                f"to apply this event"
            )
        applier(self, event)

    def replay(self, envelopes: list[Envelope]) -> None:
        """Apply stored events (already decoded) and move ``version`` to the last one."""
        for env in envelopes:
            self._apply(env.payload)
        if envelopes:
            self.version = envelopes[-1].stream_version

    # -- snapshots and copies ---------------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        """State to snapshot (default: every attribute but id, version and pending events)."""
        skip = ("id", "version", "_pending")
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in skip}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, copy.deepcopy(value))

    def clone(self: A) -> A:
        """An independent copy (containers copied one level deep); override for deeper state."""
        twin = object.__new__(type(self))
        state = self.__dict__.copy()
        for key, value in state.items():
            if type(value) in _CONTAINERS:
                state[key] = value.copy()
        state["_pending"] = []
        twin.__dict__ = state
        return twin


class Repository:
    """Loads aggregates (latest snapshot + later events, through a cache) and saves them.

    The cache stays correct when another writer appended in between: a cached aggregate
    behind the stream's head replays only the newer events before it is handed out.
    """

    def __init__(self, store: EventStore, *, cache_size: int = 10_000) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size={cache_size}: pass 0 (no cache) or a positive size")
        self.store = store
        self._stream_version = store.stream_version
        self.cache_size = cache_size
        self._cache: dict[str, Aggregate] = {}
        self.snapshots_taken = 0

    def load(self, cls: type[A], stream_id: str, *, private: bool = False) -> A:
        """The aggregate at the stream's head (a new one at version 0 if the stream is empty).

        ``private=True`` returns a copy nobody else holds, for a decision that commits later.
        """
        store = self.store
        cached = self._cache.get(stream_id)
        if cached is not None and type(cached) is cls:
            head = self._stream_version(stream_id)
            if cached.version != head:
                if cached.version > head:  # cannot happen with one store; be safe
                    del self._cache[stream_id]
                    return self.load(cls, stream_id, private=private)
                cached.replay(store.read_stream(stream_id, cached.version))
            return cached.clone() if private else cached
        agg = cls(stream_id)
        snap = store.load_snapshot(stream_id)
        after = 0
        if snap is not None:
            agg.restore_state(snap.state)
            agg.version = after = snap.version
        agg.replay(store.read_stream(stream_id, after))
        if self.cache_size:
            cache = self._cache
            if len(cache) >= self.cache_size:
                del cache[next(iter(cache))]
            cache[stream_id] = agg
            return agg.clone() if private else agg
        return agg

    def saved(self, agg: Aggregate, new_version: int) -> None:
        """Tell the repository ``agg`` was appended up to ``new_version`` (snapshot, cache)."""
        old = agg.version
        agg.version = new_version
        agg._pending.clear()  # the store copied the events out; the list is reused
        every = agg.snapshot_every
        if every and old // every != new_version // every:
            self.store.save_snapshot(Snapshot(agg.id, new_version, agg.snapshot_state()))
            self.snapshots_taken += 1
        cache = self._cache
        cached = cache.get(agg.id)
        if cached is not None and cached is not agg and cached.version == old:
            # a private copy of the cached state was saved: it is the new cached state
            cache[agg.id] = agg

    def evict(self, stream_id: str) -> None:
        """Forget a cached aggregate (after a failed or refused command may have touched it)."""
        self._cache.pop(stream_id, None)
