"""How a pump step's wait and CPU grow with its events on PostgreSQL
(:mod:`cqrs_lab.load.loop_pump`), and where the growth goes in the twin."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cqrs_lab.load.loop_pump import MIN_TICKS, PumpGrowth, pump_growth, spread_growth, tick_steps
from cqrs_lab.load.loop_twin import LoopCalibration


def tick(at: float, events: int, wait_per_event: float = 1e-3, cpu_per_event: float = 1e-3):
    """One tick of two steps ("a", "b") carrying ``events`` each: per step 0.5 ms of wait
    and 0.2 ms of CPU, plus the given seconds per event."""
    wait = 2 * (5e-4 + wait_per_event * events)
    cpu = 2 * (2e-4 + cpu_per_event * events)
    return pd.DataFrame({
        "stage": ["projection", "projection", "pump", "pump-wait"],
        "name": ["a", "b", "tick", "tick"],
        "at": [at, at + 0.001, at + 0.002, at + 0.002],
        "seconds": [(wait + cpu) / 2] * 2 + [wait + cpu, wait],
        "events": [events, events, 1, 1],
    })  # fmt: skip


def ticks(n: int, start: float = 0.0, **kw: float) -> pd.DataFrame:
    return pd.concat([tick(start + k, 1 + k % 4, **kw) for k in range(n)], ignore_index=True)


def test_the_growth_per_event_and_the_base_wait_are_read_from_the_ticks() -> None:
    """Steps of 1 to 4 events, 0.5 ms of wait and 0.2 ms of CPU per step plus 1 ms of each
    per event: the fit gives exactly that."""
    t = tick_steps(ticks(80))
    assert len(t) == 80 and set(t["steps"]) == {2}
    g = pump_growth(t)
    assert g.wait_s == pytest.approx(5e-4)
    assert g.wait_per_event_s == pytest.approx(1e-3)
    assert g.cpu_per_event_s == pytest.approx(1e-3)


def test_a_few_large_steps_do_not_set_the_slope() -> None:
    """100 steps of one event and 40 of two (1 ms more wait per event), and 5 of 40 events
    that waited no more than one: sizes seen under MIN_TICKS times do not count, so the
    slope is the 1 ms of the sizes seen often, and the base the 0.5 ms of a step's wait
    beyond its events."""
    rows = [tick(float(k), 1) for k in range(100)] + [tick(100.0 + k, 2) for k in range(40)]
    big = [tick(200.0 + k, 40).assign(seconds=lambda d: d["seconds"] * 0 + 2e-3) for k in range(5)]
    t = tick_steps(pd.concat(rows + big, ignore_index=True))
    g = pump_growth(t)
    assert g.wait_per_event_s == pytest.approx(1e-3)
    assert g.wait_s == pytest.approx(5e-4)


def test_each_workers_ticks_are_their_own() -> None:
    """Two workers' samples merged one after the other (the time goes back where the second
    begins): each tick keeps its own two steps, none is counted in the other's."""
    merged = pd.concat([ticks(50, start=100.0), ticks(50, start=100.5)], ignore_index=True)
    t = tick_steps(merged)
    assert len(t) == 100 and set(t["steps"]) == {2}
    assert pump_growth(t).wait_per_event_s == pytest.approx(1e-3)


def test_no_growth_is_claimed_from_too_few_ticks_or_one_size() -> None:
    """Under MIN_TICKS ticks of each of two sizes, or every step of the same events: the
    mean wait per step and no growth; a wait that falls with the events is no growth either
    (slope at least 0)."""
    few = pump_growth(tick_steps(ticks(MIN_TICKS - 1)))
    assert few.wait_per_event_s == 0.0 and few.cpu_per_event_s == 0.0
    assert few.wait_s > 5e-4  # the mean, events included
    same = pd.concat([tick(float(k), 2) for k in range(30)], ignore_index=True)
    g = pump_growth(tick_steps(same))
    assert g.wait_per_event_s == 0.0 and g.wait_s == pytest.approx(5e-4 + 2e-3)
    falling = pump_growth(tick_steps(ticks(80, wait_per_event=-1e-4, cpu_per_event=-1e-4)))
    assert falling.wait_per_event_s == 0.0 and falling.cpu_per_event_s == 0.0
    assert pump_growth(tick_steps(pd.DataFrame(columns=["stage", "name", "at", "seconds",
                                                        "events"]))) == PumpGrowth()  # fmt: skip


