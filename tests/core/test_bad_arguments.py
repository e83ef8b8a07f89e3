"""Bad arguments to the public library are refused with an error naming them.

A wrong type or a meaningless number (NaN, inf, a bool where a number is meant, a negative
position) raises :class:`ConfigError` (or :class:`DomainError`, a ConfigError, for a domain's
declaration) saying which argument and what is allowed: never a TypeError or AttributeError
from deep inside, and never silent acceptance of a value that breaks determinism or holds a
run for ever. A command naming an id that is not a non-empty string is refused by the bank
as a business rule (:class:`CommandRefused`), before anything is appended. Every value that
was valid stays valid, numpy's numbers included.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from cqrs_lab.core import (
    ANY,
    AtLeastOnce,
    CallableClock,
    Command,
    CrashAt,
    CrashPoint,
    DelayAt,
    Domain,
    DropAt,
    DuplicateAt,
    Engine,
    Event,
    FaultPlan,
    InMemoryEventStore,
    ManualClock,
    Query,
    ReorderAt,
    RetryPolicy,
    SequentialIds,
    View,
    install,
    policy_named,
)
from cqrs_lab.core.partitions import PartitionIndex
from cqrs_lab.domains import bank
from cqrs_lab.errors import CommandRefused, ConfigError, DomainError

NAN, INF = math.nan, math.inf


def refused(call: Callable[[], object], *named: str, error: type[Exception] = ConfigError) -> str:
    """``call`` raises ``error`` whose message names each of ``named``; returns the message."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in named:
        assert word in message, message
    return message


def declared(**parts: Any) -> Domain:
    return Domain("d", "", (), {}, **{"views": (), **parts})


def bank_engine(**install: Any) -> Engine:
    engine = Engine(clock=ManualClock(), seed=1)
    bank.install(engine, **install)
    return engine


# -- 1. the engine's seed and cache ---------------------------------------------------------------
@pytest.mark.parametrize("seed", [NAN, INF, 1.5, "7", True, None, b"x"])
def test_an_engine_seed_that_is_not_a_whole_number_is_refused(seed: object) -> None:
    refused(lambda: Engine(seed=seed), "seed=", "whole number")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ["x", NAN, 1.5, -1, True])
def test_an_engine_cache_size_that_is_not_a_whole_number_is_refused(size: object) -> None:
    refused(lambda: Engine(cache_size=size), "cache_size=")  # type: ignore[arg-type]


def test_a_numpy_seed_is_the_same_seed_as_the_int() -> None:
    np = pytest.importorskip("numpy")
    draws = [Engine(seed=s).rng.random() for s in (7, np.int64(7), -7)]
    assert draws[0] == draws[1] == random.Random(7).random()
    assert Engine(seed=1, cache_size=np.int64(0)).repository.cache_size == 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"clock": 5}, "Engine(clock=5)"),
        ({"clock": ManualClock}, "Engine(clock=<class"),
        ({"rng": 5}, "Engine(rng=5)"),
        ({"rng": random.Random}, "Engine(rng=<class"),
        ({"store": "x"}, "Engine(store='x')"),
        ({"store": InMemoryEventStore}, "Engine(store=<class"),
    ],
)
def test_an_engine_part_of_the_wrong_kind_is_refused_when_built(
    options: dict[str, Any], named: str
) -> None:
    """A clock, rng or store that cannot serve failed only when first used, deep inside."""
    refused(lambda: Engine(**options), named, "pass")


def test_an_engine_keeps_taking_any_clock_rng_and_store_that_serve() -> None:
    clock = CallableClock(lambda: 2.5)
    store = InMemoryEventStore(clock, SequentialIds("e"))
    engine = Engine(clock=clock, rng=random.Random(3), store=store)
    bank.install(engine)
    assert engine.dispatch(bank.OpenAccount("a1", "ann", 5)).position == 1
    assert store.read_all()[0].recorded_at == 2.5


