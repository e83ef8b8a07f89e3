"""The bank's transfer saga across mode switches, and slot snapshots for a take-over.

A deployment switches between the saga running inside one server (``serve --store
postgresql://...``: progress in ``checkpoints``) and in ``cqrs-lab project`` workers
(``serve --sagas external``: progress in tracking rows ``project:VIEW/P``). Whatever the
sequence, each step must be sent once and none skipped. Before every switch the bus's
idempotency records are deleted, as the pruner does once they are 24 h old or past the
newest 1,000,000: then only the progress bookkeeping stands between a replay and a second
debit. The engines are driven in this process (no subprocess), as the server's driver does:
each pump step in one transaction with the checkpoints saved.
"""

from __future__ import annotations

import itertools
import time

import psycopg
import pytest

from cqrs_lab.cli import main
from cqrs_lab.core import Envelope, Saga
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.domains import bank
from cqrs_lab.domains.bank.invariants import check_sagas, trace_transfers
from cqrs_lab.http.config import BuiltEngine, ServerConfig, build_engine
from cqrs_lab.stores.postgres_project import ProjectWorker, open_worker
from cqrs_lab.stores.postgres_sagas import PASSIVE, lock_key

SAGA = "transfer-saga"
PARTITIONS = 4
ACCOUNTS = [f"acc{i}" for i in range(6)]
_names = itertools.count(1)


# -- the two modes, driven here -------------------------------------------------------------
def _server(url: str, sagas: str) -> BuiltEngine:
    return build_engine(ServerConfig(store=url, sagas=sagas))


def _pump(built: BuiltEngine) -> None:
    """Deliver until every subscription is at the head, each round one transaction with the
    checkpoints (as the server's pump does)."""
    engine, store = built.engine, built.store
    subs = list(engine.subscriptions.values())
    for _ in range(500):
        with store.batch():
            moved = sum(s.step() + s.polled for s in subs)
            built.checkpoints.save(engine.positions(), engine.dead_letters.list())
        if not moved and all(s.fetched >= store.head_position and not s.inbox for s in subs):
            return
    raise AssertionError("the server's subscriptions never caught up")


def _worker(url: str, **options: object) -> ProjectWorker:
    return open_worker(url, bank.domain, None, partitions=PARTITIONS, **options)


# a closed worker's backend ends, and frees its advisory locks, on the server's own time: a
# busy machine can need a few tries (bounded at 5 s)
def _take(w: ProjectWorker, parts: list[int]) -> None:
    """Take these slots only (a deployment whose workers progressed unevenly)."""
    deadline = time.monotonic() + 5.0
    for p in parts:
        while not w._try_lock(lock_key(w.schema, SAGA), p):
            assert time.monotonic() < deadline, f"slot {p} stayed locked"
            time.sleep(0.05)
        w._acquire(SAGA, p)


def _take_all(w: ProjectWorker) -> None:
    deadline = time.monotonic() + 5.0
    w.rebalance()
    while len(w.slots) < PARTITIONS:
        assert time.monotonic() < deadline, "the slots stayed locked"
        time.sleep(0.05)
        w.rebalance()


def _drain(w: ProjectWorker) -> None:
    for _ in range(500):
        if w.step() == 0 and all(s.fetched >= w.store.head_position for s in w.slots.values()):
            return
        assert w.failures < 10, "the project worker's batch keeps rolling back"
    raise AssertionError("the project worker never caught up")


def _request(built: BuiltEngine, ids: list[str]) -> None:
    with built.store.batch():
        for i, tid in enumerate(ids):
            source, target = ACCOUNTS[i % 6], ACCOUNTS[(i + 1) % 6]
            built.engine.dispatch(bank.RequestTransfer(tid, source, target, 10))
        # refused by the domain: the saga's step is FailTransfer
        built.engine.dispatch(bank.RequestTransfer(f"{ids[0]}-big", "acc0", "acc1", 10**9))


