"""Durable adapters for the engine's ports (standard library only).

>>> from cqrs_lab.stores import SqliteEventStore
"""

from cqrs_lab.stores.sqlite import SqliteEventStore, StoreBroken

__all__ = ["SqliteEventStore", "StoreBroken"]