# -- 2. fault plans and scripted faults -----------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"redelivery_timeout": NAN}, "redelivery_timeout=nan"),
        ({"redelivery_timeout": INF}, "redelivery_timeout=inf"),
        ({"redelivery_timeout": "1"}, "redelivery_timeout='1'"),
        ({"delay_seconds": (INF, INF)}, "delay_seconds=(inf, inf)"),
        ({"delay_seconds": (0.1, NAN)}, "delay_seconds="),
        ({"delay_seconds": 5}, "delay_seconds=5"),
        ({"delay_seconds": (1,)}, "delay_seconds=(1,)"),
        ({"delay_seconds": (1, 2, 3)}, "delay_seconds="),
        ({"delay_seconds": "ab"}, "delay_seconds='ab'"),
        ({"drop": "0.5"}, "drop='0.5'"),
        ({"drop": NAN}, "drop=nan"),
        ({"duplicate": True}, "duplicate=True"),
        ({"reorder_window": "2"}, "reorder_window='2'"),
        ({"reorder_window": 2.5}, "reorder_window=2.5"),
        ({"crash": 0.5, "crash_points": ()}, "crash_points=()"),
        ({"crash_points": ("before",)}, "crash_points="),
        ({"actions": (5,)}, "actions=(5,)"),
        ({"actions": CrashAt(1)}, "actions="),
    ],
)
def test_a_fault_plan_with_a_bad_argument_is_refused(options: dict[str, Any], named: str) -> None:
    refused(lambda: FaultPlan(**options), "FaultPlan(", named, "pass")


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: CrashAt("x"), "CrashAt(position='x')"),  # type: ignore[arg-type]
        (lambda: CrashAt(0), "CrashAt(position=0)"),
        (lambda: CrashAt(1, "after"), "CrashAt(point='after')"),  # type: ignore[arg-type]
        (lambda: DropAt(1.5), "DropAt(position=1.5)"),  # type: ignore[arg-type]
        (lambda: DuplicateAt(1, 5), "DuplicateAt(subscription=5)"),  # type: ignore[arg-type]
        (lambda: DelayAt(1, NAN), "DelayAt(seconds=nan)"),
        (lambda: DelayAt(1, INF), "DelayAt(seconds=inf)"),
        (lambda: DelayAt(True, 1.0), "DelayAt(position=True)"),
        (lambda: ReorderAt(1, 0), "ReorderAt(by=0)"),
    ],
)
def test_a_scripted_fault_with_a_bad_argument_is_refused(
    make: Callable[[], object], named: str
) -> None:
    refused(make, named, "pass")


def test_fault_plans_keep_accepting_numpy_numbers_and_lists() -> None:
    np = pytest.importorskip("numpy")
    plan = FaultPlan(
        actions=[CrashAt(np.int64(3), CrashPoint.BEFORE_HANDLE), DropAt(2)],  # type: ignore[arg-type]
        drop=np.float64(0.25),
        reorder_window=np.int64(2),
        delay_seconds=[0, 1],  # type: ignore[arg-type]
        redelivery_timeout=0,
        crash=1,
    )
    assert "crash" in str(plan) and plan.for_subscription("x").drop == 0.25
    # a list is taken as the tuple declared: the frozen plan hashes and compares as one
    assert type(plan.actions) is tuple and plan.delay_seconds == (0, 1)
    assert hash(plan) == hash(FaultPlan(**vars(plan)))  # a list in it made it unhashable
    listed = FaultPlan(actions=[CrashAt(1)], crash_points=[CrashPoint.AFTER_HANDLE])  # type: ignore[arg-type]
    assert listed == FaultPlan(actions=(CrashAt(1),), crash_points=(CrashPoint.AFTER_HANDLE,))
    assert str(DelayAt(np.int64(2), np.float64(0.5))) == "delay event 2 by 0.5 s"
    # the two ends of a delay in either order, as POST /faults documents and always took
    assert FaultPlan(delay=0.5, delay_seconds=(41.4, 6.8)).delay_seconds == (41.4, 6.8)


