"""The served process as one event loop ([server]): one CPU, first in first out, batches that
grow with the load, the slow-down after idling and a CPU quota. Expected values come from
the model's definition or queueing theory, not from the code's output."""

from __future__ import annotations

import math
import random
from collections.abc import Generator

import pytest
import simpy

from cqrs_lab.errors import ConfigError, ScenarioError
from cqrs_lab.sim import parse_scenario
from cqrs_lab.sim.event_loop import EventLoop
from cqrs_lab.sim.simulation import Simulation


def scenario(rate: float, server: str = "", reads: float = 0.0, duration: float = 20.0) -> str:
    text = (
        f"[scenario]\nduration = {duration}\nseed = 5\n[workload]\naccounts = 200\n"
        f'[workload.arrivals]\nprocess = "poisson"\nrate = {rate}\n'
        "[workload.mix]\ndeposit = 1.0\n[commands]\nhandlers = 1\nservice = 0.0002\n"
        "[projections.balances]\nper_event = 0.00005\nper_batch = 0.0001\n"
        f"[server]\nrequest = 0.0003\n{server}\n"
    )
    if reads:
        text += f"[reads]\nrate = {reads}\nreaders = 256\nservice = 0.0001\n"
    return text


def run(text: str) -> Simulation:
    sim = Simulation(parse_scenario(text))
    sim.run()
    return sim


def test_every_piece_of_work_is_paid_once_on_the_one_cpu() -> None:
    """Without the slow-down the loop's CPU is exactly the sum of the work: per command its
    request (0.3 ms), its service (0.2 ms); per pump batch 0.1 ms + 0.05 ms per event."""
    sim = run(scenario(100.0))
    c = sim.commands.rows
    n = len(c)
    drv = sim.drivers[0]
    events = sum(1 for row in c if row[6] == "accepted")
    expected = n * (0.0003 + 0.0002) + drv.batches * 0.0001 + events * 0.00005
    assert sim.loop is not None
    assert sim.loop.cpu_s == pytest.approx(expected, rel=0.02)
    assert sim.commands.batches <= n


def test_reads_share_the_loop() -> None:
    base = run(scenario(100.0))
    with_reads = run(scenario(100.0, reads=200.0))
    assert base.loop is not None and with_reads.loop is not None
    reads = len(with_reads.reads.rows) if with_reads.reads is not None else 0
    added = with_reads.loop.cpu_s - base.loop.cpu_s
    assert reads > 3000
    assert added == pytest.approx(reads * (0.0003 + 0.0001), rel=0.05)


def test_the_transports_read_is_a_turn_of_the_loop_of_its_own() -> None:
    """[server] transport: every request (command or read) pays it once more on the loop, as
    a piece of work of its own before its parsing; an idle loop answers a lone command in
    exactly its CPU: transport, request, the batch's service, nothing else."""
    base, hop = (
        run(scenario(100.0, reads=100.0)),
        run(scenario(100.0, "transport = 0.0001\n", 100.0)),
    )
    assert base.loop is not None and hop.loop is not None and hop.reads is not None
    assert len(hop.commands.rows) == len(base.commands.rows)  # the same arrivals
    requests = len(hop.commands.rows) + len(hop.reads.rows)
    added = hop.loop.cpu_s - base.loop.cpu_s
    assert added == pytest.approx(requests * 0.0001, rel=0.05)
    lone = run(scenario(0.5, "transport = 0.0001\n", duration=20.0))
    for row in lone.commands.rows:
        if row[6] == "accepted":
            assert row[5] - row[3] == pytest.approx(0.0001 + 0.0003 + 0.0002, abs=1e-9)


def test_the_transports_own_slow_down_applies_to_its_reads_only() -> None:
    """[server] transport_cold: after a long idle the read costs 1 + transport_cold times
    its warm CPU, whatever the loop's cold; the request's own work keeps the loop's."""
    own = "transport = 0.0001\ntransport_cold = 3.0\ntransport_cold_time = 0.002\n"
    for server, read in ((own, 0.0004), ("transport = 0.0001\ncold = 0.5\n", None)):
        lone = run(scenario(0.5, server, duration=20.0))
        rows = [r for r in lone.commands.rows if r[6] == "accepted"]
        assert rows
        for row in rows:
            if read is not None:  # the loop's cold is 0: the rest runs warm
                assert row[5] - row[3] == pytest.approx(read + 0.0003 + 0.0002, abs=1e-9)
            else:  # the loop's own slow-down: the read at 1.5 times, then warming up
                assert row[5] - row[3] > 0.00015 + 0.0003 + 0.0002
    # only its time constant given: the loop's cold, that time
    spec = parse_scenario(scenario(1.0, "cold = 0.5\ntransport_cold_time = 0.01\n")).server
    assert spec is not None and spec.transport_chill == (0.5, 0.01)
    assert parse_scenario(scenario(1.0, "cold = 0.5\n")).server.transport_chill is None  # type: ignore[union-attr]