def _prune_idempotency(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM idempotency")


def _partitions(built: BuiltEngine) -> dict[str, int]:
    """transfer id -> the partition a project worker would run it in."""
    return {
        e.payload.transfer_id: partition_of(e.correlation_id or e.stream_id, PARTITIONS)
        for e in built.store.read_all(0)
        if isinstance(e.payload, bank.TransferRequested)
    }


def _check(built: BuiltEngine, must_end: set[str]) -> None:
    """No transfer moved money twice or ended twice; those in ``must_end`` ended with exactly
    their money moved; the others moved nothing yet."""
    for t in trace_transfers(built.engine).values():
        got = (len(t.debits), len(t.credits), len(t.refunds), len(t.outcomes))
        if t.transfer_id in must_end:
            want = t.expected()
            assert want is not None and len(t.outcomes) == 1, (t.transfer_id, got, "stuck")
            assert (*want, 1) == got and t.net == 0, (t.transfer_id, got, "moved twice")
        else:
            assert got == (0, 0, 0, 0), (t.transfer_id, got, "moved without its worker")


def _saga_checkpoint(url: str) -> int | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT position FROM checkpoints WHERE name = %s", (SAGA,)).fetchone()
    return None if row is None else int(row[0])


def test_internal_external_internal_external(db_url: str) -> None:
    url = db_url
    ended: set[str] = set()
    # 1. internal: the one server runs the saga
    built = _server(url, "internal")
    with built.store.batch():
        for a in ACCOUNTS:
            built.engine.dispatch(bank.OpenAccount(a, a, 10_000))
    _request(built, [f"i1-{n}" for n in range(8)])
    _pump(built)
    ended |= set(_partitions(built))
    _check(built, ended)
    served = _saga_checkpoint(url)
    assert served is not None and served > 0
    built.store.close()
    _prune_idempotency(url)

    # 2. external, the project workers running half the partitions: the slots start at the
    # server's checkpoint, so nothing of phase 1 is sent again
    built = _server(url, "external")
    _request(built, [f"e2-{n}" for n in range(12)])
    _pump(built)  # the passive saga follows the log
    w = _worker(url)
    try:
        _take(w, [0, 1])
        _drain(w)
    finally:
        w.close()
    _pump(built)
    parts = _partitions(built)
    half = {t for t, p in parts.items() if t.startswith("e2") and p in (0, 1)}
    left = {t for t in parts if t.startswith("e2")} - half
    assert half and left  # transfers in both halves (the ids are deterministic)
    ended |= half
    _check(built, ended)
    assert _saga_checkpoint(url) == served  # a passive server never moves it
    built.store.close()
    _prune_idempotency(url)

    # 3. internal again: each event is replayed without sending up to the higher of the
    # checkpoint and its partition's watermark: the unhandled half is sent now, once
    built = _server(url, "internal")
    _request(built, [f"i3-{n}" for n in range(8)])
    _pump(built)
    ended = set(_partitions(built))
    _check(built, ended)
    assert check_sagas(built.engine).ok
    built.store.close()
    _prune_idempotency(url)

    # 4. external, every partition: slots behind the server's checkpoint start at it
    built = _server(url, "external")
    _request(built, [f"e4-{n}" for n in range(8)])
    w = _worker(url)
    try:
        _take_all(w)
        _drain(w)
    finally:
        w.close()
    _pump(built)
    _check(built, set(_partitions(built)))
    assert check_sagas(built.engine).ok
    built.store.close()


def _reference_state(w: ProjectWorker) -> dict[str, dict[object, object]]:
    """The saga's state from the whole log, replayed from 0 (sending nothing)."""
    saga = bank.domain.view(SAGA).factory()
    assert isinstance(saga, Saga)
    saga.replay_until = PASSIVE
    for env in w.store.read_all(0):
        handler = saga.handlers.get(type(env.payload))
        if handler is not None:
            handler(env.payload, env)
    return saga.state()


def test_a_slot_taken_over_starts_from_its_snapshot(db_url: str) -> None:
    url = db_url
    a = _worker(url, snapshot_every=10)
    b: ProjectWorker | None = None
    try:
        a.rebalance()
        for acc in ACCOUNTS:
            a.engine.dispatch(bank.OpenAccount(acc, acc, 10_000))
        for n in range(6):
            a.engine.dispatch(bank.RequestTransfer(f"t{n}", ACCOUNTS[n], ACCOUNTS[n - 1], 10))
        _drain(a)
        assert a.snapshots.saved > 0
        for n in range(6, 12):  # in flight when a goes: a handles some steps, not all
            source, target = ACCOUNTS[n % 6], ACCOUNTS[(n + 1) % 6]
            a.engine.dispatch(bank.RequestTransfer(f"t{n}", source, target, 10))
        a.step()
        taken = {k: (s.snapshot_at, s.progress.watermark) for k, s in a.slots.items()}
        a.close()
        _prune_idempotency(url)  # only the bookkeeping can stop a second send now

        b = _worker(url, snapshot_every=10)
        first = max(taken, key=lambda k: taken[k][0])  # the slot with the latest snapshot
        at, watermark = taken[first]
        assert 0 < at <= watermark < b.store.head_position  # events after it still to handle
        reads: list[int] = []
        read_all = b.store.read_all

        def counting(after: int = 0, limit: int | None = None) -> list[Envelope]:
            reads.append(after)
            return read_all(after, limit)

        b.store.read_all = counting  # type: ignore[method-assign]
        _take(b, [first[1]])  # alone on it: restored at its snapshot, reads from there
        slot = b.slots[first]
        assert (slot.fetched, slot.snapshot_at, slot.progress.watermark) == (at, at, watermark)
        b.step()
        assert reads == [at]  # not from 0
        b.store.read_all = read_all  # type: ignore[method-assign]
        _take_all(b)  # and the other slots
        _drain(b)
        traces = trace_transfers(b.engine)
        assert len(traces) == 12
        for t in traces.values():  # each ended once, its money moved once
            assert t.outcomes == ["completed"] and (len(t.debits), len(t.credits)) == (1, 1)
        reference = _reference_state(b)["transfers"]
        for slot in b.slots.values():  # each slot's state: its partition's share of the log
            mine = {
                tid: row for tid, row in reference.items()
                if partition_of(row["correlation_id"], PARTITIONS) == slot.partition
            }  # fmt: skip
            assert slot.saga.state()["transfers"] == mine
    finally:
        if not a.locks.closed:
            a.close()
        if b is not None:
            b.close()


def test_a_snapshot_of_another_kind_is_ignored(db_url: str) -> None:
    url = db_url
    a = _worker(url, snapshot_every=1)
    try:
        a.rebalance()
        for acc in ACCOUNTS[:2]:
            a.engine.dispatch(bank.OpenAccount(acc, acc, 100))
        a.engine.dispatch(bank.RequestTransfer("t1", "acc0", "acc1", 10))
        _drain(a)
        assert a.store.query("SELECT count(*) FROM project_snapshots")[0][0] > 0
        a.store.execute("UPDATE project_snapshots SET kind = 'another.Saga:v1:p4'")
    finally:
        a.close()
    b = _worker(url)
    try:
        _take_all(b)
        assert all(s.fetched == 0 for s in b.slots.values())  # replays from the start
        _drain(b)
        assert b.slots and all(s.applied == 0 for s in b.slots.values())  # and sends nothing
    finally:
        b.close()


def test_project_refuses_a_snapshot_interval_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["project", "--store", "postgresql://127.0.0.1:1/x", "--snapshot-every", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--snapshot-every 0" in err and ">= 1" in err and "\n" not in err


@pytest.mark.parametrize("size", ["0", "-5"])
def test_project_refuses_a_batch_size_below_one(
    size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 was taken: the worker read nothing and polled the database for ever (66% of a
    core), its transfers stuck."""
    assert main(["project", "--store", "postgresql://127.0.0.1:1/x", "--batch-size", size]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--batch-size {size}" in err and "1 to 100000" in err and "\n" not in err


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["project"]])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_database_not_there_at_start_is_exit_75_however_many_processes(
    command: list[str], workers: str
) -> None:
    """Refused connections at start-up exited 2 (serve, project), 3 (serve --workers 2) or
    1 (project --workers 2): a supervisor that restarts on 75 stopped restarting a
    deployment whose database was still starting up."""
    import subprocess
    import sys

    url = "postgresql://postgres@127.0.0.1:1/x"  # nothing listens
    cmd = [sys.executable, "-m", "cqrs_lab.cli", *command, "--store", url, "--workers", workers]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 75, done.stderr[-2000:]
    assert "cannot be reached" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ('connection to server at "h", port 1 failed: Connection refused', True),
        ("connection failed: timeout expired", True),
        ("failed: FATAL:  the database system is starting up", True),
        ("failed: FATAL:  sorry, too many clients already", True),
        ('failed: FATAL:  database "x" does not exist', False),
        ('failed: FATAL:  password authentication failed for user "lab"', False),
        ("failed: fe_sendauth: no password supplied", False),
        ("failed: server does not support SSL, but SSL was required", False),
        ('could not translate host name "dbb" to address: Name or service not known', False),
    ],
)
def test_what_a_failed_connection_says_decides_75_or_2(message: str, transient: bool) -> None:
    """A password missing or SSL required counted as the database's state (exit 75, retried
    for ever) because no FATAL: was in the message; now only what says "not now" does."""
    from cqrs_lab.stores.postgres_schema import _transient

    assert _transient(psycopg.OperationalError(message)) is transient