# -- 3. retries and delivery semantics ------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_attempts": "3"}, "max_attempts='3'"),
        ({"max_attempts": 1.5}, "max_attempts=1.5"),
        ({"max_attempts": True}, "max_attempts=True"),
        ({"base": "1"}, "base='1'"),
        ({"base": NAN}, "base=nan"),
        ({"factor": NAN}, "factor=nan"),
        ({"max_delay": INF}, "max_delay=inf"),
        ({"jitter": ["full"]}, "jitter=['full']"),
    ],
)
def test_a_retry_policy_with_a_bad_argument_is_refused(options: dict[str, Any], named: str) -> None:
    refused(lambda: RetryPolicy(**options), "RetryPolicy(", named)


def test_a_retry_policy_with_many_attempts_backs_off_at_its_cap() -> None:
    policy = RetryPolicy(max_attempts=5000, base=0.1, max_delay=30.0, jitter="none")
    assert policy.delay(4000, random.Random(0)) == 30.0  # 2.0 ** 3999 overflows a float


@pytest.mark.parametrize("name", [5, None, ["at-least-once"]])
def test_policy_named_refuses_what_is_not_a_name(name: object) -> None:
    refused(lambda: policy_named(name), "delivery=", "at-least-once")  # type: ignore[arg-type]


# -- 4. the manual clock --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: ManualClock("x"), "ManualClock(start='x')"),  # type: ignore[arg-type]
        (lambda: ManualClock(NAN), "ManualClock(start=nan)"),
        (lambda: ManualClock().advance("1"), "advance(seconds='1')"),  # type: ignore[arg-type]
        (lambda: ManualClock().advance(NAN), "advance(seconds=nan)"),
        (lambda: ManualClock().advance(INF), "advance(seconds=inf)"),
        (lambda: ManualClock().advance(-1), "advance(seconds=-1)"),
        (lambda: ManualClock().advance(True), "advance(seconds=True)"),
        (lambda: ManualClock().advance_to(INF), "advance_to(when=inf)"),
        (lambda: ManualClock().advance_to(NAN), "advance_to(when=nan)"),
        (lambda: ManualClock().advance_to("2"), "advance_to(when='2')"),  # type: ignore[arg-type]
    ],
)
def test_a_manual_clock_refuses_a_time_that_is_not_a_finite_number(
    call: Callable[[], object], named: str
) -> None:
    refused(call, named, "pass")


def test_a_manual_clock_refusing_nan_keeps_its_time() -> None:
    clock = ManualClock(1.0)
    with pytest.raises(ConfigError):
        clock.advance(NAN)
    clock.advance(0.5)
    assert clock.now() == 1.5


def test_a_manual_clock_takes_numpy_seconds_and_stays_a_float() -> None:
    np = pytest.importorskip("numpy")
    clock = ManualClock(np.float64(1.0))
    clock.advance(np.float64(0.5))
    clock.advance_to(np.int64(3))
    assert clock.now() == 3.0 and type(clock.now()) is float


# -- 5. reads at a position -----------------------------------------------------------------------
@pytest.mark.parametrize("position", [NAN, "x", 1.5, -1, True])
def test_ask_refuses_a_min_position_that_is_not_a_position(position: object) -> None:
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    engine.pump()
    query = bank.GetBalance("a1")
    refused(lambda: engine.ask(query, min_position=position), "min_position=")  # type: ignore[arg-type]
    refused(lambda: engine.caught_up("balances", position), "position=")  # type: ignore[arg-type]


def test_ask_takes_a_numpy_position() -> None:
    np = pytest.importorskip("numpy")
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    assert engine.ask(bank.GetBalance("a1"), min_position=np.int64(1)).stale
    engine.pump()
    assert not engine.ask(bank.GetBalance("a1"), min_position=np.int64(1)).stale
    assert engine.caught_up("balances", np.int64(1))


