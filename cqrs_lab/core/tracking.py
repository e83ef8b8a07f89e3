"""Tracking records: where a consumer keeps the positions it has dealt with (its checkpoint).

A tracking record is a :class:`~cqrs_lab.core.readmodel.Progress` (every position up to a
watermark, plus a sparse set above it) stored under a key. The delivery semantics decide
*when* it is written and *which* store holds it:

- at-most-once writes the positions it has taken, before handling them, to the engine's
  checkpoint store;
- at-least-once writes the positions it has applied, after handling them, to the same store;
- effectively-once writes them to the read model's own store, in the same unit as the
  read model's changes (so the two cannot disagree after a crash).

A store is a port: :class:`InMemoryTracking` here, ``SqliteTracking`` in
:mod:`cqrs_lab.stores`; both pass the contract test base ``tests/contract/tracking_contract``.

>>> store = InMemoryTracking()
>>> p = Progress(3); p.add(5)
>>> store.commit("balances", p)
>>> p.add(4)  # later changes are not committed until the next commit
>>> store.load("balances")
Progress(watermark=3, above=[5])
>>> store.load("unknown")
Progress(watermark=0, above=[])
"""

from __future__ import annotations

from typing import Protocol

from cqrs_lab.core.readmodel import Progress

__all__ = ["InMemoryTracking", "TrackingStore"]


class TrackingStore(Protocol):
    """Committed tracking records by key (a subscription, or one partition of a read model)."""

    def load(self, key: str) -> Progress:
        """A copy of the last committed record (an empty one if none was committed)."""
        ...

    def commit(self, key: str, record: Progress) -> None:
        """Make a snapshot of ``record`` the committed record of ``key``."""
        ...

    def reset(self, key: str) -> None:
        """Forget ``key``'s record (a rebuild starts again from position 0)."""
        ...

    def keys(self) -> list[str]:
        """The keys with a committed record, sorted."""
        ...


class InMemoryTracking:
    """Tracking records in a dict (the read model's own store, or the engine's default)."""

    def __init__(self) -> None:
        self._records: dict[str, Progress] = {}

    def load(self, key: str) -> Progress:
        found = self._records.get(key)
        return found.copy() if found is not None else Progress()

    def commit(self, key: str, record: Progress) -> None:
        self._records[key] = record.copy()

    def reset(self, key: str) -> None:
        self._records.pop(key, None)

    def keys(self) -> list[str]:
        return sorted(self._records)

    def replace_with(self, other: InMemoryTracking) -> None:
        """Take ``other``'s records (the swap at the end of a shadow rebuild)."""
        self._records = {k: v.copy() for k, v in other._records.items()}

    def clear(self) -> None:
        self._records.clear()
