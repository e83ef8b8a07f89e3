"""The outbox relay: publishes messages recorded with events, at least once, with their ids.

A crash between publishing and marking a message published (``CrashPoint.AFTER_HANDLE``
in spirit) publishes it again on the next run, with the same ``message_id``, so a downstream
consumer deduplicates by id.
"""

from __future__ import annotations

from collections.abc import Callable

from cqrs_lab.core.store import EventStore, OutboxMessage
from cqrs_lab.errors import ConfigError, ConsumerCrashed

__all__ = ["OutboxRelay"]

Publisher = Callable[[OutboxMessage], None]


class OutboxRelay:
    """Moves pending outbox messages to ``publish``; marks them published after it returns."""

    def __init__(self, store: EventStore, publish: Publisher, *, batch_size: int = 100) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: pass a whole number >= 1")
        self.store = store
        self.publish = publish
        self.batch_size = batch_size
        self.published = 0
        self.crash_after_publish: set[str] = set()  # message ids: crash before marking them

    def relay(self) -> int:
        """Publish one batch; returns how many were published. A failing publish stops it."""
        pending = self.store.outbox_pending(self.batch_size)
        done: list[str] = []
        try:
            for message in pending:
                self.publish(message)
                self.published += 1
                if message.message_id in self.crash_after_publish:
                    self.crash_after_publish.discard(message.message_id)
                    raise ConsumerCrashed("outbox-relay", "after publishing", message.position)
                done.append(message.message_id)
        finally:
            self.store.outbox_mark_published(done)
        return len(done)

    def run(self) -> int:
        """Relay until the outbox is empty (or a crash stops this run)."""
        total = 0
        while True:
            try:
                n = self.relay()
            except ConsumerCrashed:
                return total
            total += n
            if n == 0:
                return total