# -- 6. the in-memory store -----------------------------------------------------------------------
def filled_store() -> InMemoryEventStore:
    store = InMemoryEventStore(ManualClock(), SequentialIds("e"))
    store.append("s", [bank.Deposited("a", 1), bank.Deposited("a", 2)], ANY)
    return store


@pytest.mark.parametrize(
    ("read", "named"),
    [
        (lambda s: s.read_all(0, -1), "limit=-1"),
        (lambda s: s.read_all(0, 1.5), "limit=1.5"),
        (lambda s: s.read_all("x"), "after='x'"),
        (lambda s: s.read_all(1.5), "after=1.5"),
        (lambda s: s.read_all(True), "after=True"),
        (lambda s: s.read_stream("s", -1), "after_version=-1"),
        (lambda s: s.read_stream("s", "1"), "after_version='1'"),
        (lambda s: s.read_partition("0", 2, 0, 10), "index='0'"),
        (lambda s: s.read_partition(0, 2.0, 0, 10), "count=2.0"),
    ],
)
def test_a_store_read_with_a_bad_bound_is_refused(
    read: Callable[[InMemoryEventStore], object], named: str
) -> None:
    refused(lambda: read(filled_store()), named, "pass")


@pytest.mark.parametrize(
    ("stream", "events", "expected", "named"),
    [
        ("s", "abc", ANY, "events='abc'"),
        ("s", [None], ANY, "None"),
        ("t", [bank.Deposited("a", 1), object()], ANY, "object"),
        ("s", [bank.Deposited("a", 1)], -1, "expected_version=-1"),
        ("s", [bank.Deposited("a", 1)], True, "expected_version=True"),
        ("s", [], 2.0, "expected_version=2.0"),
        (5, [bank.Deposited("a", 1)], ANY, "stream_id=5"),
    ],
)
def test_a_store_append_with_a_bad_argument_is_refused_and_appends_nothing(
    stream: Any, events: Any, expected: Any, named: str
) -> None:
    store = filled_store()
    refused(lambda: store.append(stream, events, expected), named)
    assert store.head_position == 2 and store.stream_ids() == ["s"]
    assert store.stream_version("s") == 2


def test_the_store_keeps_accepting_numpy_bounds_and_tuples() -> None:
    np = pytest.importorskip("numpy")
    store = filled_store()
    assert [e.position for e in store.read_all(np.int64(1), np.int64(5))] == [2]
    assert len(store.read_stream("s", np.int64(1))) == 1
    assert store.read_all(0, 0) == []
    assert store.read_partition(np.int64(0), np.int64(1), 0, 10)[1] == 2
    assert store.append("s", (bank.Deposited("a", 3),), 2)[0].position == 3


# -- 7. subscriptions and the bank's install ------------------------------------------------------
@pytest.mark.parametrize("partitions", [1.5, "2", 0, True, NAN, 4097, 10**100])
def test_subscribe_partitioned_refuses_a_count_that_is_not_a_whole_number_in_range(
    partitions: object,
) -> None:
    engine = Engine(seed=1)
    refused(
        lambda: engine.subscribe_partitioned(bank.Balances(), partitions=partitions),  # type: ignore[arg-type]
        "partitions=",
    )
    assert engine.subscriptions == {}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"delivery": None}, "delivery=None"),
        ({"delivery": 5}, "delivery=5"),
        ({"delivery": AtLeastOnce}, "delivery=<class"),
        ({"faults": "x"}, "faults='x'"),
        ({"faults": {"drop": 0.1}}, "faults="),
        ({"retry": 3}, "retry=3"),
        ({"batch_size": NAN}, "batch_size=nan"),
        ({"batch_size": "1"}, "batch_size='1'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"checkpoint_every": NAN}, "checkpoint_every=nan"),
        ({"checkpoint_every": 2.5}, "checkpoint_every=2.5"),
    ],
)
def test_the_bank_install_refuses_a_bad_subscription_option(
    options: dict[str, Any], named: str
) -> None:
    refused(lambda: bank_engine(**options), named, "pass")


