"""The saga's idempotency records are bounded, and a restart still moves money once.

A restarted server with in-memory read models replays the whole log into the saga. The saga
used to re-send every step it ever took and rely on the bus answering each from its record,
so the records could never be trimmed. Now the bus's records are bounded (time and count),
and the saga sends nothing for events it had handled before the restart (``replay_until``,
set from its saved checkpoint): their effects are in the log.
"""

from __future__ import annotations

from pathlib import Path

from cqrs_lab.core import ManualClock
from cqrs_lab.domains import bank
from cqrs_lab.http.config import BuiltEngine, ServerConfig, build_engine


def _settle(built: BuiltEngine) -> None:
    engine = built.engine
    with built.store.batch():
        engine.pump()
        built.checkpoints.save(engine.positions(), engine.dead_letters.list())


def _balances(built: BuiltEngine) -> dict[str, int]:
    return {a: built.engine.ask(bank.GetBalance(a)).value for a in ("a", "b")}


def test_a_restart_after_the_saga_records_expired_moves_money_once(tmp_path: Path) -> None:
    config = ServerConfig(store=f"sqlite:{tmp_path / 'lab.db'}", idempotency_max_keys=3)
    first = build_engine(config)
    first.engine.dispatch(bank.OpenAccount("a", "ann", 100))
    first.engine.dispatch(bank.OpenAccount("b", "bob", 0))
    for i in range(5):
        first.engine.dispatch(bank.RequestTransfer(f"t{i}", "a", "b", 10))
        _settle(first)
    assert _balances(first) == {"a": 50, "b": 50}
    kept = first.store.query("SELECT count(*) FROM idempotency")[0][0]
    assert kept <= 4  # 5 transfers took 15 saga steps; only the newest few are remembered
    head = first.store.head_position
    first.store.close()

    again = build_engine(config)
    saga = again.engine.projection("transfer-saga")
    assert saga.replay_until == head  # type: ignore[attr-defined]
    _settle(again)
    assert again.store.head_position == head  # nothing sent again
    assert _balances(again) == {"a": 50, "b": 50}
    again.engine.dispatch(bank.RequestTransfer("t9", "a", "b", 10))  # new work still flows
    _settle(again)
    assert _balances(again) == {"a": 40, "b": 60}
    again.store.close()


def test_the_bus_records_behind_a_saga_are_bounded_in_memory() -> None:
    from cqrs_lab.core import Engine, InMemoryIdempotencyStore

    clock = ManualClock()
    engine = Engine(clock=clock)
    bank.install(engine)
    engine.bus.idempotency = InMemoryIdempotencyStore(clock, ttl=60, max_keys=1_000_000)
    engine.dispatch(bank.OpenAccount("a", "ann", 1_000))
    engine.dispatch(bank.OpenAccount("b", "bob", 0))
    for i in range(20):
        engine.dispatch(bank.RequestTransfer(f"t{i}", "a", "b", 1))
        engine.run_until_idle()
        clock.advance(10)
    assert len(engine.bus.idempotency) <= 3 * 7  # the last minute of steps, not all 60
    assert engine.ask(bank.GetBalance("b")).value == 20
