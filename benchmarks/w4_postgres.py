"""W4 on PostgreSQL: the ledger with many writers, catch-up, and the gap-safe reader's cost.

One throwaway PostgreSQL cluster (``cqrs_lab.stores.pg_cluster``, 127.0.0.1, PostgreSQL's
default durability: ``fsync`` and ``synchronous_commit`` on), a fresh database for every run,
the lab and its peer (``eventsourcing`` 9.5.6 on ``eventsourcing.postgres``) on the same
server, alternating, medians of REPEATS runs. Figures, each beside its peer:

1. write path, commands/s, with 1 and 32 concurrent writers: a prefix of W1's commands split
   by account (``idx % W``), each writer a thread with its own connection and its accounts
   cached (loaded before the clock starts); one transaction per command on both sides. The
   accepted and refused counts and the log's length are checked against a fold of the prefix.
   Then group commit with 32 writers, each committing 16 of its commands per transaction (the
   lab's ``group_commit()``, as its server's writer does: the transaction's appends sent in
   one round trip; the peer's ``save()`` of the aggregates those commands changed, its
   one-transaction save). The whole W1 run would take minutes per
   side at a few milliseconds a commit, hence the prefix (``W4_PG_COMMANDS``, default
   ``"1:300:1,32:4000:1,32:16000:16"``, writers:commands:commands per transaction: with
   32 writers, 2,000 and 4,000 commands were runs of 0.2-2 s whose ratio swung from 1.5x to
   3.2x between repeats on the shared cores; the write figures take about a minute and a
   half).
2. catch-up, events/s: the whole W1 log (95,291 events; written untimed, each account's events
   in one append) read in order and folded into {account: balance}, checked against the
   independent fold: the lab's safe reader through its catch-up iterator (``read_all_pages``:
   decoded events, the next page's query running on the server while a page is folded)
   against ``select_notifications`` and the peer's event mapper; pages of 1,000 on both
   sides (queries of 1,000 rows: the iterator does not read ahead more than one page); then
   both again in the collector setting a ``cqrs-lab project`` worker runs in (young-generation
   collections every 100,000 allocations, not 700: they were a fifth of the lab's catch-up),
   both sides alike. Then
   the same into a PostgreSQL table, effectively-once: the table's changes and the tracking
   record in one transaction, each side reading on one connection and writing on another.
   The lab's ``catch_up_tables`` commits every 100 ms (its default, Kafka Streams'
   exactly-once commit interval; the figure with the target); the peer every page of 1,000
   (its ``PostgresTrackingRecorder``, the tracking half of its ``ProcessRecorder``, which
   itself commits per event: one page per transaction is the most we give it). A second
   figure has the lab commit every page too, the same cadence as the peer.
3. the safe reader's lag cost: 8 writer threads write while a safe and a naive follower (one
   connection each, polling every 2 ms when idle) tail the log; lag from each event's append
   to its reading, p50/p99 (s), and the events each follower never read (skipped).
4. W3 on this store, ``cqrs-lab serve --workers 2`` against one worker, the same wrk runs
   (see :mod:`benchmarks.pg_http`; ``W4_PG_HTTP_ROUNDS``, default 1, alternating rounds).

Writers are threads, on both sides: they mostly wait on the server (psycopg releases the GIL),
and the commit is what the figure is about. Needs the PostgreSQL server binaries (Debian
``postgresql``); without them, one JSON line says so.
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from benchmarks import pg_http
from benchmarks import pg_ledger as lab
from benchmarks.peers import es_postgres as es
from benchmarks.workload_w1 import ACCOUNTS, EXPECTED, commands, expected_balances
from cqrs_lab.sim.cli import fewer_collections
from cqrs_lab.stores.pg_cluster import Cluster, ClusterError, start_cluster

REPEATS = 3
# writers:commands:group (commands per transaction)
_RUNS = os.environ.get("W4_PG_COMMANDS", "1:300:1,32:4000:1,32:16000:16")
RUNS = [(int(w), int(n), int(g)) for w, n, g in (p.split(":") for p in _RUNS.split(","))]
LAG_WRITERS, LAG_COMMANDS = 8, 3000
HTTP_ROUNDS = int(os.environ.get("W4_PG_HTTP_ROUNDS", "1"))
PEER = "eventsourcing 9.5.6 postgres (fastest cache settings)"
LAB = "cqrs_lab PostgresEventStore"


class Databases:
    """A fresh database on the cluster for every run."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.count = cluster, 0

    def fresh(self) -> str:
        self.count += 1
        name = f"w4_{self.count}"
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def table(self, db: str, table: str) -> dict[Any, int]:
        """A {account: balance} table's rows."""
        with psycopg.connect(self.cluster.dsn(db)) as conn:
            return {a: int(b) for a, b in conn.execute(f"SELECT * FROM {table}").fetchall()}

    def count_rows(self, db: str, table: str) -> int:
        with psycopg.connect(self.cluster.dsn(db)) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def expected(cmds: list[lab.Command]) -> tuple[int, int]:
    """(accepted, refused) of the commands, by the independent fold."""
    balances = dict.fromkeys(range(ACCOUNTS), 1000)
    accepted = 0
    for idx, kind, amount in cmds:
        if kind == "deposit":
            balances[idx] += amount
            accepted += 1
        elif amount <= balances[idx]:
            balances[idx] -= amount
            accepted += 1
    return accepted, len(cmds) - accepted