@pytest.mark.parametrize("consumer", [None, bank.Balances, "balances", 5])
def test_subscribe_refuses_what_is_not_a_projection_instance(consumer: Any) -> None:
    engine = Engine(seed=1)
    refused(lambda: engine.subscribe(consumer), "subscribe(consumer=", "Projection")
    refused(
        lambda: engine.subscribe_partitioned(consumer, partitions=2),
        "subscribe_partitioned(consumer=",
    )
    assert engine.subscriptions == {} and engine.groups == {}


def test_subscribe_names_the_instance_to_pass_for_a_class() -> None:
    message = refused(lambda: Engine().subscribe(bank.Balances), "consumer=")  # type: ignore[arg-type]
    assert "Balances()" in message


@pytest.mark.parametrize("flag", ["no", 0, 1, None])
def test_flags_that_are_not_true_or_false_are_refused(flag: Any) -> None:
    """``'no'`` is true to ``if``: taken as a flag it did the opposite of what it says."""
    engine = Engine(seed=1)
    refused(
        lambda: engine.subscribe_partitioned(bank.Balances(), partitions=2, auto_commit=flag),
        f"auto_commit={flag!r}",
        "True",
    )
    assert engine.subscriptions == {}
    refused(lambda: bank.install(Engine(), statements=flag), f"statements={flag!r}", "True")
    refused(lambda: bank.install(Engine(), saga=flag), f"saga={flag!r}", "True")
    sub = bank_engine().subscription("balances")
    refused(lambda: sub.rebuild(shadow=flag), f"rebuild(shadow={flag!r})", "True")
    assert sub.shadow is None and sub.rebuilds == 0
    group = Engine().subscribe_partitioned(bank.Balances(), partitions=2)
    refused(lambda: group.rebuild(shadow=flag), f"rebuild(shadow={flag!r})")


def test_flags_keep_taking_numpy_bools() -> None:
    np = pytest.importorskip("numpy")
    app = bank.install(Engine(seed=1), statements=np.bool_(False), saga=np.bool_(True))
    assert sorted(app.subscriptions) == ["balances", "transfer-saga"]
    group = app.engine.subscribe_partitioned(
        bank.Statements(), partitions=2, auto_commit=np.bool_(False)
    )
    assert all(m.auto_commit is False for m in group.members)
    app.engine.subscription("balances").rebuild(shadow=np.bool_(True))
    assert app.engine.subscription("balances").shadow is not None


@pytest.mark.parametrize("engine", [None, "engine", Engine])
def test_installing_a_domain_on_what_is_not_an_engine_is_refused(engine: Any) -> None:
    refused(lambda: bank.install(engine), "install(engine=", "Engine")
    refused(lambda: install(engine, bank.domain), "install(engine=", "Engine")


def test_installing_what_is_not_a_domain_is_refused() -> None:
    refused(lambda: install(Engine(), "cqrs_lab.domains.bank"), "install(domain=", "Domain")  # type: ignore[arg-type]


def test_set_faults_refuses_what_is_not_a_fault_plan() -> None:
    engine = bank_engine()
    refused(lambda: engine.set_faults("x"), "faults='x'", "FaultPlan")  # type: ignore[arg-type]
    engine.set_faults(FaultPlan(drop=0.1))
    engine.set_faults(None)


@pytest.mark.parametrize("count", [0, "2", 1.5])
def test_a_partition_index_refuses_a_count_that_is_not_a_whole_number(count: object) -> None:
    refused(lambda: PartitionIndex(count), "PartitionIndex(count=")  # type: ignore[arg-type]


def test_subscriptions_keep_accepting_numpy_counts_and_a_policy_object() -> None:
    np = pytest.importorskip("numpy")
    engine = Engine(seed=1)
    bank.install(
        engine, delivery=AtLeastOnce(), batch_size=np.int64(4), saga=False, statements=False
    )
    engine.subscribe_partitioned(bank.Statements(), partitions=np.int64(2))
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    engine.run_until_idle()
    assert engine.positions() == {"balances": 1, "statements": 1}


