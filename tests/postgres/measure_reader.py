"""Measure the gap-safe reader's cost on a throwaway cluster (not a test; run by hand).

    .venv/bin/python -m tests.postgres.measure_reader [EVENTS]

Prints, for one run of 8 writer processes (the proof test's workload) followed by a safe
and a naive projection worker side by side: the append throughput of the writers (events/s,
pauses included), and the lag from each event's append to its application (p50/p99, ms) per
reader. Then the write path alone, one connection, appends of 4 events (best of 5 rounds):
the store's append (stream lock and transaction id, positions, a savepoint for the rows)
against a plain insert taking its position from the sequence default (what a store without
the horizon would do).
"""

from __future__ import annotations

import statistics
import sys
import time

import psycopg

from cqrs_lab.core import ANY, ManualClock, RawEvent, SequentialIds
from cqrs_lab.stores.pg_demo import close, run
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.postgres.cluster import start_cluster


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _write_path(dsn: str, appends: int = 400, rounds: int = 5) -> tuple[float, float]:
    """Seconds per append (the best of ``rounds`` alternating rounds, as the machine is
    shared): the store's append, and a plain insert taking its position from the sequence
    default, each with 4 events on one of 50 streams."""
    store = PostgresEventStore(dsn, ManualClock(), SequentialIds(), schema="w1", pool_size=1)
    events = [RawEvent("Ticked", 1, {"writer": 0, "n": i}) for i in range(4)]
    conn = psycopg.connect(dsn)
    conn.execute("CREATE SCHEMA w2")
    conn.execute(
        "CREATE TABLE w2.events (position bigserial PRIMARY KEY, stream_id text, "
        "stream_version bigint, data text, UNIQUE (stream_id, stream_version))"
    )
    conn.commit()
    ours, plain = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(appends):
            store.append(f"s{i % 50}", events, ANY)
        ours.append((time.perf_counter() - t) / appends)
        t = time.perf_counter()
        for i in range(appends):
            sid = f"s{i % 50}"
            row = conn.execute(
                "SELECT coalesce(max(stream_version), 0) FROM w2.events WHERE stream_id = %s",
                (sid,),
            ).fetchone()
            v = int(row[0]) if row else 0
            conn.execute(
                "INSERT INTO w2.events (stream_id, stream_version, data) VALUES "
                + ",".join(["(%s,%s,%s)"] * 4),
                [x for k in range(4) for x in (sid, v + k + 1, '{"n": 1}')],
            )
            conn.commit()
        plain.append((time.perf_counter() - t) / appends)
    conn.close()
    store.close()
    return min(ours), min(plain)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    cluster = start_cluster()
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE lab")
        dsn = cluster.dsn("lab")
        result = run(dsn, "m1", writers=8, events=events, readers=("safe", "naive"))
        print(f"8 writers, {events} events: {events / result.seconds:,.0f} events/s "
              f"({result.seconds:.1f} s, pauses included)")  # fmt: skip
        for w in result.workers:
            lags = [x * 1000 for x in w.projection.lags]
            skipped = len(set(result.committed) - set(w.applied()))
            print(f"  {w.reader:5} reader: lag p50 {_pct(lags, 0.5):.1f} ms, "
                  f"p99 {_pct(lags, 0.99):.1f} ms, mean {statistics.fmean(lags):.1f} ms, "
                  f"skipped {skipped}")  # fmt: skip
        close(result)
        ours, plain = _write_path(dsn)
        print(f"write path, 1 connection, 4 events per append: store append "
              f"{ours * 1e3:.2f} ms, plain sequence insert {plain * 1e3:.2f} ms "
              f"({ours / plain:.2f}x)")  # fmt: skip
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
