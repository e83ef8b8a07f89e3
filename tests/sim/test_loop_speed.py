"""The machine's wandering speed ([server] speed_sd, speed_time): an Ornstein-Uhlenbeck log
factor on the loop's costs, and its fit from stage timings. Expected values come from the
process's definition (its variance and correlation), not from the code's output."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
import simpy

from cqrs_lab.errors import ConfigError, ScenarioError
from cqrs_lab.load.loop_speed_fit import speed_fit
from cqrs_lab.sim import parse_scenario
from cqrs_lab.sim.event_loop import EventLoop
from cqrs_lab.sim.loop_speed import MAX_POINTS, LoopSpeed
from cqrs_lab.sim.simulation import Simulation
from tests.sim.test_event_loop import scenario


def test_the_log_speed_has_the_sd_and_the_correlation_it_was_given() -> None:
    speed = LoopSpeed(0.25, 0.4, random.Random(11), duration=2000.0)
    log = np.log(np.asarray(speed.path))
    assert float(np.mean(np.asarray(speed.path))) == pytest.approx(1.0, abs=1e-9)
    assert float(np.std(log)) == pytest.approx(0.25, rel=0.05)
    lag = round(0.4 / speed.step)  # one time constant apart: correlation exp(-1)
    x = log - log.mean()
    rho = float(np.mean(x[:-lag] * x[lag:]) / np.var(x))
    assert rho == pytest.approx(math.exp(-1.0), abs=0.05)
    far = round(4.0 / speed.step)  # ten time constants: none left
    assert abs(float(np.mean(x[:-far] * x[far:]) / np.var(x))) < 0.05


class _Stub:
    """A speed of 2 for the first 10 ms, then 1."""

    def factor(self, now: float) -> float:
        return 2.0 if now < 0.01 else 1.0


def test_an_items_cost_is_scaled_by_the_speed_at_its_start() -> None:
    env = simpy.Environment()
    loop = EventLoop(env, 0.0, 0.001, 1.0, 0.01, speed=_Stub())  # type: ignore[arg-type]
    ends: list[float] = []
    for cost in (0.004, 0.004, 0.004):
        loop.run(cost).callbacks.append(lambda _e: ends.append(round(env.now, 6)))
    env.run()
    # 8 ms (started at 0, speed 2), 8 ms (started at 8 ms, speed 2), 4 ms (started at 16)
    assert ends == [0.008, 0.016, 0.02]
    assert loop.cpu_s == pytest.approx(0.02)


def test_the_same_seed_draws_the_same_speed_and_another_seed_another() -> None:
    a, b, c = (LoopSpeed(0.2, 0.3, random.Random(s), 10.0) for s in (1, 1, 2))
    assert a.path == b.path and a.path != c.path
    with pytest.raises(ConfigError, match="duration"):
        LoopSpeed(0.2, 0.3, random.Random(1), 0.0)
    assert a.factor(-1.0) == a.path[0] and a.factor(99.0) == a.path[-1]  # held at the ends


def test_a_tiny_time_constant_or_a_long_run_draws_a_bounded_grid() -> None:
    """A time constant of a nanosecond (or a day-long run) must not ask for 10**11 points:
    the grid coarsens to at most MAX_POINTS, and a stretch shorter than it is then noise
    from point to point with the same sd."""
    tiny = LoopSpeed(0.2, 1e-9, random.Random(3), duration=60.0)
    assert len(tiny.path) <= MAX_POINTS
    log = np.log(np.asarray(tiny.path))
    assert float(np.std(log)) == pytest.approx(0.2, rel=0.05)
    x = log - log.mean()
    assert abs(float(np.mean(x[:-1] * x[1:]) / np.var(x))) < 0.01  # no memory left
    for duration in (86_400.0, 10_012.427):  # the second does not divide into the grid
        assert len(LoopSpeed(0.2, 0.3, random.Random(3), duration=duration).path) <= MAX_POINTS


@pytest.mark.parametrize(("sd", "time"), [(-0.1, 0.3), (math.nan, 0.3), (0.2, 0.0), (0.2, -1.0)])
def test_a_bad_speed_is_refused_by_name(sd: float, time: float) -> None:
    with pytest.raises(ConfigError, match="speed_sd" if not sd >= 0 else "speed_time"):
        LoopSpeed(sd, time, random.Random(1), 10.0)


def test_a_bad_speed_key_names_the_table_and_the_allowed_values() -> None:
    for key, value in (("speed_sd", -0.5), ("speed_time", 0)):
        with pytest.raises(ScenarioError, match=rf"server\.{key}.*>"):
            parse_scenario(scenario(100.0, f"{key} = {value}"))


def _run(rate: float, server: str) -> Simulation:
    sim = Simulation(parse_scenario(scenario(rate, server + "cpus = 0.5\n", duration=60.0)))
    sim.run()
    return sim


def _p99(sim: Simulation) -> float:
    lat = [r[5] - r[3] for r in sim.commands.rows if r[6] == "accepted" and r[5] is not None]
    return float(np.percentile(lat, 99))


def test_a_wandering_speed_keeps_the_cpu_but_slow_stretches_queue_near_the_limit() -> None:
    """Mean one: the same work costs the same CPU over the run (near the limit a little
    less: a slow stretch's batches grow and share their cost). Near the CPU limit (about
    77% of it busy) stretches 20% slower for a few tenths of a second overload it and
    queue; far below it they do not."""
    wander = "speed_sd = 0.2\nspeed_time = 0.3\n"
    for rate, cpu_rel in ((120.0, 0.01), (600.0, 0.03)):
        still, moving = _run(rate, ""), _run(rate, wander)
        assert still.loop is not None and moving.loop is not None
        assert moving.loop.cpu_s == pytest.approx(still.loop.cpu_s, rel=cpu_rel)
        ratio = _p99(moving) / _p99(still)
        if rate < 500:
            assert ratio < 1.5, f"at {rate}/s the p99 moved {ratio:.2f} times"
        else:
            assert ratio > 2.0, f"at {rate}/s the p99 moved only {ratio:.2f} times"


def test_the_simulation_with_a_wandering_speed_is_the_same_for_the_same_seed() -> None:
    wander = "speed_sd = 0.3\nspeed_time = 0.2\n"
    a, b = _run(400.0, wander), _run(400.0, wander)
    assert a.commands.rows == b.commands.rows


def _timings(sd: float, time: float, seed: int, outliers: float = 0.0) -> list[pd.DataFrame]:
    """Three 10 s runs' warm calls (about 700 a second, own scatter 0.35 in the log), on a
    speed of ``sd`` and ``time``; a share ``outliers`` of calls paused 30 times longer (as
    a CPU limit pauses them), independently."""
    rng = np.random.default_rng(seed)
    speed = LoopSpeed(sd, time, random.Random(seed), 30.0) if sd > 0 else None
    t = np.sort(rng.uniform(0.0, 30.0, 21_000))
    factor = np.ones(t.size)
    if speed is not None:
        factor = np.asarray([speed.factor(x) for x in t])
    secs = 1e-4 * factor * np.exp(rng.normal(0.0, 0.35, t.size))
    secs[rng.random(t.size) < outliers] *= 30.0
    names = rng.choice(["Deposit", "Withdraw"], t.size)
    st = pd.DataFrame({"stage": "command", "name": names, "at": t, "seconds": secs, "gap": 0.0})
    return [st[(t >= lo) & (t < lo + 10.0)] for lo in (0.0, 10.0, 20.0)]


@pytest.mark.parametrize(("sd", "time"), [(0.2, 0.3), (0.12, 0.15), (0.3, 0.6)])
def test_the_fit_finds_the_speed_the_calls_were_timed_on(sd: float, time: float) -> None:
    """sd within 15%; the time constant within a factor of two (a fit from 30 s of calls)."""
    fit_sd, fit_time = speed_fit(_timings(sd, time, seed=round(sd * 100)))
    assert fit_sd == pytest.approx(sd, rel=0.15)
    assert time / 2 < fit_time < time * 2


def test_calls_that_scatter_on_their_own_or_a_limit_paused_are_no_wandering_speed() -> None:
    for outliers in (0.0, 0.01):
        sd, _ = speed_fit(_timings(0.0, 0.3, seed=5, outliers=outliers))
        assert sd < 0.05, f"{outliers:.0%} paused calls read as a speed sd of {sd:.3f}"


def test_too_few_calls_fit_no_speed() -> None:
    few = [p.iloc[: 40 * 3 - 1] for p in _timings(0.3, 0.3, seed=1)]
    assert speed_fit(few) == (0.0, 0.3)


def test_calls_at_no_finite_moment_or_hours_apart_are_left_out() -> None:
    parts = _timings(0.2, 0.3, seed=2)
    sd, time = speed_fit(parts)
    broken = [p.copy() for p in parts]
    broken[0].iloc[5, broken[0].columns.get_loc("at")] = math.nan
    broken[1].iloc[5, broken[1].columns.get_loc("seconds")] = math.inf
    assert speed_fit(broken) == pytest.approx((sd, time), rel=0.05)
    far = parts[2].copy()
    far.iloc[-1, far.columns.get_loc("at")] = 1e7  # would be 2 * 10**8 windows
    assert speed_fit([parts[0], parts[1], far])[0] > 0  # that run left out, the others fit