def lab_write(dbs: Databases, cmds: list[lab.Command], writers: int, group: int) -> float:
    db = dbs.fresh()
    lab.open_accounts(dbs.cluster.dsn(db))
    seconds, accepted, refused = lab.write(dbs.cluster.dsn(db), cmds, writers, group)
    events = dbs.count_rows(db, "events")
    if (accepted, refused) != expected(cmds) or events != ACCOUNTS + accepted:
        raise RuntimeError(f"lab W4 write wrong: {accepted} accepted, {refused} refused, {events}")
    return len(cmds) / seconds


def es_write(dbs: Databases, cmds: list[lab.Command], writers: int, group: int) -> float:
    settings = es.env(dbs.cluster.port, dbs.fresh())
    ids = es.open_accounts(settings)
    ws = [es.Writer(settings, ids, part, group) for part in lab.split(cmds, writers)]
    try:
        seconds = lab.run_threads([w.run for w in ws])
    finally:
        for w in ws:
            w.close()
    accepted, refused = sum(w.accepted for w in ws), sum(w.refused for w in ws)
    events = dbs.count_rows(settings["POSTGRES_DBNAME"], "bank_events")  # named after the app
    if (accepted, refused) != expected(cmds) or events != ACCOUNTS + accepted:
        raise RuntimeError(f"peer W4 write wrong: {accepted} accepted, {refused} refused")
    return len(cmds) / seconds


def alternate(ours: Callable[[], float], theirs: Callable[[], float]) -> tuple[float, float]:
    """Medians of REPEATS runs of each, alternating (the machine is shared)."""
    a, b = [], []
    for _ in range(REPEATS):
        a.append(ours())
        b.append(theirs())
    return statistics.median(a), statistics.median(b)


def figure(metric: str, impl: str, value: float | None, unit: str, **extra: Any) -> dict[str, Any]:
    return {"workload": "W4-postgres", "implementation": impl, "metric": metric,
            "value": value, "unit": unit, "repeats": REPEATS,
            "load_avg_1m": round(os.getloadavg()[0], 2), **extra}  # fmt: skip


