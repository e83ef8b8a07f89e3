"""Poison events, schema drift and its fix, rebuilds, autoscaling, backpressure."""

from __future__ import annotations

from pathlib import Path

from cqrs_lab.domains import bank
from cqrs_lab.sim import (
    AutoscaleSpec,
    Dist,
    DriftSpec,
    RebuildSpec,
    RetrySpec,
    Scenario,
    load_scenario,
    simulate,
)
from tests.sim.helpers import plain

SCENARIOS = Path(__file__).resolve().parents[2] / "cqrs_lab" / "scenarios"


def _small(duration: float, rate: float = 200.0) -> Scenario:
    return plain(duration, rate)


def test_poison_events_are_retried_then_dead_lettered_by_every_projection() -> None:
    s = _small(8.0).with_(poison=(1.0, 2.0))
    for name in ("balances", "statements"):
        s = s.with_projection(name, retry=RetrySpec(max_attempts=4, base=0.05, factor=2.0))
    r = simulate(s)
    letters = r.engine.dead_letters.list()
    # two poison events, each parked once by each of the two projections
    assert len(letters) == 4
    assert {lt.attempts for lt in letters} == {4}
    assert all(lt.envelope.metadata.get("poison") for lt in letters)
    retries = sum(sub.retries for sub in r.engine.subscriptions.values())
    assert retries == 4 * 3  # three retries before each of the four parkings


def test_schema_drift_dead_letters_until_the_fix_then_replays_them() -> None:
    s = _small(6.0).with_(drift=DriftSpec(start=1.0, rate=20.0, fix_at=3.0))
    for name in ("balances", "statements"):
        s = s.with_projection(name, retry=RetrySpec(max_attempts=2, base=0.01, factor=1.0))
    r = simulate(s)
    inc = r.incidents
    fix_time = float(inc[inc["kind"] == "fix"]["time_s"].iloc[0])
    parked = inc[inc["kind"] == "dead-lettered"]
    assert len(parked) > 0 and (parked["time_s"] <= fix_time).all()
    assert len(r.engine.dead_letters) == 0  # all replayed by the fix
    v2 = [e for e in r.engine.store.read_all(0) if e.schema_version == 2]
    assert v2 and any(e.recorded_at > fix_time for e in v2)
    for sub in r.engine.subscriptions.values():
        sub.restart()
    r.engine.pump()
    expected: dict[str, int] = {}
    for env in r.engine.store.read_all(0):
        p = env.payload
        if isinstance(p, bank.AccountOpened):
            expected[p.account_id] = p.opening_balance
        elif isinstance(p, bank.Withdrawn):
            expected[p.account_id] -= p.amount
        elif env.event_type == "Deposited":  # v1 event or v2 raw payload
            data = (
                p.data if hasattr(p, "data") else {"account_id": p.account_id, "amount": p.amount}
            )
            expected[data["account_id"]] += data["amount"]
    assert r.engine.projection("balances").balances.to_dict() == expected


def test_in_place_rebuild_makes_reads_stale_until_caught_up() -> None:
    s = load_scenario(SCENARIOS / "rebuild_live.toml").with_(duration=12.0)
    s = s.with_(rebuild=RebuildSpec(at=6.0, projection="balances", mode="in-place"))
    r = simulate(s)
    inc = r.incidents.set_index("kind")
    start, done = float(inc.loc["rebuild", "time_s"]), float(inc.loc["rebuilt", "time_s"])
    assert start == 6.0 and done > start
    reads = r.reads
    during = reads[(reads["start_s"] > start) & (reads["start_s"] < done)]
    before = reads[reads["start_s"] < start]
    assert during["staleness_s"].max() > 5.0  # the emptied model misses events from t=0
    assert before["staleness_s"].max() < 0.5
    assert r.applications["replay"].any()


def test_shadow_rebuild_keeps_serving_fresh_reads() -> None:
    s = load_scenario(SCENARIOS / "rebuild_shadow.toml").with_(duration=12.0)
    s = s.with_(rebuild=RebuildSpec(at=6.0, projection="balances", mode="shadow"))
    r = simulate(s)
    kinds = r.incidents["kind"].tolist()
    assert "rebuilt" in kinds
    assert r.reads["staleness_s"].max() < 0.5
    assert r.engine.subscriptions["balances/p0"].rebuilds == 1


def test_autoscaler_scales_out_after_the_startup_delay_and_respects_max() -> None:
    s = plain(20.0, 100.0, balances_only=True)
    s = s.with_(
        workload=s.workload.__class__(
            arrivals=s.workload.arrivals.__class__("step", rate=100.0, to_rate=1000.0, at=5.0),
            mix=s.workload.mix,
        )
    )
    auto = AutoscaleSpec(
        metric="backlog",
        scale_out_above=200,
        scale_in_below=10,
        min=1,
        max=3,
        cooldown=4.0,
        interval=1.0,
        startup_delay=3.0,
    )
    s = s.with_projection(
        "balances",
        consumers=1,
        partitions=8,
        autoscale=auto,
        per_event=Dist.fixed(0.002),
        per_batch=Dist.fixed(0.002),
    )
    r = simulate(s)
    outs = r.incidents[r.incidents["kind"] == "scale-out"]
    assert len(outs) >= 2
    ts = r.timeseries
    first = float(outs["time_s"].iloc[0])
    assert (ts[ts["t_s"] < first + 3.0]["consumers_balances"] == 1).all()
    assert ts["consumers_balances"].max() == 3


def test_reject_admission_bounds_the_queue_and_counts_429s() -> None:
    s = _small(4.0, rate=2000.0).with_commands(
        handlers=2, queue_limit=50, admission="reject", service=Dist("exponential", 0.002)
    )
    r = simulate(s)
    assert r.summary_dict()["shed"] > 0
    assert r.timeseries["queue"].max() <= 50


def test_block_admission_refuses_nothing_and_shed_oldest_drops_queued_commands() -> None:
    base = _small(3.0, rate=1500.0).with_commands(
        handlers=2, queue_limit=20, service=Dist("exponential", 0.002)
    )
    blocked = simulate(base.with_commands(admission="block"))
    assert blocked.summary_dict()["shed"] == 0
    assert blocked.commands["wait_s"].max() > 0.05  # callers waited for room
    shed = simulate(base.with_commands(admission="shed-oldest")).commands
    dropped = shed[shed["outcome"] == "dropped_oldest"]
    assert len(dropped) > 0 and dropped["start_s"].isna().all()


def test_token_bucket_caps_the_admitted_rate() -> None:
    s = _small(5.0, rate=1000.0).with_commands(rate_limit=200.0, burst=10)
    c = simulate(s).commands
    admitted = c[c["outcome"] != "rate_limited"]
    assert len(admitted) <= 200.0 * 5.0 + 10
    assert (c["outcome"] == "rate_limited").sum() > 0
