from __future__ import annotations

import random

import pytest

from cqrs_lab.core import (
    ANY,
    Engine,
    Envelope,
    ManualClock,
    Projection,
    RawEvent,
    RetryPolicy,
    on,
)
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.errors import ConfigError, DeadLetterNotFound
from tests.core.helpers import Recorder, Tally, Ticked, tally_engine


class Flaky(Projection):
    """Fails on chosen events a given number of times (a poison event fails forever)."""

    name = "flaky"

    def __init__(self, failures: dict[int, int] | None = None) -> None:
        super().__init__()
        self.failures = dict(failures or {})
        self.seen = self.table("seen")

    @on(Ticked)
    def _ticked(self, e: Ticked, env: Envelope) -> None:
        self.seen.put(env.position, e.n)  # written, then rolled back when it fails
        left = self.failures.get(e.n, 0)
        if left:
            self.failures[e.n] = left - 1
            raise RuntimeError(f"cannot handle {e.n}")


def flaky_engine(failures: dict[int, int], retry: RetryPolicy) -> tuple[Engine, Flaky]:
    engine = Engine(clock=ManualClock(), seed=5)
    flaky = Flaky(failures)
    engine.subscribe(flaky, "effectively-once", retry=retry)
    for i in range(6):
        engine.store.append("s", [Ticked(i)], ANY)
    return engine, flaky


def test_transient_failure_blocks_the_stream_retries_with_backoff_then_succeeds() -> None:
    retry = RetryPolicy(max_attempts=5, base=1.0, factor=2.0, jitter="none")
    engine, flaky = flaky_engine({2: 2}, retry)
    sub = engine.subscriptions["flaky"]
    engine.pump()
    assert sub.position == 2 and sub.retry_at == 1.0  # blocked on event n=2 (position 3)
    assert 3 not in flaky.seen  # its partial write was rolled back
    engine.clock.advance_to(1.0)  # type: ignore[attr-defined]
    engine.pump()
    assert sub.retry_at == 1.0 + 2.0  # second failure: backoff doubled
    engine.run_until_idle()
    assert sub.position == 6 and sub.retries == 2 and len(engine.dead_letters) == 0
    assert sorted(flaky.seen) == [1, 2, 3, 4, 5, 6]


def test_poison_event_is_parked_after_max_attempts_and_can_be_replayed() -> None:
    retry = RetryPolicy(max_attempts=3, base=0.5, jitter="full")
    engine, flaky = flaky_engine({1: 99}, retry)
    sub = engine.subscriptions["flaky"]
    engine.run_until_idle()
    assert sub.position == 6 and sub.dead_lettered == 1
    (letter,) = engine.dead_letters.list("flaky")
    assert letter.envelope.position == 2 and letter.attempts == 3
    assert "cannot handle 1" in letter.error
    assert 2 not in flaky.seen
    with pytest.raises(RuntimeError):
        sub.replay_dead_letter(letter.id)  # still failing: stays parked
    assert len(engine.dead_letters) == 1
    flaky.failures[1] = 0  # the fix
    sub.replay_dead_letter(letter.id)
    assert flaky.seen.get(2) == 1 and len(engine.dead_letters) == 0
    with pytest.raises(DeadLetterNotFound, match="list them"):
        engine.dead_letters.get(letter.id)


def test_full_jitter_is_seeded_and_bounded() -> None:
    r = RetryPolicy(base=0.2, factor=3.0, max_delay=5.0)
    a = [r.delay(n, random.Random(9)) for n in range(1, 8)]
    b = [r.delay(n, random.Random(9)) for n in range(1, 8)]
    assert a == b
    assert all(0 <= d <= min(5.0, 0.2 * 3 ** (n - 1)) for n, d in zip(range(1, 8), a, strict=True))
    with pytest.raises(ConfigError, match="jitter"):
        RetryPolicy(jitter="sometimes")


def test_an_undecodable_event_is_a_failure_of_that_event_only() -> None:
    engine = Engine(clock=ManualClock(), seed=1)
    engine.registry.register(Ticked)
    tally = Tally()
    engine.subscribe(tally, retry=RetryPolicy(max_attempts=2, base=0.1))
    engine.store.append("s", [Ticked(0)], ANY)
    engine.store.append("s", [RawEvent("Ticked", 2, {"n": 1, "unit": "ms"})], ANY)  # newer writer
    engine.store.append("s", [Ticked(2)], ANY)
    engine.run_until_idle()
    sub = engine.subscriptions["tally"]
    assert sub.position == 3 and sorted(tally.count) == [1, 3]
    (letter,) = engine.dead_letters.list()
    assert "version 2" in letter.error