def test_the_cpu_growth_is_shared_by_how_each_views_steps_grow() -> None:
    """A view whose steps grow three times as fast as another's takes three quarters of
    the tick's CPU growth (2 views x 1 ms per event); a view with no growth of its own
    keeps none; each view's cost per step moves so that its mean step costs what it did,
    and never goes below 0."""
    rng = np.random.default_rng(1)
    n = rng.integers(1, 6, 200)
    steps = pd.concat([
        pd.DataFrame({"name": "fast", "events": n, "seconds": 3e-3 * n + 1e-3}),
        pd.DataFrame({"name": "slow", "events": n, "seconds": 1e-3 * n + 1e-3}),
        pd.DataFrame({"name": "flat", "events": n, "seconds": 1e-3}),
    ])  # fmt: skip
    growth = PumpGrowth(cpu_per_event_s=1e-3)
    old_event = {"fast": 1e-4, "slow": 1e-4, "flat": 1e-4}
    old_batch = {"fast": 1e-2, "slow": 1e-2, "flat": 1e-5}
    event, batch = spread_growth(steps, old_event, old_batch, growth, ["fast", "slow", "flat"])
    assert event["fast"] == pytest.approx(3e-3 * 3 / 4)
    assert event["slow"] == pytest.approx(3e-3 / 4)
    assert event["flat"] == pytest.approx(0.0, abs=1e-12)
    mean = float(n.mean())
    for v in ("fast", "slow"):
        assert batch[v] + event[v] * mean == pytest.approx(old_batch[v] + old_event[v] * mean)
    assert batch["flat"] == pytest.approx(1e-5 + 1e-4 * mean)
    # a growth larger than a view's cost per step can give: its cost per step stays >= 0
    event, batch = spread_growth(steps, old_event, old_batch, replace(growth, cpu_per_event_s=1.0),
                                 ["fast", "slow", "flat"])  # fmt: skip
    assert min(batch.values()) >= 0.0
    # no view grows: equal shares
    flat = steps.assign(seconds=1e-3)
    event, _ = spread_growth(flat, old_event, old_batch, growth, ["fast", "slow", "flat"])
    assert all(v == pytest.approx(1e-3) for v in event.values())


def test_the_growth_of_the_wait_goes_into_the_scenario() -> None:
    cal = LoopCalibration(
        command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
        per_batch={"balances": 1e-5}, request_s=2.5e-4, reads_per_command=1.0,
        mix={"deposit": 1.0}, keys=100, commit_s=(1e-3,), pump_wait_s=5e-4,
        pump_wait_per_event_s=3e-5,
    )  # fmt: skip
    s = cal.scenario(rate=100.0, duration=2.0)
    assert s.server is not None and s.server.pump_wait_per_event == pytest.approx(3e-5)
    assert "+0.0300 ms per event" in cal.describe()
    s0 = replace(cal, pump_wait_per_event_s=0.0).scenario(rate=100.0, duration=2.0)
    assert s0.server is not None and s0.server.pump_wait_per_event == 0.0


def test_a_view_not_pumped_by_the_server_keeps_its_costs() -> None:
    """Ticks of two views only (the sagas ran in a worker of their own): the growth per
    tick is two steps' worth, shared by the two, and the saga keeps what it had."""
    n = np.arange(200) % 5 + 1
    steps = pd.concat([
        pd.DataFrame({"name": "a", "events": n, "seconds": 1e-3 * n + 1e-3}),
        pd.DataFrame({"name": "b", "events": n, "seconds": 1e-3 * n + 1e-3}),
    ])  # fmt: skip
    old_event = {"a": 1e-4, "b": 1e-4, "saga": 2e-4}
    old_batch = {"a": 1e-2, "b": 1e-2, "saga": 3e-4}
    event, batch = spread_growth(steps, old_event, old_batch, PumpGrowth(cpu_per_event_s=1e-3),
                                 ["a", "b", "saga"])  # fmt: skip
    assert event["a"] == pytest.approx(1e-3) and event["b"] == pytest.approx(1e-3)
    assert (event["saga"], batch["saga"]) == (2e-4, 3e-4)
