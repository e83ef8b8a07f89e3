"""Read-model snapshots: a restart restores each view and replays only what follows it.

The SQLite server snapshots every read model with its tracking record, in the transaction of
the checkpoints (every ``snapshot_every`` positions). A restart restores the latest snapshot
and replays the events after it; the result is the state a replay from position 0 gives.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from cqrs_lab.domains import bank
from cqrs_lab.http.config import BuiltEngine, ServerConfig, build_engine


def _settle(built: BuiltEngine) -> None:
    engine = built.engine
    with built.store.batch():
        engine.pump()
        built.checkpoints.save(engine.positions(), engine.dead_letters.list())


def _work(built: BuiltEngine, start: int, count: int) -> None:
    engine = built.engine
    for i in range(start, start + count):
        engine.dispatch(bank.Deposit("a", 3))
        engine.dispatch(bank.RequestTransfer(f"t{i}", "a", "b" if i % 4 else "c", 2))
        _settle(built)


def _state(built: BuiltEngine) -> dict[str, object]:
    return {name: built.engine.projection(name).state() for name in built.engine.positions()}


def _first(config: ServerConfig) -> BuiltEngine:
    built = build_engine(config)
    for account, owner in (("a", "ann"), ("b", "bob"), ("c", "cy")):
        built.engine.dispatch(bank.OpenAccount(account, owner, 100))
    built.engine.dispatch(bank.CloseAccount("c"))  # transfers to c are refunded
    _work(built, 0, 30)
    return built


def test_a_restart_restores_the_snapshots_and_replays_only_the_rest(tmp_path: Path) -> None:
    config = ServerConfig(store=f"sqlite:{tmp_path / 'lab.db'}", snapshot_every=40)
    first = _first(config)
    head, state = first.store.head_position, _state(first)
    first.store.close()

    again = build_engine(config)
    assert set(again.restored) == {"balances", "statements", "transfer-saga"}
    assert all(head - 40 < p <= head for p in again.restored.values())  # the latest snapshot
    for name, position in again.restored.items():
        assert again.engine.subscription(name).position == position  # not from 0
    _settle(again)
    assert again.store.head_position == head  # the saga re-sent nothing
    assert _state(again) == state  # the same as before the restart

    _work(again, 30, 5)  # work goes on from the restored state
    total = again.engine.ask(bank.GetTotals()).value["total"]
    assert total == 300 + 35 * 3  # money conserved across the restart
    snapshots_state = _state(again)
    again.store.close()

    # a replay from position 0 of the same log gives the same read models
    with contextlib.closing(sqlite3.connect(tmp_path / "lab.db")) as db, db:
        db.execute("DELETE FROM view_snapshots")
    fresh = build_engine(config)
    assert fresh.restored == {}
    _settle(fresh)
    assert _state(fresh) == snapshots_state
    fresh.store.close()


def test_a_snapshot_of_another_version_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ServerConfig(store=f"sqlite:{tmp_path / 'lab.db'}", snapshot_every=40)
    first = _first(config)
    state = _state(first)
    first.store.close()
    monkeypatch.setattr(bank.Statements, "snapshot_version", 2)  # its rows changed meaning
    again = build_engine(config)
    assert "statements" not in again.restored and "balances" in again.restored
    assert again.engine.subscription("statements").position == 0  # replays from 0
    _settle(again)
    assert _state(again) == state
    again.store.close()


def test_snapshot_every_is_checked() -> None:
    from cqrs_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="snapshot_every=0"):
        ServerConfig(store="sqlite:x.db", snapshot_every=0)


def test_a_restart_in_the_middle_of_a_saga_rebuild_moves_no_money_twice(tmp_path: Path) -> None:
    config = ServerConfig(
        store=f"sqlite:{tmp_path / 'lab.db'}", snapshot_every=40, idempotency_max_keys=2
    )
    first = _first(config)
    head, state = first.store.head_position, _state(first)
    sub = first.engine.subscription("transfer-saga")
    sub.rebuild()  # in place: from 0, sending nothing up to where it had got
    with first.store.batch():
        sub.step(50)  # a part of the replay, then the process dies
        first.checkpoints.save(first.engine.positions(), [])
    assert 0 < sub.position < head
    rows = first.store.query("SELECT name FROM view_snapshots")
    assert ("transfer-saga",) not in rows  # the pre-rebuild snapshot is gone
    first.store.close()

    again = build_engine(config)
    assert "transfer-saga" not in again.restored
    assert again.engine.projection("transfer-saga").replay_until == head  # type: ignore[attr-defined]
    _settle(again)
    assert again.store.head_position == head  # nothing sent again
    assert _state(again) == state
    again.store.close()
