"""Durable adapters for the engine's ports (standard library only).

>>> from cqrs_lab.stores import SqliteEventStore, SqliteTracking
"""

from cqrs_lab.stores.sqlite import SqliteEventStore, StoreBroken
from cqrs_lab.stores.tracking import SqliteTracking

__all__ = ["SqliteEventStore", "SqliteTracking", "StoreBroken"]
