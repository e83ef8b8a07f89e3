"""Same seed, same tables, bit for bit; another seed, another run."""

from __future__ import annotations

import pandas as pd

from cqrs_lab.sim import TransportSpec, builtin_scenario, simulate
from cqrs_lab.sim.distributions import Dist
from cqrs_lab.sim.scenario import CrashSpec


def _faulty():
    s = builtin_scenario().with_(duration=4.0, poison=(1.0,))
    s = s.with_projection(
        "balances",
        delivery="at-least-once",
        checkpoint_interval=0.5,
        crash=CrashSpec(Dist("exponential", 1.0), Dist.fixed(0.2)),
        transient_errors=0.01,
        transport=TransportSpec(drop=0.01, duplicate=0.01, reorder=0.01, delay=0.01),
    )
    return s.with_rate(300.0)


def test_same_seed_gives_identical_tables() -> None:
    a, b = simulate(_faulty()), simulate(_faulty())
    assert len(a.incidents) > 0 and a.summary_dict()["consumer_crashes"] > 0
    for name, table in a.tables().items():
        pd.testing.assert_frame_equal(table, b.tables()[name], check_exact=True, obj=name)
    assert a.read_models == b.read_models


def test_another_seed_gives_another_run() -> None:
    a, b = simulate(_faulty()), simulate(_faulty(), seed=12345)
    assert not a.commands["arrival_s"].equals(b.commands["arrival_s"])
