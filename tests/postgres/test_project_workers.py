"""Saga workers of ``cqrs-lab project`` in one process: fair shares, take-over, the fence."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from cqrs_lab.domains import bank
from cqrs_lab.domains.bank.aggregates import Account, account_stream
from cqrs_lab.errors import ConcurrencyError, ConfigError
from cqrs_lab.stores.postgres_project import ProjectWorker, open_worker
from tests.postgres.conftest import drop_schema

_names = itertools.count(1)


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = f"proj{next(_names)}"
    yield name
    drop_schema(pg_dsn, name)


def _worker(dsn: str, schema: str, **options: object) -> ProjectWorker:
    return open_worker(dsn, "cqrs_lab.domains.bank", None, schema=schema, **options)


def _withdrawals(w: ProjectWorker, transfer_id: str) -> int:
    return sum(
        1
        for e in w.store.read_all(0)
        if e.event_type == "Withdrawn" and e.payload.transfer_id == transfer_id
    )


def test_fair_shares_and_take_over(pg_dsn: str, schema: str) -> None:
    first = _worker(pg_dsn, schema, partitions=8)
    opened = [first]
    try:
        first.rebalance()
        assert len(first.slots) == 8  # alone: every slot
        second = _worker(pg_dsn, schema, partitions=8)
        opened.append(second)
        second.rebalance()  # the first still holds them all
        assert len(second.slots) == 0
        first.rebalance()  # two members now: gives up half
        second.rebalance()
        assert (len(first.slots), len(second.slots)) == (4, 4)
        assert not set(first.slots) & set(second.slots)
        first.close()  # its session ends: PostgreSQL releases its locks
        # the server ends the closed session's backend (and frees its locks) on its own
        # time: a busy machine can need a few rebalance rounds, bounded here at 5 s
        deadline = time.monotonic() + 5.0
        second.rebalance()
        while len(second.slots) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
            second.rebalance()
        assert len(second.slots) == 8
    finally:
        for w in opened:
            if not w.locks.closed:
                w.close()


def test_the_partition_count_is_fixed_per_store(pg_dsn: str, schema: str) -> None:
    w = _worker(pg_dsn, schema, partitions=8)
    try:
        with pytest.raises(ConfigError, match="pass 8"):
            _worker(pg_dsn, schema, partitions=4)
    finally:
        w.close()


def test_a_worker_that_lost_its_slot_cannot_commit_over_the_new_owner(
    pg_dsn: str, schema: str
) -> None:
    old = _worker(pg_dsn, schema, partitions=2)
    new: ProjectWorker | None = None
    try:
        old.rebalance()
        for account, opening in (("a", 100), ("b", 0)):
            old.engine.dispatch(bank.OpenAccount(account, account, opening))
        old.engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))
        slot_id = next((v, p) for (v, p) in old.slots if p == old._part(old.store.read_all(0)[-1]))
        # a second worker takes the slot while the first still thinks it owns it (as when
        # the first's lock session died unnoticed): it runs the saga's first step
        new = _worker(pg_dsn, schema, partitions=2)
        new._acquire(*slot_id)
        assert new.step() >= 1
        assert _withdrawals(new, "t1") == 1
        old.step()  # the fence: the tracking record moved under it, the batch rolls back
        assert slot_id not in old.slots  # it gave the slot up
        assert _withdrawals(old, "t1") == 1  # and sent nothing
    finally:
        old.close()
        if new is not None:
            new.close()


def test_a_failed_batch_is_rolled_back_and_tried_again(pg_dsn: str, schema: str) -> None:
    w = _worker(pg_dsn, schema, partitions=1, snapshot_every=1)  # a snapshot every batch
    try:
        w.rebalance()
        for account, opening in (("a", 100), ("b", 0)):
            w.engine.dispatch(bank.OpenAccount(account, account, opening))
        w.engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))
        slot = w.slots[("transfer-saga", 0)]
        dispatch, calls = slot.saga._dispatch, []

        def conflicting(*args: object, **kwargs: object) -> object:
            calls.append(args)
            if len(calls) == 1:  # the debit is appended, then the batch fails (a conflict)
                assert dispatch is not None
                dispatch(*args, **kwargs)
                raise ConcurrencyError("a", 1, 2)
            assert dispatch is not None
            return dispatch(*args, **kwargs)

        slot.saga._dispatch = conflicting
        assert w.step() == 0 and w.failures == 1
        assert _withdrawals(w, "t1") == 0  # the debit went with the rolled-back batch
        assert slot.progress.watermark == 0 and not slot.saga.transfers.to_dict()  # undone
        snapshots = "SELECT position FROM project_snapshots"
        assert w.store.query(snapshots) == [] and slot.snapshot_at == 0  # its snapshot too
        other = _worker(pg_dsn, schema, partitions=1)  # another process deposits to a:
        try:  # the stream is back at the version the rolled-back debit had
            other.engine.dispatch(bank.Deposit("a", 5))
        finally:
            other.close()
        account = w.engine.repository.load(Account, account_stream("a"))
        assert account.balance == 105  # no cached aggregate remembers the rolled-back debit
        for _ in range(10):
            w.step()
        assert _withdrawals(w, "t1") == 1
        assert slot.saga.view("t1")["status"] == "completed"  # type: ignore[index]
        assert w.store.query(snapshots) == [(slot.progress.watermark,)] == [(slot.snapshot_at,)]
    finally:
        w.close()


def test_a_worker_whose_lock_session_the_database_dropped_stops_as_on_an_outage(
    pg_dsn: str, schema: str
) -> None:
    """The session that holds a worker's advisory locks is a connection of its own: when
    the database drops it (here its backend is terminated; in an outage the server stops),
    the worker's next rebalance raises StoreUnavailable, which ``cqrs-lab project`` turns
    into exit 75, not a psycopg traceback and exit 1."""
    import psycopg

    from cqrs_lab.errors import StoreUnavailable

    w = _worker(pg_dsn, schema, partitions=2)
    try:
        w.rebalance()
        assert len(w.slots) == 2
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (w.locks.info.backend_pid,))
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            w.rebalance()
    finally:
        w.close()