# -- 8. a domain's declaration and install --------------------------------------------------------
def test_install_refuses_one_view_name_given_as_a_string() -> None:
    message = refused(lambda: install(Engine(), bank.domain, views="balances"), "views='balances'")
    assert "['balances']" in message  # the fix: a list of names


def test_install_refuses_a_delivery_for_a_view_the_domain_does_not_declare() -> None:
    def typo() -> object:
        return install(Engine(), bank.domain, delivery_of={"nope": "at-most-once"})

    refused(typo, "delivery_of", "'nope'", "balances", error=DomainError)
    # a declared view that is not installed may still be named (bank.install does, saga=False)
    bank.install(Engine(), saga=False, saga_delivery="at-least-once")


def test_install_refuses_an_option_subscriptions_do_not_take() -> None:
    refused(lambda: install(Engine(), bank.domain, bogus=1), "bogus", "batch_size")
    listed: Any = ["balances"]
    refused(lambda: install(Engine(), bank.domain, delivery_of=listed), "delivery_of=")


@pytest.mark.parametrize(
    ("declare", "named"),
    [
        (lambda: declared(views=(5,)), "views holds 5"),
        (lambda: declared(views="ab"), "views='ab'"),
        (lambda: declared(views=View("balances", bank.Balances)), "views=View("),
        (lambda: declared(queries=(5,)), "queries holds 5"),
        (lambda: declared(invariants=("x",)), "invariants holds 'x'"),
        (lambda: View("p", 5), "View('p', 5)"),  # type: ignore[arg-type]
        (lambda: View(5, bank.Balances), "View(5,"),  # type: ignore[arg-type]
        (lambda: Query(5, "balances", lambda v, q: None), "Query(5,"),  # type: ignore[arg-type]
        (lambda: Query(bank.GetBalance, "balances", 5), "Query("),  # type: ignore[arg-type]
    ],
)
def test_a_domain_declaration_of_the_wrong_kind_is_refused(
    declare: Callable[[], object], named: str
) -> None:
    refused(declare, named, "pass", error=DomainError)


class PlainEvent(Event):  # no @dataclass: nothing to store or send
    pass


class PlainCommand(Command):
    pass


def _twin_named(base: type, name: str) -> type:
    """A dataclass subclass of ``base`` named ``name`` (a second class of the same name)."""
    return dataclass(frozen=True)(type(name, (base,), {"__module__": "elsewhere"}))


def messages(events: tuple[Any, ...] = (), handlers: dict[Any, Any] | None = None) -> Domain:
    return Domain("d", "", events, handlers or {}, ())


@pytest.mark.parametrize(
    ("declare", "named"),
    [
        (lambda: messages(events=(PlainEvent,)), "Event PlainEvent is not a dataclass"),
        (lambda: messages(handlers={PlainCommand: print}), "Command PlainCommand is not a"),
        (lambda: messages(events=(5,)), "not a Event class"),
        (lambda: messages(handlers={5: print}), "not a Command class"),
        (
            lambda: messages(events=(bank.Deposited, _twin_named(Event, "Deposited"))),
            "two Event classes are named Deposited",
        ),
        (
            lambda: messages(
                handlers={bank.Deposit: print, _twin_named(Command, "Deposit"): print}
            ),
            "two Command classes are named Deposit",
        ),
    ],
)
def test_a_command_or_event_that_is_not_a_dataclass_or_named_twice_is_refused(
    declare: Callable[[], object], named: str
) -> None:
    refused(declare, named, error=DomainError)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"idempotency_key": 5}, "idempotency_key=5"),
        ({"correlation_id": ["c"]}, "correlation_id=['c']"),
        ({"metadata": "m"}, "metadata='m'"),
        ({"idempotency": "k"}, "idempotency="),
    ],
)
def test_dispatch_refuses_a_bad_option(options: dict[str, Any], named: str) -> None:
    engine = bank_engine()
    refused(lambda: engine.dispatch(bank.OpenAccount("a1", "ann", 5), **options), named)
    assert engine.store.head_position == 0
    key = engine.dispatch(bank.OpenAccount("a1", "ann", 5), idempotency_key="k", metadata={})
    assert key.position == 1


