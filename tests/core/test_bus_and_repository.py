from __future__ import annotations

import pytest

from cqrs_lab.core import Engine, ManualClock, Repository
from cqrs_lab.domains import bank
from cqrs_lab.errors import (
    CommandRefused,
    ConcurrencyError,
    CqrsLabError,
    IdempotencyConflict,
    UnknownCommand,
)


@pytest.fixture
def engine() -> Engine:
    e = Engine(clock=ManualClock(), seed=1)
    bank.install(e)
    return e


def test_result_carries_stream_version_and_global_position(engine: Engine) -> None:
    a = engine.dispatch(bank.OpenAccount("a", "ann", 10))
    b = engine.dispatch(bank.OpenAccount("b", "bob", 0))
    c = engine.dispatch(bank.Deposit("a", 5))
    assert (a.stream_id, a.stream_version, a.position) == ("account-a", 1, 1)
    assert (b.stream_version, b.position) == (1, 2)
    assert (c.stream_version, c.position) == (2, 3)
    assert c.events[0].causation_id == c.command_id
    assert c.events[0].correlation_id == c.command_id


def test_unknown_command_names_the_type_and_is_a_key_error(engine: Engine) -> None:
    class Nope(bank.OpenAccount):
        pass

    with pytest.raises(UnknownCommand, match="Nope") as err:
        engine.dispatch(Nope("x"))
    assert isinstance(err.value, KeyError) and "register" in str(err.value)


def test_refused_command_appends_nothing_and_reads_well(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    with pytest.raises(CommandRefused, match="insufficient funds in account a: balance 10"):
        engine.dispatch(bank.Withdraw("a", 11))
    with pytest.raises(CommandRefused, match="does not exist"):
        engine.dispatch(bank.Deposit("zz", 1))
    with pytest.raises(CommandRefused, match="amount must be"):
        engine.dispatch(bank.Deposit("a", -3))
    assert engine.store.head_position == 1
    assert engine.dispatch(bank.Withdraw("a", 10)).stream_version == 2


def test_idempotency_key_returns_the_first_result_and_appends_nothing(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    first = engine.dispatch(bank.Deposit("a", 5), idempotency_key="k1")
    again = engine.dispatch(bank.Deposit("a", 5), idempotency_key="k1")
    assert again.replayed and not first.replayed
    assert (again.position, again.stream_version) == (first.position, first.stream_version)
    assert engine.store.head_position == 2
    with pytest.raises(IdempotencyConflict, match="k1"):
        engine.dispatch(bank.Deposit("a", 6), idempotency_key="k1")
    assert engine.store.head_position == 2


def test_one_key_decided_twice_before_either_commits_appends_once(engine: Engine) -> None:
    """decide() then commit() (the simulation's path): two requests under one key both
    decide before the first commits. The second commit is the first's retry (the same
    command: its answer, nothing appended) or a conflict (another command: nothing)."""
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    engine.dispatch(bank.OpenAccount("b", "bob", 0))
    bus = engine.bus
    first = bus.decide(bank.Deposit("a", 5), idempotency_key="k1")
    retry = bus.decide(bank.Deposit("a", 5), idempotency_key="k1")
    other = bus.decide(bank.Deposit("b", 700), idempotency_key="k1")
    done = first.commit()
    again = retry.commit()
    assert again.replayed and (again.position, again.command_id) == (done.position, done.command_id)
    with pytest.raises(IdempotencyConflict, match="first used for Deposit"):
        other.commit()
    assert engine.store.head_position == 3
    assert engine.dispatch(bank.Deposit("a", 5), idempotency_key="k1").replayed
    engine.run_until_idle()
    assert engine.ask(bank.GetBalance("a")).value == 5
    assert engine.ask(bank.GetBalance("b")).value == 0


def test_idempotency_remembers_a_refusal(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 1))
    for _ in range(2):
        with pytest.raises(CommandRefused, match="insufficient"):
            engine.dispatch(bank.Withdraw("a", 5), idempotency_key="w")
    engine.dispatch(bank.Deposit("a", 10))
    with pytest.raises(CommandRefused):  # the same key keeps its first answer
        engine.dispatch(bank.Withdraw("a", 5), idempotency_key="w")


def test_idempotency_records_expire_after_their_ttl() -> None:
    from cqrs_lab.core import InMemoryIdempotencyStore

    clock = ManualClock()
    e = Engine(clock=clock)
    bank.install(e)
    e.bus.idempotency = InMemoryIdempotencyStore(clock, ttl=60)
    e.dispatch(bank.OpenAccount("a", "ann", 0))
    e.dispatch(bank.Deposit("a", 1), idempotency_key="k")
    clock.advance(61)
    assert not e.dispatch(bank.Deposit("a", 1), idempotency_key="k").replayed
    assert e.store.stream_version("account-a") == 3


def test_cache_stays_correct_when_another_writer_appended(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    engine.dispatch(bank.Deposit("a", 1))  # the aggregate is cached at version 2
    other = Repository(engine.store)  # a second writer with its own cache
    acc = other.load(bank.Account, "account-a")
    acc.deposit(100, None)
    envs = engine.store.append(acc.id, acc.pending, acc.version)
    other.saved(acc, envs[-1].stream_version)
    # the first writer must see the balance 111, not its stale cached 11
    with pytest.raises(CommandRefused, match="balance 111"):
        engine.dispatch(bank.Withdraw("a", 112))
    assert engine.dispatch(bank.Withdraw("a", 111)).stream_version == 4


def test_two_decisions_on_one_stream_conflict(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    d1 = engine.bus.decide(bank.Withdraw("a", 10))
    d2 = engine.bus.decide(bank.Withdraw("a", 10))
    d1.commit()
    with pytest.raises(ConcurrencyError) as err:
        d2.commit()
    assert err.value.expected == 1 and err.value.actual == 2 and "account-a" in str(err.value)
    # the loser retries and is refused on the fresh state: no lost update, no overdraft
    with pytest.raises(CommandRefused, match="balance 0"):
        engine.dispatch(bank.Withdraw("a", 10))


def test_snapshots_every_n_events_and_load_from_the_latest(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    for _ in range(249):
        engine.dispatch(bank.Deposit("a", 1))
    snap = engine.store.load_snapshot("account-a")
    assert snap is not None and snap.version == 200 and snap.state["balance"] == 199
    fresh = Repository(engine.store, cache_size=0).load(bank.Account, "account-a")
    assert (fresh.version, fresh.balance) == (250, 249)


def test_one_command_may_change_only_one_aggregate(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    engine.dispatch(bank.OpenAccount("b", "bob", 10))

    def both(cmd: object, uow: object) -> None:
        uow.load(bank.Account, "account-a").deposit(1, None)  # type: ignore[attr-defined]
        uow.load(bank.Account, "account-b").deposit(1, None)  # type: ignore[attr-defined]

    class Both(bank.CloseAccount):
        pass

    engine.register(Both, both)
    with pytest.raises(CqrsLabError, match="with a saga"):
        engine.dispatch(Both("a"))
    assert engine.store.head_position == 2
    # the failed handler's changes did not leak into the cache
    with pytest.raises(CommandRefused, match="balance 10"):
        engine.dispatch(bank.Withdraw("a", 11))


def test_command_metrics_count_outcomes(engine: Engine) -> None:
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    with pytest.raises(CommandRefused):
        engine.dispatch(bank.Withdraw("a", 1))
    snap = engine.metrics.snapshot()
    assert snap["commands_total{outcome=accepted}"] == 1
    assert snap["commands_total{outcome=refused}"] == 1
    assert snap["command_latency_seconds.count"] == 2
