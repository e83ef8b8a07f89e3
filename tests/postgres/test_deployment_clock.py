"""Every process of a PostgreSQL deployment reads one clock: the lag a worker measures for
another worker's event is its real age, whenever each of them started."""

from __future__ import annotations

import time

from cqrs_lab.core import load_domain
from cqrs_lab.stores.postgres_serve import build_postgres_engine


def test_workers_started_apart_agree_on_the_time(pg_dsn: str) -> None:
    bank = load_domain("cqrs_lab.domains.bank")
    options = {"delivery": "effectively-once", "seed": 1, "ttl": 3600.0, "max_keys": 1000}
    first = build_postgres_engine(pg_dsn, bank, **options)  # type: ignore[arg-type]
    try:
        first.engine.dispatch(bank.command("OpenAccount")("clock-a", "ann", 5))
        time.sleep(0.3)  # the second worker starts later, the log's last event 0.3 s old
        second = build_postgres_engine(pg_dsn, bank, **options)  # type: ignore[arg-type]
        try:
            sent = first.engine.dispatch(bank.command("Deposit")("clock-a", 1))
            age = second.engine.clock.now() - sent.events[-1].recorded_at
            # before: the second worker's clock began at the log's last time, 0.3 s behind
            assert 0.0 <= age < 0.1, age
            assert abs(second.engine.clock.now() - first.engine.clock.now()) < 0.05
        finally:
            second.store.close()
    finally:
        first.store.close()
