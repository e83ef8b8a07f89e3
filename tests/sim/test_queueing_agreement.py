"""The full pipeline's command side agrees with queueing theory, and Little's law holds.

Commands are deposits (never refused) on many accounts (optimistic-concurrency conflicts,
which add service, are rare), Poisson arrivals, exponential service: the handler pool is
an M/M/c queue, so its mean wait must fall in the 95% interval over replications of the
simulation around Erlang C, and a bounded queue must block as M/M/c/K says.
"""

from __future__ import annotations

import dataclasses

import pytest

from cqrs_lab.sim import Dist, Scenario, Simulation, builtin_scenario, simulate
from cqrs_lab.sim.queueing.oracles import check_littles_law, mmc, mmck
from cqrs_lab.sim.queueing.tdist import mean_ci
from tests.sim.helpers import plain


def _queue(rate: float, mean_service: float, servers: int, duration: float) -> Scenario:
    s = plain(duration, rate, balances_only=True)
    w = dataclasses.replace(s.workload, population=2000, mix=(("deposit", 1.0),))
    s = s.with_(workload=w)
    s = s.with_projection("balances", partitions=1, consumers=1)
    s = s.with_commands(
        handlers=servers, service=Dist("exponential", mean_service), queue_limit=None
    )
    return s.with_rate(rate)


@pytest.mark.parametrize(
    ("rate", "servers", "duration"),
    [(100.0, 2, 60.0), (320.0, 4, 10.0), (90.0, 1, 40.0)],
    ids=["rho=0.5", "rho=0.8", "rho=0.9"],
)
def test_mean_wait_inside_the_confidence_interval_around_erlang_c(
    rate: float, servers: int, duration: float
) -> None:
    scenario = _queue(rate, 0.01, servers, duration)
    warmup = duration / 10
    waits = []
    for seed in range(1, 11):
        c = simulate(scenario, seed=seed).commands
        c = c[(c["arrival_s"] >= warmup) & c["start_s"].notna()]
        waits.append(float(c["wait_s"].mean()))
    ci = mean_ci(waits, 0.95)
    expected = mmc(rate, 100.0, servers).wq
    assert ci.contains(expected), (expected, ci)


def test_blocking_probability_of_a_bounded_queue_matches_mmck() -> None:
    servers, capacity = 2, 5
    scenario = _queue(200.0, 0.01, servers, 10.0).with_commands(queue_limit=capacity - servers)
    blocked = []
    for seed in range(1, 9):
        c = simulate(scenario, seed=seed).commands
        blocked.append(float((c["outcome"] == "queue_full").mean()))
    ci = mean_ci(blocked, 0.95)
    expected = mmck(200.0, 100.0, servers, capacity).p_block
    assert ci.contains(expected), (expected, ci)


def test_littles_law_on_every_stage_of_a_full_run() -> None:
    s = builtin_scenario().with_(duration=20.0, reads=None, slos=())
    sim = Simulation(s)
    result = sim.run()
    T = s.duration
    c = result.commands
    started = c[c["start_s"].notna()]
    done = c[c["end_s"].notna() & c["outcome"].isin(("accepted", "refused"))]
    stages = {
        "admission queue": (
            sim.commands.queued.area_at(T) / T,
            len(started) / T,
            float(started["wait_s"].mean()),
        ),
        "handlers": (
            sim.commands.busy.area_at(T) / T,
            len(done) / T,
            float((done["end_s"] - done["start_s"]).mean()),
        ),
    }
    apps = result.applications
    for d in sim.drivers:
        first = apps[(apps["projection"] == d.name) & ~apps["duplicate"]]
        stages[d.name] = (
            d.outstanding.area_at(T) / T,
            len(first) / T,
            float(first["lag_s"].mean()),
        )
    report = check_littles_law(stages, rel_tol=0.03)
    assert report.ok, report.describe()


def test_a_long_run_with_its_progress_bar_ends_the_bar_at_the_duration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fifty float steps of duration/50 summed past the total: tqdm warned "clamping frac to
    range [0, 1]" at the end of a 60 s run in a notebook (an error under this suite, in a
    worker where a notebook test had imported ipykernel, which turns the bar on)."""
    import cqrs_lab.sim.simulation as simulation

    monkeypatch.setattr(simulation, "show_progress", lambda: True)
    simulate(_queue(100.0, 0.01, 2, 60.0), seed=1)  # warnings are errors here