# -- 9. the bank's ids ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [["x"], None, 5, ""])
def test_the_bank_refuses_an_account_id_that_is_not_a_non_empty_string(bad: Any) -> None:
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 100))
    commands = [
        bank.OpenAccount(bad, "ann", 10),
        bank.Deposit(bad, 5),
        bank.Withdraw(bad, 5),
        bank.CloseAccount(bad),
        bank.RequestTransfer("t1", bad, "a1", 5),
        bank.RequestTransfer("t1", "a1", bad, 5),
        bank.RequestTransfer(bad, "a1", "a2", 5),
    ]
    for command in commands:
        refused(partial(engine.dispatch, command), repr(bad), error=CommandRefused)
    assert engine.store.head_position == 1
    engine.run_until_idle()
    assert len(engine.dead_letters) == 0 and engine.positions()["balances"] == 1


@pytest.mark.parametrize("bad", [["x"], None, 5, b"a1"])
def test_the_bank_answers_no_query_for_an_id_that_is_not_a_string(bad: Any) -> None:
    """A list as an account id raised a TypeError (unhashable) from inside the view."""
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    engine.run_until_idle()
    for query, field in [
        (bank.GetBalance(bad), "account_id"),
        (bank.GetAccount(bad), "account_id"),
        (bank.GetStatement(bad), "account_id"),
        (bank.GetTransfer(bad), "transfer_id"),
    ]:
        refused(partial(engine.ask, query), f"{type(query).__name__}({field}={bad!r})", "str")
    assert engine.ask(bank.GetBalance("a1")).value == 5
    assert engine.ask(bank.GetBalance("nope")).value is None


@pytest.mark.parametrize("bad", [5, None, ["ann"]])
def test_the_bank_refuses_an_owner_that_is_not_a_string(bad: Any) -> None:
    engine = bank_engine()
    refused(
        lambda: engine.dispatch(bank.OpenAccount("a1", bad, 5)), repr(bad), error=CommandRefused
    )
    assert engine.store.head_position == 0
    engine.dispatch(bank.OpenAccount("a1", "", 5))  # an empty owner is an owner


# -- 10. the parts the engine wraps, called directly --------------------------------------------
@pytest.mark.parametrize("key", [5, "", b"k"])
def test_the_command_bus_refuses_an_idempotency_key_that_is_not_a_non_empty_str(key: Any) -> None:
    engine = bank_engine()
    command = bank.OpenAccount("a1", "ann", 5)
    refused(lambda: engine.bus.dispatch(command, idempotency_key=key), "idempotency_key=")
    refused(lambda: engine.bus.decide(command, idempotency_key=key), "idempotency_key=")
    assert engine.store.head_position == 0
    assert engine.bus.dispatch(command, idempotency_key="k").position == 1


def test_a_subscription_refuses_faults_that_are_not_a_fault_plan() -> None:
    sub = bank_engine().subscription("balances")
    refused(lambda: sub.set_faults("x"), "set_faults('x')", "FaultPlan")  # type: ignore[arg-type]
    sub.set_faults(FaultPlan(drop=0.1))
    sub.set_faults(None)


@pytest.mark.parametrize("limit", [0, -1, 1001, "5", 2.0])
def test_a_statement_limit_outside_1_to_1000_is_refused(limit: Any) -> None:
    """limit=0 answered every line, -1 every line but the first."""
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    engine.run_until_idle()
    refused(lambda: engine.ask(bank.GetStatement("a1", limit)), f"limit={limit!r}", "1 to 1000")
    assert len(engine.ask(bank.GetStatement("a1", 1)).value) == 1