def writes(dbs: Databases, cmds: list[lab.Command]) -> Iterator[dict[str, Any]]:
    for writers, n, group in RUNS:
        part = cmds[:n]
        ours, theirs = alternate(
            functools.partial(lab_write, dbs, part, writers, group),
            functools.partial(es_write, dbs, part, writers, group),
        )
        extra = {"writers": writers, "commands": n, "commands_per_transaction": group}
        yield figure("write commands/s", PEER, round(theirs), "commands/s", **extra)
        target = {"target_ratio": 2.0} if writers >= 32 else {}
        yield figure("write commands/s", LAB, round(ours), "commands/s", **extra, peer=PEER,
                     peer_value=round(theirs), ratio=round(ours / theirs, 2), **target)  # fmt: skip


def catch_ups(dbs: Databases, cmds: list[lab.Command]) -> Iterator[dict[str, Any]]:
    truth = expected_balances(cmds)
    ours_db = dbs.fresh()
    lab.open_accounts(dbs.cluster.dsn(ours_db))
    lab.bulk_log(dbs.cluster.dsn(ours_db), cmds)
    settings = es.env(dbs.cluster.port, dbs.fresh())
    ids = es.bulk_log(settings, cmds)
    want_lab = {str(i): b for i, b in truth.items()}
    want_es = {ids[i]: b for i, b in truth.items()}

    def ours() -> float:
        seconds, events, balances = lab.catch_up(dbs.cluster.dsn(ours_db))
        if events != EXPECTED["events"] or balances != want_lab:
            raise RuntimeError(f"lab W4 catch-up wrong: {events} events")
        return events / seconds

    def theirs() -> float:
        seconds, events, balances = es.catch_up(settings)
        if events != EXPECTED["events"] or balances != want_es:
            raise RuntimeError(f"peer W4 catch-up wrong: {events} events")
        return events / seconds

    ours_rate, theirs_rate = alternate(ours, theirs)
    extra: dict[str, Any] = {"events": EXPECTED["events"]}
    yield figure("catch-up events/s", PEER, round(theirs_rate), "events/s", **extra)
    yield figure("catch-up events/s", f"{LAB} safe reader", round(ours_rate), "events/s",
                 **extra, peer=PEER, peer_value=round(theirs_rate),
                 ratio=round(ours_rate / theirs_rate, 2), target_ratio=5.0)  # fmt: skip
    # both again with the collector as a `cqrs-lab project` worker (and `simulate`) runs it,
    # both sides alike
    with fewer_collections():
        extra["gc_thresholds"] = list(gc.get_threshold())
        ours_rate, theirs_rate = alternate(ours, theirs)
    metric = "catch-up events/s, collector as in a cqrs-lab project worker"
    yield figure(metric, PEER, round(theirs_rate), "events/s", **extra)
    yield figure(metric, f"{LAB} safe reader", round(ours_rate), "events/s",
                 **extra, peer=PEER, peer_value=round(theirs_rate),
                 ratio=round(ours_rate / theirs_rate, 2), target_ratio=5.0)  # fmt: skip
    extra.pop("gc_thresholds")
    tables = (f"balances_{k}" for k in range(3 * REPEATS))

    def ours_into(commit_every: float) -> float:
        table = next(tables)
        dsn = dbs.cluster.dsn(ours_db)
        seconds, events, _ = lab.catch_up_into_table(dsn, table, commit_every=commit_every)
        if events != EXPECTED["events"] or dbs.table(ours_db, table) != want_lab:
            raise RuntimeError(f"lab W4 catch-up into {table} wrong: {events} events")
        return events / seconds

    def theirs_into() -> float:
        table = next(tables)
        seconds, events = es.catch_up_into_table(settings, table)
        if events != EXPECTED["events"] or dbs.table(settings["POSTGRES_DBNAME"], table) != want_es:
            raise RuntimeError(f"peer W4 catch-up into {table} wrong: {events} events")
        return events / seconds

    timed, paged, peer = [], [], []
    for _ in range(REPEATS):  # alternating, as alternate() does
        timed.append(ours_into(0.1))
        peer.append(theirs_into())
        paged.append(ours_into(0.0))
    ours_rate, paged_rate, theirs_rate = map(statistics.median, (timed, paged, peer))
    metric = "catch-up into PostgreSQL tables, effectively-once, events/s"
    them = f"{PEER} (tracking recorder, a transaction per page)"
    yield figure(metric, them, round(theirs_rate), "events/s", **extra)
    yield figure(metric, f"{LAB} safe reader (catch_up_tables, a transaction per 100 ms)",
                 round(ours_rate), "events/s", **extra, peer=them, peer_value=round(theirs_rate),
                 ratio=round(ours_rate / theirs_rate, 2), target_ratio=5.0)  # fmt: skip
    metric = "catch-up into PostgreSQL tables, a transaction per page on both sides, events/s"
    yield figure(metric, f"{LAB} safe reader (catch_up_tables, commit_every=0)",
                 round(paged_rate), "events/s", **extra, peer=them, peer_value=round(theirs_rate),
                 ratio=round(paged_rate / theirs_rate, 2))  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lags(dbs: Databases, cmds: list[lab.Command]) -> Iterator[dict[str, Any]]:
    part = cmds[:LAG_COMMANDS]
    runs: dict[str, list[tuple[float, float, int]]] = {"safe": [], "naive": []}
    for _ in range(REPEATS):
        db = dbs.fresh()
        lab.open_accounts(dbs.cluster.dsn(db))
        followers, _, committed = lab.lag(dbs.cluster.dsn(db), part, LAG_WRITERS)
        if len(committed) != expected(part)[0]:
            raise RuntimeError(f"lag run wrote {len(committed)} events")
        for f in followers:
            skipped = len(set(committed) - set(f.seen))
            runs[f.reader].append((_pct(f.lags, 0.5), _pct(f.lags, 0.99), skipped))
    med = {
        reader: [statistics.median(r[k] for r in rs) for k in range(3)]
        for reader, rs in runs.items()
    }
    extra = {"writers": LAG_WRITERS, "commands": LAG_COMMANDS}
    for k, metric in enumerate(("projection lag p50", "projection lag p99")):
        naive, safe = med["naive"][k], med["safe"][k]
        yield figure(metric, f"{LAB} naive reader", round(naive, 4), "s", **extra,
                     skipped_events=[r[2] for r in runs["naive"]])  # fmt: skip
        yield figure(metric, f"{LAB} safe reader", round(safe, 4), "s", **extra,
                     skipped_events=[r[2] for r in runs["safe"]], peer=f"{LAB} naive reader",
                     peer_value=round(naive, 4), ratio=round(safe / naive, 2))  # fmt: skip


