"""Small scenarios built from the shipped baseline for the tests."""

from __future__ import annotations

import dataclasses

from cqrs_lab.sim import Scenario, builtin_scenario


def plain(duration: float, rate: float = 200.0, *, balances_only: bool = False) -> Scenario:
    """The baseline without reads, SLOs, transfers or the saga (optionally balances only)."""
    s = builtin_scenario().with_(duration=duration, reads=None, slos=())
    mix = tuple((k, w) for k, w in s.workload.mix if k != "transfer")
    keep = ("balances",) if balances_only else ("balances", "statements")
    s = s.with_(
        workload=dataclasses.replace(s.workload, mix=mix),
        projections=tuple(p for p in s.projections if p.name in keep),
    )
    return s.with_rate(rate)
