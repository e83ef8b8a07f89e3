"""Partitions of the log: which partition a stream belongs to, and an index to read one.

A stream belongs to partition ``crc32(stream_id) % count``: stable across processes and
runs (unlike ``hash``), so a partitioned consumer group resumes where it was.

A :class:`PartitionIndex` lets one partition's subscription read only its own events
instead of scanning the whole log and dropping the other partitions' events (with P
partitions that scan reads every event P times).

>>> partition_of("account-7", 4) == partition_of("account-7", 4) < 4
True
"""

from __future__ import annotations

import zlib
from bisect import bisect_right

from cqrs_lab.core.arguments import check_whole
from cqrs_lab.core.messages import Envelope

__all__ = ["MAX_PARTITIONS", "PartitionIndex", "partition_of"]

#: the most partitions of one view (engine, scenario files and ``cqrs-lab project`` alike:
#: each is a subscription, a typo must not take the memory)
MAX_PARTITIONS = 4096


def partition_of(stream_id: str, count: int) -> int:
    """The partition (0 .. count-1) that ``stream_id``'s events belong to."""
    return zlib.crc32(stream_id.encode()) % count


class PartitionIndex:
    """Each partition's events, in log order, for one partition ``count``; grows on demand.

    It indexes an append-only list of envelopes (the log, position ``i + 1`` at index ``i``)
    whose entries are never replaced.
    """

    __slots__ = ("count", "events", "owner", "positions", "upto")

    def __init__(self, count: int) -> None:
        count = check_whole(count, "count", "a whole number >= 1", where="PartitionIndex", low=1)
        self.count = count
        self.upto = 0  # log entries indexed so far
        self.events: list[list[Envelope]] = [[] for _ in range(count)]
        self.positions: list[list[int]] = [[] for _ in range(count)]
        self.owner: dict[str, int] = {}  # stream id -> partition

    def _extend(self, log: list[Envelope]) -> None:
        owner, count, events, positions = self.owner, self.count, self.events, self.positions
        for env in log[self.upto :]:
            sid = env.stream_id
            p = owner.get(sid)
            if p is None:
                p = owner[sid] = zlib.crc32(sid.encode()) % count
            events[p].append(env)
            positions[p].append(env.position)
        self.upto = len(log)

    def read(
        self, log: list[Envelope], index: int, after: int, limit: int
    ) -> tuple[list[Envelope], int]:
        """Up to ``limit`` of partition ``index``'s events after position ``after``.

        Also returns the position the read covers: every event of the partition at or below
        it and above ``after`` was returned (the last event returned when ``limit`` cut the
        read short, otherwise the log's head).
        """
        if self.upto < len(log):
            self._extend(log)
        start = bisect_right(self.positions[index], after)
        batch = self.events[index][start : start + limit]
        through = batch[-1].position if len(batch) == limit else self.upto
        return batch, max(through, after)
