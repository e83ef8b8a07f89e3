"""The store's partition index reads exactly what a scan of the log keeps for a partition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cqrs_lab.core import ANY, ManualClock, SequentialIds
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.core.store import InMemoryEventStore
from cqrs_lab.errors import ConfigError
from tests.core.helpers import Ticked

# a run: streams to append to, with reads (partition index, count, after, limit) between them
appends = st.lists(st.integers(0, 9), min_size=0, max_size=40)
reads = st.lists(
    st.tuples(st.integers(0, 4), st.integers(1, 5), st.integers(0, 45), st.integers(1, 8)),
    min_size=1,
    max_size=6,
)


@given(st.lists(st.tuples(appends, reads), min_size=1, max_size=4))
def test_read_partition_equals_the_filtered_scan(steps: list[tuple[list[int], list]]) -> None:
    store = InMemoryEventStore(ManualClock(), SequentialIds("e"))
    for streams, queries in steps:
        for n, s in enumerate(streams):
            store.append(f"s{s}", [Ticked(n)], ANY)
        head = store.head_position
        for index, count, after, limit in queries:
            index %= count
            after = min(after, head)
            batch, through = store.read_partition(index, count, after, limit)
            own = [e for e in store.read_all(after) if partition_of(e.stream_id, count) == index]
            assert batch == own[:limit]
            assert after <= through <= head
            # everything of the partition up to `through` was returned, nothing beyond it
            assert [e for e in own if e.position <= through] == batch
            if len(own) < limit:  # a short read covers the whole log
                assert through == head


def test_read_partition_refuses_impossible_arguments() -> None:
    store = InMemoryEventStore(ManualClock(), SequentialIds("e"))
    for args in ((3, 3, 0, 1), (0, 2, -1, 1), (0, 2, 0, 0)):
        with pytest.raises(ConfigError, match="read_partition"):
            store.read_partition(*args)