def test_batches_grow_and_latency_rises_with_the_load() -> None:
    light, heavy = run(scenario(100.0)), run(scenario(1500.0))
    per_batch = [len(s.commands.rows) / s.commands.batches for s in (light, heavy)]
    assert per_batch[0] < 1.1 < 1.5 < per_batch[1]

    def p50(sim: Simulation) -> float:
        lat = sorted(r[5] - r[3] for r in sim.commands.rows if r[5] is not None)
        return lat[len(lat) // 2]

    assert p50(heavy) > 1.2 * p50(light)


def test_work_after_an_idle_spell_runs_slower_so_busy_cpu_per_command_falls_with_load() -> None:
    cold = "cold = 1.5\ncold_time = 0.002\n"
    per_cmd = []
    for rate in (50.0, 1000.0):
        sim = run(scenario(rate, cold))
        assert sim.loop is not None
        per_cmd.append(sim.loop.cpu_s / len(sim.commands.rows))
    # warm: 0.5 ms per command and a pump batch of 0.15 ms each. At 50/s nearly every
    # arrival finds the loop idle for ~20 ms (>> 2 ms): the spell's items (parsing 0.15 ms
    # at 0, the batch 0.2 ms at 0.15, the answer 0.15 ms at 0.35, the pump 0.15 ms at 0.5
    # ms into it) cost 1 + 1.5 * (1 - exp(-g / 2 ms)) * exp(-b / 2 ms) times as much, and
    # E[1 - exp(-g / 2 ms)] = 1 - 50 / (50 + 500) for idle gaps g ~ Exp(50/s); at 1000/s
    # far fewer spells start cold
    items = ((0.00015, 0.0), (0.0002, 0.00015), (0.00015, 0.00035), (0.00015, 0.0005))
    extra = sum(c * 1.5 * math.exp(-b / 0.002) for c, b in items)
    assert per_cmd[0] == pytest.approx(0.00065 + extra * (1 - 50 / 550), rel=0.1)
    assert per_cmd[0] > 1.5 * per_cmd[1]


def test_work_right_after_its_kind_costs_its_repeat_factor_and_a_pause_ends_the_run() -> None:
    """[server] *_repeat: an item that runs right after one of its kind costs that factor
    of its cost; another kind between them, an idle loop or a blocked one ends the run."""
    env = simpy.Environment()
    loop = EventLoop(env, 0.0, 0.001, 1.0, 0.01, repeat={"read": 0.5})
    ends: list[float] = []

    def note(_: simpy.Event) -> None:
        ends.append(round(env.now * 1e3, 9))

    for kind in ("read", "read", "read", "other", "read"):  # queued at once: one spell
        loop.run(0.001, kind=kind).callbacks.append(note)
    env.run()
    assert ends == [1.0, 1.5, 2.0, 3.0, 4.0]  # ms: the 2nd and 3rd read half price
    later = env.timeout(0.001)
    later.callbacks.append(lambda _: loop.run(0.001, kind="read").callbacks.append(note))
    env.run()
    assert ends[-1] == 6.0  # after 1 ms idle: full price again
    loop.run(0.001, hold=0.002, kind="read").callbacks.append(note)
    loop.run(0.001, kind="read").callbacks.append(note)
    env.run()
    assert ends[-2:] == [9.0, 10.0]  # the blocked loop's run ended: full price after it
    assert loop.cpu_s == pytest.approx(0.001 * 6 + 0.0005 * 2)


def test_commands_after_the_first_of_a_batch_cost_the_command_repeat_factor() -> None:
    """Heavy load, batches of several: each batch pays its first command's service in full
    and the rest at command_repeat; nothing else changes (the loop's CPU adds up exactly)."""
    sim = run(scenario(1500.0, "command_repeat = 0.4\n"))
    c, drv = sim.commands.rows, sim.drivers[0]
    n, batches = len(c), sim.commands.batches
    events = sum(1 for row in c if row[6] == "accepted")
    assert n > 1.3 * batches  # batches of more than one
    service = 0.0002 * (batches + 0.4 * (n - batches))
    expected = n * 0.0003 + service + drv.batches * 0.0001 + events * 0.00005
    assert sim.loop is not None
    assert sim.loop.cpu_s == pytest.approx(expected, rel=0.02)


def test_runs_of_reads_and_requests_make_the_loop_cheaper_per_command_only_under_load() -> None:
    """A lone command never follows its kind: the repeat factors change nothing at a light
    load and lower the CPU per command where the loop works in runs."""
    keys = "transport = 0.0001\ntransport_repeat = 0.5\nrequest_repeat = 0.5\n"
    lone_plain = run(scenario(0.5, "transport = 0.0001\n", duration=20.0))
    lone = run(scenario(0.5, keys, duration=20.0))
    assert [r[5] for r in lone.commands.rows] == [r[5] for r in lone_plain.commands.rows]
    per_cmd = []
    for server in ("transport = 0.0001\n", keys):
        sim = run(scenario(500.0, server, reads=500.0))
        assert sim.loop is not None
        per_cmd.append(sim.loop.cpu_s / len(sim.commands.rows))
    assert per_cmd[1] < 0.97 * per_cmd[0]  # the same arrivals: cheaper by its runs alone


def test_a_cpu_quota_caps_the_loop_and_sheds_what_it_cannot_serve() -> None:
    """0.3 core, offered 800/s: an accepted command costs at least 0.55 ms (request and
    service) plus its share of the pump, so at most 0.3 / 0.55 ms = 545/s are served; the
    loop uses its whole quota (a shed command still costs its request: parsed, answered)."""
    text = scenario(800.0, "cpus = 0.3\nperiod = 0.01\n", duration=10.0)
    sim = run(text.replace("handlers = 1\n", "handlers = 1\nqueue_limit = 256\n"))
    rows = sim.commands.rows
    done = [r for r in rows if r[6] == "accepted" and r[5] is not None and r[5] <= 10.0]
    assert 100 < len(done) / 10.0 < 546
    assert any(r[6] == "queue_full" for r in rows)
    assert sim.loop is not None
    assert sim.loop.cpu_s / 10.0 == pytest.approx(0.3, rel=0.03)


def test_the_quota_holds_within_every_period() -> None:
    env = simpy.Environment()
    loop = EventLoop(env, cold=0.0, cold_time=0.001, cpus=0.25, period=0.004)
    ends: list[float] = []
    for _ in range(10):
        loop.run(0.0015).callbacks.append(lambda _e: ends.append(env.now))
    env.run()
    # 1 ms of CPU per 4 ms: 15 ms of work needs 15 periods, ending 0.5 ms into the last
    assert ends[-1] == pytest.approx(14 * 0.004 + 0.001, abs=1e-9)


def _ends(carry: float, jobs: list[tuple[float, float]]) -> list[float]:
    """When each ``(start, cpu)`` job ends on a loop of 5 ms per 10 ms keeping ``carry``."""
    env = simpy.Environment()
    loop = EventLoop(env, cold=0.0, cold_time=0.001, cpus=0.5, period=0.01, carry=carry)
    ends: list[float] = []

    def job(at: float, cpu: float) -> Generator[simpy.Event, None, None]:
        yield env.timeout(at)
        yield loop.run(cpu)
        ends.append(env.now)

    for at, cpu in jobs:
        env.process(job(at, cpu))
    env.run()
    return ends


def test_a_period_left_idle_lets_the_next_run_up_to_the_carry_more() -> None:
    """0.5 ms run in the first period, 6 ms of work at 10.5 ms runs at once with a 1 ms
    carry (5 ms + 1 ms); a strict quota stops it at 15.5 ms until the next period."""
    assert _ends(0.001, [(0.0, 0.0005), (0.0105, 0.006)])[1] == pytest.approx(0.0165, abs=1e-9)
    assert _ends(0.0, [(0.0, 0.0005), (0.0105, 0.006)])[1] == pytest.approx(0.021, abs=1e-9)


def test_the_carry_does_not_pile_up_over_idle_periods() -> None:
    """Five periods idle still give one carry: 8 ms at 50 ms runs 6 ms, the rest at 60 ms;
    a loop that has not run yet has nothing kept (as a new group's CPU has no runtime)."""
    assert _ends(0.001, [(0.0, 0.0005), (0.05, 0.008)])[1] == pytest.approx(0.062, abs=1e-9)
    assert _ends(0.001, [(0.05, 0.008)]) == [pytest.approx(0.063, abs=1e-9)]


def test_the_carry_is_unused_quota_never_more() -> None:
    """Poisson jobs at 95% and at 120% of the quota (idle stretches, then a queue that
    never empties): by each job's end, the CPU of the jobs finished is at most the quota of
    every period begun plus one carry."""
    for gap in (0.0005 / 0.95, 0.0005 / 1.2):
        _within_the_quotas_given(gap)


def _within_the_quotas_given(gap: float) -> None:
    rng = random.Random(3)
    jobs, t = [], 0.0
    for _ in range(3000):
        t += rng.expovariate(1 / gap)
        jobs.append((t, rng.expovariate(1 / 0.0005)))
    ran = 0.0
    for end, (_, cpu) in zip(_ends(0.001, jobs), jobs, strict=True):  # first in, first out
        ran += cpu
        assert ran <= 0.005 * math.ceil(end / 0.01 - 1e-9) + 0.001 + 1e-9


@pytest.mark.parametrize("carry", [-0.001, math.nan, math.inf])
def test_a_carry_that_is_not_seconds_is_refused_by_name(carry: float) -> None:
    with pytest.raises(ConfigError, match=r"carry=.*>= 0"):
        EventLoop(simpy.Environment(), 0.0, 0.001, 0.5, 0.01, carry=carry)


def test_one_loop_needs_one_handler() -> None:
    bad = scenario(100.0).replace("handlers = 1", "handlers = 2")
    with pytest.raises(ScenarioError, match=r"commands\.handlers"):
        parse_scenario(bad)


def test_a_bad_server_key_names_the_table_and_the_allowed_values() -> None:
    with pytest.raises(ScenarioError, match=r"server\.cpus.*<= 1"):
        parse_scenario(scenario(100.0, "cpus = 2.0\n"))
    with pytest.raises(ScenarioError, match=r"server\.quota_carry.*>= 0"):
        parse_scenario(scenario(100.0, "quota_carry = -0.001\n"))
    assert parse_scenario(scenario(100.0, "quota_carry = 0\n")).server.quota_carry == 0.0
    with pytest.raises(ScenarioError, match=r"server\.request_repeat.*> 0"):
        parse_scenario(scenario(100.0, "request_repeat = 0\n"))


def _most_in_flight(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in edges:  # an end before a start at the same instant: a user reused
        now += step
        most = max(most, now)
    return most


def test_the_generators_users_bound_what_is_in_flight_past_capacity() -> None:
    """Offered three times what 0.3 core serves, with 40 users: at most 40 requests are
    ever at the server, nothing is shed (the writer's queue never fills), every due
    command is counted as offered and the server finishes more than when every arrival
    gets in and it pays to parse and turn away the ones its queue has no room for."""
    text = scenario(800.0, "cpus = 0.3\nperiod = 0.01\n", reads=400.0, duration=10.0)
    text = text.replace("handlers = 1\n", "handlers = 1\nqueue_limit = 256\n")
    pooled = run(text.replace("period = 0.01\n", "period = 0.01\nclients = 40\n"))
    open_ = run(text)
    cmds, reads = pooled.commands.rows, pooled.reads.rows if pooled.reads else []
    spans = [(r[3], r[5]) for r in cmds if r[5] is not None]
    spans += [(r[0], r[2]) for r in reads]
    assert 0 < _most_in_flight(spans) <= 40
    assert not any(r[6] == "queue_full" for r in cmds)
    offered = getattr(pooled.commands, "offered", 0)
    assert 7000 < offered < 9000 and len(cmds) < 0.8 * offered  # the rest still waited

    def finished(sim: Simulation) -> int:
        return sum(1 for r in sim.commands.rows if r[6] == "accepted" and r[5] is not None)

    assert any(r[6] == "queue_full" for r in open_.commands.rows)
    assert finished(pooled) > finished(open_)


def test_users_that_never_all_wait_change_nothing() -> None:
    """Far below capacity a pool larger than what is ever in flight sends everything on
    time: the same draws, the same rows, bit for bit."""
    plain = run(scenario(100.0, reads=50.0, duration=5.0))
    pooled = run(scenario(100.0, "clients = 500\n", reads=50.0, duration=5.0))
    assert pooled.commands.rows == plain.commands.rows
    assert pooled.reads is not None and plain.reads is not None
    assert pooled.reads.rows == plain.reads.rows
