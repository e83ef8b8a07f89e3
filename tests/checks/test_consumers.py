"""A consumer that keeps failing is a failed check naming the projection, the error and the
position; one that recovered, or whose parked events were replayed, passes."""

from __future__ import annotations

import pytest

from cqrs_lab.checks import check_consumers
from cqrs_lab.checks.consumers import EVIDENCE
from cqrs_lab.core import ANY, Engine, Envelope, ManualClock, Projection, RetryPolicy, on
from tests.core.helpers import Ticked

RETRY = RetryPolicy(max_attempts=3, base=1.0, factor=2.0, jitter="none")


class Picky(Projection):
    """Raises on the events whose ``n`` is in ``bad``, ``times`` times each (-1: forever)."""

    name = "picky"

    def __init__(self, bad: tuple[int, ...] = (), times: int = -1) -> None:
        super().__init__()
        self.left = dict.fromkeys(bad, times)
        self.seen = self.table("seen")

    @on(Ticked)
    def _ticked(self, e: Ticked, env: Envelope) -> None:
        if self.left.get(e.n, 0) != 0:
            self.left[e.n] -= 1
            raise ValueError(f"cannot count {e.n}")
        self.seen.put(env.position, e.n)


def engine_with(picky: Picky, events: int = 5) -> Engine:
    engine = Engine(clock=ManualClock(), seed=3)
    engine.registry.register(Ticked)
    engine.subscribe(picky, "effectively-once", retry=RETRY)
    for i in range(events):
        engine.store.append(f"s{i}", [Ticked(i)], ANY)
    return engine


def test_a_consumer_blocked_on_an_error_is_info_mid_run_and_a_failure_when_quiet() -> None:
    engine = engine_with(Picky(bad=(2,)))
    engine.pump()  # events 1 and 2 applied; event 3 (n=2) fails and waits for its retry

    midway = check_consumers(engine, quiescent=False)["consumers healthy: picky"]
    assert midway.status == "info"
    quiet = check_consumers(engine)["consumers healthy: picky"]
    assert quiet.status == "fail"
    assert quiet.summary == "stuck at position 2 of 5: ValueError: cannot count 2"
    (stuck,) = quiet.violations
    assert stuck.message == (
        "picky: stuck at position 2 of 5 (event 3, Ticked), failing with ValueError: cannot count 2"
    )
    assert stuck.evidence[0]["position"] == 2 and stuck.evidence[0]["head"] == 5


def test_parked_events_fail_at_any_time_and_are_all_counted() -> None:
    engine = engine_with(Picky(bad=tuple(range(EVIDENCE + 2))), events=EVIDENCE + 3)
    engine.run_until_idle()  # every retry runs out: the bad events are parked
    sub = engine.subscriptions["picky"]
    assert sub.position == engine.store.head_position  # it moved on: only the check tells

    for quiescent in (False, True):
        result = check_consumers(engine, quiescent=quiescent)["consumers healthy: picky"]
        assert result.status == "fail"
        assert result.summary == (
            f"{EVIDENCE + 2} events parked in the dead-letter store: ValueError: cannot count 0"
        )
        (parked,) = result.violations
        assert parked.message.startswith(f"picky: {EVIDENCE + 2} events parked in the dead-")
        assert "the first at position 1 (Ticked)" in parked.message
        assert [e["position"] for e in parked.evidence] == list(range(1, EVIDENCE + 1))


def test_a_consumer_that_recovered_passes() -> None:
    engine = engine_with(Picky(bad=(1, 3), times=2))
    engine.run_until_idle()
    sub = engine.subscriptions["picky"]
    assert sub.retries == 4 and sub.last_error == "ValueError: cannot count 3"
    assert check_consumers(engine).ok


def test_replaying_the_parked_events_after_the_fix_makes_the_check_pass() -> None:
    picky = Picky(bad=(1,))
    engine = engine_with(picky)
    engine.run_until_idle()
    assert not check_consumers(engine).ok
    picky.left.clear()  # the fix is deployed
    sub = engine.subscriptions["picky"]
    for letter in engine.dead_letters.list("picky"):
        sub.replay_dead_letter(letter.id)
    report = check_consumers(engine)
    assert report.ok, report.to_text()
    assert report["consumers healthy: picky"].summary == "no parked event, no error pending"


def test_a_log_that_did_not_watch_the_engine_is_refused_not_read_as_failures() -> None:
    """A log never given to the engine would report every event lost; one not attached
    would report a rebuild's re-applications as double effects: both are refused."""
    from cqrs_lab.checks import ApplicationLog, check_engine, quiesce
    from cqrs_lab.core import Engine, ManualClock
    from cqrs_lab.domains import bank
    from cqrs_lab.errors import ConfigError

    engine = Engine(clock=ManualClock(), seed=0)
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    quiesce(engine)
    with pytest.raises(ConfigError, match="recorder=log"):
        check_engine(engine, ApplicationLog())
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=0, recorder=log)
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    quiesce(engine)
    engine.subscription("balances").rebuild()
    quiesce(engine)
    with pytest.raises(ConfigError, match=r"log\.attach\(engine\)"):
        check_engine(engine, log)
