"""Idempotency records: what a command with an idempotency key was answered, kept for a
bounded time and count.

A retry within ``ttl`` seconds of the engine's clock and within the ``max_keys`` newest keys
is answered from its record; a key past either bound is forgotten and answered as new.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from cqrs_lab.core.clock import Clock
from cqrs_lab.core.messages import Command
from cqrs_lab.errors import ConfigError

if TYPE_CHECKING:
    from cqrs_lab.core.unit_of_work import CommandResult

V = TypeVar("V")

__all__ = [
    "DEFAULT_IDEMPOTENCY_MAX_KEYS",
    "DEFAULT_IDEMPOTENCY_RETENTION",
    "IdempotencyRecord",
    "IdempotencyStore",
    "InMemoryIdempotencyStore",
    "RetainedRecords",
    "check_retention",
]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    command: Command
    result: CommandResult | None
    rejection: str | None
    recorded_at: float


class IdempotencyStore(Protocol):
    def get(self, key: str) -> IdempotencyRecord | None: ...

    def put(self, key: str, record: IdempotencyRecord) -> None: ...


#: how long an idempotency record is kept by default, in seconds of the engine's clock (24 h)
DEFAULT_IDEMPOTENCY_RETENTION = 24 * 3600.0
#: how many idempotency records are kept by default (the newest)
DEFAULT_IDEMPOTENCY_MAX_KEYS = 1_000_000


def check_retention(ttl: float | None, max_keys: int | None, where: str) -> None:
    """Raise :class:`ConfigError` unless ``ttl`` (seconds) and ``max_keys`` are usable bounds."""
    if ttl is not None and not ttl > 0:
        raise ConfigError(f"{where}: ttl={ttl!r}; pass seconds > 0, or None for no time bound")
    if max_keys is not None and (type(max_keys) is not int or max_keys < 1):
        raise ConfigError(
            f"{where}: max_keys={max_keys!r}; pass a whole number >= 1, or None for no count bound"
        )


class RetainedRecords(Generic[V]):
    """Values by key, each kept ``ttl`` seconds of ``clock`` after it was recorded and at most
    the ``max_keys`` newest (``None``: no bound of that kind); ``evicted`` counts those
    dropped, so a bound that bites is seen. The one bounded map of every in-memory store of
    idempotency records (the engine's and the HTTP responses').

    >>> from cqrs_lab.core import ManualClock
    >>> clock = ManualClock()
    >>> kept = RetainedRecords[str](clock, ttl=60, max_keys=2)
    >>> for key in ("a", "b", "c"):
    ...     kept.put(key, key.upper(), clock.now())
    >>> kept.get("a"), kept.get("c"), kept.evicted
    (None, 'C', 1)
    >>> clock.advance(61)
    >>> kept.get("c"), kept.evicted
    (None, 2)
    """

    def __init__(
        self,
        clock: Clock,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
        *,
        where: str = "RetainedRecords",
    ) -> None:
        check_retention(ttl, max_keys, where)
        self.clock = clock
        self.ttl = ttl
        self.max_keys = max_keys
        self.evicted = 0
        self._records: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> V | None:
        found = self._records.get(key)
        if found is None:
            return None
        if self.ttl is not None and self.clock.now() - found[0] > self.ttl:
            del self._records[key]
            self.evicted += 1
            return None
        return found[1]

    def put(self, key: str, value: V, recorded_at: float) -> None:
        records = self._records
        records[key] = (recorded_at, value)
        records.move_to_end(key)
        limit = self.max_keys
        while limit is not None and len(records) > limit:
            records.popitem(last=False)
            self.evicted += 1
        if self.ttl is not None:
            horizon = self.clock.now() - self.ttl
            while records and next(iter(records.values()))[0] < horizon:
                records.popitem(last=False)
                self.evicted += 1

    def __len__(self) -> int:
        return len(self._records)


class InMemoryIdempotencyStore(RetainedRecords[IdempotencyRecord]):
    """Keeps each record ``ttl`` seconds of the injected clock, and at most the ``max_keys``
    newest (``None``: no bound of that kind). Defaults: 24 h and 1,000,000 keys.

    A retry within both bounds is answered from its record; a key past them is forgotten and
    answered as new (``evicted`` counts the records dropped, so a bound that bites is seen).

    >>> from cqrs_lab.core import ManualClock
    >>> clock = ManualClock()
    >>> records = InMemoryIdempotencyStore(clock, ttl=60, max_keys=2)
    >>> for key in ("a", "b", "c"):
    ...     records.put(key, IdempotencyRecord(Command(), None, "no", clock.now()))
    >>> records.get("a") is None, records.get("c") is not None, records.evicted
    (True, True, 1)
    """

    def __init__(
        self,
        clock: Clock,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
    ) -> None:
        super().__init__(clock, ttl, max_keys, where="InMemoryIdempotencyStore")

    def put(self, key: str, record: IdempotencyRecord, recorded_at: float | None = None) -> None:
        super().put(key, record, record.recorded_at if recorded_at is None else recorded_at)
