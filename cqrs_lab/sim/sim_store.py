"""The simulation's event store: the in-memory store, telling the consumer groups when the
log grows (:class:`SimStore`), and optionally showing projections each commit only some time
after it (:class:`DelayedSimStore`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import simpy

from cqrs_lab.core import Envelope
from cqrs_lab.core.partitions import PartitionIndex
from cqrs_lab.core.store import InMemoryEventStore
from cqrs_lab.errors import ConfigError

if TYPE_CHECKING:
    from cqrs_lab.sim.consumers import GroupDriver

__all__ = ["DelayedSimStore", "SimStore"]

_append = InMemoryEventStore.append


class SimStore(InMemoryEventStore):
    """The in-memory store, telling the consumer groups when the log grows."""

    drivers: Sequence[GroupDriver] = ()
    #: which served process is appending now (set by the loops' command side)
    source = 0

    @property
    def committed(self) -> int:
        """Events appended, visible or not."""
        return len(self._log)

    def append(
        self,
        stream_id: str,
        events: Any,
        expected_version: Any,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Any = None,
        outbox: Any = (),
    ) -> list[Envelope]:
        out = _append(
            self,
            stream_id,
            events,
            expected_version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            metadata=metadata,
            outbox=outbox,
        )
        if out:
            self._appended(out)
        return out

    def _appended(self, out: list[Envelope]) -> None:
        source = self.source
        for d in self.drivers:
            d.on_append(out, source)


class DelayedSimStore(SimStore):
    """:class:`SimStore` whose global order shows each commit only some time after it.

    What the global order shows (``read_all``, ``read_partition``, ``head_position``: what
    projections read) is the prefix of the log made visible so far: once
    :meth:`delay_visibility` is called, each append becomes visible ``delay`` seconds after
    its commit, and never before an earlier one (in commit order, as a gap-safe reader
    releases events). Streams (``read_stream``, what command handlers read) see every commit
    at once. (A separate class, so that a run without a delay pays nothing for it.)

    >>> from cqrs_lab.core import ManualClock, SequentialIds
    >>> store = DelayedSimStore(ManualClock(), SequentialIds())
    >>> (store.head_position, store.committed)
    (0, 0)
    """

    _delay: Callable[[], float] | None = None

    def delay_visibility(self, env: simpy.Environment, delay: Callable[[], float]) -> None:
        """From now on, appends become visible to the global order ``delay()`` seconds later
        (what is already in the log stays visible)."""
        self._env, self._delay = env, delay
        self._visible: list[Envelope] = list(self._log)
        self._visible_at = env.now
        self._visible_parts: dict[int, PartitionIndex] = {}

    @property
    def head_position(self) -> int:
        return len(self._visible) if self._delay is not None else len(self._log)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        if self._delay is None:
            return super().read_all(after, limit)
        if after < 0:
            raise ConfigError(f"read_all(after={after}): positions start at 0; pass >= 0")
        return self._visible[after:] if limit is None else self._visible[after : after + limit]

    def read_partition(
        self, index: int, count: int, after: int, limit: int
    ) -> tuple[list[Envelope], int]:
        if self._delay is None:
            return super().read_partition(index, count, after, limit)
        super().read_partition(index, count, after, limit)  # the same checks of the arguments
        found = self._visible_parts.get(count)
        if found is None:
            found = self._visible_parts[count] = PartitionIndex(count)
        return found.read(self._visible, index, after, limit)

    def _reveal(self, upto: int, envs: list[Envelope], source: int) -> None:
        self._visible.extend(self._log[len(self._visible) : upto])
        for d in self.drivers:
            d.on_append(envs, source)

    def _appended(self, out: list[Envelope]) -> None:
        if self._delay is None:
            super()._appended(out)
            return
        # visible after the delay, and not before what committed earlier
        env = self._env
        self._visible_at = at = max(self._visible_at, env.now + self._delay())
        upto, source = out[-1].position, self.source
        env.timeout(at - env.now).callbacks.append(lambda _: self._reveal(upto, out, source))