def test_in_place_rebuild_replays_from_zero_to_the_same_state() -> None:
    engine, tally, _ = tally_engine(40, delivery="effectively-once", batch_size=7)
    engine.pump()
    before = tally.state()
    sub = engine.subscriptions["tally"]
    sub.rebuild()
    assert len(tally.count) == 0 and sub.position == 0 and sub.rebuilding
    engine.pump()
    assert tally.state() == before and not sub.rebuilding


def test_shadow_rebuild_keeps_serving_then_swaps_in_one_step() -> None:
    engine, tally, _ = tally_engine(40, delivery="effectively-once", batch_size=5)
    sub = engine.subscriptions["tally"]
    engine.pump()
    before = tally.state()
    sub.rebuild(shadow=True)
    assert sub.rebuilding
    sub.step()  # one batch of the shadow: the live read model is still whole
    assert tally.state() == before
    for i in range(40, 45):  # live traffic meanwhile
        engine.store.append("s0", [Ticked(i)], ANY)
    engine.pump()
    assert not sub.rebuilding and sub.position == 45
    assert sorted(tally.count) == list(range(1, 46)) and set(tally.count.values()) == {1}


@pytest.mark.parametrize("indexed", [True, False], ids=["store-index", "scan"])
@pytest.mark.parametrize("delivery", ["at-most-once", "at-least-once", "effectively-once"])
def test_partitions_split_by_stream_and_cover_the_log(delivery: str, indexed: bool) -> None:
    who = Recorder()
    engine = Engine(clock=ManualClock(), seed=2, recorder=who)
    tally = Tally()
    group = engine.subscribe_partitioned(tally, delivery, partitions=3, batch_size=4)
    if not indexed:  # as with a store without read_partition: read all, keep our own
        for m in group.members:
            m._read_partition = None
    for i in range(60):
        engine.store.append(f"s{i % 7}", [Ticked(i)], ANY)
        if i % 9 == 0:
            engine.pump()  # consumers catch up while the log grows
    engine.pump()
    assert group.position == 60 and set(tally.count.values()) == {1}
    assert sorted(tally.count) == list(range(1, 61))
    per_member = [m.applied for m in group.members]
    assert sum(per_member) == 60 and all(n > 0 for n in per_member)
    assert engine.position_of("tally") == 60 and engine.positions()["tally"] == 60
    # each stream is handled by exactly one partition: the one partition_of names
    assert len(who.appliers) == 7
    for sid, subs in who.appliers.items():
        assert subs == {group.members[partition_of(sid, 3)].name}


def test_a_crashed_partition_holds_back_the_group_position_only() -> None:
    engine = Engine(clock=ManualClock(), seed=2)
    group = engine.subscribe_partitioned(Tally(), "effectively-once", partitions=2)
    group.members[0].crash()
    for i in range(20):
        engine.store.append(f"s{i % 5}", [Ticked(i)], ANY)
    engine.pump()
    assert group.members[1].position == 20 and group.position < 20
    assert group.stats()["crashed"]
    group.restart()
    engine.pump()
    assert group.position == 20


def test_bad_subscription_options_are_refused_clearly() -> None:
    engine = Engine()
    with pytest.raises(ConfigError, match="batch_size"):
        engine.subscribe(Tally(), batch_size=0)
    with pytest.raises(ConfigError, match="delivery="):
        engine.subscribe(Tally(), "exactly-once")
    engine.subscribe(Tally())
    with pytest.raises(ConfigError, match="exists"):
        engine.subscribe(Tally())


@pytest.mark.parametrize("delivery", ["at-most-once", "at-least-once", "effectively-once"])
def test_partitions_keep_each_promise_under_transport_faults_and_crashes(delivery: str) -> None:
    from cqrs_lab.core import FaultPlan

    plan = FaultPlan(drop=0.1, duplicate=0.2, reorder=0.2, delay=0.1, redelivery_timeout=0.5)
    engine = Engine(clock=ManualClock(), seed=21)
    tally = Tally()
    group = engine.subscribe_partitioned(tally, delivery, partitions=3, batch_size=8, faults=plan)
    n = 0
    for round_ in range(8):
        for _ in range(40):
            engine.store.append(f"s{n % 11}", [Ticked(n)], ANY)
            n += 1
        engine.pump()
        group.members[round_ % 3].crash()
        group.members[round_ % 3].restart()
        engine.clock.advance(0.2)  # type: ignore[attr-defined]
    engine.run_until_idle()
    counts = [tally.count.get(p, 0) for p in range(1, n + 1)]
    assert group.position == n  # every position dealt with: no partition stuck behind a gap
    if delivery == "at-most-once":
        assert max(counts) == 1
    elif delivery == "at-least-once":
        assert min(counts) >= 1 and max(counts) >= 2
    else:
        assert counts == [1] * n