# -- 11. driving: rounds, steps and events per call ----------------------------------------------
@pytest.mark.parametrize("rounds", ["x", None, 1.5, 0, -1, True, NAN])
def test_the_engine_refuses_a_round_cap_that_is_not_a_whole_number_from_1(rounds: Any) -> None:
    """``pump(max_rounds=-1)`` did nothing at all, silently; ``None`` raised a TypeError."""
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    refused(lambda: engine.pump(max_rounds=rounds), f"pump(max_rounds={rounds!r})", ">= 1")
    refused(
        lambda: engine.run_until_idle(max_rounds=rounds),
        f"run_until_idle(max_rounds={rounds!r})",
        ">= 1",
    )
    sub = engine.subscription("balances")
    refused(lambda: sub.pump(max_steps=rounds), f"pump(max_steps={rounds!r})", ">= 1")
    assert engine.positions() == {"balances": 0, "statements": 0, "transfer-saga": 0}


@pytest.mark.parametrize("count", ["x", -1, 1.5, True, NAN, "2"])
def test_a_subscription_refuses_an_event_count_that_is_not_a_whole_number(count: Any) -> None:
    """``step(max_events=-1)`` did nothing, silently; ``'x'`` raised a TypeError."""
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    sub = engine.subscription("balances")
    refused(lambda: sub.step(max_events=count), f"step(max_events={count!r})", ">= 0", "None")
    sub.poll()
    refused(lambda: sub.process(max_events=count), f"process(max_events={count!r})", ">= 0")
    assert sub.position == 0 and len(sub.inbox) == 1


def test_driving_keeps_taking_numpy_counts_zero_events_and_none() -> None:
    np = pytest.importorskip("numpy")
    engine = bank_engine()
    engine.dispatch(bank.OpenAccount("a1", "ann", 5))
    engine.dispatch(bank.Deposit("a1", 5))
    sub = engine.subscription("balances")
    assert sub.step(max_events=0) == 0 and len(sub.inbox) == 2  # 0: poll only
    assert sub.step(max_events=np.int64(1)) == 1
    assert sub.process(max_events=None) == 1
    assert engine.pump(max_rounds=np.int64(5)) >= 0
    assert engine.run_until_idle(max_rounds=np.int64(5)) >= 0
    assert engine.positions()["balances"] == 2


# -- 12. a saga's replay floors -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("floors", "named"),
    [
        (5, "floors=5"),
        (None, "floors=None"),
        ("12", "floors='12'"),
        ({1, 2}, "floors={1, 2}"),
        ({"p0": 1}, "floors={'p0': 1}"),
        ([-1], "-1 is no position"),
        (["1"], "'1' is no position"),
        ([1.0], "1.0 is no position"),
        ([True], "True is no position"),
    ],
)
def test_replay_floors_refuses_what_is_not_a_list_of_positions(floors: Any, named: str) -> None:
    saga = bank.TransferSaga()
    saga.replay_floors([3])
    refused(lambda: saga.replay_floors(floors), "replay_floors(floors=", named, "pass")
    assert saga.floor_of("a") == 3  # the floors it had are kept


def test_replay_floors_keep_taking_tuples_and_numpy_positions() -> None:
    np = pytest.importorskip("numpy")
    saga = bank.TransferSaga()
    saga.replay_floors(np.array([4, 4]))
    assert saga.floor_of("a") == 4 and type(saga.floor_of("a")) is int
    saga.replay_floors((np.int64(2),))
    assert saga.floor_of("a") == 2
    saga.replay_floors(())
    assert saga.floor_of("a") == 0


@pytest.mark.parametrize("name", [[], {}, ["balances"]])
def test_a_lookup_by_something_that_is_no_name_is_a_lab_error(name: Any) -> None:
    from cqrs_lab.errors import DeadLetterNotFound, ProjectionNotFound

    engine = bank_engine()
    refused(lambda: engine.subscription(name), "no projection named", error=ProjectionNotFound)
    refused(lambda: engine.dead_letters.get(name), "no dead letter", error=DeadLetterNotFound)
    sub = engine.subscription("balances")
    refused(lambda: sub.replay_dead_letter(name), "no dead letter", error=DeadLetterNotFound)
