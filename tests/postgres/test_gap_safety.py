"""Proof of gap safety: 8 writer processes, 50,000 events, safe and naive projection workers.

First the bug in four deterministic steps (a position taken first and committed last). Then one
run, both readers side by side on the same log: writer processes append concurrently in
transactions of random length with pauses between taking positions and committing, so
commits reorder; projection workers follow the global order with the lab's subscription loop.
The safe workers apply every committed position exactly once, in order, and the lab's
``no loss`` check passes; the naive workers skip positions that committed after a later one
was read, and the same check reports each of them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from cqrs_lab.checks.invariants import check_no_loss
from cqrs_lab.core import ANY, EventRegistry, ManualClock, SequentialIds
from cqrs_lab.stores.pg_demo import Run, Ticked, close, run
from cqrs_lab.stores.postgres import PostgresEventStore, Reader
from tests.postgres.conftest import drop_schema

WRITERS = 8
EVENTS = 50_000
READERS: tuple[Reader, ...] = ("safe", "safe", "naive", "naive")
_names = itertools.count(1)


def test_a_position_that_commits_late_is_skipped_only_by_the_naive_reader(
    pg_dsn: str, pg_schema: str
) -> None:
    """The bug in four steps, deterministic: 1 is taken first and committed last."""
    registry = EventRegistry([Ticked])
    readers: tuple[tuple[str, Reader], ...] = (
        ("a", "safe"), ("b", "safe"), ("s", "safe"), ("n", "naive"),
    )  # fmt: skip
    open_ = [
        PostgresEventStore(pg_dsn, ManualClock(), SequentialIds(n), registry, schema=pg_schema,
                           reader=r, pool_size=1)
        for n, r in readers
    ]  # fmt: skip
    slow, fast, safe, naive = open_
    try:
        with slow.batch():
            (late,) = slow.append("w1", [Ticked(1, 0)], ANY)  # takes position 1, not committed
            (early,) = fast.append("w2", [Ticked(2, 0)], ANY)  # takes 2 and commits
            assert (late.position, early.position) == (1, 2)
            assert [e.position for e in naive.read_all(0)] == [2]  # its checkpoint moves to 2
            assert safe.read_all(0) == []  # 2 is held back while 1 may still commit
        assert [e.position for e in safe.read_all(0)] == [1, 2]
        assert naive.read_all(2) == []  # 1 is never read by a reader already past it
    finally:
        for store in open_:
            store.close()


@pytest.fixture(scope="module")
def gap_run(pg_dsn: str) -> Iterator[Run]:
    schema = f"gaps{next(_names)}"
    t0 = time.monotonic()
    result = run(pg_dsn, schema, writers=WRITERS, events=EVENTS, readers=READERS)
    result.total_s = time.monotonic() - t0  # type: ignore[attr-defined]
    try:
        yield result
    finally:
        close(result)
        drop_schema(pg_dsn, schema)


def test_the_writers_committed_every_event(gap_run: Run) -> None:
    assert len(gap_run.committed) == EVENTS
    assert gap_run.committed == sorted(set(gap_run.committed))
    for w in gap_run.workers:
        assert w.errors == []


def test_the_safe_reader_skips_nothing(gap_run: Run) -> None:
    safe = [w for w in gap_run.workers if w.reader == "safe"]
    assert len(safe) == 2
    for w in safe:
        assert w.applied() == gap_run.committed  # every position once, in order
        assert w.projection.count == EVENTS
        report = check_no_loss(w.engine, w.log)
        assert report.ok, report


def _naive_skips(result: Run) -> int:
    """The positions the naive workers of ``result`` never applied, checking that the lab's
    no-loss check names exactly those and that what they applied came in order."""
    naive = [w for w in result.workers if w.reader == "naive"]
    assert len(naive) == 2
    skipped_total = 0
    for w in naive:
        missing = sorted(set(result.committed) - set(w.applied()))
        report = check_no_loss(w.engine, w.log)
        reported = sorted(
            v.evidence[0]["position"]
            for r in report.results
            for v in r.violations
            if "never applied" in v.message
        )
        assert reported == missing  # the check names exactly the positions never applied
        assert not report.ok or not missing
        assert w.applied() == sorted(w.applied())  # what it did apply came in order
        skipped_total += len(missing)
    return skipped_total


def test_the_naive_reader_skips_and_the_lab_reports_it(gap_run: Run, pg_dsn: str) -> None:
    skipped_total = _naive_skips(gap_run)
    # a skip needs a naive follower to read past a gap while it is open (a straggler holds
    # its commit 0.2-0.4 s); followers that lag the writers by more than that on a busy
    # machine read it closed, and one run of a fresh-clone check had no skip: up to two
    # more runs of naive followers, each on its own schema and seed, every one checked
    for attempt in range(2):
        if skipped_total:
            break
        schema = f"gaps{next(_names)}"
        more = run(pg_dsn, schema, writers=WRITERS, events=EVENTS, readers=("naive", "naive"),
                   seed=14 + attempt)  # fmt: skip
        try:
            skipped_total = _naive_skips(more)
        finally:
            close(more)
            drop_schema(pg_dsn, schema)
    assert skipped_total >= 1, "the naive workers skipped nothing in three runs: no bug shown"
    print(  # shown with pytest -s
        f"\ngap safety: {len(gap_run.committed)} events by {WRITERS} writer processes; safe "
        f"readers skipped 0 (2 readers), naive readers skipped {skipped_total} (2 readers), "
        f"every skip named by the no-loss check"
    )