def multi_process(dbs: Databases) -> Iterator[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "cqrs_lab.cli", "serve", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    missing = (
        "cqrs-lab serve has no --workers option yet" if "--workers" not in done.stdout
        else "wrk is not installed (apt-get install -y wrk)" if shutil.which("wrk") is None
        else None
    )  # fmt: skip
    if missing:
        yield figure("W3 req/s, --workers 2 against 1", LAB, None, "req/s", skipped=missing)
        return
    db = dbs.fresh()
    lab.open_accounts(dbs.cluster.dsn(db))
    url = f"postgresql://postgres@127.0.0.1:{dbs.cluster.port}/{db}"
    runs: dict[int, list[dict[str, dict[str, float]]]] = {1: [], 2: []}
    for r in range(HTTP_ROUNDS):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            runs[workers].append(pg_http.measure(url, workers))
    for f in pg_http.figures(runs):
        yield figure(f.pop("metric"), f.pop("implementation"), f.pop("value"), f.pop("unit"), **f)


def run() -> Iterator[dict[str, Any]]:
    try:
        cluster = start_cluster(durable=True, max_connections=120)
    except ClusterError as exc:
        yield {"workload": "W4-postgres", "skipped": str(exc)}
        return
    try:
        dbs = Databases(cluster)
        cmds = commands()
        yield from writes(dbs, cmds)
        yield from catch_ups(dbs, cmds)
        yield from lags(dbs, cmds)
        yield from multi_process(dbs)
    finally:
        cluster.stop()
